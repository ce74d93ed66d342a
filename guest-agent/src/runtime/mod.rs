//! The runtime core: containers, their lifecycle, exec, logs, events,
//! metrics, health checks, restart policies and recovery, on top of
//! libcrun, the monitors and the store. Knows nothing of gRPC.
//!
//! libcrun calls that fork (create, exec) run in the `crun-shim-monitor`
//! helper processes; the others (start, kill, pause, resume, update,
//! delete) run here on tokio's blocking threads, serialized by libcrun-sys.
//! All of them go through a [`Backend`], so that the runtime's decisions
//! are unit-tested without root.

pub mod attach;
pub mod backend;
mod entry;
pub mod exec;
mod health;
mod images;
mod launch;
mod lifecycle;
mod mounts;
pub mod network;
mod observe;
pub mod process;
mod propagation;
mod recovery;
mod restart;
mod rootfs;
mod run;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tracing::warn;

pub use backend::Backend;
pub use entry::{ContainerView, Entry, Inspection};
pub use network::{NetworkInfo, NetworkOptions};
pub use recovery::RecoverReport;
pub use run::RunEvent;

use crate::error::{Error, IoContext, Result};
use crate::events::{EventDraft, Journal, JournalLimits};
use crate::ids;
use crate::model::{EventDetails, EventKind, Resources, Status};
use crate::spec;
use crate::store::{self, Record, Store};

/// How long Stop and Delete wait for a container to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The state root.
    pub root: PathBuf,
    /// Where the agent serves (`unix:///PATH`, `vsock://CID:PORT`),
    /// recorded with the root's lock for a daemon that finds it running.
    pub serves: String,
    /// The `crun-shim-monitor` binary.
    pub monitor_binary: PathBuf,
    /// The host's cgroup mode and what the agent did about it.
    pub cgroups: libcrun_sys::cgroup::Preparation,
    /// Bounds of the event journal.
    pub journal: JournalLimits,
    /// The image store's options (it lives in `ROOT/images`).
    pub images: crun_shim_images::StoreOptions,
    /// The networking's options.
    pub network: NetworkOptions,
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
    backend: Arc<dyn Backend>,
    base_spec: oci_spec::runtime::Spec,
    /// Prefix of the containers' cgroup paths, unique to this state root.
    cgroup_parent: String,
    containers: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Ids being created (not yet in `containers`).
    reserved: std::sync::Mutex<HashSet<String>>,
    /// Detached exec processes, by (container id, exec id).
    processes: std::sync::Mutex<BTreeMap<(String, String), Arc<process::ProcessEntry>>>,
    journal: Arc<Journal>,
    images: crun_shim_images::Store,
    networking: Arc<crun_shim_network::Networking>,
    started_at: SystemTime,
}

/// Appends an event about the container of `record` to `journal`.
fn journal_event(
    journal: &Journal,
    kind: EventKind,
    record: &Record,
    exec_id: Option<&str>,
    details: Option<EventDetails>,
) {
    let draft = EventDraft {
        kind,
        container_id: record.config.id.clone(),
        exec_id: exec_id.map(str::to_string),
        labels: record.config.labels.clone(),
        details,
    };
    if let Err(e) = journal.publish(draft) {
        warn!(container = %record.config.id, ?kind, error = %e, "cannot journal an event");
    }
}

impl Runtime {
    /// Opens the state root and takes over the containers recorded there:
    /// running ones are watched again, and the exits that happened while no
    /// agent was running are recorded.
    pub async fn open(options: RuntimeOptions) -> Result<Arc<Runtime>> {
        let store = Store::open(&options.root, &options.serves)?;
        let backend = backend::Libcrun::new(store.clone(), options.monitor_binary.clone())?;
        Runtime::open_with(options, store, Arc::new(backend)).await
    }

    /// [`Runtime::open`] on `store` (opened, and locked, from
    /// `options.root`), acting through `backend`.
    async fn open_with(
        options: RuntimeOptions,
        store: Store,
        backend: Arc<dyn Backend>,
    ) -> Result<Arc<Runtime>> {
        let base_spec = spec::parse_base(
            &libcrun_sys::default_spec(false)
                .map_err(|e| Error::libcrun("libcrun's default spec", e))?,
        )?;
        let cgroup_parent = format!(
            "/libcrun-shim/{}",
            short_hash(store.root().as_os_str().as_encoded_bytes())
        );
        let journal = Arc::new(Journal::open(
            &store.root().join("events"),
            options.journal,
        )?);
        let images_root = store.root().join("images");
        let images = tokio::task::spawn_blocking({
            let options = options.images.clone();
            move || crun_shim_images::Store::open(&images_root, options)
        })
        .await
        .map_err(|e| Error::Internal(format!("opening the image store: {e}")))??;
        let networking = tokio::task::spawn_blocking({
            let options = options.network.networking.clone();
            move || crun_shim_network::Networking::open(options)
        })
        .await
        .map_err(|e| Error::Internal(format!("opening the networking: {e}")))??;
        let runtime = Arc::new(Runtime {
            store,
            options: options.clone(),
            backend,
            base_spec,
            cgroup_parent,
            containers: RwLock::new(BTreeMap::new()),
            reserved: std::sync::Mutex::new(HashSet::new()),
            processes: std::sync::Mutex::new(BTreeMap::new()),
            journal,
            images,
            networking: Arc::new(networking),
            started_at: SystemTime::now(),
        });
        let exec_dir = runtime.store.exec_dir();
        let _ = std::fs::remove_dir_all(&exec_dir);
        std::fs::create_dir_all(&exec_dir)
            .context(|| format!("creating {}", exec_dir.display()))?;
        let report = runtime.recover().await?;
        runtime.end_lost_execs();
        for orphan in &report.orphans {
            warn!(container = %orphan.container_id, kind = ?orphan.kind, path = ?orphan.path, "{}", orphan.detail);
        }
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

    /// Makes a blocking backend call (libcrun's) on tokio's blocking
    /// threads.
    async fn call<T: Send + 'static>(
        &self,
        what: String,
        f: impl FnOnce(&dyn Backend) -> libcrun_sys::Result<T> + Send + 'static,
    ) -> Result<T> {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| Error::Internal(format!("{what}: {e}")))?
            .map_err(|e| Error::libcrun(what, e))
    }

    /// Saves a changed record and shows it to readers and waiters.
    fn commit(&self, entry: &Entry, record: &Record) -> Result<()> {
        self.store.save_record(record)?;
        entry.set(record);
        Ok(())
    }

    /// Appends an event about the container of `record` to the journal. A
    /// journal that cannot be written is logged, not fatal: the operation
    /// it reports has happened.
    fn emit(
        &self,
        kind: EventKind,
        record: &Record,
        exec_id: Option<&str>,
        details: Option<EventDetails>,
    ) {
        journal_event(&self.journal, kind, record, exec_id, details);
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

    /// Whether `entry` is still the runtime's container `id` (not deleted
    /// while its caller waited for its lock).
    fn is_current(&self, id: &str, entry: &Arc<Entry>) -> bool {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, entry))
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Lists containers, ordered by creation time, from memory.
    pub fn list(&self, filter: &ListFilter) -> Vec<ContainerView> {
        let mut views: Vec<ContainerView> = self
            .all_entries()
            .iter()
            .map(|e| e.view())
            .filter(|v| filter.statuses.is_empty() || filter.statuses.contains(&v.record.status))
            .filter(|v| labels_match(&v.record.config.labels, &filter.labels))
            .collect();
        views.sort_by(|a, b| {
            a.record
                .created_at
                .cmp(&b.record.created_at)
                .then(a.record.config.id.cmp(&b.record.config.id))
        });
        views
    }

    /// Everything known about a container, its OCI spec included.
    pub async fn inspect(&self, id: &str) -> Result<Inspection> {
        let entry = self.entry(id)?;
        let bundle = self.store.container_dir(id);
        let path = bundle.join(store::CONFIG_FILE);
        let oci_spec_json = tokio::fs::read_to_string(&path)
            .await
            .context(|| format!("reading {}", path.display()))?;
        Ok(Inspection {
            container: entry.view(),
            bundle,
            oci_spec_json,
        })
    }
}

/// Checks that a rootfs path (absolute: see `RootSource::validate`) is an
/// existing directory other than the host's root (libcrun would pivot the
/// container onto the host's own tree); returns it resolved.
fn check_rootfs(path: &Path) -> Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let resolved = path
                .canonicalize()
                .context(|| format!("resolving rootfs {}", path.display()))?;
            if resolved == Path::new("/") {
                return Err(Error::InvalidArgument(format!(
                    "rootfs {} is the host's root directory",
                    path.display()
                )));
            }
            Ok(resolved)
        }
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

/// Checks `resources` against this machine's online CPUs (when they name
/// CPUs at all).
fn check_host_resources(resources: &Resources) -> Result<()> {
    if resources.cpuset_cpus.is_none() && resources.cpu_quota_us.is_none() {
        return Ok(());
    }
    let path = "/sys/devices/system/cpu/online";
    let online = std::fs::read_to_string(path).context(|| format!("reading {path}"))?;
    resources.check_host(&online)
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
