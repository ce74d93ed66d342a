//! cgroup v1: one hierarchy per controller.

use std::io;
use std::path::{Path, PathBuf};

use super::CgroupUsage;
use super::files::Reader;
use crate::model::{BlkioMetrics, CpuMetrics, MemoryMetrics};

/// Limits at or above this are the kernel's "no limit" (its page counter's
/// maximum in bytes, just under 2^63 and page-size dependent).
const UNLIMITED: u64 = 1 << 62;

/// The blkio file families, in order of preference: the throttle layer's
/// (kept for every device once a throttle rule exists on it), then the I/O
/// schedulers' (BFQ's; CFQ's on kernels before 5.0). The first with
/// per-device lines is used.
const BLKIO_FAMILIES: [&str; 3] = ["blkio.throttle.", "blkio.bfq.", "blkio."];

/// The directory of `controller` for a cgroup path relative to the
/// hierarchies' root.
pub(super) fn dir(root: &Path, controller: &str, rel: &str) -> PathBuf {
    root.join(controller).join(rel)
}

/// Everything read from the cgroup's directories under `root`.
pub(super) fn read(files: &mut Reader, root: &Path, rel: &str) -> io::Result<CgroupUsage> {
    Ok(CgroupUsage {
        cpu: cpu(files, &dir(root, "cpu", rel), &dir(root, "cpuacct", rel))?,
        memory: memory(files, &dir(root, "memory", rel))?,
        blkio: blkio(files, &dir(root, "blkio", rel))?,
        pids: super::pids(files, &dir(root, "pids", rel))?,
    })
}

/// CPU time from cpuacct, throttling from cpu.
fn cpu(files: &mut Reader, cpu: &Path, cpuacct: &Path) -> io::Result<CpuMetrics> {
    let usage_total_ns = files.number(&cpuacct.join("cpuacct.usage"))?;
    let (usage_user_ns, usage_system_ns) =
        match files.optional_number(&cpuacct.join("cpuacct.usage_user"))? {
            Some(user) => (user, files.number(&cpuacct.join("cpuacct.usage_sys"))?),
            None => {
                let [user, system] = files
                    .keyed(&cpuacct.join("cpuacct.stat"), ["user", "system"])?
                    .map(|ticks| ticks.unwrap_or(0).saturating_mul(ns_per_tick()));
                (user, system)
            }
        };
    let [periods, throttled_periods, throttled_time_ns] = files
        .keyed(
            &cpu.join("cpu.stat"),
            ["nr_periods", "nr_throttled", "throttled_time"],
        )?
        .map(Option::unwrap_or_default);
    Ok(CpuMetrics {
        usage_total_ns,
        usage_user_ns,
        usage_system_ns,
        periods,
        throttled_periods,
        throttled_time_ns,
    })
}

/// Nanoseconds per clock tick (USER_HZ), the unit of cpuacct.stat.
fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux's USER_HZ is 100 everywhere; sysconf cannot fail for it.
    1_000_000_000 / u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Memory usage, limit, breakdown and OOM kills from the memory controller.
fn memory(files: &mut Reader, dir: &Path) -> io::Result<MemoryMetrics> {
    let usage_bytes = files.number(&dir.join("memory.usage_in_bytes"))?;
    let limit = files.number(&dir.join("memory.limit_in_bytes"))?;
    let max_usage_bytes = files.number(&dir.join("memory.max_usage_in_bytes"))?;
    let [total_cache, cache, total_rss, rss, total_swap, swap] = files.keyed(
        &dir.join("memory.stat"),
        [
            "total_cache",
            "cache",
            "total_rss",
            "rss",
            "total_swap",
            "swap",
        ],
    )?;
    Ok(MemoryMetrics {
        usage_bytes,
        limit_bytes: if limit >= UNLIMITED { 0 } else { limit },
        cache_bytes: total_cache.or(cache).unwrap_or(0),
        rss_bytes: total_rss.or(rss).unwrap_or(0),
        max_usage_bytes,
        oom_kill_count: oom_kill_count(files, dir)?,
        swap_bytes: total_swap.or(swap).unwrap_or(0),
    })
}

/// OOM kills in the cgroup whose memory directory is `dir`.
pub(super) fn oom_kill_count(files: &mut Reader, dir: &Path) -> io::Result<u64> {
    let [count] = files.keyed(&dir.join("memory.oom_control"), ["oom_kill"])?;
    Ok(count.unwrap_or(0))
}

/// Block I/O from the first blkio file family that lists devices.
fn blkio(files: &mut Reader, dir: &Path) -> io::Result<BlkioMetrics> {
    for family in BLKIO_FAMILIES {
        let Some((read_bytes, write_bytes)) = rwstat(files, dir, family, "io_service_bytes")?
        else {
            continue;
        };
        let (read_ops, write_ops) = rwstat(files, dir, family, "io_serviced")?.unwrap_or_default();
        return Ok(BlkioMetrics {
            read_bytes,
            write_bytes,
            read_ops,
            write_ops,
        });
    }
    Ok(BlkioMetrics::default())
}

/// Reads and writes summed over the devices of a blkio statistic (lines
/// `MAJ:MIN Read N`, `MAJ:MIN Write N`, ... and a final `Total N`),
/// preferring the file covering the cgroup's descendants. `None` when
/// neither file exists or lists a device.
fn rwstat(
    files: &mut Reader,
    dir: &Path,
    family: &str,
    stat: &str,
) -> io::Result<Option<(u64, u64)>> {
    let recursive = dir.join(format!("{family}{stat}_recursive"));
    let flat = dir.join(format!("{family}{stat}"));
    let text = match files.read(&recursive)? {
        Some(text) => text,
        None => match files.read(&flat)? {
            Some(text) => text,
            None => return Ok(None),
        },
    };
    let (mut read, mut write, mut devices) = (0u64, 0u64, false);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (None, ..) | (Some("Total"), Some(_), None, None) => {}
            (Some(_device), Some(op), Some(value), None) => {
                devices = true;
                match op {
                    "Read" => read = read.saturating_add(text.parse(value)?),
                    "Write" => write = write.saturating_add(text.parse(value)?),
                    _ => {}
                }
            }
            _ => return Err(text.malformed(format_args!("unexpected line {line:?}"))),
        }
    }
    Ok(devices.then_some((read, write)))
}
