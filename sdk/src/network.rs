//! Container networks: the agents' bridge networks, published ports, DNS
//! settings and host entries.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use libcrun_shim_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::config::RuntimeConfig;
use crate::convert::ConversionError;
use crate::error::{Error, Result};

/// The transport protocol of a published port.
///
/// ```
/// assert_eq!(libcrun_shim::Protocol::Udp.to_string(), "udp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A network a container joins ([`NetworkMode::Bridge`](crate::NetworkMode::Bridge)).
///
/// ```
/// let net = libcrun_shim::ContainerNetwork::named("backend");
/// assert!(net.ip.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerNetwork {
    /// The network's name.
    pub name: String,
    /// A fixed address in the network's subnet; `None`: one is picked.
    pub ip: Option<IpAddr>,
    /// More names the network's other containers know it by.
    pub aliases: Vec<String>,
}

impl ContainerNetwork {
    /// Network `name`, any address, no alias.
    pub fn named(name: impl Into<String>) -> ContainerNetwork {
        ContainerNetwork {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// A container port published on the agent's machine, like `docker run -p`.
///
/// It parses Docker's syntax: `CONTAINERPORT`, `HOSTPORT:CONTAINERPORT`,
/// `HOSTIP:HOSTPORT:CONTAINERPORT` or `HOSTIP::CONTAINERPORT`, each with an
/// optional `/tcp` or `/udp`; an IPv6 host address goes in brackets.
///
/// ```
/// use libcrun_shim::{PortMapping, Protocol};
///
/// let web: PortMapping = "127.0.0.1:8080:80".parse().unwrap();
/// assert_eq!((web.host_port, web.container_port, web.protocol), (8080, 80, Protocol::Tcp));
/// let any: PortMapping = "53/udp".parse().unwrap();
/// assert_eq!(any.host_port, 0, "a free port is picked");
/// assert_eq!(web.to_string(), "127.0.0.1:8080:80/tcp");
/// assert!("8000-8010:80".parse::<PortMapping>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The address of the agent's machine; `None`: all of them (127.0.0.1
    /// included).
    pub host_ip: Option<IpAddr>,
    /// The port on the agent's machine; 0 picks a free one.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// The protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

impl FromStr for PortMapping {
    type Err = Error;

    fn from_str(spec: &str) -> Result<PortMapping> {
        let bad =
            |why: &str| Error::InvalidArgument(format!("invalid port mapping {spec:?}: {why}"));
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, "tcp" | "TCP")) => (rest, Protocol::Tcp),
            Some((rest, "udp" | "UDP")) => (rest, Protocol::Udp),
            Some((_, other)) => {
                return Err(bad(&format!("unknown protocol {other:?} (tcp or udp)")));
            }
            None => (spec, Protocol::Tcp),
        };
        let (host_ip, ports): (Option<IpAddr>, Vec<&str>) =
            if let Some(after) = rest.strip_prefix('[') {
                let (ip, ports) = after.split_once("]:").ok_or_else(|| {
                    bad("an IPv6 address in brackets is followed by \":PORT:PORT\"")
                })?;
                let ip: Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
                (Some(ip.into()), ports.split(':').collect())
            } else {
                let parts: Vec<&str> = rest.split(':').collect();
                match parts.len() {
                    1 | 2 => (None, parts),
                    3 => {
                        let ip: Ipv4Addr = parts[0]
                            .parse()
                            .map_err(|_| bad("the host address is not an IPv4 address"))?;
                        (Some(ip.into()), parts[1..].to_vec())
                    }
                    _ => return Err(bad("too many ':' (an IPv6 host address goes in brackets)")),
                }
            };
        let port = |s: &str, what: &str, zero_ok: bool| -> Result<u16> {
            if s.contains('-') {
                return Err(bad("port ranges are not supported"));
            }
            match s.parse::<u16>() {
                Ok(0) if !zero_ok => Err(bad(&format!("the {what} port must be 1-65535"))),
                Ok(p) => Ok(p),
                Err(_) => Err(bad(&format!(
                    "the {what} port {s:?} is not a number 1-65535"
                ))),
            }
        };
        let (host_port, container_port) = match ports.as_slice() {
            [container] => (0, port(container, "container", false)?),
            ["", container] if host_ip.is_some() => (0, port(container, "container", false)?),
            [host, container] => (
                port(host, "host", true)?,
                port(container, "container", false)?,
            ),
            _ => return Err(bad("expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTOCOL]")),
        };
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    /// The syntax [`PortMapping::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        if self.host_port != 0 {
            write!(f, "{}:", self.host_port)?;
        } else if self.host_ip.is_some() {
            f.write_str(":")?;
        }
        write!(f, "{}/{}", self.container_port, self.protocol)
    }
}

/// DNS settings of a container (its `/etc/resolv.conf`); each empty part
/// keeps the agent machine's.
///
/// ```
/// let dns = libcrun_shim::DnsConfig { servers: vec!["192.0.2.53".parse().unwrap()], ..Default::default() };
/// assert!(dns.searches.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsConfig {
    /// Name servers (`--dns`).
    pub servers: Vec<IpAddr>,
    /// Search domains (`--dns-search`); `"."` alone for none.
    pub searches: Vec<String>,
    /// resolv.conf options (`--dns-option ndots:2`).
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }
}

/// A static `/etc/hosts` entry (`--add-host NAME:IP`).
///
/// ```
/// let entry: libcrun_shim::HostEntry = "db:10.0.0.5".parse().unwrap();
/// assert_eq!(entry.hostname, "db");
/// let v6: libcrun_shim::HostEntry = "db6:fd00::5".parse().unwrap();
/// assert!(v6.ip.is_ipv6());
/// assert!("db".parse::<libcrun_shim::HostEntry>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// The host name.
    pub hostname: String,
    /// Its address.
    pub ip: IpAddr,
}

impl FromStr for HostEntry {
    type Err = Error;

    /// `NAME:IP` or `NAME=IP`.
    fn from_str(s: &str) -> Result<HostEntry> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid host entry {s:?}: {why}"));
        let (name, ip) = s
            .split_once(['=', ':'])
            .ok_or_else(|| bad("expected NAME:IP"))?;
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(bad("the name is empty or has spaces"));
        }
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
        Ok(HostEntry {
            hostname: name.to_string(),
            ip,
        })
    }
}

/// A container's interface on one network.
///
/// ```
/// let eth0 = libcrun_shim::NetworkInterface::default();
/// assert!(eth0.ip_addresses.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// The network.
    pub network: String,
    /// The interface inside the container (`eth0`).
    pub interface: String,
    /// Its MAC address.
    pub mac_address: String,
    /// Its addresses with their prefix lengths (`10.77.0.2/16`).
    pub ip_addresses: Vec<String>,
    /// The gateway of its subnet.
    pub gateway: Option<String>,
}

impl NetworkInterface {
    /// Its first address, without the prefix length.
    ///
    /// ```
    /// let eth0 = libcrun_shim::NetworkInterface { ip_addresses: vec!["10.77.0.2/16".into()], ..Default::default() };
    /// assert_eq!(eth0.ip(), Some("10.77.0.2".parse().unwrap()));
    /// ```
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip_addresses
            .first()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
    }
}

/// A subnet of a network and its gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkSubnet {
    /// The subnet (`10.78.0.0/24`).
    pub subnet: String,
    /// Its gateway, when the network has one.
    pub gateway: Option<String>,
}

/// A container attached to a network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkMember {
    /// The container.
    pub container_id: String,
    /// Its interface on the network (`None` while it is being attached).
    pub interface: Option<NetworkInterface>,
}

/// A network of an agent.
///
/// ```no_run
/// # async fn demo(networks: libcrun_shim::Networks) -> libcrun_shim::Result<()> {
/// let net = networks.inspect("crun-shim").await?;
/// println!("{} on {:?}: {:?}, {} containers", net.name, net.bridge, net.subnets, net.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The name.
    pub name: String,
    /// The agent holding it (set by `crun-shimd`).
    pub agent: String,
    /// Its first plugin's type (`bridge`).
    pub driver: String,
    /// Its bridge interface.
    pub bridge: Option<String>,
    /// Its subnets.
    pub subnets: Vec<NetworkSubnet>,
    /// No route out, no masquerading.
    pub internal: bool,
    /// Whether traffic to the outside is masqueraded.
    pub ip_masquerade: bool,
    /// Whether it is the agent's default network.
    pub is_default: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Its plugins, in order.
    pub plugins: Vec<String>,
    /// The file defining it on the agent's machine.
    pub config_path: String,
    /// Its CNI configuration list (JSON).
    pub config_json: String,
    /// The containers attached to it.
    pub members: Vec<NetworkMember>,
}

/// How [`Networks::create`] makes a network; unset parts are picked.
///
/// ```
/// let options = libcrun_shim::NetworkOptions { subnet: Some("10.90.0.0/24".into()), ..Default::default() };
/// assert!(!options.internal);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkOptions {
    /// The IPv4 subnet; a free /24 of 10.78.0.0/16 when `None`.
    pub subnet: Option<String>,
    /// The gateway; the subnet's first address when `None`.
    pub gateway: Option<String>,
    /// The bridge's name; `crun-shimN` when `None`.
    pub bridge: Option<String>,
    /// No route out, no masquerading.
    pub internal: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
}

/// The networks of the runtime's agents.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// use libcrun_shim::{ContainerConfig, ContainerNetwork, NetworkMode, NetworkOptions, RootSource};
///
/// let networks = runtime.networks();
/// networks.create("backend", NetworkOptions::default()).await?;
/// runtime
///     .create(ContainerConfig {
///         id: "db".into(),
///         root: RootSource::Rootfs("/srv/busybox".into()),
///         command: vec!["httpd".into(), "-f".into()],
///         network: NetworkMode::Bridge,
///         networks: vec![ContainerNetwork::named("backend")],
///         ports: vec!["127.0.0.1:8080:80".parse()?],
///         ..Default::default()
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Networks {
    client: Client,
}

impl Networks {
    /// Connects to the default endpoint (or `CRUN_SHIM_HOST`), like
    /// [`ContainerRuntime::new`](crate::ContainerRuntime::new).
    pub async fn new() -> Result<Networks> {
        Ok(Networks {
            client: Client::connect(&RuntimeConfig::from_env()).await?,
        })
    }

    pub(crate) fn from_client(client: Client) -> Networks {
        Networks { client }
    }

    /// Creates a bridge network (on [`RuntimeConfig::agent`], else the
    /// least loaded agent). [`Error::AlreadyExists`] for a name in use.
    pub async fn create(&self, name: &str, options: NetworkOptions) -> Result<NetworkInfo> {
        let request = self.client.with_deadline(pb::CreateNetworkRequest {
            name: name.into(),
            subnet: options.subnet.unwrap_or_default(),
            gateway: options.gateway.unwrap_or_default(),
            bridge: options.bridge.unwrap_or_default(),
            internal: options.internal,
            labels: options.labels.into_iter().collect(),
            agent: self.client.agent(),
        });
        network(
            self.client
                .networks()
                .create_network(request)
                .await?
                .into_inner()
                .network,
        )
    }

    /// Removes a network: [`Error::FailedPrecondition`] while containers
    /// use it, and for the default network.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let request = self.client.with_deadline(pb::RemoveNetworkRequest {
            name: name.into(),
            agent: self.client.agent(),
        });
        self.client.networks().remove_network(request).await?;
        Ok(())
    }

    /// Lists the networks (of every agent, on `crun-shimd`).
    pub async fn list(&self) -> Result<Vec<NetworkInfo>> {
        let request = self.client.with_deadline(pb::ListNetworksRequest {
            agent: self.client.agent(),
        });
        Ok(self
            .client
            .networks()
            .list_networks(request)
            .await?
            .into_inner()
            .networks
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One network, with its containers.
    pub async fn inspect(&self, name: &str) -> Result<NetworkInfo> {
        let request = self.client.with_deadline(pb::InspectNetworkRequest {
            name: name.into(),
            agent: self.client.agent(),
        });
        network(
            self.client
                .networks()
                .inspect_network(request)
                .await?
                .into_inner()
                .network,
        )
    }
}

/// The network of a response that must carry one.
fn network(network: Option<pb::Network>) -> Result<NetworkInfo> {
    Ok(network
        .map(Into::into)
        .ok_or(ConversionError::Missing("network"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PortMapping {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn port_mappings_read_and_write_dockers_syntax() {
        let m = parse("80");
        assert_eq!((m.host_ip, m.host_port, m.container_port), (None, 0, 80));
        let m = parse("127.0.0.1::80");
        assert_eq!(
            (m.host_ip, m.host_port),
            (Some(Ipv4Addr::LOCALHOST.into()), 0)
        );
        let m = parse("[::1]:8443:443/UDP");
        assert_eq!(
            (m.host_ip, m.protocol),
            (Some(Ipv6Addr::LOCALHOST.into()), Protocol::Udp)
        );
        for s in [
            "80/tcp",
            "8080:80/udp",
            "127.0.0.1:8080:80/tcp",
            "127.0.0.1::80/tcp",
            "[::1]:8443:443/tcp",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn bad_port_mappings_say_why() {
        for (s, why) in [
            ("", "not a number"),
            ("0", "1-65535"),
            ("8080:0", "1-65535"),
            ("70000:80", "not a number"),
            ("8000-8010:80", "ranges"),
            ("localhost:80:80", "IPv4"),
            ("1:2:3:4", "too many"),
            ("80/sctp", "unknown protocol"),
            ("[::1]80", "brackets"),
        ] {
            let e = s.parse::<PortMapping>().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains(why)),
                "{s:?}: {e}"
            );
        }
    }
}
