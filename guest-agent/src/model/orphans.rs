//! Orphans: what is left over that no container owns.

use serde::{Deserialize, Serialize};

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
    /// A network attachment without a container.
    Network,
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
