//! Attaching to a container's main process: its output from now on, and
//! its stdin and terminal when it has them.

use bytes::Bytes;
use libcrun_shim_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::container::ExitStatus;
use crate::convert::ConversionError;
use crate::error::{Error, Result};
use crate::exec::{ExecOutput, OutputMessage, OutputStream, TerminalSize};

/// A client attached to a container's main process, from
/// [`ContainerRuntime::attach`](crate::ContainerRuntime::attach).
/// Dropping it detaches; the process goes on.
#[derive(Debug)]
pub struct AttachSession {
    input: AttachInput,
    output: OutputStream<pb::AttachResponse>,
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
            output: OutputStream::new(output, "attach"),
        }
    }

    /// A handle to write to the process's stdin or resize its terminal.
    pub fn input(&self) -> AttachInput {
        self.input.clone()
    }

    /// The next piece of output; [`ExecOutput::Exit`] comes last, then
    /// `None`.
    pub async fn next(&mut self) -> Option<Result<ExecOutput>> {
        self.output.next().await
    }
}

impl OutputMessage for pb::AttachResponse {
    fn output(self) -> Option<std::result::Result<ExecOutput, ConversionError>> {
        use pb::attach_response::Response;
        match self.response? {
            Response::Stdout(bytes) => Some(Ok(ExecOutput::Stdout(bytes))),
            Response::Stderr(bytes) => Some(Ok(ExecOutput::Stderr(bytes))),
            Response::Exit(exit) => Some(ExitStatus::try_from(exit).map(ExecOutput::Exit)),
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
