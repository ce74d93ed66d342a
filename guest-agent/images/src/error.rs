//! The image store's error type.

use std::io;

/// The result of image store operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong pulling, storing and unpacking images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed image reference, digest or platform.
    #[error("{0}")]
    InvalidReference(String),
    /// No such image in the store, or no such repository, tag or blob in
    /// the registry.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or asked for some).
    #[error("{0}")]
    Unauthenticated(String),
    /// The image is used by containers (and removal was not forced).
    #[error("{0}")]
    InUse(String),
    /// What the registry sent is not what it claims: a blob whose bytes do
    /// not match its digest or size, a malformed manifest or config, no
    /// manifest for the platform asked for.
    #[error("{0}")]
    BadContent(String),
    /// A layer entry that would write outside its target (`..`, an
    /// absolute path through a symlink, a hard link out of the tree), or an
    /// entry type the store does not unpack.
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path in the layer.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry cannot be reached, or answered with an error.
    #[error("{0}")]
    Registry(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
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
