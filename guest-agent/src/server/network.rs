//! NetworkService over the runtime's networking.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crun_shim_network::NetworkSpec;
use libcrun_shim_proto::v1::{self as pb, network_service_server::NetworkService};
use tonic::{Request, Response};

use super::RpcResult;
use super::convert::interface_to_proto;
use crate::error::{Error, Result};
use crate::runtime::{NetworkInfo, Runtime};

/// The network service.
pub struct Networks {
    runtime: Arc<Runtime>,
}

impl Networks {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Networks { runtime }
    }
}

#[tonic::async_trait]
impl NetworkService for Networks {
    async fn create_network(
        &self,
        request: Request<pb::CreateNetworkRequest>,
    ) -> RpcResult<pb::CreateNetworkResponse> {
        let spec = spec_from_proto(request.into_inner())?;
        let network = self.runtime.create_network(spec).await?;
        Ok(Response::new(pb::CreateNetworkResponse {
            network: Some(network_to_proto(&network)),
        }))
    }

    async fn remove_network(
        &self,
        request: Request<pb::RemoveNetworkRequest>,
    ) -> RpcResult<pb::RemoveNetworkResponse> {
        self.runtime.remove_network(&request.get_ref().name).await?;
        Ok(Response::new(pb::RemoveNetworkResponse {}))
    }

    async fn list_networks(
        &self,
        _request: Request<pb::ListNetworksRequest>,
    ) -> RpcResult<pb::ListNetworksResponse> {
        let networks = self.runtime.networks().await?;
        Ok(Response::new(pb::ListNetworksResponse {
            networks: networks.iter().map(network_to_proto).collect(),
        }))
    }

    async fn inspect_network(
        &self,
        request: Request<pb::InspectNetworkRequest>,
    ) -> RpcResult<pb::InspectNetworkResponse> {
        let network = self.runtime.network(&request.get_ref().name).await?;
        Ok(Response::new(pb::InspectNetworkResponse {
            network: Some(network_to_proto(&network)),
        }))
    }
}

/// What a new network is made of, from the wire.
fn spec_from_proto(r: pb::CreateNetworkRequest) -> Result<NetworkSpec> {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(NetworkSpec {
        subnet: non_empty(r.subnet)
            .map(|s| {
                s.parse().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "subnet {s:?} is not an IPv4 subnet (10.90.0.0/24)"
                    ))
                })
            })
            .transpose()?,
        gateway: non_empty(r.gateway)
            .map(|g| {
                g.parse::<Ipv4Addr>().map_err(|_| {
                    Error::InvalidArgument(format!("gateway {g:?} is not an IPv4 address"))
                })
            })
            .transpose()?,
        bridge: non_empty(r.bridge),
        internal: r.internal,
        labels: r.labels.into_iter().collect(),
        name: r.name,
    })
}

/// A network for the wire.
fn network_to_proto(n: &NetworkInfo) -> pb::Network {
    let network = &n.network;
    pb::Network {
        name: network.name.clone(),
        agent: String::new(),
        driver: network.driver().to_string(),
        bridge: network.bridge().unwrap_or_default(),
        subnets: network
            .ranges()
            .into_iter()
            .map(|(subnet, gateway)| pb::NetworkSubnet {
                subnet: subnet.to_string(),
                gateway: gateway.as_ref().map(IpAddr::to_string).unwrap_or_default(),
            })
            .collect(),
        internal: network.internal(),
        ip_masquerade: network.ip_masq(),
        is_default: network.default,
        labels: network.labels().into_iter().collect(),
        plugins: network
            .conflist
            .plugin_types()
            .into_iter()
            .map(str::to_string)
            .collect(),
        config_path: network.path.display().to_string(),
        config_json: String::from_utf8_lossy(&network.conflist.to_json()).into_owned(),
        members: n
            .members
            .iter()
            .map(|(id, interface)| pb::NetworkMember {
                container_id: id.clone(),
                interface: interface.as_ref().map(interface_to_proto),
            })
            .collect(),
    }
}
