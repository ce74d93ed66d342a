//! MetricsService over the runtime.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use libcrun_shim_proto::v1::{self as pb, metrics_service_server::MetricsService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::RpcResult;
use super::convert;
use crate::error::Error;
use crate::model::ContainerMetrics;
use crate::runtime::Runtime;

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

/// A list of snapshots for the wire.
fn snapshots(metrics: &[ContainerMetrics]) -> pb::ListMetricsResponse {
    pb::ListMetricsResponse {
        metrics: metrics.iter().map(Into::into).collect(),
    }
}

type MetricsStream = Pin<Box<dyn Stream<Item = Result<pb::ListMetricsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MetricsService for Metrics {
    type StreamMetricsStream = MetricsStream;

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> RpcResult<pb::GetMetricsResponse> {
        let metrics = self
            .runtime
            .metrics(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(pb::GetMetricsResponse {
            metrics: Some((&metrics).into()),
        }))
    }

    async fn list_metrics(
        &self,
        request: Request<pb::ListMetricsRequest>,
    ) -> RpcResult<pb::ListMetricsResponse> {
        let r = request.into_inner();
        let metrics = self
            .runtime
            .all_metrics(r.container_ids, r.labels.into_iter().collect())
            .await?;
        Ok(Response::new(snapshots(&metrics)))
    }

    async fn stream_metrics(
        &self,
        request: Request<pb::StreamMetricsRequest>,
    ) -> RpcResult<MetricsStream> {
        let r = request.into_inner();
        let interval = convert::optional_duration(r.interval, "interval").map_err(Error::from)?;
        let ticks = self.runtime.stream_metrics(
            r.container_ids,
            r.labels.into_iter().collect(),
            interval,
        )?;
        let stream = ReceiverStream::new(ticks).map(|tick| {
            tick.map(|metrics| snapshots(&metrics))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
