//! The agents the daemon proxies to: their connections, their health, and
//! which agent holds which container.
//!
//! The daemon keeps no state that can be lost: the container → agent map
//! is a cache, rebuilt from each agent's List when it (re)connects and
//! consulted again from the agents when an id is not in it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;
use libcrun_shim_proto::v1::system_service_client::SystemServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::error::{Error, Result};

/// How an agent is reached: the dialer shared with the SDK (Unix
/// sockets, vsock, hybrid vsock into a VM).
pub use libcrun_shim_transport::Endpoint;

/// Parses an agent's endpoint, as a configuration error when it is bad.
/// Agents listen on Unix sockets and vsock only, never on TCP.
pub fn parse_endpoint(s: &str) -> Result<Endpoint> {
    match Endpoint::parse(s) {
        Ok(Endpoint::Http(_)) => Err(Error::Config(format!(
            "agent endpoint {s:?}: agents are reached over unix://, vsock:// or hvsock://"
        ))),
        Ok(endpoint) => Ok(endpoint),
        Err(e) => Err(Error::Config(e.to_string())),
    }
}

/// A channel to `endpoint` that connects (and reconnects) when used.
fn channel(endpoint: &Endpoint) -> Channel {
    let builder = endpoint
        .builder()
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    endpoint.connect_lazy(builder)
}

/// What the daemon knows of an agent's health.
#[derive(Debug, Clone)]
pub struct Health {
    /// Reachable or not.
    pub state: pb::AgentState,
    /// The agent's own report, from its last successful Info.
    pub info: Option<pb::AgentInfo>,
    /// The last error seen reaching it.
    pub last_error: String,
    /// When it last answered.
    pub last_seen: Option<SystemTime>,
}

/// One agent.
#[derive(Debug)]
pub struct Agent {
    /// Its configured name.
    pub name: String,
    /// Its endpoint as configured.
    pub endpoint: String,
    channel: Channel,
    max_message_bytes: usize,
    health: RwLock<Health>,
}

impl Agent {
    /// A client of the agent's ContainerService.
    pub fn containers(&self) -> ContainerServiceClient<Channel> {
        ContainerServiceClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes)
    }

    /// A client of the agent's SystemService.
    pub fn system(&self) -> SystemServiceClient<Channel> {
        SystemServiceClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes)
    }

    /// Every container `request` selects on this agent, gathered from the
    /// batches of its ListStream. Failures are the daemon's answers
    /// ([`Agent::status`]).
    pub async fn list(
        &self,
        request: tonic::Request<pb::ListContainersRequest>,
    ) -> std::result::Result<Vec<pb::Container>, Status> {
        let mut stream = self
            .containers()
            .list_stream(request)
            .await
            .map_err(|s| self.record_failure(s))?
            .into_inner();
        let mut all = Vec::new();
        while let Some(batch) = stream.message().await.map_err(|s| self.record_failure(s))? {
            all.extend(batch.containers);
        }
        Ok(all)
    }

    /// The agent's channel, for the other clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The largest message exchanged with it.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// What the daemon knows of its health.
    pub fn health(&self) -> Health {
        self.health
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_health(&self, f: impl FnOnce(&mut Health)) {
        f(&mut self.health.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Records a failed call to the agent and returns the daemon's answer:
    /// a transport failure marks the agent unavailable in its health (with
    /// the message as its last error) and is answered UNAVAILABLE naming
    /// the agent; the agent's own answers pass as they are.
    pub fn record_failure(&self, status: Status) -> Status {
        if is_transport_failure(&status) {
            self.set_health(|h| {
                h.state = pb::AgentState::Unavailable;
                h.last_error = status.message().to_string();
            });
            Status::unavailable(format!(
                "agent {} ({}) is unavailable: {}",
                self.name,
                self.endpoint,
                status.message()
            ))
        } else {
            status
        }
    }

    /// Containers running or paused on it (from its last Info), for
    /// placement.
    fn load(&self) -> u32 {
        self.health()
            .info
            .map_or(u32::MAX, |i| i.containers_running)
    }

    /// Whether the agent answers its health checks.
    pub fn is_ready(&self) -> bool {
        self.health().state == pb::AgentState::Ready
    }
}

/// Whether a client call failed for want of a working connection rather
/// than by the server's answer: UNAVAILABLE, or an UNKNOWN, INTERNAL or
/// CANCELLED status that tonic made from a transport error (a connection
/// reset or closed mid-call: "transport error", "connection closed before
/// message completed", or "operation was canceled" when a call is sent on
/// a connection whose agent just died). Statuses a server sends carry no
/// source error; those tonic makes from a failed connection do. A
/// CANCELLED made from the caller's own deadline is not one.
pub fn is_transport_failure(status: &Status) -> bool {
    let source = std::error::Error::source(status);
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal => source.is_some(),
        Code::Cancelled => {
            source.is_some()
                && !std::iter::successors(source, |e| e.source())
                    .any(|e| e.is::<tonic::TimeoutExpired>())
        }
        _ => false,
    }
}

/// All agents, and where their containers are.
#[derive(Debug)]
pub struct AgentPool {
    agents: Vec<Arc<Agent>>,
    locations: RwLock<HashMap<String, String>>,
}

/// Time between health checks of a reachable agent.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// The longest pause between reconnection attempts.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(10);

impl AgentPool {
    /// Agents for the configured endpoints; connections are made on first
    /// use and re-made as needed.
    pub fn new(configs: &[AgentConfig], max_message_bytes: usize) -> Result<Arc<AgentPool>> {
        let agents = configs
            .iter()
            .map(|c| {
                Ok(Arc::new(Agent {
                    name: c.name.clone(),
                    endpoint: c.endpoint.clone(),
                    channel: channel(&parse_endpoint(&c.endpoint)?),
                    max_message_bytes,
                    health: RwLock::new(Health {
                        state: pb::AgentState::Connecting,
                        info: None,
                        last_error: String::new(),
                        last_seen: None,
                    }),
                }))
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(AgentPool {
            agents,
            locations: RwLock::new(HashMap::new()),
        }))
    }

    /// Every agent, in configuration order.
    pub fn all(&self) -> &[Arc<Agent>] {
        &self.agents
    }

    /// The agent named `name`: INVALID_ARGUMENT for an unknown name.
    pub fn named(&self, name: &str) -> std::result::Result<Arc<Agent>, Status> {
        self.agents
            .iter()
            .find(|a| a.name == name)
            .cloned()
            .ok_or_else(|| Status::invalid_argument(format!("no agent named {name:?}")))
    }

    /// The agents a request selects: `name` if set, else all.
    pub fn select(&self, name: &str) -> std::result::Result<Vec<Arc<Agent>>, Status> {
        if name.is_empty() {
            Ok(self.agents.clone())
        } else {
            Ok(vec![self.named(name)?])
        }
    }

    /// The agent to place new work on: `name` if set, else the reachable
    /// agent with the fewest running containers.
    pub fn place(&self, name: &str) -> std::result::Result<Arc<Agent>, Status> {
        self.place_among(name, |_| true)
    }

    /// [`AgentPool::place`] among the agents `eligible` accepts, when
    /// any reachable one does; else among all.
    pub fn place_among(
        &self,
        name: &str,
        eligible: impl Fn(&Agent) -> bool,
    ) -> std::result::Result<Arc<Agent>, Status> {
        if !name.is_empty() {
            return self.named(name);
        }
        let ready = || self.agents.iter().filter(|a| a.is_ready());
        ready()
            .filter(|a| eligible(a))
            .min_by_key(|a| a.load())
            .or_else(|| ready().min_by_key(|a| a.load()))
            .or_else(|| self.agents.first())
            .cloned()
            .ok_or_else(|| Status::unavailable("no agent is configured"))
    }

    /// Records that container `id` lives on `agent`.
    pub fn remember(&self, id: &str, agent: &str) {
        self.locations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), agent.to_string());
    }

    /// Forgets container `id`.
    pub fn forget(&self, id: &str) {
        self.locations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The agent of a known container, without asking anyone.
    pub fn cached(&self, id: &str) -> Option<Arc<Agent>> {
        let name = self
            .locations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        self.agents.iter().find(|a| a.name == name).cloned()
    }

    /// The agent known to hold container `id`, confirmed by that agent: a
    /// container its agent deleted on its own (`auto_remove`) is forgotten
    /// here, and its id is free again. An agent that cannot be asked is
    /// taken to hold it still.
    pub async fn holder(&self, id: &str) -> Option<Arc<Agent>> {
        let agent = self.cached(id)?;
        let found = agent
            .containers()
            .inspect(pb::InspectContainerRequest { id: id.to_string() })
            .await;
        match found {
            Err(s) if s.code() == Code::NotFound => {
                self.forget(id);
                None
            }
            _ => Some(agent),
        }
    }

    /// The agent holding container `id`: from the cache, else by asking the
    /// reachable agents. NOT_FOUND when none has it; UNAVAILABLE when it
    /// is not found but some agent could not be asked.
    pub async fn route(&self, id: &str) -> std::result::Result<Arc<Agent>, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument("a container id is required"));
        }
        if let Some(agent) = self.cached(id) {
            return Ok(agent);
        }
        let lookups = self.agents.iter().map(|agent| async move {
            let found = agent
                .containers()
                .inspect(pb::InspectContainerRequest { id: id.to_string() })
                .await;
            (agent.clone(), found)
        });
        let mut unreachable = Vec::new();
        for (agent, found) in futures::future::join_all(lookups).await {
            match found {
                Ok(_) => {
                    self.remember(id, &agent.name);
                    return Ok(agent);
                }
                Err(s) if s.code() == Code::NotFound => {}
                // A bad id is the same error from every agent.
                Err(s) if s.code() == Code::InvalidArgument => return Err(s),
                Err(s) => unreachable.push(agent.record_failure(s)),
            }
        }
        match unreachable.into_iter().next() {
            Some(status) => Err(Status::unavailable(format!(
                "container {id} not found on the reachable agents; {}",
                status.message()
            ))),
            None => Err(Status::not_found(format!("container {id} not found"))),
        }
    }

    /// Watches every agent: health checks, reconnection with backoff, and
    /// the container map rebuilt whenever an agent becomes reachable.
    pub fn watch(self: &Arc<Self>) {
        for agent in &self.agents {
            let pool = Arc::clone(self);
            let agent = agent.clone();
            tokio::spawn(async move {
                let mut backoff = Duration::from_millis(100);
                loop {
                    let was_ready = agent.is_ready();
                    let info = tokio::time::timeout(
                        Duration::from_secs(3),
                        agent.system().info(pb::InfoRequest {}),
                    )
                    .await;
                    match info {
                        Ok(Ok(info)) => {
                            backoff = Duration::from_millis(100);
                            let own = info.into_inner().agents.into_iter().next();
                            agent.set_health(|h| {
                                h.state = pb::AgentState::Ready;
                                h.info = own;
                                h.last_error.clear();
                                h.last_seen = Some(SystemTime::now());
                            });
                            if !was_ready {
                                info!(agent = %agent.name, "agent reachable");
                                pool.rebuild(&agent).await;
                            }
                            tokio::time::sleep(HEALTH_INTERVAL).await;
                        }
                        failed => {
                            let message = match failed {
                                Ok(Err(s)) => s.message().to_string(),
                                _ => "no answer within 3s".to_string(),
                            };
                            if was_ready {
                                warn!(agent = %agent.name, error = %message, "agent unreachable");
                            }
                            agent.set_health(|h| {
                                h.state = pb::AgentState::Unavailable;
                                h.last_error = message;
                            });
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
                        }
                    }
                }
            });
        }
    }

    /// Re-learns which containers an agent holds.
    async fn rebuild(&self, agent: &Agent) {
        if let Ok(list) = agent
            .list(tonic::Request::new(pb::ListContainersRequest::default()))
            .await
        {
            let mut locations = self.locations.write().unwrap_or_else(|e| e.into_inner());
            locations.retain(|_, name| *name != agent.name);
            for c in list {
                locations.insert(c.id, agent.name.clone());
            }
        }
    }
}

#[cfg(test)]
mod transport_failure_tests {
    use std::sync::Arc;

    use tonic::{Code, Status};

    use super::is_transport_failure;

    #[test]
    fn a_call_cut_by_a_dying_connection_is_a_transport_failure() {
        let mut cut = Status::cancelled("operation was canceled: connection closed");
        cut.set_source(Arc::new(std::io::Error::other("connection closed")));
        assert!(is_transport_failure(&cut));
        // The agent's own answer, and the caller's deadline, are not.
        assert!(!is_transport_failure(&Status::cancelled(
            "cancelled by the agent"
        )));
        let timeout = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(timeout.code(), Code::Cancelled);
        assert!(!is_transport_failure(&timeout));
        assert!(is_transport_failure(&Status::unavailable("refused")));
    }
}
