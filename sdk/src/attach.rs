//! Attaching to a container's main process: its output from now on, and
//! its stdin and terminal when it has them.

use bytes::Bytes;
use libcrun_shim_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::container::ExitStatus;
use crate::error::{Error, Result};
use crate::exec::{ExecOutput, TerminalSize};

/// A client attached to a container's main process, from
/// [`ContainerRuntime::attach`](crate::ContainerRuntime::attach).
/// Dropping it detaches; the process goes on.
#[derive(Debug)]
pub struct AttachSession {
    input: AttachInput,
    output: tonic::Streaming<pb::AttachResponse>,
    done: bool,
}

/// The input side of an [`AttachSession`]: stdin (for a container created
/// with [`ContainerConfig::open_stdin`](crate::ContainerConfig::open_stdin)),
/// terminal size.
#[derive(Debug, Clone)]
pub struct AttachInput {
    requests: mpsc::Sender<pb::AttachRequest>,
}

impl AttachSession {
    pub(crate) fn new(
        requests: mpsc::Sender<pb::AttachRequest>,
        output: tonic::Streaming<pb::AttachResponse>,
    ) -> AttachSession {
        AttachSession {
            input: AttachInput { requests },
            output,
            done: false,
        }
    }

    /// A handle to write to the process's stdin or resize its terminal.
    pub fn input(&self) -> AttachInput {
        self.input.clone()
    }

    /// The next piece of output; [`ExecOutput::Exit`] comes last, then
    /// `None`.
    pub async fn next(&mut self) -> Option<Result<ExecOutput>> {
        use pb::attach_response::Response;
        if self.done {
            return None;
        }
        loop {
            let message = match self.output.message().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    self.done = true;
                    return Some(Err(Error::Internal(
                        "the attach stream ended without an exit status".into(),
                    )));
                }
                Err(status) => {
                    self.done = true;
                    return Some(Err(status.into()));
                }
            };
            return Some(Ok(match message.response {
                Some(Response::Stdout(bytes)) => ExecOutput::Stdout(bytes),
                Some(Response::Stderr(bytes)) => ExecOutput::Stderr(bytes),
                Some(Response::Exit(exit)) => {
                    self.done = true;
                    match ExitStatus::try_from(exit) {
                        Ok(exit) => ExecOutput::Exit(exit),
                        Err(e) => return Some(Err(e.into())),
                    }
                }
                None => continue,
            }));
        }
    }
}

impl AttachInput {
    async fn send(&self, request: pb::attach_request::Request) -> Result<()> {
        self.requests
            .send(pb::AttachRequest {
                request: Some(request),
            })
            .await
            .map_err(|_| Error::FailedPrecondition("the attach session has ended".into()))
    }

    /// Writes bytes to the process's stdin.
    pub async fn write(&self, data: impl Into<Bytes>) -> Result<()> {
        self.send(pb::attach_request::Request::Stdin(data.into()))
            .await
    }

    /// Closes the process's stdin (for every client): it reads EOF.
    pub async fn close_stdin(&self) -> Result<()> {
        self.send(pb::attach_request::Request::CloseStdin(pb::CloseStdin {}))
            .await
    }

    /// Resizes the process's terminal.
    pub async fn resize(&self, size: TerminalSize) -> Result<()> {
        self.send(pb::attach_request::Request::Resize(size.into()))
            .await
    }
}
