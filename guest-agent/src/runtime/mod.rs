//! The runtime core: containers, their lifecycle, exec and logs, on top of
//! libcrun, the monitors and the store. Knows nothing of gRPC.
//!
//! libcrun calls that fork (create, exec) run in the `crun-shim-monitor`
//! helper processes; the others (start, kill, pause, resume, update,
//! delete) run here on tokio's blocking threads, serialized by libcrun-sys.

mod entry;
pub mod exec;
mod launch;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::{info, warn};

pub use entry::Entry;

use crate::error::{Error, IoContext, Result};
use crate::ids;
use crate::logs::{self, LogEntry, LogQuery};
use crate::model::{ContainerConfig, ExitStatus, Resources, RootSource, Status};
use crate::monitor::{CreateReport, MonitorArgs};
use crate::process::ProcessRef;
use crate::spec;
use crate::store::{self, Record, Store};

/// How long Create waits for the monitor to report.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Stop and Delete wait for a container to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Stop's grace period when neither the request nor the container sets one.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The state root.
    pub root: PathBuf,
    /// The `crun-shim-monitor` binary.
    pub monitor_binary: PathBuf,
    /// The host's cgroup mode and what the agent did about it.
    pub cgroups: libcrun_sys::cgroup::Preparation,
}

/// Which containers `list` returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these states (all when empty).
    pub statuses: Vec<Status>,
    /// Only containers with all these labels (an empty value matches any).
    pub labels: BTreeMap<String, String>,
}

/// The runtime.
#[derive(Debug)]
pub struct Runtime {
    store: Store,
    options: RuntimeOptions,
    libcrun: libcrun_sys::Context,
    base_spec: oci_spec::runtime::Spec,
    /// Prefix of the containers' cgroup paths, unique to this state root.
    cgroup_parent: String,
    containers: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Ids being created (not yet in `containers`).
    reserved: std::sync::Mutex<HashSet<String>>,
    monitors: launch::Launcher,
    started_at: SystemTime,
}

/// Runs a blocking libcrun call on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> std::result::Result<T, libcrun_sys::Error> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?
        .map_err(|e| Error::libcrun(what, e))
}

impl Runtime {
    /// Opens the state root and takes over the containers recorded there:
    /// running ones are watched again, and the exits that happened while no
    /// agent was running are recorded.
    pub async fn open(options: RuntimeOptions) -> Result<Arc<Runtime>> {
        let store = Store::open(&options.root)?;
        let libcrun = libcrun_sys::Context::builder(store.libcrun_root())
            .build()
            .map_err(|e| Error::libcrun("libcrun context", e))?;
        let base_spec = spec::parse_base(
            &libcrun_sys::default_spec(false)
                .map_err(|e| Error::libcrun("libcrun's default spec", e))?,
        )?;
        let cgroup_parent = format!(
            "/libcrun-shim/{}",
            short_hash(store.root().as_os_str().as_encoded_bytes())
        );
        let runtime = Arc::new(Runtime {
            store,
            options: options.clone(),
            libcrun,
            base_spec,
            cgroup_parent,
            containers: RwLock::new(BTreeMap::new()),
            reserved: std::sync::Mutex::new(HashSet::new()),
            monitors: launch::Launcher::new(options.monitor_binary.clone()),
            started_at: SystemTime::now(),
        });
        runtime.recover().await?;
        runtime.monitors.refill();
        Ok(runtime)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The options the runtime was opened with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// When the runtime was opened.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>> {
        ids::validate("container", id)?;
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Loads the records of the state root and reconciles them with the
    /// monitors still running.
    async fn recover(self: &Arc<Self>) -> Result<()> {
        let _ = std::fs::remove_dir_all(self.store.exec_dir());
        std::fs::create_dir_all(self.store.exec_dir())
            .context(|| "creating the exec directory".into())?;
        for id in self.store.container_ids()? {
            let record = match self.store.load_record(&id) {
                Ok(Some(record)) if record.config.id == id => record,
                Ok(_) => {
                    warn!(container = %id, "container directory without a valid record; left alone");
                    continue;
                }
                Err(e) => {
                    warn!(container = %id, error = %e, "unreadable record; left alone");
                    continue;
                }
            };
            let monitor = record.monitor;
            let run = record.run;
            let live = record.status != Status::Stopped;
            let entry = Arc::new(Entry::new(record));
            self.containers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), entry.clone());
            if live {
                match monitor {
                    Some(m) if m.is_alive() => {
                        info!(container = %id, monitor = m.pid, "adopted running container");
                        self.watch_monitor(id, run, m);
                    }
                    _ => self.monitor_exited(&id, run).await,
                }
            }
        }
        Ok(())
    }

    /// Watches a run's monitor and records the run's exit when it ends.
    fn watch_monitor(self: &Arc<Self>, id: String, run: u32, monitor: ProcessRef) {
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = monitor.exited().await {
                warn!(container = %id, error = %e, "cannot watch the monitor; polling");
                while monitor.is_alive() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            runtime.monitor_exited(&id, run).await;
        });
    }

    /// Records the end of run `run` after its monitor exited.
    async fn monitor_exited(&self, id: &str, run: u32) {
        let Ok(entry) = self.entry(id) else { return };
        let mut record = entry.lock().await;
        if record.run != run || record.status == Status::Stopped {
            return;
        }
        let exit = match self.store.load_exit(id) {
            Ok(Some(exit)) if exit.run == run => exit.exit,
            other => {
                if let Err(e) = other {
                    warn!(container = %id, error = %e, "unreadable exit record");
                }
                // The monitor died without recording the exit (it was
                // killed): the exit code is unknown.
                warn!(container = %id, "monitor gone without an exit record; exit code unknown (255)");
                ExitStatus {
                    exit_code: 255,
                    signal: 0,
                    oom_killed: false,
                    finished_at: SystemTime::now(),
                }
            }
        };
        record.status = Status::Stopped;
        record.pid = 0;
        record.monitor = None;
        record.last_exit = Some(exit);
        if let Err(e) = self.store.save_record(&record) {
            warn!(container = %id, error = %e, "cannot save the exit");
        }
        entry.publish(&record);
        info!(container = %id, exit_code = exit.exit_code, signal = exit.signal, "container exited");
    }

    /// Creates a container: builds its OCI spec, starts its monitor, which
    /// creates it through libcrun, and records it. A failed create leaves
    /// nothing behind.
    pub async fn create(self: &Arc<Self>, config: ContainerConfig) -> Result<Record> {
        let id = config.id.clone();
        ids::validate("container", &id)?;
        {
            let exists = self
                .containers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&id);
            let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
            if exists || self.store.container_dir(&id).exists() || !reserved.insert(id.clone()) {
                return Err(Error::AlreadyExists(format!(
                    "container {id} already exists"
                )));
            }
        }
        let result = self.create_reserved(config).await;
        if result.is_err() {
            // Leave nothing behind: no libcrun state, cgroup or directory.
            let libcrun = self.libcrun.clone();
            let cid = id.clone();
            let _ = blocking("cleanup".into(), move || libcrun.delete(&cid, true)).await;
            let _ = self.store.remove_container(&id);
        }
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        result
    }

    async fn create_reserved(self: &Arc<Self>, config: ContainerConfig) -> Result<Record> {
        let id = config.id.clone();
        let rootfs = match &config.root {
            RootSource::Rootfs(path) => check_rootfs(path)?,
            RootSource::Image(reference) => {
                return Err(Error::NotFound(format!(
                    "image {reference} is not in the agent's image store"
                )));
            }
        };
        let oci = spec::build(
            &config,
            &spec::SpecContext {
                base: &self.base_spec,
                rootfs: &rootfs,
                cgroup_path: format!("{}/{id}", self.cgroup_parent),
            },
        )?;
        let dir = self.store.container_dir(&id);
        std::fs::create_dir_all(dir.join(store::LOGS_DIR))
            .context(|| format!("creating {}", dir.display()))?;
        let spec_json = serde_json::to_vec_pretty(&oci)
            .map_err(|e| Error::Internal(format!("spec JSON: {e}")))?;
        store::write_atomic(&dir.join(store::CONFIG_FILE), &spec_json)
            .context(|| format!("writing {}", dir.join(store::CONFIG_FILE).display()))?;

        let run = 1;
        let (pid, monitor) = self.spawn_monitor(&config, run).await?;
        let record = Record {
            config,
            status: Status::Created,
            pid,
            monitor: Some(monitor),
            run,
            created_at: SystemTime::now(),
            started_at: None,
            last_exit: None,
            restart_count: 0,
            rootfs_path: rootfs,
        };
        self.store.save_record(&record)?;
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(Entry::new(record.clone())));
        self.watch_monitor(id.clone(), run, monitor);
        info!(container = %id, pid, "container created");
        Ok(record)
    }

    /// Starts a monitor for run `run` and waits for its report.
    async fn spawn_monitor(&self, config: &ContainerConfig, run: u32) -> Result<(i32, ProcessRef)> {
        let id = &config.id;
        let args = MonitorArgs {
            root: self.store.root().to_path_buf(),
            id: id.clone(),
            run,
            log: config.log,
        };
        let mut child = self
            .monitors
            .launch(&args)
            .context(|| format!("starting {}", self.options.monitor_binary.display()))?;
        self.monitors.refill();
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
                    "container {id}: no report from its monitor within {CREATE_TIMEOUT:?}"
                )));
            }
        };
        match (report, monitor) {
            // The monitor outlives this call; its watcher reaps it.
            (Some(CreateReport::Created { pid }), Some(monitor)) => Ok((pid, monitor)),
            (Some(CreateReport::Failed { errno, message }), _) => {
                reap_later(child);
                Err(Error::libcrun(
                    format!("creating container {id}"),
                    libcrun_sys::Error::Libcrun { errno, message },
                ))
            }
            _ => {
                reap_later(child);
                let diag_path = self.store.container_dir(id).join(store::MONITOR_LOG);
                let diag = std::fs::read_to_string(&diag_path).unwrap_or_default();
                Err(Error::Internal(format!(
                    "container {id}: the monitor exited without a report: {}",
                    diag.lines().last().unwrap_or("no diagnostics")
                )))
            }
        }
    }

    /// Starts a created container.
    pub async fn start(&self, id: &str) -> Result<Record> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        if record.status != Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}, not created",
                record.status.as_str()
            )));
        }
        let libcrun = self.libcrun.clone();
        let cid = id.to_string();
        blocking(format!("starting container {id}"), move || {
            libcrun.start(&cid)
        })
        .await?;
        record.status = Status::Running;
        record.started_at = Some(SystemTime::now());
        self.store.save_record(&record)?;
        entry.publish(&record);
        info!(container = %id, "container started");
        Ok(record.clone())
    }

    /// Sends a signal to a container's init process (or all its
    /// processes).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let entry = self.entry(id)?;
        let record = entry.lock().await;
        if record.status == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is not running"
            )));
        }
        self.signal(id, signal, all, record.status == Status::Paused)
            .await
    }

    /// Sends `signal`; a paused container is thawed afterwards so that it
    /// can act on it.
    async fn signal(&self, id: &str, signal: i32, all: bool, paused: bool) -> Result<()> {
        let libcrun = self.libcrun.clone();
        let cid = id.to_string();
        let sig = signal.to_string();
        blocking(format!("signalling container {id}"), move || {
            if all {
                libcrun.kill_all(&cid, &sig)?;
            } else {
                libcrun.kill(&cid, &sig)?;
            }
            if paused {
                libcrun.unpause(&cid)?;
            }
            Ok(())
        })
        .await
    }

    /// Stops a container: `signal`, then SIGKILL after `timeout`. Returns
    /// once it has exited.
    pub async fn stop(
        &self,
        id: &str,
        signal: Option<i32>,
        timeout: Option<Duration>,
    ) -> Result<Record> {
        let entry = self.entry(id)?;
        let (run, signal, timeout) = {
            let record = entry.lock().await;
            if record.status == Status::Stopped {
                return Ok(record.clone());
            }
            let signal = match signal {
                Some(s) => s,
                None => match &record.config.stop_signal {
                    Some(name) => spec::signal::parse(name)?,
                    None => libc::SIGTERM,
                },
            };
            let timeout = timeout
                .or(record.config.stop_timeout)
                .unwrap_or(DEFAULT_STOP_TIMEOUT);
            // A container that never started has no user process to ask.
            let signal = if record.status == Status::Created {
                libc::SIGKILL
            } else {
                signal
            };
            if !timeout.is_zero() || signal == libc::SIGKILL {
                self.signal(id, signal, false, record.status == Status::Paused)
                    .await?;
            }
            (record.run, signal, timeout)
        };
        if signal == libc::SIGKILL || entry.wait_exit(run, Some(timeout)).await.is_none() {
            self.kill_and_wait(id, &entry, run).await?;
        }
        Ok(entry.snapshot())
    }

    /// Kills every process of run `run` and waits for its exit.
    async fn kill_and_wait(&self, id: &str, entry: &Entry, run: u32) -> Result<()> {
        {
            let record = entry.lock().await;
            if record.run == run && record.status != Status::Stopped {
                self.signal(id, libc::SIGKILL, true, record.status == Status::Paused)
                    .await?;
            }
        }
        entry
            .wait_exit(run, Some(KILL_TIMEOUT))
            .await
            .map(drop)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "container {id} did not die within {KILL_TIMEOUT:?} of SIGKILL"
                ))
            })
    }

    /// Freezes a running container.
    pub async fn pause(&self, id: &str) -> Result<Record> {
        self.freeze(id, true).await
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &str) -> Result<Record> {
        self.freeze(id, false).await
    }

    async fn freeze(&self, id: &str, pause: bool) -> Result<Record> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        let (from, to, verb) = if pause {
            (Status::Running, Status::Paused, "pausing")
        } else {
            (Status::Paused, Status::Running, "resuming")
        };
        if record.status != from {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}, not {}",
                record.status.as_str(),
                from.as_str()
            )));
        }
        let libcrun = self.libcrun.clone();
        let cid = id.to_string();
        blocking(format!("{verb} container {id}"), move || {
            if pause {
                libcrun.pause(&cid)
            } else {
                libcrun.unpause(&cid)
            }
        })
        .await?;
        record.status = to;
        self.store.save_record(&record)?;
        entry.publish(&record);
        Ok(record.clone())
    }

    /// Deletes a container. A running or paused one needs `force` (it is
    /// killed first); a created one is killed without.
    pub async fn delete(&self, id: &str, force: bool) -> Result<()> {
        let entry = self.entry(id)?;
        let run = {
            let record = entry.lock().await;
            match record.status {
                Status::Running | Status::Paused if !force => {
                    return Err(Error::FailedPrecondition(format!(
                        "container {id} is {}; stop it first or delete with force",
                        record.status.as_str()
                    )));
                }
                _ => record.run,
            }
        };
        if entry.snapshot().status != Status::Stopped {
            self.kill_and_wait(id, &entry, run).await?;
        }
        let record = entry.lock().await;
        if record.status != Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {id} was restarted meanwhile"
            )));
        }
        let libcrun = self.libcrun.clone();
        let cid = id.to_string();
        let deleted = blocking(format!("deleting container {id}"), move || {
            libcrun.delete(&cid, true)
        })
        .await;
        if let Err(e) = deleted {
            // Already gone from libcrun's state is fine.
            if !matches!(&e, Error::Libcrun { source, .. } if source.errno() == Some(libc::ENOENT))
            {
                return Err(e);
            }
        }
        self.store.remove_container(id)?;
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        drop(record);
        info!(container = %id, "container deleted");
        Ok(())
    }

    /// Lists containers, ordered by creation time.
    pub fn list(&self, filter: &ListFilter) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .all_entries()
            .iter()
            .map(|e| e.snapshot())
            .filter(|r| filter.statuses.is_empty() || filter.statuses.contains(&r.status))
            .filter(|r| labels_match(&r.config.labels, &filter.labels))
            .collect();
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.config.id.cmp(&b.config.id))
        });
        records
    }

    /// A container's record, running exec ids and OCI spec (JSON).
    pub fn inspect(&self, id: &str) -> Result<(Record, Vec<String>, String)> {
        let entry = self.entry(id)?;
        let path = self.store.container_dir(id).join(store::CONFIG_FILE);
        let spec =
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
        let execs = entry
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        Ok((entry.snapshot(), execs, spec))
    }

    /// Waits for the container's current run to exit.
    pub async fn wait(&self, id: &str) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        let run = entry.snapshot().run;
        entry
            .wait_exit(run, None)
            .await
            .ok_or_else(|| Error::NotFound(format!("container {id} was deleted while waiting")))
    }

    /// Changes a container's resource limits; only those set change.
    pub async fn update(&self, id: &str, resources: &Resources) -> Result<Record> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        let mut merged = record.config.resources.clone();
        merged.merge(resources);
        if record.status != Status::Stopped {
            let json = serde_json::to_string(&spec::resources(resources))
                .map_err(|e| Error::Internal(format!("resources JSON: {e}")))?;
            let libcrun = self.libcrun.clone();
            let cid = id.to_string();
            blocking(format!("updating container {id}"), move || {
                libcrun.update(&cid, &json)
            })
            .await?;
        }
        // Keep the spec in step, for later runs.
        let path = self.store.container_dir(id).join(store::CONFIG_FILE);
        let mut oci: oci_spec::runtime::Spec = serde_json::from_str(
            &std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?,
        )
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        spec::apply_resources(&mut oci, &merged);
        let json = serde_json::to_vec_pretty(&oci)
            .map_err(|e| Error::Internal(format!("spec JSON: {e}")))?;
        store::write_atomic(&path, &json).context(|| format!("writing {}", path.display()))?;
        record.config.resources = merged;
        self.store.save_record(&record)?;
        entry.publish(&record);
        Ok(record.clone())
    }

    /// Streams a container's logs.
    pub fn logs(
        &self,
        id: &str,
        query: LogQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<std::io::Result<Vec<LogEntry>>>> {
        let entry = self.entry(id)?;
        Ok(logs::read(
            self.store.logs_dir(id),
            query,
            entry.stopped_watch(),
        ))
    }
}

/// Reaps a monitor that is exiting, off the async threads.
fn reap_later(mut child: std::process::Child) {
    tokio::task::spawn_blocking(move || child.wait());
}

/// Checks a rootfs path: absolute, existing, a directory.
fn check_rootfs(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidArgument(
            "a rootfs path or an image is required".into(),
        ));
    }
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {} is not an absolute path",
            path.display()
        )));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => path
            .canonicalize()
            .context(|| format!("resolving rootfs {}", path.display())),
        Ok(_) => Err(Error::InvalidArgument(format!(
            "rootfs {} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!(
            "rootfs {} does not exist",
            path.display()
        ))),
        Err(e) => Err(Error::io(format!("rootfs {}", path.display()), e)),
    }
}

/// Whether `labels` carry every wanted label (an empty wanted value matches
/// any value).
pub fn labels_match(labels: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| v.is_empty() || have == v))
}

/// A short stable hash (FNV-1a, 64 bits, hex) of some bytes.
fn short_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
