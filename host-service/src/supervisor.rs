//! The local agent: started by the daemon when no agent is configured, and
//! restarted with backoff whenever it dies. Its containers survive its
//! deaths by the agent's own design; the daemon only brings it back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// The first pause before restarting a dead agent; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An agent that ran this long resets the pause.
const STABLE: Duration = Duration::from_secs(30);
/// How long the agent gets to exit when the daemon stops.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `crun-shim-agent` next to this executable.
pub fn default_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locating this executable", e))?;
    let path = exe.with_file_name("crun-shim-agent");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Config(format!(
            "{} not found; set agent_binary",
            path.display()
        )))
    }
}

/// Runs the local agent until `stop` turns true, then stops it gracefully
/// (SIGTERM: it leaves its containers running).
pub async fn supervise(
    binary: PathBuf,
    root: PathBuf,
    socket: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&binary, &root, &socket) {
            Ok(child) => child,
            Err(e) => {
                warn!(error = %e, "cannot start the local agent");
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        info!(pid = child.id(), "local agent started");
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        match exited {
            Some(status) => {
                warn!(?status, "local agent exited; restarting");
                if started.elapsed() >= STABLE {
                    backoff = FIRST_BACKOFF;
                }
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            None => {
                if let Some(pid) = child.id() {
                    // SAFETY: sends SIGTERM to the agent this task started.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
                if tokio::time::timeout(STOP_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    warn!("local agent did not stop in time; killing it");
                    let _ = child.kill().await;
                }
                return;
            }
        }
    }
}

/// Sleeps `pause` unless `stop` turns true first; returns whether it did.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

fn spawn(binary: &Path, root: &Path, socket: &Path) -> std::io::Result<tokio::process::Child> {
    Command::new(binary)
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--root")
        .arg(root)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn()
}
