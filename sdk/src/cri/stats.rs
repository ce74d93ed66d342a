//! Container and pod statistics from crun-shimd's metrics.

use std::collections::HashMap;
use std::time::SystemTime;

use super::Cri;
use super::containers::Container;
use super::error::CriResult;
use super::meta;
use super::pods::Sandbox;
use super::proto;
use crate::{ContainerMetrics, Info};

fn value(v: u64) -> Option<proto::UInt64Value> {
    Some(proto::UInt64Value { value: v })
}

/// The CRI statistics of a container: its metrics while it runs, zeros
/// (at the current time) otherwise.
fn container_stats(
    container: &Container,
    metrics: Option<&ContainerMetrics>,
) -> proto::ContainerStats {
    let now = meta::nanos(Some(SystemTime::now()));
    let time = metrics.map_or(now, |m| meta::nanos(m.time).max(1));
    let (cpu, memory) = match metrics {
        Some(m) => (
            proto::CpuUsage {
                timestamp: time,
                usage_core_nano_seconds: value(m.cpu.usage_total),
                ..Default::default()
            },
            proto::MemoryUsage {
                timestamp: time,
                // The kubelet's working set: usage less the page cache
                // the kernel may reclaim.
                working_set_bytes: value(m.memory.usage.saturating_sub(m.memory.cache)),
                usage_bytes: value(m.memory.usage),
                rss_bytes: value(m.memory.rss),
                available_bytes: (m.memory.limit > 0)
                    .then(|| value(m.memory.limit.saturating_sub(m.memory.usage)))
                    .flatten(),
                ..Default::default()
            },
        ),
        None => (
            proto::CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: value(0),
                ..Default::default()
            },
            proto::MemoryUsage {
                timestamp: now,
                working_set_bytes: value(0),
                ..Default::default()
            },
        ),
    };
    proto::ContainerStats {
        attributes: Some(container.attributes()),
        cpu: Some(cpu),
        memory: Some(memory),
        writable_layer: Some(proto::FilesystemUsage {
            timestamp: now,
            fs_id: Some(proto::FilesystemIdentifier {
                mountpoint: container.info.rootfs_path.clone(),
            }),
            used_bytes: value(0),
            inodes_used: value(0),
        }),
        swap: None,
        io: None,
    }
}

/// The usage of the filesystem holding the agent's state (images and
/// containers' layers), for ImageFsInfo.
pub(crate) fn filesystem_usage(info: &Info) -> Option<proto::FilesystemUsage> {
    let root = info
        .agents
        .iter()
        .map(|a| a.root_dir.as_str())
        .find(|r| !r.is_empty())?;
    let stat = nix::sys::statvfs::statvfs(root).ok()?;
    let used_blocks = stat.blocks().saturating_sub(stat.blocks_free());
    Some(proto::FilesystemUsage {
        timestamp: meta::nanos(Some(SystemTime::now())),
        fs_id: Some(proto::FilesystemIdentifier {
            mountpoint: root.to_string(),
        }),
        used_bytes: value(used_blocks.saturating_mul(stat.fragment_size())),
        inodes_used: value(stat.files().saturating_sub(stat.files_free())),
    })
}

impl Cri {
    /// The metrics of the running containers, by id.
    async fn metrics_by_id(&self) -> CriResult<HashMap<String, ContainerMetrics>> {
        Ok(self
            .runtime
            .all_metrics()
            .await?
            .into_iter()
            .map(|m| (m.container_id.clone(), m))
            .collect())
    }

    /// ContainerStats.
    pub(crate) async fn container_stats(&self, id: &str) -> CriResult<proto::ContainerStats> {
        let container = self.container(id).await?;
        let metrics = if container.info.status.is_active() {
            self.runtime.metrics(&container.info.id).await.ok()
        } else {
            None
        };
        Ok(container_stats(&container, metrics.as_ref()))
    }

    /// ListContainerStats with its filter.
    pub(crate) async fn list_container_stats(
        &self,
        filter: Option<proto::ContainerStatsFilter>,
    ) -> CriResult<Vec<proto::ContainerStats>> {
        let filter = filter.unwrap_or_default();
        let containers = self
            .filtered_containers(&filter.id, &filter.pod_sandbox_id, &filter.label_selector)
            .await?;
        let metrics = self.metrics_by_id().await?;
        Ok(containers
            .iter()
            .map(|c| container_stats(c, metrics.get(&c.info.id)))
            .collect())
    }

    /// PodSandboxStats of one pod.
    pub(crate) async fn pod_sandbox_stats(&self, id: &str) -> CriResult<proto::PodSandboxStats> {
        let sandbox = self.sandbox(id).await?;
        let metrics = self.metrics_by_id().await?;
        self.pod_stats(&sandbox, &metrics).await
    }

    /// ListPodSandboxStats with its filter.
    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        filter: Option<proto::PodSandboxStatsFilter>,
    ) -> CriResult<Vec<proto::PodSandboxStats>> {
        let filter = filter.unwrap_or_default();
        let metrics = self.metrics_by_id().await?;
        let mut out = Vec::new();
        for info in self.list_kind(meta::KIND_SANDBOX).await? {
            let Some(sandbox) = Sandbox::from_info(info) else {
                continue;
            };
            if (filter.id.is_empty() || meta::id_matches(&filter.id, sandbox.id()))
                && meta::selects(&filter.label_selector, &sandbox.config.labels)
            {
                out.push(self.pod_stats(&sandbox, &metrics).await?);
            }
        }
        Ok(out)
    }

    /// A pod's statistics: the sum of its containers' and its sandbox's.
    async fn pod_stats(
        &self,
        sandbox: &Sandbox,
        metrics: &HashMap<String, ContainerMetrics>,
    ) -> CriResult<proto::PodSandboxStats> {
        let containers: Vec<proto::ContainerStats> = self
            .filtered_containers("", sandbox.id(), &HashMap::new())
            .await?
            .iter()
            .map(|c| container_stats(c, metrics.get(&c.info.id)))
            .collect();
        let now = meta::nanos(Some(SystemTime::now()));
        let own = metrics.get(sandbox.id());
        let sum =
            |f: &dyn Fn(&proto::ContainerStats) -> u64| -> u64 { containers.iter().map(f).sum() };
        let cpu = sum(&|c| {
            c.cpu
                .as_ref()
                .and_then(|u| u.usage_core_nano_seconds.as_ref())
                .map_or(0, |v| v.value)
        }) + own.map_or(0, |m| m.cpu.usage_total);
        let memory = sum(&|c| {
            c.memory
                .as_ref()
                .and_then(|u| u.working_set_bytes.as_ref())
                .map_or(0, |v| v.value)
        }) + own.map_or(0, |m| m.memory.usage.saturating_sub(m.memory.cache));
        let processes = metrics
            .iter()
            .filter(|(id, _)| {
                *id == sandbox.id()
                    || containers
                        .iter()
                        .any(|c| c.attributes.as_ref().is_some_and(|a| &a.id == *id))
            })
            .map(|(_, m)| m.pids.current)
            .sum();
        Ok(proto::PodSandboxStats {
            attributes: Some(proto::PodSandboxAttributes {
                id: sandbox.id().to_string(),
                metadata: sandbox.config.metadata.clone(),
                labels: sandbox.config.labels.clone(),
                annotations: sandbox.config.annotations.clone(),
            }),
            linux: Some(proto::LinuxPodSandboxStats {
                cpu: Some(proto::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: value(cpu),
                    ..Default::default()
                }),
                memory: Some(proto::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: value(memory),
                    ..Default::default()
                }),
                network: None,
                process: Some(proto::ProcessUsage {
                    timestamp: now,
                    process_count: value(processes),
                }),
                containers,
                io: None,
            }),
            windows: None,
        })
    }
}
