//! Per-container resource usage, read from the container's cgroup (v1 or
//! v2) and from its network namespace as its init process sees it.
//!
//! Collection is cheap enough to run for every container at once: each
//! value comes from one small pseudo-file read whole into a reused buffer
//! and parsed by hand, with no directory walks. A file that does not exist
//! (a controller not mounted or not enabled, an older kernel) gives zeros
//! for its fields; a file that does not parse is an error naming it.

mod files;
mod net;
mod v1;
mod v2;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use libcrun_sys::cgroup::CgroupMode;

use crate::model::{BlkioMetrics, ContainerMetrics, CpuMetrics, MemoryMetrics, PidsMetrics};
use files::Reader;

/// Where to read from: real hosts use [`Sources::host`] (`/sys/fs/cgroup`
/// and `/proc`); tests point it at fixture trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The cgroup mount point: the unified hierarchy on v2, the parent of
    /// the controllers' hierarchies (`<root>/memory`...) on v1.
    pub cgroup_root: PathBuf,
    /// The proc mount point.
    pub proc_root: PathBuf,
    /// How cgroups are mounted (hybrid reads as v1).
    pub mode: CgroupMode,
}

impl Sources {
    /// The host's cgroup and proc file systems, cgroups mounted as `mode`.
    pub fn host(mode: CgroupMode) -> Sources {
        Sources {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            mode,
        }
    }
}

/// One snapshot of a container's resource usage.
///
/// `cgroup_path` is the container's cgroup as libcrun records it
/// (`/libcrun-shim/<agent>/<id>`, relative to each v1 hierarchy or to the
/// v2 root). `pid` is the container's init process on the host: network
/// counters come from `/proc/<pid>/net/dev`, which lists the interfaces of
/// that process's network namespace, and are empty when it is gone.
pub fn collect(
    sources: &Sources,
    container_id: &str,
    cgroup_path: &str,
    pid: i32,
) -> io::Result<ContainerMetrics> {
    let mut files = Reader::default();
    let rel = relative(cgroup_path);
    let usage = match sources.mode {
        CgroupMode::V2 => v2::read(&mut files, &sources.cgroup_root.join(rel))?,
        CgroupMode::V1 | CgroupMode::Hybrid => v1::read(&mut files, &sources.cgroup_root, rel)?,
    };
    let net_dev = sources.proc_root.join(pid.to_string()).join("net/dev");
    Ok(ContainerMetrics {
        container_id: container_id.to_string(),
        time: SystemTime::now(),
        cpu: usage.cpu,
        memory: usage.memory,
        network: net::interfaces(&mut files, &net_dev)?,
        blkio: usage.blkio,
        pids: usage.pids,
    })
}

/// How many times the OOM killer killed a process in the cgroup (0 when
/// the memory controller does not say).
pub fn oom_kill_count(sources: &Sources, cgroup_path: &str) -> io::Result<u64> {
    let mut files = Reader::default();
    let rel = relative(cgroup_path);
    match sources.mode {
        CgroupMode::V2 => v2::oom_kill_count(&mut files, &sources.cgroup_root.join(rel)),
        CgroupMode::V1 | CgroupMode::Hybrid => {
            v1::oom_kill_count(&mut files, &v1::dir(&sources.cgroup_root, "memory", rel))
        }
    }
}

/// What a cgroup tells, in either version.
struct CgroupUsage {
    cpu: CpuMetrics,
    memory: MemoryMetrics,
    blkio: BlkioMetrics,
    pids: PidsMetrics,
}

/// A cgroup path relative to the hierarchy's root.
fn relative(cgroup_path: &str) -> &str {
    cgroup_path.trim_start_matches('/')
}

/// The pids controller, the same in both versions.
fn pids(files: &mut Reader, dir: &Path) -> io::Result<PidsMetrics> {
    Ok(PidsMetrics {
        current: files.number(&dir.join("pids.current"))?,
        limit: files.limit(&dir.join("pids.max"))?,
    })
}

#[cfg(test)]
mod tests;
