//! SystemService over the runtime.

use std::sync::Arc;

use libcrun_shim_proto::v1::{self as pb, system_service_server::SystemService};
use tonic::{Request, Response};

use super::RpcResult;
use super::convert;
use crate::error::Error;
use crate::model::{ContainerConfig, Status as ContainerStatus};
use crate::runtime::{ListFilter, Runtime};

/// The name servers report as their component.
pub const COMPONENT: &str = "crun-shim-agent";

/// The system service.
pub struct System {
    runtime: Arc<Runtime>,
    shutdown: tokio::sync::mpsc::Sender<()>,
}

impl System {
    /// A service over `runtime`; Shutdown sends on `shutdown`.
    pub fn new(runtime: Arc<Runtime>, shutdown: tokio::sync::mpsc::Sender<()>) -> Self {
        System { runtime, shutdown }
    }
}

fn cgroup_mode(mode: libcrun_sys::cgroup::CgroupMode) -> pb::CgroupMode {
    use libcrun_sys::cgroup::CgroupMode;
    match mode {
        CgroupMode::V1 => pb::CgroupMode::V1,
        CgroupMode::Hybrid => pb::CgroupMode::Hybrid,
        CgroupMode::V2 => pb::CgroupMode::V2,
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn memory_bytes() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(0)
}

#[tonic::async_trait]
impl SystemService for System {
    async fn version(&self, _: Request<pb::VersionRequest>) -> RpcResult<pb::VersionResponse> {
        Ok(Response::new(libcrun_shim_proto::serving::version(
            COMPONENT,
            libcrun_sys::libcrun_version(),
        )))
    }

    async fn info(&self, _: Request<pb::InfoRequest>) -> RpcResult<pb::InfoResponse> {
        let all = self.runtime.list(&ListFilter::default());
        let running = all.iter().filter(|v| v.record.status.is_active()).count();
        let agent = pb::AgentInfo {
            name: String::new(),
            endpoint: String::new(),
            state: pb::AgentState::Ready as i32,
            version: env!("CARGO_PKG_VERSION").into(),
            libcrun_version: libcrun_sys::libcrun_version().into(),
            cgroup_mode: cgroup_mode(self.runtime.options().cgroups.host_mode) as i32,
            kernel_version: kernel_release(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
            memory_bytes: memory_bytes(),
            containers: all.len() as u32,
            containers_running: running as u32,
            images: 0,
            root_dir: self.runtime.store().root().display().to_string(),
            started_at: Some(self.runtime.started_at().into()),
            last_error: String::new(),
            last_event_sequence: self.runtime.last_event(),
        };
        Ok(Response::new(pb::InfoResponse {
            component: COMPONENT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agents: vec![agent],
        }))
    }

    async fn cleanup_stopped(
        &self,
        _: Request<pb::CleanupStoppedRequest>,
    ) -> RpcResult<pb::CleanupStoppedResponse> {
        let stopped = self.runtime.list(&ListFilter {
            statuses: vec![ContainerStatus::Stopped],
            ..Default::default()
        });
        let mut removed_ids = Vec::new();
        for view in stopped {
            let id = view.record.config.id;
            // A container restarted meanwhile is skipped, not an error.
            if self.runtime.delete(&id, false).await.is_ok() {
                removed_ids.push(id);
            }
        }
        Ok(Response::new(pb::CleanupStoppedResponse { removed_ids }))
    }

    async fn list_orphaned(
        &self,
        _: Request<pb::ListOrphanedRequest>,
    ) -> RpcResult<pb::ListOrphanedResponse> {
        let orphans = self.runtime.orphans()?.iter().map(Into::into).collect();
        Ok(Response::new(pb::ListOrphanedResponse { orphans }))
    }

    async fn force_delete(
        &self,
        request: Request<pb::ForceDeleteRequest>,
    ) -> RpcResult<pb::ForceDeleteResponse> {
        let removed = self.runtime.force_delete(&request.into_inner().id).await?;
        Ok(Response::new(pb::ForceDeleteResponse {
            removed: removed.iter().map(Into::into).collect(),
        }))
    }

    async fn recover(&self, _: Request<pb::RecoverRequest>) -> RpcResult<pb::RecoverResponse> {
        let report = self.runtime.recover().await?;
        Ok(Response::new(pb::RecoverResponse {
            adopted_ids: report.adopted,
            exited_ids: report.exited,
            undone_ids: report.undone,
            removed_ids: report.removed,
            orphans: report.orphans.iter().map(Into::into).collect(),
        }))
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> RpcResult<pb::ShutdownResponse> {
        let r = request.into_inner();
        let timeout = convert::optional_duration(r.timeout, "timeout")
            .map_err(Error::from)?
            .unwrap_or(ContainerConfig::DEFAULT_STOP_TIMEOUT);
        let stopped_ids = self.runtime.shutdown(r.stop_containers, timeout).await?;
        let _ = self.shutdown.try_send(());
        Ok(Response::new(pb::ShutdownResponse { stopped_ids }))
    }
}
