//! The one error type of the SDK.
//!
//! Every failure, whether the server refused a call or could not be
//! reached, is an [`Error`] whose variant says what kind of failure it was,
//! so callers can `match` on it instead of parsing messages.

use std::fmt::Write as _;

/// What went wrong. The message is the server's (or, for a connection
/// failure, names the endpoint and the cause).
///
/// ```
/// use libcrun_shim::Error;
///
/// fn describe(err: &Error) -> &'static str {
///     match err {
///         Error::NotFound(_) => "no such container",
///         Error::AlreadyExists(_) => "the id is taken",
///         Error::Unavailable(_) => "is crun-shimd running?",
///         _ => "something else",
///     }
/// }
/// assert_eq!(describe(&Error::NotFound("container web".into())), "no such container");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The container, image or path does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A container with this id (or an image with this reference) already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request is malformed: a bad id, path, signal, duration or
    /// configuration (also returned by [`RuntimeConfig::validate`](crate::RuntimeConfig::validate)).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The container's state does not allow the operation (starting a
    /// running container, deleting a running one without force).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The daemon, or the agent holding the container, cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A registry refused the credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The call's deadline passed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A value is out of range, such as an event sequence older than the
    /// journal or a message larger than the server accepts.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A limit of the server was reached.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The server does not implement the call.
    #[error("unimplemented: {0}")]
    Unimplemented(String),
    /// The call was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The runtime itself failed (libcrun's message is included), or the
    /// server answered something this SDK does not understand.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The SDK's result type.
///
/// ```
/// fn check(id: &str) -> libcrun_shim::Result<()> {
///     if id.is_empty() {
///         return Err(libcrun_shim::Error::InvalidArgument("empty id".into()));
///     }
///     Ok(())
/// }
/// assert!(check("").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Error {
        use tonic::Code;
        let message = match status.message() {
            // Some servers (or proxies) send a bare code.
            "" => status.code().description().to_string(),
            message => message.to_string(),
        };
        // A status tonic made from a failed connection (reset or closed in
        // the middle of a call) carries its cause; a server's answer has
        // none. Either way the server could not be reached.
        if matches!(status.code(), Code::Unknown | Code::Internal)
            && std::error::Error::source(&status).is_some()
        {
            return Error::Unavailable(with_source(
                format!("the connection to the server was lost: {message}"),
                &status,
            ));
        }
        match status.code() {
            Code::NotFound => Error::NotFound(message),
            Code::AlreadyExists => Error::AlreadyExists(message),
            Code::InvalidArgument => Error::InvalidArgument(message),
            Code::FailedPrecondition => Error::FailedPrecondition(message),
            Code::Unavailable => Error::Unavailable(with_source(message, &status)),
            Code::PermissionDenied => Error::PermissionDenied(message),
            Code::Unauthenticated => Error::Unauthenticated(message),
            Code::DeadlineExceeded => Error::DeadlineExceeded(message),
            Code::OutOfRange => Error::OutOfRange(message),
            Code::ResourceExhausted => Error::ResourceExhausted(message),
            Code::Unimplemented => Error::Unimplemented(message),
            Code::Cancelled => Error::Cancelled(message),
            Code::Ok | Code::Unknown | Code::Aborted | Code::DataLoss | Code::Internal => {
                Error::Internal(with_source(message, &status))
            }
        }
    }
}

impl Error {
    /// True when retrying later may succeed: the server was unreachable,
    /// the deadline passed, or a limit was reached.
    ///
    /// ```
    /// use libcrun_shim::Error;
    /// assert!(Error::Unavailable("agent a".into()).is_transient());
    /// assert!(!Error::NotFound("web".into()).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::DeadlineExceeded(_) | Error::ResourceExhausted(_)
        )
    }
}

/// `message`, followed by the chain of causes of `error` (a transport
/// error's message alone says little: "transport error").
pub(crate) fn with_source(mut message: String, error: &dyn std::error::Error) -> String {
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            let _ = write!(message, ": {text}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_code_maps_to_its_variant() {
        let cases = [
            (tonic::Code::NotFound, "not found: m"),
            (tonic::Code::AlreadyExists, "already exists: m"),
            (tonic::Code::InvalidArgument, "invalid argument: m"),
            (tonic::Code::FailedPrecondition, "failed precondition: m"),
            (tonic::Code::Unavailable, "unavailable: m"),
            (tonic::Code::DeadlineExceeded, "deadline exceeded: m"),
            (tonic::Code::Internal, "internal error: m"),
            (tonic::Code::Unknown, "internal error: m"),
        ];
        for (code, text) in cases {
            assert_eq!(Error::from(tonic::Status::new(code, "m")).to_string(), text);
        }
        assert_eq!(
            Error::from(tonic::Status::unimplemented("")).to_string(),
            "unimplemented: Operation is not implemented or not supported"
        );
        // A connection lost mid-call, as tonic reports it.
        let lost = tonic::Status::from_error(Box::new(std::io::Error::other("broken")));
        assert_eq!(lost.code(), tonic::Code::Unknown);
        assert!(matches!(Error::from(lost), Error::Unavailable(m) if m.contains("lost")));
    }
}
