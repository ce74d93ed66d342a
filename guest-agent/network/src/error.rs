//! The networking crate's error type.

use std::io;

/// The result of networking operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong setting networks up and tearing them down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed request: a bad port mapping, network name, subnet,
    /// address or DNS option.
    #[error("{0}")]
    InvalidArgument(String),
    /// No network of that name.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// A network of that name exists already.
    #[error("network {0} already exists")]
    NetworkExists(String),
    /// The network is used by containers (or is the default network) and
    /// cannot be removed.
    #[error("{0}")]
    NetworkInUse(String),
    /// A host port asked for is taken: by another container, by a process
    /// of the host, or twice in one request.
    #[error("host port {port} is already in use{}", by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default())]
    PortInUse {
        /// The port as `[HOSTIP:]PORT/PROTO`.
        port: String,
        /// Who holds it, when known.
        by: Option<String>,
    },
    /// A network configuration (a conflist) that cannot be used: it does
    /// not parse, or names a plugin that is not installed.
    #[error("{0}")]
    BadConfig(String),
    /// A CNI plugin failed.
    #[error("CNI plugin {plugin} ({command}) on network {network}: {message}")]
    Plugin {
        /// The plugin's type ("bridge").
        plugin: String,
        /// ADD, DEL or CHECK.
        command: &'static str,
        /// The network.
        network: String,
        /// The plugin's error (its code, message and details), or how it
        /// died.
        message: String,
    },
    /// The persisted state of an attachment is unreadable.
    #[error("{0}")]
    CorruptState(String),
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to I/O results.
pub(crate) trait IoContext<T> {
    /// Wraps an I/O error with what was being done.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
