//! Processes run inside running containers ("exec"), through the
//! `crun-shim-monitor exec` helper (see `monitor::exec`).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{Entry, Runtime};
use crate::error::{Error, IoContext, Result};
use crate::ids;
use crate::model::{EventDetails, EventKind, ExitStatus, ProcessSpec, Status};
use crate::monitor::exec::{ExecArgs, ExecStatus, STATUS_FD, parse_pid, parse_status};
use crate::spec;
use crate::store;

/// How long to wait for the helper to report the process's pid.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The most ExecSync returns of each stream unless asked otherwise.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 20;
/// The most ExecSync ever returns of each stream.
pub const MAX_OUTPUT_LIMIT: u64 = 16 << 20;

/// An exec request.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The exec id; generated when `None`.
    pub exec_id: Option<String>,
    /// The process.
    pub process: ProcessSpec,
    /// Connect stdin (otherwise /dev/null).
    pub stdin: bool,
    /// Initial terminal size (rows, cols).
    pub terminal_size: Option<(u16, u16)>,
}

/// Output of an exec process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes written to stdout (or the terminal).
    Stdout(Bytes),
    /// Bytes written to stderr.
    Stderr(Bytes),
}

/// Input to an exec process.
#[derive(Debug)]
pub enum ExecInput {
    /// Bytes for stdin.
    Stdin(Bytes),
    /// Close stdin (EOF; ^D on a terminal).
    CloseStdin,
    /// New terminal size (rows, cols).
    Resize(u16, u16),
    /// A signal for the process.
    Signal(i32),
}

/// A running exec process.
#[derive(Debug)]
pub struct ExecSession {
    /// Its exec id.
    pub exec_id: String,
    /// Its host pid.
    pub pid: i32,
    /// Its output, in order; ends once the process's output is closed.
    pub output: mpsc::Receiver<ExecOutput>,
    /// Send input here; dropping it closes stdin.
    pub input: mpsc::Sender<ExecInput>,
    /// Its exit status, once it exited (after `output` ended).
    pub exit: oneshot::Receiver<Result<ExitStatus>>,
}

/// The result of a process run to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSyncResult {
    /// How it ended.
    pub exit: ExitStatus,
    /// Its stdout, bounded.
    pub stdout: Vec<u8>,
    /// Its stderr, bounded.
    pub stderr: Vec<u8>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Stdout was cut.
    pub stdout_truncated: bool,
    /// Stderr was cut.
    pub stderr_truncated: bool,
}

/// Where the process's stdin goes.
enum StdinSink {
    Pipe(tokio::process::ChildStdin),
    Terminal(Arc<AsyncFd<OwnedFd>>),
}

/// Removes an exec's files and registration when dropped.
struct ExecGuard {
    entry: Arc<Entry>,
    exec_id: String,
    files: Vec<PathBuf>,
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        self.entry
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.exec_id);
    }
}

/// The errno whose description ends a message ("...: No such file or
/// directory"), for errors libcrun reports only as text.
fn errno_in_message(message: &str) -> i32 {
    [
        libc::ENOENT,
        libc::EACCES,
        libc::EPERM,
        libc::ENOEXEC,
        libc::ENOTDIR,
    ]
    .into_iter()
    .find(|&errno| {
        let text = std::io::Error::from_raw_os_error(errno).to_string();
        let text = text.split(" (os error").next().unwrap_or_default();
        message.ends_with(text)
    })
    .unwrap_or(0)
}

fn exit_from_code(code: i32) -> ExitStatus {
    let signal = if (129..=128 + 64).contains(&code) {
        code - 128
    } else {
        0
    };
    ExitStatus {
        exit_code: code,
        signal,
        oom_killed: false,
        finished_at: std::time::SystemTime::now(),
    }
}

impl Runtime {
    /// Starts a process in a running container.
    pub async fn exec(&self, container_id: &str, request: ExecRequest) -> Result<ExecSession> {
        let entry = self.entry(container_id)?;
        let record = entry.snapshot();
        match record.status {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::FailedPrecondition(format!(
                    "container {container_id} is paused"
                )));
            }
            other => {
                return Err(Error::FailedPrecondition(format!(
                    "container {container_id} is {}, not running",
                    other.as_str()
                )));
            }
        }
        if request.process.command.is_empty() {
            return Err(Error::InvalidArgument("exec command is empty".into()));
        }
        let exec_id = match request.exec_id {
            Some(id) => {
                ids::validate("exec", &id)?;
                id
            }
            None => ids::generate(),
        };
        if !entry
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(exec_id.clone())
        {
            return Err(Error::AlreadyExists(format!(
                "exec {exec_id} already runs in container {container_id}"
            )));
        }
        let mut guard = ExecGuard {
            entry: entry.clone(),
            exec_id: exec_id.clone(),
            files: Vec::new(),
        };
        self.emit(EventKind::ExecAdded, &record, Some(&exec_id), None);

        // The process: the container's own, with the request's changes.
        let spec_path = self
            .store
            .container_dir(container_id)
            .join(store::CONFIG_FILE);
        let container_spec: oci_spec::runtime::Spec = serde_json::from_str(
            &std::fs::read_to_string(&spec_path)
                .context(|| format!("reading {}", spec_path.display()))?,
        )
        .map_err(|e| Error::Internal(format!("{}: {e}", spec_path.display())))?;
        // User names resolve in the container's root as the container sees it.
        let root = PathBuf::from(format!("/proc/{}/root", record.pid));
        let process = spec::exec_process(
            &container_spec,
            &root,
            &request.process,
            request.terminal_size,
        )?;
        let exec_dir = self.store.exec_dir();
        let base = format!("{container_id}.{exec_id}");
        let process_file = exec_dir.join(format!("{base}.json"));
        let json = serde_json::to_vec(&process)
            .map_err(|e| Error::Internal(format!("process JSON: {e}")))?;
        guard.files.push(process_file.clone());
        store::write_atomic(&process_file, &json)
            .context(|| format!("writing {}", process_file.display()))?;

        let console = if request.process.tty {
            let name = format!("{base}.sock");
            let path = exec_dir.join(&name);
            guard.files.push(path.clone());
            let listener = tokio::net::UnixListener::bind(&path)
                .context(|| format!("binding {}", path.display()))?;
            Some((name, listener))
        } else {
            None
        };

        let args = ExecArgs {
            root: self.store.root().to_path_buf(),
            id: container_id.to_string(),
            process: process_file.clone(),
            console_socket: console.as_ref().map(|(name, _)| PathBuf::from(name)),
        };
        let (status_r, status_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("creating the status pipe", e.into()))?;
        let status_w_raw = status_w.as_raw_fd();
        let tty = request.process.tty;
        let mut command = tokio::process::Command::new(&self.options.monitor_binary);
        command
            .args(args.to_args())
            .current_dir(&exec_dir)
            .stdin(if request.stdin && !tty {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if tty { Stdio::null() } else { Stdio::piped() })
            .stderr(if tty { Stdio::null() } else { Stdio::piped() })
            .kill_on_drop(false);
        // SAFETY: dup2 is async-signal-safe; it gives the helper the status
        // pipe as descriptor 3 (without close-on-exec).
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(status_w_raw, STATUS_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .context(|| format!("starting {}", self.options.monitor_binary.display()))?;
        drop(status_w);

        let mut status = tokio::fs::File::from(std::fs::File::from(status_r));
        let mut status_text = String::new();
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(START_TIMEOUT, status.read(&mut chunk))
            .await
            .map_err(|_| {
                Error::DeadlineExceeded(format!("exec {exec_id}: no pid within {START_TIMEOUT:?}"))
            })?
            .context(|| "reading the exec status".into())?;
        status_text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        let Some(pid) = parse_pid(&status_text) else {
            // libcrun failed before starting the process.
            status
                .read_to_string(&mut status_text)
                .await
                .context(|| "reading the exec status".into())?;
            // The process's own setup failed (a missing program, say):
            // libcrun only says so on the process's stderr.
            let mut stderr_text = String::new();
            if let Some(stderr) = child.stderr.take() {
                let _ = stderr
                    .take(64 * 1024)
                    .read_to_string(&mut stderr_text)
                    .await;
            }
            let _ = child.wait().await;
            return Err(match parse_status(&status_text) {
                Some(ExecStatus::Failed { errno, message, .. }) => {
                    let detail = stderr_text.trim();
                    let (errno, message) = if errno == 0 && !detail.is_empty() {
                        (errno_in_message(detail), detail.to_string())
                    } else {
                        (errno, message)
                    };
                    Error::libcrun(
                        format!("exec in container {container_id}"),
                        libcrun_sys::Error::Libcrun { errno, message },
                    )
                }
                _ => Error::Internal(format!("exec {exec_id}: helper said {status_text:?}")),
            });
        };

        let (out_tx, out_rx) = mpsc::channel(64);
        let mut output_tasks = Vec::new();
        let stdin_sink = if let Some((_, listener)) = console {
            let master = Arc::new(receive_terminal(&listener).await?);
            output_tasks.push(tokio::spawn(pump_terminal(master.clone(), out_tx.clone())));
            Some(StdinSink::Terminal(master))
        } else {
            if let Some(stdout) = child.stdout.take() {
                output_tasks.push(tokio::spawn(pump(
                    stdout,
                    out_tx.clone(),
                    ExecOutput::Stdout,
                )));
            }
            if let Some(stderr) = child.stderr.take() {
                output_tasks.push(tokio::spawn(pump(
                    stderr,
                    out_tx.clone(),
                    ExecOutput::Stderr,
                )));
            }
            child.stdin.take().map(StdinSink::Pipe)
        };
        drop(out_tx);
        debug!(container = %container_id, exec = %exec_id, pid, "exec started");
        self.emit(EventKind::ExecStarted, &record, Some(&exec_id), None);

        let (in_tx, in_rx) = mpsc::channel(16);
        tokio::spawn(feed_input(in_rx, stdin_sink, pid));

        let (exit_tx, exit_rx) = oneshot::channel();
        let exec_name = exec_id.clone();
        let journal = self.journal.clone();
        tokio::spawn(async move {
            let mut rest = String::new();
            let read = status.read_to_string(&mut rest).await;
            status_text.push_str(&rest);
            let _ = child.wait().await;
            for task in output_tasks {
                let _ = task.await;
            }
            let result = match (read, parse_status(&status_text)) {
                (Ok(_), Some(ExecStatus::Exited { code, .. })) => Ok(exit_from_code(code)),
                (Ok(_), Some(ExecStatus::Failed { errno, message, .. })) => Err(Error::libcrun(
                    format!("exec {exec_name}"),
                    libcrun_sys::Error::Libcrun { errno, message },
                )),
                (Err(e), _) => Err(Error::io("reading the exec status", e)),
                (Ok(_), None) => Err(Error::Internal(format!(
                    "exec {exec_name}: the helper ended without a status ({status_text:?})"
                ))),
            };
            drop(guard);
            if let Ok(exit) = &result {
                super::journal_event(
                    &journal,
                    EventKind::Exit,
                    &record,
                    Some(&exec_name),
                    Some(EventDetails::Exit(*exit)),
                );
            }
            let _ = exit_tx.send(result);
        });

        Ok(ExecSession {
            exec_id,
            pid,
            output: out_rx,
            input: in_tx,
            exit: exit_rx,
        })
    }

    /// Runs a process to completion, with bounded output and a timeout.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        process: ProcessSpec,
        stdin: Bytes,
        timeout: Option<Duration>,
        max_output: u64,
    ) -> Result<ExecSyncResult> {
        if process.tty {
            return Err(Error::InvalidArgument(
                "ExecSync does not support a terminal".into(),
            ));
        }
        let max = if max_output == 0 {
            DEFAULT_MAX_OUTPUT
        } else {
            max_output.min(MAX_OUTPUT_LIMIT)
        } as usize;
        let mut session = self
            .exec(
                container_id,
                ExecRequest {
                    exec_id: None,
                    process,
                    stdin: !stdin.is_empty(),
                    terminal_size: None,
                },
            )
            .await?;
        if !stdin.is_empty() {
            let _ = session.input.send(ExecInput::Stdin(stdin)).await;
        }
        let _ = session.input.send(ExecInput::CloseStdin).await;
        let mut result = ExecSyncResult {
            exit: exit_from_code(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            timed_out: false,
            stdout_truncated: false,
            stderr_truncated: false,
        };
        let collect = async {
            while let Some(out) = session.output.recv().await {
                let (buf, cut, data) = match out {
                    ExecOutput::Stdout(d) => (&mut result.stdout, &mut result.stdout_truncated, d),
                    ExecOutput::Stderr(d) => (&mut result.stderr, &mut result.stderr_truncated, d),
                };
                let room = max.saturating_sub(buf.len());
                if data.len() > room {
                    *cut = true;
                }
                buf.extend_from_slice(&data[..data.len().min(room)]);
            }
        };
        let finished = match timeout {
            Some(t) => tokio::time::timeout(t, collect).await.is_ok(),
            None => {
                collect.await;
                true
            }
        };
        if !finished {
            result.timed_out = true;
            let _ = session.input.send(ExecInput::Signal(libc::SIGKILL)).await;
            // Keep draining so the process can die and its pipes close.
            while session.output.recv().await.is_some() {}
        }
        let exit = session
            .exit
            .await
            .map_err(|_| Error::Internal("exec ended without a status".into()))??;
        result.exit = exit;
        Ok(result)
    }
}

/// Copies a pipe into the output channel.
async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    tx: mpsc::Sender<ExecOutput>,
    wrap: fn(Bytes) -> ExecOutput,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    // Nobody listens: keep draining so the process never
                    // blocks on a full pipe.
                    while matches!(pipe.read(&mut buf).await, Ok(n) if n > 0) {}
                    return;
                }
            }
        }
    }
}

/// Copies a terminal master into the output channel until the terminal
/// closes (EIO once the last process holding it has exited).
async fn pump_terminal(master: Arc<AsyncFd<OwnedFd>>, tx: mpsc::Sender<ExecOutput>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = master
            .async_io(tokio::io::Interest::READABLE, |fd| {
                nix::unistd::read(fd, &mut buf).map_err(std::io::Error::from)
            })
            .await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ = tx
                    .send(ExecOutput::Stdout(Bytes::copy_from_slice(&buf[..n])))
                    .await;
            }
        }
    }
}

/// Applies input to the process until the sender is dropped.
async fn feed_input(mut rx: mpsc::Receiver<ExecInput>, mut sink: Option<StdinSink>, pid: i32) {
    while let Some(input) = rx.recv().await {
        match input {
            ExecInput::Stdin(data) => {
                let written = match &mut sink {
                    Some(StdinSink::Pipe(pipe)) => pipe.write_all(&data).await,
                    Some(StdinSink::Terminal(master)) => write_terminal(master, &data).await,
                    None => Ok(()),
                };
                // The process closed its stdin: drop what comes after.
                if written.is_err() {
                    sink = None;
                }
            }
            ExecInput::CloseStdin => match &sink {
                // End of input on a terminal is ^D at the start of a line.
                Some(StdinSink::Terminal(master)) => {
                    let _ = write_terminal(master, b"\x04").await;
                }
                _ => sink = None,
            },
            ExecInput::Resize(rows, cols) => {
                if let Some(StdinSink::Terminal(master)) = &sink {
                    resize(master.get_ref().as_raw_fd(), rows, cols);
                }
            }
            ExecInput::Signal(sig) => {
                // SAFETY: sends a signal to the exec process.
                if unsafe { libc::kill(pid, sig) } != 0 {
                    warn!(pid, sig, "cannot signal exec process");
                }
            }
        }
    }
}

async fn write_terminal(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = master
            .async_io(tokio::io::Interest::WRITABLE, |fd| {
                nix::unistd::write(fd, data).map_err(std::io::Error::from)
            })
            .await?;
        data = &data[n..];
    }
    Ok(())
}

/// Sets a terminal's size.
pub fn resize(fd: RawFd, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
}

/// Accepts libcrun's connection on the console socket and receives the
/// terminal master, non-blocking.
async fn receive_terminal(listener: &tokio::net::UnixListener) -> Result<AsyncFd<OwnedFd>> {
    let (stream, _) = tokio::time::timeout(START_TIMEOUT, listener.accept())
        .await
        .map_err(|_| Error::DeadlineExceeded("no terminal from libcrun".into()))?
        .context(|| "accepting on the console socket".into())?;
    let fd = loop {
        stream
            .readable()
            .await
            .context(|| "console socket".into())?;
        match stream.try_io(tokio::io::Interest::READABLE, || {
            crate::fdpass::recv_fd(stream.as_raw_fd())
        }) {
            Ok(Some(fd)) => break fd,
            Ok(None) => {
                return Err(Error::Internal(
                    "no terminal received on the console socket".into(),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Error::io("receiving the terminal", e)),
        }
    };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::io("terminal", e.into()))?;
    crate::fdpass::register(
        fd,
        tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
    )
    .context(|| "registering the terminal".into())
}
