//! The agent's error type.

use std::io;

use crate::model::{Operation, Status};

/// The result of agent operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the agent. Each variant maps to one gRPC
/// status code (in `server`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: a bad id, path, signal, duration...
    #[error("{0}")]
    InvalidArgument(String),
    /// A container, exec, path or image does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A container with that id exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The container's state does not allow the operation (see
    /// [`Status::check`]).
    #[error("container {id} is {status}: cannot {operation} ({})", operation.requirement())]
    InvalidState {
        /// The container.
        id: String,
        /// Its state.
        status: Status,
        /// What was refused.
        operation: Operation,
    },
    /// The system is not in the state the request needs (other than the
    /// container's state): an executable missing from the rootfs, say.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A deadline passed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Something asked for is no longer kept (events older than the
    /// journal's oldest).
    #[error("{0}")]
    OutOfRange(String),
    /// The agent is shutting down, or a resource it needs is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// libcrun failed.
    #[error("{context}: {source}")]
    Libcrun {
        /// What the agent was doing.
        context: String,
        /// libcrun's error.
        #[source]
        source: libcrun_sys::Error,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the agent was doing.
        context: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The image store failed (pull, unpack, image not found...).
    #[error(transparent)]
    Image(#[from] crun_shim_images::Error),
    /// The networking failed (a network not found, a port taken, a CNI
    /// plugin's error...).
    #[error(transparent)]
    Network(#[from] crun_shim_network::Error),
    /// A bug or an inconsistency in the agent's own state.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A libcrun error with what was being done.
    pub fn libcrun(context: impl Into<String>, source: libcrun_sys::Error) -> Error {
        Error::Libcrun {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to I/O results.
pub trait IoContext<T> {
    /// Wraps an I/O error with what was being done.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
