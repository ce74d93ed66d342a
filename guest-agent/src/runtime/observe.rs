//! What users watch: logs, events, metrics and health.

use std::sync::Arc;

use super::{ListFilter, Runtime};
use crate::error::{Error, Result};
use crate::events::Subscription;
use crate::logs::{self, LogEntry, LogQuery};
use crate::metrics::{self, Sources};
use crate::model::{ContainerMetrics, EventFilter, HealthState, Status};
use crate::store::Record;

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

    fn sources(&self) -> Sources {
        Sources::host(self.options.cgroups.effective_mode)
    }

    fn collect(&self, record: &Record) -> Result<ContainerMetrics> {
        let id = &record.config.id;
        metrics::collect(&self.sources(), id, &record.cgroup_path, record.pid)
            .map_err(|e| Error::io(format!("metrics of container {id}"), e))
    }

    /// One snapshot of a running or paused container's resource usage.
    pub fn metrics(&self, id: &str) -> Result<ContainerMetrics> {
        let record = self.entry(id)?.snapshot();
        if !matches!(record.status, Status::Running | Status::Paused) {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {}, not running",
                record.status.as_str()
            )));
        }
        self.collect(&record)
    }

    /// Snapshots of the running and paused containers among `ids` (all
    /// when empty) that carry `labels`. Containers that stop meanwhile are
    /// left out.
    pub fn all_metrics(
        self: &Arc<Self>,
        ids: &[String],
        filter: &ListFilter,
    ) -> Vec<ContainerMetrics> {
        let filter = ListFilter {
            statuses: vec![Status::Running, Status::Paused],
            labels: filter.labels.clone(),
        };
        self.list(&filter)
            .iter()
            .filter(|r| ids.is_empty() || ids.contains(&r.config.id))
            .filter_map(|r| self.collect(r).ok())
            .collect()
    }

    /// A container's health-check state.
    pub fn health(&self, id: &str) -> Result<HealthState> {
        Ok(self.entry(id)?.snapshot().health)
    }
}
