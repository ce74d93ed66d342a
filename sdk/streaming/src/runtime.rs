//! What the streaming server asks of the container runtime behind it, and
//! the requests a CRI server registers with it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// A byte stream from the client (a process's stdin, or the client side of
/// a forwarded connection). EOF means the client closed it.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// A byte stream to the client (a process's stdout or stderr). Shutting it
/// down or dropping it ends the client's copy of it (where the protocol can
/// say so).
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// A terminal size, as Kubernetes clients send it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The streams of an exec or attach session, as the client asked for them.
/// With `tty`, the process's stdout and stderr are one terminal stream and
/// `stderr` is `None`.
#[derive(Default)]
pub struct ProcessIo {
    /// The client's stdin, when it asked for one.
    pub stdin: Option<Input>,
    /// Where the process's stdout goes, when asked for.
    pub stdout: Option<Output>,
    /// Where the process's stderr goes, when asked for (never with `tty`).
    pub stderr: Option<Output>,
    /// Terminal sizes as the client's terminal changes (with `tty` only; the
    /// first one is the initial size when the client knows it).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    /// The process runs on a terminal.
    pub tty: bool,
}

impl std::fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .field("tty", &self.tty)
            .finish()
    }
}

/// One forwarded connection: read what the client sends to the pod's port,
/// write what comes back. `shutdown` ends the client's side of the data
/// (so `tokio::io::copy_bidirectional` with a TCP stream does the right
/// thing both ways).
pub struct PortStream {
    input: Input,
    output: Output,
}

impl std::fmt::Debug for PortStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortStream").finish_non_exhaustive()
    }
}

impl PortStream {
    /// A port stream over an input and an output.
    pub fn new(input: Input, output: Output) -> PortStream {
        PortStream { input, output }
    }
}

impl AsyncRead for PortStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.input).poll_read(cx, buf)
    }
}

impl AsyncWrite for PortStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.output).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_shutdown(cx)
    }
}

/// An error of the runtime, told to the client on the session's error
/// stream (as Kubernetes' `InternalError` status from v4 on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);

impl RuntimeError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> RuntimeError {
        RuntimeError(message.into())
    }
}

impl From<io::Error> for RuntimeError {
    fn from(e: io::Error) -> RuntimeError {
        RuntimeError(e.to_string())
    }
}

/// The container runtime behind the streaming server: a CRI server
/// implements it over its own exec, attach and network calls.
///
/// Each method runs for the whole session and returns when it is over; the
/// server then closes the client's streams and reports the result. Dropping
/// the future (the client went away) must stop the work.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `request.command` in the container with `io`, and returns its
    /// exit code (0 to 255) once it exited and its output was written.
    fn exec(
        &self,
        request: ExecRequest,
        io: ProcessIo,
    ) -> impl Future<Output = Result<i32, RuntimeError>> + Send;

    /// Connects `io` to the container's main process until the client or
    /// the process is done.
    fn attach(
        &self,
        request: AttachRequest,
        io: ProcessIo,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Connects `stream` to `port` on the loopback of the pod sandbox's
    /// network namespace and copies both ways until both directions ended.
    fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
        stream: PortStream,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

/// A request the server refuses to register (the CRI server answers
/// `InvalidArgument` or `ResourceExhausted`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request is not valid.
    #[error("{0}")]
    Invalid(&'static str),
    /// Too many requests wait for their client.
    #[error("too many streaming requests in flight ({0})")]
    TooMany(usize),
}

/// An exec a client may start once (CRI `ExecRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The container.
    pub container_id: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Run on a terminal.
    pub tty: bool,
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr.
    pub stderr: bool,
}

impl ExecRequest {
    /// Kubernetes' rules: a container, a command, at least one stream, and
    /// no stderr with a terminal (both are one stream).
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.container_id.is_empty() {
            return Err(RequestError::Invalid("missing required container_id"));
        }
        if self.command.is_empty() {
            return Err(RequestError::Invalid("missing required cmd"));
        }
        validate_streams(self.tty, self.stdin, self.stdout, self.stderr)
    }
}

/// An attach a client may start once (CRI `AttachRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// The container.
    pub container_id: String,
    /// The container runs on a terminal.
    pub tty: bool,
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr.
    pub stderr: bool,
}

impl AttachRequest {
    /// The same rules as [`ExecRequest::validate`], without a command.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.container_id.is_empty() {
            return Err(RequestError::Invalid("missing required container_id"));
        }
        validate_streams(self.tty, self.stdin, self.stdout, self.stderr)
    }
}

fn validate_streams(
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), RequestError> {
    if tty && stderr {
        return Err(RequestError::Invalid("tty and stderr cannot both be true"));
    }
    if !stdin && !stdout && !stderr {
        return Err(RequestError::Invalid(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

/// A port-forward a client may start once (CRI `PortForwardRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardRequest {
    /// The pod sandbox.
    pub pod_sandbox_id: String,
    /// The ports the client may forward to; empty allows any (as critest
    /// and the kubelet ask).
    pub ports: Vec<u16>,
}

impl PortForwardRequest {
    /// A sandbox is required; port 0 is not a port.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.pod_sandbox_id.is_empty() {
            return Err(RequestError::Invalid("missing required pod_sandbox_id"));
        }
        if self.ports.contains(&0) {
            return Err(RequestError::Invalid("port 0 cannot be forwarded"));
        }
        Ok(())
    }

    /// Whether the client may forward to `port`.
    pub fn allows(&self, port: u16) -> bool {
        port != 0 && (self.ports.is_empty() || self.ports.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> ExecRequest {
        ExecRequest {
            container_id: "c1".into(),
            command: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        }
    }

    #[test]
    fn requests_follow_kubernetes_rules() {
        assert!(exec().validate().is_ok());
        let tty_stderr = ExecRequest {
            tty: true,
            ..exec()
        };
        assert!(tty_stderr.validate().is_err());
        let no_streams = ExecRequest {
            stdout: false,
            stderr: false,
            ..exec()
        };
        assert!(no_streams.validate().is_err());
        assert!(
            ExecRequest {
                container_id: String::new(),
                ..exec()
            }
            .validate()
            .is_err()
        );
        assert!(
            ExecRequest {
                command: vec![],
                ..exec()
            }
            .validate()
            .is_err()
        );
        let attach = AttachRequest {
            container_id: "c1".into(),
            tty: true,
            stdin: true,
            stdout: true,
            stderr: false,
        };
        assert!(attach.validate().is_ok());
        let pf = PortForwardRequest {
            pod_sandbox_id: "p".into(),
            ports: vec![],
        };
        assert!(pf.validate().is_ok() && pf.allows(80) && !pf.allows(0));
        let only_80 = PortForwardRequest {
            ports: vec![80],
            ..pf.clone()
        };
        assert!(only_80.allows(80) && !only_80.allows(81));
        assert!(
            PortForwardRequest {
                ports: vec![0],
                ..pf
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn terminal_sizes_read_as_kubernetes_writes_them() {
        let size: TerminalSize = serde_json::from_str(r#"{"Width":80,"Height":24}"#).unwrap();
        assert_eq!(
            size,
            TerminalSize {
                width: 80,
                height: 24
            }
        );
    }
}
