//! Container networking in the runtime: the network namespace and files a
//! container runs with, its attachment (bridge mode) made at Create and
//! removed at Delete, and the agent's networks (`crun_shim_network`).
//!
//! A bridge container's namespace is made at Create, not at Start: its
//! address and ports are known (and shown by Inspect) as soon as it
//! exists, a port already taken fails Create rather than a later Start,
//! and runs under its restart policy keep the namespace and so the address.

use std::path::PathBuf;
use std::sync::Arc;

use crun_shim_network::dns::{self, Resolv};
use crun_shim_network::{
    AttachRequest, InterfaceInfo, Network, NetworkRequest, NetworkSpec, Networking,
    NetworkingOptions,
};
use tracing::warn;

use super::Runtime;
use crate::error::{Error, IoContext, Result};
use crate::model::{ContainerConfig, NetworkMode, NetworkStatus, Orphan, OrphanKind, Status};
use crate::spec::{self, Netns};
use crate::store::{self, Record};

/// How the runtime's networking is set up.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The networking (definitions, plugins, namespaces, state).
    pub networking: NetworkingOptions,
    /// The mode of containers that ask for none: [`NetworkMode::Bridge`]
    /// or [`NetworkMode::None`].
    pub default_mode: NetworkMode,
}

/// The host's hosts file, which host-mode containers start from.
const HOST_HOSTS: &str = "/etc/hosts";
/// Where the generated files are mounted.
const HOSTS: &str = "/etc/hosts";
/// See [`HOSTS`].
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What a container's network will be, decided before its spec is built.
#[derive(Debug)]
pub(super) struct Plan {
    /// Its network namespace.
    pub netns: Netns,
    /// Files mounted over its own: (destination, source).
    pub files: Vec<(String, PathBuf)>,
    /// Bridge mode: the attachment to make.
    attach: Option<AttachRequest>,
    /// No or host mode: the files to write in its directory, by name.
    own_files: Vec<(&'static str, String)>,
    /// Joining another container: that one's network.
    joined: NetworkStatus,
}

/// A network with the containers attached to it.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// The network.
    pub network: Network,
    /// Its containers, with their interface on it.
    pub members: Vec<(String, Option<InterfaceInfo>)>,
}

impl Runtime {
    /// The networking.
    pub fn networking(&self) -> &Networking {
        &self.networking
    }

    /// Runs a blocking networking call off the async threads.
    async fn networking_call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&Networking) -> crun_shim_network::Result<T> + Send + 'static,
    ) -> Result<T> {
        let networking = Arc::clone(&self.networking);
        tokio::task::spawn_blocking(move || f(&networking))
            .await
            .map_err(|e| Error::Internal(format!("{what}: {e}")))?
            .map_err(Error::from)
    }

    /// Puts the agent's default mode in place of [`NetworkMode::Default`],
    /// then checks the network settings. A container run from a given OCI
    /// spec keeps [`NetworkMode::Default`]: its spec decides its namespaces.
    pub(super) fn resolve_network(&self, config: &mut ContainerConfig) -> Result<()> {
        if config.network == NetworkMode::Default && config.oci_spec.is_none() {
            config.network = self.options.network.default_mode.clone();
        }
        config.validate_network()
    }

    /// Decides the namespace and files of a container, without making
    /// anything.
    pub(super) fn plan_network(&self, config: &ContainerConfig) -> Result<Plan> {
        let id = &config.id;
        let mut plan = Plan {
            netns: Netns::New,
            files: Vec::new(),
            attach: None,
            own_files: Vec::new(),
            joined: NetworkStatus::default(),
        };
        if config.oci_spec.is_some() {
            // Nothing to make: the spec is run as given.
            return Ok(plan);
        }
        let names = {
            let hostname = spec::hostname(config)?;
            let mut names = vec![id.clone()];
            if hostname != *id {
                names.push(hostname);
            }
            names
        };
        match &config.network {
            NetworkMode::Bridge | NetworkMode::Default => {
                plan.netns = Netns::Join(self.networking.netns_dir().path(id));
                plan.files = vec![
                    (HOSTS.into(), self.networking.hosts_path(id)),
                    (RESOLV_CONF.into(), self.networking.resolv_conf_path(id)),
                ];
                plan.attach = Some(AttachRequest {
                    container_id: id.clone(),
                    names,
                    networks: config
                        .networks
                        .iter()
                        .map(|n| NetworkRequest {
                            name: n.name.clone(),
                            ip: n.ip,
                            aliases: n.aliases.clone(),
                        })
                        .collect(),
                    ports: config.ports.clone(),
                    dns: config.dns.clone(),
                    extra_hosts: config.extra_hosts.clone(),
                });
            }
            NetworkMode::None | NetworkMode::Host => {
                let host = config.network == NetworkMode::Host;
                if host {
                    plan.netns = Netns::Host;
                }
                if !config.dns.is_empty() {
                    let resolv =
                        Resolv::parse(&std::fs::read_to_string(RESOLV_CONF).unwrap_or_default());
                    let text = dns::resolv_conf(&resolv, None, &config.dns, !host);
                    plan.own_files.push(("resolv.conf", text));
                }
                if !config.extra_hosts.is_empty() {
                    let text = if host {
                        let mut text = std::fs::read_to_string(HOST_HOSTS).unwrap_or_default();
                        if !text.is_empty() && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        text + &dns::hosts(&[], &[], &config.extra_hosts, &[])
                    } else {
                        dns::hosts(&names, &[], &config.extra_hosts, &[])
                    };
                    plan.own_files.push(("hosts", text));
                }
                let dir = self.store.container_dir(id);
                for (name, _) in &plan.own_files {
                    let destination = if *name == "hosts" { HOSTS } else { RESOLV_CONF };
                    plan.files.push((destination.into(), dir.join(name)));
                }
            }
            NetworkMode::Container(target) => self.plan_join(target, &mut plan)?,
        }
        Ok(plan)
    }

    /// The plan of a container joining `target`'s namespace: the same
    /// namespace and files, and its network as a snapshot.
    fn plan_join(&self, target: &str, plan: &mut Plan) -> Result<()> {
        let record = self
            .entry(target)
            .map_err(|_| {
                Error::NotFound(format!(
                    "container {target}, whose network namespace it joins, not found"
                ))
            })?
            .snapshot();
        match &record.config.network {
            NetworkMode::Default if record.config.oci_spec.is_some() => {
                return Err(Error::FailedPrecondition(format!(
                    "container {target} runs from a given OCI spec: join its network namespace through a spec of your own"
                )));
            }
            NetworkMode::Bridge | NetworkMode::Default => {
                let netns = record
                    .network
                    .netns
                    .clone()
                    .unwrap_or_else(|| self.networking.netns_dir().path(target));
                plan.netns = Netns::Join(netns);
                plan.files = vec![
                    (HOSTS.into(), self.networking.hosts_path(target)),
                    (RESOLV_CONF.into(), self.networking.resolv_conf_path(target)),
                ];
            }
            NetworkMode::None => {
                if record.status == Status::Stopped || record.pid <= 0 {
                    return Err(Error::FailedPrecondition(format!(
                        "container {target} has no network namespace to join: it is not running"
                    )));
                }
                plan.netns = Netns::Join(PathBuf::from(format!("/proc/{}/ns/net", record.pid)));
                self.join_own_files(target, plan);
            }
            NetworkMode::Host => {
                plan.netns = Netns::Host;
                self.join_own_files(target, plan);
            }
            // A chain: join the namespace at its end.
            NetworkMode::Container(next) => {
                let next = next.clone();
                return self.plan_join(&next, plan);
            }
        }
        plan.joined = record.network;
        Ok(())
    }

    /// The files a no- or host-mode `target` had written for it.
    fn join_own_files(&self, target: &str, plan: &mut Plan) {
        let dir = self.store.container_dir(target);
        for (name, destination) in [("hosts", HOSTS), ("resolv.conf", RESOLV_CONF)] {
            if dir.join(name).is_file() {
                plan.files.push((destination.into(), dir.join(name)));
            }
        }
    }

    /// Makes what the plan says: the attachment of a bridge container (a
    /// taken port fails here, before anything is made), or the files of a
    /// no- or host-mode one in its directory. Returns its network.
    pub(super) async fn set_up_network(&self, id: &str, plan: Plan) -> Result<NetworkStatus> {
        let dir = self.store.container_dir(id);
        for (name, text) in &plan.own_files {
            store::write_atomic(&dir.join(name), text.as_bytes())
                .context(|| format!("writing {}", dir.join(name).display()))?;
        }
        let Some(request) = plan.attach else {
            return Ok(plan.joined);
        };
        let attachment = self
            .networking_call("attaching", move |n| n.attach(&request))
            .await?;
        Ok(NetworkStatus {
            interfaces: attachment.interfaces(),
            ports: attachment.ports,
            netns: Some(attachment.netns),
        })
    }

    /// Detaches container `id` from its networks, if it is attached.
    pub(super) async fn tear_down_network(&self, id: &str) -> Result<bool> {
        let cid = id.to_string();
        self.networking_call("detaching", move |n| n.detach(&cid))
            .await
    }

    /// The containers, not stopped, that run in `id`'s network namespace.
    pub(super) fn network_joiners(&self, id: &str) -> Vec<String> {
        self.all_entries()
            .iter()
            .map(|e| e.snapshot())
            .filter(|r| r.status != Status::Stopped)
            .filter(|r| matches!(&r.config.network, NetworkMode::Container(t) if t == id))
            .map(|r| r.config.id)
            .collect()
    }

    /// Finishes the attachments a crash left half-made or half-removed,
    /// holds the ports of the others again, and makes again those whose
    /// namespace vanished.
    pub(super) async fn recover_networks(&self) -> Result<()> {
        let report = self
            .networking_call("recovering networks", |n| Ok(n.recover()))
            .await?;
        for id in &report.torn_down {
            warn!(container = %id, "removed a network attachment a crash left half-done");
        }
        for id in &report.remade {
            warn!(container = %id, "made its network namespace again");
        }
        for (id, e) in &report.failed {
            warn!(container = %id, error = %e, "cannot recover its network attachment");
        }
        Ok(())
    }

    /// Network attachments whose container is not in `known`.
    pub(super) fn network_orphans(
        &self,
        known: &std::collections::BTreeSet<String>,
    ) -> Vec<Orphan> {
        self.networking
            .attachments()
            .into_iter()
            .filter(|a| !known.contains(&a.container_id))
            .map(|a| Orphan {
                kind: OrphanKind::Network,
                container_id: a.container_id,
                path: Some(a.netns),
                detail: "network attachment without a container".into(),
            })
            .collect()
    }

    /// The network namespace path of a container as Inspect shows it.
    pub fn netns_path(record: &Record) -> Option<PathBuf> {
        match (&record.network.netns, &record.config.network) {
            (Some(path), _) => Some(path.clone()),
            (None, NetworkMode::Host) => None,
            (None, _) if record.pid > 0 => {
                Some(PathBuf::from(format!("/proc/{}/ns/net", record.pid)))
            }
            (None, _) => None,
        }
    }

    // ---- NetworkService ------------------------------------------------

    /// Every network, with its containers.
    pub async fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let networks = self
            .networking_call("listing networks", |n| n.networks())
            .await?;
        Ok(networks.into_iter().map(|n| self.with_members(n)).collect())
    }

    /// One network, with its containers.
    pub async fn network(&self, name: &str) -> Result<NetworkInfo> {
        let name = name.to_string();
        let network = self
            .networking_call("inspecting a network", move |n| n.network(&name))
            .await?;
        Ok(self.with_members(network))
    }

    /// Creates a bridge network.
    pub async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo> {
        let network = self
            .networking_call("creating a network", move |n| n.create_network(&spec))
            .await?;
        Ok(self.with_members(network))
    }

    /// Removes a network no container uses.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.networking_call("removing a network", move |n| {
            n.remove_network(&name).map(drop)
        })
        .await
    }

    fn with_members(&self, network: Network) -> NetworkInfo {
        NetworkInfo {
            members: self.networking.containers_on(&network.name),
            network,
        }
    }
}
