//! The agent's state on disk, under its `--root`:
//!
//! ```text
//! ROOT/libcrun/                 libcrun's state root
//!     .cache/seccomp/           libcrun's compiled seccomp filters, not crash-safe:
//!                               emptied at each agent start (backend::libcrun)
//! ROOT/containers/ID/           one directory per container (also its OCI bundle)
//!     config.json               the OCI runtime spec it runs with
//!     record.json               the agent's record (written by the agent)
//!     exit.json                 how the current run ended (written by the monitor)
//!     monitor.log               the monitor's own diagnostics
//!     logs/                     the container's stdout and stderr (CRI format, rotated)
//!     execs/EXEC_ID.json        an exec process started and not yet reported ended
//!     attach.sock               the monitor's attach socket (while it runs)
//!     processes/EXEC/           a detached exec process (`StartProcess`): process.json,
//!                               record.json, exit.json, monitor.log, attach.sock
//! ROOT/exec/                    process specs and console sockets of exec processes
//! ROOT/agent.lock               held (flock) by the one agent serving this root
//! ```
//!
//! # One agent per root
//!
//! Two agents on one root would both restart, reap and journal the same
//! containers. [`Store::open`] takes an exclusive `flock(2)` on
//! `agent.lock` and the agent holds it for its whole life: the kernel
//! releases it when the agent dies, however it dies, so a lock can never
//! be stale. A second agent on the root fails to open it, naming the
//! holder. The file says who holds it, one line each: the holder's pid,
//! then where it serves; `crun-shimd` reads it to adopt a live agent
//! instead of starting a second one.
//!
//! Every JSON file is written to a temporary file and renamed into place,
//! so a reader (or an agent restarted after a crash) sees the old or the
//! new content, never a torn one; with `CRUN_SHIM_DURABLE_STATE=1` (a VM's
//! state disk) it is fsynced too, and survives a power loss.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, IoContext, Result};
use crate::model::{ContainerConfig, ExitStatus, HealthState, NetworkStatus, Status};
use crate::process::ProcessRef;

/// The agent's record of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What it was created from.
    pub config: ContainerConfig,
    /// Its state as last recorded.
    pub status: Status,
    /// Host pid of its init process while created, running or paused.
    pub pid: i32,
    /// The monitor of the current run.
    pub monitor: Option<ProcessRef>,
    /// The current run's number (1 for the first), as the monitor reports
    /// it in `exit.json`.
    pub run: u32,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was last started.
    pub started_at: Option<SystemTime>,
    /// How its last run ended.
    pub last_exit: Option<ExitStatus>,
    /// Restarts under its restart policy.
    pub restart_count: u32,
    /// Its root filesystem path.
    pub rootfs_path: PathBuf,
    /// For a container of an image: the image's manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Its cgroup path, relative to the cgroup mounts.
    pub cgroup_path: String,
    /// Its last run ended unobserved: the monitor vanished without
    /// recording the exit (reported as an orphan).
    pub exit_unknown: bool,
    /// It was stopped or killed through the API: restart policies leave it
    /// alone.
    pub stopped_by_api: bool,
    /// Its health-check state.
    pub health: HealthState,
    /// Its network, as made at Create.
    #[serde(default)]
    pub network: NetworkStatus,
}

/// What the monitor writes when a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The run that ended.
    pub run: u32,
    /// How it ended.
    pub exit: ExitStatus,
}

/// File names inside a container directory.
pub const CONFIG_FILE: &str = "config.json";
/// The agent's record.
pub const RECORD_FILE: &str = "record.json";
/// The monitor's exit record.
pub const EXIT_FILE: &str = "exit.json";
/// The monitor's diagnostics.
pub const MONITOR_LOG: &str = "monitor.log";
/// The log directory.
pub const LOGS_DIR: &str = "logs";
/// The notes of started exec processes (see [`Store::note_exec`]).
pub const EXECS_DIR: &str = "execs";
/// The directory of a container's detached exec processes (one directory
/// each, named by exec id: `process.json`, `record.json`, `exit.json`,
/// `monitor.log`, `attach.sock`).
pub const PROCESSES_DIR: &str = "processes";
/// The lock the agent serving a root holds (in the root).
pub const LOCK_FILE: &str = "agent.lock";

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    if durable() {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&tmp, path)?;
    if durable()
        && let Some(dir) = path.parent()
    {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The environment variable that makes state files durable (`1`): each is
/// fsynced, and its directory after the rename. The guest's init sets it
/// when the state root is on a disk: a VM killed is a power loss for it.
pub const DURABLE_ENV: &str = "CRUN_SHIM_DURABLE_STATE";

/// Whether state files are made durable ([`DURABLE_ENV`]).
pub(crate) fn durable() -> bool {
    static DURABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DURABLE.get_or_init(|| std::env::var(DURABLE_ENV).is_ok_and(|v| v == "1"))
}

/// Writes a value as JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file; `None` if it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The agent's state root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// `agent.lock`, locked for as long as this process lives (the
    /// descriptor is close-on-exec: monitors do not inherit it). Held, not
    /// read: dropping the last clone of the store releases the root.
    _lock: Arc<fs::File>,
}

impl Store {
    /// Opens (creating if needed, mode 0700) the state root and locks it
    /// for this process, which serves at `serves` (`unix:///PATH`,
    /// `vsock://CID:PORT`; empty when it serves nothing).
    /// `FailedPrecondition` when another live agent holds it.
    pub fn open(root: &Path, serves: &str) -> Result<Store> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        for dir in ["", "libcrun", "containers", "exec"] {
            let path = root.join(dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .context(|| format!("creating {}", path.display()))?;
        }
        let root = root
            .canonicalize()
            .context(|| format!("resolving {}", root.display()))?;
        let path = root.join(LOCK_FILE);
        let mut lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let pid = holder.lines().next().unwrap_or("unknown");
            return Err(Error::FailedPrecondition(format!(
                "state root {} is in use by another agent (pid {pid})",
                root.display()
            )));
        }
        let note = format!("{}\n{serves}\n", std::process::id());
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(note.as_bytes()))
            .context(|| format!("writing {}", path.display()))?;
        Ok(Store {
            root,
            _lock: Arc::new(lock),
        })
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// libcrun's state root.
    pub fn libcrun_root(&self) -> PathBuf {
        self.root.join("libcrun")
    }

    /// Where exec process files live.
    pub fn exec_dir(&self) -> PathBuf {
        self.root.join("exec")
    }

    /// A container's directory (and OCI bundle). `id` must be validated.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// A container's log directory.
    pub fn logs_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(LOGS_DIR)
    }

    /// The ids of the container directories.
    pub fn container_ids(&self) -> Result<Vec<String>> {
        let dir = self.root.join("containers");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))? {
            let entry = entry.context(|| format!("listing {}", dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Reads a container's record.
    pub fn load_record(&self, id: &str) -> Result<Option<Record>> {
        let path = self.container_dir(id).join(RECORD_FILE);
        read_json(&path).context(|| format!("reading {}", path.display()))
    }

    /// Writes a container's record.
    pub fn save_record(&self, record: &Record) -> Result<()> {
        let path = self.container_dir(&record.config.id).join(RECORD_FILE);
        write_json(&path, record).context(|| format!("writing {}", path.display()))
    }

    /// Reads the exit record the monitor wrote, if any.
    pub fn load_exit(&self, id: &str) -> Result<Option<ExitRecord>> {
        let path = self.container_dir(id).join(EXIT_FILE);
        read_json(&path).context(|| format!("reading {}", path.display()))
    }

    /// Notes that exec `exec_id` of container `id` started, as `process`,
    /// before its start is announced; [`Store::forget_exec`] removes the
    /// note once its exit is. An agent killed in between finds the note
    /// when it starts again and reports the exit as unknown: every started
    /// exec gets its exit event.
    pub fn note_exec(&self, id: &str, exec_id: &str, process: Option<ProcessRef>) -> Result<()> {
        let dir = self.container_dir(id).join(EXECS_DIR);
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{exec_id}.json"));
        write_json(&path, &process).context(|| format!("writing {}", path.display()))
    }

    /// Removes the note of a started exec (gone already is fine).
    pub fn forget_exec(&self, id: &str, exec_id: &str) {
        let path = self
            .container_dir(id)
            .join(EXECS_DIR)
            .join(format!("{exec_id}.json"));
        let _ = fs::remove_file(path);
    }

    /// The noted exec processes of container `id`: (exec id, process).
    pub fn noted_execs(&self, id: &str) -> Vec<(String, Option<ProcessRef>)> {
        let dir = self.container_dir(id).join(EXECS_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
                let process = read_json::<Option<ProcessRef>>(&e.path())
                    .ok()
                    .flatten()
                    .flatten();
                Some((name, process))
            })
            .collect()
    }

    /// Removes a container's directory and everything in it.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).context(|| format!("removing {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_json_round_trip_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert_eq!(read_json::<u32>(&path).unwrap(), None);
        write_json(&path, &42u32).unwrap();
        write_json(&path, &43u32).unwrap();
        assert_eq!(read_json::<u32>(&path).unwrap(), Some(43));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("x.json")],
            "no temporary file left"
        );
    }

    #[test]
    fn a_root_has_one_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "unix:///x.sock").unwrap();
        let note = fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(note, format!("{}\nunix:///x.sock\n", std::process::id()));
        // flock locks belong to open files: a second open in this very
        // process conflicts as a second agent would.
        match Store::open(dir.path(), "") {
            Err(Error::FailedPrecondition(m)) => {
                assert!(m.contains(&format!("pid {}", std::process::id())), "{m}")
            }
            other => panic!("{other:?}"),
        }
        drop(store);
        Store::open(dir.path(), "").expect("free again once its owner is gone");
    }

    #[test]
    fn corrupt_json_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        fs::write(&path, b"{\"run\":").unwrap();
        assert_eq!(
            read_json::<ExitRecord>(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
