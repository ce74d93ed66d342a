//! Conversions between the protocol's messages and the runtime's types.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;

use crate::error::{Error, Result};
use crate::logs::{LogEntry, LogQuery, Stream};
use crate::model::{
    CapabilityChanges, ContainerConfig, ContainerMetrics, Event, EventDetails, EventFilter,
    EventKind, ExitStatus, HealthCheck, HealthState, HealthStatus, LogConfig, Mount, NetworkMode,
    Orphan, OrphanKind, ProcessSpec, Resources, RestartPolicy, Rlimit, RootSource, Seccomp, Status,
};
use crate::spec;
use crate::store::Record;

/// A timestamp for the wire.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    t.into()
}

/// A timestamp from the wire.
pub fn system_time(t: &prost_types::Timestamp, what: &str) -> Result<SystemTime> {
    SystemTime::try_from(*t).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

/// A duration from the wire (negative ones are refused).
pub fn duration(d: &prost_types::Duration, what: &str) -> Result<Duration> {
    Duration::try_from(*d)
        .map_err(|_| Error::InvalidArgument(format!("{what}: invalid or negative duration {d}")))
}

/// An optional duration from the wire.
pub fn optional_duration(
    d: Option<&prost_types::Duration>,
    what: &str,
) -> Result<Option<Duration>> {
    d.map(|d| duration(d, what)).transpose()
}

fn duration_or(
    d: Option<&prost_types::Duration>,
    what: &str,
    default: Duration,
) -> Result<Duration> {
    d.map_or(Ok(default), |d| duration(d, what))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A container's configuration from a Create request.
pub fn config_from_proto(c: pb::ContainerConfig) -> Result<ContainerConfig> {
    use pb::container_config::Root;
    let root = match c.root {
        Some(Root::Rootfs(path)) => RootSource::Rootfs(PathBuf::from(path)),
        Some(Root::Image(reference)) if !reference.is_empty() => RootSource::Image(reference),
        _ => {
            return Err(Error::InvalidArgument(
                "a rootfs path or an image is required".into(),
            ));
        }
    };
    let network = match pb::NetworkMode::try_from(c.network_mode) {
        Ok(pb::NetworkMode::Unspecified | pb::NetworkMode::None) => NetworkMode::None,
        Ok(pb::NetworkMode::Host) => NetworkMode::Host,
        Err(_) => {
            return Err(Error::InvalidArgument(format!(
                "unknown network mode {}",
                c.network_mode
            )));
        }
    };
    let restart_policy = match c.restart_policy {
        None => RestartPolicy::No,
        Some(p) => match pb::restart_policy::Kind::try_from(p.kind) {
            Ok(pb::restart_policy::Kind::Unspecified | pb::restart_policy::Kind::No) => {
                RestartPolicy::No
            }
            Ok(pb::restart_policy::Kind::OnFailure) => RestartPolicy::OnFailure {
                max_retries: p.max_retries,
            },
            Ok(pb::restart_policy::Kind::Always) => RestartPolicy::Always,
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown restart policy {}",
                    p.kind
                )));
            }
        },
    };
    let health_check = c
        .health_check
        .map(|h| -> Result<HealthCheck> {
            if h.command.is_empty() {
                return Err(Error::InvalidArgument(
                    "health check command is empty".into(),
                ));
            }
            Ok(HealthCheck {
                command: h.command,
                interval: duration_or(
                    h.interval.as_ref(),
                    "health check interval",
                    Duration::from_secs(30),
                )?,
                timeout: duration_or(
                    h.timeout.as_ref(),
                    "health check timeout",
                    Duration::from_secs(30),
                )?,
                retries: if h.retries == 0 { 3 } else { h.retries },
                start_period: duration_or(
                    h.start_period.as_ref(),
                    "health check start period",
                    Duration::ZERO,
                )?,
            })
        })
        .transpose()?;
    let defaults = LogConfig::default();
    let log = c.log_config.map_or(defaults, |l| LogConfig {
        max_size_bytes: if l.max_size_bytes == 0 {
            defaults.max_size_bytes
        } else {
            l.max_size_bytes
        },
        max_files: if l.max_files == 0 {
            defaults.max_files
        } else {
            l.max_files
        },
    });
    let rlimits = c
        .rlimits
        .into_iter()
        .map(|r| {
            Ok(Rlimit {
                kind: spec::normalize_rlimit(&r.r#type)?,
                soft: r.soft,
                hard: r.hard,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let caps = c.capabilities.unwrap_or_default();
    let normalize = |v: Vec<String>| {
        v.iter()
            .map(|n| spec::normalize_capability(n))
            .collect::<Result<Vec<_>>>()
    };
    let stop_signal = non_empty(c.stop_signal);
    if let Some(s) = &stop_signal {
        spec::signal::parse(s)?;
    }
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
        mounts: c
            .mounts
            .into_iter()
            .map(|m| Mount {
                destination: m.destination,
                source: m.source,
                kind: m.r#type,
                options: m.options,
                read_only: m.read_only,
            })
            .collect(),
        network,
        resources: c.resources.map(resources_from_proto).unwrap_or_default(),
        labels: c.labels.into_iter().collect(),
        restart_policy,
        health_check,
        terminal: c.terminal,
        log,
        read_only_rootfs: c.read_only_rootfs,
        rlimits,
        capabilities: CapabilityChanges {
            add: normalize(caps.add)?,
            drop: normalize(caps.drop)?,
        },
        stop_signal,
        stop_timeout: c
            .stop_timeout
            .as_ref()
            .map(|d| duration(d, "stop timeout"))
            .transpose()?,
        annotations: c.annotations.into_iter().collect(),
        seccomp: seccomp_from_proto(c.seccomp)?,
        no_new_privileges: c.no_new_privileges,
    })
}

/// A seccomp choice from the wire.
fn seccomp_from_proto(s: Option<pb::SeccompProfile>) -> Result<Seccomp> {
    use pb::seccomp_profile::Kind;
    let Some(s) = s else {
        return Ok(Seccomp::Default);
    };
    match Kind::try_from(s.kind) {
        Ok(Kind::Unspecified | Kind::Default) => Ok(Seccomp::Default),
        Ok(Kind::Unconfined) => Ok(Seccomp::Unconfined),
        Ok(Kind::Custom) if !s.custom_json.is_empty() => Ok(Seccomp::Custom(s.custom_json)),
        Ok(Kind::Custom) => Err(Error::InvalidArgument(
            "seccomp: KIND_CUSTOM needs custom_json".into(),
        )),
        Err(_) => Err(Error::InvalidArgument(format!(
            "unknown seccomp profile kind {}",
            s.kind
        ))),
    }
}

/// Resource limits from the wire.
pub fn resources_from_proto(r: pb::Resources) -> Resources {
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

fn resources_to_proto(r: &Resources) -> pb::Resources {
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

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// A configuration for the wire (as Inspect returns it).
pub fn config_to_proto(c: &ContainerConfig) -> pb::ContainerConfig {
    use pb::container_config::Root;
    pb::ContainerConfig {
        id: c.id.clone(),
        root: Some(match &c.root {
            RootSource::Rootfs(p) => Root::Rootfs(p.display().to_string()),
            RootSource::Image(r) => Root::Image(r.clone()),
        }),
        command: c.command.clone(),
        args: c.args.clone(),
        env: c.env.clone(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        user: c.user.clone().unwrap_or_default(),
        additional_gids: c.additional_gids.clone(),
        hostname: c.hostname.clone().unwrap_or_default(),
        mounts: c
            .mounts
            .iter()
            .map(|m| pb::Mount {
                destination: m.destination.clone(),
                source: m.source.clone(),
                r#type: m.kind.clone(),
                options: m.options.clone(),
                read_only: m.read_only,
            })
            .collect(),
        network_mode: match c.network {
            NetworkMode::None => pb::NetworkMode::None,
            NetworkMode::Host => pb::NetworkMode::Host,
        } as i32,
        resources: Some(resources_to_proto(&c.resources)),
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
            interval: Some(proto_duration(h.interval)),
            timeout: Some(proto_duration(h.timeout)),
            retries: h.retries,
            start_period: Some(proto_duration(h.start_period)),
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
        stop_timeout: c.stop_timeout.map(proto_duration),
        annotations: c.annotations.clone().into_iter().collect(),
        seccomp: Some(match &c.seccomp {
            Seccomp::Default => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Default as i32,
                custom_json: String::new(),
            },
            Seccomp::Unconfined => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Unconfined as i32,
                custom_json: String::new(),
            },
            Seccomp::Custom(json) => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Custom as i32,
                custom_json: json.clone(),
            },
        }),
        no_new_privileges: c.no_new_privileges,
    }
}

/// A status for the wire.
pub fn status_to_proto(s: Status) -> pb::ContainerStatus {
    match s {
        Status::Created => pb::ContainerStatus::Created,
        Status::Running => pb::ContainerStatus::Running,
        Status::Paused => pb::ContainerStatus::Paused,
        Status::Stopped => pb::ContainerStatus::Stopped,
    }
}

/// A status from a filter.
pub fn status_from_proto(s: i32) -> Result<Status> {
    match pb::ContainerStatus::try_from(s) {
        Ok(pb::ContainerStatus::Created) => Ok(Status::Created),
        Ok(pb::ContainerStatus::Running) => Ok(Status::Running),
        Ok(pb::ContainerStatus::Paused) => Ok(Status::Paused),
        Ok(pb::ContainerStatus::Stopped) => Ok(Status::Stopped),
        _ => Err(Error::InvalidArgument(format!(
            "unknown container status {s}"
        ))),
    }
}

/// An exit status for the wire.
pub fn exit_to_proto(e: &ExitStatus) -> pb::ExitStatus {
    pb::ExitStatus {
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        finished_at: Some(timestamp(e.finished_at)),
    }
}

/// A container for the wire.
pub fn container_to_proto(r: &Record, exec_ids: Vec<String>) -> pb::Container {
    pb::Container {
        id: r.config.id.clone(),
        agent: String::new(),
        status: status_to_proto(r.status) as i32,
        config: Some(config_to_proto(&r.config)),
        pid: u32::try_from(r.pid).unwrap_or(0),
        created_at: Some(timestamp(r.created_at)),
        started_at: r.started_at.map(timestamp),
        last_exit: r.last_exit.as_ref().map(exit_to_proto),
        restart_count: r.restart_count,
        health_status: health_status_to_proto(r.health.status) as i32,
        bundle: String::new(),
        rootfs_path: r.rootfs_path.display().to_string(),
        image_digest: r.image_digest.clone().unwrap_or_default(),
        exec_ids,
    }
}

/// An exec process from the wire.
pub fn process_from_proto(p: Option<pb::ProcessSpec>) -> Result<ProcessSpec> {
    let p = p.ok_or_else(|| Error::InvalidArgument("process is required".into()))?;
    Ok(ProcessSpec {
        command: p.command,
        env: p.env,
        working_dir: non_empty(p.working_dir),
        user: non_empty(p.user),
        tty: p.tty,
    })
}

/// A log query from the wire.
pub fn log_query(r: &pb::LogsRequest) -> Result<LogQuery> {
    let mut stdout = r.streams.is_empty();
    let mut stderr = r.streams.is_empty();
    for s in &r.streams {
        match pb::LogStream::try_from(*s) {
            Ok(pb::LogStream::Stdout) => stdout = true,
            Ok(pb::LogStream::Stderr) => stderr = true,
            Ok(pb::LogStream::Unspecified) => {
                stdout = true;
                stderr = true;
            }
            Err(_) => return Err(Error::InvalidArgument(format!("unknown log stream {s}"))),
        }
    }
    Ok(LogQuery {
        follow: r.follow,
        tail: r.tail,
        since: r
            .since
            .as_ref()
            .map(|t| system_time(t, "since"))
            .transpose()?,
        until: r
            .until
            .as_ref()
            .map(|t| system_time(t, "until"))
            .transpose()?,
        stdout,
        stderr,
    })
}

/// A log entry for the wire.
pub fn log_entry_to_proto(e: LogEntry, timestamps: bool) -> pb::LogEntry {
    pb::LogEntry {
        time: timestamps.then(|| timestamp(e.time)),
        stream: match e.stream {
            Stream::Stdout => pb::LogStream::Stdout,
            Stream::Stderr => pb::LogStream::Stderr,
        } as i32,
        data: e.data,
        partial: e.partial,
    }
}

/// A health status for the wire.
pub fn health_status_to_proto(s: HealthStatus) -> pb::HealthStatus {
    match s {
        HealthStatus::None => pb::HealthStatus::None,
        HealthStatus::Starting => pb::HealthStatus::Starting,
        HealthStatus::Healthy => pb::HealthStatus::Healthy,
        HealthStatus::Unhealthy => pb::HealthStatus::Unhealthy,
    }
}

/// A container's health for the wire.
pub fn health_to_proto(container_id: &str, h: &HealthState) -> pb::ContainerHealth {
    pb::ContainerHealth {
        container_id: container_id.to_string(),
        status: health_status_to_proto(h.status) as i32,
        failing_streak: h.failing_streak,
        recent_results: h
            .recent
            .iter()
            .map(|r| pb::HealthCheckResult {
                started_at: Some(timestamp(r.started_at)),
                finished_at: Some(timestamp(r.finished_at)),
                exit_code: r.exit_code,
                output: r.output.clone().into(),
                timed_out: r.timed_out,
            })
            .collect(),
        agent: String::new(),
    }
}

/// An event kind for the wire.
pub fn event_kind_to_proto(k: EventKind) -> pb::EventType {
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

/// An event kind from a filter.
pub fn event_kind_from_proto(t: i32) -> Result<EventKind> {
    use pb::EventType as T;
    Ok(match T::try_from(t) {
        Ok(T::Create) => EventKind::Create,
        Ok(T::Start) => EventKind::Start,
        Ok(T::ExecAdded) => EventKind::ExecAdded,
        Ok(T::ExecStarted) => EventKind::ExecStarted,
        Ok(T::Exit) => EventKind::Exit,
        Ok(T::Oom) => EventKind::Oom,
        Ok(T::Pause) => EventKind::Pause,
        Ok(T::Resume) => EventKind::Resume,
        Ok(T::Delete) => EventKind::Delete,
        Ok(T::HealthStatus) => EventKind::HealthStatus,
        Ok(T::Restart) => EventKind::Restart,
        _ => return Err(Error::InvalidArgument(format!("unknown event type {t}"))),
    })
}

/// An event filter from a Subscribe request.
pub fn event_filter(r: &pb::SubscribeEventsRequest) -> Result<EventFilter> {
    Ok(EventFilter {
        container_ids: r.container_ids.clone(),
        kinds: r
            .types
            .iter()
            .map(|t| event_kind_from_proto(*t))
            .collect::<Result<_>>()?,
        labels: r.labels.clone().into_iter().collect(),
    })
}

/// An event for the wire.
pub fn event_to_proto(e: &Event) -> pb::Event {
    use pb::event::Details;
    pb::Event {
        sequence: e.sequence,
        time: Some(timestamp(e.time)),
        r#type: event_kind_to_proto(e.kind) as i32,
        container_id: e.container_id.clone(),
        exec_id: e.exec_id.clone().unwrap_or_default(),
        agent: String::new(),
        labels: e.labels.clone().into_iter().collect(),
        details: e.details.as_ref().map(|d| match d {
            EventDetails::Exit(exit) => Details::Exit(exit_to_proto(exit)),
            EventDetails::Health {
                previous,
                current,
                failing_streak,
            } => Details::Health(pb::HealthStatusChange {
                previous: health_status_to_proto(*previous) as i32,
                current: health_status_to_proto(*current) as i32,
                failing_streak: *failing_streak,
            }),
            EventDetails::Restart {
                restart_count,
                backoff,
            } => Details::Restart(pb::RestartInfo {
                restart_count: *restart_count,
                backoff: Some(proto_duration(*backoff)),
            }),
        }),
    }
}

/// Metrics for the wire.
pub fn metrics_to_proto(m: &ContainerMetrics) -> pb::ContainerMetrics {
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
        time: Some(timestamp(m.time)),
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

/// An orphan for the wire.
pub fn orphan_to_proto(o: &Orphan) -> pb::Orphan {
    pb::Orphan {
        kind: match o.kind {
            OrphanKind::RuntimeState => pb::OrphanKind::RuntimeState,
            OrphanKind::MissingProcess => pb::OrphanKind::MissingProcess,
            OrphanKind::Cgroup => pb::OrphanKind::Cgroup,
            OrphanKind::Mount => pb::OrphanKind::Mount,
            OrphanKind::StateDirectory => pb::OrphanKind::StateDirectory,
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
    Ok(crun_shim_images::PullRequest {
        reference: r.reference,
        credentials,
        platform,
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
        created: i.created.map(timestamp),
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
