//! Conversions between the protocol's messages and the runtime's types:
//! `From` for what the agent sends, `TryFrom` with [`ConversionError`] for
//! what it receives. They map representations only; the rules (defaults,
//! validation) are the model's.
//!
//! One policy for times and durations, in both directions of every
//! message: a value the other side cannot represent is refused, naming its
//! field (here InvalidArgument; the SDK refuses the server's answer the
//! same way). Durations the agent sends saturate at the wire's maximum,
//! which no real duration reaches.
//!
//! The image store's and the networking's types and the protocol's are
//! all foreign to this crate, so their conversions (at the end) are
//! functions.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;

use crun_shim_network::dns::{DnsConfig, HostEntry};
use crun_shim_network::{InterfaceInfo, PortMapping, Protocol};

use crate::error::{Error, Result};
use crate::logs::{LogEntry, LogQuery, Stream};
use crate::model::{
    CapabilityChanges, ContainerConfig, ContainerMetrics, ContainerNetwork, Event, EventDetails,
    EventFilter, EventKind, ExitStatus, HealthCheck, HealthState, HealthStatus, LogConfig, Mount,
    NamespaceSource, NetworkMode, Orphan, OrphanKind, ProcessSpec, Resources, RestartPolicy,
    Rlimit, RootSource, RootfsMount, Seccomp, Status,
};
use crate::runtime::process::ProcessRecord;
use crate::runtime::{ContainerView, Runtime};
use crate::stdio::{OutputTarget, StdioConfig};

/// A message that does not convert to the runtime's types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    /// A required field is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An enum value this agent does not know.
    #[error("unknown {field} {value}")]
    UnknownEnum {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i32,
    },
    /// A time out of the range of the system's clock.
    #[error("{field}: {value} is not a valid time")]
    Time {
        /// The field.
        field: &'static str,
        /// Its value.
        value: prost_types::Timestamp,
    },
    /// A negative or out-of-range duration.
    #[error("{field}: invalid or negative duration {value}")]
    Duration {
        /// The field.
        field: &'static str,
        /// Its value.
        value: prost_types::Duration,
    },
    /// A value that does not parse as what its field holds (an address, a
    /// port number), or that the rest of the message rules out.
    #[error("{field} {value:?}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value whose text form does not parse (a stdio path or URI).
    #[error("{0}")]
    Form(String),
}

/// The result of a conversion from the wire.
pub type Converted<T> = std::result::Result<T, ConversionError>;

impl From<ConversionError> for Error {
    fn from(e: ConversionError) -> Error {
        Error::InvalidArgument(e.to_string())
    }
}

/// A time from the wire.
fn time(t: prost_types::Timestamp, field: &'static str) -> Converted<SystemTime> {
    SystemTime::try_from(t).map_err(|_| ConversionError::Time { field, value: t })
}

/// A duration from the wire (negative ones are refused).
fn duration(d: prost_types::Duration, field: &'static str) -> Converted<Duration> {
    Duration::try_from(d).map_err(|_| ConversionError::Duration { field, value: d })
}

/// An optional duration from the wire.
pub fn optional_duration(
    d: Option<prost_types::Duration>,
    field: &'static str,
) -> Converted<Option<Duration>> {
    d.map(|d| duration(d, field)).transpose()
}

/// A duration for the wire, saturating.
fn wire_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// An enum of the wire from its number.
fn known<E: TryFrom<i32>>(value: i32, field: &'static str) -> Converted<E> {
    E::try_from(value).map_err(|_| ConversionError::UnknownEnum { field, value })
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// An address from the wire.
fn ip(s: String, field: &'static str) -> Converted<IpAddr> {
    s.parse().map_err(|_| ConversionError::Invalid {
        field,
        value: s,
        reason: "not an IP address",
    })
}

/// An optional address from the wire (empty for none).
fn optional_ip(s: String, field: &'static str) -> Converted<Option<IpAddr>> {
    non_empty(s).map(|s| ip(s, field)).transpose()
}

/// A port number from the wire.
fn port(p: u32, field: &'static str) -> Converted<u16> {
    u16::try_from(p).map_err(|_| ConversionError::Invalid {
        field,
        value: p.to_string(),
        reason: "not a port number (0-65535)",
    })
}

impl TryFrom<pb::ContainerConfig> for ContainerConfig {
    type Error = ConversionError;

    /// The configuration of a Create request, as sent: zero values are
    /// left for [`ContainerConfig::validate`] to default.
    fn try_from(c: pb::ContainerConfig) -> Converted<ContainerConfig> {
        use pb::container_config::Root;
        let root = match c.root {
            Some(Root::Rootfs(path)) => RootSource::Rootfs(PathBuf::from(path)),
            Some(Root::Image(reference)) => RootSource::Image(reference),
            Some(Root::RootfsMounts(m)) => {
                RootSource::Mounts(m.mounts.into_iter().map(RootfsMount::from).collect())
            }
            None => {
                return Err(ConversionError::Missing(
                    "a rootfs path, an image or root filesystem mounts",
                ));
            }
        };
        let network = match known(c.network_mode, "network mode")? {
            pb::NetworkMode::Container if c.network_container.is_empty() => {
                return Err(ConversionError::Missing(
                    "network_container, the container to join",
                ));
            }
            pb::NetworkMode::Container => NetworkMode::Container(c.network_container),
            _ if !c.network_container.is_empty() => {
                return Err(ConversionError::Invalid {
                    field: "network_container",
                    value: c.network_container,
                    reason: "only for network mode container",
                });
            }
            pb::NetworkMode::Unspecified => NetworkMode::Default,
            pb::NetworkMode::None => NetworkMode::None,
            pb::NetworkMode::Host => NetworkMode::Host,
            pb::NetworkMode::Bridge => NetworkMode::Bridge,
        };
        let restart_policy = match c.restart_policy {
            None => RestartPolicy::No,
            Some(p) => match known(p.kind, "restart policy")? {
                pb::restart_policy::Kind::Unspecified | pb::restart_policy::Kind::No => {
                    RestartPolicy::No
                }
                pb::restart_policy::Kind::OnFailure => RestartPolicy::OnFailure {
                    max_retries: p.max_retries,
                },
                pb::restart_policy::Kind::Always => RestartPolicy::Always,
            },
        };
        let zero_or = |d: Option<prost_types::Duration>, field| {
            optional_duration(d, field).map(Option::unwrap_or_default)
        };
        let health_check = c
            .health_check
            .map(|h| -> Converted<HealthCheck> {
                Ok(HealthCheck {
                    command: h.command,
                    interval: zero_or(h.interval, "health check interval")?,
                    timeout: zero_or(h.timeout, "health check timeout")?,
                    retries: h.retries,
                    start_period: zero_or(h.start_period, "health check start period")?,
                })
            })
            .transpose()?;
        let log = c.log_config.unwrap_or_default();
        let caps = c.capabilities.unwrap_or_default();
        Ok(ContainerConfig {
            id: c.id,
            root,
            command: c.command,
            args: c.args,
            env: c.env,
            working_dir: non_empty(c.working_dir),
            user: non_empty(c.user),
            additional_gids: c.additional_gids,
            hostname: non_empty(c.hostname),
            mounts: c.mounts.into_iter().map(Mount::from).collect(),
            network,
            networks: c
                .networks
                .into_iter()
                .map(ContainerNetwork::try_from)
                .collect::<Converted<_>>()?,
            ports: c
                .ports
                .into_iter()
                .map(port_from_proto)
                .collect::<Converted<_>>()?,
            dns: c.dns.map(dns_from_proto).transpose()?.unwrap_or_default(),
            extra_hosts: c
                .extra_hosts
                .into_iter()
                .map(host_from_proto)
                .collect::<Converted<_>>()?,
            resources: c.resources.map(Resources::from).unwrap_or_default(),
            labels: c.labels.into_iter().collect(),
            restart_policy,
            health_check,
            terminal: c.terminal,
            log: LogConfig {
                max_size_bytes: log.max_size_bytes,
                max_files: log.max_files,
            },
            read_only_rootfs: c.read_only_rootfs,
            rlimits: c
                .rlimits
                .into_iter()
                .map(|r| Rlimit {
                    kind: r.r#type,
                    soft: r.soft,
                    hard: r.hard,
                })
                .collect(),
            capabilities: CapabilityChanges {
                add: caps.add,
                drop: caps.drop,
            },
            stop_signal: non_empty(c.stop_signal),
            stop_timeout: optional_duration(c.stop_timeout, "stop timeout")?,
            annotations: c.annotations.into_iter().collect(),
            seccomp: c
                .seccomp
                .map(Seccomp::try_from)
                .transpose()?
                .unwrap_or_default(),
            no_new_privileges: c.no_new_privileges,
            oci_spec: non_empty(c.oci_spec_json),
            stdio: c.stdio.unwrap_or_default().try_into()?,
            open_stdin: c.open_stdin,
            ipc: c.ipc.map(NamespaceSource::from).unwrap_or_default(),
            uts: c.uts.map(NamespaceSource::from).unwrap_or_default(),
            pid: c.pid.map(NamespaceSource::from).unwrap_or_default(),
            sysctls: c.sysctls.into_iter().collect(),
            masked_paths: c.masked_paths.map(|l| l.paths),
            readonly_paths: c.readonly_paths.map(|l| l.paths),
            auto_remove: c.auto_remove,
        })
    }
}

impl From<pb::NamespaceSource> for NamespaceSource {
    fn from(s: pb::NamespaceSource) -> NamespaceSource {
        use pb::namespace_source::Source;
        match s.source {
            None | Some(Source::Host(false)) => NamespaceSource::Private,
            Some(Source::Host(true)) => NamespaceSource::Host,
            Some(Source::Container(id)) => NamespaceSource::Container(id),
        }
    }
}

/// A namespace source on the wire: unset for a private one.
fn wire_namespace(s: &NamespaceSource) -> Option<pb::NamespaceSource> {
    use pb::namespace_source::Source;
    let source = match s {
        NamespaceSource::Private => return None,
        NamespaceSource::Host => Source::Host(true),
        NamespaceSource::Container(id) => Source::Container(id.clone()),
    };
    Some(pb::NamespaceSource {
        source: Some(source),
    })
}

impl TryFrom<pb::SeccompProfile> for Seccomp {
    type Error = ConversionError;

    fn try_from(s: pb::SeccompProfile) -> Converted<Seccomp> {
        use pb::seccomp_profile::Kind;
        match known(s.kind, "seccomp profile kind")? {
            Kind::Unspecified | Kind::Default => Ok(Seccomp::Default),
            Kind::Unconfined => Ok(Seccomp::Unconfined),
            Kind::Custom if !s.custom_json.is_empty() => Ok(Seccomp::Custom(s.custom_json)),
            Kind::Custom => Err(ConversionError::Missing(
                "seccomp.custom_json (for KIND_CUSTOM)",
            )),
        }
    }
}

impl From<&Seccomp> for pb::SeccompProfile {
    fn from(s: &Seccomp) -> pb::SeccompProfile {
        use pb::seccomp_profile::Kind;
        let (kind, custom_json) = match s {
            Seccomp::Default => (Kind::Default, String::new()),
            Seccomp::Unconfined => (Kind::Unconfined, String::new()),
            Seccomp::Custom(json) => (Kind::Custom, json.clone()),
        };
        pb::SeccompProfile {
            kind: kind as i32,
            custom_json,
        }
    }
}

impl From<pb::RootfsMount> for RootfsMount {
    fn from(m: pb::RootfsMount) -> RootfsMount {
        RootfsMount {
            kind: m.r#type,
            source: m.source,
            options: m.options,
        }
    }
}

impl From<&RootfsMount> for pb::RootfsMount {
    fn from(m: &RootfsMount) -> pb::RootfsMount {
        pb::RootfsMount {
            r#type: m.kind.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
        }
    }
}

impl From<pb::Mount> for Mount {
    fn from(m: pb::Mount) -> Mount {
        Mount {
            destination: m.destination,
            source: m.source,
            kind: m.r#type,
            options: m.options,
            read_only: m.read_only,
        }
    }
}

impl From<&Mount> for pb::Mount {
    fn from(m: &Mount) -> pb::Mount {
        pb::Mount {
            destination: m.destination.clone(),
            source: m.source.clone(),
            r#type: m.kind.clone(),
            options: m.options.clone(),
            read_only: m.read_only,
        }
    }
}

impl From<pb::Resources> for Resources {
    fn from(r: pb::Resources) -> Resources {
        Resources {
            memory_limit_bytes: r.memory_limit_bytes,
            memory_reservation_bytes: r.memory_reservation_bytes,
            memory_swap_limit_bytes: r.memory_swap_limit_bytes,
            cpu_shares: r.cpu_shares,
            cpu_quota_us: r.cpu_quota_us,
            cpu_period_us: r.cpu_period_us,
            cpuset_cpus: r.cpuset_cpus,
            pids_limit: r.pids_limit,
        }
    }
}

impl From<&Resources> for pb::Resources {
    fn from(r: &Resources) -> pb::Resources {
        pb::Resources {
            memory_limit_bytes: r.memory_limit_bytes,
            memory_reservation_bytes: r.memory_reservation_bytes,
            memory_swap_limit_bytes: r.memory_swap_limit_bytes,
            cpu_shares: r.cpu_shares,
            cpu_quota_us: r.cpu_quota_us,
            cpu_period_us: r.cpu_period_us,
            cpuset_cpus: r.cpuset_cpus.clone(),
            pids_limit: r.pids_limit,
        }
    }
}

impl From<&ContainerConfig> for pb::ContainerConfig {
    /// A configuration as Inspect returns it.
    fn from(c: &ContainerConfig) -> pb::ContainerConfig {
        use pb::container_config::Root;
        pb::ContainerConfig {
            id: c.id.clone(),
            root: Some(match &c.root {
                RootSource::Rootfs(p) => Root::Rootfs(p.display().to_string()),
                RootSource::Image(r) => Root::Image(r.clone()),
                RootSource::Mounts(mounts) => Root::RootfsMounts(pb::RootfsMounts {
                    mounts: mounts.iter().map(pb::RootfsMount::from).collect(),
                }),
            }),
            command: c.command.clone(),
            args: c.args.clone(),
            env: c.env.clone(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            user: c.user.clone().unwrap_or_default(),
            additional_gids: c.additional_gids.clone(),
            hostname: c.hostname.clone().unwrap_or_default(),
            mounts: c.mounts.iter().map(pb::Mount::from).collect(),
            network_mode: match &c.network {
                NetworkMode::Default => pb::NetworkMode::Unspecified,
                NetworkMode::None => pb::NetworkMode::None,
                NetworkMode::Host => pb::NetworkMode::Host,
                NetworkMode::Bridge => pb::NetworkMode::Bridge,
                NetworkMode::Container(_) => pb::NetworkMode::Container,
            } as i32,
            network_container: match &c.network {
                NetworkMode::Container(id) => id.clone(),
                _ => String::new(),
            },
            networks: c.networks.iter().map(pb::ContainerNetwork::from).collect(),
            ports: c.ports.iter().map(port_to_proto).collect(),
            dns: (!c.dns.is_empty()).then(|| pb::DnsConfig {
                servers: c.dns.servers.iter().map(ToString::to_string).collect(),
                searches: c.dns.search.clone(),
                options: c.dns.options.clone(),
            }),
            extra_hosts: c
                .extra_hosts
                .iter()
                .map(|h| pb::HostEntry {
                    hostname: h.name.clone(),
                    ip: h.ip.to_string(),
                })
                .collect(),
            resources: Some((&c.resources).into()),
            labels: c.labels.clone().into_iter().collect(),
            restart_policy: Some(match c.restart_policy {
                RestartPolicy::No => pb::RestartPolicy {
                    kind: pb::restart_policy::Kind::No as i32,
                    max_retries: 0,
                },
                RestartPolicy::OnFailure { max_retries } => pb::RestartPolicy {
                    kind: pb::restart_policy::Kind::OnFailure as i32,
                    max_retries,
                },
                RestartPolicy::Always => pb::RestartPolicy {
                    kind: pb::restart_policy::Kind::Always as i32,
                    max_retries: 0,
                },
            }),
            health_check: c.health_check.as_ref().map(|h| pb::HealthCheck {
                command: h.command.clone(),
                interval: Some(wire_duration(h.interval)),
                timeout: Some(wire_duration(h.timeout)),
                retries: h.retries,
                start_period: Some(wire_duration(h.start_period)),
            }),
            terminal: c.terminal,
            log_config: Some(pb::LogConfig {
                max_size_bytes: c.log.max_size_bytes,
                max_files: c.log.max_files,
            }),
            read_only_rootfs: c.read_only_rootfs,
            rlimits: c
                .rlimits
                .iter()
                .map(|r| pb::Rlimit {
                    r#type: r.kind.clone(),
                    soft: r.soft,
                    hard: r.hard,
                })
                .collect(),
            capabilities: Some(pb::Capabilities {
                add: c.capabilities.add.clone(),
                drop: c.capabilities.drop.clone(),
            }),
            stop_signal: c.stop_signal.clone().unwrap_or_default(),
            stop_timeout: c.stop_timeout.map(wire_duration),
            annotations: c.annotations.clone().into_iter().collect(),
            seccomp: Some((&c.seccomp).into()),
            no_new_privileges: c.no_new_privileges,
            oci_spec_json: c.oci_spec.clone().unwrap_or_default(),
            stdio: (!c.stdio.is_empty()).then(|| (&c.stdio).into()),
            open_stdin: c.open_stdin,
            ipc: wire_namespace(&c.ipc),
            uts: wire_namespace(&c.uts),
            pid: wire_namespace(&c.pid),
            sysctls: c.sysctls.clone().into_iter().collect(),
            masked_paths: c.masked_paths.clone().map(|paths| pb::PathList { paths }),
            readonly_paths: c.readonly_paths.clone().map(|paths| pb::PathList { paths }),
            auto_remove: c.auto_remove,
        }
    }
}

impl TryFrom<pb::StdioConfig> for StdioConfig {
    type Error = ConversionError;

    /// Where a process's streams go, from their text forms (absolute
    /// paths, `file://` and `binary://` URIs).
    fn try_from(s: pb::StdioConfig) -> Converted<StdioConfig> {
        StdioConfig::parse(
            &s.stdin,
            &s.stdout,
            &s.stderr,
            s.logger_env.into_iter().collect(),
        )
        .map_err(|e| ConversionError::Form(e.to_string()))
    }
}

impl From<&StdioConfig> for pb::StdioConfig {
    fn from(s: &StdioConfig) -> pb::StdioConfig {
        let text =
            |t: &Option<OutputTarget>| t.as_ref().map(ToString::to_string).unwrap_or_default();
        pb::StdioConfig {
            stdin: s
                .stdin
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            stdout: text(&s.stdout),
            stderr: text(&s.stderr),
            logger_env: s.logger_env.clone().into_iter().collect(),
        }
    }
}

impl From<&ProcessRecord> for pb::ProcessState {
    /// A detached process's state.
    fn from(r: &ProcessRecord) -> pb::ProcessState {
        pb::ProcessState {
            container_id: r.container_id.clone(),
            exec_id: r.exec_id.clone(),
            pid: u32::try_from(r.pid).unwrap_or(0),
            running: r.exit.is_none(),
            exit: r.exit.as_ref().map(Into::into),
            terminal: r.terminal,
            stdio: (!r.stdio.is_empty()).then(|| (&r.stdio).into()),
        }
    }
}

impl TryFrom<pb::ContainerNetwork> for ContainerNetwork {
    type Error = ConversionError;

    fn try_from(n: pb::ContainerNetwork) -> Converted<ContainerNetwork> {
        Ok(ContainerNetwork {
            ip: optional_ip(n.ip_address, "network address")?,
            name: n.name,
            aliases: n.aliases,
        })
    }
}

impl From<&ContainerNetwork> for pb::ContainerNetwork {
    fn from(n: &ContainerNetwork) -> pb::ContainerNetwork {
        pb::ContainerNetwork {
            name: n.name.clone(),
            ip_address: n.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            aliases: n.aliases.clone(),
        }
    }
}

impl From<Status> for pb::ContainerStatus {
    fn from(s: Status) -> pb::ContainerStatus {
        match s {
            Status::Created => pb::ContainerStatus::Created,
            Status::Running => pb::ContainerStatus::Running,
            Status::Paused => pb::ContainerStatus::Paused,
            Status::Stopped => pb::ContainerStatus::Stopped,
        }
    }
}

impl TryFrom<pb::ContainerStatus> for Status {
    type Error = ConversionError;

    fn try_from(s: pb::ContainerStatus) -> Converted<Status> {
        match s {
            pb::ContainerStatus::Created => Ok(Status::Created),
            pb::ContainerStatus::Running => Ok(Status::Running),
            pb::ContainerStatus::Paused => Ok(Status::Paused),
            pb::ContainerStatus::Stopped => Ok(Status::Stopped),
            pb::ContainerStatus::Unspecified => Err(ConversionError::UnknownEnum {
                field: "container status",
                value: s as i32,
            }),
        }
    }
}

/// The statuses of a List filter.
pub fn statuses(values: &[i32]) -> Converted<Vec<Status>> {
    values
        .iter()
        .map(|v| Status::try_from(known::<pb::ContainerStatus>(*v, "container status")?))
        .collect()
}

impl From<&ExitStatus> for pb::ExitStatus {
    fn from(e: &ExitStatus) -> pb::ExitStatus {
        pb::ExitStatus {
            exit_code: e.exit_code,
            signal: e.signal,
            oom_killed: e.oom_killed,
            finished_at: Some(e.finished_at.into()),
            unknown: e.unknown,
        }
    }
}

impl From<&ContainerView> for pb::Container {
    fn from(v: &ContainerView) -> pb::Container {
        let r = &v.record;
        pb::Container {
            id: r.config.id.clone(),
            agent: String::new(),
            status: pb::ContainerStatus::from(r.status) as i32,
            config: Some((&r.config).into()),
            pid: u32::try_from(r.pid).unwrap_or(0),
            created_at: Some(r.created_at.into()),
            started_at: r.started_at.map(Into::into),
            last_exit: r.last_exit.as_ref().map(Into::into),
            restart_count: r.restart_count,
            health_status: pb::HealthStatus::from(r.health.status) as i32,
            bundle: String::new(),
            rootfs_path: r.rootfs_path.display().to_string(),
            image_digest: r.image_digest.clone().unwrap_or_default(),
            exec_ids: v.exec_ids.clone(),
            networks: r
                .network
                .interfaces
                .iter()
                .map(interface_to_proto)
                .collect(),
            ports: r.network.ports.iter().map(port_to_proto).collect(),
            netns_path: Runtime::netns_path(r)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}

impl From<pb::ProcessSpec> for ProcessSpec {
    fn from(p: pb::ProcessSpec) -> ProcessSpec {
        ProcessSpec {
            command: p.command,
            env: p.env,
            working_dir: non_empty(p.working_dir),
            user: non_empty(p.user),
            tty: p.tty,
        }
    }
}

impl TryFrom<&pb::LogsRequest> for LogQuery {
    type Error = ConversionError;

    fn try_from(r: &pb::LogsRequest) -> Converted<LogQuery> {
        let mut stdout = r.streams.is_empty();
        let mut stderr = r.streams.is_empty();
        for s in &r.streams {
            match known(*s, "log stream")? {
                pb::LogStream::Stdout => stdout = true,
                pb::LogStream::Stderr => stderr = true,
                pb::LogStream::Unspecified => {
                    stdout = true;
                    stderr = true;
                }
            }
        }
        Ok(LogQuery {
            follow: r.follow,
            tail: r.tail,
            since: r.since.map(|t| time(t, "since")).transpose()?,
            until: r.until.map(|t| time(t, "until")).transpose()?,
            stdout,
            stderr,
            merge_lines: r.merge_lines,
        })
    }
}

impl From<LogEntry> for pb::LogEntry {
    fn from(e: LogEntry) -> pb::LogEntry {
        pb::LogEntry {
            time: Some(e.time.into()),
            stream: match e.stream {
                Stream::Stdout => pb::LogStream::Stdout,
                Stream::Stderr => pb::LogStream::Stderr,
            } as i32,
            data: e.data,
            partial: e.partial,
        }
    }
}

impl From<HealthStatus> for pb::HealthStatus {
    fn from(s: HealthStatus) -> pb::HealthStatus {
        match s {
            HealthStatus::None => pb::HealthStatus::None,
            HealthStatus::Starting => pb::HealthStatus::Starting,
            HealthStatus::Healthy => pb::HealthStatus::Healthy,
            HealthStatus::Unhealthy => pb::HealthStatus::Unhealthy,
        }
    }
}

impl From<&HealthState> for pb::ContainerHealth {
    /// A container's health, without its id (the caller knows it).
    fn from(h: &HealthState) -> pb::ContainerHealth {
        pb::ContainerHealth {
            container_id: String::new(),
            status: pb::HealthStatus::from(h.status) as i32,
            failing_streak: h.failing_streak,
            recent_results: h
                .recent
                .iter()
                .map(|r| pb::HealthCheckResult {
                    started_at: Some(r.started_at.into()),
                    finished_at: Some(r.finished_at.into()),
                    exit_code: r.exit_code,
                    output: r.output.clone().into(),
                    timed_out: r.timed_out,
                })
                .collect(),
            agent: String::new(),
        }
    }
}

impl From<EventKind> for pb::EventType {
    fn from(k: EventKind) -> pb::EventType {
        match k {
            EventKind::Create => pb::EventType::Create,
            EventKind::Start => pb::EventType::Start,
            EventKind::ExecAdded => pb::EventType::ExecAdded,
            EventKind::ExecStarted => pb::EventType::ExecStarted,
            EventKind::Exit => pb::EventType::Exit,
            EventKind::Oom => pb::EventType::Oom,
            EventKind::Pause => pb::EventType::Pause,
            EventKind::Resume => pb::EventType::Resume,
            EventKind::Delete => pb::EventType::Delete,
            EventKind::HealthStatus => pb::EventType::HealthStatus,
            EventKind::Restart => pb::EventType::Restart,
        }
    }
}

impl TryFrom<pb::EventType> for EventKind {
    type Error = ConversionError;

    fn try_from(t: pb::EventType) -> Converted<EventKind> {
        use pb::EventType as T;
        Ok(match t {
            T::Create => EventKind::Create,
            T::Start => EventKind::Start,
            T::ExecAdded => EventKind::ExecAdded,
            T::ExecStarted => EventKind::ExecStarted,
            T::Exit => EventKind::Exit,
            T::Oom => EventKind::Oom,
            T::Pause => EventKind::Pause,
            T::Resume => EventKind::Resume,
            T::Delete => EventKind::Delete,
            T::HealthStatus => EventKind::HealthStatus,
            T::Restart => EventKind::Restart,
            T::Unspecified => {
                return Err(ConversionError::UnknownEnum {
                    field: "event type",
                    value: t as i32,
                });
            }
        })
    }
}

impl TryFrom<&pb::SubscribeEventsRequest> for EventFilter {
    type Error = ConversionError;

    fn try_from(r: &pb::SubscribeEventsRequest) -> Converted<EventFilter> {
        Ok(EventFilter {
            container_ids: r.container_ids.clone(),
            kinds: r
                .types
                .iter()
                .map(|t| EventKind::try_from(known::<pb::EventType>(*t, "event type")?))
                .collect::<Converted<_>>()?,
            labels: r.labels.clone().into_iter().collect(),
        })
    }
}

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> pb::Event {
        use pb::event::Details;
        pb::Event {
            sequence: e.sequence,
            time: Some(e.time.into()),
            r#type: pb::EventType::from(e.kind) as i32,
            container_id: e.container_id.clone(),
            exec_id: e.exec_id.clone().unwrap_or_default(),
            agent: String::new(),
            labels: e.labels.clone().into_iter().collect(),
            details: e.details.as_ref().map(|d| match d {
                EventDetails::Exit(exit) => Details::Exit(exit.into()),
                EventDetails::Health {
                    previous,
                    current,
                    failing_streak,
                } => Details::Health(pb::HealthStatusChange {
                    previous: pb::HealthStatus::from(*previous) as i32,
                    current: pb::HealthStatus::from(*current) as i32,
                    failing_streak: *failing_streak,
                }),
                EventDetails::Restart {
                    restart_count,
                    backoff,
                } => Details::Restart(pb::RestartInfo {
                    restart_count: *restart_count,
                    backoff: Some(wire_duration(*backoff)),
                }),
            }),
        }
    }
}

impl From<&ContainerMetrics> for pb::ContainerMetrics {
    fn from(m: &ContainerMetrics) -> pb::ContainerMetrics {
        let interfaces: Vec<pb::NetworkInterfaceMetrics> = m
            .network
            .iter()
            .map(|i| pb::NetworkInterfaceMetrics {
                interface: i.name.clone(),
                rx_bytes: i.rx_bytes,
                rx_packets: i.rx_packets,
                rx_errors: i.rx_errors,
                rx_dropped: i.rx_dropped,
                tx_bytes: i.tx_bytes,
                tx_packets: i.tx_packets,
                tx_errors: i.tx_errors,
                tx_dropped: i.tx_dropped,
            })
            .collect();
        pb::ContainerMetrics {
            container_id: m.container_id.clone(),
            agent: String::new(),
            time: Some(m.time.into()),
            cpu: Some(pb::CpuMetrics {
                usage_total_ns: m.cpu.usage_total_ns,
                usage_user_ns: m.cpu.usage_user_ns,
                usage_system_ns: m.cpu.usage_system_ns,
                periods: m.cpu.periods,
                throttled_periods: m.cpu.throttled_periods,
                throttled_time_ns: m.cpu.throttled_time_ns,
            }),
            memory: Some(pb::MemoryMetrics {
                usage_bytes: m.memory.usage_bytes,
                limit_bytes: m.memory.limit_bytes,
                cache_bytes: m.memory.cache_bytes,
                rss_bytes: m.memory.rss_bytes,
                max_usage_bytes: m.memory.max_usage_bytes,
                oom_kill_count: m.memory.oom_kill_count,
                swap_bytes: m.memory.swap_bytes,
            }),
            network: Some(pb::NetworkMetrics {
                rx_bytes: interfaces.iter().map(|i| i.rx_bytes).sum(),
                tx_bytes: interfaces.iter().map(|i| i.tx_bytes).sum(),
                interfaces,
            }),
            blkio: Some(pb::BlkioMetrics {
                read_bytes: m.blkio.read_bytes,
                write_bytes: m.blkio.write_bytes,
                read_ops: m.blkio.read_ops,
                write_ops: m.blkio.write_ops,
            }),
            pids: Some(pb::PidsMetrics {
                current: m.pids.current,
                limit: m.pids.limit,
            }),
        }
    }
}

impl From<&Orphan> for pb::Orphan {
    fn from(o: &Orphan) -> pb::Orphan {
        pb::Orphan {
            kind: match o.kind {
                OrphanKind::RuntimeState => pb::OrphanKind::RuntimeState,
                OrphanKind::MissingProcess => pb::OrphanKind::MissingProcess,
                OrphanKind::Cgroup => pb::OrphanKind::Cgroup,
                OrphanKind::Mount => pb::OrphanKind::Mount,
                OrphanKind::StateDirectory => pb::OrphanKind::StateDirectory,
                OrphanKind::Network => pb::OrphanKind::Network,
            } as i32,
            container_id: o.container_id.clone(),
            path: o
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            detail: o.detail.clone(),
            agent: String::new(),
        }
    }
}

/// A Pull request as the image store takes it.
pub fn pull_request(r: pb::PullImageRequest) -> Result<crun_shim_images::PullRequest> {
    use crun_shim_images::auth::Credentials;
    let credentials = r.auth.and_then(|a| {
        if !a.registry_token.is_empty() {
            Some(Credentials::Bearer(a.registry_token))
        } else if !a.username.is_empty() {
            Some(Credentials::Basic {
                username: a.username,
                password: a.password,
            })
        } else {
            None
        }
    });
    let platform = match r.platform.as_str() {
        "" => None,
        p => Some(p.parse()?),
    };
    // A malformed reference fails the call itself, before any stream.
    crun_shim_images::reference::parse(&r.reference)?;
    let mirror = (!r.mirror.is_empty()).then_some(r.mirror);
    if let Some(mirror) = &mirror {
        crun_shim_images::reference::check_registry(mirror)?;
    }
    Ok(crun_shim_images::PullRequest {
        reference: r.reference,
        credentials,
        platform,
        mirror,
    })
}

/// A pull's progress; `image` in the last message.
pub fn pull_progress_to_proto(
    p: &crun_shim_images::PullProgress,
    image: Option<&crun_shim_images::Image>,
) -> pb::PullImageProgress {
    use crun_shim_images::LayerState as S;
    pb::PullImageProgress {
        reference: p.reference.clone(),
        layers: p
            .layers
            .iter()
            .map(|l| pb::LayerProgress {
                digest: l.digest.clone(),
                downloaded_bytes: l.downloaded_bytes,
                total_bytes: l.total_bytes,
                state: match l.state {
                    S::Waiting => pb::LayerPullState::Waiting,
                    S::Downloading => pb::LayerPullState::Downloading,
                    S::Verified => pb::LayerPullState::Verified,
                    S::Extracting => pb::LayerPullState::Extracting,
                    S::Done => pb::LayerPullState::Done,
                    S::AlreadyExists => pb::LayerPullState::AlreadyExists,
                } as i32,
            })
            .collect(),
        downloaded_bytes: p.downloaded_bytes(),
        total_bytes: p.total_bytes(),
        image: image.map(image_to_proto),
    }
}

/// An image of the store.
pub fn image_to_proto(i: &crun_shim_images::Image) -> pb::Image {
    let c = &i.config;
    pb::Image {
        id: i.id.clone(),
        references: i.references.clone(),
        digest: i.digest.clone(),
        size: i.size,
        created: i.created.map(Into::into),
        os: i.os.clone(),
        architecture: i.architecture.clone(),
        config: Some(pb::ImageConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c.env.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            exposed_ports: c.exposed_ports.clone(),
            labels: c.labels.clone().into_iter().collect(),
            stop_signal: c.stop_signal.clone(),
        }),
        layers: i.layers.iter().map(|l| l.digest.clone()).collect(),
        agent: String::new(),
        used_by: i.used_by.clone(),
    }
}

/// A published port from the wire.
pub fn port_from_proto(p: pb::PortMapping) -> Converted<PortMapping> {
    Ok(PortMapping {
        host_ip: optional_ip(p.host_ip, "host address")?,
        host_port: port(p.host_port, "host port")?,
        container_port: port(p.container_port, "container port")?,
        protocol: match known(p.protocol, "port protocol")? {
            pb::PortProtocol::Unspecified | pb::PortProtocol::Tcp => Protocol::Tcp,
            pb::PortProtocol::Udp => Protocol::Udp,
        },
    })
}

/// A published port for the wire.
pub fn port_to_proto(p: &PortMapping) -> pb::PortMapping {
    pb::PortMapping {
        host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        host_port: p.host_port.into(),
        container_port: p.container_port.into(),
        protocol: match p.protocol {
            Protocol::Tcp => pb::PortProtocol::Tcp,
            Protocol::Udp => pb::PortProtocol::Udp,
        } as i32,
    }
}

/// DNS settings from the wire.
fn dns_from_proto(d: pb::DnsConfig) -> Converted<DnsConfig> {
    Ok(DnsConfig {
        servers: d
            .servers
            .into_iter()
            .map(|s| ip(s, "DNS server"))
            .collect::<Converted<_>>()?,
        search: d.searches,
        options: d.options,
    })
}

/// A host entry from the wire.
fn host_from_proto(h: pb::HostEntry) -> Converted<HostEntry> {
    Ok(HostEntry {
        ip: ip(h.ip, "host entry address")?,
        name: h.hostname,
    })
}

/// A container's interface for the wire.
pub fn interface_to_proto(i: &InterfaceInfo) -> pb::NetworkInterface {
    pb::NetworkInterface {
        network: i.network.clone(),
        interface: i.ifname.clone(),
        mac_address: i.mac.clone(),
        ip_addresses: i.addresses.iter().map(ToString::to_string).collect(),
        gateway: i.gateway.map(|g| g.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_goes_to_the_wire_and_back() {
        let mut config = ContainerConfig {
            id: "web".into(),
            root: RootSource::Rootfs("/srv/rootfs".into()),
            command: vec!["httpd".into()],
            user: Some("1000".into()),
            restart_policy: RestartPolicy::OnFailure { max_retries: 2 },
            health_check: Some(HealthCheck {
                command: vec!["true".into()],
                interval: Duration::from_millis(250),
                timeout: Duration::ZERO,
                retries: 0,
                start_period: Duration::ZERO,
            }),
            stop_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        config.validate().unwrap();
        let back = ContainerConfig::try_from(pb::ContainerConfig::from(&config)).unwrap();
        assert_eq!(back, config);

        // A bridge's container: mounts for a root, its streams to FIFOs and
        // a logging program.
        let bridged = ContainerConfig {
            id: "ctr".into(),
            root: RootSource::Mounts(vec![RootfsMount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec!["lowerdir=/l".into(), "upperdir=/u".into()],
            }]),
            stdio: StdioConfig::parse(
                "/run/fifo/in",
                "binary:///usr/bin/logger?tag=a%20b",
                "",
                [("K".to_string(), "V".to_string())].into(),
            )
            .unwrap(),
            open_stdin: true,
            ..Default::default()
        };
        let back = ContainerConfig::try_from(pb::ContainerConfig::from(&bridged)).unwrap();
        assert_eq!(back, bridged);
    }

    #[test]
    fn what_the_wire_cannot_say_is_refused_naming_the_field() {
        let no_root = pb::ContainerConfig::default();
        assert_eq!(
            ContainerConfig::try_from(no_root).unwrap_err(),
            ConversionError::Missing("a rootfs path, an image or root filesystem mounts")
        );
        let bad_network = pb::ContainerConfig {
            root: Some(pb::container_config::Root::Image("x".into())),
            network_mode: 99,
            ..Default::default()
        };
        let err = Error::from(ContainerConfig::try_from(bad_network).unwrap_err());
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m == "unknown network mode 99"),
            "{err:?}"
        );
        let negative = pb::ContainerConfig {
            root: Some(pb::container_config::Root::Image("x".into())),
            stop_timeout: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert!(matches!(
            ContainerConfig::try_from(negative),
            Err(ConversionError::Duration {
                field: "stop timeout",
                ..
            })
        ));
        let query = LogQuery::try_from(&pb::LogsRequest {
            since: Some(prost_types::Timestamp {
                seconds: 60,
                nanos: 0,
            }),
            streams: vec![pb::LogStream::Stderr as i32],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (query.since, query.stdout, query.stderr),
            (
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60)),
                false,
                true
            )
        );
        assert!(matches!(
            LogQuery::try_from(&pb::LogsRequest {
                streams: vec![7],
                ..Default::default()
            }),
            Err(ConversionError::UnknownEnum {
                field: "log stream",
                value: 7
            })
        ));
        assert!(statuses(&[pb::ContainerStatus::Unspecified as i32]).is_err());
        assert_eq!(
            statuses(&[pb::ContainerStatus::Paused as i32]).unwrap(),
            [Status::Paused]
        );
    }
}
