//! What users watch, proxied: logs and health (routed), metrics and events
//! (merged across agents, each item naming its agent).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use libcrun_shim_proto::v1::event_service_client::EventServiceClient;
use libcrun_shim_proto::v1::health_check_service_client::HealthCheckServiceClient;
use libcrun_shim_proto::v1::log_service_client::LogServiceClient;
use libcrun_shim_proto::v1::metrics_service_client::MetricsServiceClient;
use libcrun_shim_proto::v1::{
    self as pb, event_service_server::EventService,
    health_check_service_server::HealthCheckService, log_service_server::LogService,
    metrics_service_server::MetricsService,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::{RpcResult, Shared, answer, forward, forward_as};
use crate::agents::Agent;

/// A stream of results, boxed.
type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Logs, proxied.
#[derive(Debug, Clone)]
pub struct Logs(pub Shared);

#[tonic::async_trait]
impl LogService for Logs {
    type LogsStream = Boxed<pb::LogsResponse>;

    async fn logs(&self, request: Request<pb::LogsRequest>) -> RpcResult<Self::LogsStream> {
        let agent = self.0.pool.route(&request.get_ref().container_id).await?;
        let mut client = LogServiceClient::new(agent.channel())
            .max_decoding_message_size(agent.max_message_bytes());
        let stream = client
            .logs(forward(request))
            .await
            .map_err(|s| agent.record_failure(s))?
            .into_inner();
        Ok(Response::new(Box::pin(
            stream.map(move |r| r.map_err(|s| agent.record_failure(s))),
        )))
    }
}

/// Health checks, proxied.
#[derive(Debug, Clone)]
pub struct Health(pub Shared);

#[tonic::async_trait]
impl HealthCheckService for Health {
    async fn get_health(
        &self,
        request: Request<pb::GetHealthRequest>,
    ) -> RpcResult<pb::GetHealthResponse> {
        let agent = self.0.pool.route(&request.get_ref().container_id).await?;
        let mut r = answer(
            &agent,
            HealthCheckServiceClient::new(agent.channel())
                .get_health(forward(request))
                .await,
        )?;
        if let Some(h) = r.health.as_mut() {
            h.agent = agent.name.clone();
        }
        Ok(Response::new(r))
    }
}

/// Metrics, proxied.
#[derive(Debug, Clone)]
pub struct Metrics(pub Shared);

fn metrics_client(agent: &Agent) -> MetricsServiceClient<tonic::transport::Channel> {
    MetricsServiceClient::new(agent.channel()).max_decoding_message_size(agent.max_message_bytes())
}

fn stamp_metrics(mut r: pb::ListMetricsResponse, agent: &str) -> pb::ListMetricsResponse {
    for m in &mut r.metrics {
        m.agent = agent.to_string();
    }
    r
}

#[tonic::async_trait]
impl MetricsService for Metrics {
    type StreamMetricsStream = Boxed<pb::ListMetricsResponse>;

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> RpcResult<pb::GetMetricsResponse> {
        let agent = self.0.pool.route(&request.get_ref().container_id).await?;
        let mut r = answer(
            &agent,
            metrics_client(&agent).get_metrics(forward(request)).await,
        )?;
        if let Some(m) = r.metrics.as_mut() {
            m.agent = agent.name.clone();
        }
        Ok(Response::new(r))
    }

    async fn list_metrics(
        &self,
        request: Request<pb::ListMetricsRequest>,
    ) -> RpcResult<pb::ListMetricsResponse> {
        let calls = self.0.pool.all().iter().map(|agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { (agent, metrics_client(agent).list_metrics(r).await) }
        });
        let mut metrics = Vec::new();
        for (agent, result) in futures::future::join_all(calls).await {
            match answer(agent, result) {
                Ok(r) => metrics.extend(stamp_metrics(r, &agent.name).metrics),
                // An unreachable agent's containers are left out.
                Err(s) if s.code() == Code::Unavailable => {}
                Err(s) => return Err(s),
            }
        }
        Ok(Response::new(pb::ListMetricsResponse { metrics }))
    }

    async fn stream_metrics(
        &self,
        request: Request<pb::StreamMetricsRequest>,
    ) -> RpcResult<Self::StreamMetricsStream> {
        let (tx, rx) = mpsc::channel(4);
        for agent in self.0.pool.all().iter().cloned() {
            let r = forward_as(&request, request.get_ref().clone());
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(response) = metrics_client(&agent).stream_metrics(r).await else {
                    return;
                };
                let mut stream = response.into_inner();
                while let Some(Ok(tick)) = stream.next().await {
                    if tx.send(Ok(stamp_metrics(tick, &agent.name))).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Events, merged across agents.
#[derive(Debug, Clone)]
pub struct Events(pub Shared);

/// The longest pause before re-subscribing to an agent that went away.
const MAX_RESUBSCRIBE_BACKOFF: Duration = Duration::from_secs(5);

/// Forwards one agent's events until the subscriber leaves, re-subscribing
/// from the last sequence seen whenever the agent goes away and comes back.
async fn follow_agent(
    agent: Arc<Agent>,
    mut since: Option<u64>,
    template: pb::SubscribeEventsRequest,
    tx: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let request = pb::SubscribeEventsRequest {
            since_sequence: since,
            agent_cursors: Vec::new(),
            ..template.clone()
        };
        let mut client = EventServiceClient::new(agent.channel());
        match client.subscribe(request).await {
            Ok(response) => {
                backoff = Duration::from_millis(100);
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(mut event)) => {
                            since = Some(event.sequence);
                            event.agent = agent.name.clone();
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        // The agent ended the stream or went away: resume.
                        Ok(None) => break,
                        Err(s) if s.code() == Code::Unavailable || s.code() == Code::Unknown => {
                            break;
                        }
                        Err(s) => {
                            let _ = tx.send(Err(named(&agent, s))).await;
                            return;
                        }
                    }
                }
            }
            Err(s) if s.code() == Code::Unavailable => {}
            Err(s) => {
                let _ = tx.send(Err(named(&agent, s))).await;
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_RESUBSCRIBE_BACKOFF);
    }
}

/// An agent's refusal, naming the agent (and keeping its metadata, such as
/// the oldest sequence it holds).
fn named(agent: &Agent, s: Status) -> Status {
    let mut status = Status::new(s.code(), format!("agent {}: {}", agent.name, s.message()));
    *status.metadata_mut() = s.metadata().clone();
    if let Ok(v) = agent.name.parse() {
        status.metadata_mut().insert("x-agent", v);
    }
    status
}

#[tonic::async_trait]
impl EventService for Events {
    type SubscribeStream = Boxed<pb::Event>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeEventsRequest>,
    ) -> RpcResult<Self::SubscribeStream> {
        let r = request.into_inner();
        for cursor in &r.agent_cursors {
            self.0.pool.named(&cursor.agent)?;
        }
        let (tx, rx) = mpsc::channel(64);
        for agent in self.0.pool.all().iter().cloned() {
            let since = r
                .agent_cursors
                .iter()
                .find(|c| c.agent == agent.name)
                .map(|c| c.sequence)
                .or(r.since_sequence);
            tokio::spawn(follow_agent(agent, since, r.clone(), tx.clone()));
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
