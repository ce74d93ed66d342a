//! Detached exec processes (`StartProcess`): processes that run on without
//! the client, their standard streams held by a monitor of their own (as
//! the container's main process is), their exit recorded in their
//! directory. Bridges such as the containerd shim use them, so that the
//! shim holds nothing that is lost when it dies.
//!
//! Ownership: the record lives in `containers/ID/processes/EXEC/record.json`
//! (written by the agent), the exit in `exit.json` (written by the monitor,
//! which outlives the agent). A SIGKILL of the agent at any point leaves
//! either no directory, or a directory whose monitor is alive (adopted on
//! restart) or dead (its exit read from `exit.json`, else recorded as
//! unknown, 255). Deleting the container removes the directories.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Runtime;
use super::backend::Created;
use crate::error::{Error, IoContext, Result};
use crate::ids;
use crate::model::{EventDetails, EventKind, ExitStatus, LogConfig, Operation, ProcessSpec};
use crate::monitor::{ExecTarget, MonitorArgs, PROCESS_FILE};
use crate::process::ProcessRef;
use crate::spec;
use crate::stdio::StdioConfig;
use crate::store::{self, PROCESSES_DIR};

/// How long DeleteProcess with `force` waits for a killed process.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What a detached process runs.
#[derive(Debug, Clone)]
pub enum ProcessSource {
    /// Built from the container's process, as for Exec.
    Spec(ProcessSpec),
    /// An OCI `process` object (JSON), run as given once checked.
    Oci(String),
}

/// A StartProcess request.
#[derive(Debug, Clone)]
pub struct StartProcess {
    /// The exec id (required).
    pub exec_id: String,
    /// What to run.
    pub source: ProcessSource,
    /// Where its streams go.
    pub stdio: StdioConfig,
    /// The initial terminal size (rows, cols).
    pub terminal_size: Option<(u16, u16)>,
}

/// The agent's record of a detached process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The container.
    pub container_id: String,
    /// The exec id.
    pub exec_id: String,
    /// Its host pid.
    pub pid: i32,
    /// Its monitor while it runs.
    pub monitor: Option<ProcessRef>,
    /// Whether it runs on a terminal.
    pub terminal: bool,
    /// Where its streams go.
    pub stdio: StdioConfig,
    /// How it ended, once it has.
    pub exit: Option<ExitStatus>,
}

/// A detached process as the runtime holds it: its record, published to
/// waiters.
#[derive(Debug)]
pub struct ProcessEntry {
    state: watch::Sender<ProcessRecord>,
}

impl ProcessEntry {
    fn new(record: ProcessRecord) -> Arc<ProcessEntry> {
        Arc::new(ProcessEntry {
            state: watch::channel(record).0,
        })
    }

    /// The current record.
    pub fn snapshot(&self) -> ProcessRecord {
        self.state.borrow().clone()
    }

    async fn wait(&self, timeout: Option<Duration>) -> Option<ExitStatus> {
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                if let Some(exit) = rx.borrow_and_update().exit {
                    return Some(exit);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
            None => wait.await,
        }
    }
}

type Key = (String, String);

fn key(container_id: &str, exec_id: &str) -> Key {
    (container_id.to_string(), exec_id.to_string())
}

impl Runtime {
    fn process_dir(&self, container_id: &str, exec_id: &str) -> PathBuf {
        self.store
            .container_dir(container_id)
            .join(PROCESSES_DIR)
            .join(exec_id)
    }

    fn process_entry(&self, container_id: &str, exec_id: &str) -> Result<Arc<ProcessEntry>> {
        ids::validate("container", container_id)?;
        ids::validate("exec", exec_id)?;
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(container_id, exec_id))
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "process {exec_id} not found in container {container_id}"
                ))
            })
    }

    /// Starts a detached process in a running container.
    pub async fn start_process(
        self: &Arc<Self>,
        container_id: &str,
        request: StartProcess,
    ) -> Result<ProcessRecord> {
        let entry = self.entry(container_id)?;
        let container = entry.snapshot();
        container.status.check(container_id, Operation::Exec)?;
        let exec_id = request.exec_id.clone();
        ids::validate("exec", &exec_id)?;
        request.stdio.check_exists()?;
        let process = match &request.source {
            ProcessSource::Spec(p) => {
                p.validate()?;
                self.exec_process(&container, p, request.terminal_size)
                    .await?
            }
            ProcessSource::Oci(json) => {
                let mut process = spec::given::process(json)?;
                if let Some((rows, cols)) = request.terminal_size
                    && process.terminal().unwrap_or(false)
                {
                    let size = oci_spec::runtime::BoxBuilder::default()
                        .height(u64::from(rows))
                        .width(u64::from(cols))
                        .build()
                        .map_err(|e| Error::Internal(format!("console size: {e}")))?;
                    process.set_console_size(Some(size));
                }
                spec::executable::check(&self.backend.root_of(container.pid), &process, &[])?;
                process
            }
        };
        let terminal = process.terminal().unwrap_or(false);
        // Reserve the id among the container's exec processes.
        let known = self
            .processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key(container_id, &exec_id));
        if known || !entry.add_exec(&exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {exec_id} already exists in container {container_id}"
            )));
        }
        let dir = self.process_dir(container_id, &exec_id);
        let started = self
            .launch_process(container_id, &exec_id, &dir, &process, terminal, &request)
            .await;
        let record = match started {
            Ok(record) => record,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                entry.remove_exec(&exec_id);
                return Err(e);
            }
        };
        let process_entry = ProcessEntry::new(record.clone());
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(container_id, &exec_id), process_entry.clone());
        self.emit(EventKind::ExecAdded, &container, Some(&exec_id), None);
        self.emit(EventKind::ExecStarted, &container, Some(&exec_id), None);
        if let Some(monitor) = record.monitor {
            self.watch_process(process_entry, monitor);
        }
        info!(container = %container_id, exec = %exec_id, pid = record.pid, "process started");
        Ok(record)
    }

    async fn launch_process(
        &self,
        container_id: &str,
        exec_id: &str,
        dir: &std::path::Path,
        process: &oci_spec::runtime::Process,
        terminal: bool,
        request: &StartProcess,
    ) -> Result<ProcessRecord> {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec(process)
            .map_err(|e| Error::Internal(format!("process JSON: {e}")))?;
        store::write_atomic(&dir.join(PROCESS_FILE), &json)
            .context(|| format!("writing {}", dir.join(PROCESS_FILE).display()))?;
        let args = MonitorArgs {
            root: self.store.root().to_path_buf(),
            id: container_id.to_string(),
            run: 1,
            log: LogConfig::default(),
            stdio: request.stdio.clone(),
            open_stdin: false,
            exec: Some(ExecTarget {
                exec_id: exec_id.to_string(),
                terminal,
            }),
        };
        let Created { pid, monitor } = self.backend.create(args).await?;
        let record = ProcessRecord {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            monitor: Some(monitor),
            terminal,
            stdio: request.stdio.clone(),
            exit: None,
        };
        store::write_json(&dir.join(store::RECORD_FILE), &record)
            .context(|| format!("writing {}", dir.join(store::RECORD_FILE).display()))?;
        Ok(record)
    }

    /// Watches a process's monitor and records its exit when it ends.
    fn watch_process(self: &Arc<Self>, entry: Arc<ProcessEntry>, monitor: ProcessRef) {
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            if runtime.backend.exited(monitor).await.is_err() {
                while runtime.backend.is_alive(monitor) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            runtime.process_exited(&entry);
        });
    }

    /// Records the exit of a process whose monitor is gone.
    fn process_exited(&self, entry: &ProcessEntry) {
        let mut record = entry.snapshot();
        if record.exit.is_some() {
            return;
        }
        let dir = self.process_dir(&record.container_id, &record.exec_id);
        let exit = match store::read_json::<store::ExitRecord>(&dir.join(store::EXIT_FILE)) {
            Ok(Some(exit)) => exit.exit,
            _ => {
                warn!(container = %record.container_id, exec = %record.exec_id,
                    "process monitor gone without an exit record; exit code unknown (255)");
                ExitStatus {
                    exit_code: 255,
                    signal: 0,
                    oom_killed: false,
                    finished_at: SystemTime::now(),
                    unknown: true,
                }
            }
        };
        record.exit = Some(exit);
        record.monitor = None;
        if dir.exists()
            && let Err(e) = store::write_json(&dir.join(store::RECORD_FILE), &record)
        {
            warn!(exec = %record.exec_id, error = %e, "cannot save the process's exit");
        }
        if let Ok(container) = self.entry(&record.container_id) {
            container.remove_exec(&record.exec_id);
            self.emit(
                EventKind::Exit,
                &container.snapshot(),
                Some(&record.exec_id),
                Some(EventDetails::Exit(exit)),
            );
        }
        entry.state.send_replace(record);
    }

    /// Takes over the detached processes recorded for a container after a
    /// restart: running ones are watched again, ended ones get their exit.
    pub(super) fn recover_processes(self: &Arc<Self>, container_id: &str) {
        let dir = self.store.container_dir(container_id).join(PROCESSES_DIR);
        let Ok(names) = std::fs::read_dir(&dir) else {
            return;
        };
        for name in names.flatten() {
            let path = name.path().join(store::RECORD_FILE);
            let Ok(Some(record)) = store::read_json::<ProcessRecord>(&path) else {
                // Started but never recorded: nothing runs under it.
                let _ = std::fs::remove_dir_all(name.path());
                continue;
            };
            let entry = ProcessEntry::new(record.clone());
            self.processes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key(container_id, &record.exec_id), entry.clone());
            match record.monitor {
                Some(m) if record.exit.is_none() && self.backend.is_alive(m) => {
                    if let Ok(container) = self.entry(container_id) {
                        container.add_exec(&record.exec_id);
                    }
                    self.watch_process(entry, m);
                }
                _ if record.exit.is_none() => self.process_exited(&entry),
                _ => {}
            }
        }
    }

    /// Forgets the detached processes of a deleted container.
    pub(super) fn forget_processes(&self, container_id: &str) {
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, _), _| c != container_id);
    }

    /// The record of a detached process.
    pub fn inspect_process(&self, container_id: &str, exec_id: &str) -> Result<ProcessRecord> {
        Ok(self.process_entry(container_id, exec_id)?.snapshot())
    }

    /// Waits for a detached process to exit.
    pub async fn wait_process(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus> {
        self.process_entry(container_id, exec_id)?
            .wait(None)
            .await
            .ok_or_else(|| Error::NotFound(format!("process {exec_id} was deleted while waiting")))
    }

    /// Sends a signal to a running detached process.
    pub fn signal_process(&self, container_id: &str, exec_id: &str, signal: i32) -> Result<()> {
        let record = self.inspect_process(container_id, exec_id)?;
        if record.exit.is_some() || !record.monitor.is_some_and(|m| self.backend.is_alive(m)) {
            return Err(Error::FailedPrecondition(format!(
                "process {exec_id} in container {container_id} is not running"
            )));
        }
        nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| Error::InvalidArgument(format!("bad signal {signal}")))?;
        self.backend
            .signal_process(record.pid, signal)
            .map_err(|e| Error::io(format!("signalling process {exec_id}"), e))
    }

    /// Forgets a detached process (killing it first with `force`) and
    /// returns its exit status.
    pub async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
        force: bool,
    ) -> Result<ExitStatus> {
        let entry = self.process_entry(container_id, exec_id)?;
        if entry.snapshot().exit.is_none() {
            if !force {
                return Err(Error::FailedPrecondition(format!(
                    "process {exec_id} in container {container_id} is running; kill it first or delete with force"
                )));
            }
            let _ = self.signal_process(container_id, exec_id, libc::SIGKILL);
            if entry.wait(Some(KILL_WAIT)).await.is_none() {
                return Err(Error::Internal(format!(
                    "process {exec_id} did not die within {KILL_WAIT:?} of SIGKILL"
                )));
            }
        }
        let exit = entry
            .snapshot()
            .exit
            .ok_or_else(|| Error::Internal("exit vanished".into()))?;
        let dir = self.process_dir(container_id, exec_id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", dir.display()), e));
            }
            _ => {}
        }
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(container_id, exec_id));
        Ok(exit)
    }

    /// The pids of the running detached processes of a container, by exec
    /// id.
    pub fn process_pids(&self, container_id: &str) -> Vec<(i32, String)> {
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((c, _), _)| c == container_id)
            .map(|(_, e)| e.snapshot())
            .filter(|r| r.exit.is_none())
            .map(|r| (r.pid, r.exec_id))
            .collect()
    }
}
