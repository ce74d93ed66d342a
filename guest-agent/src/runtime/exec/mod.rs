//! Processes run inside running containers ("exec"): what the runtime
//! decides (the container's state, exec ids, the process, events, the
//! exit) here; starting the process is the backend's (for the real one,
//! the `crun-shim-monitor exec` helper: [`helper`]), and its streams are
//! copied by [`stdio`].

pub(crate) mod helper;
mod stdio;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::backend::{ExecLaunch, ExecStdio};
use super::{Entry, Runtime};
use crate::error::{Error, IoContext, Result};
use crate::ids;
use crate::model::{EventDetails, EventKind, ExitStatus, Operation, ProcessSpec};
use crate::spec;
use crate::store::{self, Record};
use stdio::StdinSink;

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

/// Registers an exec id in its container while the exec lasts.
struct ExecRegistration {
    entry: Arc<Entry>,
    exec_id: String,
}

impl Drop for ExecRegistration {
    fn drop(&mut self) {
        self.entry.remove_exec(&self.exec_id);
    }
}

impl Runtime {
    /// Starts a process in a running container.
    pub async fn exec(&self, container_id: &str, request: ExecRequest) -> Result<ExecSession> {
        let entry = self.entry(container_id)?;
        let record = entry.snapshot();
        record.status.check(container_id, Operation::Exec)?;
        request.process.validate()?;
        let exec_id = match request.exec_id {
            Some(id) => {
                ids::validate("exec", &id)?;
                id
            }
            None => ids::generate(),
        };
        if !entry.add_exec(&exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {exec_id} already runs in container {container_id}"
            )));
        }
        let registration = ExecRegistration {
            entry: entry.clone(),
            exec_id: exec_id.clone(),
        };
        self.emit(EventKind::ExecAdded, &record, Some(&exec_id), None);

        let process = self
            .exec_process(&record, &request.process, request.terminal_size)
            .await?;
        let started = self
            .backend
            .exec(ExecLaunch {
                container_id: container_id.to_string(),
                exec_id: exec_id.clone(),
                process,
                stdin: request.stdin,
            })
            .await?;
        let pid = started.pid;

        let (out_tx, out_rx) = mpsc::channel(64);
        let mut output_tasks = Vec::new();
        let stdin_sink = match started.stdio {
            ExecStdio::Terminal(master) => {
                output_tasks.push(tokio::spawn(stdio::pump_terminal(
                    master.clone(),
                    out_tx.clone(),
                )));
                Some(StdinSink::Terminal(master))
            }
            ExecStdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                output_tasks.push(tokio::spawn(stdio::pump(
                    stdout,
                    out_tx.clone(),
                    ExecOutput::Stdout,
                )));
                output_tasks.push(tokio::spawn(stdio::pump(
                    stderr,
                    out_tx.clone(),
                    ExecOutput::Stderr,
                )));
                stdin.map(StdinSink::Pipe)
            }
        };
        drop(out_tx);
        debug!(container = %container_id, exec = %exec_id, pid, "exec started");
        // Best effort: without the note, only an agent killed before this
        // exec's end would miss reporting it.
        if let Err(e) =
            self.store
                .note_exec(container_id, &exec_id, crate::process::ProcessRef::of(pid))
        {
            tracing::warn!(container = %container_id, exec = %exec_id, error = %e, "cannot note the exec");
        }
        self.emit(EventKind::ExecStarted, &record, Some(&exec_id), None);

        let (in_tx, in_rx) = mpsc::channel(16);
        tokio::spawn(stdio::feed_input(
            in_rx,
            stdin_sink,
            pid,
            Arc::clone(&self.backend),
        ));

        let (exit_tx, exit_rx) = oneshot::channel();
        let exec_name = exec_id.clone();
        let journal = self.journal.clone();
        let store = self.store.clone();
        let exit = started.exit;
        tokio::spawn(async move {
            let result = exit.await;
            for task in output_tasks {
                let _ = task.await;
            }
            drop(registration);
            // Every started exec gets its exit event, an unknown one when
            // its end could not be observed.
            let exit = result
                .as_ref()
                .copied()
                .unwrap_or_else(|_| ExitStatus::unknown(false, SystemTime::now()));
            super::journal_event(
                &journal,
                EventKind::Exit,
                &record,
                Some(&exec_name),
                Some(EventDetails::Exit(exit)),
            );
            store.forget_exec(&record.config.id, &exec_name);
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

    /// The OCI process of an exec: the container's own process with the
    /// request's changes, its user and executable resolved in the
    /// container's root as the container sees it.
    pub(super) async fn exec_process(
        &self,
        record: &Record,
        process: &ProcessSpec,
        terminal_size: Option<(u16, u16)>,
    ) -> Result<oci_spec::runtime::Process> {
        let spec_path = self
            .store
            .container_dir(&record.config.id)
            .join(store::CONFIG_FILE);
        let container_spec: oci_spec::runtime::Spec = serde_json::from_str(
            &tokio::fs::read_to_string(&spec_path)
                .await
                .context(|| format!("reading {}", spec_path.display()))?,
        )
        .map_err(|e| Error::Internal(format!("{}: {e}", spec_path.display())))?;
        let root = self.backend.root_of(record.pid);
        let process = spec::exec_process(&container_spec, &root, process, terminal_size)?;
        spec::executable::check(&root, &process, &[])?;
        Ok(process)
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
            exit: ExitStatus::from_code(0, SystemTime::now()),
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
