//! Container events: everything that happens to containers, numbered.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::container::ExitStatus;
use crate::health::HealthStatus;

/// What happened.
///
/// ```
/// use libcrun_shim::ContainerEventType;
/// assert_eq!("exit".parse::<ContainerEventType>(), Ok(ContainerEventType::Exit));
/// assert_eq!(ContainerEventType::HealthStatus.to_string(), "health_status");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerEventType {
    /// A container was created.
    Create,
    /// A container was started (also after a policy restart).
    Start,
    /// An exec process was registered.
    ExecAdded,
    /// An exec process started.
    ExecStarted,
    /// A container's command, or an exec process (`exec_id` set), exited
    /// (Docker's "die").
    #[doc(alias = "Die")]
    Exit,
    /// The OOM killer killed a process in the container.
    Oom,
    /// A container was paused.
    Pause,
    /// A container was resumed.
    Resume,
    /// A container was deleted.
    Delete,
    /// A container's health status changed.
    HealthStatus,
    /// The agent is restarting a container under its restart policy.
    Restart,
    /// A kind this SDK does not know (a newer server).
    Unknown,
}

impl ContainerEventType {
    /// Every known kind, in the protocol's order.
    pub const ALL: [ContainerEventType; 11] = [
        ContainerEventType::Create,
        ContainerEventType::Start,
        ContainerEventType::ExecAdded,
        ContainerEventType::ExecStarted,
        ContainerEventType::Exit,
        ContainerEventType::Oom,
        ContainerEventType::Pause,
        ContainerEventType::Resume,
        ContainerEventType::Delete,
        ContainerEventType::HealthStatus,
        ContainerEventType::Restart,
    ];

    /// Its name, in snake case.
    ///
    /// ```
    /// assert_eq!(libcrun_shim::ContainerEventType::ExecAdded.as_str(), "exec_added");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerEventType::Create => "create",
            ContainerEventType::Start => "start",
            ContainerEventType::ExecAdded => "exec_added",
            ContainerEventType::ExecStarted => "exec_started",
            ContainerEventType::Exit => "exit",
            ContainerEventType::Oom => "oom",
            ContainerEventType::Pause => "pause",
            ContainerEventType::Resume => "resume",
            ContainerEventType::Delete => "delete",
            ContainerEventType::HealthStatus => "health_status",
            ContainerEventType::Restart => "restart",
            ContainerEventType::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ContainerEventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ContainerEventType {
    type Err = String;

    /// Parses a name as [`ContainerEventType::as_str`] gives it (`die` is
    /// taken for `exit`, `-` for `_`).
    fn from_str(s: &str) -> Result<ContainerEventType, String> {
        let s = s.to_ascii_lowercase().replace('-', "_");
        if s == "die" {
            return Ok(ContainerEventType::Exit);
        }
        ContainerEventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ContainerEventType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown event type {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Something that happened to a container.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// use libcrun_shim::ContainerEventType;
/// let mut receiver = runtime.subscribe_events().await?;
/// while let Some(event) = receiver.recv().await {
///     match event.event_type {
///         ContainerEventType::Start => println!("{} started", event.container_id),
///         ContainerEventType::Exit => {
///             println!("{} exited: {:?}", event.container_id, event.exit_code);
///             break;
///         }
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    /// The agent's sequence number: 1 for its first event, one more for each.
    pub sequence: u64,
    /// When it happened.
    #[serde(with = "humantime_serde")]
    pub time: Option<SystemTime>,
    /// What happened.
    pub event_type: ContainerEventType,
    /// The container.
    pub container_id: String,
    /// The exec process, for exec events and an exec's exit.
    pub exec_id: Option<String>,
    /// The agent it comes from (set by `crun-shimd`).
    pub agent: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// For [`ContainerEventType::Exit`]: the exit code.
    pub exit_code: Option<i32>,
    /// For [`ContainerEventType::Exit`]: how the process ended.
    pub exit: Option<ExitStatus>,
    /// For [`ContainerEventType::HealthStatus`]: the change.
    pub health: Option<HealthChange>,
    /// For [`ContainerEventType::Restart`]: the restart.
    pub restart: Option<RestartInfo>,
}

/// A change of health status.
///
/// ```
/// use libcrun_shim::{HealthChange, HealthStatus};
/// let change = HealthChange { previous: HealthStatus::Starting, current: HealthStatus::Healthy, failing_streak: 0 };
/// assert_ne!(change.previous, change.current);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChange {
    /// Before.
    pub previous: HealthStatus,
    /// Now.
    pub current: HealthStatus,
    /// Consecutive failed checks at the change.
    pub failing_streak: u32,
}

/// A restart under a restart policy.
///
/// ```
/// let restart = libcrun_shim::RestartInfo { restart_count: 1, backoff: std::time::Duration::from_millis(100) };
/// assert_eq!(restart.restart_count, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartInfo {
    /// Restarts so far, this one included.
    pub restart_count: u32,
    /// How long the agent waited before it.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

/// Which events to receive. Filters combine with AND; empty ones match all.
///
/// ```
/// use libcrun_shim::{ContainerEventType, EventFilter};
///
/// let filter = EventFilter {
///     since: Some(0), // replay the journal from the start
///     container_ids: vec!["web".into()],
///     types: vec![ContainerEventType::Exit],
///     ..Default::default()
/// };
/// assert!(filter.labels.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    /// Replay journalled events with a sequence greater than this first.
    /// `None`: only live events.
    pub since: Option<u64>,
    /// Only these containers.
    pub container_ids: Vec<String>,
    /// Only these kinds.
    pub types: Vec<ContainerEventType>,
    /// Only containers carrying these labels (an empty value matches any).
    pub labels: BTreeMap<String, String>,
}
