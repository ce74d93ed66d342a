//! Events: what happened to a container, numbered by the agent, and the
//! filters of subscribers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ExitStatus, HealthStatus};

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
