//! The one error type of the CRI server, mapped once to gRPC codes.

use tonic::{Code, Status};

/// What a CRI call failed with.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The pod sandbox, container or image does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed or asks for something this runtime does
    /// not support.
    #[error("{0}")]
    InvalidArgument(String),
    /// The object's state does not allow the call (a container in a pod
    /// that is not ready, a log to reopen of a container that does not run).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A feature of the CRI this runtime does not have (image volumes).
    #[error("{0}")]
    Unimplemented(String),
    /// The call took longer than the client allowed (ExecSync's timeout).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Something this server does itself failed (a log file, a socket).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// crun-shimd (or its agent) refused or failed the call.
    #[error(transparent)]
    Runtime(#[from] crate::Error),
}

/// The result of the CRI server's operations.
pub type CriResult<T> = Result<T, CriError>;

impl From<CriError> for Status {
    fn from(e: CriError) -> Status {
        use crate::Error as E;
        let code = match &e {
            CriError::NotFound(_) => Code::NotFound,
            CriError::InvalidArgument(_) => Code::InvalidArgument,
            CriError::FailedPrecondition(_) => Code::FailedPrecondition,
            CriError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            CriError::Unimplemented(_) => Code::Unimplemented,
            CriError::Io(_) => Code::Internal,
            CriError::Runtime(e) => match e {
                E::NotFound(_) => Code::NotFound,
                E::AlreadyExists(_) => Code::AlreadyExists,
                E::InvalidArgument(_) => Code::InvalidArgument,
                E::FailedPrecondition(_) => Code::FailedPrecondition,
                E::Unavailable(_) => Code::Unavailable,
                E::PermissionDenied(_) => Code::PermissionDenied,
                E::Unauthenticated(_) => Code::Unauthenticated,
                E::DeadlineExceeded(_) => Code::DeadlineExceeded,
                E::OutOfRange(_) => Code::OutOfRange,
                E::ResourceExhausted(_) => Code::ResourceExhausted,
                E::Unimplemented(_) => Code::Unimplemented,
                E::Cancelled(_) => Code::Cancelled,
                _ => Code::Internal,
            },
        };
        Status::new(code, e.to_string())
    }
}

impl CriError {
    /// True when the object the call names does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            CriError::NotFound(_) | CriError::Runtime(crate::Error::NotFound(_))
        )
    }
}
