//! Conversions between containerd's task API types and `libcrun_shim.v1`,
//! and the mapping of our errors to ttrpc status codes.

use std::time::SystemTime;

use containerd_shim::protos::api;
use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::ttrpc;
use libcrun_shim_proto::v1 as pb;

/// A protobuf timestamp of containerd's.
pub(super) fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

/// containerd's timestamp of one of ours.
pub(super) fn timestamp_of(t: Option<&prost_types::Timestamp>) -> MessageField<Timestamp> {
    match t {
        Some(t) => MessageField::some(Timestamp {
            seconds: t.seconds,
            nanos: t.nanos,
            ..Default::default()
        }),
        None => MessageField::none(),
    }
}

/// containerd's task status of one of our container statuses.
pub(super) fn status(s: i32) -> api::Status {
    match pb::ContainerStatus::try_from(s) {
        Ok(pb::ContainerStatus::Created) => api::Status::CREATED,
        Ok(pb::ContainerStatus::Running) => api::Status::RUNNING,
        Ok(pb::ContainerStatus::Paused) => api::Status::PAUSED,
        Ok(pb::ContainerStatus::Stopped) => api::Status::STOPPED,
        _ => api::Status::UNKNOWN,
    }
}

/// An exit code as containerd carries it.
pub(super) fn exit_code(e: &pb::ExitStatus) -> u32 {
    u32::try_from(e.exit_code).unwrap_or(255)
}

/// A ttrpc error with a code.
pub(super) fn ttrpc_error(code: ttrpc::Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

/// Our error as containerd understands it (its errdefs follow the gRPC
/// codes carried by ttrpc).
pub(super) fn error(e: crate::Error) -> ttrpc::Error {
    use crate::Error as E;
    let code = match &e {
        E::NotFound(_) => ttrpc::Code::NOT_FOUND,
        E::AlreadyExists(_) => ttrpc::Code::ALREADY_EXISTS,
        E::InvalidArgument(_) => ttrpc::Code::INVALID_ARGUMENT,
        E::FailedPrecondition(_) => ttrpc::Code::FAILED_PRECONDITION,
        E::Unavailable(_) => ttrpc::Code::UNAVAILABLE,
        E::PermissionDenied(_) => ttrpc::Code::PERMISSION_DENIED,
        E::DeadlineExceeded(_) => ttrpc::Code::DEADLINE_EXCEEDED,
        E::Unimplemented(_) => ttrpc::Code::UNIMPLEMENTED,
        _ => ttrpc::Code::INTERNAL,
    };
    ttrpc_error(code, e.to_string())
}

/// Our error from a gRPC status.
pub(super) fn status_error(s: tonic::Status) -> ttrpc::Error {
    error(crate::Error::from(s))
}

/// Whether the host runs cgroup v2 only (the metrics' type follows).
fn cgroup_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// containerd's metrics (cgroup v1 or v2 types, as its runc shim gives
/// them) of ours.
pub(super) fn metrics(m: &pb::ContainerMetrics) -> Any {
    let cpu = m.cpu.unwrap_or_default();
    let memory = m.memory.unwrap_or_default();
    let pids = m.pids.unwrap_or_default();
    let blkio = m.blkio.unwrap_or_default();
    let (type_url, value) = if cgroup_v2() {
        let metrics = v2::Metrics {
            pids: MessageField::some(v2::PidsStat {
                current: pids.current,
                limit: pids.limit,
                ..Default::default()
            }),
            cpu: MessageField::some(v2::CPUStat {
                usage_usec: cpu.usage_total_ns / 1000,
                user_usec: cpu.usage_user_ns / 1000,
                system_usec: cpu.usage_system_ns / 1000,
                nr_periods: cpu.periods,
                nr_throttled: cpu.throttled_periods,
                throttled_usec: cpu.throttled_time_ns / 1000,
                ..Default::default()
            }),
            memory: MessageField::some(v2::MemoryStat {
                anon: memory.rss_bytes,
                file: memory.cache_bytes,
                usage: memory.usage_bytes,
                usage_limit: memory.limit_bytes,
                max_usage: memory.max_usage_bytes,
                swap_usage: memory.swap_bytes,
                ..Default::default()
            }),
            io: MessageField::some(v2::IOStat {
                usage: vec![v2::IOEntry {
                    rbytes: blkio.read_bytes,
                    wbytes: blkio.write_bytes,
                    rios: blkio.read_ops,
                    wios: blkio.write_ops,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        ("io.containerd.cgroups.v2.Metrics", metrics.write_to_bytes())
    } else {
        let entry = |op: &str, value: u64| v1::BlkIOEntry {
            op: op.into(),
            value,
            ..Default::default()
        };
        let metrics = v1::Metrics {
            pids: MessageField::some(v1::PidsStat {
                current: pids.current,
                limit: pids.limit,
                ..Default::default()
            }),
            cpu: MessageField::some(v1::CPUStat {
                usage: MessageField::some(v1::CPUUsage {
                    total: cpu.usage_total_ns,
                    kernel: cpu.usage_system_ns,
                    user: cpu.usage_user_ns,
                    ..Default::default()
                }),
                throttling: MessageField::some(v1::Throttle {
                    periods: cpu.periods,
                    throttled_periods: cpu.throttled_periods,
                    throttled_time: cpu.throttled_time_ns,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory: MessageField::some(v1::MemoryStat {
                cache: memory.cache_bytes,
                rss: memory.rss_bytes,
                total_cache: memory.cache_bytes,
                total_rss: memory.rss_bytes,
                usage: MessageField::some(v1::MemoryEntry {
                    limit: memory.limit_bytes,
                    usage: memory.usage_bytes,
                    max: memory.max_usage_bytes,
                    ..Default::default()
                }),
                swap: MessageField::some(v1::MemoryEntry {
                    usage: memory.swap_bytes,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            blkio: MessageField::some(v1::BlkIOStat {
                io_service_bytes_recursive: vec![
                    entry("Read", blkio.read_bytes),
                    entry("Write", blkio.write_bytes),
                ],
                io_serviced_recursive: vec![
                    entry("Read", blkio.read_ops),
                    entry("Write", blkio.write_ops),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        ("io.containerd.cgroups.v1.Metrics", metrics.write_to_bytes())
    };
    Any {
        type_url: type_url.into(),
        value: value.unwrap_or_default(),
        ..Default::default()
    }
}

/// The `ProcessDetails` (runc options) naming an exec process, as an Any.
pub(super) fn process_details(exec_id: &str) -> MessageField<Any> {
    let details = containerd_shim::protos::shim::oci::ProcessDetails {
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    MessageField::some(Any {
        type_url: "containerd.runc.v1.ProcessDetails".into(),
        value: details.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    })
}

/// Our resource limits of the OCI `LinuxResources` (JSON) containerd's
/// Update carries; `InvalidArgument` when it is not JSON.
pub(super) fn resources(any: &Any) -> crate::Result<pb::Resources> {
    let r: serde_json::Value = serde_json::from_slice(&any.value)
        .map_err(|e| crate::Error::InvalidArgument(format!("resources ({}): {e}", any.type_url)))?;
    let u64_of = |v: &serde_json::Value| v.as_u64();
    let i64_of = |v: &serde_json::Value| v.as_i64();
    let memory = &r["memory"];
    let cpu = &r["cpu"];
    Ok(pb::Resources {
        memory_limit_bytes: u64_of(&memory["limit"]),
        memory_reservation_bytes: u64_of(&memory["reservation"]),
        memory_swap_limit_bytes: i64_of(&memory["swap"]),
        cpu_shares: u64_of(&cpu["shares"]),
        cpu_quota_us: i64_of(&cpu["quota"]),
        cpu_period_us: u64_of(&cpu["period"]),
        cpuset_cpus: cpu["cpus"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        pids_limit: i64_of(&r["pids"]["limit"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_an_oci_update() {
        let any = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: br#"{"memory":{"limit":67108864},"cpu":{"shares":512,"cpus":"0"},"pids":{"limit":10}}"#
                .to_vec(),
            ..Default::default()
        };
        let r = resources(&any).unwrap();
        assert_eq!(r.memory_limit_bytes, Some(64 << 20));
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(r.pids_limit, Some(10));
        assert_eq!(r.cpu_quota_us, None);
    }

    #[test]
    fn statuses_and_errors_map() {
        assert_eq!(
            status(pb::ContainerStatus::Paused as i32),
            api::Status::PAUSED
        );
        assert_eq!(status(42), api::Status::UNKNOWN);
        match error(crate::Error::NotFound("x".into())) {
            ttrpc::Error::RpcStatus(s) => assert_eq!(s.code(), ttrpc::Code::NOT_FOUND),
            other => panic!("{other:?}"),
        }
    }
}
