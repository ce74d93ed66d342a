//! SystemService: the daemon's own version and info (with every agent's
//! health); hygiene calls fan out to the agents selected.

use std::time::Duration;

use libcrun_shim_proto::v1::{self as pb, system_service_server::SystemService};
use tonic::{Code, Request, Response, Status};

use super::{RpcResult, Shared, answer, forward, forward_as};
use crate::agents::Agent;

/// The name the daemon reports as its component.
pub const COMPONENT: &str = "crun-shimd";

/// System calls, proxied or answered by the daemon.
#[derive(Debug, Clone)]
pub struct System {
    shared: Shared,
    shutdown: tokio::sync::mpsc::Sender<()>,
}

impl System {
    /// The service; a daemon Shutdown sends on `shutdown`.
    pub fn new(shared: Shared, shutdown: tokio::sync::mpsc::Sender<()>) -> Self {
        System { shared, shutdown }
    }
}

fn stamp_orphans(orphans: &mut [pb::Orphan], agent: &Agent) {
    for o in orphans {
        o.agent = agent.name.clone();
    }
}

/// The agent's entry in Info, from what the daemon knows of it.
fn agent_info(agent: &Agent) -> pb::AgentInfo {
    let health = agent.health();
    let mut info = health.info.unwrap_or_default();
    info.name = agent.name.clone();
    info.endpoint = agent.endpoint.clone();
    info.state = health.state as i32;
    info.last_error = health.last_error;
    info
}

#[tonic::async_trait]
impl SystemService for System {
    async fn version(&self, _: Request<pb::VersionRequest>) -> RpcResult<pb::VersionResponse> {
        Ok(Response::new(libcrun_shim_proto::serving::version(
            COMPONENT, "",
        )))
    }

    async fn info(&self, _: Request<pb::InfoRequest>) -> RpcResult<pb::InfoResponse> {
        Ok(Response::new(pb::InfoResponse {
            component: COMPONENT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agents: self
                .shared
                .pool
                .all()
                .iter()
                .map(|a| agent_info(a))
                .collect(),
        }))
    }

    async fn cleanup_stopped(
        &self,
        request: Request<pb::CleanupStoppedRequest>,
    ) -> RpcResult<pb::CleanupStoppedResponse> {
        let mut removed_ids = Vec::new();
        for agent in self.shared.pool.select(&request.get_ref().agent)? {
            let r = forward_as(&request, pb::CleanupStoppedRequest::default());
            let r = answer(&agent, agent.system().cleanup_stopped(r).await)?;
            for id in &r.removed_ids {
                self.shared.pool.forget(id);
            }
            removed_ids.extend(r.removed_ids);
        }
        Ok(Response::new(pb::CleanupStoppedResponse { removed_ids }))
    }

    async fn list_orphaned(
        &self,
        request: Request<pb::ListOrphanedRequest>,
    ) -> RpcResult<pb::ListOrphanedResponse> {
        let mut orphans = Vec::new();
        for agent in self.shared.pool.select(&request.get_ref().agent)? {
            let r = forward_as(&request, pb::ListOrphanedRequest::default());
            let mut r = answer(&agent, agent.system().list_orphaned(r).await)?;
            stamp_orphans(&mut r.orphans, &agent);
            orphans.extend(r.orphans);
        }
        Ok(Response::new(pb::ListOrphanedResponse { orphans }))
    }

    async fn force_delete(
        &self,
        request: Request<pb::ForceDeleteRequest>,
    ) -> RpcResult<pb::ForceDeleteResponse> {
        // Leftovers may be anywhere: every reachable agent is asked.
        let id = request.get_ref().id.clone();
        let mut removed = Vec::new();
        for agent in self.shared.pool.all() {
            let r = forward_as(&request, request.get_ref().clone());
            match answer(agent, agent.system().force_delete(r).await) {
                Ok(mut r) => {
                    stamp_orphans(&mut r.removed, agent);
                    removed.extend(r.removed);
                }
                Err(s) if s.code() == Code::Unavailable => {}
                Err(s) => return Err(s),
            }
        }
        self.shared.pool.forget(&id);
        Ok(Response::new(pb::ForceDeleteResponse { removed }))
    }

    async fn recover(
        &self,
        request: Request<pb::RecoverRequest>,
    ) -> RpcResult<pb::RecoverResponse> {
        let mut total = pb::RecoverResponse::default();
        for agent in self.shared.pool.select(&request.get_ref().agent)? {
            let r = forward_as(&request, pb::RecoverRequest::default());
            let mut r = answer(&agent, agent.system().recover(r).await)?;
            stamp_orphans(&mut r.orphans, &agent);
            total.adopted_ids.extend(r.adopted_ids);
            total.exited_ids.extend(r.exited_ids);
            total.undone_ids.extend(r.undone_ids);
            total.removed_ids.extend(r.removed_ids);
            total.orphans.extend(r.orphans);
        }
        Ok(Response::new(total))
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> RpcResult<pb::ShutdownResponse> {
        let r = request.get_ref().clone();
        if !r.agent.is_empty() {
            let agent = self.shared.pool.named(&r.agent)?;
            return Ok(Response::new(answer(
                &agent,
                agent.system().shutdown(forward(request)).await,
            )?));
        }
        // The daemon itself: containers are stopped through their agents
        // when asked (the agents keep running), then the daemon exits.
        let mut stopped_ids = Vec::new();
        if r.stop_containers {
            let timeout = r.timeout.unwrap_or(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            });
            for agent in self.shared.pool.all() {
                let live = pb::ListContainersRequest {
                    statuses: vec![
                        pb::ContainerStatus::Created as i32,
                        pb::ContainerStatus::Running as i32,
                        pb::ContainerStatus::Paused as i32,
                    ],
                    ..Default::default()
                };
                let Ok(list) = agent.containers().list(live).await else {
                    continue;
                };
                let stops = list.into_inner().containers.into_iter().map(|c| {
                    let mut client = agent.containers();
                    let mut stop = Request::new(pb::StopContainerRequest {
                        id: c.id.clone(),
                        signal: String::new(),
                        timeout: Some(timeout),
                    });
                    stop.set_timeout(Duration::from_secs(timeout.seconds.max(0) as u64 + 30));
                    async move { client.stop(stop).await.map(|_| c.id) }
                });
                for result in futures::future::join_all(stops).await {
                    stopped_ids.push(result.map_err(|s| agent.record_failure(s))?);
                }
            }
        }
        self.shutdown
            .try_send(())
            .map_err(|_| Status::failed_precondition("the daemon is already shutting down"))?;
        Ok(Response::new(pb::ShutdownResponse { stopped_ids }))
    }
}
