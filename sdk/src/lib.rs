//! The Rust SDK of libcrun-shim: run real OCI containers through
//! `crun-shimd` (or one `crun-shim-agent`, which serves the same API) with
//! plain Rust types.
//!
//! - [`ContainerRuntime`]: the container lifecycle (create, start, stop,
//!   kill, pause, resume, delete, list, inspect, wait, update), exec (to
//!   completion or interactive), logs, events, health, metrics, and the
//!   runtime's own upkeep (cleanup, orphans, recovery, shutdown).
//! - [`ImageStore`]: pull (with progress), list, inspect, remove, rootfs.
//! - [`Networks`]: the agents' bridge networks (create, remove, list,
//!   inspect); containers join them with [`ContainerConfig::network`],
//!   `networks` and `ports`.
//! - [`RuntimeConfig`]: where the daemon is (or one VM's agent), the agent
//!   new work goes to, and call timeouts.
//! - [`Error`]: one error type whose variants say what went wrong
//!   ([`Error::NotFound`], [`Error::AlreadyExists`], [`Error::Unavailable`] ...).
//!
//! The SDK's types convert to and from the protocol's generated ones
//! (`libcrun_shim_proto::v1`) with `From` (what the SDK sends) and
//! `TryFrom` (what the server answers, refused as a [`ConversionError`]
//! when it cannot be represented), for programs that mix both.
//!
//! ```no_run
//! use libcrun_shim::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     // The daemon at CRUN_SHIM_HOST, else at /run/libcrun-shim/crun-shimd.sock.
//!     let runtime = ContainerRuntime::new().await?;
//!
//!     let id = runtime
//!         .create(ContainerConfig {
//!             id: "hello".into(),
//!             root: RootSource::Rootfs("/srv/busybox".into()),
//!             command: vec!["sh".into(), "-c".into(), "echo hello; exit 3".into()],
//!             ..Default::default()
//!         })
//!         .await?;
//!     runtime.start(&id).await?;
//!     let exit = runtime.wait(&id).await?;
//!     let logs = runtime.logs(&id, LogOptions::default()).await?;
//!     assert_eq!((exit.exit_code, logs.stdout.as_str()), (3, "hello\n"));
//!     runtime.delete(&id).await?;
//!     Ok(())
//! }
//! ```

mod attach;
#[cfg(feature = "cri")]
pub mod cri;
#[cfg(feature = "cri")]
pub use cri::CriServer;

mod client;
mod config;
mod container;
mod convert;
mod error;
mod events;
mod exec;
mod health;
mod images;
mod logs;
mod metrics;
mod network;
mod run;
mod runtime;
#[cfg(feature = "shim-v2")]
pub mod shim;
mod system;
mod transport;

pub use attach::{AttachInput, AttachSession};
pub use config::{DEFAULT_SOCKET, HOST_ENV, RuntimeConfig};
pub use container::{
    ContainerConfig, ContainerInfo, ContainerStatus, ExitStatus, Mount, NamespaceSource,
    NetworkMode, ResourceLimits, RestartPolicy, Rlimit, RootSource, RootfsMount, SeccompProfile,
};
pub use convert::ConversionError;
pub use error::{Error, Result};
pub use events::{ContainerEvent, ContainerEventType, EventFilter, HealthChange, RestartInfo};
pub use exec::{ExecInput, ExecOptions, ExecOutput, ExecResult, ExecSession, TerminalSize};
pub use health::{ContainerHealth, HealthCheck, HealthCheckResult, HealthStatus};
pub use images::{
    ImageConfig, ImageInfo, ImageStore, LayerProgress, LayerState, PullOptions, PullProgress,
    RemovedImage,
};
pub use logs::{LogChunk, LogOptions, LogStream, Logs, OutputStream};
pub use metrics::{
    BlkioMetrics, ContainerMetrics, CpuMetrics, InterfaceMetrics, MemoryMetrics, NetworkMetrics,
    PidsMetrics,
};
pub use network::{
    ContainerNetwork, DnsConfig, HostEntry, NetworkInfo, NetworkInterface, NetworkMember,
    NetworkOptions, NetworkSubnet, Networks, PortMapping, Protocol,
};
pub use run::{RunEvent, RunOptions, RunStream};
pub use runtime::{ContainerRuntime, EventStream, ListFilter, MetricsStream};
#[cfg(feature = "shim-v2")]
pub use shim::ShimV2;
pub use system::{
    AgentInfo, AgentState, CgroupMode, Info, Orphan, OrphanKind, RecoverReport, ShutdownOptions,
    Version,
};

/// The version of this SDK.
///
/// ```
/// assert!(!libcrun_shim::VERSION.is_empty());
/// ```
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
