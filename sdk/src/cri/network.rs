//! A pod's network: the sandbox container holds it (its own network
//! namespace on crun-shimd's default bridge network through the CNI
//! plugins, with the pod's published ports and DNS settings, or the node's
//! network), and the pod's containers join it.

use std::net::IpAddr;

use super::error::{CriError, CriResult};
use super::pods::Sandbox;
use super::proto;
use crate::{ContainerConfig, DnsConfig, NetworkMode, PortMapping, Protocol};

/// The network of a pod's sandbox container.
pub(crate) fn sandbox_network(host_network: bool) -> NetworkMode {
    if host_network {
        NetworkMode::Host
    } else {
        NetworkMode::Bridge
    }
}

/// Sets the pod's DNS settings and published ports (`hostPort`) on its
/// sandbox.
pub(crate) fn apply_sandbox_settings(
    config: &proto::PodSandboxConfig,
    sandbox: &mut ContainerConfig,
) -> CriResult<()> {
    if let Some(dns) = &config.dns_config {
        sandbox.dns = DnsConfig {
            servers: dns
                .servers
                .iter()
                .map(|s| {
                    s.parse::<IpAddr>()
                        .map_err(|_| CriError::InvalidArgument(format!("DNS server {s:?}")))
                })
                .collect::<CriResult<Vec<IpAddr>>>()?,
            searches: dns.searches.clone(),
            options: dns.options.clone(),
        };
    }
    if sandbox.network == NetworkMode::Host {
        // The node's ports are the pod's already.
        return Ok(());
    }
    for port in &config.port_mappings {
        // Only host ports are published; a container port alone is reached
        // at the pod's address.
        if port.host_port <= 0 {
            continue;
        }
        let number = |p: i32, what: &str| {
            u16::try_from(p)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| CriError::InvalidArgument(format!("{what} port {p}")))
        };
        sandbox.ports.push(PortMapping {
            host_ip: match port.host_ip.as_str() {
                "" | "0.0.0.0" => None,
                ip => Some(
                    ip.parse()
                        .map_err(|_| CriError::InvalidArgument(format!("host IP {ip:?}")))?,
                ),
            },
            host_port: number(port.host_port, "host")?,
            container_port: number(port.container_port, "container")?,
            protocol: match port.protocol() {
                proto::Protocol::Udp => Protocol::Udp,
                proto::Protocol::Tcp => Protocol::Tcp,
                proto::Protocol::Sctp => {
                    return Err(CriError::InvalidArgument(
                        "SCTP ports are not supported".into(),
                    ));
                }
            },
        });
    }
    Ok(())
}

/// The network of a container of `sandbox`.
pub(crate) fn container_network(sandbox: &Sandbox) -> NetworkMode {
    if sandbox.host_network() {
        NetworkMode::Host
    } else {
        NetworkMode::Container(sandbox.id().to_string())
    }
}

/// The pod's addresses, for PodSandboxStatus: those of its sandbox's first
/// interface (none for a pod on the node's network).
pub(crate) fn pod_network_status(sandbox: &Sandbox) -> Option<proto::PodSandboxNetworkStatus> {
    let mut ips = sandbox
        .info
        .networks
        .first()?
        .ip_addresses
        .iter()
        // "10.88.0.5/16" → "10.88.0.5"
        .map(|ip| ip.split('/').next().unwrap_or(ip).to_string());
    let ip = ips.next()?;
    Some(proto::PodSandboxNetworkStatus {
        ip,
        additional_ips: ips.map(|ip| proto::PodIp { ip }).collect(),
    })
}

/// Whether pods get a network: crun-shimd's agent has a default network.
pub(crate) async fn network_ready(cri: &super::Cri) -> Result<(), String> {
    let networks = cri
        .runtime
        .networks()
        .list()
        .await
        .map_err(|e| e.to_string())?;
    if networks.iter().any(|n| n.is_default) {
        Ok(())
    } else {
        Err("crun-shimd has no default network".into())
    }
}
