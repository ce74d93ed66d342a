//! Starting monitors, with one kept ready ahead of need.
//!
//! A monitor takes a couple of milliseconds to start (exec, dynamic
//! linking); a spare monitor, started in the background after each create
//! and waiting on its stdin, takes that off the path of the next create.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::monitor::MonitorArgs;

/// Starts `crun-shim-monitor run` processes.
#[derive(Debug)]
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
    /// one. Its stdout carries its report.
    pub fn launch(&self, args: &MonitorArgs) -> std::io::Result<Child> {
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
            let _ = child.wait();
        }
        let mut child = spawn(&self.binary)?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("monitor stdin"))?;
        stdin.write_all(line.as_bytes())?;
        Ok(child)
    }
}
