//! The local agent: started by the daemon when no agent is configured, and
//! restarted with backoff whenever it dies. Its containers survive its
//! deaths by the agent's own design; the daemon only brings it back.
//!
//! # One agent per state root
//!
//! An agent holds an exclusive `flock(2)` on `ROOT/agent.lock` for its
//! whole life, and the kernel drops it when the agent dies (see the
//! agent's `store` module). A daemon that was killed leaves its agent
//! running; the next daemon finds the lock held and, rather than starting
//! a second agent on the same root, *adopts* the live one when it serves
//! on the socket this daemon expects (the lock file says where it
//! serves), or stops it cleanly (SIGTERM, as at the daemon's own stop)
//! when it serves elsewhere. An adopted agent is watched through its lock:
//! once the lock is free the agent is gone and a new one is started.

use std::os::fd::AsRawFd;
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
/// How often an adopted agent's lock is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// The lock file an agent holds in its state root.
const LOCK_FILE: &str = "agent.lock";

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
    let endpoint = format!("unix://{}", socket.display());
    loop {
        if let Some(holder) = Holder::of(&root) {
            if holder.listen == endpoint {
                info!(pid = holder.pid, "adopting the local agent already running");
                if watch_adopted(&root, &mut stop).await {
                    stop_adopted(&root, holder.pid).await;
                    return;
                }
                warn!(
                    pid = holder.pid,
                    "the adopted local agent exited; restarting"
                );
            } else {
                warn!(
                    pid = holder.pid,
                    listen = %holder.listen,
                    "an agent serving elsewhere holds the state root; stopping it"
                );
                stop_adopted(&root, holder.pid).await;
            }
            continue;
        }
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

/// The live agent holding a state root's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: i32,
    /// Where it serves, as it wrote it (`unix:///PATH`).
    listen: String,
}

impl Holder {
    /// The agent holding `root`'s lock, if one does. The lock is tested
    /// (and at once released), never kept.
    fn of(root: &Path) -> Option<Holder> {
        if !held(root) {
            return None;
        }
        // In the instant between its flock and its write, a new
        // holder's note may be missing: then this says none, the agent the
        // caller starts fails on the lock, and the next round reads it.
        let note = std::fs::read_to_string(root.join(LOCK_FILE)).unwrap_or_default();
        let mut lines = note.lines();
        let pid = lines
            .next()
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 0)?;
        Some(Holder {
            pid,
            listen: lines.next().unwrap_or_default().to_string(),
        })
    }
}

/// Whether `root`'s lock is held by a live agent.
fn held(root: &Path) -> bool {
    let Ok(file) = std::fs::File::open(root.join(LOCK_FILE)) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; closing it
    // releases the test lock.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

/// Watches an adopted agent until it dies (false) or `stop` turns true
/// (true).
async fn watch_adopted(root: &Path, stop: &mut watch::Receiver<bool>) -> bool {
    while held(root) {
        if wait_or_stop(stop, ADOPTED_POLL).await {
            return true;
        }
    }
    false
}

/// Stops an agent this daemon did not start: SIGTERM (it leaves its
/// containers running), then SIGKILL if it still holds its lock after
/// the grace period.
async fn stop_adopted(root: &Path, pid: i32) {
    // SAFETY: signals the process that holds the agent lock of our root.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while held(root) {
        if Instant::now() > deadline {
            warn!(pid, "the adopted agent did not stop in time; killing it");
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        tokio::time::sleep(ADOPTED_POLL).await;
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
