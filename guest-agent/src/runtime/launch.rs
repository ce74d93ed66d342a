//! Starting monitors, with one kept ready ahead of need, and reading what
//! they report.
//!
//! A monitor takes a couple of milliseconds to start (exec, dynamic
//! linking); a spare monitor, started in the background after each create
//! and waiting on its stdin, takes that off the path of the next create.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::backend::Created;
use crate::error::{Error, IoContext, Result};
use crate::monitor::{CreateReport, MonitorArgs};
use crate::process::ProcessRef;

/// How long Create waits for the monitor to report.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `crun-shim-monitor run` processes.
#[derive(Debug, Clone)]
pub struct Launcher {
    binary: PathBuf,
    spare: Arc<Mutex<Option<Child>>>,
}

fn spawn(binary: &Path) -> std::io::Result<Child> {
    Command::new(binary)
        .arg("run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

impl Launcher {
    /// A launcher of `binary`.
    pub fn new(binary: PathBuf) -> Launcher {
        Launcher {
            binary,
            spare: Arc::new(Mutex::new(None)),
        }
    }

    /// Starts a spare monitor in the background if none is ready.
    pub fn refill(&self) {
        let binary = self.binary.clone();
        let spare = self.spare.clone();
        tokio::task::spawn_blocking(move || {
            if spare.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                return;
            }
            let Ok(mut child) = spawn(&binary) else {
                return;
            };
            let mut slot = spare.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(child);
            } else {
                // Another refill won: this one reads EOF and leaves.
                drop(child.stdin.take());
                let _ = child.wait();
            }
        });
    }

    /// A monitor running `args`: the spare if it is still there, else a new
    /// one, started on a blocking thread (fork and exec hold the calling
    /// thread until the child has exec'd: on an async worker that stalled
    /// every other call, tens of ms on a loaded machine). Its stdout
    /// carries its report.
    async fn launch(&self, args: &MonitorArgs) -> std::io::Result<Child> {
        let line = serde_json::to_string(args).map_err(std::io::Error::other)? + "\n";
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = spare {
            if let Some(mut stdin) = child.stdin.take()
                && stdin.write_all(line.as_bytes()).is_ok()
            {
                return Ok(child);
            }
            // The spare died: reap it and start afresh.
            let _ = child.kill();
            reap_later(child);
        }
        let binary = self.binary.clone();
        tokio::task::spawn_blocking(move || {
            let mut child = spawn(&binary)?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| std::io::Error::other("monitor stdin"))?;
            stdin.write_all(line.as_bytes())?;
            Ok(child)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Starts a monitor running `args` and waits for its report: the
    /// created container (or detached exec process), or libcrun's error.
    /// The monitor's log is quoted when it ends without a report.
    pub async fn create(&self, args: &MonitorArgs) -> Result<Created> {
        let what = args.what();
        let mut child = self
            .launch(args)
            .await
            .context(|| format!("starting {}", self.binary.display()))?;
        self.refill();
        let monitor = ProcessRef::of(child.id() as i32);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Internal("monitor stdout".into()))?;
        let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout.into())
            .context(|| "reading the monitor's report".into())?;
        let mut line = String::new();
        let read =
            tokio::time::timeout(CREATE_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        let report = match read {
            Ok(Ok(_)) => crate::monitor::parse_report(&line),
            Ok(Err(e)) => return Err(Error::io("reading the monitor's report", e)),
            Err(_) => {
                let _ = child.kill();
                reap_later(child);
                return Err(Error::DeadlineExceeded(format!(
                    "{what}: no report from its monitor within {CREATE_TIMEOUT:?}"
                )));
            }
        };
        match (report, monitor) {
            // The monitor outlives this call; its watcher reaps it.
            (Some(CreateReport::Created { pid }), Some(monitor)) => Ok(Created { pid, monitor }),
            (Some(CreateReport::Failed { errno, message }), _) => {
                reap_later(child);
                Err(Error::libcrun(
                    format!("creating {what}"),
                    libcrun_sys::Error::Libcrun { errno, message },
                ))
            }
            _ => {
                reap_later(child);
                let diagnostics = args.dir().join(crate::store::MONITOR_LOG);
                let diag = std::fs::read_to_string(diagnostics).unwrap_or_default();
                Err(Error::Internal(format!(
                    "{what}: the monitor exited without a report: {}",
                    diag.lines().last().unwrap_or("no diagnostics")
                )))
            }
        }
    }
}

/// Reaps a monitor that is exiting, off the async threads.
fn reap_later(mut child: std::process::Child) {
    tokio::task::spawn_blocking(move || child.wait());
}
