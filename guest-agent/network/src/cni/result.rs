//! The result of a CNI ADD: the interfaces, addresses, routes and DNS
//! settings a plugin chain made.
//!
//! The result is kept as the JSON the last plugin printed: it is passed
//! back verbatim to the plugins as `prevResult` (on DEL and CHECK too), so
//! nothing a plugin wrote is lost. Typed views are read from it on demand,
//! for results of versions 0.1.0 to 1.0.0.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin chain's ADD returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CniResult(pub Value);

/// An interface the plugins created or configured.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Interface {
    /// Its name ("eth0", "veth1234", "cni0").
    #[serde(default)]
    pub name: String,
    /// Its MAC address.
    #[serde(default)]
    pub mac: String,
    /// The network namespace it is in; empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

/// An address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index into [`CniResult::interfaces`] of the interface holding it.
    pub interface: Option<usize>,
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway of its subnet.
    pub gateway: Option<IpAddr>,
}

/// DNS settings a plugin suggests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default)]
    pub domain: String,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Deserialize)]
struct RawIp {
    #[serde(default)]
    interface: Option<usize>,
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

/// Version 0.1/0.2 results carry `ip4` and `ip6` objects.
#[derive(Deserialize)]
struct LegacyIp {
    ip: String,
    #[serde(default)]
    gateway: Option<String>,
}

impl CniResult {
    fn field<T: serde::de::DeserializeOwned + Default>(&self, key: &str) -> T {
        self.0
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The interfaces, in the result's order.
    pub fn interfaces(&self) -> Vec<Interface> {
        self.field("interfaces")
    }

    /// The addresses; malformed entries are left out.
    pub fn addresses(&self) -> Vec<Address> {
        let convert = |interface, address: &str, gateway: Option<&str>| {
            Some(Address {
                interface,
                address: address.parse().ok()?,
                gateway: gateway.and_then(|g| g.parse().ok()),
            })
        };
        let ips: Vec<Value> = self.field("ips");
        if !ips.is_empty() {
            return ips
                .into_iter()
                .filter_map(|v| serde_json::from_value::<RawIp>(v).ok())
                .filter_map(|ip| convert(ip.interface, &ip.address, ip.gateway.as_deref()))
                .collect();
        }
        ["ip4", "ip6"]
            .into_iter()
            .filter_map(|key| {
                let ip: LegacyIp = serde_json::from_value(self.0.get(key)?.clone()).ok()?;
                convert(None, &ip.ip, ip.gateway.as_deref())
            })
            .collect()
    }

    /// The DNS settings.
    pub fn dns(&self) -> Dns {
        self.field("dns")
    }

    /// The interface `ifname` inside the namespace `netns`, with its index.
    pub fn container_interface(&self, ifname: &str, netns: &str) -> Option<(usize, Interface)> {
        self.interfaces()
            .into_iter()
            .enumerate()
            .find(|(_, i)| i.name == ifname && (i.sandbox.is_empty() || i.sandbox == netns))
            .filter(|(_, i)| !i.sandbox.is_empty() || netns.is_empty())
    }

    /// The addresses of the container's interface `ifname` in `netns`, or
    /// all the addresses when the result does not say which interface
    /// holds them.
    pub fn container_addresses(&self, ifname: &str, netns: &str) -> Vec<Address> {
        let index = self.container_interface(ifname, netns).map(|(i, _)| i);
        self.addresses()
            .into_iter()
            .filter(|a| a.interface.is_none() || a.interface == index)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge_result() -> CniResult {
        CniResult(serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cnitst0", "mac": "76:9a:8f:92:8c:8c"},
                {"name": "vethf5a24e34", "mac": "8a:1f:e6:aa:d2:1d"},
                {"name": "eth0", "mac": "06:b9:e9:8d:70:7b", "sandbox": "/run/netns/a"}
            ],
            "ips": [{"interface": 2, "address": "10.251.0.2/24", "gateway": "10.251.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        }))
    }

    #[test]
    fn reads_the_container_side_of_a_bridge_result() {
        let r = bridge_result();
        let (index, eth0) = r.container_interface("eth0", "/run/netns/a").unwrap();
        assert_eq!(index, 2);
        assert_eq!(eth0.mac, "06:b9:e9:8d:70:7b");
        assert!(r.container_interface("eth0", "/run/netns/b").is_none());
        let addrs = r.container_addresses("eth0", "/run/netns/a");
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].address, "10.251.0.2/24".parse::<IpNet>().unwrap());
        assert_eq!(addrs[0].gateway, Some("10.251.0.1".parse().unwrap()));
        assert_eq!(r.dns(), Dns::default());
    }

    #[test]
    fn reads_older_results() {
        let v04 = CniResult(serde_json::json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.1.0.5/16"}],
            "dns": {"nameservers": ["10.1.0.1"], "search": ["corp"]}
        }));
        assert_eq!(v04.addresses()[0].address.to_string(), "10.1.0.5/16");
        assert_eq!(v04.container_addresses("eth0", "/ns").len(), 1);
        assert_eq!(v04.dns().nameservers, ["10.1.0.1"]);
        let v02 = CniResult(serde_json::json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.2.0.9/24", "gateway": "10.2.0.1"}
        }));
        assert_eq!(
            v02.addresses()[0].gateway,
            Some("10.2.0.1".parse().unwrap())
        );
    }

    #[test]
    fn garbage_gives_empty_views_not_panics() {
        let r = CniResult(serde_json::json!({"ips": "nope", "interfaces": [1, 2]}));
        assert!(r.addresses().is_empty());
        assert!(r.interfaces().is_empty());
    }
}
