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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

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
}

impl Protocol {
    /// "tcp" or "udp".
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
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
    let kind = match m.protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let io = |what: &str, e: nix::errno::Errno| {
        Error::io(format!("{what} for {}", m.host_side()), e.into())
    };
    let socket = socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None)
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

    fn port(
        host_ip: Option<&str>,
        host_port: u16,
        container_port: u16,
        protocol: Protocol,
    ) -> PortMapping {
        PortMapping {
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            container_port,
            protocol,
        }
    }

    #[test]
    fn host_sides_and_portmap_entries() {
        assert_eq!(
            port(Some("::1"), 8443, 443, Protocol::Tcp).host_side(),
            "[::1]:8443/tcp"
        );
        assert_eq!(
            port(Some("127.0.0.1"), 8080, 80, Protocol::Udp).to_cni(),
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "127.0.0.1"})
        );
        assert!(
            port(None, 8080, 80, Protocol::Tcp)
                .to_cni()
                .get("hostIP")
                .is_none()
        );
    }

    #[test]
    fn reserving_picks_free_ports_and_refuses_taken_ones() {
        let (resolved, held) = Reservation::take(&[
            port(Some("127.0.0.1"), 0, 80, Protocol::Tcp),
            port(Some("127.0.0.1"), 0, 53, Protocol::Udp),
        ])
        .unwrap();
        assert_eq!(held.len(), 2);
        assert!(resolved.iter().all(|m| m.host_port != 0));
        let taken = resolved[0].host_port;
        let again = PortMapping {
            host_ip: None,
            ..resolved[0]
        };
        let e =
            Reservation::take(&[port(Some("127.0.0.1"), 0, 81, Protocol::Tcp), again]).unwrap_err();
        assert!(
            matches!(&e, Error::PortInUse { port: p, .. } if p == &format!("0.0.0.0:{taken}/tcp")),
            "{e}"
        );
        // The same port twice in one request.
        drop(held);
        assert!(matches!(
            Reservation::take(&[again, again]),
            Err(Error::PortInUse { .. })
        ));
        // Dropping frees the ports.
        let (_, held) = Reservation::take(&[resolved[0]]).unwrap();
        assert_eq!(held.len(), 1);
        // A host process's port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = listener.local_addr().unwrap().port();
        let e = Reservation::take(&[port(None, busy, 80, Protocol::Tcp)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("host port 0.0.0.0:{busy}/tcp is already in use")
        );
        let e = Reservation::take(&[port(Some("192.0.2.1"), 8080, 80, Protocol::Tcp)]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
}
