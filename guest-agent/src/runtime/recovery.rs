//! Reconciling the agent's records with what runs, finding what no
//! container owns, and removing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{Entry, Runtime};
use crate::error::{IoContext, Result};
use crate::ids;
use crate::model::{EventDetails, EventKind, ExitStatus, Orphan, OrphanKind, Status};

/// How long ForceDelete waits for a killed container to exit.
const FORCE_KILL_WAIT: Duration = Duration::from_secs(10);

/// What a reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Running containers taken over.
    pub adopted: Vec<String>,
    /// Containers whose exit happened unobserved and is now recorded.
    pub exited: Vec<String>,
    /// Creates an agent killed half-way left behind, undone: whatever they
    /// made (monitor, container processes, libcrun state, cgroups, mounts,
    /// directory) is removed.
    pub undone: Vec<String>,
    /// Containers with `auto_remove` found exited (meanwhile, or before a
    /// previous agent got to delete them), now deleted.
    pub removed: Vec<String>,
    /// Leftovers no container owns.
    pub orphans: Vec<Orphan>,
}

impl Runtime {
    /// The ids the runtime knows or is creating.
    fn known_ids(&self) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = self
            .containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.extend(
            self.reserved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        ids
    }

    /// Reconciles the records under the state root with what runs: takes
    /// over running containers it does not know yet, records exits that
    /// happened unobserved, undoes creates that never reached their record,
    /// and lists orphans.
    ///
    /// # Crash safety of Create
    ///
    /// A create makes, in this order: the container's directory (the
    /// agent's), its `config.json`, in bridge mode its network attachment
    /// (recorded by the networking phase by phase, found by the container's
    /// id), a monitor (working in that directory),
    /// which makes the libcrun state, the cgroups and the init process;
    /// then the agent writes `record.json`, atomically. The record is the
    /// commit point: a container directory without one is a create in
    /// flight, and everything such a create made is found from its id (the
    /// directory, the network attachment, the monitor by its working
    /// directory, libcrun's state, the cgroups under this root's cgroup
    /// parent). An agent SIGKILLed at
    /// any line of a create leaves a complete container (listed after a
    /// restart) or such leftovers, which this undoes: the client saw no
    /// success, so nothing it knows of is lost.
    ///
    /// # Crash safety of `auto_remove`
    ///
    /// The wish to delete is in the record from the create on; the exit is
    /// in the monitor's `exit.json`. An agent killed before the exit, after
    /// it was recorded or during the delete leaves a record with
    /// `auto_remove` that is or becomes stopped, which this deletes; one
    /// killed while the delete removed the directory leaves a directory
    /// without its record, undone like a create in flight.
    pub async fn recover(self: &Arc<Self>) -> Result<RecoverReport> {
        let mut report = RecoverReport::default();
        let mut in_flight = BTreeSet::new();
        let mut to_remove = Vec::new();
        let dirs = self.store.container_ids()?;
        for id in &dirs {
            let id = id.clone();
            let known = self.entry(&id).ok();
            let entry = match known {
                Some(entry) => entry,
                None => match self.store.load_record(&id) {
                    Ok(Some(record)) if record.config.id == id => {
                        let entry = Arc::new(Entry::new(record));
                        self.containers
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.clone(), entry.clone());
                        self.recover_processes(&id);
                        if entry.snapshot().status != Status::Stopped {
                            if let Some(m) = entry
                                .snapshot()
                                .monitor
                                .filter(|m| self.backend.is_alive(*m))
                            {
                                info!(container = %id, monitor = m.pid, "adopted running container");
                                let run = entry.snapshot().run;
                                self.watch_monitor(id.clone(), run, m);
                                self.start_health_checks(&id, run);
                                report.adopted.push(id.clone());
                            }
                        }
                        entry
                    }
                    Ok(None) => {
                        in_flight.insert(id);
                        continue;
                    }
                    // Reported as an orphan below.
                    _ => continue,
                },
            };
            let record = entry.snapshot();
            if record.status != Status::Stopped
                && !record.monitor.is_some_and(|m| self.backend.is_alive(m))
            {
                if self.monitor_exited(&id, record.run).await {
                    to_remove.push(id.clone());
                }
                report.exited.push(id);
            } else if record.status == Status::Stopped
                && record.config.auto_remove
                && entry.claim_removal()
            {
                // A previous agent recorded the exit but was killed before
                // (or while) deleting it.
                to_remove.push(id);
            }
        }
        // Attachments first: what a crash left half-made is finished or
        // undone, so that undoing a create below detaches a whole one, and
        // deleting a container below tears down a whole one.
        self.recover_networks().await?;
        for id in to_remove {
            if self.remove_exited(&id).await {
                report.removed.push(id);
            }
        }
        // What a create or delete killed half-way left outside a container
        // directory.
        let elsewhere = dir_names(&self.store.libcrun_root())?
            .into_iter()
            .filter(|id| !id.starts_with('.'))
            .chain(self.cgroup_dirs(None)?.into_iter().map(|(id, _)| id))
            .filter(|id| dirs.binary_search(id).is_err());
        in_flight.extend(elsewhere);
        for id in in_flight {
            // A create of this agent that is still under way is not undone.
            if self.known_ids().contains(&id) || ids::validate("container", &id).is_err() {
                continue;
            }
            warn!(container = %id, "undoing a create that did not complete");
            // One stuck leftover must not keep the agent from starting: it
            // stays listed as an orphan.
            match self.remove_leftovers(&id).await {
                Ok(_) => report.undone.push(id),
                Err(e) => warn!(container = %id, error = %e, "cannot undo the create"),
            }
        }
        report.orphans = self.orphans()?;
        Ok(report)
    }

    /// Reports the exit of the exec processes a previous agent started and
    /// could not see end (it was killed): each is killed if it still runs
    /// (nobody can read its output or wait for it any more) and gets an
    /// exit event marked unknown.
    pub(super) fn end_lost_execs(&self) {
        for entry in self.all_entries() {
            let record = entry.snapshot();
            let id = &record.config.id;
            for (exec_id, process) in self.store.noted_execs(id) {
                let killed = process.is_some_and(|p| {
                    p.is_alive() && self.backend.signal_process(p.pid, libc::SIGKILL).is_ok()
                });
                warn!(container = %id, exec = %exec_id, killed, "exec ended unobserved");
                let exit = ExitStatus::unknown(killed, std::time::SystemTime::now());
                self.emit(
                    EventKind::Exit,
                    &record,
                    Some(&exec_id),
                    Some(EventDetails::Exit(exit)),
                );
                self.store.forget_exec(id, &exec_id);
            }
        }
    }

    /// Lists what is left over: libcrun state without a record, records
    /// whose processes vanished unobserved, cgroups, mounts and container
    /// directories no container owns.
    pub fn orphans(&self) -> Result<Vec<Orphan>> {
        let known = self.known_ids();
        let mut orphans = Vec::new();
        let orphan = |kind, id: &str, path: Option<PathBuf>, detail: String| Orphan {
            kind,
            container_id: id.to_string(),
            path,
            detail,
        };
        // Names starting with a dot are libcrun's own (`.cache`, its
        // compiled seccomp filters), never a container's id.
        for id in dir_names(&self.store.libcrun_root())? {
            if !known.contains(&id) && !id.starts_with('.') {
                let path = self.store.libcrun_root().join(&id);
                orphans.push(orphan(
                    OrphanKind::RuntimeState,
                    &id,
                    Some(path),
                    "libcrun state without a record".into(),
                ));
            }
        }
        for id in self.store.container_ids()? {
            if !known.contains(&id) {
                let path = self.store.container_dir(&id);
                orphans.push(orphan(
                    OrphanKind::StateDirectory,
                    &id,
                    Some(path),
                    "container directory without a valid record".into(),
                ));
            }
        }
        for view in self.list(&Default::default()) {
            if view.record.exit_unknown {
                orphans.push(orphan(
                    OrphanKind::MissingProcess,
                    &view.record.config.id,
                    None,
                    "its monitor vanished without recording the exit (what still ran was killed)"
                        .into(),
                ));
            }
        }
        for (id, path) in self.cgroup_dirs(None)? {
            if !known.contains(&id) {
                orphans.push(orphan(
                    OrphanKind::Cgroup,
                    &id,
                    Some(path),
                    "cgroup without a container".into(),
                ));
            }
        }
        orphans.extend(self.network_orphans(&known));
        for (id, path) in self.mounts(None)? {
            if !known.contains(&id) {
                orphans.push(orphan(
                    OrphanKind::Mount,
                    &id,
                    Some(path),
                    "mount without a container".into(),
                ));
            }
        }
        Ok(orphans)
    }

    /// The roots holding this agent's container cgroups (one per v1
    /// controller, or the v2 one).
    fn cgroup_parents(&self) -> Vec<PathBuf> {
        let rel = self.cgroup_parent.trim_start_matches('/');
        let root = Path::new("/sys/fs/cgroup");
        match self.options.cgroups.effective_mode {
            libcrun_sys::cgroup::CgroupMode::V2 => vec![root.join(rel)],
            // Only real v1 hierarchies: libcrun also creates plain
            // directories in non-cgroup folders such as a hidden
            // `unified` mount point.
            _ => dir_names(root)
                .unwrap_or_default()
                .into_iter()
                .map(|controller| root.join(controller))
                .filter(|dir| is_cgroup_v1(dir))
                .map(|dir| dir.join(rel))
                .filter(|p| p.is_dir())
                .collect(),
        }
    }

    /// Container cgroups: (container id, directory), for one id or all.
    fn cgroup_dirs(&self, only: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
        let mut found = Vec::new();
        for parent in self.cgroup_parents() {
            for id in dir_names(&parent)? {
                if only.is_none_or(|o| o == id) {
                    found.push((id.clone(), parent.join(&id)));
                }
            }
        }
        Ok(found)
    }

    /// The processes in container `id`'s cgroups.
    fn cgroup_pids(&self, id: &str) -> Vec<i32> {
        self.cgroup_dirs(Some(id))
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, dir)| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|procs| {
                procs
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Kills every process of container `id`, whose monitor is gone, and
    /// waits until its cgroups are empty. Whether any process was left.
    pub(super) async fn kill_unmonitored(&self, id: &str, paused: bool) -> bool {
        if self.cgroup_pids(id).is_empty() {
            return false;
        }
        if let Err(e) = self.signal(id, libc::SIGKILL, true, paused).await {
            warn!(container = %id, error = %e, "cannot kill through libcrun; killing its cgroup's processes");
        }
        let deadline = tokio::time::Instant::now() + FORCE_KILL_WAIT;
        loop {
            let pids = self.cgroup_pids(id);
            if pids.is_empty() || tokio::time::Instant::now() >= deadline {
                if !pids.is_empty() {
                    warn!(container = %id, ?pids, "processes survive SIGKILL");
                }
                return true;
            }
            for pid in pids {
                let _ = self.backend.signal_process(pid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Mounts under container directories: (container id, mount point).
    fn mounts(&self, only: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
        let base = self.store.root().join("containers");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context(|| "reading mountinfo".into())?;
        Ok(mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter_map(|point| {
                let id = point.strip_prefix(&base).ok()?.components().next()?;
                let id = id.as_os_str().to_str()?.to_string();
                only.is_none_or(|o| o == id).then_some((id, point.clone()))
            })
            .collect())
    }

    /// Kills and removes whatever is left of container `id`: its
    /// processes, libcrun state, cgroups, mounts, directory and record.
    /// Returns what was found; nothing when nothing was left.
    pub async fn force_delete(self: &Arc<Self>, id: &str) -> Result<Vec<Orphan>> {
        ids::validate("container", id)?;
        let mut removed = Vec::new();
        let entry = self.entry(id).ok();
        if let Some(entry) = &entry {
            let record = entry.snapshot();
            if record.status != Status::Stopped {
                let _ = self
                    .signal(id, libc::SIGKILL, true, record.status == Status::Paused)
                    .await;
                if entry
                    .wait_exit(record.run, Some(FORCE_KILL_WAIT))
                    .await
                    .is_none()
                    && let Some(m) = record.monitor.filter(|m| self.backend.is_alive(*m))
                {
                    let _ = self.backend.signal_process(m.pid, libc::SIGKILL);
                    removed.push(Orphan {
                        kind: OrphanKind::MissingProcess,
                        container_id: id.to_string(),
                        path: None,
                        detail: format!("killed monitor {}", m.pid),
                    });
                }
            }
        }
        removed.extend(self.remove_leftovers(id).await?);
        if let Some(entry) = entry {
            let record = entry.lock().await;
            self.containers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            self.emit(EventKind::Delete, &record, None, None);
        }
        info!(container = %id, removed = removed.len(), "force-deleted");
        Ok(removed)
    }

    /// Removes what container `id` has on the system, whether or not it has
    /// a record: monitors working in its directory, its libcrun state (its
    /// processes killed), cgroups, mounts and directory. Returns what was
    /// found.
    pub(super) async fn remove_leftovers(self: &Arc<Self>, id: &str) -> Result<Vec<Orphan>> {
        let mut removed = Vec::new();
        let monitors = crate::process::working_in(&self.store.container_dir(id));
        for monitor in &monitors {
            let _ = self.backend.signal_process(monitor.pid, libc::SIGKILL);
            removed.push(Orphan {
                kind: OrphanKind::MissingProcess,
                container_id: id.to_string(),
                path: None,
                detail: format!("killed monitor {}", monitor.pid),
            });
        }
        for monitor in monitors {
            let _ = tokio::time::timeout(FORCE_KILL_WAIT, self.backend.exited(monitor)).await;
        }
        let state = self.store.libcrun_root().join(id);
        let had_state = state.exists();
        // Asked even without state on disk: the backend knows what it holds
        // (libcrun answers ENOENT). The cgroups are removed below in any
        // case.
        let cid = id.to_string();
        let deleted = self
            .call(format!("deleting {id}"), move |b| b.delete(&cid, true))
            .await;
        if had_state {
            if let Err(e) = deleted {
                warn!(container = %id, error = %e, "libcrun delete failed; removing its state");
                let _ = std::fs::remove_dir_all(&state);
            }
            removed.push(Orphan {
                kind: OrphanKind::RuntimeState,
                container_id: id.to_string(),
                path: Some(state),
                detail: "libcrun state removed".into(),
            });
        }
        for (_, dir) in self.cgroup_dirs(Some(id))? {
            remove_cgroup(&dir).context(|| format!("removing cgroup {}", dir.display()))?;
            removed.push(Orphan {
                kind: OrphanKind::Cgroup,
                container_id: id.to_string(),
                path: Some(dir),
                detail: "cgroup removed".into(),
            });
        }
        for (_, point) in self.mounts(Some(id))?.into_iter().rev() {
            // Private first: see `propagation::detach`.
            let _ = super::propagation::detach(&point);
            removed.push(Orphan {
                kind: OrphanKind::Mount,
                container_id: id.to_string(),
                path: Some(point),
                detail: "unmounted".into(),
            });
        }
        if self.tear_down_network(id).await? {
            removed.push(Orphan {
                kind: OrphanKind::Network,
                container_id: id.to_string(),
                path: Some(self.networking().netns_dir().path(id)),
                detail: "network attachment removed".into(),
            });
        }
        let dir = self.store.container_dir(id);
        if dir.exists() {
            self.discard_container_files(id)?;
            removed.push(Orphan {
                kind: OrphanKind::StateDirectory,
                container_id: id.to_string(),
                path: Some(dir),
                detail: "container directory removed".into(),
            });
        }
        Ok(removed)
    }
}

/// The names of the subdirectories of `dir` (none if it does not exist).
fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(crate::error::Error::io(
                format!("listing {}", dir.display()),
                e,
            ));
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Whether `dir` is the root of a cgroup v1 hierarchy.
fn is_cgroup_v1(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `buf` is a plain struct statfs fills in.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid path and `buf` a valid out pointer.
    unsafe { libc::statfs(c.as_ptr(), &mut buf) == 0 && buf.f_type == libc::CGROUP_SUPER_MAGIC }
}

/// A mount point from mountinfo, where spaces and such are octal escapes.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// Kills the processes of a cgroup and removes it (and its empty
/// sub-cgroups).
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    for child in dir_names(dir).unwrap_or_default() {
        remove_cgroup(&dir.join(child))?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kills a process of the leftover cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mount_path("/end\\"), PathBuf::from("/end\\"));
    }
}
