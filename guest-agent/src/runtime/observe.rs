//! What users watch: logs, events, metrics and health.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{ListFilter, Runtime};
use crate::error::{Error, Result};
use crate::events::Subscription;
use crate::logs::{self, LogEntry, LogQuery};
use crate::metrics::{self, Sources};
use crate::model::{ContainerMetrics, EventFilter, HealthState, Operation, Status};
use crate::store::Record;

/// The shortest interval of [`Runtime::stream_metrics`].
pub const MIN_METRICS_INTERVAL: Duration = Duration::from_millis(100);
/// The interval of [`Runtime::stream_metrics`] when none is asked for.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);

impl Runtime {
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

    /// Subscribes to events after `since` (live only when `None`).
    pub fn subscribe(&self, since: Option<u64>, filter: EventFilter) -> Result<Subscription> {
        self.journal.subscribe(since, filter)
    }

    /// The oldest sequence the event journal still holds.
    pub fn oldest_event(&self) -> u64 {
        self.journal.oldest_sequence()
    }

    /// The sequence of the last event journalled (0 before the first).
    pub fn last_event(&self) -> u64 {
        self.journal.last_sequence()
    }

    fn sources(&self) -> Sources {
        Sources::host(self.options.cgroups.effective_mode)
    }

    fn collect(&self, record: &Record) -> Result<ContainerMetrics> {
        let id = &record.config.id;
        metrics::collect(&self.sources(), id, &record.cgroup_path, record.pid)
            .map_err(|e| Error::io(format!("metrics of container {id}"), e))
    }

    /// One snapshot of a running or paused container's resource usage,
    /// read on a blocking thread (cgroup and /proc files).
    pub async fn metrics(self: &Arc<Self>, id: &str) -> Result<ContainerMetrics> {
        let record = self.entry(id)?.snapshot();
        record.status.check(id, Operation::Metrics)?;
        let runtime = Arc::clone(self);
        tokio::task::spawn_blocking(move || runtime.collect(&record))
            .await
            .map_err(|e| Error::Internal(format!("collecting metrics: {e}")))?
    }

    /// Snapshots of the running and paused containers among `ids` (all
    /// when empty) that carry `labels`, read on a blocking thread.
    /// Containers that stop meanwhile are left out.
    pub async fn all_metrics(
        self: &Arc<Self>,
        ids: Vec<String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<ContainerMetrics>> {
        let filter = ListFilter {
            statuses: vec![Status::Running, Status::Paused],
            labels,
        };
        let runtime = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            runtime
                .list(&filter)
                .iter()
                .map(|v| &v.record)
                .filter(|r| ids.is_empty() || ids.contains(&r.config.id))
                .filter_map(|r| runtime.collect(r).ok())
                .collect()
        })
        .await
        .map_err(|e| Error::Internal(format!("collecting metrics: {e}")))
    }

    /// [`Runtime::all_metrics`] every `interval` (at least
    /// [`MIN_METRICS_INTERVAL`]; [`DEFAULT_METRICS_INTERVAL`] when `None`),
    /// until the receiver is dropped. A receiver that does not keep up
    /// misses snapshots rather than delaying them.
    pub fn stream_metrics(
        self: &Arc<Self>,
        ids: Vec<String>,
        labels: BTreeMap<String, String>,
        interval: Option<Duration>,
    ) -> Result<mpsc::Receiver<Result<Vec<ContainerMetrics>>>> {
        let interval = interval.unwrap_or(DEFAULT_METRICS_INTERVAL);
        if interval < MIN_METRICS_INTERVAL {
            return Err(Error::InvalidArgument(format!(
                "interval must be at least {MIN_METRICS_INTERVAL:?}"
            )));
        }
        let runtime = Arc::clone(self);
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let snapshot = runtime.all_metrics(ids.clone(), labels.clone()).await;
                if tx.send(snapshot).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// A container's health-check state.
    pub fn health(&self, id: &str) -> Result<HealthState> {
        Ok(self.entry(id)?.snapshot().health)
    }
}
