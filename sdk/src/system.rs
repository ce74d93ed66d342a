//! The runtime itself: versions, agents, leftovers and shutdown.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The version of the server answering.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// let version = runtime.version().await?;
/// println!("{} {} (API {})", version.component, version.version, version.api_version);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Version {
    /// `crun-shimd` or `crun-shim-agent`.
    pub component: String,
    /// Its version.
    pub version: String,
    /// The protocol version (`v1`).
    pub api_version: String,
    /// The git commit it was built from, when known.
    pub git_commit: String,
    /// The libcrun version containers run with (agents only).
    pub libcrun_version: String,
}

/// The state of the runtime: the server and its agents.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// for agent in runtime.info().await?.agents {
///     println!("{}: {:?}, {} containers", agent.name, agent.state, agent.containers);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Info {
    /// `crun-shimd` or `crun-shim-agent`.
    pub component: String,
    /// Its version.
    pub version: String,
    /// The agents (itself, when asked of an agent).
    pub agents: Vec<AgentInfo>,
}

/// One agent and what it says of itself.
///
/// ```
/// let agent = libcrun_shim::AgentInfo::default();
/// assert_eq!(agent.state, libcrun_shim::AgentState::Unknown);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its name (`local` for the daemon's own agent; empty from an agent).
    pub name: String,
    /// Its endpoint.
    pub endpoint: String,
    /// Whether the daemon reaches it.
    pub state: AgentState,
    /// Its version.
    pub version: String,
    /// The libcrun version it runs.
    pub libcrun_version: String,
    /// How its machine mounts cgroups.
    pub cgroup_mode: CgroupMode,
    /// Its kernel release.
    pub kernel_version: String,
    /// CPUs of its machine.
    pub cpus: u32,
    /// Memory of its machine, in bytes.
    pub memory_bytes: u64,
    /// Containers, all states.
    pub containers: u32,
    /// Containers running or paused.
    pub containers_running: u32,
    /// Images in its store.
    pub images: u32,
    /// Its state directory.
    pub root_dir: String,
    /// When it started.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
    /// The last error reaching it (daemon only).
    pub last_error: String,
    /// The sequence of its last event (0 before the first): subscribe
    /// after it to see only what happens from now on.
    pub last_event_sequence: u64,
}

/// Whether the daemon reaches an agent.
///
/// ```
/// assert_eq!(libcrun_shim::AgentState::Ready.to_string(), "ready");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Not known.
    #[default]
    Unknown,
    /// Connected and answering.
    Ready,
    /// Being connected.
    Connecting,
    /// Not reachable.
    Unavailable,
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentState::Unknown => "unknown",
            AgentState::Ready => "ready",
            AgentState::Connecting => "connecting",
            AgentState::Unavailable => "unavailable",
        })
    }
}

/// How a machine mounts cgroups.
///
/// ```
/// assert_eq!(libcrun_shim::CgroupMode::V2.to_string(), "v2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Not known.
    #[default]
    Unknown,
    /// cgroup v1.
    V1,
    /// v1 controllers plus a cgroup2 mount.
    Hybrid,
    /// cgroup v2 (unified).
    V2,
}

impl std::fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupMode::Unknown => "unknown",
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        })
    }
}

/// Something left over that no container owns.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// for orphan in runtime.list_orphaned().await? {
///     println!("{:?} {}: {}", orphan.kind, orphan.container_id, orphan.detail);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// What it is.
    pub kind: OrphanKind,
    /// The container it belongs (or belonged) to, when known.
    pub container_id: String,
    /// Its path, when it has one.
    pub path: String,
    /// A human-readable explanation.
    pub detail: String,
    /// The agent it was found on (set by `crun-shimd`).
    pub agent: String,
}

/// The kinds of leftover.
///
/// ```
/// assert_eq!(libcrun_shim::OrphanKind::Cgroup.to_string(), "cgroup");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    /// libcrun state without a container record.
    RuntimeState,
    /// A record says running but the process is gone.
    MissingProcess,
    /// A cgroup with no container.
    Cgroup,
    /// A mount with no container.
    Mount,
    /// A container directory without a valid record.
    StateDirectory,
    /// A network attachment (namespace, addresses, port rules) whose
    /// container is gone.
    Network,
    /// A kind this SDK does not know.
    Unknown,
}

impl std::fmt::Display for OrphanKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrphanKind::RuntimeState => "runtime_state",
            OrphanKind::MissingProcess => "missing_process",
            OrphanKind::Cgroup => "cgroup",
            OrphanKind::Mount => "mount",
            OrphanKind::StateDirectory => "state_directory",
            OrphanKind::Network => "network",
            OrphanKind::Unknown => "unknown",
        })
    }
}

/// What [`ContainerRuntime::recover`](crate::ContainerRuntime::recover) did.
///
/// ```
/// let report = libcrun_shim::RecoverReport::default();
/// assert!(report.adopted.is_empty() && report.exited.is_empty() && report.orphans.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecoverReport {
    /// Containers found running and adopted.
    pub adopted: Vec<String>,
    /// Containers whose unobserved exit is now recorded.
    pub exited: Vec<String>,
    /// Creates a killed agent left half-made, undone.
    pub undone: Vec<String>,
    /// Containers with `auto_remove` found exited, now deleted.
    pub removed: Vec<String>,
    /// Leftovers found.
    pub orphans: Vec<Orphan>,
}

/// How [`ContainerRuntime::shutdown_with`](crate::ContainerRuntime::shutdown_with)
/// shuts the server down.
///
/// ```
/// let options = libcrun_shim::ShutdownOptions { stop_containers: true, ..Default::default() };
/// assert!(options.timeout.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownOptions {
    /// Stop every running container first (else they keep running).
    pub stop_containers: bool,
    /// How long to wait for them to stop. `None`: 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// On `crun-shimd`: shut down this agent instead of the daemon.
    pub agent: Option<String>,
}
