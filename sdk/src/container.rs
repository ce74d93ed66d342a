//! Containers: what they are created from, and what the runtime says
//! about them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::health::{HealthCheck, HealthStatus};
use crate::network::{ContainerNetwork, DnsConfig, HostEntry, NetworkInterface, PortMapping};

/// Where a container's root filesystem comes from: a directory, an image,
/// or mounts (containerd's snapshots).
///
/// ```
/// use libcrun_shim::RootSource;
///
/// let root = RootSource::Image("alpine:3.20".into());
/// assert_eq!(root.to_string(), "alpine:3.20");
/// assert_eq!(RootSource::Rootfs("/srv/rootfs".into()).to_string(), "/srv/rootfs");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootSource {
    /// An absolute path to a root filesystem directory on the agent's
    /// machine, used in place.
    Rootfs(PathBuf),
    /// An image reference already pulled there
    /// ([`ImageStore::pull`](crate::ImageStore::pull)); the container gets
    /// its own writable layer over it.
    Image(String),
    /// Mounts the agent makes, in order, on a directory of its own before
    /// each run and unmounts at Delete (containerd's snapshot: an overlay,
    /// or a bind mount of a directory).
    Mounts(Vec<RootfsMount>),
}

/// One mount of a root filesystem given as [`RootSource::Mounts`], as
/// mount(8) takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    /// The filesystem type ("overlay", "bind").
    pub kind: String,
    /// The source (a device, a directory, "overlay").
    pub source: String,
    /// Flags ("ro", "rbind") and filesystem data ("lowerdir=...").
    pub options: Vec<String>,
}

impl Default for RootSource {
    /// An empty rootfs path, which Create refuses: set one.
    fn default() -> RootSource {
        RootSource::Rootfs(PathBuf::new())
    }
}

impl std::fmt::Display for RootSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootSource::Rootfs(path) => write!(f, "{}", path.display()),
            RootSource::Image(reference) => f.write_str(reference),
            RootSource::Mounts(mounts) => {
                let kinds: Vec<&str> = mounts.iter().map(|m| m.kind.as_str()).collect();
                write!(f, "mounts({})", kinds.join(","))
            }
        }
    }
}

/// Everything a container is created from. Empty and `None` fields take
/// the runtime's defaults.
///
/// ```
/// use libcrun_shim::{ContainerConfig, RootSource};
///
/// let config = ContainerConfig {
///     id: "my-container".to_string(),
///     root: RootSource::Rootfs("/path/to/rootfs".into()),
///     command: vec!["sh".to_string()],
///     env: vec!["PATH=/usr/bin:/bin".to_string()],
///     working_dir: "/".to_string(),
///     ..Default::default()
/// };
/// assert!(matches!(config.root, RootSource::Rootfs(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The container's id: 1 to 128 characters of `[A-Za-z0-9_.-]`,
    /// starting with a letter or digit.
    pub id: String,
    /// Where its root filesystem comes from.
    pub root: RootSource,
    /// The program and its leading arguments (Docker's entrypoint). Empty:
    /// the image's entrypoint.
    pub command: Vec<String>,
    /// Arguments appended to `command` (Docker's cmd).
    pub args: Vec<String>,
    /// Environment variables as `KEY=VALUE`.
    pub env: Vec<String>,
    /// Absolute working directory. Empty: the image's, else `/`.
    pub working_dir: String,
    /// `uid`, `uid:gid`, `name` or `name:group`. `None`: the image's, else root.
    pub user: Option<String>,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// The hostname. `None`: the container id.
    pub hostname: Option<String>,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// The network the container joins.
    pub network: NetworkMode,
    /// [`NetworkMode::Bridge`] (and [`NetworkMode::Default`]): the networks
    /// to join, in order; the agent's default network when empty.
    pub networks: Vec<ContainerNetwork>,
    /// Ports published through the first network (`-p`).
    pub ports: Vec<PortMapping>,
    /// DNS settings of its `/etc/resolv.conf`.
    pub dns: DnsConfig,
    /// Static entries of its `/etc/hosts` (`--add-host`).
    pub extra_hosts: Vec<HostEntry>,
    /// Cgroup limits.
    pub resources: ResourceLimits,
    /// User labels, for filters.
    pub labels: BTreeMap<String, String>,
    /// What happens when the command exits.
    pub restart_policy: RestartPolicy,
    /// A health check run inside the container.
    pub health_check: Option<HealthCheck>,
    /// Run the command on a pseudo-terminal (stdout and stderr merged).
    pub terminal: bool,
    /// Mount the root filesystem read-only.
    pub read_only_rootfs: bool,
    /// Process limits (setrlimit).
    pub rlimits: Vec<Rlimit>,
    /// Capabilities added to the default set (`"NET_ADMIN"`, `"ALL"`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from the default set.
    pub cap_drop: Vec<String>,
    /// The signal `stop` sends first. `None`: the image's, else SIGTERM.
    pub stop_signal: Option<String>,
    /// How long `stop` waits before SIGKILL. `None`: 10 s.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Option<Duration>,
    /// Size at which the container's log file is rotated. `None`: 10 MiB.
    pub log_max_size: Option<u64>,
    /// Log files kept, the current one included. `None`: 5.
    pub log_max_files: Option<u32>,
    /// OCI annotations added to the runtime spec.
    pub annotations: BTreeMap<String, String>,
    /// The seccomp filter of the container's processes.
    pub seccomp: SeccompProfile,
    /// Run the processes with no_new_privs (setuid binaries do not raise
    /// privileges). `None`: the runtime's default, on.
    pub no_new_privileges: Option<bool>,
    /// Keep the command's stdin open for [`ContainerRuntime::attach`](crate::ContainerRuntime::attach)
    /// (Docker's `-i`); otherwise it reads /dev/null.
    pub open_stdin: bool,
    /// Where its IPC namespace comes from (a pod's containers share their
    /// sandbox's).
    pub ipc: NamespaceSource,
    /// Where its UTS namespace (hostname) comes from; when not its own,
    /// `hostname` must be `None`.
    pub uts: NamespaceSource,
    /// Where its PID namespace comes from.
    pub pid: NamespaceSource,
    /// Namespaced kernel parameters (`net.ipv4.ip_unprivileged_port_start`).
    pub sysctls: BTreeMap<String, String>,
    /// Paths hidden from it. `None`: the runtime's defaults; empty: none.
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only. `None`: the runtime's defaults; empty: none.
    pub readonly_paths: Option<Vec<String>>,
    /// Deleted by the runtime once it has exited (Docker's `--rm`), even
    /// when nobody waits for it or the agent restarts meanwhile. Not with a
    /// restart policy.
    pub auto_remove: bool,
}

/// Where one of a container's namespaces comes from.
///
/// ```
/// use libcrun_shim::NamespaceSource;
/// let pod = NamespaceSource::Container("sandbox".into());
/// assert_ne!(pod, NamespaceSource::default());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceSource {
    /// A namespace of its own.
    #[default]
    Private,
    /// The runtime's (the agent's machine's) namespace.
    Host,
    /// The namespace of another container, by id, which must be running
    /// when this one is created.
    Container(String),
}

/// The seccomp filter of a container.
///
/// ```
/// use libcrun_shim::SeccompProfile;
/// let profile = SeccompProfile::Custom(r#"{"defaultAction": "SCMP_ACT_LOG"}"#.into());
/// assert_ne!(profile, SeccompProfile::default());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// The default profile (Docker's): calls outside an allowlist fail with
    /// EPERM, and those only a capability makes safe need it.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile as JSON: an OCI `linux.seccomp` object or a Docker/Podman
    /// `seccomp.json`.
    Custom(String),
}

/// A mount added to a container.
///
/// ```
/// let data = libcrun_shim::Mount::bind("/srv/data", "/data", true);
/// assert_eq!(data.kind, "bind");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// A host path for bind mounts, a device or a name otherwise.
    pub source: String,
    /// The filesystem type (`bind`, `tmpfs` ...). Empty: `bind` for an
    /// absolute source.
    #[serde(rename = "type")]
    pub kind: String,
    /// Options as in mount(8).
    pub options: Vec<String>,
    /// Mount read-only.
    pub read_only: bool,
}

impl Mount {
    /// A bind mount of the host path `source` at `destination`.
    ///
    /// ```
    /// let m = libcrun_shim::Mount::bind("/srv", "/srv", false);
    /// assert_eq!(m.options, vec!["rbind".to_string()]);
    /// ```
    pub fn bind(
        source: impl Into<String>,
        destination: impl Into<String>,
        read_only: bool,
    ) -> Mount {
        Mount {
            destination: destination.into(),
            source: source.into(),
            kind: "bind".into(),
            options: vec!["rbind".into()],
            read_only,
        }
    }
}

/// The network a container joins.
///
/// ```
/// use libcrun_shim::NetworkMode;
/// assert_eq!(NetworkMode::default(), NetworkMode::Default);
/// let pod = NetworkMode::Container("sandbox".into());
/// assert_eq!(pod.to_string(), "container:sandbox");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The agent's default: [`NetworkMode::Bridge`] on its default network
    /// (unless the agent is configured otherwise).
    #[default]
    Default,
    /// Its own network namespace with only the loopback interface.
    None,
    /// The agent's network namespace.
    Host,
    /// Its own network namespace on the networks of
    /// [`ContainerConfig::networks`] (the default network when empty): an
    /// address on each, published ports, and the other containers of its
    /// networks known by name.
    Bridge,
    /// The network namespace of another container, by id: its interfaces,
    /// ports, `/etc/hosts` and `/etc/resolv.conf` (a pod's containers join
    /// its sandbox).
    Container(String),
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::Default => f.write_str("default"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Bridge => f.write_str("bridge"),
            NetworkMode::Container(id) => write!(f, "container:{id}"),
        }
    }
}

/// Cgroup limits. `None` means no limit at create, and "unchanged" in
/// [`ContainerRuntime::update`](crate::ContainerRuntime::update).
///
/// ```
/// use libcrun_shim::ResourceLimits;
///
/// let limits = ResourceLimits { memory: Some(256 << 20), pids: Some(64), ..Default::default() }
///     .with_cpus(1.5);
/// assert_eq!((limits.cpu_quota, limits.cpu_period), (Some(150_000), Some(100_000)));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceLimits {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Soft memory limit in bytes.
    pub memory_reservation: Option<u64>,
    /// Memory plus swap limit in bytes; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (2-262144).
    pub cpu_shares: Option<u64>,
    /// CPU time per period in microseconds; -1 for no limit.
    pub cpu_quota: Option<i64>,
    /// The CPU period in microseconds (default 100000).
    pub cpu_period: Option<u64>,
    /// CPUs the container may run on ("0-1", "0,2").
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; -1 for no limit.
    pub pids: Option<i64>,
}

impl ResourceLimits {
    /// Limits the container to `cpus` CPUs' worth of time (a quota over a
    /// 100 ms period), like `docker run --cpus`.
    ///
    /// ```
    /// let limits = libcrun_shim::ResourceLimits::default().with_cpus(0.5);
    /// assert_eq!(limits.cpu_quota, Some(50_000));
    /// ```
    pub fn with_cpus(mut self, cpus: f64) -> ResourceLimits {
        const PERIOD: u64 = 100_000;
        self.cpu_period = Some(PERIOD);
        self.cpu_quota = Some((cpus * PERIOD as f64).round() as i64);
        self
    }
}

/// When the agent restarts a container whose command exited.
///
/// ```
/// use libcrun_shim::RestartPolicy;
/// let policy = RestartPolicy::OnFailure { max_retries: 3 };
/// assert_ne!(policy, RestartPolicy::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// When the exit code is not 0, at most `max_retries` times (0: no limit).
    OnFailure {
        /// The most restarts.
        max_retries: u32,
    },
    /// Always, unless stopped or killed through the API.
    Always,
}

/// A process resource limit.
///
/// ```
/// let nofile = libcrun_shim::Rlimit { kind: "RLIMIT_NOFILE".into(), soft: 1024, hard: 1024 };
/// assert_eq!(nofile.hard, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, `NOFILE` or `nofile`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// The state of a container.
///
/// ```
/// use libcrun_shim::ContainerStatus;
/// assert_eq!(ContainerStatus::Running.to_string(), "running");
/// assert!(ContainerStatus::Paused.is_active());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, waiting for start.
    Created,
    /// Its command runs.
    Running,
    /// Frozen.
    Paused,
    /// Its command exited; the exit status is recorded.
    Stopped,
    /// A state this SDK does not know (a newer server).
    Unknown,
}

impl ContainerStatus {
    /// True while the container's processes exist (running or paused).
    ///
    /// ```
    /// assert!(!libcrun_shim::ContainerStatus::Stopped.is_active());
    /// ```
    pub fn is_active(self) -> bool {
        matches!(self, ContainerStatus::Running | ContainerStatus::Paused)
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Unknown => "unknown",
        })
    }
}

/// How a process ended.
///
/// ```
/// let exit = libcrun_shim::ExitStatus { exit_code: 137, signal: 9, ..Default::default() };
/// assert!(!exit.success());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExitStatus {
    /// The exit code; 128+N when killed by signal N.
    pub exit_code: i32,
    /// The signal that killed it; 0 if it exited on its own.
    pub signal: i32,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it exited.
    #[serde(with = "humantime_serde")]
    pub finished_at: Option<SystemTime>,
    /// The end was not observed (the agent or the monitor was killed
    /// meanwhile): the exit code is 255, or 137 when what was left was
    /// killed.
    pub unknown: bool,
}

impl ExitStatus {
    /// True for exit code 0.
    ///
    /// ```
    /// assert!(libcrun_shim::ExitStatus::default().success());
    /// ```
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// A container as the runtime sees it now.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// let info = runtime.inspect("web").await?;
/// println!("{} is {} (pid {})", info.id, info.status, info.pid);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The id.
    pub id: String,
    /// The agent holding it (set by `crun-shimd`; empty from an agent).
    pub agent: String,
    /// Its status.
    pub status: ContainerStatus,
    /// What it was created from.
    pub config: ContainerConfig,
    /// Host pid of its init process; 0 when stopped.
    pub pid: u32,
    /// When it was created.
    #[serde(with = "humantime_serde")]
    pub created_at: Option<SystemTime>,
    /// When it was last started.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
    /// How its last run ended.
    pub last_exit: Option<ExitStatus>,
    /// Restarts under its restart policy.
    pub restart_count: u32,
    /// Its health.
    pub health_status: HealthStatus,
    /// The OCI bundle directory on the agent's machine.
    pub bundle: String,
    /// The root filesystem on the agent's machine.
    pub rootfs_path: String,
    /// For a container of an image: the image's manifest digest.
    pub image_digest: String,
    /// Exec processes running in it.
    pub exec_ids: Vec<String>,
    /// Its interfaces, one per network.
    pub networks: Vec<NetworkInterface>,
    /// Its published ports, with the host ports picked.
    pub ports: Vec<PortMapping>,
    /// Its network namespace on the agent's machine (empty in host mode).
    pub netns_path: String,
    /// The OCI runtime spec (config.json) as JSON: filled by
    /// [`ContainerRuntime::inspect`](crate::ContainerRuntime::inspect) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci_spec_json: Option<String>,
}
