//! Conversions between the SDK's types and the generated protobuf types:
//! `From` for what the SDK sends, `TryFrom` with [`ConversionError`] for
//! what the server answers.
//!
//! One policy for times and durations, the agent's too: a value that
//! cannot be represented is refused, naming its field (never shown as the
//! epoch or zero). Durations the SDK sends saturate at the wire's maximum.
//! Enum values this SDK does not know (a newer server's) read as the
//! `Unknown` variants.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;

use crate::container::{
    ContainerConfig, ContainerInfo, ContainerStatus, ExitStatus, Mount, NamespaceSource,
    NetworkMode, ResourceLimits, RestartPolicy, Rlimit, RootSource, RootfsMount, SeccompProfile,
};
use crate::error::Error;
use crate::events::{ContainerEvent, ContainerEventType, EventFilter, HealthChange, RestartInfo};
use crate::exec::{ExecOptions, TerminalSize};
use crate::health::{ContainerHealth, HealthCheck, HealthCheckResult, HealthStatus};
use crate::images::{ImageConfig, ImageInfo, LayerProgress, LayerState, PullProgress};
use crate::logs::{LogChunk, LogOptions, OutputStream};
use crate::metrics::{
    BlkioMetrics, ContainerMetrics, CpuMetrics, InterfaceMetrics, MemoryMetrics, NetworkMetrics,
    PidsMetrics,
};
use crate::network::{
    ContainerNetwork, DnsConfig, HostEntry, NetworkInfo, NetworkInterface, NetworkMember,
    NetworkSubnet, PortMapping, Protocol,
};
use crate::system::{AgentInfo, AgentState, CgroupMode, Info, Orphan, OrphanKind, Version};

/// An answer of the server that does not convert to the SDK's types; as
/// an [`Error`], it is [`Error::Internal`].
///
/// ```
/// use libcrun_shim::{ConversionError, Error};
///
/// let missing = ConversionError::Missing("container.config");
/// assert_eq!(missing.to_string(), "missing container.config");
/// assert!(matches!(Error::from(missing), Error::Internal(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// A field the answer must carry is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A time the system's clock cannot represent.
    #[error("{field}: {seconds} s {nanos} ns is not a valid time")]
    Time {
        /// The field.
        field: &'static str,
        /// Its seconds.
        seconds: i64,
        /// Its nanoseconds.
        nanos: i32,
    },
    /// A negative or out-of-range duration.
    #[error("{field}: {seconds} s {nanos} ns is not a valid duration")]
    Duration {
        /// The field.
        field: &'static str,
        /// Its seconds.
        seconds: i64,
        /// Its nanoseconds.
        nanos: i32,
    },
    /// A text field that does not parse as what it holds (an IP address,
    /// a port).
    #[error("{field}: {value:?} is not valid")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

impl From<ConversionError> for Error {
    fn from(e: ConversionError) -> Error {
        Error::Internal(format!("the server's answer does not convert: {e}"))
    }
}

/// The result of a conversion of the server's answer.
type Converted<T> = Result<T, ConversionError>;

/// A time from the wire.
fn time(t: prost_types::Timestamp, field: &'static str) -> Converted<SystemTime> {
    SystemTime::try_from(t).map_err(|_| ConversionError::Time {
        field,
        seconds: t.seconds,
        nanos: t.nanos,
    })
}

/// An optional time from the wire.
fn optional_time(
    t: Option<prost_types::Timestamp>,
    field: &'static str,
) -> Converted<Option<SystemTime>> {
    t.map(|t| time(t, field)).transpose()
}

/// An optional duration from the wire.
fn optional_duration(
    d: Option<prost_types::Duration>,
    field: &'static str,
) -> Converted<Option<Duration>> {
    d.map(|d| {
        Duration::try_from(d).map_err(|_| ConversionError::Duration {
            field,
            seconds: d.seconds,
            nanos: d.nanos,
        })
    })
    .transpose()
}

/// A duration for the wire, saturating.
pub(crate) fn wire_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// Every item of a list from the wire.
pub(crate) fn all<A, B: TryFrom<A, Error = ConversionError>>(items: Vec<A>) -> Converted<Vec<B>> {
    items.into_iter().map(B::try_from).collect()
}

/// A message a response must carry, converted.
pub(crate) fn required<A, B: TryFrom<A, Error = ConversionError>>(
    item: Option<A>,
    what: &'static str,
) -> Converted<B> {
    item.ok_or(ConversionError::Missing(what))
        .and_then(B::try_from)
}

/// A value of the wire parsed from its text or number, or refused naming
/// its field.
fn parsed<T, V: std::fmt::Display>(
    value: V,
    field: &'static str,
    parse: impl FnOnce(&V) -> Option<T>,
) -> Converted<T> {
    parse(&value).ok_or_else(|| ConversionError::Invalid {
        field,
        value: value.to_string(),
    })
}

/// An IP address of the wire, empty as `None`.
fn optional_ip(s: String, field: &'static str) -> Converted<Option<std::net::IpAddr>> {
    if s.is_empty() {
        return Ok(None);
    }
    parsed(s, field, |s| s.parse().ok()).map(Some)
}

/// A port of the wire.
fn port(p: u32, field: &'static str) -> Converted<u16> {
    parsed(p, field, |p| u16::try_from(*p).ok())
}

/// An empty string as `None`.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The bytes of a message field as text, lossily.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl From<ContainerConfig> for pb::ContainerConfig {
    fn from(config: ContainerConfig) -> pb::ContainerConfig {
        use pb::container_config::Root;
        let (restart_kind, max_retries) = match config.restart_policy {
            RestartPolicy::No => (pb::restart_policy::Kind::No, 0),
            RestartPolicy::OnFailure { max_retries } => {
                (pb::restart_policy::Kind::OnFailure, max_retries)
            }
            RestartPolicy::Always => (pb::restart_policy::Kind::Always, 0),
        };
        let log_config =
            (config.log_max_size.is_some() || config.log_max_files.is_some()).then(|| {
                pb::LogConfig {
                    max_size_bytes: config.log_max_size.unwrap_or_default(),
                    max_files: config.log_max_files.unwrap_or_default(),
                }
            });
        let capabilities = (!config.cap_add.is_empty() || !config.cap_drop.is_empty()).then_some(
            pb::Capabilities {
                add: config.cap_add,
                drop: config.cap_drop,
            },
        );
        pb::ContainerConfig {
            id: config.id,
            root: Some(match config.root {
                RootSource::Rootfs(path) => Root::Rootfs(path.to_string_lossy().into_owned()),
                RootSource::Image(reference) => Root::Image(reference),
                RootSource::Mounts(mounts) => Root::RootfsMounts(pb::RootfsMounts {
                    mounts: mounts.into_iter().map(Into::into).collect(),
                }),
            }),
            command: config.command,
            args: config.args,
            env: config.env,
            working_dir: config.working_dir,
            user: config.user.unwrap_or_default(),
            additional_gids: config.additional_gids,
            hostname: config.hostname.unwrap_or_default(),
            mounts: config.mounts.into_iter().map(Into::into).collect(),
            network_mode: match &config.network {
                NetworkMode::Default => pb::NetworkMode::Unspecified,
                NetworkMode::None => pb::NetworkMode::None,
                NetworkMode::Host => pb::NetworkMode::Host,
                NetworkMode::Bridge => pb::NetworkMode::Bridge,
                NetworkMode::Container(_) => pb::NetworkMode::Container,
            } as i32,
            network_container: match config.network {
                NetworkMode::Container(id) => id,
                _ => String::new(),
            },
            networks: config.networks.into_iter().map(Into::into).collect(),
            ports: config.ports.into_iter().map(Into::into).collect(),
            dns: (!config.dns.is_empty()).then(|| config.dns.into()),
            extra_hosts: config.extra_hosts.into_iter().map(Into::into).collect(),
            resources: Some(config.resources.into()),
            labels: config.labels.into_iter().collect(),
            restart_policy: Some(pb::RestartPolicy {
                kind: restart_kind as i32,
                max_retries,
            }),
            health_check: config.health_check.map(Into::into),
            terminal: config.terminal,
            log_config,
            read_only_rootfs: config.read_only_rootfs,
            rlimits: config
                .rlimits
                .into_iter()
                .map(|r| pb::Rlimit {
                    r#type: r.kind,
                    soft: r.soft,
                    hard: r.hard,
                })
                .collect(),
            capabilities,
            stop_signal: config.stop_signal.unwrap_or_default(),
            stop_timeout: config.stop_timeout.map(wire_duration),
            annotations: config.annotations.into_iter().collect(),
            seccomp: Some(config.seccomp.into()),
            no_new_privileges: config.no_new_privileges,
            oci_spec_json: String::new(),
            stdio: None,
            open_stdin: config.open_stdin,
            ipc: config.ipc.into(),
            uts: config.uts.into(),
            pid: config.pid.into(),
            sysctls: config.sysctls.into_iter().collect(),
            masked_paths: config.masked_paths.map(|paths| pb::PathList { paths }),
            readonly_paths: config.readonly_paths.map(|paths| pb::PathList { paths }),
            auto_remove: config.auto_remove,
        }
    }
}

impl From<RootfsMount> for pb::RootfsMount {
    fn from(m: RootfsMount) -> pb::RootfsMount {
        pb::RootfsMount {
            r#type: m.kind,
            source: m.source,
            options: m.options,
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

impl From<NamespaceSource> for Option<pb::NamespaceSource> {
    fn from(source: NamespaceSource) -> Option<pb::NamespaceSource> {
        use pb::namespace_source::Source;
        let source = match source {
            NamespaceSource::Private => return None,
            NamespaceSource::Host => Source::Host(true),
            NamespaceSource::Container(id) => Source::Container(id),
        };
        Some(pb::NamespaceSource {
            source: Some(source),
        })
    }
}

impl From<Option<pb::NamespaceSource>> for NamespaceSource {
    fn from(source: Option<pb::NamespaceSource>) -> NamespaceSource {
        use pb::namespace_source::Source;
        match source.and_then(|s| s.source) {
            None | Some(Source::Host(false)) => NamespaceSource::Private,
            Some(Source::Host(true)) => NamespaceSource::Host,
            Some(Source::Container(id)) => NamespaceSource::Container(id),
        }
    }
}

impl TryFrom<pb::ContainerConfig> for ContainerConfig {
    type Error = ConversionError;

    fn try_from(c: pb::ContainerConfig) -> Converted<ContainerConfig> {
        use pb::container_config::Root;
        let network = match c.network_mode() {
            pb::NetworkMode::Unspecified => NetworkMode::Default,
            pb::NetworkMode::None => NetworkMode::None,
            pb::NetworkMode::Host => NetworkMode::Host,
            pb::NetworkMode::Bridge => NetworkMode::Bridge,
            pb::NetworkMode::Container => NetworkMode::Container(c.network_container),
        };
        let root = match c.root {
            Some(Root::Rootfs(path)) => RootSource::Rootfs(PathBuf::from(path)),
            Some(Root::Image(image)) => RootSource::Image(image),
            Some(Root::RootfsMounts(m)) => {
                RootSource::Mounts(m.mounts.into_iter().map(Into::into).collect())
            }
            None => return Err(ConversionError::Missing("config.root")),
        };
        let restart_policy = match c.restart_policy {
            Some(p) => match p.kind() {
                pb::restart_policy::Kind::OnFailure => RestartPolicy::OnFailure {
                    max_retries: p.max_retries,
                },
                pb::restart_policy::Kind::Always => RestartPolicy::Always,
                _ => RestartPolicy::No,
            },
            None => RestartPolicy::No,
        };
        let capabilities = c.capabilities.unwrap_or_default();
        Ok(ContainerConfig {
            id: c.id,
            root,
            command: c.command,
            args: c.args,
            env: c.env,
            working_dir: c.working_dir,
            user: non_empty(c.user),
            additional_gids: c.additional_gids,
            hostname: non_empty(c.hostname),
            mounts: c.mounts.into_iter().map(Into::into).collect(),
            network,
            networks: all(c.networks)?,
            ports: all(c.ports)?,
            dns: c
                .dns
                .map(TryInto::try_into)
                .transpose()?
                .unwrap_or_default(),
            extra_hosts: all(c.extra_hosts)?,
            resources: c.resources.map(Into::into).unwrap_or_default(),
            labels: c.labels.into_iter().collect(),
            restart_policy,
            health_check: c.health_check.map(TryInto::try_into).transpose()?,
            terminal: c.terminal,
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
            cap_add: capabilities.add,
            cap_drop: capabilities.drop,
            stop_signal: non_empty(c.stop_signal),
            stop_timeout: optional_duration(c.stop_timeout, "config.stop_timeout")?,
            log_max_size: c.log_config.map(|l| l.max_size_bytes),
            log_max_files: c.log_config.map(|l| l.max_files),
            annotations: c.annotations.into_iter().collect(),
            seccomp: c.seccomp.map(Into::into).unwrap_or_default(),
            no_new_privileges: c.no_new_privileges,
            open_stdin: c.open_stdin,
            ipc: c.ipc.into(),
            uts: c.uts.into(),
            pid: c.pid.into(),
            sysctls: c.sysctls.into_iter().collect(),
            masked_paths: c.masked_paths.map(|l| l.paths),
            readonly_paths: c.readonly_paths.map(|l| l.paths),
            auto_remove: c.auto_remove,
        })
    }
}

impl From<SeccompProfile> for pb::SeccompProfile {
    fn from(profile: SeccompProfile) -> pb::SeccompProfile {
        use pb::seccomp_profile::Kind;
        let (kind, custom_json) = match profile {
            SeccompProfile::Default => (Kind::Default, String::new()),
            SeccompProfile::Unconfined => (Kind::Unconfined, String::new()),
            SeccompProfile::Custom(json) => (Kind::Custom, json),
        };
        pb::SeccompProfile {
            kind: kind as i32,
            custom_json,
        }
    }
}

impl From<pb::SeccompProfile> for SeccompProfile {
    fn from(profile: pb::SeccompProfile) -> SeccompProfile {
        match profile.kind() {
            pb::seccomp_profile::Kind::Unconfined => SeccompProfile::Unconfined,
            pb::seccomp_profile::Kind::Custom => SeccompProfile::Custom(profile.custom_json),
            _ => SeccompProfile::Default,
        }
    }
}

impl From<Mount> for pb::Mount {
    fn from(m: Mount) -> pb::Mount {
        pb::Mount {
            destination: m.destination,
            source: m.source,
            r#type: m.kind,
            options: m.options,
            read_only: m.read_only,
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

impl From<ResourceLimits> for pb::Resources {
    fn from(r: ResourceLimits) -> pb::Resources {
        pb::Resources {
            memory_limit_bytes: r.memory,
            memory_reservation_bytes: r.memory_reservation,
            memory_swap_limit_bytes: r.memory_swap,
            cpu_shares: r.cpu_shares,
            cpu_quota_us: r.cpu_quota,
            cpu_period_us: r.cpu_period,
            cpuset_cpus: r.cpuset_cpus,
            pids_limit: r.pids,
        }
    }
}

impl From<pb::Resources> for ResourceLimits {
    fn from(r: pb::Resources) -> ResourceLimits {
        ResourceLimits {
            memory: r.memory_limit_bytes,
            memory_reservation: r.memory_reservation_bytes,
            memory_swap: r.memory_swap_limit_bytes,
            cpu_shares: r.cpu_shares,
            cpu_quota: r.cpu_quota_us,
            cpu_period: r.cpu_period_us,
            cpuset_cpus: r.cpuset_cpus,
            pids: r.pids_limit,
        }
    }
}

impl From<HealthCheck> for pb::HealthCheck {
    fn from(h: HealthCheck) -> pb::HealthCheck {
        pb::HealthCheck {
            command: h.command,
            interval: h.interval.map(wire_duration),
            timeout: h.timeout.map(wire_duration),
            retries: h.retries.unwrap_or_default(),
            start_period: h.start_period.map(wire_duration),
        }
    }
}

impl TryFrom<pb::HealthCheck> for HealthCheck {
    type Error = ConversionError;

    fn try_from(h: pb::HealthCheck) -> Converted<HealthCheck> {
        Ok(HealthCheck {
            command: h.command,
            interval: optional_duration(h.interval, "health_check.interval")?,
            timeout: optional_duration(h.timeout, "health_check.timeout")?,
            retries: (h.retries != 0).then_some(h.retries),
            start_period: optional_duration(h.start_period, "health_check.start_period")?,
        })
    }
}

impl From<pb::ContainerStatus> for ContainerStatus {
    fn from(status: pb::ContainerStatus) -> ContainerStatus {
        match status {
            pb::ContainerStatus::Created => ContainerStatus::Created,
            pb::ContainerStatus::Running => ContainerStatus::Running,
            pb::ContainerStatus::Paused => ContainerStatus::Paused,
            pb::ContainerStatus::Stopped => ContainerStatus::Stopped,
            pb::ContainerStatus::Unspecified => ContainerStatus::Unknown,
        }
    }
}

impl From<ContainerStatus> for pb::ContainerStatus {
    fn from(status: ContainerStatus) -> pb::ContainerStatus {
        match status {
            ContainerStatus::Created => pb::ContainerStatus::Created,
            ContainerStatus::Running => pb::ContainerStatus::Running,
            ContainerStatus::Paused => pb::ContainerStatus::Paused,
            ContainerStatus::Stopped => pb::ContainerStatus::Stopped,
            ContainerStatus::Unknown => pb::ContainerStatus::Unspecified,
        }
    }
}

impl From<pb::HealthStatus> for HealthStatus {
    fn from(status: pb::HealthStatus) -> HealthStatus {
        match status {
            pb::HealthStatus::Starting => HealthStatus::Starting,
            pb::HealthStatus::Healthy => HealthStatus::Healthy,
            pb::HealthStatus::Unhealthy => HealthStatus::Unhealthy,
            pb::HealthStatus::None | pb::HealthStatus::Unspecified => HealthStatus::None,
        }
    }
}

impl TryFrom<pb::ExitStatus> for ExitStatus {
    type Error = ConversionError;

    fn try_from(e: pb::ExitStatus) -> Converted<ExitStatus> {
        Ok(ExitStatus {
            exit_code: e.exit_code,
            signal: e.signal,
            oom_killed: e.oom_killed,
            finished_at: optional_time(e.finished_at, "exit.finished_at")?,
            unknown: e.unknown,
        })
    }
}

impl TryFrom<pb::Container> for ContainerInfo {
    type Error = ConversionError;

    fn try_from(c: pb::Container) -> Converted<ContainerInfo> {
        Ok(ContainerInfo {
            status: c.status().into(),
            health_status: c.health_status().into(),
            id: c.id,
            agent: c.agent,
            config: required(c.config, "container.config")?,
            pid: c.pid,
            created_at: optional_time(c.created_at, "container.created_at")?,
            started_at: optional_time(c.started_at, "container.started_at")?,
            last_exit: c.last_exit.map(TryInto::try_into).transpose()?,
            restart_count: c.restart_count,
            bundle: c.bundle,
            rootfs_path: c.rootfs_path,
            image_digest: c.image_digest,
            exec_ids: c.exec_ids,
            networks: c.networks.into_iter().map(Into::into).collect(),
            ports: all(c.ports)?,
            netns_path: c.netns_path,
            oci_spec_json: None,
        })
    }
}

impl TryFrom<pb::HealthCheckResult> for HealthCheckResult {
    type Error = ConversionError;

    fn try_from(r: pb::HealthCheckResult) -> Converted<HealthCheckResult> {
        Ok(HealthCheckResult {
            started_at: optional_time(r.started_at, "health result.started_at")?,
            finished_at: optional_time(r.finished_at, "health result.finished_at")?,
            exit_code: r.exit_code,
            output: text(&r.output),
            timed_out: r.timed_out,
        })
    }
}

impl TryFrom<pb::ContainerHealth> for ContainerHealth {
    type Error = ConversionError;

    fn try_from(h: pb::ContainerHealth) -> Converted<ContainerHealth> {
        Ok(ContainerHealth {
            status: h.status().into(),
            container_id: h.container_id,
            failing_streak: h.failing_streak,
            recent_results: all(h.recent_results)?,
            agent: h.agent,
        })
    }
}

impl TryFrom<pb::ContainerMetrics> for ContainerMetrics {
    type Error = ConversionError;

    fn try_from(m: pb::ContainerMetrics) -> Converted<ContainerMetrics> {
        let cpu = m.cpu.unwrap_or_default();
        let memory = m.memory.unwrap_or_default();
        let network = m.network.unwrap_or_default();
        let blkio = m.blkio.unwrap_or_default();
        let pids = m.pids.unwrap_or_default();
        Ok(ContainerMetrics {
            container_id: m.container_id,
            agent: m.agent,
            time: optional_time(m.time, "metrics.time")?,
            cpu: CpuMetrics {
                usage_total: cpu.usage_total_ns,
                usage_user: cpu.usage_user_ns,
                usage_system: cpu.usage_system_ns,
                periods: cpu.periods,
                throttled_periods: cpu.throttled_periods,
                throttled_time: cpu.throttled_time_ns,
            },
            memory: MemoryMetrics {
                usage: memory.usage_bytes,
                limit: memory.limit_bytes,
                cache: memory.cache_bytes,
                rss: memory.rss_bytes,
                max_usage: memory.max_usage_bytes,
                oom_kill_count: memory.oom_kill_count,
                swap: memory.swap_bytes,
            },
            network: NetworkMetrics {
                rx_bytes: network.rx_bytes,
                tx_bytes: network.tx_bytes,
                interfaces: network
                    .interfaces
                    .into_iter()
                    .map(|i| InterfaceMetrics {
                        name: i.interface,
                        rx_bytes: i.rx_bytes,
                        rx_packets: i.rx_packets,
                        rx_errors: i.rx_errors,
                        rx_dropped: i.rx_dropped,
                        tx_bytes: i.tx_bytes,
                        tx_packets: i.tx_packets,
                        tx_errors: i.tx_errors,
                        tx_dropped: i.tx_dropped,
                    })
                    .collect(),
            },
            blkio: BlkioMetrics {
                read_bytes: blkio.read_bytes,
                write_bytes: blkio.write_bytes,
                read_ops: blkio.read_ops,
                write_ops: blkio.write_ops,
            },
            pids: PidsMetrics {
                current: pids.current,
                limit: pids.limit,
            },
        })
    }
}

/// The SDK's event kinds, and the protocol's, side by side.
const EVENT_TYPES: [(ContainerEventType, pb::EventType); 11] = [
    (ContainerEventType::Create, pb::EventType::Create),
    (ContainerEventType::Start, pb::EventType::Start),
    (ContainerEventType::ExecAdded, pb::EventType::ExecAdded),
    (ContainerEventType::ExecStarted, pb::EventType::ExecStarted),
    (ContainerEventType::Exit, pb::EventType::Exit),
    (ContainerEventType::Oom, pb::EventType::Oom),
    (ContainerEventType::Pause, pb::EventType::Pause),
    (ContainerEventType::Resume, pb::EventType::Resume),
    (ContainerEventType::Delete, pb::EventType::Delete),
    (
        ContainerEventType::HealthStatus,
        pb::EventType::HealthStatus,
    ),
    (ContainerEventType::Restart, pb::EventType::Restart),
];

impl TryFrom<pb::Event> for ContainerEvent {
    type Error = ConversionError;

    fn try_from(e: pb::Event) -> Converted<ContainerEvent> {
        use pb::event::Details;
        let event_type = EVENT_TYPES
            .iter()
            .find(|(_, p)| *p as i32 == e.r#type)
            .map_or(ContainerEventType::Unknown, |(t, _)| *t);
        let (mut exit, mut health, mut restart) = (None, None, None);
        match e.details {
            Some(Details::Exit(x)) => exit = Some(ExitStatus::try_from(x)?),
            Some(Details::Health(h)) => {
                health = Some(HealthChange {
                    previous: h.previous().into(),
                    current: h.current().into(),
                    failing_streak: h.failing_streak,
                })
            }
            Some(Details::Restart(r)) => {
                restart = Some(RestartInfo {
                    restart_count: r.restart_count,
                    backoff: optional_duration(r.backoff, "restart.backoff")?.unwrap_or_default(),
                })
            }
            None => {}
        }
        Ok(ContainerEvent {
            sequence: e.sequence,
            time: optional_time(e.time, "event.time")?,
            event_type,
            container_id: e.container_id,
            exec_id: non_empty(e.exec_id),
            agent: e.agent,
            labels: e.labels.into_iter().collect(),
            exit_code: exit.as_ref().map(|e: &ExitStatus| e.exit_code),
            exit,
            health,
            restart,
        })
    }
}

impl From<EventFilter> for pb::SubscribeEventsRequest {
    fn from(filter: EventFilter) -> pb::SubscribeEventsRequest {
        pb::SubscribeEventsRequest {
            since_sequence: filter.since,
            agent_cursors: Vec::new(),
            container_ids: filter.container_ids,
            types: filter
                .types
                .iter()
                .map(|t| {
                    EVENT_TYPES
                        .iter()
                        .find(|(s, _)| s == t)
                        .map_or(pb::EventType::Unspecified, |(_, p)| *p) as i32
                })
                .collect(),
            labels: filter.labels.into_iter().collect(),
        }
    }
}

impl From<LogOptions> for pb::LogsRequest {
    /// The Logs request of `options`, for no container yet.
    fn from(options: LogOptions) -> pb::LogsRequest {
        pb::LogsRequest {
            container_id: String::new(),
            follow: options.follow,
            tail: options.tail,
            since: options.since.map(Into::into),
            until: options.until.map(Into::into),
            timestamps: options.timestamps,
            streams: options
                .stream
                .map(|s| pb::LogStream::from(s) as i32)
                .into_iter()
                .collect(),
            // Merged lines cost every hop far less than one entry per
            // line; the SDK splits them again (`LogChunk::lines`).
            merge_lines: true,
        }
    }
}

impl From<OutputStream> for pb::LogStream {
    fn from(stream: OutputStream) -> pb::LogStream {
        match stream {
            OutputStream::Stdout => pb::LogStream::Stdout,
            OutputStream::Stderr => pb::LogStream::Stderr,
        }
    }
}

impl TryFrom<pb::LogEntry> for LogChunk {
    type Error = ConversionError;

    fn try_from(e: pb::LogEntry) -> Converted<LogChunk> {
        Ok(LogChunk {
            stream: match e.stream() {
                pb::LogStream::Stderr => OutputStream::Stderr,
                _ => OutputStream::Stdout,
            },
            time: optional_time(e.time, "log entry.time")?,
            data: e.data,
            partial: e.partial,
        })
    }
}

impl From<TerminalSize> for pb::TerminalSize {
    fn from(size: TerminalSize) -> pb::TerminalSize {
        pb::TerminalSize {
            rows: size.rows.into(),
            cols: size.cols.into(),
        }
    }
}

impl From<&ExecOptions> for pb::ProcessSpec {
    /// The process of an exec.
    fn from(options: &ExecOptions) -> pb::ProcessSpec {
        pb::ProcessSpec {
            command: options.command.clone(),
            env: options.env.clone(),
            working_dir: options.working_dir.clone(),
            user: options.user.clone().unwrap_or_default(),
            tty: options.tty,
        }
    }
}

impl From<pb::VersionResponse> for Version {
    fn from(v: pb::VersionResponse) -> Version {
        Version {
            component: v.component,
            version: v.version,
            api_version: v.api_version,
            git_commit: v.git_commit,
            libcrun_version: v.libcrun_version,
        }
    }
}

impl TryFrom<pb::AgentInfo> for AgentInfo {
    type Error = ConversionError;

    fn try_from(a: pb::AgentInfo) -> Converted<AgentInfo> {
        Ok(AgentInfo {
            state: match a.state() {
                pb::AgentState::Ready => AgentState::Ready,
                pb::AgentState::Connecting => AgentState::Connecting,
                pb::AgentState::Unavailable => AgentState::Unavailable,
                pb::AgentState::Unspecified => AgentState::Unknown,
            },
            cgroup_mode: match a.cgroup_mode() {
                pb::CgroupMode::V1 => CgroupMode::V1,
                pb::CgroupMode::Hybrid => CgroupMode::Hybrid,
                pb::CgroupMode::V2 => CgroupMode::V2,
                pb::CgroupMode::Unspecified => CgroupMode::Unknown,
            },
            started_at: optional_time(a.started_at, "agent.started_at")?,
            name: a.name,
            endpoint: a.endpoint,
            version: a.version,
            libcrun_version: a.libcrun_version,
            kernel_version: a.kernel_version,
            cpus: a.cpus,
            memory_bytes: a.memory_bytes,
            containers: a.containers,
            containers_running: a.containers_running,
            images: a.images,
            root_dir: a.root_dir,
            last_error: a.last_error,
            last_event_sequence: a.last_event_sequence,
        })
    }
}

impl TryFrom<pb::InfoResponse> for Info {
    type Error = ConversionError;

    fn try_from(i: pb::InfoResponse) -> Converted<Info> {
        Ok(Info {
            component: i.component,
            version: i.version,
            agents: all(i.agents)?,
        })
    }
}

impl From<pb::Orphan> for Orphan {
    fn from(o: pb::Orphan) -> Orphan {
        Orphan {
            kind: match o.kind() {
                pb::OrphanKind::RuntimeState => OrphanKind::RuntimeState,
                pb::OrphanKind::MissingProcess => OrphanKind::MissingProcess,
                pb::OrphanKind::Cgroup => OrphanKind::Cgroup,
                pb::OrphanKind::Mount => OrphanKind::Mount,
                pb::OrphanKind::StateDirectory => OrphanKind::StateDirectory,
                pb::OrphanKind::Network => OrphanKind::Network,
                pb::OrphanKind::Unspecified => OrphanKind::Unknown,
            },
            container_id: o.container_id,
            path: o.path,
            detail: o.detail,
            agent: o.agent,
        }
    }
}

impl TryFrom<pb::Image> for ImageInfo {
    type Error = ConversionError;

    fn try_from(i: pb::Image) -> Converted<ImageInfo> {
        let config = i.config.unwrap_or_default();
        Ok(ImageInfo {
            id: i.id,
            references: i.references,
            digest: i.digest,
            size: i.size,
            created: optional_time(i.created, "image.created")?,
            os: i.os,
            architecture: i.architecture,
            config: ImageConfig {
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                env: config.env,
                working_dir: config.working_dir,
                user: config.user,
                exposed_ports: config.exposed_ports,
                labels: config.labels.into_iter().collect(),
                stop_signal: config.stop_signal,
            },
            layers: i.layers,
            agent: i.agent,
            used_by: i.used_by,
        })
    }
}

impl From<pb::PullImageProgress> for PullProgress {
    fn from(p: pb::PullImageProgress) -> PullProgress {
        PullProgress {
            reference: p.reference,
            layers: p
                .layers
                .into_iter()
                .map(|l| LayerProgress {
                    state: match l.state() {
                        pb::LayerPullState::Waiting => LayerState::Waiting,
                        pb::LayerPullState::Downloading => LayerState::Downloading,
                        pb::LayerPullState::Verified => LayerState::Verified,
                        pb::LayerPullState::Extracting => LayerState::Extracting,
                        pb::LayerPullState::Done => LayerState::Done,
                        pb::LayerPullState::AlreadyExists => LayerState::AlreadyExists,
                        pb::LayerPullState::Unspecified => LayerState::Unknown,
                    },
                    digest: l.digest,
                    downloaded_bytes: l.downloaded_bytes,
                    total_bytes: l.total_bytes,
                })
                .collect(),
            downloaded_bytes: p.downloaded_bytes,
            total_bytes: p.total_bytes,
        }
    }
}

impl From<ContainerNetwork> for pb::ContainerNetwork {
    fn from(n: ContainerNetwork) -> pb::ContainerNetwork {
        pb::ContainerNetwork {
            name: n.name,
            ip_address: n.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            aliases: n.aliases,
        }
    }
}

impl TryFrom<pb::ContainerNetwork> for ContainerNetwork {
    type Error = ConversionError;

    fn try_from(n: pb::ContainerNetwork) -> Converted<ContainerNetwork> {
        Ok(ContainerNetwork {
            name: n.name,
            ip: optional_ip(n.ip_address, "network.ip_address")?,
            aliases: n.aliases,
        })
    }
}

impl From<PortMapping> for pb::PortMapping {
    fn from(p: PortMapping) -> pb::PortMapping {
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
}

impl TryFrom<pb::PortMapping> for PortMapping {
    type Error = ConversionError;

    fn try_from(p: pb::PortMapping) -> Converted<PortMapping> {
        Ok(PortMapping {
            protocol: match p.protocol() {
                pb::PortProtocol::Udp => Protocol::Udp,
                pb::PortProtocol::Tcp | pb::PortProtocol::Unspecified => Protocol::Tcp,
            },
            host_ip: optional_ip(p.host_ip, "port.host_ip")?,
            host_port: port(p.host_port, "port.host_port")?,
            container_port: port(p.container_port, "port.container_port")?,
        })
    }
}

impl From<DnsConfig> for pb::DnsConfig {
    fn from(d: DnsConfig) -> pb::DnsConfig {
        pb::DnsConfig {
            servers: d.servers.iter().map(ToString::to_string).collect(),
            searches: d.searches,
            options: d.options,
        }
    }
}

impl TryFrom<pb::DnsConfig> for DnsConfig {
    type Error = ConversionError;

    fn try_from(d: pb::DnsConfig) -> Converted<DnsConfig> {
        Ok(DnsConfig {
            servers: d
                .servers
                .into_iter()
                .map(|s| parsed(s, "dns.servers", |s| s.parse().ok()))
                .collect::<Converted<_>>()?,
            searches: d.searches,
            options: d.options,
        })
    }
}

impl From<HostEntry> for pb::HostEntry {
    fn from(h: HostEntry) -> pb::HostEntry {
        pb::HostEntry {
            hostname: h.hostname,
            ip: h.ip.to_string(),
        }
    }
}

impl TryFrom<pb::HostEntry> for HostEntry {
    type Error = ConversionError;

    fn try_from(h: pb::HostEntry) -> Converted<HostEntry> {
        Ok(HostEntry {
            ip: parsed(h.ip, "extra_hosts.ip", |s| s.parse().ok())?,
            hostname: h.hostname,
        })
    }
}

impl From<pb::NetworkInterface> for NetworkInterface {
    fn from(i: pb::NetworkInterface) -> NetworkInterface {
        NetworkInterface {
            network: i.network,
            interface: i.interface,
            mac_address: i.mac_address,
            ip_addresses: i.ip_addresses,
            gateway: non_empty(i.gateway),
        }
    }
}

impl From<pb::Network> for NetworkInfo {
    fn from(n: pb::Network) -> NetworkInfo {
        NetworkInfo {
            name: n.name,
            agent: n.agent,
            driver: n.driver,
            bridge: non_empty(n.bridge),
            subnets: n
                .subnets
                .into_iter()
                .map(|s| NetworkSubnet {
                    subnet: s.subnet,
                    gateway: non_empty(s.gateway),
                })
                .collect(),
            internal: n.internal,
            ip_masquerade: n.ip_masquerade,
            is_default: n.is_default,
            labels: n.labels.into_iter().collect(),
            plugins: n.plugins,
            config_path: n.config_path,
            config_json: n.config_json,
            members: n
                .members
                .into_iter()
                .map(|m| NetworkMember {
                    container_id: m.container_id,
                    interface: m.interface.map(Into::into),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_goes_there_and_back() {
        let config = ContainerConfig {
            id: "web".into(),
            root: RootSource::Rootfs("/srv/rootfs".into()),
            command: vec!["httpd".into()],
            user: Some("1000:1000".into()),
            restart_policy: RestartPolicy::OnFailure { max_retries: 2 },
            health_check: Some(HealthCheck {
                command: vec!["true".into()],
                interval: Some(Duration::from_millis(250)),
                ..Default::default()
            }),
            resources: ResourceLimits {
                memory: Some(1 << 26),
                ..Default::default()
            }
            .with_cpus(0.5),
            stop_timeout: Some(Duration::from_secs(3)),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let back = ContainerConfig::try_from(pb::ContainerConfig::from(config.clone())).unwrap();
        assert_eq!(back, config);
        let image = ContainerConfig {
            root: RootSource::Image("alpine".into()),
            ..config
        };
        let back = ContainerConfig::try_from(pb::ContainerConfig::from(image.clone())).unwrap();
        assert_eq!(back.root, image.root);
    }

    #[test]
    fn an_answer_out_of_range_is_refused_naming_the_field() {
        let answer = pb::Container {
            config: Some(pb::ContainerConfig {
                root: Some(pb::container_config::Root::Image("x".into())),
                stop_timeout: Some(prost_types::Duration {
                    seconds: -3,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = ContainerInfo::try_from(answer).unwrap_err();
        assert!(
            matches!(
                err,
                ConversionError::Duration {
                    field: "config.stop_timeout",
                    seconds: -3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            matches!(Error::from(err), Error::Internal(m) if m.contains("config.stop_timeout")),
        );
        assert_eq!(
            ContainerInfo::try_from(pb::Container::default()).unwrap_err(),
            ConversionError::Missing("container.config")
        );
    }

    #[test]
    fn every_event_type_has_its_protocol_twin() {
        for t in ContainerEventType::ALL {
            assert!(EVENT_TYPES.iter().any(|(s, _)| *s == t), "{t}");
        }
    }
}
