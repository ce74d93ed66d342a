//! ContainerService: routed by container id; Create places, List merges.

use libcrun_shim_proto::v1::{self as pb, container_service_server::ContainerService};
use tonic::{Request, Response, Status, Streaming};

use libcrun_shim_proto::v1::image_service_client::ImageServiceClient;
use libcrun_shim_proto::v1::network_service_client::NetworkServiceClient;

use super::{Relayed, RpcResult, Shared, answer, forward, forward_as, open_relay, relayed};

/// The container lifecycle, proxied.
#[derive(Debug, Clone)]
pub struct Containers(pub Shared);

/// Names the agent in a container.
fn stamp(container: Option<pb::Container>, agent: &str) -> Option<pb::Container> {
    container.map(|mut c| {
        c.agent = agent.to_string();
        c
    })
}

/// Forwards a call about one container to its agent and stamps the answer.
macro_rules! routed {
    ($self:ident, $request:ident, $method:ident) => {{
        let id = $request.get_ref().id.clone();
        let agent = $self.0.pool.route(&id).await?;
        let mut r = answer(&agent, agent.containers().$method(forward($request)).await)?;
        r.container = stamp(r.container, &agent.name);
        Ok(Response::new(r))
    }};
}

#[tonic::async_trait]
impl ContainerService for Containers {
    async fn create(
        &self,
        request: Request<pb::CreateContainerRequest>,
    ) -> RpcResult<pb::CreateContainerResponse> {
        let r = request.get_ref();
        let (id, agent) = self.placed(&request, r.config.as_ref(), &r.agent).await?;
        let mut r = answer(&agent, agent.containers().create(forward(request)).await)?;
        self.0.pool.remember(&id, &agent.name);
        r.container = stamp(r.container, &agent.name);
        Ok(Response::new(r))
    }

    async fn start(
        &self,
        request: Request<pb::StartContainerRequest>,
    ) -> RpcResult<pb::StartContainerResponse> {
        routed!(self, request, start)
    }

    async fn stop(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> RpcResult<pb::StopContainerResponse> {
        routed!(self, request, stop)
    }

    async fn kill(
        &self,
        request: Request<pb::KillContainerRequest>,
    ) -> RpcResult<pb::KillContainerResponse> {
        let agent = self.0.pool.route(&request.get_ref().id).await?;
        Ok(Response::new(answer(
            &agent,
            agent.containers().kill(forward(request)).await,
        )?))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseContainerRequest>,
    ) -> RpcResult<pb::PauseContainerResponse> {
        routed!(self, request, pause)
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeContainerRequest>,
    ) -> RpcResult<pb::ResumeContainerResponse> {
        routed!(self, request, resume)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteContainerRequest>,
    ) -> RpcResult<pb::DeleteContainerResponse> {
        let id = request.get_ref().id.clone();
        let agent = self.0.pool.route(&id).await?;
        let r = answer(&agent, agent.containers().delete(forward(request)).await)?;
        self.0.pool.forget(&id);
        Ok(Response::new(r))
    }

    async fn list(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> RpcResult<pb::ListContainersResponse> {
        let (containers, unreachable) = self.gather(&request).await?;
        let mut response = Response::new(pb::ListContainersResponse { containers });
        mark_unreachable(&mut response, &unreachable);
        Ok(response)
    }

    type ListStreamStream = libcrun_shim_proto::serving::ListStream;

    async fn list_stream(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> RpcResult<Self::ListStreamStream> {
        let (containers, unreachable) = self.gather(&request).await?;
        let mut response = Response::new(libcrun_shim_proto::serving::list_stream(containers));
        mark_unreachable(&mut response, &unreachable);
        Ok(response)
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectContainerRequest>,
    ) -> RpcResult<pb::InspectContainerResponse> {
        routed!(self, request, inspect)
    }

    async fn wait(
        &self,
        request: Request<pb::WaitContainerRequest>,
    ) -> RpcResult<pb::WaitContainerResponse> {
        let agent = self.0.pool.route(&request.get_ref().id).await?;
        Ok(Response::new(answer(
            &agent,
            agent.containers().wait(forward(request)).await,
        )?))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateContainerRequest>,
    ) -> RpcResult<pb::UpdateContainerResponse> {
        routed!(self, request, update)
    }

    type AttachStream = AttachStream;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachRequest>>,
    ) -> RpcResult<AttachStream> {
        let (agent, call) = open_relay(&self.0.pool, request, "attach", |m| match &m.request {
            Some(pb::attach_request::Request::Start(start)) => Some(start.container_id.clone()),
            _ => None,
        })
        .await?;
        let result = agent.containers().attach(call).await;
        relayed(agent, result)
    }

    async fn list_processes(
        &self,
        request: Request<pb::ListProcessesRequest>,
    ) -> RpcResult<pb::ListProcessesResponse> {
        let agent = self.0.pool.route(&request.get_ref().id).await?;
        Ok(Response::new(answer(
            &agent,
            agent.containers().list_processes(forward(request)).await,
        )?))
    }

    type RunStream = Relayed<pb::RunContainerResponse>;

    async fn run(&self, request: Request<pb::RunContainerRequest>) -> RpcResult<Self::RunStream> {
        use futures::StreamExt;
        let r = request.get_ref();
        let remove = r.remove;
        let (id, agent) = self.placed(&request, r.config.as_ref(), &r.agent).await?;
        // Known before the container starts, so that a Kill meanwhile is
        // routed without asking every agent.
        self.0.pool.remember(&id, &agent.name);
        let stream = match agent.containers().run(forward(request)).await {
            Ok(response) => response.into_inner(),
            Err(s) => {
                self.0.pool.forget(&id);
                return Err(agent.record_failure(s));
            }
        };
        let pool = self.0.pool.clone();
        let name = agent.name.clone();
        let stream = stream.map(move |message| {
            let mut message = message.map_err(|s| agent.record_failure(s))?;
            match &mut message.event {
                Some(pb::run_container_response::Event::Started(c)) => c.agent = name.clone(),
                Some(pb::run_container_response::Event::Exit(_)) if remove => pool.forget(&id),
                _ => {}
            }
            Ok(message)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Names the agents a merged answer misses in its metadata.
fn mark_unreachable<T>(response: &mut Response<T>, unreachable: &[String]) {
    if !unreachable.is_empty()
        && let Ok(v) = unreachable.join(",").parse()
    {
        response.metadata_mut().insert("x-unavailable-agents", v);
    }
}

type AttachStream = Relayed<pb::AttachResponse>;

impl Containers {
    /// The merged list of the agents a List request selects, oldest first,
    /// each container stamped with its agent, and the agents that could not
    /// be reached (UNAVAILABLE when none could). Each agent's list comes
    /// through its ListStream, so no agent's list is bound by one message.
    async fn gather(
        &self,
        request: &Request<pb::ListContainersRequest>,
    ) -> Result<(Vec<pb::Container>, Vec<String>), Status> {
        let agents = self.0.pool.select(&request.get_ref().agent)?;
        let calls = agents.iter().map(|agent| {
            let r = forward_as(request, request.get_ref().clone());
            async move { (agent, agent.list(r).await) }
        });
        let mut containers = Vec::new();
        let mut unreachable = Vec::new();
        for (agent, result) in futures::future::join_all(calls).await {
            match result {
                Ok(list) => {
                    for mut c in list {
                        self.0.pool.remember(&c.id, &agent.name);
                        c.agent = agent.name.clone();
                        containers.push(c);
                    }
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    unreachable.push(agent.name.clone())
                }
                Err(s) => return Err(s),
            }
        }
        if !unreachable.is_empty() && unreachable.len() == agents.len() {
            return Err(Status::unavailable(format!(
                "no agent is reachable ({})",
                unreachable.join(", ")
            )));
        }
        containers.sort_by(|a, b| {
            let t = |c: &pb::Container| c.created_at.map(|t| (t.seconds, t.nanos));
            t(a).cmp(&t(b)).then_with(|| a.id.cmp(&b.id))
        });
        Ok((containers, unreachable))
    }

    /// The id of the container a Create (or Run) makes, and the agent it
    /// goes to (see [`Containers::place`]). ALREADY_EXISTS when an agent
    /// holds the id.
    async fn placed<T>(
        &self,
        request: &Request<T>,
        config: Option<&pb::ContainerConfig>,
        agent: &str,
    ) -> Result<(String, std::sync::Arc<crate::agents::Agent>), Status> {
        let id = config
            .map(|c| c.id.clone())
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        if let Some(holder) = self.0.pool.holder(&id).await {
            return Err(Status::already_exists(format!(
                "container {id} already exists on agent {}",
                holder.name
            )));
        }
        Ok((id, self.place(request, config, agent).await?))
    }

    /// The agent a Create goes to: the one named; for a container joining
    /// another's network namespace, that container's agent; else the least
    /// loaded of the agents that hold its image and its networks (images
    /// are pulled to, and networks made on, one agent), or of all when
    /// none does (its agent then says what is missing).
    /// `request` is the Create's (or Run's), `config` and `agent` its
    /// fields.
    async fn place<T>(
        &self,
        request: &Request<T>,
        config: Option<&pb::ContainerConfig>,
        agent: &str,
    ) -> Result<std::sync::Arc<crate::agents::Agent>, Status> {
        let Some(config) = config.filter(|_| agent.is_empty()) else {
            return self.0.pool.place(agent);
        };
        if config.network_mode() == pb::NetworkMode::Container {
            return self.0.pool.route(&config.network_container).await;
        }
        let image = match &config.root {
            Some(pb::container_config::Root::Image(image)) => Some(image.clone()),
            _ => None,
        };
        let networks: Vec<String> = config.networks.iter().map(|n| n.name.clone()).collect();
        if image.is_none() && networks.is_empty() {
            return self.0.pool.place("");
        }
        let holders =
            futures::future::join_all(self.0.pool.all().iter().filter(|a| a.is_ready()).map(
                |agent| {
                    let (image, networks) = (image.clone(), networks.clone());
                    async move {
                        if let Some(reference) = image {
                            let inspect = pb::InspectImageRequest {
                                reference,
                                agent: String::new(),
                            };
                            let mut images = ImageServiceClient::new(agent.channel());
                            if images.inspect(forward_as(request, inspect)).await.is_err() {
                                return None;
                            }
                        }
                        let mut client = NetworkServiceClient::new(agent.channel());
                        for name in networks {
                            let inspect = pb::InspectNetworkRequest {
                                name,
                                agent: String::new(),
                            };
                            if client
                                .inspect_network(forward_as(request, inspect))
                                .await
                                .is_err()
                            {
                                return None;
                            }
                        }
                        Some(agent.name.clone())
                    }
                },
            ))
            .await;
        let holders: Vec<String> = holders.into_iter().flatten().collect();
        self.0.pool.place_among("", |a| holders.contains(&a.name))
    }
}
