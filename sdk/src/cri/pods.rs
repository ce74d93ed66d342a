//! Pod sandboxes: a crun-shimd container running the sandbox image's
//! pause process, holding the pod's network, IPC and UTS namespaces (and
//! its PID namespace, as PID 1, when the pod shares one); the pod's
//! containers join them.

use std::collections::HashMap;
use std::time::Duration;

use super::Cri;
use super::error::{CriError, CriResult};
use super::meta::{self, KIND_LABEL, KIND_SANDBOX, NAME_LABEL, NAMESPACE_LABEL};
use super::proto;
use crate::{
    ContainerConfig, ContainerInfo, ContainerStatus, Error, ListFilter, NamespaceSource, RootSource,
};

/// How long the sandbox's pause process gets to end on StopPodSandbox.
const SANDBOX_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// A pod sandbox as crun-shimd holds it, with its CRI config.
pub(crate) struct Sandbox {
    pub(crate) info: ContainerInfo,
    pub(crate) config: proto::PodSandboxConfig,
}

impl Sandbox {
    /// The sandbox of `info`, when it is one.
    pub(crate) fn from_info(info: ContainerInfo) -> Option<Sandbox> {
        if meta::kind(&info) != Some(KIND_SANDBOX) {
            return None;
        }
        let config = meta::decode(&info)?;
        Some(Sandbox { info, config })
    }

    /// The id.
    pub(crate) fn id(&self) -> &str {
        &self.info.id
    }

    /// Ready while its pause process runs.
    pub(crate) fn state(&self) -> proto::PodSandboxState {
        if self.info.status.is_active() {
            proto::PodSandboxState::SandboxReady
        } else {
            proto::PodSandboxState::SandboxNotready
        }
    }

    /// The namespace options the pod was made with.
    pub(crate) fn namespaces(&self) -> proto::NamespaceOption {
        self.config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default()
    }

    /// True when the pod uses the node's network.
    pub(crate) fn host_network(&self) -> bool {
        self.namespaces().network() == proto::NamespaceMode::Node
    }

    fn to_cri(&self) -> proto::PodSandbox {
        proto::PodSandbox {
            id: self.info.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state() as i32,
            created_at: meta::nanos(self.info.created_at),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: String::new(),
        }
    }
}

impl Cri {
    /// Every CRI object of `kind` crun-shimd holds.
    pub(crate) async fn list_kind(&self, kind: &str) -> CriResult<Vec<ContainerInfo>> {
        let filter = ListFilter {
            labels: [(KIND_LABEL.to_string(), kind.to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        Ok(self.runtime.list_with(filter).await?)
    }

    /// The CRI object of `kind` that `id` names (its id or a unique prefix).
    pub(crate) async fn find(&self, kind: &str, id: &str) -> CriResult<ContainerInfo> {
        let what = || CriError::NotFound(format!("{kind} {id:?}"));
        if id.is_empty() {
            return Err(CriError::InvalidArgument(format!("no {kind} id given")));
        }
        match self.runtime.inspect(id).await {
            Ok(info) if meta::kind(&info) == Some(kind) => return Ok(info),
            Ok(_) => return Err(what()),
            Err(Error::NotFound(_) | Error::InvalidArgument(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut matching: Vec<ContainerInfo> = self
            .list_kind(kind)
            .await?
            .into_iter()
            .filter(|c| meta::id_matches(id, &c.id))
            .collect();
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(what()),
            _ => Err(CriError::InvalidArgument(format!(
                "{kind} id {id:?} is ambiguous"
            ))),
        }
    }

    /// The pod sandbox `id` names.
    pub(crate) async fn sandbox(&self, id: &str) -> CriResult<Sandbox> {
        let info = self.find(KIND_SANDBOX, id).await?;
        Sandbox::from_info(info)
            .ok_or_else(|| CriError::NotFound(format!("the CRI config of pod sandbox {id:?}")))
    }

    /// RunPodSandbox: the sandbox container, made and started; nothing is
    /// left behind when that fails.
    pub(crate) async fn run_pod_sandbox(
        &self,
        config: proto::PodSandboxConfig,
    ) -> CriResult<String> {
        let metadata = config
            .metadata
            .clone()
            .ok_or_else(|| CriError::InvalidArgument("the pod sandbox has no metadata".into()))?;
        if metadata.name.is_empty() || metadata.namespace.is_empty() {
            return Err(CriError::InvalidArgument(
                "the pod sandbox needs a name and a namespace".into(),
            ));
        }
        let image = self.sandbox_image().await?;
        let id = meta::new_id()?;
        let namespaces = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let host_network = namespaces.network() == proto::NamespaceMode::Node;
        let host = |mode: proto::NamespaceMode| {
            if mode == proto::NamespaceMode::Node {
                NamespaceSource::Host
            } else {
                NamespaceSource::Private
            }
        };
        let ours = [
            (KIND_LABEL, KIND_SANDBOX),
            (NAME_LABEL, metadata.name.as_str()),
            (NAMESPACE_LABEL, metadata.namespace.as_str()),
        ];
        let mut ours_config = ContainerConfig {
            id: id.clone(),
            root: RootSource::Image(image),
            hostname: (!host_network && !config.hostname.is_empty())
                .then(|| config.hostname.clone()),
            network: super::network::sandbox_network(host_network),
            labels: meta::labels(&config.labels, &ours),
            annotations: [(meta::CONFIG_ANNOTATION.to_string(), meta::encode(&config))]
                .into_iter()
                .collect(),
            ipc: host(namespaces.ipc()),
            pid: host(namespaces.pid()),
            uts: if host_network {
                NamespaceSource::Host
            } else {
                NamespaceSource::Private
            },
            read_only_rootfs: true,
            stop_timeout: Some(SANDBOX_STOP_TIMEOUT),
            ..Default::default()
        };
        super::network::apply_sandbox_settings(&config, &mut ours_config)?;
        if let Some(sysctls) = config.linux.as_ref().map(|l| &l.sysctls) {
            ours_config.sysctls = sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        if !config.log_directory.is_empty() {
            tokio::fs::create_dir_all(&config.log_directory).await?;
        }
        self.runtime.create(ours_config).await?;
        if let Err(e) = self.runtime.start(&id).await {
            let _ = self.runtime.delete_with(&id, true).await;
            return Err(e.into());
        }
        Ok(id)
    }

    /// The sandbox image, pulled when missing.
    async fn sandbox_image(&self) -> CriResult<String> {
        let image = &self.config.sandbox_image;
        if self.find_image(image).await?.is_none() {
            self.pull(image, None).await?;
        }
        Ok(image.clone())
    }

    /// StopPodSandbox: its containers are killed, then its pause process.
    /// A sandbox that is gone or stopped already is fine.
    pub(crate) async fn stop_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let sandbox = match self.sandbox(id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        for container in self.containers_of(sandbox.id()).await? {
            if container.status.is_active() {
                ignore_gone(
                    self.runtime
                        .stop_with_timeout(&container.id, Duration::ZERO)
                        .await,
                )?;
            }
        }
        if sandbox.info.status.is_active() {
            ignore_gone(
                self.runtime
                    .stop_with_timeout(sandbox.id(), SANDBOX_STOP_TIMEOUT)
                    .await,
            )?;
        }
        Ok(())
    }

    /// RemovePodSandbox: its containers and itself, running or not.
    pub(crate) async fn remove_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let sandbox = match self.sandbox(id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        for container in self.containers_of(sandbox.id()).await? {
            ignore_gone(self.runtime.delete_with(&container.id, true).await)?;
        }
        ignore_gone(self.runtime.delete_with(sandbox.id(), true).await)?;
        Ok(())
    }

    /// PodSandboxStatus.
    pub(crate) async fn pod_sandbox_status(
        &self,
        id: &str,
    ) -> CriResult<proto::PodSandboxStatusResponse> {
        let sandbox = self.sandbox(id).await?;
        let namespaces = sandbox.namespaces();
        let status = proto::PodSandboxStatus {
            id: sandbox.info.id.clone(),
            metadata: sandbox.config.metadata.clone(),
            state: sandbox.state() as i32,
            created_at: meta::nanos(sandbox.info.created_at),
            network: super::network::pod_network_status(&sandbox),
            linux: Some(proto::LinuxPodSandboxStatus {
                namespaces: Some(proto::Namespace {
                    options: Some(namespaces),
                }),
            }),
            labels: sandbox.config.labels.clone(),
            annotations: sandbox.config.annotations.clone(),
            runtime_handler: String::new(),
        };
        Ok(proto::PodSandboxStatusResponse {
            status: Some(status),
            info: HashMap::new(),
            containers_statuses: Vec::new(),
            timestamp: meta::nanos(Some(std::time::SystemTime::now())),
        })
    }

    /// ListPodSandbox with its filter.
    pub(crate) async fn list_pod_sandbox(
        &self,
        filter: Option<proto::PodSandboxFilter>,
    ) -> CriResult<Vec<proto::PodSandbox>> {
        let filter = filter.unwrap_or_default();
        Ok(self
            .list_kind(KIND_SANDBOX)
            .await?
            .into_iter()
            .filter_map(Sandbox::from_info)
            .filter(|s| filter.id.is_empty() || meta::id_matches(&filter.id, s.id()))
            .filter(|s| {
                filter
                    .state
                    .is_none_or(|want| want.state == s.state() as i32)
            })
            .filter(|s| meta::selects(&filter.label_selector, &s.config.labels))
            .map(|s| s.to_cri())
            .collect())
    }

    /// The containers of a pod, as crun-shimd holds them.
    pub(crate) async fn containers_of(&self, sandbox_id: &str) -> CriResult<Vec<ContainerInfo>> {
        let filter = ListFilter {
            labels: [
                (KIND_LABEL.to_string(), meta::KIND_CONTAINER.to_string()),
                (meta::SANDBOX_LABEL.to_string(), sandbox_id.to_string()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        Ok(self.runtime.list_with(filter).await?)
    }
}

/// `result`, with "it is gone already" as success.
pub(crate) fn ignore_gone(result: crate::Result<()>) -> CriResult<()> {
    match result {
        Ok(()) | Err(Error::NotFound(_)) => Ok(()),
        // Stopping a container that is not running.
        Err(Error::FailedPrecondition(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The CRI state of a container's status.
pub(crate) fn container_state(status: ContainerStatus) -> proto::ContainerState {
    match status {
        ContainerStatus::Created => proto::ContainerState::ContainerCreated,
        ContainerStatus::Running | ContainerStatus::Paused => {
            proto::ContainerState::ContainerRunning
        }
        ContainerStatus::Stopped => proto::ContainerState::ContainerExited,
        ContainerStatus::Unknown => proto::ContainerState::ContainerUnknown,
    }
}
