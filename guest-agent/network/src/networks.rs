//! Network definitions: the configuration lists in the runtime's
//! configuration directory (`/etc/libcrun-shim/net.d` by default), one
//! network each, looked up by the network's name as libcni does (files in
//! lexical order, the first definition of a name wins).
//!
//! The default network (`crun-shim`, a bridge with its own subnet) is
//! written there when no file defines it, so an administrator can edit or
//! replace it; user networks are created as `NAME.conflist` and removed
//! with their file. Files written by hand in the CNI format are networks
//! too, whatever their plugins.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::cni::ConfList;
use crate::error::{Error, IoContext, Result};

/// The key of a configuration list where this runtime keeps what it
/// knows of the networks it created (CNI ignores unknown keys).
const OWN_KEY: &str = "libcrun-shim";

/// The default network's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// Its name.
    pub name: String,
    /// Its bridge interface.
    pub bridge: String,
    /// Its IPv4 subnet.
    pub subnet: Ipv4Net,
}

impl Default for DefaultNetwork {
    /// `crun-shim` on bridge `crun-shim0`, subnet 10.77.0.0/16 (clear of
    /// Docker's 172.17/16 and Podman's 10.88/16 and 10.89/16).
    fn default() -> Self {
        DefaultNetwork {
            name: "crun-shim".into(),
            bridge: "crun-shim0".into(),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 0), 16).expect("valid prefix"),
        }
    }
}

/// Where subnets of new networks are picked from when none is given: the
/// /24s of 10.78.0.0/16.
const SUBNET_POOL: (Ipv4Addr, u8, u8) = (Ipv4Addr::new(10, 78, 0, 0), 16, 24);

/// What a new network is made of. Unset parts are picked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Its name (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters).
    pub name: String,
    /// Its IPv4 subnet; a free /24 of 10.78.0.0/16 when unset.
    pub subnet: Option<Ipv4Net>,
    /// The bridge's address, the containers' gateway; the subnet's first
    /// address when unset.
    pub gateway: Option<Ipv4Addr>,
    /// The bridge interface's name; `crun-shimN` when unset.
    pub bridge: Option<String>,
    /// No route out and no masquerading: containers reach each other and
    /// the host only.
    pub internal: bool,
    /// User labels, kept in the configuration list.
    pub labels: BTreeMap<String, String>,
}

/// A network as its definition describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// The file defining it.
    pub path: PathBuf,
    /// Its configuration list.
    pub conflist: ConfList,
    /// Whether it is the runtime's default network.
    pub default: bool,
}

/// What this runtime records in the networks it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OwnSection {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    internal: bool,
}

impl Network {
    fn own(&self) -> OwnSection {
        self.conflist
            .extra
            .get(OWN_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The first plugin's type: the driver ("bridge", "macvlan"...).
    pub fn driver(&self) -> &str {
        self.conflist.plugin_types().first().copied().unwrap_or("")
    }

    /// The bridge interface of a `bridge` network ("cni0" when its
    /// configuration names none, as the plugin defaults).
    pub fn bridge(&self) -> Option<String> {
        let plugin = self.conflist.plugins.first()?;
        (self.driver() == "bridge").then(|| {
            plugin
                .get("bridge")
                .and_then(Value::as_str)
                .unwrap_or("cni0")
                .to_string()
        })
    }

    /// The IPAM configuration of the first plugin.
    fn ipam(&self) -> Option<&Map<String, Value>> {
        self.conflist.plugins.first()?.get("ipam")?.as_object()
    }

    /// The subnets and gateways of its `host-local` address ranges (or the
    /// older single `subnet`).
    pub fn ranges(&self) -> Vec<(IpNet, Option<IpAddr>)> {
        let Some(ipam) = self.ipam() else {
            return Vec::new();
        };
        let entry = |r: &Value| -> Option<(IpNet, Option<IpAddr>)> {
            let subnet = r.get("subnet")?.as_str()?.parse().ok()?;
            let gateway = r
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
            Some((subnet, gateway))
        };
        let mut out: Vec<_> = ipam
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(entry)
            .collect();
        if out.is_empty()
            && let Some(single) = entry(&Value::Object(ipam.clone()))
        {
            out.push(single);
        }
        // host-local's default gateway is the subnet's first address.
        for (subnet, gateway) in &mut out {
            if gateway.is_none() && self.gateway_is_bridge() {
                *gateway = first_host(*subnet);
            }
        }
        out
    }

    fn gateway_is_bridge(&self) -> bool {
        self.driver() == "bridge"
            && self.conflist.plugins[0]
                .get("isGateway")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    /// Whether the network masquerades its containers' traffic to the
    /// outside.
    pub fn ip_masq(&self) -> bool {
        self.conflist.plugins[0]
            .get("ipMasq")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether it was created `internal` (no route out).
    pub fn internal(&self) -> bool {
        self.own().internal
    }

    /// Its user labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.own().labels
    }

    /// Whether its chain publishes ports (a plugin declares the
    /// `portMappings` capability).
    pub fn publishes_ports(&self) -> bool {
        self.conflist.plugins.iter().any(|p| {
            p.get("capabilities")
                .and_then(|c| c.get("portMappings"))
                .and_then(Value::as_bool)
                == Some(true)
        })
    }
}

/// The first host address of a subnet.
fn first_host(subnet: IpNet) -> Option<IpAddr> {
    subnet.hosts().next()
}

/// Whether the host's `FORWARD` chain drops what no rule accepts (a
/// Docker host does): then a network needs the `firewall` plugin, which
/// accepts its containers' traffic. Where the policy is ACCEPT the plugin
/// only costs time (two iptables rounds per container). Unknown (no
/// iptables): assumed so.
pub fn forward_needs_firewall() -> bool {
    let policy = std::process::Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output();
    match policy {
        Ok(out) if out.status.success() => !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "-P FORWARD ACCEPT"),
        _ => true,
    }
}

/// The bridge network configuration list this runtime writes: `bridge`
/// (with `host-local` addresses), `portmap`, and `firewall` when
/// `firewall` says so.
fn bridge_conflist(
    name: &str,
    bridge: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    own: &OwnSection,
    firewall: bool,
) -> ConfList {
    let routes = if own.internal {
        json!([])
    } else {
        json!([{"dst": "0.0.0.0/0"}])
    };
    let plugins = json!([
        {
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": !own.internal,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway.to_string()}]],
                "routes": routes
            }
        },
        {"type": "portmap", "capabilities": {"portMappings": true}}
    ]);
    let mut plugins: Vec<Map<String, Value>> = plugins
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_object().cloned())
        .collect();
    if firewall {
        plugins.extend(json!({"type": "firewall"}).as_object().cloned());
    }
    let mut extra = Map::new();
    if *own != OwnSection::default() {
        extra.insert(
            OWN_KEY.into(),
            serde_json::to_value(own).unwrap_or_default(),
        );
    }
    ConfList {
        cni_version: "1.0.0".into(),
        name: name.into(),
        disable_check: false,
        plugins,
        extra,
    }
}

/// The configuration directory's networks.
#[derive(Debug)]
pub struct Definitions {
    dir: PathBuf,
    default: DefaultNetwork,
    /// Serializes creations and removals.
    lock: Mutex<()>,
}

impl Definitions {
    /// The networks defined in `dir` (created if missing); writes the
    /// default network's definition there when no file defines it.
    pub fn open(dir: PathBuf, default: DefaultNetwork) -> Result<Definitions> {
        crate::validate_name("network", &default.name)?;
        validate_bridge(&default.bridge)?;
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let definitions = Definitions {
            dir,
            default,
            lock: Mutex::new(()),
        };
        let _guard = definitions.lock.lock().unwrap_or_else(|e| e.into_inner());
        if definitions.find(&definitions.default.name)?.is_none() {
            let d = &definitions.default;
            let gateway = first_host(IpNet::V4(d.subnet))
                .and_then(|g| match g {
                    IpAddr::V4(g) => Some(g),
                    IpAddr::V6(_) => None,
                })
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("subnet {} has no host address", d.subnet))
                })?;
            let list = bridge_conflist(
                &d.name,
                &d.bridge,
                d.subnet,
                gateway,
                &OwnSection::default(),
                forward_needs_firewall(),
            );
            definitions.write(&list)?;
        }
        drop(_guard);
        Ok(definitions)
    }

    /// The configuration directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The default network's name.
    pub fn default_name(&self) -> &str {
        &self.default.name
    }

    /// The definition files, in lexical order.
    fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .context(|| format!("listing {}", self.dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                ) && p.is_file()
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn network(&self, path: PathBuf, conflist: ConfList) -> Network {
        Network {
            name: conflist.name.clone(),
            default: conflist.name == self.default.name,
            path,
            conflist,
        }
    }

    /// Every network, by name; a file that does not parse is skipped with
    /// a warning, and a name defined twice is the first file's.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut networks: Vec<Network> = Vec::new();
        for path in self.files()? {
            match ConfList::load(&path) {
                Ok(list) if networks.iter().any(|n| n.name == list.name) => {
                    warn!(file = %path.display(), network = %list.name, "network defined twice; the first definition is used");
                }
                Ok(list) => networks.push(self.network(path, list)),
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "ignoring a network definition")
                }
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// The network `name`, if defined. A file named after it that does not
    /// parse is an error (rather than the network being unknown).
    fn find(&self, name: &str) -> Result<Option<Network>> {
        for path in self.files()? {
            match ConfList::load(&path) {
                Ok(list) if list.name == name => return Ok(Some(self.network(path, list))),
                Ok(_) => {}
                Err(e) if path.file_stem().and_then(|s| s.to_str()) == Some(name) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// The network `name`.
    pub fn get(&self, name: &str) -> Result<Network> {
        crate::validate_name("network", name)?;
        self.find(name)?
            .ok_or_else(|| Error::NetworkNotFound(name.to_string()))
    }

    /// Creates a bridge network: picks what the spec leaves unset, checks
    /// that its name, bridge and subnet are not taken, and writes
    /// `NAME.conflist`.
    pub fn create(&self, spec: &NetworkSpec) -> Result<Network> {
        crate::validate_name("network", &spec.name)?;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.find(&spec.name)?.is_some() {
            return Err(Error::NetworkExists(spec.name.clone()));
        }
        let existing = self.list()?;
        let bridges: Vec<String> = existing.iter().filter_map(Network::bridge).collect();
        let bridge = match &spec.bridge {
            Some(b) => {
                validate_bridge(b)?;
                if bridges.contains(b) {
                    return Err(Error::InvalidArgument(format!(
                        "bridge {b} is used by another network"
                    )));
                }
                b.clone()
            }
            None => (1..10_000)
                .map(|n| format!("crun-shim{n}"))
                .find(|b| !bridges.contains(b) && !Path::new("/sys/class/net").join(b).exists())
                .ok_or_else(|| Error::InvalidArgument("no free bridge name".into()))?,
        };
        let used: Vec<IpNet> = existing
            .iter()
            .flat_map(|n| n.ranges().into_iter().map(|(s, _)| s))
            .chain(host_routes())
            .collect();
        let subnet = match spec.subnet {
            Some(s) => {
                let s = s.trunc();
                if let Some(clash) = used.iter().find(|u| overlaps(&IpNet::V4(s), u)) {
                    return Err(Error::InvalidArgument(format!(
                        "subnet {s} overlaps {clash}, used by another network or a route of the host"
                    )));
                }
                s
            }
            None => free_subnet(&used)?,
        };
        let gateway = match spec.gateway {
            Some(g) if subnet.contains(&g) && g != subnet.network() && g != subnet.broadcast() => g,
            Some(g) => {
                return Err(Error::InvalidArgument(format!(
                    "gateway {g} is not a host address of subnet {subnet}"
                )));
            }
            None => subnet.hosts().next().ok_or_else(|| {
                Error::InvalidArgument(format!("subnet {subnet} has no host address"))
            })?,
        };
        let own = OwnSection {
            labels: spec.labels.clone(),
            internal: spec.internal,
        };
        let list = bridge_conflist(
            &spec.name,
            &bridge,
            subnet,
            gateway,
            &own,
            forward_needs_firewall(),
        );
        let path = self.write(&list)?;
        Ok(self.network(path, list))
    }

    /// Removes the file defining network `name` (not the default network:
    /// it would be written again at the next start). The caller checks
    /// that no container uses it.
    pub fn remove(&self, name: &str) -> Result<Network> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let network = self.get(name)?;
        if network.default {
            return Err(Error::NetworkInUse(format!(
                "{name} is the default network and cannot be removed"
            )));
        }
        std::fs::remove_file(&network.path)
            .context(|| format!("removing {}", network.path.display()))?;
        Ok(network)
    }

    /// Writes `list` as `NAME.conflist`, atomically.
    fn write(&self, list: &ConfList) -> Result<PathBuf> {
        let path = self.dir.join(format!("{}.conflist", list.name));
        crate::write_atomic(&path, &list.to_json())?;
        Ok(path)
    }
}

/// Checks a bridge interface name: 1 to 15 characters (IFNAMSIZ), no '/',
/// ':' or white space.
fn validate_bridge(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidArgument(format!(
            "invalid bridge name {name:?}: 1-15 characters, no '/', ':' or spaces"
        )));
    }
    Ok(())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /24 of the pool that overlaps nothing in `used`.
fn free_subnet(used: &[IpNet]) -> Result<Ipv4Net> {
    let (base, prefix, size) = SUBNET_POOL;
    let pool = Ipv4Net::new(base, prefix).expect("valid pool");
    pool.subnets(size)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?
        .find(|s| !used.iter().any(|u| overlaps(&IpNet::V4(*s), u)))
        .ok_or_else(|| {
            Error::InvalidArgument(format!("no free /{size} subnet left in {pool}; give one"))
        })
}

/// The host's IPv4 routes other than the default one (from
/// /proc/net/route), whose subnets a new network must not take.
fn host_routes() -> Vec<IpNet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The file has them in the host's (little-endian) byte order.
            let dest = Ipv4Addr::from(u32::from_be(dest));
            let prefix = u32::from_be(mask).count_ones() as u8;
            if prefix == 0 {
                return None;
            }
            Ipv4Net::new(dest, prefix)
                .ok()
                .map(|n| IpNet::V4(n.trunc()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions() -> (tempfile::TempDir, Definitions) {
        let dir = tempfile::tempdir().unwrap();
        let defs = Definitions::open(dir.path().join("net.d"), DefaultNetwork::default()).unwrap();
        (dir, defs)
    }

    #[test]
    fn the_default_network_is_written_once_and_cannot_be_removed() {
        let (dir, defs) = definitions();
        let default = defs.get("crun-shim").unwrap();
        assert!(default.default);
        assert_eq!(default.path, dir.path().join("net.d/crun-shim.conflist"));
        assert_eq!(
            default.conflist.plugin_types(),
            if forward_needs_firewall() {
                &["bridge", "portmap", "firewall"][..]
            } else {
                &["bridge", "portmap"][..]
            }
        );
        assert_eq!(default.bridge().as_deref(), Some("crun-shim0"));
        assert_eq!(
            default.ranges(),
            [(
                "10.77.0.0/16".parse().unwrap(),
                Some("10.77.0.1".parse().unwrap())
            )]
        );
        assert!(default.ip_masq() && default.publishes_ports() && !default.internal());
        // An edited default is kept.
        let mut edited = default.conflist.clone();
        edited.plugins[0].insert("mtu".into(), json!(1400));
        crate::write_atomic(&default.path, &edited.to_json()).unwrap();
        let again = Definitions::open(dir.path().join("net.d"), DefaultNetwork::default()).unwrap();
        assert_eq!(again.get("crun-shim").unwrap().conflist, edited);
        assert!(matches!(
            defs.remove("crun-shim"),
            Err(Error::NetworkInUse(_))
        ));
    }

    #[test]
    fn created_networks_get_free_names_subnets_and_keep_labels() {
        let (_dir, defs) = definitions();
        let a = defs
            .create(&NetworkSpec {
                name: "a".into(),
                labels: [("team".into(), "web".into())].into(),
                ..Default::default()
            })
            .unwrap();
        let b = defs
            .create(&NetworkSpec {
                name: "b".into(),
                internal: true,
                ..Default::default()
            })
            .unwrap();
        let (sa, ga) = a.ranges()[0];
        let (sb, _) = b.ranges()[0];
        assert_ne!(sa, sb);
        assert!(
            sa.to_string().starts_with("10.78.") && sa.prefix_len() == 24,
            "{sa}"
        );
        assert_eq!(ga, first_host(sa));
        assert_ne!(a.bridge(), b.bridge());
        assert_eq!(a.labels()["team"], "web");
        assert!(b.internal() && !b.ip_masq());
        assert_eq!(b.conflist.plugins[0]["ipam"]["routes"], json!([]));
        assert_eq!(
            defs.list()
                .unwrap()
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "crun-shim"]
        );
        assert!(matches!(
            defs.create(&NetworkSpec {
                name: "a".into(),
                ..Default::default()
            }),
            Err(Error::NetworkExists(_))
        ));
        let clash = NetworkSpec {
            name: "c".into(),
            subnet: Some(sa.to_string().parse().unwrap()),
            ..Default::default()
        };
        assert!(
            defs.create(&clash)
                .unwrap_err()
                .to_string()
                .contains("overlaps")
        );
        let bad_gw = NetworkSpec {
            name: "d".into(),
            subnet: Some("10.99.0.0/24".parse().unwrap()),
            gateway: Some("10.98.0.1".parse().unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            defs.create(&bad_gw),
            Err(Error::InvalidArgument(_))
        ));
        let bad_bridge = NetworkSpec {
            name: "e".into(),
            bridge: Some("x".repeat(16)),
            ..Default::default()
        };
        assert!(matches!(
            defs.create(&bad_bridge),
            Err(Error::InvalidArgument(_))
        ));
        defs.remove("a").unwrap();
        assert!(matches!(defs.get("a"), Err(Error::NetworkNotFound(_))));
    }

    #[test]
    fn hand_written_files_count_and_broken_ones_are_skipped() {
        let (dir, defs) = definitions();
        let net_d = dir.path().join("net.d");
        std::fs::write(
            net_d.join("10-old.conf"),
            r#"{"cniVersion":"0.3.1","name":"old","type":"bridge","bridge":"oldbr","ipam":{"type":"host-local","subnet":"10.66.0.0/24"}}"#,
        )
        .unwrap();
        std::fs::write(net_d.join("broken.conflist"), "{").unwrap();
        std::fs::write(net_d.join("README"), "not a network").unwrap();
        let names: Vec<String> = defs.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["crun-shim", "old"]);
        let old = defs.get("old").unwrap();
        assert_eq!(
            old.ranges(),
            [("10.66.0.0/24".parse().unwrap(), None)],
            "not a gateway bridge"
        );
        assert!(matches!(defs.get("broken"), Err(Error::BadConfig(_))));
        assert!(matches!(defs.get("nope"), Err(Error::NetworkNotFound(_))));
        assert!(matches!(defs.get("../x"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn the_pool_skips_used_subnets() {
        let used = [
            "10.78.0.0/24".parse().unwrap(),
            "10.78.0.0/23".parse().unwrap(),
        ];
        assert_eq!(free_subnet(&used).unwrap().to_string(), "10.78.2.0/24");
        assert!(host_routes().iter().all(|r| r.prefix_len() > 0));
    }
}
