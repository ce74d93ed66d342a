//! The runtime's own description of containers: what they are created
//! from and the rules a configuration follows ([`config`], [`resources`]), their state and
//! the operations each state allows ([`status`]), and what users watch
//! ([`events`], [`health`], [`metrics`], [`orphans`]).
//!
//! These types are independent of gRPC (the server converts to and from
//! the protocol's messages) and are persisted as JSON under the agent's
//! state root.

pub mod config;
pub mod events;
pub mod health;
pub mod metrics;
pub mod orphans;
pub mod resources;
pub mod status;

pub use config::{
    CapabilityChanges, ContainerConfig, ContainerNetwork, HealthCheck, LogConfig,
    MAX_ANNOTATIONS_TOTAL, MAX_LABEL_VALUE, MAX_LABELS_TOTAL, MAX_METADATA_KEY, Mount,
    NamespaceSource, NetworkMode, ProcessSpec, RestartPolicy, Rlimit, RootSource, RootfsMount,
    Seccomp,
};
pub use events::{Event, EventDetails, EventFilter, EventKind};
pub use health::{HealthResult, HealthState, HealthStatus};
pub use metrics::{
    BlkioMetrics, ContainerMetrics, CpuMetrics, InterfaceMetrics, MemoryMetrics, PidsMetrics,
};
pub use orphans::{Orphan, OrphanKind};
pub use resources::Resources;
pub use status::{ExitStatus, NetworkStatus, Operation, Status};
