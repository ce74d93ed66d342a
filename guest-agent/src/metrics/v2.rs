//! cgroup v2: one unified hierarchy.

use std::io;
use std::path::Path;

use super::CgroupUsage;
use super::files::Reader;
use crate::model::{BlkioMetrics, CpuMetrics, MemoryMetrics};

/// Everything read from the cgroup's directory `dir`.
pub(super) fn read(files: &mut Reader, dir: &Path) -> io::Result<CgroupUsage> {
    Ok(CgroupUsage {
        cpu: cpu(files, dir)?,
        memory: memory(files, dir)?,
        blkio: io(files, dir)?,
        pids: super::pids(files, dir)?,
    })
}

/// CPU time and throttling from cpu.stat (microseconds).
fn cpu(files: &mut Reader, dir: &Path) -> io::Result<CpuMetrics> {
    let [usage, user, system, periods, throttled_periods, throttled] = files
        .keyed(
            &dir.join("cpu.stat"),
            [
                "usage_usec",
                "user_usec",
                "system_usec",
                "nr_periods",
                "nr_throttled",
                "throttled_usec",
            ],
        )?
        .map(Option::unwrap_or_default);
    let ns = |usec: u64| usec.saturating_mul(1000);
    Ok(CpuMetrics {
        usage_total_ns: ns(usage),
        usage_user_ns: ns(user),
        usage_system_ns: ns(system),
        periods,
        throttled_periods,
        throttled_time_ns: ns(throttled),
    })
}

/// Memory usage, limit, breakdown and OOM kills.
fn memory(files: &mut Reader, dir: &Path) -> io::Result<MemoryMetrics> {
    let usage_bytes = files.number(&dir.join("memory.current"))?;
    let limit_bytes = files.limit(&dir.join("memory.max"))?;
    let max_usage_bytes = files.number(&dir.join("memory.peak"))?;
    let [file, anon] = files
        .keyed(&dir.join("memory.stat"), ["file", "anon"])?
        .map(Option::unwrap_or_default);
    let swap_bytes = files.number(&dir.join("memory.swap.current"))?;
    Ok(MemoryMetrics {
        usage_bytes,
        limit_bytes,
        cache_bytes: file,
        rss_bytes: anon,
        max_usage_bytes,
        oom_kill_count: oom_kill_count(files, dir)?,
        swap_bytes,
    })
}

/// OOM kills in the cgroup `dir` and its descendants.
pub(super) fn oom_kill_count(files: &mut Reader, dir: &Path) -> io::Result<u64> {
    let [count] = files.keyed(&dir.join("memory.events"), ["oom_kill"])?;
    Ok(count.unwrap_or(0))
}

/// Block I/O summed over the devices of io.stat (lines
/// `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`, possibly
/// followed by the fields of io controllers such as iocost).
fn io(files: &mut Reader, dir: &Path) -> io::Result<BlkioMetrics> {
    let mut total = BlkioMetrics::default();
    let path = dir.join("io.stat");
    let Some(text) = files.read(&path)? else {
        return Ok(total);
    };
    for line in text.lines() {
        // The device comes first.
        for field in line.split_ascii_whitespace().skip(1) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| text.malformed(format_args!("unexpected field {field:?}")))?;
            let counter = match key {
                "rbytes" => &mut total.read_bytes,
                "wbytes" => &mut total.write_bytes,
                "rios" => &mut total.read_ops,
                "wios" => &mut total.write_ops,
                _ => continue,
            };
            *counter = counter.saturating_add(text.parse(value)?);
        }
    }
    Ok(total)
}
