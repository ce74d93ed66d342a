//! The daemon's error type (start-up and configuration; calls answer with
//! gRPC statuses).

/// The result of daemon operations.
pub type Result<T> = std::result::Result<T, Error>;

/// What can stop the daemon from serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serving: {0}")]
    Serve(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
