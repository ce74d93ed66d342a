//! Health checks: a command run inside the container on a schedule, whose
//! results decide the container's health status.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tracing::debug;

use super::Runtime;
use crate::model::{
    EventDetails, EventKind, HealthCheck, HealthResult, HealthStatus, ProcessSpec, Status,
};
use crate::store::Record;

/// Results kept per container.
const KEPT_RESULTS: usize = 5;
/// Output kept per result.
const MAX_OUTPUT: usize = 4096;

/// Applies one result to a container's health state; returns the status
/// before, when it changed.
fn apply(record: &mut Record, check: &HealthCheck, result: HealthResult) -> Option<HealthStatus> {
    let health = &mut record.health;
    let before = health.status;
    let passed = result.exit_code == 0 && !result.timed_out;
    let in_start_period = record
        .started_at
        .and_then(|s| result.started_at.duration_since(s).ok())
        .is_some_and(|since_start| since_start < check.start_period);
    if passed {
        health.failing_streak = 0;
        health.status = HealthStatus::Healthy;
    } else if !in_start_period {
        // Failures within the start period do not count.
        health.failing_streak += 1;
        if health.failing_streak >= check.retries {
            health.status = HealthStatus::Unhealthy;
        }
    }
    health.recent.push(result);
    let excess = health.recent.len().saturating_sub(KEPT_RESULTS);
    health.recent.drain(..excess);
    (health.status != before).then_some(before)
}

impl Runtime {
    /// Runs the health checks of run `run` of container `id`, if it has
    /// any, until that run ends. Also resumes them after an agent restart.
    pub(super) fn start_health_checks(self: &Arc<Self>, id: &str, run: u32) {
        let Ok(entry) = self.entry(id) else { return };
        let Some(check) = entry.snapshot().config.health_check else {
            return;
        };
        let runtime = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(check.interval).await;
                let Ok(entry) = runtime.entry(&id) else {
                    return;
                };
                let current = entry.snapshot();
                if current.run != run || current.status == Status::Stopped {
                    return;
                }
                if current.status != Status::Running {
                    continue;
                }
                let result = runtime.run_check(&id, &check).await;
                let mut record = entry.lock().await;
                if record.run != run || record.status == Status::Stopped {
                    return;
                }
                let changed = apply(&mut record, &check, result);
                let _ = runtime.commit(&entry, &record);
                if let Some(previous) = changed {
                    let details = EventDetails::Health {
                        previous,
                        current: record.health.status,
                        failing_streak: record.health.failing_streak,
                    };
                    runtime.emit(EventKind::HealthStatus, &record, None, Some(details));
                }
            }
        });
    }

    /// Runs one check; a check that cannot even start is a failure with its
    /// error as output.
    async fn run_check(&self, id: &str, check: &HealthCheck) -> HealthResult {
        let started_at = SystemTime::now();
        let process = ProcessSpec {
            command: check.command.clone(),
            ..Default::default()
        };
        let outcome = self
            .exec_sync(
                id,
                process,
                Bytes::new(),
                Some(check.timeout),
                MAX_OUTPUT as u64,
            )
            .await;
        let finished_at = SystemTime::now();
        match outcome {
            Ok(r) => {
                let mut output = r.stdout;
                output.extend_from_slice(&r.stderr);
                output.truncate(MAX_OUTPUT);
                HealthResult {
                    started_at,
                    finished_at,
                    exit_code: r.exit.exit_code,
                    output,
                    timed_out: r.timed_out,
                }
            }
            Err(e) => {
                debug!(container = %id, error = %e, "health check did not run");
                let mut output = e.to_string().into_bytes();
                output.truncate(MAX_OUTPUT);
                HealthResult {
                    started_at,
                    finished_at,
                    exit_code: 127,
                    output,
                    timed_out: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{ContainerConfig, HealthState};

    fn check(retries: u32, start_period: u64) -> HealthCheck {
        HealthCheck {
            command: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::from_secs(start_period),
        }
    }

    fn record() -> Record {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        Record {
            config: ContainerConfig::default(),
            status: Status::Running,
            pid: 1,
            monitor: None,
            run: 1,
            created_at: t,
            started_at: Some(t),
            last_exit: None,
            restart_count: 0,
            rootfs_path: Default::default(),
            image_digest: None,
            cgroup_path: String::new(),
            exit_unknown: false,
            stopped_by_api: false,
            health: HealthState {
                status: HealthStatus::Starting,
                ..Default::default()
            },
            network: Default::default(),
        }
    }

    fn result(at_secs: u64, exit_code: i32) -> HealthResult {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + at_secs);
        HealthResult {
            started_at: t,
            finished_at: t,
            exit_code,
            output: vec![],
            timed_out: false,
        }
    }

    #[test]
    fn transitions() {
        let mut r = record();
        let c = check(2, 0);
        assert_eq!(
            apply(&mut r, &c, result(1, 0)),
            Some(HealthStatus::Starting)
        );
        assert_eq!(r.health.status, HealthStatus::Healthy);
        assert_eq!(
            apply(&mut r, &c, result(2, 1)),
            None,
            "one failure of two allowed"
        );
        assert_eq!(r.health.failing_streak, 1);
        assert_eq!(apply(&mut r, &c, result(3, 1)), Some(HealthStatus::Healthy));
        assert_eq!(r.health.status, HealthStatus::Unhealthy);
        assert_eq!(
            apply(&mut r, &c, result(4, 0)),
            Some(HealthStatus::Unhealthy)
        );
        assert_eq!(
            (r.health.status, r.health.failing_streak),
            (HealthStatus::Healthy, 0)
        );
    }

    #[test]
    fn start_period_failures_do_not_count_and_results_are_bounded() {
        let mut r = record();
        let c = check(1, 10);
        for t in 1..9 {
            assert_eq!(apply(&mut r, &c, result(t, 1)), None);
        }
        assert_eq!(
            (r.health.status, r.health.failing_streak),
            (HealthStatus::Starting, 0)
        );
        assert_eq!(r.health.recent.len(), KEPT_RESULTS);
        assert_eq!(
            apply(&mut r, &c, result(11, 1)),
            Some(HealthStatus::Starting)
        );
        assert_eq!(r.health.status, HealthStatus::Unhealthy);
    }
}
