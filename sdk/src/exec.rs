//! Running extra processes inside running containers: to completion
//! ([`ContainerRuntime::exec`](crate::ContainerRuntime::exec)) or
//! interactively ([`ContainerRuntime::exec_interactive`](crate::ContainerRuntime::exec_interactive)).

use std::time::Duration;

use bytes::Bytes;
use libcrun_shim_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::container::ExitStatus;
use crate::error::{Error, Result};

/// What to run in a container, and how.
///
/// ```
/// use libcrun_shim::ExecOptions;
///
/// let options = ExecOptions {
///     env: vec!["GREETING=hi".into()],
///     ..ExecOptions::new(["sh", "-c", "echo $GREETING"])
/// };
/// assert_eq!(options.command[0], "sh");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecOptions {
    /// The program and its arguments (argv form, no shell). Required.
    pub command: Vec<String>,
    /// Environment variables as `KEY=VALUE`, added to the container's.
    pub env: Vec<String>,
    /// Absolute working directory. Empty: the container's.
    pub working_dir: String,
    /// The user to run as. `None`: the container's.
    pub user: Option<String>,
    /// Run on a pseudo-terminal (interactive only; output all on stdout).
    pub tty: bool,
    /// Interactive: connect the process's stdin to [`ExecInput`].
    /// Otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// Interactive with `tty`: the initial terminal size.
    pub terminal_size: Option<TerminalSize>,
    /// An id for the process, unique in the container. `None`: generated.
    pub exec_id: Option<String>,
    /// To completion: bytes written to stdin, which is then closed.
    pub input: Bytes,
    /// To completion: kill the process after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl ExecOptions {
    /// Options running `command` with everything else at its default.
    ///
    /// ```
    /// let options = libcrun_shim::ExecOptions::new(["ls", "-l"]);
    /// assert_eq!(options.command, vec!["ls", "-l"]);
    /// ```
    pub fn new<I, S>(command: I) -> ExecOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecOptions {
            command: command.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// The size of a terminal.
///
/// ```
/// let size = libcrun_shim::TerminalSize { rows: 24, cols: 80 };
/// assert_eq!(size.cols, 80);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Rows (lines).
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// How a process run to completion ended, and what it wrote (decoded
/// lossily as UTF-8).
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// let result = runtime.exec("web", ["cat", "/etc/hostname"]).await?;
/// assert_eq!(result.exit_code, 0);
/// print!("{}", result.stdout);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecResult {
    /// The exit code; 128+N when killed by signal N.
    pub exit_code: i32,
    /// The signal that killed it, 0 if none.
    pub signal: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// It was killed at [`ExecOptions::timeout`].
    pub timed_out: bool,
    /// Output past the server's limit (1 MiB a stream) was dropped.
    pub truncated: bool,
}

/// Output of an interactive exec process.
///
/// ```
/// use libcrun_shim::ExecOutput;
/// let out = ExecOutput::Stdout("hi\n".into());
/// assert!(matches!(out, ExecOutput::Stdout(ref b) if &b[..] == b"hi\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes written to stdout (or to the terminal).
    Stdout(Bytes),
    /// Bytes written to stderr.
    Stderr(Bytes),
    /// The process exited and all its output was delivered: the last item.
    Exit(ExitStatus),
}

/// A process running interactively in a container: its input side
/// ([`ExecSession::input`]) and its output ([`ExecSession::next`]). Dropping
/// the session kills the process.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// use libcrun_shim::{ExecOptions, ExecOutput};
///
/// let mut session = runtime
///     .exec_interactive("web", ExecOptions { stdin: true, ..ExecOptions::new(["cat"]) })
///     .await?;
/// let input = session.input();
/// input.write("hello\n").await?;
/// input.close_stdin().await?;
/// while let Some(output) = session.next().await {
///     match output? {
///         ExecOutput::Stdout(bytes) => print!("{}", String::from_utf8_lossy(&bytes)),
///         ExecOutput::Stderr(bytes) => eprint!("{}", String::from_utf8_lossy(&bytes)),
///         ExecOutput::Exit(status) => println!("exit {}", status.exit_code),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ExecSession {
    exec_id: String,
    pid: u32,
    input: ExecInput,
    output: OutputStream<pb::ExecResponse>,
}

/// A message of a stream of process output (Exec's, Attach's).
pub(crate) trait OutputMessage {
    /// The output it carries, if any; `Err` when its exit status does not
    /// convert.
    fn output(self) -> Option<std::result::Result<ExecOutput, crate::convert::ConversionError>>;
}

impl OutputMessage for pb::ExecResponse {
    fn output(self) -> Option<std::result::Result<ExecOutput, crate::convert::ConversionError>> {
        use pb::exec_response::Response;
        match self.response? {
            Response::Stdout(bytes) => Some(Ok(ExecOutput::Stdout(bytes))),
            Response::Stderr(bytes) => Some(Ok(ExecOutput::Stderr(bytes))),
            Response::Exit(exit) => Some(ExitStatus::try_from(exit).map(ExecOutput::Exit)),
            Response::Started(_) => None,
        }
    }
}

/// The output of a process as a server streams it: [`ExecOutput::Exit`]
/// last, then `None`.
#[derive(Debug)]
pub(crate) struct OutputStream<M> {
    messages: tonic::Streaming<M>,
    /// What streams (in the error of a stream that ends too early).
    what: &'static str,
    done: bool,
}

impl<M: OutputMessage> OutputStream<M> {
    /// The output of the stream of `what` ("exec", "attach").
    pub(crate) fn new(messages: tonic::Streaming<M>, what: &'static str) -> OutputStream<M> {
        OutputStream {
            messages,
            what,
            done: false,
        }
    }

    /// The next piece of output.
    pub(crate) async fn next(&mut self) -> Option<Result<ExecOutput>> {
        while !self.done {
            let output = match self.messages.message().await {
                Ok(Some(message)) => match message.output() {
                    Some(output) => output.map_err(Error::from),
                    None => continue,
                },
                Ok(None) => Err(Error::Internal(format!(
                    "the {} stream ended without an exit status",
                    self.what
                ))),
                Err(status) => Err(status.into()),
            };
            self.done = !matches!(output, Ok(ExecOutput::Stdout(_) | ExecOutput::Stderr(_)));
            return Some(output);
        }
        None
    }
}

impl ExecSession {
    pub(crate) fn new(
        exec_id: String,
        pid: u32,
        requests: mpsc::Sender<pb::ExecRequest>,
        output: tonic::Streaming<pb::ExecResponse>,
    ) -> ExecSession {
        ExecSession {
            exec_id,
            pid,
            input: ExecInput { requests },
            output: OutputStream::new(output, "exec"),
        }
    }

    /// The process's exec id.
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// The process's pid on the agent's machine.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A handle to write to the process's stdin, resize its terminal or
    /// signal it; it can be cloned and moved to another task.
    pub fn input(&self) -> ExecInput {
        self.input.clone()
    }

    /// The next piece of output; [`ExecOutput::Exit`] comes last, then `None`.
    pub async fn next(&mut self) -> Option<Result<ExecOutput>> {
        self.output.next().await
    }

    /// Reads all the remaining output and returns it with the exit status.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let session = runtime.exec_interactive("web", libcrun_shim::ExecOptions::new(["true"])).await?;
    /// assert_eq!(session.wait().await?.exit_code, 0);
    /// # Ok(()) }
    /// ```
    pub async fn wait(mut self) -> Result<ExecResult> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(output) = self.next().await {
            match output? {
                ExecOutput::Stdout(bytes) => stdout.extend_from_slice(&bytes),
                ExecOutput::Stderr(bytes) => stderr.extend_from_slice(&bytes),
                ExecOutput::Exit(exit) => {
                    return Ok(ExecResult {
                        exit_code: exit.exit_code,
                        signal: exit.signal,
                        stdout: String::from_utf8_lossy(&stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&stderr).into_owned(),
                        timed_out: false,
                        truncated: false,
                    });
                }
            }
        }
        Err(Error::Internal("the exec stream ended twice".into()))
    }
}

/// The input side of an [`ExecSession`].
///
/// ```no_run
/// # async fn demo(input: libcrun_shim::ExecInput) -> libcrun_shim::Result<()> {
/// input.resize(libcrun_shim::TerminalSize { rows: 50, cols: 132 }).await?;
/// input.signal("SIGINT").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ExecInput {
    requests: mpsc::Sender<pb::ExecRequest>,
}

impl ExecInput {
    async fn send(&self, request: pb::exec_request::Request) -> Result<()> {
        self.requests
            .send(pb::ExecRequest {
                request: Some(request),
            })
            .await
            .map_err(|_| Error::FailedPrecondition("the exec session has ended".into()))
    }

    /// Writes bytes to the process's stdin (with [`ExecOptions::stdin`]).
    pub async fn write(&self, data: impl Into<Bytes>) -> Result<()> {
        self.send(pb::exec_request::Request::Stdin(data.into()))
            .await
    }

    /// Closes the process's stdin: it reads EOF.
    pub async fn close_stdin(&self) -> Result<()> {
        self.send(pb::exec_request::Request::CloseStdin(pb::CloseStdin {}))
            .await
    }

    /// Resizes the process's terminal (with [`ExecOptions::tty`]).
    pub async fn resize(&self, size: TerminalSize) -> Result<()> {
        self.send(pb::exec_request::Request::Resize(size.into()))
            .await
    }

    /// Sends a signal to the process, by name (`"SIGINT"`, `"INT"`) or number.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        self.send(pb::exec_request::Request::Signal(signal.into()))
            .await
    }
}
