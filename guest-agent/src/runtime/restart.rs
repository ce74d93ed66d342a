//! Restart policies: a container whose command exits is run again, after
//! an exponentially growing pause, when its policy says so.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Runtime;
use super::backend::Created;
use crate::error::Result;
use crate::model::{EventDetails, EventKind, RestartPolicy, Status};
use crate::store::{self, Record};

/// The first pause before a restart; it doubles with each restart.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run that lasted this long resets the pause to the first one.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// Whether the policy restarts a container after this exit.
fn wants_restart(record: &Record) -> bool {
    let Some(exit) = record.last_exit else {
        return false;
    };
    if record.stopped_by_api {
        return false;
    }
    match record.config.restart_policy {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure { max_retries } => {
            exit.exit_code != 0 && (max_retries == 0 || record.restart_count < max_retries)
        }
        RestartPolicy::Always => true,
    }
}

/// The pause before the next restart: doubling from 100 ms to a minute,
/// back to 100 ms after a run of ten seconds or more.
fn backoff(record: &Record) -> Duration {
    let ran = match (record.started_at, record.last_exit) {
        (Some(start), Some(exit)) => exit.finished_at.duration_since(start).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    if ran >= STABLE_RUN {
        return FIRST_BACKOFF;
    }
    let doublings = record.restart_count.min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

impl Runtime {
    /// Schedules the restart of a container whose run just ended, if its
    /// policy wants one.
    pub(super) fn schedule_restart(self: &Arc<Self>, record: &Record) {
        if !wants_restart(record) {
            return;
        }
        let pause = backoff(record);
        let id = record.config.id.clone();
        let run = record.run;
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            if let Err(e) = runtime.restart(&id, run, pause).await {
                warn!(container = %id, error = %e, "restart failed");
            }
        });
    }

    /// Runs container `id` again after run `previous` ended, unless it was
    /// deleted, stopped through the API or restarted meanwhile.
    async fn restart(self: &Arc<Self>, id: &str, previous: u32, pause: Duration) -> Result<()> {
        let Ok(entry) = self.entry(id) else {
            return Ok(());
        };
        let mut record = entry.lock().await;
        if record.run != previous || record.status != Status::Stopped || !wants_restart(&record) {
            return Ok(());
        }
        record.restart_count += 1;
        self.emit(
            EventKind::Restart,
            &record,
            None,
            Some(EventDetails::Restart {
                restart_count: record.restart_count,
                backoff: pause,
            }),
        );
        // The previous run's state and cgroup go; its logs stay.
        let cid = id.to_string();
        let _ = self
            .call(format!("deleting run {previous} of {id}"), move |b| {
                b.delete(&cid, true)
            })
            .await;
        let _ = std::fs::remove_file(self.store.container_dir(id).join(store::EXIT_FILE));
        let run = previous + 1;
        let Created { pid, monitor } = self.spawn_monitor(&record.config, run).await?;
        record.run = run;
        record.pid = pid;
        record.monitor = Some(monitor);
        record.status = Status::Created;
        self.commit(&entry, &record)?;
        self.watch_monitor(id.to_string(), run, monitor);
        self.start_locked(&entry, &mut record).await?;
        info!(container = %id, run, restarts = record.restart_count, "container restarted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::model::{ContainerConfig, ExitStatus, HealthState};

    fn record(policy: RestartPolicy, exit_code: i32, restarts: u32) -> Record {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        Record {
            config: ContainerConfig {
                restart_policy: policy,
                ..Default::default()
            },
            status: Status::Stopped,
            pid: 0,
            monitor: None,
            run: 1,
            created_at: start,
            started_at: Some(start),
            last_exit: Some(ExitStatus {
                exit_code,
                signal: 0,
                oom_killed: false,
                finished_at: start + Duration::from_secs(1),
                unknown: false,
            }),
            restart_count: restarts,
            rootfs_path: Default::default(),
            image_digest: None,
            cgroup_path: String::new(),
            exit_unknown: false,
            stopped_by_api: false,
            health: HealthState::default(),
            network: Default::default(),
        }
    }

    #[test]
    fn policies() {
        assert!(!wants_restart(&record(RestartPolicy::No, 1, 0)));
        assert!(wants_restart(&record(RestartPolicy::Always, 0, 7)));
        let on_failure = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(
            !wants_restart(&record(on_failure, 0, 0)),
            "success is not a failure"
        );
        assert!(wants_restart(&record(on_failure, 1, 1)));
        assert!(
            !wants_restart(&record(on_failure, 1, 2)),
            "at most max_retries"
        );
        assert!(wants_restart(&record(
            RestartPolicy::OnFailure { max_retries: 0 },
            1,
            99
        )));
        let mut stopped = record(RestartPolicy::Always, 0, 0);
        stopped.stopped_by_api = true;
        assert!(!wants_restart(&stopped), "stopped through the API");
    }

    #[test]
    fn backoff_doubles_up_to_a_minute_and_resets_after_a_stable_run() {
        assert_eq!(
            backoff(&record(RestartPolicy::Always, 1, 0)),
            Duration::from_millis(100)
        );
        assert_eq!(
            backoff(&record(RestartPolicy::Always, 1, 3)),
            Duration::from_millis(800)
        );
        assert_eq!(backoff(&record(RestartPolicy::Always, 1, 30)), MAX_BACKOFF);
        let mut long = record(RestartPolicy::Always, 1, 5);
        long.last_exit.as_mut().unwrap().finished_at = long.started_at.unwrap() + STABLE_RUN;
        assert_eq!(backoff(&long), FIRST_BACKOFF);
    }
}
