//! Attaching containers to networks, and the state of each attachment.
//!
//! An attachment is a container's network namespace, its interface on
//! each of its networks (one CNI ADD per network, `eth0`, `eth1`...), its
//! published ports and its `/etc/hosts` and `/etc/resolv.conf`. Its record
//! (`STATE/ID/attachment.json`) is written *before* anything is made, with
//! the phase `creating`, and after each step; it turns `ready` at the end,
//! and `removing` before the teardown starts. So whatever line a crash
//! stops at, the record says what may exist, and [`Networking::recover`]
//! finishes the job: a `creating` or `removing` attachment is torn down
//! (CNI DEL is idempotent and releases what a half-done ADD took), a
//! `ready` one is kept, its ports taken again, and, if its namespace
//! vanished (a reboot), made again with the same addresses.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::cni::{self, CniResult, ConfList, Invocation, Plugins};
use crate::dns::{self, DnsConfig, HostEntry, Peer, Resolv};
use crate::error::{Error, IoContext, Result};
use crate::netns::NetnsDir;
use crate::networks::{DefaultNetwork, Definitions, Network, NetworkSpec};
use crate::ports::{PortMapping, Reservation};

/// The record's file name in an attachment's directory.
const RECORD_FILE: &str = "attachment.json";
/// The generated hosts file.
const HOSTS_FILE: &str = "hosts";
/// The generated resolv.conf.
const RESOLV_FILE: &str = "resolv.conf";
/// Where systemd-resolved keeps the upstream servers its stub forwards to.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// How the networking is set up.
#[derive(Debug, Clone)]
pub struct NetworkingOptions {
    /// Where attachments are recorded (one directory per container).
    pub state_dir: PathBuf,
    /// Where network namespaces are bind-mounted.
    pub netns_dir: PathBuf,
    /// The network definitions (`/etc/libcrun-shim/net.d`).
    pub config_dir: PathBuf,
    /// Where CNI plugins are looked up, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// The default network, written to `config_dir` when missing.
    pub default_network: DefaultNetwork,
    /// The mount namespace that namespaces are also mounted in, so that
    /// they outlive this process (see [`crate::netns`]); `None` when this
    /// process's own is the durable one.
    pub durable_mount_namespace: Option<Arc<OwnedFd>>,
    /// The host's resolv.conf, which containers' start from.
    pub resolv_conf: PathBuf,
    /// How long one plugin may run.
    pub plugin_timeout: Duration,
}

impl NetworkingOptions {
    /// Options with the defaults: plugins in [`cni::DEFAULT_PLUGIN_DIRS`],
    /// the [`DefaultNetwork`], `/etc/resolv.conf`, no durable namespace.
    pub fn new(state_dir: PathBuf, netns_dir: PathBuf, config_dir: PathBuf) -> NetworkingOptions {
        NetworkingOptions {
            state_dir,
            netns_dir,
            config_dir,
            plugin_dirs: cni::DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            default_network: DefaultNetwork::default(),
            durable_mount_namespace: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            plugin_timeout: cni::DEFAULT_PLUGIN_TIMEOUT,
        }
    }
}

/// Where an attachment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Being set up; torn down if found so at recovery.
    Creating,
    /// Complete.
    Ready,
    /// Being torn down; torn down again if found so at recovery.
    Removing,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's name.
    pub network: String,
    /// The container's interface on it ("eth0").
    pub ifname: String,
    /// The address asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_ip: Option<IpAddr>,
    /// More names its peers on this network know it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The network's configuration as it was at ADD: DEL and CHECK use
    /// it, even if the definition changed or was removed since.
    pub conflist: ConfList,
    /// What ADD returned; `None` until it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CniResult>,
}

/// A container's network namespace and its networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container.
    pub container_id: String,
    /// The id the CNI plugins know the attachment by (the container id
    /// and this runtime's instance, so that two agents on one host never
    /// share one).
    pub cni_id: String,
    /// Where it is in its life.
    pub phase: Phase,
    /// The network namespace.
    pub netns: PathBuf,
    /// The container's names (id, host name), for its own and its peers'
    /// hosts files.
    pub names: Vec<String>,
    /// Its networks, in order (the first one publishes the ports).
    pub networks: Vec<NetworkAttachment>,
    /// Its published ports, host ports resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// The DNS settings asked for.
    #[serde(default)]
    pub dns: DnsConfig,
    /// The static hosts entries asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
}

/// A container's interface on one network, as the plugins reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// The network.
    pub network: String,
    /// The interface inside the container ("eth0").
    pub ifname: String,
    /// Its MAC address (empty when the plugins did not say).
    pub mac: String,
    /// Its addresses with their prefix lengths.
    pub addresses: Vec<IpNet>,
    /// The gateway of its first address's subnet.
    pub gateway: Option<IpAddr>,
}

impl Attachment {
    /// Its interfaces, one per network that ADD completed on.
    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        let netns = self.netns.to_string_lossy();
        self.networks
            .iter()
            .filter_map(|n| {
                let result = n.result.as_ref()?;
                let addresses = result.container_addresses(&n.ifname, &netns);
                Some(InterfaceInfo {
                    network: n.network.clone(),
                    ifname: n.ifname.clone(),
                    mac: result
                        .container_interface(&n.ifname, &netns)
                        .map(|(_, i)| i.mac)
                        .unwrap_or_default(),
                    gateway: addresses.iter().find_map(|a| a.gateway),
                    addresses: addresses.into_iter().map(|a| a.address).collect(),
                })
            })
            .collect()
    }

    /// Its address on network `name`, first one first.
    fn addresses_on(&self, name: &str) -> Vec<IpAddr> {
        self.interfaces()
            .into_iter()
            .filter(|i| i.network == name)
            .flat_map(|i| i.addresses.into_iter().map(|a| a.addr()))
            .collect()
    }

    /// All its addresses.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.interfaces()
            .into_iter()
            .flat_map(|i| i.addresses.into_iter().map(|a| a.addr()))
            .collect()
    }

    fn shares_a_network(&self, other: &Attachment) -> bool {
        self.networks
            .iter()
            .any(|n| other.networks.iter().any(|o| o.network == n.network))
    }
}

/// A network a container asks to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    /// The network's name.
    pub name: String,
    /// A fixed address in one of its ranges (host-local's `IP` argument).
    pub ip: Option<IpAddr>,
    /// More names the other containers of the network know it by.
    pub aliases: Vec<String>,
}

/// What a container asks of the networking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// The container (a valid name: it names files and the namespace).
    pub container_id: String,
    /// Its names in hosts files (id, host name).
    pub names: Vec<String>,
    /// Its networks, in order; the default network when empty.
    pub networks: Vec<NetworkRequest>,
    /// Ports to publish (through the first network).
    pub ports: Vec<PortMapping>,
    /// DNS settings.
    pub dns: DnsConfig,
    /// Static hosts entries.
    pub extra_hosts: Vec<HostEntry>,
}

/// A container marked busy, unmarked on drop.
struct Busy<'a>(&'a Networking, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// What [`Networking::recover`] found and did.
#[derive(Debug, Default)]
pub struct RecoverReport {
    /// Complete attachments, kept.
    pub ready: Vec<String>,
    /// Half-made or half-removed attachments, torn down.
    pub torn_down: Vec<String>,
    /// Attachments whose namespace was gone, made again.
    pub remade: Vec<String>,
    /// Attachments that could not be recovered, and why.
    pub failed: Vec<(String, Error)>,
}

/// The networks, and the containers attached to them.
#[derive(Debug)]
pub struct Networking {
    definitions: Definitions,
    plugins: Plugins,
    netns: NetnsDir,
    state_dir: PathBuf,
    resolv_conf: PathBuf,
    /// Distinguishes this runtime's CNI ids from another's on the host.
    instance: String,
    /// The attachments, as recorded on disk.
    attachments: Mutex<BTreeMap<String, Attachment>>,
    /// Host ports held, by container.
    reservations: Mutex<HashMap<String, Reservation>>,
    /// Serializes the rewriting of hosts files.
    hosts: Mutex<()>,
    /// Containers being attached or detached now, which recovery leaves
    /// alone.
    busy: Mutex<std::collections::HashSet<String>>,
}

impl Networking {
    /// Opens the networking: the definitions (writing the default
    /// network's when missing), the namespace directory and the recorded
    /// attachments. Call [`Networking::recover`] next.
    pub fn open(options: NetworkingOptions) -> Result<Networking> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&options.state_dir)
            .context(|| format!("creating {}", options.state_dir.display()))?;
        let state_dir = options
            .state_dir
            .canonicalize()
            .context(|| format!("resolving {}", options.state_dir.display()))?;
        let definitions = Definitions::open(options.config_dir, options.default_network)?;
        let netns = NetnsDir::new(options.netns_dir, options.durable_mount_namespace)?;
        let mut attachments = BTreeMap::new();
        for entry in
            std::fs::read_dir(&state_dir).context(|| format!("listing {}", state_dir.display()))?
        {
            let entry = entry.context(|| format!("listing {}", state_dir.display()))?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match load_record(&entry.path().join(RECORD_FILE)) {
                Ok(Some(a)) if a.container_id == id => {
                    attachments.insert(id, a);
                }
                Ok(_) => {
                    warn!(dir = %entry.path().display(), "network state without a record; ignored")
                }
                Err(e) => {
                    warn!(dir = %entry.path().display(), error = %e, "unreadable network state; ignored")
                }
            }
        }
        Ok(Networking {
            definitions,
            plugins: Plugins::new(options.plugin_dirs).with_timeout(options.plugin_timeout),
            netns,
            instance: short_hash(state_dir.as_os_str().as_encoded_bytes()),
            state_dir,
            resolv_conf: options.resolv_conf,
            attachments: Mutex::new(attachments),
            reservations: Mutex::new(HashMap::new()),
            hosts: Mutex::new(()),
            busy: Mutex::new(Default::default()),
        })
    }

    /// The network definitions.
    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    /// The CNI plugins.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// The namespace directory.
    pub fn netns_dir(&self) -> &NetnsDir {
        &self.netns
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    /// The container's generated hosts file (bind-mount it on
    /// `/etc/hosts`).
    pub fn hosts_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(HOSTS_FILE)
    }

    /// The container's generated resolv.conf (bind-mount it on
    /// `/etc/resolv.conf`).
    pub fn resolv_conf_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(RESOLV_FILE)
    }

    /// The attachment of container `id`, if any.
    pub fn attachment(&self, id: &str) -> Option<Attachment> {
        self.lock_attachments().get(id).cloned()
    }

    /// Every attachment.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.lock_attachments().values().cloned().collect()
    }

    fn lock_attachments(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Attachment>> {
        self.attachments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `attachment` on disk, then in memory.
    fn save(&self, attachment: &Attachment) -> Result<()> {
        let path = self.dir(&attachment.container_id).join(RECORD_FILE);
        let json = serde_json::to_vec_pretty(attachment)
            .map_err(|e| Error::CorruptState(format!("encoding {}: {e}", path.display())))?;
        crate::write_atomic(&path, &json)?;
        self.lock_attachments()
            .insert(attachment.container_id.clone(), attachment.clone());
        Ok(())
    }

    // ---- networks ------------------------------------------------------

    /// Every network.
    pub fn networks(&self) -> Result<Vec<Network>> {
        self.definitions.list()
    }

    /// The network `name`.
    pub fn network(&self, name: &str) -> Result<Network> {
        self.definitions.get(name)
    }

    /// The containers attached to network `name`, with their interface on
    /// it.
    pub fn containers_on(&self, name: &str) -> Vec<(String, Option<InterfaceInfo>)> {
        self.lock_attachments()
            .values()
            .filter(|a| a.networks.iter().any(|n| n.network == name))
            .map(|a| {
                let iface = a.interfaces().into_iter().find(|i| i.network == name);
                (a.container_id.clone(), iface)
            })
            .collect()
    }

    /// Creates a bridge network (see [`Definitions::create`]).
    pub fn create_network(&self, spec: &NetworkSpec) -> Result<Network> {
        let network = self.definitions.create(spec)?;
        if let Err(e) = self.plugins.check_installed(&network.conflist) {
            let _ = self.definitions.remove(&network.name);
            return Err(e);
        }
        info!(network = %network.name, "network created");
        Ok(network)
    }

    /// Removes network `name`: refused while containers are attached to
    /// it. Its definition goes, and what the plugins leave behind a
    /// network (its bridge, once no interface is on it; its empty IPAM
    /// directory) goes too.
    pub fn remove_network(&self, name: &str) -> Result<Network> {
        let users: Vec<String> = self
            .containers_on(name)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if !users.is_empty() {
            return Err(Error::NetworkInUse(format!(
                "network {name} is used by container(s) {}",
                users.join(", ")
            )));
        }
        let network = self.definitions.remove(name)?;
        if let Some(bridge) = network.bridge()
            && let Err(e) = remove_idle_bridge(&bridge)
        {
            warn!(network = %name, %bridge, error = %e, "cannot remove the bridge");
        }
        remove_empty_ipam_dir(&network);
        info!(network = %name, "network removed");
        Ok(network)
    }

    // ---- attachments ---------------------------------------------------

    /// Attaches a container: takes its host ports, records the attachment,
    /// creates its network namespace, runs ADD on each network, writes its
    /// hosts and resolv.conf and adds it to its peers' hosts. On failure
    /// everything done is undone; a taken port fails before anything is
    /// made.
    pub fn attach(&self, request: &AttachRequest) -> Result<Attachment> {
        crate::validate_name("container", &request.container_id)?;
        let _busy = self.busy(&request.container_id)?;
        self.attach_now(request)
    }

    /// [`Networking::attach`] of a container marked busy.
    fn attach_now(&self, request: &AttachRequest) -> Result<Attachment> {
        let id = &request.container_id;
        if self.lock_attachments().contains_key(id) {
            return Err(Error::InvalidArgument(format!(
                "container {id} is attached already"
            )));
        }
        let wanted = if request.networks.is_empty() {
            vec![NetworkRequest {
                name: self.definitions.default_name().to_string(),
                ip: None,
                aliases: Vec::new(),
            }]
        } else {
            request.networks.clone()
        };
        let mut networks = Vec::with_capacity(wanted.len());
        for (i, want) in wanted.iter().enumerate() {
            if wanted[..i].iter().any(|w| w.name == want.name) {
                return Err(Error::InvalidArgument(format!(
                    "network {} is asked twice",
                    want.name
                )));
            }
            let network = self.definitions.get(&want.name)?;
            self.plugins.check_installed(&network.conflist)?;
            if let Some(ip) = want.ip {
                let ranges = network.ranges();
                if !ranges.iter().any(|(subnet, _)| subnet.contains(&ip)) {
                    return Err(Error::InvalidArgument(format!(
                        "address {ip} is not in a subnet of network {} ({})",
                        want.name,
                        ranges
                            .iter()
                            .map(|(s, _)| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            if i == 0 && !request.ports.is_empty() && !network.publishes_ports() {
                return Err(Error::InvalidArgument(format!(
                    "network {} cannot publish ports: no plugin of it has the portMappings capability",
                    want.name
                )));
            }
            for alias in &want.aliases {
                dns::validate_host_name(alias)?;
            }
            networks.push(NetworkAttachment {
                network: want.name.clone(),
                ifname: format!("eth{i}"),
                static_ip: want.ip,
                aliases: want.aliases.clone(),
                conflist: network.conflist,
                result: None,
            });
        }
        request.dns.validate()?;
        for entry in &request.extra_hosts {
            entry.validate()?;
        }
        let (ports, reservation) = Reservation::take(&request.ports)?;

        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let mut attachment = Attachment {
            container_id: id.clone(),
            cni_id: format!("{id}.{}", self.instance),
            phase: Phase::Creating,
            netns: self.netns.path(id),
            names: request.names.clone(),
            networks,
            ports,
            dns: request.dns.clone(),
            extra_hosts: request.extra_hosts.clone(),
        };
        let made = self.make(&mut attachment);
        if let Err(e) = made {
            if let Err(undo) = self.teardown(attachment) {
                warn!(container = %id, error = %undo, "undoing a failed attachment failed; recovery retries");
            }
            return Err(e);
        }
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), reservation);
        info!(container = %id, addresses = ?attachment.addresses(), "attached");
        Ok(attachment)
    }

    /// The steps of [`Networking::attach`] after the checks, recording the
    /// attachment before each one.
    fn make(&self, attachment: &mut Attachment) -> Result<()> {
        self.save(attachment)?;
        self.netns.create(&attachment.container_id)?;
        for i in 0..attachment.networks.len() {
            let netns = attachment.netns.clone();
            let result = with_invocation(attachment, i, Some(&netns), |list, inv| {
                self.plugins.add(list, inv)
            });
            // Recorded at once: DEL passes it to the plugins.
            attachment.networks[i].result = Some(result?);
            self.save(attachment)?;
        }
        self.write_resolv_conf(attachment)?;
        let _hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        attachment.phase = Phase::Ready;
        self.write_hosts(attachment, true)?;
        self.save(attachment)?;
        self.rewrite_peers(attachment);
        Ok(())
    }

    /// Detaches container `id`: removes it from its peers' hosts, runs DEL
    /// on each network (last first), removes its namespace, frees its
    /// ports and forgets it. Returns whether there was an attachment. On
    /// failure the record stays, `removing`, for [`Networking::recover`]
    /// to finish.
    pub fn detach(&self, id: &str) -> Result<bool> {
        let _busy = self.busy(id)?;
        let Some(attachment) = self.attachment(id) else {
            // A crash between making the directory and recording the
            // attachment in it leaves the directory and nothing else.
            return self.remove_dir(id);
        };
        self.teardown(attachment)?;
        info!(container = %id, "detached");
        Ok(true)
    }

    fn teardown(&self, mut attachment: Attachment) -> Result<()> {
        let id = attachment.container_id.clone();
        {
            let _hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let was_ready = attachment.phase == Phase::Ready;
            attachment.phase = Phase::Removing;
            self.save(&attachment)?;
            if was_ready {
                self.rewrite_peers(&attachment);
            }
        }
        let netns_exists = self.netns.exists(&id);
        let mut first_error = None;
        let netns = netns_exists.then_some(attachment.netns.as_path());
        for (i, net) in attachment.networks.iter().enumerate().rev() {
            let deleted = with_invocation(&attachment, i, netns, |list, inv| {
                self.plugins.del(list, inv, net.result.as_ref())
            });
            if let Err(e) = deleted {
                warn!(container = %id, network = %net.network, error = %e, "CNI DEL failed");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.netns.remove(&id)?;
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.remove_dir(&id)?;
        self.lock_attachments().remove(&id);
        Ok(())
    }

    /// Removes container `id`'s attachment directory; whether there was one.
    fn remove_dir(&self, id: &str) -> Result<bool> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// Runs CHECK on each network of container `id`'s attachment.
    pub fn check(&self, id: &str) -> Result<()> {
        let attachment = self.attachment(id).ok_or_else(|| {
            Error::InvalidArgument(format!("container {id} has no network attachment"))
        })?;
        for (i, net) in attachment.networks.iter().enumerate() {
            let Some(result) = &net.result else { continue };
            with_invocation(&attachment, i, Some(&attachment.netns), |list, inv| {
                self.plugins.check(list, inv, result)
            })?;
        }
        Ok(())
    }

    /// Finishes what a crash interrupted: tears down attachments found
    /// `creating` or `removing`, takes the ports of `ready` ones again,
    /// makes again (same addresses) those whose namespace is gone, and
    /// rewrites every hosts file.
    pub fn recover(&self) -> RecoverReport {
        let mut report = RecoverReport::default();
        for attachment in self.attachments() {
            let id = attachment.container_id.clone();
            let Ok(_busy) = self.busy(&id) else {
                continue;
            };
            match attachment.phase {
                Phase::Creating | Phase::Removing => match self.teardown(attachment) {
                    Ok(()) => report.torn_down.push(id),
                    Err(e) => report.failed.push((id, e)),
                },
                Phase::Ready if !self.netns.exists(&id) => match self.remake(attachment) {
                    Ok(()) => report.remade.push(id),
                    Err(e) => report.failed.push((id, e)),
                },
                Phase::Ready => {
                    let mut reservations =
                        self.reservations.lock().unwrap_or_else(|e| e.into_inner());
                    // Held already when recovery runs again in this process.
                    if !reservations.contains_key(&id) {
                        match Reservation::take(&attachment.ports) {
                            Ok((_, held)) => {
                                reservations.insert(id.clone(), held);
                            }
                            Err(e) => {
                                warn!(container = %id, error = %e, "cannot hold its published ports again")
                            }
                        }
                    }
                    drop(reservations);
                    report.ready.push(id);
                }
            }
        }
        let _hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        for attachment in self.attachments() {
            if let Err(e) = self.write_hosts(&attachment, false) {
                warn!(container = %attachment.container_id, error = %e, "cannot rewrite its hosts file");
            }
        }
        report
    }

    /// Tears down an attachment whose namespace vanished and makes it
    /// again, asking for the addresses it had.
    fn remake(&self, attachment: Attachment) -> Result<()> {
        let request = AttachRequest {
            container_id: attachment.container_id.clone(),
            names: attachment.names.clone(),
            networks: attachment
                .networks
                .iter()
                .map(|n| NetworkRequest {
                    name: n.network.clone(),
                    ip: n
                        .static_ip
                        .or_else(|| attachment.addresses_on(&n.network).first().copied()),
                    aliases: n.aliases.clone(),
                })
                .collect(),
            ports: attachment.ports.clone(),
            dns: attachment.dns.clone(),
            extra_hosts: attachment.extra_hosts.clone(),
        };
        warn!(container = %request.container_id, "its network namespace is gone; making it again");
        self.teardown(attachment)?;
        self.attach_now(&request).map(drop)
    }

    /// Marks container `id` as being attached or detached until the guard
    /// drops; an error if it is already.
    fn busy(&self, id: &str) -> Result<Busy<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(id.to_string()) {
            return Err(Error::InvalidArgument(format!(
                "container {id} is being attached or detached"
            )));
        }
        Ok(Busy(self, id.to_string()))
    }

    // ---- files ---------------------------------------------------------

    fn write_resolv_conf(&self, attachment: &Attachment) -> Result<()> {
        let host = Resolv::parse(&std::fs::read_to_string(&self.resolv_conf).unwrap_or_default());
        let fallback = std::fs::read_to_string(RESOLVED_UPSTREAM)
            .ok()
            .map(|t| Resolv::parse(&t));
        let mut dns = attachment.dns.clone();
        if dns.servers.is_empty() {
            // Name servers a plugin hands out come before the host's.
            dns.servers = attachment
                .networks
                .iter()
                .filter_map(|n| n.result.as_ref())
                .flat_map(|r| r.dns().nameservers)
                .filter_map(|s| s.parse().ok())
                .collect();
        }
        let text = dns::resolv_conf(&host, fallback.as_ref(), &dns, true);
        crate::write_atomic(
            &self.resolv_conf_path(&attachment.container_id),
            text.as_bytes(),
        )
    }

    /// Writes the hosts file of `attachment` (in place: the container's
    /// bind mount holds the inode). `create` makes it if missing.
    fn write_hosts(&self, attachment: &Attachment, create: bool) -> Result<()> {
        let peers = self.peers(attachment);
        let text = dns::hosts(
            &attachment.names,
            &attachment.addresses(),
            &attachment.extra_hosts,
            &peers,
        );
        let path = self.hosts_path(&attachment.container_id);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(create)
                .open(&path)?;
            file.write_all(text.as_bytes())?;
            file.set_len(text.len() as u64)
        };
        write().context(|| format!("writing {}", path.display()))
    }

    /// The ready containers sharing a network with `attachment`, with
    /// their address on the first network shared.
    fn peers(&self, attachment: &Attachment) -> Vec<Peer> {
        let all = self.lock_attachments();
        let mut peers: Vec<(&str, Peer)> = Vec::new();
        for net in &attachment.networks {
            for other in all.values() {
                let id = other.container_id.as_str();
                if id == attachment.container_id
                    || other.phase != Phase::Ready
                    || peers.iter().any(|(seen, _)| *seen == id)
                {
                    continue;
                }
                let Some(ip) = other.addresses_on(&net.network).first().copied() else {
                    continue;
                };
                let aliases = other
                    .networks
                    .iter()
                    .filter(|n| n.network == net.network)
                    .flat_map(|n| n.aliases.iter());
                let names = other.names.iter().chain(aliases).cloned().collect();
                peers.push((id, Peer { ip, names }));
            }
        }
        peers.into_iter().map(|(_, peer)| peer).collect()
    }

    /// Rewrites the hosts files of the ready containers sharing a network
    /// with `attachment` (which joined or is leaving).
    fn rewrite_peers(&self, attachment: &Attachment) {
        let peers: Vec<Attachment> = self
            .lock_attachments()
            .values()
            .filter(|o| o.container_id != attachment.container_id && o.phase == Phase::Ready)
            .filter(|o| o.shares_a_network(attachment))
            .cloned()
            .collect();
        for peer in peers {
            if let Err(e) = self.write_hosts(&peer, false) {
                warn!(container = %peer.container_id, error = %e, "cannot rewrite its hosts file");
            }
        }
    }
}

/// Runs `op` with the configuration and the invocation of network
/// `index` of `attachment`: its interface, the static address as
/// host-local's `IP` argument, and the ports on the first network.
fn with_invocation<T>(
    attachment: &Attachment,
    index: usize,
    netns: Option<&Path>,
    op: impl FnOnce(&ConfList, &Invocation) -> T,
) -> T {
    let net = &attachment.networks[index];
    let mut args = Vec::new();
    if let Some(ip) = net.static_ip {
        args.push(("IgnoreUnknown".to_string(), "1".to_string()));
        args.push(("IP".to_string(), ip.to_string()));
    }
    let mut runtime_config = Map::new();
    if index == 0 && !attachment.ports.is_empty() {
        runtime_config.insert(
            "portMappings".into(),
            Value::Array(attachment.ports.iter().map(PortMapping::to_cni).collect()),
        );
    }
    op(
        &net.conflist,
        &Invocation {
            container_id: &attachment.cni_id,
            netns,
            ifname: &net.ifname,
            args: &args,
            runtime_config: &runtime_config,
        },
    )
}

fn load_record(path: &Path) -> Result<Option<Attachment>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::CorruptState(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// A short stable hash (FNV-1a, 32 bits, hex) of some bytes.
fn short_hash(bytes: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// `SIOCBRDELBR` (linux/sockios.h), which libc does not name.
const SIOCBRDELBR: libc::c_ulong = 0x89a1;

/// Deletes bridge `name` if it exists and no interface is on it.
fn remove_idle_bridge(name: &str) -> std::io::Result<()> {
    let sys = Path::new("/sys/class/net").join(name);
    let Ok(mut ports) = std::fs::read_dir(sys.join("brif")) else {
        return Ok(());
    };
    if ports.next().is_some() {
        return Ok(());
    }
    let cname = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: ioctls on a valid socket with a valid ifreq. A bridge must
    // be down to be deleted.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req);
        }
        if libc::ioctl(sock.as_raw_fd(), SIOCBRDELBR, cname.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes host-local's directory of a removed network when it holds no
/// lease (only its lock and last-reserved files).
fn remove_empty_ipam_dir(network: &Network) {
    let ipam = network
        .conflist
        .plugins
        .first()
        .and_then(|p| p.get("ipam"))
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("host-local"));
    let Some(ipam) = ipam else { return };
    let base = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or("/var/lib/cni/networks");
    let dir = Path::new(base).join(&network.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    if names
        .iter()
        .all(|n| n == "lock" || n.starts_with("last_reserved_ip"))
    {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
