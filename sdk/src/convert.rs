//! Conversions between the SDK's types and the generated protobuf types:
//! the only place that knows both. Private traits, so that no generated
//! type shows in the public API (not even in trait impls).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;

use crate::container::{
    ContainerConfig, ContainerInfo, ContainerStatus, ExitStatus, Mount, NetworkMode,
    ResourceLimits, RestartPolicy, Rlimit, SeccompProfile,
};
use crate::error::{Error, Result};
use crate::events::{ContainerEvent, ContainerEventType, EventFilter, HealthChange, RestartInfo};
use crate::exec::{ExecOptions, TerminalSize};
use crate::health::{ContainerHealth, HealthCheck, HealthCheckResult, HealthStatus};
use crate::images::{ImageConfig, ImageInfo, LayerProgress, LayerState, PullProgress};
use crate::logs::{LogChunk, LogOptions, OutputStream};
use crate::metrics::{
    BlkioMetrics, ContainerMetrics, CpuMetrics, InterfaceMetrics, MemoryMetrics, NetworkMetrics,
    PidsMetrics,
};
use crate::system::{AgentInfo, AgentState, CgroupMode, Info, Orphan, OrphanKind, Version};

/// A generated type into the SDK's.
pub(crate) trait IntoSdk<T> {
    fn into_sdk(self) -> T;
}

/// An SDK type into the generated one.
pub(crate) trait IntoProto<T> {
    fn into_proto(self) -> T;
}

impl<A: IntoSdk<B>, B> IntoSdk<Vec<B>> for Vec<A> {
    fn into_sdk(self) -> Vec<B> {
        self.into_iter().map(IntoSdk::into_sdk).collect()
    }
}

impl<A: IntoSdk<B>, B> IntoSdk<Option<B>> for Option<A> {
    fn into_sdk(self) -> Option<B> {
        self.map(IntoSdk::into_sdk)
    }
}

impl<A: IntoProto<B>, B> IntoProto<Vec<B>> for Vec<A> {
    fn into_proto(self) -> Vec<B> {
        self.into_iter().map(IntoProto::into_proto).collect()
    }
}

impl<A: IntoProto<B>, B> IntoProto<Option<B>> for Option<A> {
    fn into_proto(self) -> Option<B> {
        self.map(IntoProto::into_proto)
    }
}

impl IntoSdk<SystemTime> for prost_types::Timestamp {
    fn into_sdk(self) -> SystemTime {
        SystemTime::try_from(self).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl IntoProto<prost_types::Timestamp> for SystemTime {
    fn into_proto(self) -> prost_types::Timestamp {
        self.into()
    }
}

impl IntoSdk<Duration> for prost_types::Duration {
    fn into_sdk(self) -> Duration {
        Duration::try_from(self).unwrap_or_default()
    }
}

impl IntoProto<prost_types::Duration> for Duration {
    fn into_proto(self) -> prost_types::Duration {
        prost_types::Duration::try_from(self).unwrap_or(prost_types::Duration {
            seconds: i64::MAX,
            nanos: 0,
        })
    }
}

/// An empty string as `None`.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The bytes of a message field as text, lossily.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks a config and turns it into the request's.
pub(crate) fn container_config(config: ContainerConfig) -> Result<pb::ContainerConfig> {
    use pb::container_config::Root;
    let root = match (config.rootfs.as_os_str().is_empty(), config.image) {
        (false, Some(image)) => {
            return Err(Error::InvalidArgument(format!(
                "container {}: set either rootfs ({}) or image ({image}), not both",
                config.id,
                config.rootfs.display()
            )));
        }
        (false, None) => Some(Root::Rootfs(config.rootfs.to_string_lossy().into_owned())),
        (true, Some(image)) => Some(Root::Image(image)),
        (true, None) => None,
    };
    let (restart_kind, max_retries) = match config.restart_policy {
        RestartPolicy::No => (pb::restart_policy::Kind::No, 0),
        RestartPolicy::OnFailure { max_retries } => {
            (pb::restart_policy::Kind::OnFailure, max_retries)
        }
        RestartPolicy::Always => (pb::restart_policy::Kind::Always, 0),
    };
    let log_config =
        (config.log_max_size.is_some() || config.log_max_files.is_some()).then(|| pb::LogConfig {
            max_size_bytes: config.log_max_size.unwrap_or_default(),
            max_files: config.log_max_files.unwrap_or_default(),
        });
    let capabilities =
        (!config.cap_add.is_empty() || !config.cap_drop.is_empty()).then_some(pb::Capabilities {
            add: config.cap_add,
            drop: config.cap_drop,
        });
    Ok(pb::ContainerConfig {
        id: config.id,
        root,
        command: config.command,
        args: config.args,
        env: config.env,
        working_dir: config.working_dir,
        user: config.user.unwrap_or_default(),
        additional_gids: config.additional_gids,
        hostname: config.hostname.unwrap_or_default(),
        mounts: config.mounts.into_proto(),
        network_mode: match config.network {
            NetworkMode::None => pb::NetworkMode::None,
            NetworkMode::Host => pb::NetworkMode::Host,
        } as i32,
        resources: Some(config.resources.into_proto()),
        labels: config.labels.into_iter().collect(),
        restart_policy: Some(pb::RestartPolicy {
            kind: restart_kind as i32,
            max_retries,
        }),
        health_check: config.health_check.into_proto(),
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
        stop_timeout: config.stop_timeout.into_proto(),
        annotations: config.annotations.into_iter().collect(),
        seccomp: Some(match config.seccomp {
            SeccompProfile::Default => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Default as i32,
                custom_json: String::new(),
            },
            SeccompProfile::Unconfined => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Unconfined as i32,
                custom_json: String::new(),
            },
            SeccompProfile::Custom(json) => pb::SeccompProfile {
                kind: pb::seccomp_profile::Kind::Custom as i32,
                custom_json: json,
            },
        }),
        no_new_privileges: config.no_new_privileges,
    })
}

impl IntoSdk<ContainerConfig> for pb::ContainerConfig {
    fn into_sdk(self) -> ContainerConfig {
        use pb::container_config::Root;
        let network = match self.network_mode() {
            pb::NetworkMode::Host => NetworkMode::Host,
            _ => NetworkMode::None,
        };
        let (rootfs, image) = match self.root {
            Some(Root::Rootfs(path)) => (PathBuf::from(path), None),
            Some(Root::Image(image)) => (PathBuf::new(), Some(image)),
            None => (PathBuf::new(), None),
        };
        let restart_policy = match self.restart_policy {
            Some(p) => match p.kind() {
                pb::restart_policy::Kind::OnFailure => RestartPolicy::OnFailure {
                    max_retries: p.max_retries,
                },
                pb::restart_policy::Kind::Always => RestartPolicy::Always,
                _ => RestartPolicy::No,
            },
            None => RestartPolicy::No,
        };
        let capabilities = self.capabilities.unwrap_or_default();
        ContainerConfig {
            id: self.id,
            rootfs,
            image,
            command: self.command,
            args: self.args,
            env: self.env,
            working_dir: self.working_dir,
            user: non_empty(self.user),
            additional_gids: self.additional_gids,
            hostname: non_empty(self.hostname),
            mounts: self.mounts.into_sdk(),
            network,
            resources: self.resources.into_sdk().unwrap_or_default(),
            labels: self.labels.into_iter().collect(),
            restart_policy,
            health_check: self.health_check.into_sdk(),
            terminal: self.terminal,
            read_only_rootfs: self.read_only_rootfs,
            rlimits: self
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
            stop_signal: non_empty(self.stop_signal),
            stop_timeout: self.stop_timeout.into_sdk(),
            log_max_size: self.log_config.map(|l| l.max_size_bytes),
            log_max_files: self.log_config.map(|l| l.max_files),
            annotations: self.annotations.into_iter().collect(),
            seccomp: match self.seccomp {
                Some(s) if s.kind() == pb::seccomp_profile::Kind::Unconfined => {
                    SeccompProfile::Unconfined
                }
                Some(s) if s.kind() == pb::seccomp_profile::Kind::Custom => {
                    SeccompProfile::Custom(s.custom_json)
                }
                _ => SeccompProfile::Default,
            },
            no_new_privileges: self.no_new_privileges,
        }
    }
}

impl IntoProto<pb::Mount> for Mount {
    fn into_proto(self) -> pb::Mount {
        pb::Mount {
            destination: self.destination,
            source: self.source,
            r#type: self.kind,
            options: self.options,
            read_only: self.read_only,
        }
    }
}

impl IntoSdk<Mount> for pb::Mount {
    fn into_sdk(self) -> Mount {
        Mount {
            destination: self.destination,
            source: self.source,
            kind: self.r#type,
            options: self.options,
            read_only: self.read_only,
        }
    }
}

impl IntoProto<pb::Resources> for ResourceLimits {
    fn into_proto(self) -> pb::Resources {
        pb::Resources {
            memory_limit_bytes: self.memory,
            memory_reservation_bytes: self.memory_reservation,
            memory_swap_limit_bytes: self.memory_swap,
            cpu_shares: self.cpu_shares,
            cpu_quota_us: self.cpu_quota,
            cpu_period_us: self.cpu_period,
            cpuset_cpus: self.cpuset_cpus,
            pids_limit: self.pids,
        }
    }
}

impl IntoSdk<ResourceLimits> for pb::Resources {
    fn into_sdk(self) -> ResourceLimits {
        ResourceLimits {
            memory: self.memory_limit_bytes,
            memory_reservation: self.memory_reservation_bytes,
            memory_swap: self.memory_swap_limit_bytes,
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota_us,
            cpu_period: self.cpu_period_us,
            cpuset_cpus: self.cpuset_cpus,
            pids: self.pids_limit,
        }
    }
}

impl IntoProto<pb::HealthCheck> for HealthCheck {
    fn into_proto(self) -> pb::HealthCheck {
        pb::HealthCheck {
            command: self.command,
            interval: Some(self.interval.into_proto()),
            timeout: Some(self.timeout.into_proto()),
            retries: self.retries,
            start_period: Some(self.start_period.into_proto()),
        }
    }
}

impl IntoSdk<HealthCheck> for pb::HealthCheck {
    fn into_sdk(self) -> HealthCheck {
        let default = HealthCheck::default();
        HealthCheck {
            command: self.command,
            interval: self.interval.into_sdk().unwrap_or(default.interval),
            timeout: self.timeout.into_sdk().unwrap_or(default.timeout),
            retries: self.retries,
            start_period: self.start_period.into_sdk().unwrap_or_default(),
        }
    }
}

/// A container status from its protocol number.
pub(crate) fn container_status(status: i32) -> ContainerStatus {
    match pb::ContainerStatus::try_from(status) {
        Ok(pb::ContainerStatus::Created) => ContainerStatus::Created,
        Ok(pb::ContainerStatus::Running) => ContainerStatus::Running,
        Ok(pb::ContainerStatus::Paused) => ContainerStatus::Paused,
        Ok(pb::ContainerStatus::Stopped) => ContainerStatus::Stopped,
        _ => ContainerStatus::Unknown,
    }
}

impl IntoProto<i32> for ContainerStatus {
    fn into_proto(self) -> i32 {
        let status = match self {
            ContainerStatus::Created => pb::ContainerStatus::Created,
            ContainerStatus::Running => pb::ContainerStatus::Running,
            ContainerStatus::Paused => pb::ContainerStatus::Paused,
            ContainerStatus::Stopped => pb::ContainerStatus::Stopped,
            ContainerStatus::Unknown => pb::ContainerStatus::Unspecified,
        };
        status as i32
    }
}

fn health_status(status: i32) -> HealthStatus {
    match pb::HealthStatus::try_from(status) {
        Ok(pb::HealthStatus::Starting) => HealthStatus::Starting,
        Ok(pb::HealthStatus::Healthy) => HealthStatus::Healthy,
        Ok(pb::HealthStatus::Unhealthy) => HealthStatus::Unhealthy,
        _ => HealthStatus::None,
    }
}

impl IntoSdk<ExitStatus> for pb::ExitStatus {
    fn into_sdk(self) -> ExitStatus {
        ExitStatus {
            exit_code: self.exit_code,
            signal: self.signal,
            oom_killed: self.oom_killed,
            finished_at: self.finished_at.into_sdk(),
        }
    }
}

impl IntoSdk<ContainerInfo> for pb::Container {
    fn into_sdk(self) -> ContainerInfo {
        ContainerInfo {
            status: container_status(self.status),
            health_status: health_status(self.health_status),
            id: self.id,
            agent: self.agent,
            config: self.config.unwrap_or_default().into_sdk(),
            pid: self.pid,
            created_at: self.created_at.into_sdk(),
            started_at: self.started_at.into_sdk(),
            last_exit: self.last_exit.into_sdk(),
            restart_count: self.restart_count,
            bundle: self.bundle,
            rootfs_path: self.rootfs_path,
            image_digest: self.image_digest,
            exec_ids: self.exec_ids,
            oci_spec_json: None,
        }
    }
}

/// The container of a response that must carry one.
pub(crate) fn container(container: Option<pb::Container>) -> Result<ContainerInfo> {
    container
        .map(IntoSdk::into_sdk)
        .ok_or_else(|| Error::Internal("the server's answer carries no container".into()))
}

impl IntoSdk<HealthCheckResult> for pb::HealthCheckResult {
    fn into_sdk(self) -> HealthCheckResult {
        HealthCheckResult {
            started_at: self.started_at.into_sdk(),
            finished_at: self.finished_at.into_sdk(),
            exit_code: self.exit_code,
            output: text(&self.output),
            timed_out: self.timed_out,
        }
    }
}

impl IntoSdk<ContainerHealth> for pb::ContainerHealth {
    fn into_sdk(self) -> ContainerHealth {
        ContainerHealth {
            status: health_status(self.status),
            container_id: self.container_id,
            failing_streak: self.failing_streak,
            recent_results: self.recent_results.into_sdk(),
            agent: self.agent,
        }
    }
}

impl IntoSdk<ContainerMetrics> for pb::ContainerMetrics {
    fn into_sdk(self) -> ContainerMetrics {
        let cpu = self.cpu.unwrap_or_default();
        let memory = self.memory.unwrap_or_default();
        let network = self.network.unwrap_or_default();
        let blkio = self.blkio.unwrap_or_default();
        let pids = self.pids.unwrap_or_default();
        ContainerMetrics {
            container_id: self.container_id,
            agent: self.agent,
            time: self.time.into_sdk(),
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
        }
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

impl IntoSdk<ContainerEvent> for pb::Event {
    fn into_sdk(self) -> ContainerEvent {
        use pb::event::Details;
        let event_type = EVENT_TYPES
            .iter()
            .find(|(_, p)| *p as i32 == self.r#type)
            .map_or(ContainerEventType::Unknown, |(t, _)| *t);
        let (mut exit, mut health, mut restart) = (None, None, None);
        match self.details {
            Some(Details::Exit(e)) => exit = Some(e.into_sdk()),
            Some(Details::Health(h)) => {
                health = Some(HealthChange {
                    previous: health_status(h.previous),
                    current: health_status(h.current),
                    failing_streak: h.failing_streak,
                })
            }
            Some(Details::Restart(r)) => {
                restart = Some(RestartInfo {
                    restart_count: r.restart_count,
                    backoff: r.backoff.into_sdk().unwrap_or_default(),
                })
            }
            None => {}
        }
        ContainerEvent {
            sequence: self.sequence,
            time: self.time.into_sdk(),
            event_type,
            container_id: self.container_id,
            exec_id: non_empty(self.exec_id),
            agent: self.agent,
            labels: self.labels.into_iter().collect(),
            exit_code: exit.as_ref().map(|e: &ExitStatus| e.exit_code),
            exit,
            health,
            restart,
        }
    }
}

impl IntoProto<pb::SubscribeEventsRequest> for EventFilter {
    fn into_proto(self) -> pb::SubscribeEventsRequest {
        pb::SubscribeEventsRequest {
            since_sequence: self.since,
            agent_cursors: Vec::new(),
            container_ids: self.container_ids,
            types: self
                .types
                .iter()
                .map(|t| {
                    EVENT_TYPES
                        .iter()
                        .find(|(s, _)| s == t)
                        .map_or(pb::EventType::Unspecified, |(_, p)| *p) as i32
                })
                .collect(),
            labels: self.labels.into_iter().collect(),
        }
    }
}

/// The Logs request of `id` with `options`.
pub(crate) fn logs_request(id: &str, options: LogOptions) -> pb::LogsRequest {
    pb::LogsRequest {
        container_id: id.into(),
        follow: options.follow,
        tail: options.tail,
        since: options.since.into_proto(),
        until: options.until.into_proto(),
        timestamps: options.timestamps,
        streams: options
            .stream
            .map(|s| output_stream(s) as i32)
            .into_iter()
            .collect(),
    }
}

fn output_stream(stream: OutputStream) -> pb::LogStream {
    match stream {
        OutputStream::Stdout => pb::LogStream::Stdout,
        OutputStream::Stderr => pb::LogStream::Stderr,
    }
}

impl IntoSdk<LogChunk> for pb::LogEntry {
    fn into_sdk(self) -> LogChunk {
        LogChunk {
            stream: match self.stream() {
                pb::LogStream::Stderr => OutputStream::Stderr,
                _ => OutputStream::Stdout,
            },
            data: self.data,
            time: self.time.into_sdk(),
            partial: self.partial,
        }
    }
}

impl IntoProto<pb::TerminalSize> for TerminalSize {
    fn into_proto(self) -> pb::TerminalSize {
        pb::TerminalSize {
            rows: self.rows.into(),
            cols: self.cols.into(),
        }
    }
}

/// The process of an exec.
pub(crate) fn process_spec(options: &ExecOptions) -> pb::ProcessSpec {
    pb::ProcessSpec {
        command: options.command.clone(),
        env: options.env.clone(),
        working_dir: options.working_dir.clone(),
        user: options.user.clone().unwrap_or_default(),
        tty: options.tty,
    }
}

impl IntoSdk<Version> for pb::VersionResponse {
    fn into_sdk(self) -> Version {
        Version {
            component: self.component,
            version: self.version,
            api_version: self.api_version,
            git_commit: self.git_commit,
            libcrun_version: self.libcrun_version,
        }
    }
}

impl IntoSdk<AgentInfo> for pb::AgentInfo {
    fn into_sdk(self) -> AgentInfo {
        AgentInfo {
            state: match self.state() {
                pb::AgentState::Ready => AgentState::Ready,
                pb::AgentState::Connecting => AgentState::Connecting,
                pb::AgentState::Unavailable => AgentState::Unavailable,
                pb::AgentState::Unspecified => AgentState::Unknown,
            },
            cgroup_mode: match self.cgroup_mode() {
                pb::CgroupMode::V1 => CgroupMode::V1,
                pb::CgroupMode::Hybrid => CgroupMode::Hybrid,
                pb::CgroupMode::V2 => CgroupMode::V2,
                pb::CgroupMode::Unspecified => CgroupMode::Unknown,
            },
            name: self.name,
            endpoint: self.endpoint,
            version: self.version,
            libcrun_version: self.libcrun_version,
            kernel_version: self.kernel_version,
            cpus: self.cpus,
            memory_bytes: self.memory_bytes,
            containers: self.containers,
            containers_running: self.containers_running,
            images: self.images,
            root_dir: self.root_dir,
            started_at: self.started_at.into_sdk(),
            last_error: self.last_error,
        }
    }
}

impl IntoSdk<Info> for pb::InfoResponse {
    fn into_sdk(self) -> Info {
        Info {
            component: self.component,
            version: self.version,
            agents: self.agents.into_sdk(),
        }
    }
}

impl IntoSdk<Orphan> for pb::Orphan {
    fn into_sdk(self) -> Orphan {
        Orphan {
            kind: match self.kind() {
                pb::OrphanKind::RuntimeState => OrphanKind::RuntimeState,
                pb::OrphanKind::MissingProcess => OrphanKind::MissingProcess,
                pb::OrphanKind::Cgroup => OrphanKind::Cgroup,
                pb::OrphanKind::Mount => OrphanKind::Mount,
                pb::OrphanKind::StateDirectory => OrphanKind::StateDirectory,
                pb::OrphanKind::Unspecified => OrphanKind::Unknown,
            },
            container_id: self.container_id,
            path: self.path,
            detail: self.detail,
            agent: self.agent,
        }
    }
}

impl IntoSdk<ImageInfo> for pb::Image {
    fn into_sdk(self) -> ImageInfo {
        let config = self.config.unwrap_or_default();
        ImageInfo {
            id: self.id,
            references: self.references,
            digest: self.digest,
            size: self.size,
            created: self.created.into_sdk(),
            os: self.os,
            architecture: self.architecture,
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
            layers: self.layers,
            agent: self.agent,
            used_by: self.used_by,
        }
    }
}

/// The image of a response that must carry one.
pub(crate) fn image(image: Option<pb::Image>) -> Result<ImageInfo> {
    image
        .map(IntoSdk::into_sdk)
        .ok_or_else(|| Error::Internal("the server's answer carries no image".into()))
}

impl IntoSdk<PullProgress> for pb::PullImageProgress {
    fn into_sdk(self) -> PullProgress {
        PullProgress {
            reference: self.reference,
            layers: self
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
            downloaded_bytes: self.downloaded_bytes,
            total_bytes: self.total_bytes,
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
            rootfs: "/srv/rootfs".into(),
            command: vec!["httpd".into()],
            user: Some("1000:1000".into()),
            restart_policy: RestartPolicy::OnFailure { max_retries: 2 },
            health_check: Some(HealthCheck {
                command: vec!["true".into()],
                interval: Duration::from_millis(250),
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
        let back: ContainerConfig = container_config(config.clone()).unwrap().into_sdk();
        assert_eq!(back, config);
    }

    #[test]
    fn rootfs_and_image_together_are_refused() {
        let config = ContainerConfig {
            id: "x".into(),
            rootfs: "/r".into(),
            image: Some("alpine".into()),
            ..Default::default()
        };
        assert!(matches!(
            container_config(config),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn every_event_type_has_its_protocol_twin() {
        for t in ContainerEventType::ALL {
            assert!(EVENT_TYPES.iter().any(|(s, _)| *s == t), "{t}");
        }
    }
}
