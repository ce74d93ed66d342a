//! Containers of pods: crun-shimd containers made from the CRI config,
//! joining their sandbox's namespaces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Cri;
use super::error::{CriError, CriResult};
use super::meta::{self, KIND_CONTAINER, KIND_LABEL, NAME_LABEL, SANDBOX_LABEL};
use super::pods::{Sandbox, container_state, ignore_gone};
use super::proto;
use crate::{
    ContainerConfig, ContainerInfo, ExecOptions, ImageInfo, Mount, NamespaceSource, ResourceLimits,
    RootSource, SeccompProfile,
};

/// Label: the id of the container's image.
const IMAGE_ID_LABEL: &str = "io.crun-shim.cri.image-id";

/// How long ContainerStatus waits for the log of an exited container to be
/// written out.
const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// A container as crun-shimd holds it, with its CRI config.
pub(crate) struct Container {
    pub(crate) info: ContainerInfo,
    pub(crate) config: proto::ContainerConfig,
}

impl Container {
    /// The container of `info`, when it is a CRI container.
    pub(crate) fn from_info(info: ContainerInfo) -> Option<Container> {
        if meta::kind(&info) != Some(KIND_CONTAINER) {
            return None;
        }
        let config = meta::decode(&info)?;
        Some(Container { info, config })
    }

    /// The id of its pod sandbox.
    pub(crate) fn sandbox_id(&self) -> &str {
        self.info
            .config
            .labels
            .get(SANDBOX_LABEL)
            .map_or("", String::as_str)
    }

    fn image_id(&self) -> String {
        self.info
            .config
            .labels
            .get(IMAGE_ID_LABEL)
            .cloned()
            .unwrap_or_default()
    }

    /// Where its log goes, if anywhere.
    pub(crate) fn log_path(&self) -> Option<PathBuf> {
        self.info
            .config
            .annotations
            .get(LOG_PATH_ANNOTATION)
            .map(PathBuf::from)
    }

    pub(crate) fn attributes(&self) -> proto::ContainerAttributes {
        proto::ContainerAttributes {
            id: self.info.id.clone(),
            metadata: self.config.metadata.clone(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
        }
    }

    fn to_cri(&self) -> proto::Container {
        proto::Container {
            id: self.info.id.clone(),
            pod_sandbox_id: self.sandbox_id().to_string(),
            metadata: self.config.metadata.clone(),
            image: self.config.image.clone(),
            image_ref: self.image_id(),
            state: container_state(self.info.status) as i32,
            created_at: meta::nanos(self.info.created_at),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            image_id: self.image_id(),
        }
    }

    fn status(&self) -> proto::ContainerStatus {
        let exit = self
            .info
            .last_exit
            .clone()
            .filter(|_| self.info.status == crate::ContainerStatus::Stopped);
        let (reason, exit_code, finished_at) = match &exit {
            Some(e) if e.oom_killed => ("OOMKilled", e.exit_code, e.finished_at),
            Some(e) if e.exit_code == 0 => ("Completed", 0, e.finished_at),
            Some(e) => ("Error", e.exit_code, e.finished_at),
            None => ("", 0, None),
        };
        let linux = self.config.linux.clone().unwrap_or_default();
        let security = linux.security_context.unwrap_or_default();
        proto::ContainerStatus {
            id: self.info.id.clone(),
            metadata: self.config.metadata.clone(),
            state: container_state(self.info.status) as i32,
            created_at: meta::nanos(self.info.created_at),
            started_at: meta::nanos(self.info.started_at),
            finished_at: meta::nanos(finished_at),
            exit_code,
            image: self.config.image.clone(),
            image_ref: self.image_id(),
            reason: reason.into(),
            message: String::new(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            mounts: self.config.mounts.clone(),
            log_path: self
                .log_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            resources: Some(proto::ContainerResources {
                linux: linux.resources,
                windows: None,
            }),
            image_id: self.image_id(),
            user: Some(proto::ContainerUser {
                linux: Some(proto::LinuxContainerUser {
                    uid: security.run_as_user.map_or(0, |u| u.value),
                    gid: security.run_as_group.map_or(0, |g| g.value),
                    supplemental_groups: security.supplemental_groups.clone(),
                }),
            }),
            stop_signal: self.config.stop_signal,
        }
    }
}

/// Annotation: the container's log file (`log_directory/log_path`).
const LOG_PATH_ANNOTATION: &str = "io.crun-shim.cri.log-path";

impl Cri {
    /// The container `id` names.
    pub(crate) async fn container(&self, id: &str) -> CriResult<Container> {
        let info = self.find(KIND_CONTAINER, id).await?;
        Container::from_info(info)
            .ok_or_else(|| CriError::NotFound(format!("the CRI config of container {id:?}")))
    }

    /// A CRI container that runs (FailedPrecondition otherwise): what
    /// Exec, Attach and ReopenContainerLog need.
    pub(crate) async fn running_container(&self, id: &str) -> CriResult<Container> {
        let container = self.container(id).await?;
        if !container.info.status.is_active() {
            return Err(CriError::FailedPrecondition(format!(
                "container {} is not running",
                container.info.id
            )));
        }
        Ok(container)
    }

    /// CreateContainer: made in its pod, not started.
    pub(crate) async fn create_container(
        &self,
        sandbox_id: &str,
        config: proto::ContainerConfig,
    ) -> CriResult<String> {
        let sandbox = self.sandbox(sandbox_id).await?;
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CriError::InvalidArgument("the container has no name".into()))?;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| CriError::InvalidArgument("the container has no image".into()))?;
        let image = self
            .find_image(&image_name)
            .await?
            .ok_or_else(|| CriError::NotFound(format!("image {image_name:?}")))?;
        let id = meta::new_id()?;
        let ours = build(&id, &name, &sandbox, &config, &image)?;
        for mount in &ours.mounts {
            // As Docker and containerd do: a missing bind source is made.
            if mount.kind == "bind" && !Path::new(&mount.source).exists() {
                tokio::fs::create_dir_all(&mount.source).await?;
            }
        }
        self.runtime.create(ours).await?;
        Ok(id)
    }

    /// StartContainer, and its log writer.
    pub(crate) async fn start_container(&self, id: &str) -> CriResult<()> {
        let container = self.container(id).await?;
        self.runtime.start(&container.info.id).await?;
        if let Some(path) = container.log_path() {
            self.logs
                .start(self.runtime.clone(), &container.info.id, path, None)
                .await?;
        }
        Ok(())
    }

    /// StopContainer with a grace period in seconds (0: kill at once).
    pub(crate) async fn stop_container(&self, id: &str, timeout: i64) -> CriResult<()> {
        let container = match self.container(id).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if !container.info.status.is_active() {
            return Ok(());
        }
        let grace = Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
        ignore_gone(
            self.runtime
                .stop_with_timeout(&container.info.id, grace)
                .await,
        )
    }

    /// RemoveContainer, running or not.
    pub(crate) async fn remove_container(&self, id: &str) -> CriResult<()> {
        let container = match self.container(id).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        ignore_gone(self.runtime.delete_with(&container.info.id, true).await)
    }

    /// ListContainers with its filter.
    pub(crate) async fn list_containers(
        &self,
        filter: Option<proto::ContainerFilter>,
    ) -> CriResult<Vec<proto::Container>> {
        let filter = filter.unwrap_or_default();
        Ok(self
            .filtered_containers(&filter.id, &filter.pod_sandbox_id, &filter.label_selector)
            .await?
            .into_iter()
            .map(|c| c.to_cri())
            .filter(|c| filter.state.is_none_or(|want| want.state == c.state))
            .collect())
    }

    /// The CRI containers matching an id (prefix), a pod and labels.
    pub(crate) async fn filtered_containers(
        &self,
        id: &str,
        sandbox_id: &str,
        selector: &HashMap<String, String>,
    ) -> CriResult<Vec<Container>> {
        Ok(self
            .list_kind(KIND_CONTAINER)
            .await?
            .into_iter()
            .filter_map(Container::from_info)
            .filter(|c| id.is_empty() || meta::id_matches(id, &c.info.id))
            .filter(|c| sandbox_id.is_empty() || meta::id_matches(sandbox_id, c.sandbox_id()))
            .filter(|c| meta::selects(selector, &c.config.labels))
            .collect())
    }

    /// ContainerStatus; an exited container's log is complete first.
    pub(crate) async fn container_status(
        &self,
        id: &str,
    ) -> CriResult<proto::ContainerStatusResponse> {
        let mut container = self.container(id).await?;
        if container.info.status == crate::ContainerStatus::Stopped {
            self.logs.flushed(&container.info.id, LOG_FLUSH_LIMIT).await;
            container = self.container(&container.info.id).await?;
        }
        Ok(proto::ContainerStatusResponse {
            status: Some(container.status()),
            info: HashMap::new(),
        })
    }

    /// UpdateContainerResources.
    pub(crate) async fn update_container_resources(
        &self,
        id: &str,
        resources: Option<proto::LinuxContainerResources>,
    ) -> CriResult<()> {
        let container = self.container(id).await?;
        let limits = resources.as_ref().map(limits).unwrap_or_default();
        self.runtime.update(&container.info.id, limits).await?;
        Ok(())
    }

    /// ExecSync: the command to completion, killed at `timeout` seconds
    /// (0: none), which is then an error.
    pub(crate) async fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: i64,
    ) -> CriResult<proto::ExecSyncResponse> {
        if command.is_empty() {
            return Err(CriError::InvalidArgument("no command given".into()));
        }
        let container = self.container(id).await?;
        let timeout = u64::try_from(timeout)
            .ok()
            .filter(|&t| t > 0)
            .map(Duration::from_secs);
        let result = self
            .runtime
            .exec_with(
                &container.info.id,
                ExecOptions {
                    timeout,
                    ..ExecOptions::new(command)
                },
            )
            .await?;
        if result.timed_out {
            return Err(CriError::DeadlineExceeded(format!(
                "the command timed out after {}s",
                timeout.unwrap_or_default().as_secs()
            )));
        }
        Ok(proto::ExecSyncResponse {
            stdout: result.stdout.into_bytes(),
            stderr: result.stderr.into_bytes(),
            exit_code: result.exit_code,
        })
    }

    /// ReopenContainerLog: the writer of a running container reopens its
    /// file.
    pub(crate) async fn reopen_container_log(&self, id: &str) -> CriResult<()> {
        let container = self.running_container(id).await?;
        match self.logs.reopen(&container.info.id).await {
            Some(result) => Ok(result?),
            None => Err(CriError::FailedPrecondition(format!(
                "container {} has no log file",
                container.info.id
            ))),
        }
    }

    /// Resumes the log writers of the running containers (after a restart
    /// of this server).
    pub(crate) async fn resume_logs(&self) -> CriResult<()> {
        for container in self.filtered_containers("", "", &HashMap::new()).await? {
            if container.info.started_at.is_none() {
                continue;
            }
            if let Some(path) = container.log_path() {
                if let Err(e) = self
                    .logs
                    .resume(self.runtime.clone(), &container.info.id, path.clone())
                    .await
                {
                    tracing::warn!(container = %container.info.id, path = %path.display(), "resuming its log: {e}");
                }
            }
        }
        Ok(())
    }
}

/// Our container config for CRI container `config` in `sandbox`.
fn build(
    id: &str,
    name: &str,
    sandbox: &Sandbox,
    config: &proto::ContainerConfig,
    image: &ImageInfo,
) -> CriResult<ContainerConfig> {
    if !config.devices.is_empty() || !config.cdi_devices.is_empty() {
        return Err(CriError::InvalidArgument(
            "devices are not supported by this runtime yet".into(),
        ));
    }
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.unwrap_or_default();
    let namespaces = security.namespace_options.clone().unwrap_or_default();
    let sandbox_id = sandbox.id().to_string();

    if security.run_as_group.is_some()
        && security.run_as_user.is_none()
        && security.run_as_username.is_empty()
    {
        return Err(CriError::InvalidArgument(
            "run_as_group needs run_as_user or run_as_username".into(),
        ));
    }
    let user = match (&security.run_as_user, security.run_as_username.as_str()) {
        (Some(uid), _) => Some(match &security.run_as_group {
            Some(gid) => format!("{}:{}", uid.value, gid.value),
            None => uid.value.to_string(),
        }),
        (None, "") => None,
        (None, name) => Some(match &security.run_as_group {
            Some(gid) => format!("{name}:{}", gid.value),
            None => name.to_string(),
        }),
    };
    let additional_gids = security
        .supplemental_groups
        .iter()
        .map(|&g| {
            u32::try_from(g)
                .map_err(|_| CriError::InvalidArgument(format!("supplemental group {g}")))
        })
        .collect::<CriResult<Vec<u32>>>()?;

    let join = |mode: proto::NamespaceMode, pod: NamespaceSource| match mode {
        proto::NamespaceMode::Pod => pod,
        proto::NamespaceMode::Container => NamespaceSource::Private,
        proto::NamespaceMode::Node => NamespaceSource::Host,
        proto::NamespaceMode::Target => NamespaceSource::Container(namespaces.target_id.clone()),
    };
    let pid = join(
        namespaces.pid(),
        NamespaceSource::Container(sandbox_id.clone()),
    );
    let ipc = join(
        namespaces.ipc(),
        NamespaceSource::Container(sandbox_id.clone()),
    );
    let uts = if sandbox.host_network() {
        NamespaceSource::Host
    } else {
        NamespaceSource::Container(sandbox_id.clone())
    };

    let (cap_add, cap_drop) = capabilities(&security);
    let seccomp = if security.privileged {
        SeccompProfile::Unconfined
    } else {
        seccomp(&security)?
    };

    let mut labels = meta::labels(
        &config.labels,
        &[
            (KIND_LABEL, KIND_CONTAINER),
            (SANDBOX_LABEL, &sandbox_id),
            (NAME_LABEL, name),
            (IMAGE_ID_LABEL, &image.id),
        ],
    );
    labels.retain(|_, v| v.len() <= 4096);
    let mut annotations: std::collections::BTreeMap<String, String> = config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(meta::CONFIG_ANNOTATION.into(), meta::encode(config));
    if !config.log_path.is_empty() && !sandbox.config.log_directory.is_empty() {
        let path = Path::new(&sandbox.config.log_directory).join(&config.log_path);
        annotations.insert(LOG_PATH_ANNOTATION.into(), path.display().to_string());
    }

    let mounts = config
        .mounts
        .iter()
        .map(mount)
        .collect::<CriResult<Vec<Mount>>>()?;

    Ok(ContainerConfig {
        id: id.to_string(),
        root: RootSource::Image(image.id.clone()),
        command: config.command.clone(),
        args: config.args.clone(),
        env: config
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value)))
            .collect(),
        working_dir: config.working_dir.clone(),
        user,
        additional_gids,
        hostname: None,
        mounts,
        network: super::network::container_network(sandbox),
        resources: linux.resources.as_ref().map(limits).unwrap_or_default(),
        labels,
        terminal: config.tty,
        // Kept open for Attach; `stdin_once` is the attach's business.
        open_stdin: config.stdin,
        read_only_rootfs: security.readonly_rootfs,
        cap_add,
        cap_drop,
        stop_signal: stop_signal(config.stop_signal()),
        annotations,
        seccomp,
        no_new_privileges: Some(security.no_new_privs),
        ipc,
        uts,
        pid,
        masked_paths: paths(security.privileged, &security.masked_paths),
        readonly_paths: paths(security.privileged, &security.readonly_paths),
        ..Default::default()
    })
}

/// The capabilities CRI containers get unless they say otherwise:
/// containerd's and CRI-O's default set (Docker's), which images such as
/// nginx rely on (chown, setuid and setgid to drop to their user).
const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capabilities to add to and drop from the runtime's base set: the
/// CRI defaults less those dropped, plus those added; everything the
/// runtime holds when privileged.
fn capabilities(security: &proto::LinuxContainerSecurityContext) -> (Vec<String>, Vec<String>) {
    if security.privileged {
        return (vec!["ALL".into()], Vec::new());
    }
    let asked = security.capabilities.clone().unwrap_or_default();
    let normal = |c: &String| {
        let upper = c.to_ascii_uppercase();
        if upper == "ALL" || upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let drop: Vec<String> = asked.drop_capabilities.iter().map(normal).collect();
    let add: Vec<String> = asked.add_capabilities.iter().map(normal).collect();
    if drop.iter().any(|c| c == "ALL") {
        return (add, vec!["ALL".into()]);
    }
    let mut cap_add: Vec<String> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !drop.contains(c))
        .collect();
    cap_add.extend(add);
    (cap_add, drop)
}

/// Masked or read-only paths: none when privileged, the runtime's defaults
/// when the CRI gives none, else those given.
fn paths(privileged: bool, given: &[String]) -> Option<Vec<String>> {
    if privileged {
        Some(Vec::new())
    } else if given.is_empty() {
        None
    } else {
        Some(given.to_vec())
    }
}

/// A CRI mount as ours: a bind mount with its propagation.
fn mount(m: &proto::Mount) -> CriResult<Mount> {
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(CriError::Unimplemented(
            "image volumes are not supported by this runtime yet".into(),
        ));
    }
    if m.container_path.is_empty() || m.host_path.is_empty() {
        return Err(CriError::InvalidArgument(
            "a mount needs a container path and a host path".into(),
        ));
    }
    let propagation = match m.propagation() {
        proto::MountPropagation::PropagationPrivate => "rprivate",
        proto::MountPropagation::PropagationHostToContainer => "rslave",
        proto::MountPropagation::PropagationBidirectional => "rshared",
    };
    Ok(Mount {
        destination: m.container_path.clone(),
        source: m.host_path.clone(),
        kind: "bind".into(),
        options: vec!["rbind".into(), propagation.into()],
        read_only: m.readonly,
    })
}

/// The seccomp profile a security context asks for. Unset is unconfined,
/// as for every CRI runtime (the kubelet sets RuntimeDefault explicitly).
fn seccomp(security: &proto::LinuxContainerSecurityContext) -> CriResult<SeccompProfile> {
    let localhost = |path: &str| -> CriResult<SeccompProfile> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| CriError::InvalidArgument(format!("seccomp profile {path:?}: {e}")))?;
        Ok(SeccompProfile::Custom(json))
    };
    if let Some(profile) = &security.seccomp {
        return match profile.profile_type() {
            proto::security_profile::ProfileType::RuntimeDefault => Ok(SeccompProfile::Default),
            proto::security_profile::ProfileType::Unconfined => Ok(SeccompProfile::Unconfined),
            proto::security_profile::ProfileType::Localhost => localhost(&profile.localhost_ref),
        };
    }
    #[allow(deprecated)]
    let path = security.seccomp_profile_path.as_str();
    match path {
        "" | "unconfined" => Ok(SeccompProfile::Unconfined),
        "runtime/default" | "docker/default" => Ok(SeccompProfile::Default),
        other => match other.strip_prefix("localhost/") {
            Some(file) => localhost(file),
            None => Err(CriError::InvalidArgument(format!(
                "seccomp profile {other:?}: expected runtime/default, unconfined or localhost/PATH"
            ))),
        },
    }
}

/// A CRI stop signal by name; `None` for the runtime's default.
fn stop_signal(signal: proto::Signal) -> Option<String> {
    match signal {
        proto::Signal::RuntimeDefault => None,
        other => other
            .as_str_name()
            .strip_prefix("SIGNAL_")
            .map(str::to_string),
    }
}

/// The limits set in CRI resources (0 and empty are unset).
fn limits(r: &proto::LinuxContainerResources) -> ResourceLimits {
    let positive = |v: i64| u64::try_from(v).ok().filter(|&v| v > 0);
    ResourceLimits {
        memory: positive(r.memory_limit_in_bytes),
        memory_swap: (r.memory_swap_limit_in_bytes != 0).then_some(r.memory_swap_limit_in_bytes),
        cpu_shares: positive(r.cpu_shares),
        cpu_quota: (r.cpu_quota != 0).then_some(r.cpu_quota),
        cpu_period: positive(r.cpu_period),
        cpuset_cpus: (!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_limits_and_mounts_translate() {
        assert_eq!(stop_signal(proto::Signal::RuntimeDefault), None);
        assert_eq!(
            stop_signal(proto::Signal::Sigusr1).as_deref(),
            Some("SIGUSR1")
        );
        let l = limits(&proto::LinuxContainerResources {
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        });
        assert_eq!(
            (l.cpu_quota, l.cpu_period, l.memory),
            (Some(50_000), Some(100_000), Some(64 << 20))
        );
        assert_eq!(l.cpu_shares, None);
        let m = mount(&proto::Mount {
            container_path: "/data".into(),
            host_path: "/srv/data".into(),
            propagation: proto::MountPropagation::PropagationBidirectional as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(m.options, vec!["rbind", "rshared"]);
        assert!(mount(&proto::Mount::default()).is_err());
    }

    #[test]
    fn seccomp_profiles_follow_the_cri() {
        let ctx = |profile: Option<proto::SecurityProfile>| proto::LinuxContainerSecurityContext {
            seccomp: profile,
            ..Default::default()
        };
        assert_eq!(seccomp(&ctx(None)).unwrap(), SeccompProfile::Unconfined);
        let default = proto::SecurityProfile {
            profile_type: proto::security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        };
        assert_eq!(
            seccomp(&ctx(Some(default))).unwrap(),
            SeccompProfile::Default
        );
        let missing = proto::SecurityProfile {
            profile_type: proto::security_profile::ProfileType::Localhost as i32,
            localhost_ref: "/nonexistent/profile.json".into(),
        };
        assert!(seccomp(&ctx(Some(missing))).is_err());
    }
}
