//! The runtime's own description of containers: what they are created
//! from, their state and how their processes end.
//!
//! These types are independent of gRPC (the server converts to and from
//! the protocol's messages) and are persisted as JSON under the agent's
//! state root.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// An existing directory, used in place.
    Rootfs(PathBuf),
    /// An image reference in the agent's image store.
    Image(String),
}

impl Default for RootSource {
    fn default() -> Self {
        RootSource::Rootfs(PathBuf::new())
    }
}

/// The network a container joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A private network namespace with only loopback, up.
    #[default]
    None,
    /// The agent's network namespace.
    Host,
}

/// A mount added to a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Host path (bind mounts) or device/name.
    pub source: String,
    /// Filesystem type; "bind" when empty and `source` is absolute.
    pub kind: String,
    /// Mount options as in mount(8).
    pub options: Vec<String>,
    /// Mount read-only.
    pub read_only: bool,
}

/// Cgroup resource limits; `None` means unlimited (in an update: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Soft memory limit in bytes.
    pub memory_reservation_bytes: Option<u64>,
    /// Memory plus swap limit in bytes; -1 for unlimited.
    pub memory_swap_limit_bytes: Option<i64>,
    /// Relative CPU weight (v1 shares).
    pub cpu_shares: Option<u64>,
    /// CPU quota per period in microseconds; -1 for none.
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds.
    pub cpu_period_us: Option<u64>,
    /// Allowed CPUs as a cpuset list.
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; -1 for none.
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Applies the limits set in `update` over these.
    pub fn merge(&mut self, update: &Resources) {
        fn set<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        }
        set(&mut self.memory_limit_bytes, &update.memory_limit_bytes);
        set(
            &mut self.memory_reservation_bytes,
            &update.memory_reservation_bytes,
        );
        set(
            &mut self.memory_swap_limit_bytes,
            &update.memory_swap_limit_bytes,
        );
        set(&mut self.cpu_shares, &update.cpu_shares);
        set(&mut self.cpu_quota_us, &update.cpu_quota_us);
        set(&mut self.cpu_period_us, &update.cpu_period_us);
        set(&mut self.cpuset_cpus, &update.cpuset_cpus);
        set(&mut self.pids_limit, &update.pids_limit);
    }
}

/// What to do when a container's command exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart on a non-zero exit code, at most `max_retries` times (0: no
    /// limit).
    OnFailure {
        /// The most restarts.
        max_retries: u32,
    },
    /// Always restart, unless stopped through the API.
    Always,
}

/// A health check run inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The command (argv).
    pub command: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may run.
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
    /// Grace period after start.
    pub start_period: Duration,
}

/// Size-based rotation of a container's log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Size at which the current file is rotated.
    pub max_size_bytes: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_size_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// A process resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The limit's name, normalised to "RLIMIT_NOFILE" form.
    pub kind: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Changes to the default capability set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityChanges {
    /// Capabilities to add ("CAP_X" form, or "ALL").
    pub add: Vec<String>,
    /// Capabilities to drop ("CAP_X" form, or "ALL").
    pub drop: Vec<String>,
}

/// Everything a container is created from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's id.
    pub id: String,
    /// Where the root filesystem comes from.
    pub root: RootSource,
    /// The program and its leading arguments.
    pub command: Vec<String>,
    /// Arguments appended to `command`.
    pub args: Vec<String>,
    /// Environment as KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// User spec ("uid[:gid]" or "name[:group]").
    pub user: Option<String>,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: NetworkMode,
    /// Resource limits.
    pub resources: Resources,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Health check.
    pub health_check: Option<HealthCheck>,
    /// Run on a pseudo-terminal.
    pub terminal: bool,
    /// Log rotation limits.
    pub log: LogConfig,
    /// Read-only root filesystem.
    pub read_only_rootfs: bool,
    /// Process resource limits.
    pub rlimits: Vec<Rlimit>,
    /// Capability changes.
    pub capabilities: CapabilityChanges,
    /// The signal Stop sends first.
    pub stop_signal: Option<String>,
    /// Grace period of Stop before SIGKILL.
    pub stop_timeout: Option<Duration>,
    /// OCI annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, waiting for Start.
    Created,
    /// Its init process runs.
    Running,
    /// Frozen.
    Paused,
    /// Its init process has exited.
    Stopped,
}

impl Status {
    /// The lower-case name ("running").
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code; 128+N when killed by signal N.
    pub exit_code: i32,
    /// The killing signal, 0 if it exited on its own.
    pub signal: i32,
    /// Whether the OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it ended.
    pub finished_at: SystemTime,
}

impl ExitStatus {
    /// The status of a process from its raw `waitpid` status.
    pub fn from_wait_status(status: i32, finished_at: SystemTime) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            ExitStatus {
                exit_code: 128 + signal,
                signal,
                oom_killed: false,
                finished_at,
            }
        } else {
            ExitStatus {
                exit_code: libc::WEXITSTATUS(status),
                signal: 0,
                oom_killed: false,
                finished_at,
            }
        }
    }
}

/// What to run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Extra environment as KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory; the container's when `None`.
    pub working_dir: Option<String>,
    /// User ("uid[:gid]" or "name[:group]"); the container's when `None`.
    pub user: Option<String>,
    /// Run on a pseudo-terminal.
    pub tty: bool,
}
