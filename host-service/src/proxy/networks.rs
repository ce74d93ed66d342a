//! NetworkService: CreateNetwork places the network on an agent;
//! ListNetworks merges; InspectNetwork and RemoveNetwork go to the agent
//! named, or to the agents that have the network.

use libcrun_shim_proto::v1::network_service_client::NetworkServiceClient;
use libcrun_shim_proto::v1::{self as pb, network_service_server::NetworkService};
use tonic::{Code, Request, Response, Status};

use super::{RpcResult, Shared, answer, first_found, forward, forward_as};
use crate::agents::Agent;

/// Networks, proxied.
#[derive(Debug, Clone)]
pub struct Networks(pub Shared);

fn client(agent: &Agent) -> NetworkServiceClient<tonic::transport::Channel> {
    NetworkServiceClient::new(agent.channel()).max_decoding_message_size(agent.max_message_bytes())
}

fn stamp(network: Option<pb::Network>, agent: &str) -> Option<pb::Network> {
    network.map(|mut n| {
        n.agent = agent.to_string();
        n
    })
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("network {name} not found"))
}

#[tonic::async_trait]
impl NetworkService for Networks {
    async fn create_network(
        &self,
        request: Request<pb::CreateNetworkRequest>,
    ) -> RpcResult<pb::CreateNetworkResponse> {
        let agent = self.0.pool.place(&request.get_ref().agent)?;
        let mut r = answer(
            &agent,
            client(&agent).create_network(forward(request)).await,
        )?;
        r.network = stamp(r.network, &agent.name);
        Ok(Response::new(r))
    }

    async fn remove_network(
        &self,
        request: Request<pb::RemoveNetworkRequest>,
    ) -> RpcResult<pb::RemoveNetworkResponse> {
        let mut found = false;
        for agent in self.0.pool.select(&request.get_ref().agent)? {
            let r = forward_as(&request, request.get_ref().clone());
            match answer(&agent, client(&agent).remove_network(r).await) {
                Ok(_) => found = true,
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(s),
            }
        }
        if !found {
            return Err(not_found(&request.get_ref().name));
        }
        Ok(Response::new(pb::RemoveNetworkResponse {}))
    }

    async fn list_networks(
        &self,
        request: Request<pb::ListNetworksRequest>,
    ) -> RpcResult<pb::ListNetworksResponse> {
        let agents = self.0.pool.select(&request.get_ref().agent)?;
        let calls = agents.iter().map(|agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { (agent, client(agent).list_networks(r).await) }
        });
        let mut networks = Vec::new();
        for (agent, result) in futures::future::join_all(calls).await {
            match answer(agent, result) {
                Ok(r) => networks.extend(
                    r.networks
                        .into_iter()
                        .filter_map(|n| stamp(Some(n), &agent.name)),
                ),
                Err(s) if s.code() == Code::Unavailable => {}
                Err(s) => return Err(s),
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.agent.cmp(&b.agent)));
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn inspect_network(
        &self,
        request: Request<pb::InspectNetworkRequest>,
    ) -> RpcResult<pb::InspectNetworkResponse> {
        let (name, agent) = (&request.get_ref().name, &request.get_ref().agent);
        let (agent, mut found) = first_found(&self.0.pool, agent, not_found(name), |agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { client(&agent).inspect_network(r).await }
        })
        .await?;
        found.network = stamp(found.network, &agent.name);
        Ok(Response::new(found))
    }
}
