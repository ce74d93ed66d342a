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
    /// The seccomp filter of its processes.
    #[serde(default)]
    pub seccomp: Seccomp,
    /// `no_new_privileges` of its processes; `None`: set (crun's default).
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
}

/// The seccomp filter of a container's processes (see `spec::seccomp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// The default profile, as Docker's.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile as JSON: OCI's `linux.seccomp` object or a Docker
    /// `seccomp.json`.
    Custom(String),
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

/// The health of a container as decided by its health check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No health check.
    #[default]
    None,
    /// Within the start period, no check passed yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks failed in a row.
    Unhealthy,
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A container was created.
    Create,
    /// A container was started (also after a policy restart).
    Start,
    /// An exec process was registered.
    ExecAdded,
    /// An exec process started running.
    ExecStarted,
    /// A container's init (or an exec process, `exec_id` set) exited.
    Exit,
    /// The OOM killer killed a process of the container.
    Oom,
    /// A container was paused.
    Pause,
    /// A container was resumed.
    Resume,
    /// A container was deleted.
    Delete,
    /// A container's health status changed.
    HealthStatus,
    /// A container is being restarted under its restart policy.
    Restart,
}

/// Details some kinds of event carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventDetails {
    /// How a process ended (exit events).
    Exit(ExitStatus),
    /// A health status change.
    Health {
        /// The status before.
        previous: HealthStatus,
        /// The status now.
        current: HealthStatus,
        /// Consecutive failures at the change.
        failing_streak: u32,
    },
    /// A policy restart.
    Restart {
        /// Restarts so far, this one included.
        restart_count: u32,
        /// The wait before this restart.
        backoff: Duration,
    },
}

/// Something that happened to a container, numbered by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The agent's sequence number: 1 for its first event, one more for
    /// each after, across restarts.
    pub sequence: u64,
    /// When it happened.
    pub time: SystemTime,
    /// What happened.
    pub kind: EventKind,
    /// The container.
    pub container_id: String,
    /// The exec process, for exec events and an exec's exit.
    pub exec_id: Option<String>,
    /// The container's labels at the time.
    pub labels: BTreeMap<String, String>,
    /// Details of some kinds.
    pub details: Option<EventDetails>,
}

/// Which events a subscriber wants; empty parts match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these containers.
    pub container_ids: Vec<String>,
    /// Only these kinds.
    pub kinds: Vec<EventKind>,
    /// Only containers with all these labels (an empty value matches any).
    pub labels: BTreeMap<String, String>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        (self.container_ids.is_empty() || self.container_ids.contains(&event.container_id))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.labels.iter().all(|(k, v)| {
                event
                    .labels
                    .get(k)
                    .is_some_and(|have| v.is_empty() || have == v)
            })
    }
}

/// CPU usage, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMetrics {
    /// Total CPU time in nanoseconds.
    pub usage_total_ns: u64,
    /// User-mode CPU time in nanoseconds.
    pub usage_user_ns: u64,
    /// Kernel-mode CPU time in nanoseconds.
    pub usage_system_ns: u64,
    /// Quota enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    pub throttled_time_ns: u64,
}

/// Memory usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryMetrics {
    /// Usage in bytes, page cache included.
    pub usage_bytes: u64,
    /// Limit in bytes; 0 when unlimited.
    pub limit_bytes: u64,
    /// Page cache (file-backed) in bytes.
    pub cache_bytes: u64,
    /// Anonymous memory (RSS) in bytes.
    pub rss_bytes: u64,
    /// Highest usage seen, in bytes.
    pub max_usage_bytes: u64,
    /// OOM kills in the cgroup.
    pub oom_kill_count: u64,
    /// Swap in use, in bytes.
    pub swap_bytes: u64,
}

/// Traffic of one network interface inside the container's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceMetrics {
    /// The interface's name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// Block I/O, all devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioMetrics {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// Process counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsMetrics {
    /// Tasks in the cgroup now.
    pub current: u64,
    /// The limit; 0 when unlimited.
    pub limit: u64,
}

/// A snapshot of a container's resource usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// The container.
    pub container_id: String,
    /// When it was taken.
    pub time: SystemTime,
    /// CPU.
    pub cpu: CpuMetrics,
    /// Memory.
    pub memory: MemoryMetrics,
    /// Network, per interface.
    pub network: Vec<InterfaceMetrics>,
    /// Block I/O.
    pub blkio: BlkioMetrics,
    /// Processes.
    pub pids: PidsMetrics,
}

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// When it started.
    pub started_at: SystemTime,
    /// When it ended.
    pub finished_at: SystemTime,
    /// Its exit code (128+N when killed by signal N).
    pub exit_code: i32,
    /// The start of its output (stdout then stderr), bounded.
    pub output: Vec<u8>,
    /// Killed at its timeout.
    pub timed_out: bool,
}

/// A container's health-check state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// The current status.
    pub status: HealthStatus,
    /// Consecutive failed checks.
    pub failing_streak: u32,
    /// The most recent results, oldest first.
    pub recent: Vec<HealthResult>,
}

/// The kinds of leftover no container owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    /// libcrun state without an agent record.
    RuntimeState,
    /// A record whose processes vanished without a recorded exit.
    MissingProcess,
    /// A cgroup under the agent's cgroup parent without a container.
    Cgroup,
    /// A mount under the agent's state root without a container.
    Mount,
    /// A container directory without a valid record.
    StateDirectory,
}

/// Something left over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// What it is.
    pub kind: OrphanKind,
    /// The container id it belongs (or belonged) to.
    pub container_id: String,
    /// Its path, when it has one.
    pub path: Option<std::path::PathBuf>,
    /// A human-readable explanation.
    pub detail: String,
}

/// The longest label or annotation key, in bytes.
pub const MAX_METADATA_KEY: usize = 1024;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 4096;
/// The most bytes all of a container's label keys and values take.
pub const MAX_LABELS_TOTAL: usize = 64 << 10;
/// The most bytes all of a container's annotation keys and values take
/// (Kubernetes' own bound on a pod's annotations, which CRI passes on).
pub const MAX_ANNOTATIONS_TOTAL: usize = 256 << 10;

impl ContainerConfig {
    /// Checks the bounds of the labels and annotations: every container is
    /// in every List answer and its labels in each of its events, so they
    /// must stay small (see the constants above). `InvalidArgument` beyond.
    pub fn check_metadata(&self) -> crate::error::Result<()> {
        check_map(
            "label",
            &self.labels,
            Some(MAX_LABEL_VALUE),
            MAX_LABELS_TOTAL,
        )?;
        check_map("annotation", &self.annotations, None, MAX_ANNOTATIONS_TOTAL)
    }
}

/// Checks the keys, values and total size of a label or annotation map.
fn check_map(
    what: &str,
    map: &BTreeMap<String, String>,
    max_value: Option<usize>,
    max_total: usize,
) -> crate::error::Result<()> {
    use crate::error::Error;
    let mut total = 0;
    for (key, value) in map {
        let shown: String = key.chars().take(64).collect();
        if key.is_empty() || key.len() > MAX_METADATA_KEY {
            return Err(Error::InvalidArgument(format!(
                "{what} key {shown:?}: 1 to {MAX_METADATA_KEY} bytes ({} given)",
                key.len()
            )));
        }
        if let Some(max) = max_value
            && value.len() > max
        {
            return Err(Error::InvalidArgument(format!(
                "{what} {shown:?}: the value is {} bytes, at most {max}",
                value.len()
            )));
        }
        total += key.len() + value.len();
    }
    if total > max_total {
        return Err(Error::InvalidArgument(format!(
            "{what}s take {total} bytes, at most {max_total}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod metadata_tests {
    use super::*;
    use crate::error::Error;

    fn with(labels: &[(&str, usize)], annotations: &[(&str, usize)]) -> ContainerConfig {
        let map = |pairs: &[(&str, usize)]| {
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), "v".repeat(*n)))
                .collect()
        };
        ContainerConfig {
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn labels_and_annotations_are_bounded() {
        let ok = |c: ContainerConfig| c.check_metadata().unwrap();
        let bad = |c: ContainerConfig| {
            assert!(matches!(c.check_metadata(), Err(Error::InvalidArgument(_))));
        };
        ok(with(&[("app", MAX_LABEL_VALUE)], &[("big", 200 << 10)]));
        bad(with(&[("app", MAX_LABEL_VALUE + 1)], &[]));
        bad(with(&[("", 1)], &[]));
        bad(with(&[], &[(&"k".repeat(MAX_METADATA_KEY + 1), 1)]));
        let many: Vec<(String, usize)> = (0..20).map(|i| (format!("l{i}"), 4000)).collect();
        let many: Vec<(&str, usize)> = many.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        bad(with(&many, &[]));
        bad(with(&[], &[("a", 200 << 10), ("b", 100 << 10)]));
    }
}
