//! Published ports: their syntax, and the host ports held for them.
//!
//! The `portmap` plugin only writes DNAT rules; it does not take the host
//! port, so on its own a second container publishing the same port, or a
//! host process listening on it, would be silently shadowed. So the
//! runtime *reserves* each published host port by binding a socket to it
//! (without listening: the DNAT rules take every packet before it could
//! reach the socket) for as long as the mapping exists, as Podman's conmon
//! does. A port already bound by anyone — another container of this or of
//! another agent, a host process — fails the bind up front with
//! [`Error::PortInUse`], before anything is set up; a request for any free
//! port (`-p 80`) binds port 0 and keeps what the kernel picked.
//!
//! Nothing here depends on where the runtime runs: a mapping is
//! `[host address:]host port → container port/protocol` on the machine of
//! the network namespace. A runtime inside a VM publishes on the VM's
//! addresses; forwarding those to the VM's host is the VM launcher's part.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::str::FromStr;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// "tcp", "udp" or "sctp".
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(Error::InvalidArgument(format!(
                "unknown protocol {s:?} (tcp, udp or sctp)"
            ))),
        }
    }
}

/// A container port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address it is published on; every address of the host
    /// (127.0.0.1 included) when `None`.
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 asks for any free port, which reservation fills
    /// in.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl FromStr for PortMapping {
    type Err = Error;

    /// Docker's syntax: `CONTAINERPORT`, `HOSTPORT:CONTAINERPORT`,
    /// `HOSTIP:HOSTPORT:CONTAINERPORT` or `HOSTIP::CONTAINERPORT` (any free
    /// host port), each optionally followed by `/tcp`, `/udp` or `/sctp`;
    /// an IPv6 host address in brackets (`[::1]:8080:80`).
    fn from_str(spec: &str) -> Result<PortMapping> {
        let bad =
            |why: &str| Error::InvalidArgument(format!("invalid port mapping {spec:?}: {why}"));
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (rest, proto.parse().map_err(|e: Error| bad(&e.to_string()))?),
            None => (spec, Protocol::Tcp),
        };
        let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after.split_once("]:").ok_or_else(|| {
                bad("an IPv6 address in brackets must be followed by \":PORT:PORT\"")
            })?;
            let ip = ip
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address"))?;
            (Some(IpAddr::V6(ip)), ports.split(':').collect::<Vec<_>>())
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, parts),
                3 => {
                    let ip = parts[0]
                        .parse::<Ipv4Addr>()
                        .map_err(|_| bad("the host address is not an IPv4 address"))?;
                    (Some(IpAddr::V4(ip)), parts[1..].to_vec())
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
            [host, container] if host.is_empty() && host_ip.is_some() => {
                (0, port(container, "container", false)?)
            }
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
    /// The syntax [`PortMapping::from_str`] reads: `127.0.0.1:8080:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        if self.host_port != 0 || self.host_ip.is_some() {
            if self.host_port != 0 {
                write!(f, "{}", self.host_port)?;
            }
            write!(f, ":")?;
        }
        write!(f, "{}/{}", self.container_port, self.protocol.as_str())
    }
}

impl PortMapping {
    /// The host side as `HOSTIP:PORT/PROTO` (`0.0.0.0` for every address).
    pub fn host_side(&self) -> String {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        format!(
            "{}/{}",
            SocketAddr::new(ip, self.host_port),
            self.protocol.as_str()
        )
    }

    /// The entry of `runtimeConfig.portMappings` the `portmap` plugin
    /// reads.
    pub fn to_cni(&self) -> Value {
        let mut entry = json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.as_str(),
        });
        if let Some(ip) = self.host_ip {
            entry["hostIP"] = Value::String(ip.to_string());
        }
        entry
    }
}

/// Host ports held for one container: the sockets bound to them. Dropping
/// it frees the ports.
#[derive(Debug, Default)]
pub struct Reservation {
    sockets: Vec<OwnedFd>,
}

impl Reservation {
    /// Binds every mapping's host port and returns the mappings with the
    /// ports picked for those that asked for any. Fails, holding nothing,
    /// at the first port that is taken.
    pub fn take(mappings: &[PortMapping]) -> Result<(Vec<PortMapping>, Reservation)> {
        let mut reservation = Reservation::default();
        let mut resolved = Vec::with_capacity(mappings.len());
        for m in mappings {
            let (socket, port) = bind(m)?;
            reservation.sockets.push(socket);
            resolved.push(PortMapping {
                host_port: port,
                ..*m
            });
        }
        Ok((resolved, reservation))
    }

    /// How many ports are held.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether no port is held.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// Binds a socket to the mapping's host address and port; returns it and
/// the port bound.
fn bind(m: &PortMapping) -> Result<(OwnedFd, u16)> {
    let ip = m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let (kind, protocol) = match m.protocol {
        Protocol::Tcp => (SockType::Stream, None),
        Protocol::Udp => (SockType::Datagram, None),
        Protocol::Sctp => (SockType::SeqPacket, Some(socket::SockProtocol::Sctp)),
    };
    let io = |what: &str, e: nix::errno::Errno| {
        Error::io(format!("{what} for {}", m.host_side()), e.into())
    };
    let socket = socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, protocol)
        .map_err(|e| io("creating a socket", e))?;
    if ip.is_ipv6() {
        // A v6 reservation holds only v6, as portmap's v6 rules do.
        socket::setsockopt(&socket, socket::sockopt::Ipv6V6Only, &true)
            .map_err(|e| io("setting IPV6_V6ONLY", e))?;
    }
    let addr = SockaddrStorage::from(SocketAddr::new(ip, m.host_port));
    use std::os::fd::AsRawFd;
    match socket::bind(socket.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(nix::errno::Errno::EADDRINUSE) => {
            return Err(Error::PortInUse {
                port: m.host_side(),
                by: None,
            });
        }
        Err(nix::errno::Errno::EADDRNOTAVAIL) => {
            return Err(Error::InvalidArgument(format!(
                "cannot publish {}: {ip} is not an address of this machine",
                m.host_side()
            )));
        }
        Err(e) => return Err(io("binding", e)),
    }
    let bound: SockaddrStorage =
        socket::getsockname(socket.as_raw_fd()).map_err(|e| io("reading the bound port", e))?;
    let port = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(|a| a.port()))
        .unwrap_or(m.host_port);
    Ok((socket, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PortMapping {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_syntax() {
        let m = parse("80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.protocol),
            (None, 0, 80, Protocol::Tcp)
        );
        let m = parse("8080:80/udp");
        assert_eq!(
            (m.host_port, m.container_port, m.protocol),
            (8080, 80, Protocol::Udp)
        );
        let m = parse("127.0.0.1:8080:80");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        let m = parse("127.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = parse("[::1]:8443:443/TCP");
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        for s in [
            "80",
            "8080:80/udp",
            "127.0.0.1:8080:80/tcp",
            "127.0.0.1::80/tcp",
            "[::1]:8443:443/tcp",
        ] {
            let m = parse(s);
            assert_eq!(parse(&m.to_string()), m, "{s} -> {m}");
        }
        assert_eq!(parse("8080:80").to_string(), "8080:80/tcp");
    }

    #[test]
    fn bad_mappings_say_why() {
        for (s, why) in [
            ("", "not a number"),
            ("0", "1-65535"),
            ("8080:0", "1-65535"),
            ("70000:80", "not a number"),
            ("8000-8010:80", "ranges"),
            ("localhost:80:80", "IPv4"),
            ("1:2:3:4", "too many"),
            ("80/icmp", "unknown protocol"),
            ("[::1]80", "brackets"),
        ] {
            let e = s.parse::<PortMapping>().unwrap_err().to_string();
            assert!(e.contains(why), "{s:?}: {e}");
            assert!(matches!(
                s.parse::<PortMapping>(),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn portmap_entries() {
        assert_eq!(
            parse("127.0.0.1:8080:80/udp").to_cni(),
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "127.0.0.1"})
        );
        assert!(parse("8080:80").to_cni().get("hostIP").is_none());
    }

    #[test]
    fn reserving_picks_free_ports_and_refuses_taken_ones() {
        let (resolved, held) =
            Reservation::take(&[parse("127.0.0.1::80"), parse("127.0.0.1::53/udp")]).unwrap();
        assert_eq!(held.len(), 2);
        assert!(resolved.iter().all(|m| m.host_port != 0));
        let port = resolved[0].host_port;
        let again = PortMapping {
            host_ip: None,
            ..resolved[0]
        };
        let e = Reservation::take(&[parse("127.0.0.1::81"), again]).unwrap_err();
        assert!(
            matches!(&e, Error::PortInUse { port: p, .. } if p == &format!("0.0.0.0:{port}/tcp")),
            "{e}"
        );
        // The same port twice in one request.
        let twice = PortMapping {
            host_port: port + 1,
            ..resolved[0]
        };
        drop(held);
        assert!(matches!(
            Reservation::take(&[twice, twice]),
            Err(Error::PortInUse { .. })
        ));
        // Dropping frees the ports.
        let (_, held) = Reservation::take(&[resolved[0]]).unwrap();
        assert_eq!(held.len(), 1);
        // A host process's port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = listener.local_addr().unwrap().port();
        let e = Reservation::take(&[parse(&format!("{taken}:80"))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("host port 0.0.0.0:{taken}/tcp is already in use")
        );
        let e = Reservation::take(&[parse("192.0.2.1:8080:80")]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
}
