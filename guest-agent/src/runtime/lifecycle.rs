//! The container lifecycle: create, start, stop, kill, pause, resume,
//! delete, wait and update, and what happens when a run ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::{info, warn};

use super::{
    CREATE_TIMEOUT, DEFAULT_STOP_TIMEOUT, Entry, KILL_TIMEOUT, Runtime, blocking, check_rootfs,
    reap_later,
};
use crate::error::{Error, IoContext, Result};
use crate::ids;
use crate::model::{
    ContainerConfig, EventDetails, EventKind, ExitStatus, HealthState, HealthStatus, Resources,
    RootSource, Status,
};
use crate::monitor::{CreateReport, MonitorArgs};
use crate::process::ProcessRef;
use crate::spec;
use crate::store::{self, Record};

impl Runtime {
    /// Creates a container: builds its OCI spec, starts its monitor, which
    /// creates it through libcrun, and records it. A failed create leaves
    /// nothing behind.
    pub async fn create(self: &Arc<Self>, config: ContainerConfig) -> Result<Record> {
        let id = config.id.clone();
        ids::validate("container", &id)?;
        config.check_metadata()?;
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
            let _ = self.discard_container_files(&id);
        }
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        result
    }

    async fn create_reserved(self: &Arc<Self>, mut config: ContainerConfig) -> Result<Record> {
        let id = config.id.clone();
        let (rootfs, image_digest) = match &config.root {
            RootSource::Rootfs(path) => (check_rootfs(path)?, None),
            RootSource::Image(_) => {
                let (image, rootfs) = self.prepare_image_rootfs(&mut config)?;
                (rootfs, Some(image.digest))
            }
        };
        let cgroup_path = format!("{}/{id}", self.cgroup_parent);
        let oci = spec::build(
            &config,
            &spec::SpecContext {
                base: &self.base_spec,
                rootfs: &rootfs,
                cgroup_path: cgroup_path.clone(),
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
            image_digest,
            cgroup_path,
            exit_unknown: false,
            stopped_by_api: false,
            health: HealthState::default(),
        };
        self.store.save_record(&record)?;
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(Entry::new(record.clone())));
        self.watch_monitor(id.clone(), run, monitor);
        self.emit(EventKind::Create, &record, None, None);
        info!(container = %id, pid, "container created");
        Ok(record)
    }

    /// Starts a monitor for run `run` and waits for its report.
    pub(super) async fn spawn_monitor(
        &self,
        config: &ContainerConfig,
        run: u32,
    ) -> Result<(i32, ProcessRef)> {
        let id = &config.id;
        self.remount_image_rootfs(id)?;
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
    pub async fn start(self: &Arc<Self>, id: &str) -> Result<Record> {
        let entry = self.entry(id)?;
        let mut record = entry.lock().await;
        if record.status != Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}, not created",
                record.status.as_str()
            )));
        }
        self.start_locked(&entry, &mut record).await?;
        Ok(record.clone())
    }

    /// Starts the created run of a container whose record is locked.
    pub(super) async fn start_locked(
        self: &Arc<Self>,
        entry: &Entry,
        record: &mut Record,
    ) -> Result<()> {
        let id = record.config.id.clone();
        let libcrun = self.libcrun.clone();
        let cid = id.clone();
        blocking(format!("starting container {id}"), move || {
            libcrun.start(&cid)
        })
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
        if record.status == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is not running"
            )));
        }
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
    /// can act on it.
    pub(super) async fn signal(
        &self,
        id: &str,
        signal: i32,
        all: bool,
        paused: bool,
    ) -> Result<()> {
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
            let mut record = entry.lock().await;
            // Also cancels a pending policy restart.
            self.mark_stopped_by_api(&entry, &mut record)?;
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
        self.commit(&entry, &record)?;
        let kind = if pause {
            EventKind::Pause
        } else {
            EventKind::Resume
        };
        self.emit(kind, &record, None, None);
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
        self.discard_container_files(id)?;
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
        self.commit(&entry, &record)?;
        Ok(record.clone())
    }

    /// Watches a run's monitor and records the run's exit when it ends.
    pub(super) fn watch_monitor(self: &Arc<Self>, id: String, run: u32, monitor: ProcessRef) {
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

    /// Records the end of run `run` after its monitor exited, then applies
    /// the restart policy.
    pub(super) async fn monitor_exited(self: &Arc<Self>, id: &str, run: u32) {
        let Ok(entry) = self.entry(id) else { return };
        let mut record = entry.lock().await;
        if record.run != run || record.status == Status::Stopped {
            return;
        }
        let (exit, unknown) = match self.store.load_exit(id) {
            Ok(Some(exit)) if exit.run == run => (exit.exit, false),
            other => {
                if let Err(e) = other {
                    warn!(container = %id, error = %e, "unreadable exit record");
                }
                // The monitor died without recording the exit (it was
                // killed): the exit code is unknown.
                warn!(container = %id, "monitor gone without an exit record; exit code unknown (255)");
                let exit = ExitStatus {
                    exit_code: 255,
                    signal: 0,
                    oom_killed: false,
                    finished_at: SystemTime::now(),
                };
                (exit, true)
            }
        };
        let was_started = record.status != Status::Created;
        record.status = Status::Stopped;
        record.pid = 0;
        record.monitor = None;
        record.last_exit = Some(exit);
        record.exit_unknown = unknown;
        if let Err(e) = self.commit(&entry, &record) {
            warn!(container = %id, error = %e, "cannot save the exit");
        }
        if exit.oom_killed {
            self.emit(EventKind::Oom, &record, None, None);
        }
        self.emit(
            EventKind::Exit,
            &record,
            None,
            Some(EventDetails::Exit(exit)),
        );
        info!(container = %id, exit_code = exit.exit_code, signal = exit.signal, "container exited");
        if was_started {
            self.schedule_restart(&record);
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
            let stops = live.into_iter().map(|record| {
                let runtime = Arc::clone(self);
                async move {
                    let id = record.config.id;
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
