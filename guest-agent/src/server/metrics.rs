//! MetricsService over the runtime.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use libcrun_shim_proto::v1::{self as pb, metrics_service_server::MetricsService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::RpcResult;
use super::convert;
use crate::runtime::{ListFilter, Runtime};

/// The shortest interval StreamMetrics accepts.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// StreamMetrics' interval when the request has none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The metrics service.
pub struct Metrics {
    runtime: Arc<Runtime>,
}

impl Metrics {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Metrics { runtime }
    }
}

/// The metrics of the selected containers, collected off the async threads.
async fn snapshot(
    runtime: &Arc<Runtime>,
    ids: Vec<String>,
    filter: ListFilter,
) -> Result<pb::ListMetricsResponse, Status> {
    let runtime = runtime.clone();
    let metrics = tokio::task::spawn_blocking(move || runtime.all_metrics(&ids, &filter))
        .await
        .map_err(|e| Status::internal(format!("collecting metrics: {e}")))?;
    Ok(pb::ListMetricsResponse {
        metrics: metrics.iter().map(convert::metrics_to_proto).collect(),
    })
}

type MetricsStream = Pin<Box<dyn Stream<Item = Result<pb::ListMetricsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MetricsService for Metrics {
    type StreamMetricsStream = MetricsStream;

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> RpcResult<pb::GetMetricsResponse> {
        let id = request.into_inner().container_id;
        let runtime = self.runtime.clone();
        let metrics = tokio::task::spawn_blocking(move || runtime.metrics(&id))
            .await
            .map_err(|e| Status::internal(format!("collecting metrics: {e}")))??;
        Ok(Response::new(pb::GetMetricsResponse {
            metrics: Some(convert::metrics_to_proto(&metrics)),
        }))
    }

    async fn list_metrics(
        &self,
        request: Request<pb::ListMetricsRequest>,
    ) -> RpcResult<pb::ListMetricsResponse> {
        let r = request.into_inner();
        let filter = ListFilter {
            labels: r.labels.into_iter().collect(),
            ..Default::default()
        };
        Ok(Response::new(
            snapshot(&self.runtime, r.container_ids, filter).await?,
        ))
    }

    async fn stream_metrics(
        &self,
        request: Request<pb::StreamMetricsRequest>,
    ) -> RpcResult<MetricsStream> {
        let r = request.into_inner();
        let interval = convert::optional_duration(r.interval.as_ref(), "interval")?
            .unwrap_or(DEFAULT_INTERVAL);
        if interval < MIN_INTERVAL {
            return Err(Status::invalid_argument(format!(
                "interval must be at least {MIN_INTERVAL:?}"
            )));
        }
        let filter = ListFilter {
            labels: r.labels.into_iter().collect(),
            ..Default::default()
        };
        let ids = r.container_ids;
        let runtime = self.runtime.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let item = snapshot(&runtime, ids.clone(), filter.clone()).await;
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
