//! The container lifecycle: create, start, stop, kill, pause, resume,
//! delete, wait and update, and what happens when a run ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::backend::Created;
use super::{ContainerView, Entry, KILL_TIMEOUT, Runtime, check_host_resources, check_rootfs};
use crate::error::{Error, IoContext, Result};
use crate::model::{
    ContainerConfig, EventDetails, EventKind, ExitStatus, HealthState, HealthStatus,
    NamespaceSource, Operation, Resources, RootSource, Status,
};
use crate::monitor::MonitorArgs;
use crate::process::ProcessRef;
use crate::spec;
use crate::store::{self, Record};

impl Runtime {
    /// Creates a container: checks its configuration
    /// ([`ContainerConfig::validate`]), builds its OCI spec, starts its
    /// monitor, which creates it through libcrun, and records it. A failed
    /// create leaves nothing behind.
    pub async fn create(self: &Arc<Self>, mut config: ContainerConfig) -> Result<ContainerView> {
        config.validate()?;
        let id = config.id.clone();
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
            // Leave nothing behind: no process, libcrun state, cgroup,
            // mount, network or directory.
            if let Err(e) = self.remove_leftovers(&id).await {
                warn!(container = %id, error = %e, "cannot clean up a failed create");
            }
        }
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        result
    }

    async fn create_reserved(
        self: &Arc<Self>,
        mut config: ContainerConfig,
    ) -> Result<ContainerView> {
        let id = config.id.clone();
        self.resolve_network(&mut config)?;
        let network = self.plan_network(&config)?;
        let (rootfs, image_digest) = match &config.root {
            RootSource::Rootfs(path) => (check_rootfs(path)?, None),
            RootSource::Mounts(mounts) => (self.mount_given_rootfs(&id, mounts)?, None),
            RootSource::Image(_) => {
                let (image, rootfs) = self.prepare_image_rootfs(&mut config)?;
                // What the image gave follows the rules too.
                config.validate()?;
                (rootfs, Some(image.digest))
            }
        };
        check_host_resources(&config.resources)?;
        config.stdio.check_exists()?;
        let default_cgroup = format!("{}/{id}", self.cgroup_parent);
        let shared = spec::SharedNamespaces {
            ipc: self.shared_namespace(&config.ipc, "ipc")?,
            uts: self.shared_namespace(&config.uts, "uts")?,
            pid: self.shared_namespace(&config.pid, "pid")?,
        };
        let dir = self.store.container_dir(&id);
        let oci = match &config.oci_spec {
            Some(json) => {
                let oci = spec::given::container(
                    json,
                    &rootfs,
                    &default_cgroup,
                    self.base_spec.version(),
                )?;
                // What the spec decides, the record tells.
                config.terminal = oci
                    .process()
                    .as_ref()
                    .and_then(|p| p.terminal())
                    .unwrap_or(false);
                oci
            }
            None => {
                let mut oci = spec::build(
                    &config,
                    &spec::SpecContext {
                        base: &self.base_spec,
                        rootfs: &rootfs,
                        cgroup_path: default_cgroup.clone(),
                        netns: network.netns.clone(),
                        network_files: network.files.clone(),
                        shared,
                    },
                )?;
                super::propagation::redirect(&mut oci, &dir, &config.mounts);
                oci
            }
        };
        let cgroup_path = oci
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map_or(default_cgroup, |p| p.display().to_string());
        let mounts: Vec<_> = oci
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect();
        if let Some(process) = oci.process() {
            spec::executable::check(&rootfs, process, &mounts)?;
        }
        std::fs::create_dir_all(dir.join(store::LOGS_DIR))
            .context(|| format!("creating {}", dir.display()))?;
        if image_digest.is_none() {
            // Noted before libcrun makes them.
            let made =
                super::rootfs::missing_mount_points(&rootfs, mounts.iter().map(|p| p.as_path()));
            super::rootfs::note(&dir, &made)?;
        }
        // Compact: the monitor and libcrun parse it at create, and libcrun
        // again (its copy) at every start and delete.
        let spec_json =
            serde_json::to_vec(&oci).map_err(|e| Error::Internal(format!("spec JSON: {e}")))?;
        store::write_atomic(&dir.join(store::CONFIG_FILE), &spec_json)
            .context(|| format!("writing {}", dir.join(store::CONFIG_FILE).display()))?;
        let network = self.set_up_network(&id, network).await?;

        let run = 1;
        let Created { pid, monitor } = self.spawn_monitor(&config, run).await?;
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
            image_digest,
            cgroup_path,
            exit_unknown: false,
            stopped_by_api: false,
            health: HealthState::default(),
            network,
        };
        self.store.save_record(&record)?;
        let entry = Arc::new(Entry::new(record.clone()));
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), entry.clone());
        self.watch_monitor(id.clone(), run, monitor);
        self.emit(EventKind::Create, &record, None, None);
        info!(container = %id, pid, "container created");
        Ok(entry.view_of(record))
    }

    /// The namespace `source` names: another container's is that of its
    /// running process (`/proc/PID/ns/KIND`), so it must run.
    fn shared_namespace(&self, source: &NamespaceSource, kind: &str) -> Result<spec::Shared> {
        let other = match source {
            NamespaceSource::Private => return Ok(spec::Shared::Own),
            NamespaceSource::Host => return Ok(spec::Shared::Host),
            NamespaceSource::Container(other) => other,
        };
        let record = self.entry(other)?.snapshot();
        if !matches!(record.status, Status::Running | Status::Paused) || record.pid == 0 {
            return Err(Error::FailedPrecondition(format!(
                "container {other}, whose {kind} namespace is to be joined, is not running"
            )));
        }
        Ok(spec::Shared::Join(
            format!("/proc/{}/ns/{kind}", record.pid).into(),
        ))
    }

    /// Starts a monitor for run `run` and waits for its report.
    pub(super) async fn spawn_monitor(
        &self,
        config: &ContainerConfig,
        run: u32,
    ) -> Result<Created> {
        let id = &config.id;
        self.remount_image_rootfs(id)?;
        if let RootSource::Mounts(mounts) = &config.root {
            self.mount_given_rootfs(id, mounts)?;
        }
        // Needed only while libcrun makes the container's mounts.
        if config.oci_spec.is_none() {
            self.stage(id, &config.mounts)?;
        }
        let created = self
            .backend
            .create(MonitorArgs {
                root: self.store.root().to_path_buf(),
                id: id.clone(),
                run,
                log: config.log,
                stdio: config.stdio.clone(),
                open_stdin: config.open_stdin,
                exec: None,
            })
            .await;
        super::propagation::unstage(&self.store.container_dir(id));
        created
    }

    /// Starts a created container.
    pub async fn start(self: &Arc<Self>, id: &str) -> Result<ContainerView> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        record.status.check(id, Operation::Start)?;
        self.start_locked(&entry, &mut record).await?;
        Ok(entry.view_of(record.clone()))
    }

    /// Starts the created run of a container whose record is locked.
    pub(super) async fn start_locked(
        self: &Arc<Self>,
        entry: &Entry,
        record: &mut Record,
    ) -> Result<()> {
        let id = record.config.id.clone();
        let cid = id.clone();
        self.call(format!("starting container {id}"), move |b| b.start(&cid))
            .await?;
        record.status = Status::Running;
        record.started_at = Some(SystemTime::now());
        record.stopped_by_api = false;
        if record.config.health_check.is_some() {
            record.health = HealthState {
                status: HealthStatus::Starting,
                ..record.health.clone()
            };
            record.health.failing_streak = 0;
        }
        self.commit(entry, record)?;
        self.emit(EventKind::Start, record, None, None);
        self.start_health_checks(&id, record.run);
        info!(container = %id, run = record.run, "container started");
        Ok(())
    }

    /// Sends a signal to a container's init process (or all its
    /// processes).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        record.status.check(id, Operation::Kill)?;
        self.mark_stopped_by_api(&entry, &mut record)?;
        self.signal(id, signal, all, record.status == Status::Paused)
            .await
    }

    /// Records that the API stopped or killed the container, so that its
    /// restart policy leaves it alone.
    fn mark_stopped_by_api(&self, entry: &Entry, record: &mut Record) -> Result<()> {
        if !record.stopped_by_api {
            record.stopped_by_api = true;
            self.commit(entry, record)?;
        }
        Ok(())
    }

    /// Sends `signal`; a paused container is thawed afterwards so that it
    /// can act on it (unless it is gone already: killed while frozen). A
    /// process that has just exited (ESRCH: its exit is on its way from its
    /// monitor, and the record still says it runs) is not an error: the
    /// signal came a moment too late, as it would to a process exiting
    /// right after taking it.
    pub(super) async fn signal(
        &self,
        id: &str,
        signal: i32,
        all: bool,
        paused: bool,
    ) -> Result<()> {
        let cid = id.to_string();
        self.call(format!("signalling container {id}"), move |b| {
            match b.kill(&cid, signal, all) {
                Err(e) if e.errno() == Some(libc::ESRCH) => return Ok(()),
                other => other?,
            }
            if paused {
                match b.resume(&cid) {
                    // Killed while frozen: gone already, nothing to thaw.
                    Err(e) if e.errno() == Some(libc::ESRCH) => {}
                    // The kernel lets SIGKILL end frozen tasks: an init that
                    // died before the thaw makes libcrun refuse it ("not
                    // running", no errno). Nothing left in its cgroup,
                    // nothing to thaw.
                    Err(_) if b.pids(&cid).is_ok_and(|pids| pids.is_empty()) => {}
                    other => other?,
                }
            }
            Ok(())
        })
        .await
    }

    /// Stops a container: `signal` (else its stop signal), then SIGKILL
    /// after `timeout` (else its stop timeout). Returns once it has exited.
    pub async fn stop(
        &self,
        id: &str,
        signal: Option<i32>,
        timeout: Option<Duration>,
    ) -> Result<ContainerView> {
        let entry = self.entry(id)?;
        let (run, signal, timeout) = {
            let mut record = entry.lock().await;
            // Also cancels a pending policy restart.
            self.mark_stopped_by_api(&entry, &mut record)?;
            if record.status == Status::Stopped {
                return Ok(entry.view_of(record.clone()));
            }
            let signal = match signal {
                Some(s) => s,
                None => record.config.stop_signal()?,
            };
            let timeout = record.config.stop_timeout(timeout);
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
        Ok(entry.view())
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
    pub async fn pause(&self, id: &str) -> Result<ContainerView> {
        self.freeze(id, true).await
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &str) -> Result<ContainerView> {
        self.freeze(id, false).await
    }

    async fn freeze(&self, id: &str, pause: bool) -> Result<ContainerView> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        let (operation, to, verb, event) = if pause {
            (
                Operation::Pause,
                Status::Paused,
                "pausing",
                EventKind::Pause,
            )
        } else {
            (
                Operation::Resume,
                Status::Running,
                "resuming",
                EventKind::Resume,
            )
        };
        record.status.check(id, operation)?;
        let cid = id.to_string();
        self.call(format!("{verb} container {id}"), move |b| {
            if pause { b.pause(&cid) } else { b.resume(&cid) }
        })
        .await?;
        record.status = to;
        self.commit(&entry, &record)?;
        self.emit(event, &record, None, None);
        Ok(entry.view_of(record.clone()))
    }

    /// Deletes a container. A running or paused one needs `force` (it is
    /// killed first); a created one is killed without. A container deleted
    /// by someone else while this waited (its `auto_remove`, say) is deleted
    /// as asked: `Ok`.
    pub async fn delete(&self, id: &str, force: bool) -> Result<()> {
        let entry = self.entry(id)?;
        let joiners = self.network_joiners(id);
        if !joiners.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is used by container(s) {} running in its network namespace",
                joiners.join(", ")
            )));
        }
        let (run, status) = {
            let record = entry.lock().await;
            if !self.is_current(id, &entry) {
                return Ok(());
            }
            if !force {
                record.status.check(id, Operation::Delete)?;
            }
            (record.run, record.status)
        };
        if status != Status::Stopped {
            self.kill_and_wait(id, &entry, run).await?;
        }
        let record = entry.lock().await;
        if !self.is_current(id, &entry) {
            return Ok(());
        }
        // Restarted by its policy meanwhile: it is not ours to delete now.
        if record.status != Status::Stopped {
            return Err(Error::InvalidState {
                id: id.to_string(),
                status: record.status,
                operation: Operation::Delete,
            });
        }
        // The network first: when its teardown fails, the container stays
        // and Delete can be tried again.
        self.tear_down_network(id).await?;
        let cid = id.to_string();
        let deleted = self
            .call(format!("deleting container {id}"), move |b| {
                b.delete(&cid, true)
            })
            .await;
        if let Err(e) = deleted {
            // Already gone from libcrun's state is fine.
            if !matches!(&e, Error::Libcrun { source, .. } if source.errno() == Some(libc::ENOENT))
            {
                return Err(e);
            }
        }
        self.discard_container_files(id)?;
        self.forget_processes(id);
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.emit(EventKind::Delete, &record, None, None);
        drop(record);
        info!(container = %id, "container deleted");
        Ok(())
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
    pub async fn update(&self, id: &str, resources: &Resources) -> Result<ContainerView> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        let mut merged = record.config.resources.clone();
        merged.merge(resources);
        merged.validate()?;
        check_host_resources(&merged)?;
        if record.status != Status::Stopped {
            let limits = spec::resources(resources);
            let cid = id.to_string();
            self.call(format!("updating container {id}"), move |b| {
                b.update(&cid, &limits)
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
        let json =
            serde_json::to_vec(&oci).map_err(|e| Error::Internal(format!("spec JSON: {e}")))?;
        store::write_atomic(&path, &json).context(|| format!("writing {}", path.display()))?;
        record.config.resources = merged;
        self.commit(&entry, &record)?;
        Ok(entry.view_of(record.clone()))
    }

    /// Watches a run's monitor and records the run's exit when it ends.
    pub(super) fn watch_monitor(self: &Arc<Self>, id: String, run: u32, monitor: ProcessRef) {
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = runtime.backend.exited(monitor).await {
                warn!(container = %id, error = %e, "cannot watch the monitor; polling");
                while runtime.backend.is_alive(monitor) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if runtime.monitor_exited(&id, run).await {
                runtime.remove_exited(&id).await;
            }
        });
    }

    /// Records the end of run `run` after its monitor exited, then applies
    /// the restart policy. Returns true when the caller is to delete the
    /// container now ([`Runtime::remove_exited`]): it has `auto_remove` and
    /// nobody else (a Run) has taken that on.
    #[must_use]
    pub(super) async fn monitor_exited(self: &Arc<Self>, id: &str, run: u32) -> bool {
        let Ok(entry) = self.entry(id) else {
            return false;
        };
        let mut record = entry.lock().await;
        if record.run != run || record.status == Status::Stopped {
            return false;
        }
        let (exit, unknown) = match self.store.load_exit(id) {
            Ok(Some(exit)) if exit.run == run => (exit.exit, false),
            other => {
                if let Err(e) = other {
                    warn!(container = %id, error = %e, "unreadable exit record");
                }
                // The monitor died without recording the exit (it was
                // killed). Its container may well run on, unwatched, its
                // output going nowhere: it is killed, never reported as
                // stopped while it runs. How it would have ended is unknown.
                let killed = self
                    .kill_unmonitored(id, record.status == Status::Paused)
                    .await;
                if killed {
                    warn!(container = %id, "monitor gone without an exit record; killed its container");
                } else {
                    warn!(container = %id, "monitor gone without an exit record; exit code unknown (255)");
                }
                (ExitStatus::unknown(killed, SystemTime::now()), true)
            }
        };
        let was_started = record.status != Status::Created;
        record.status = Status::Stopped;
        record.pid = 0;
        record.monitor = None;
        record.last_exit = Some(exit);
        record.exit_unknown = unknown;
        // Shown and announced first, saved after: the exit is durable
        // already in the monitor's exit.json, and the record's save (a new
        // file renamed into place: milliseconds on a busy disk) is off the
        // path of every waiter and subscriber. An agent killed between the
        // event and the save finds the record still running and exit.json
        // written, records the exit again and announces it again: a
        // subscriber may see an exit twice after a crash, never not at all
        // (saved first, a crash before the event lost it). Delete and
        // Start wait for the entry's lock, held until the save is done.
        entry.set(&record);
        if exit.oom_killed {
            self.emit(EventKind::Oom, &record, None, None);
        }
        self.emit(
            EventKind::Exit,
            &record,
            None,
            Some(EventDetails::Exit(exit)),
        );
        if let Err(e) = self.store.save_record(&record) {
            warn!(container = %id, error = %e, "cannot save the exit");
        }
        info!(container = %id, exit_code = exit.exit_code, signal = exit.signal, "container exited");
        if was_started {
            self.schedule_restart(&record);
        }
        record.config.auto_remove && entry.claim_removal()
    }

    /// Deletes container `id`, exited with `auto_remove`, after its exit was
    /// recorded and announced. Its removal survives a crash of this agent:
    /// the record says `auto_remove`, and the next agent's recovery deletes
    /// the containers that exited meanwhile or were being deleted. Returns
    /// whether it is gone.
    pub(super) async fn remove_exited(&self, id: &str) -> bool {
        match self.delete(id, false).await {
            Ok(()) | Err(Error::NotFound(_)) => true,
            Err(e) => {
                warn!(container = %id, error = %e, "cannot remove an exited auto-remove container");
                false
            }
        }
    }
}

impl Runtime {
    /// Prepares the agent's exit: stops every container first when asked
    /// (stop signal, then SIGKILL at `timeout`), then flushes the event
    /// journal to disk. Returns the ids of the containers stopped.
    pub async fn shutdown(
        self: &Arc<Self>,
        stop_containers: bool,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let mut stopped = Vec::new();
        if stop_containers {
            let live = self.list(&super::ListFilter {
                statuses: vec![Status::Created, Status::Running, Status::Paused],
                ..Default::default()
            });
            let stops = live.into_iter().map(|view| {
                let runtime = Arc::clone(self);
                async move {
                    let id = view.record.config.id;
                    runtime.stop(&id, None, Some(timeout)).await.map(|_| id)
                }
            });
            for result in futures::future::join_all(stops).await {
                stopped.push(result?);
            }
        }
        self.journal.flush()?;
        Ok(stopped)
    }
}
