//! The seam between the runtime's decisions and the machine.
//!
//! The runtime decides (which state allows what, when a run ends, when to
//! restart, what recovery adopts); a [`Backend`] acts: the libcrun calls
//! that do not fork, the monitors that make the ones that do (create,
//! exec), and the processes the runtime watches. [`Libcrun`] is the real
//! one; the runtime's unit tests use a test implementation that runs
//! nothing, so its decisions are tested without root.

mod libcrun;
#[cfg(test)]
pub(crate) mod testing;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use oci_spec::runtime::{LinuxResources, Process};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};

pub use libcrun::Libcrun;

use crate::error::Result;
use crate::model::ExitStatus;
use crate::monitor::MonitorArgs;
use crate::process::ProcessRef;

/// A container (or detached exec process) its monitor created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The host pid of its init process (or of the exec process).
    pub pid: i32,
    /// Its monitor, which outlives the call and records how the run ends.
    pub monitor: ProcessRef,
}

/// A process to run in a running container.
#[derive(Debug, Clone)]
pub struct ExecLaunch {
    /// The container.
    pub container_id: String,
    /// The exec id, unique in the container.
    pub exec_id: String,
    /// The process, as libcrun takes it (its `terminal` flag included).
    pub process: Process,
    /// Connect stdin (otherwise /dev/null).
    pub stdin: bool,
}

/// An exec process that runs.
pub struct ExecProcess {
    /// Its host pid.
    pub pid: i32,
    /// Its standard streams.
    pub stdio: ExecStdio,
    /// How it ended, once it has (its output may still be draining).
    pub exit: BoxFuture<'static, Result<ExitStatus>>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// The standard streams of an exec process.
pub enum ExecStdio {
    /// Pipes.
    Pipes {
        /// Its stdin, when connected.
        stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
        /// Its stdout.
        stdout: Pin<Box<dyn AsyncRead + Send>>,
        /// Its stderr.
        stderr: Pin<Box<dyn AsyncRead + Send>>,
    },
    /// A pseudo-terminal's master (non-blocking): output, input and size.
    Terminal(Arc<AsyncFd<OwnedFd>>),
}

/// What the runtime asks of the machine. libcrun's calls are blocking
/// (the runtime makes them on blocking threads); the rest is async.
pub trait Backend: std::fmt::Debug + Send + Sync + 'static {
    /// Starts the user process of created container `id` (`crun start`).
    fn start(&self, id: &str) -> libcrun_sys::Result<()>;

    /// Sends `signal` to the init process of container `id`, or with `all`
    /// to every process of it.
    fn kill(&self, id: &str, signal: i32, all: bool) -> libcrun_sys::Result<()>;

    /// Freezes container `id`.
    fn pause(&self, id: &str) -> libcrun_sys::Result<()>;

    /// Thaws container `id`.
    fn resume(&self, id: &str) -> libcrun_sys::Result<()>;

    /// Deletes container `id`'s libcrun state and cgroup; with `force`,
    /// kills it first if it still runs.
    fn delete(&self, id: &str, force: bool) -> libcrun_sys::Result<()>;

    /// Sets the limits of container `id`.
    fn update(&self, id: &str, resources: &LinuxResources) -> libcrun_sys::Result<()>;

    /// The pids of every process of container `id` (`crun ps`).
    fn pids(&self, id: &str) -> libcrun_sys::Result<Vec<i32>>;

    /// Starts a monitor that creates a run of a container (its spec is in
    /// the container's directory), or a detached exec process in one
    /// (`args.exec`; its process is in the exec's directory), and waits for
    /// its report.
    fn create(&self, args: MonitorArgs) -> BoxFuture<'static, Result<Created>>;

    /// Starts a process in a running container and waits until it runs.
    fn exec(&self, launch: ExecLaunch) -> BoxFuture<'static, Result<ExecProcess>>;

    /// The root directory of process `pid` as this process sees it
    /// (`/proc/PID/root`): where an exec's user and executable are looked
    /// up.
    fn root_of(&self, pid: i32) -> PathBuf;

    /// Whether this very process still runs.
    fn is_alive(&self, process: ProcessRef) -> bool;

    /// Resolves once `process` has exited (at once if it is gone).
    fn exited(&self, process: ProcessRef) -> BoxFuture<'static, io::Result<()>>;

    /// Sends `signal` to process `pid` (an exec process, a stuck monitor).
    fn signal_process(&self, pid: i32, signal: i32) -> io::Result<()>;
}
