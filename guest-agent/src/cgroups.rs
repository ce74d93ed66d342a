//! Reading containers' cgroups, on cgroup v1 and v2 hosts.

use std::io;
use std::path::{Path, PathBuf};

use libcrun_sys::cgroup::CgroupMode;

/// The cgroup filesystem's mount point.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory of a v1 `controller` (or, on v2, of the unified
/// hierarchy) for a container's cgroup path as libcrun records it.
pub fn dir(mode: CgroupMode, controller: &str, cgroup_path: &str) -> PathBuf {
    let rel = cgroup_path.trim_start_matches('/');
    match mode {
        CgroupMode::V2 => Path::new(CGROUP_ROOT).join(rel),
        CgroupMode::V1 | CgroupMode::Hybrid => Path::new(CGROUP_ROOT).join(controller).join(rel),
    }
}

/// Finds `key` in a flat-keyed cgroup file ("key value" per line).
pub fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}

/// How many times the OOM killer killed a process in the cgroup.
pub fn oom_kill_count(cgroup_path: &str) -> io::Result<u64> {
    let mode = libcrun_sys::cgroup::detect()?;
    let (file, key) = match mode {
        CgroupMode::V2 => ("memory.events", "oom_kill"),
        _ => ("memory.oom_control", "oom_kill"),
    };
    let content = std::fs::read_to_string(dir(mode, "memory", cgroup_path).join(file))?;
    Ok(keyed_value(&content, key).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(2));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        assert_eq!(keyed_value(v2, "missing"), None);
    }

    #[test]
    fn paths_per_mode() {
        assert_eq!(
            dir(CgroupMode::V1, "memory", "/libcrun-shim/x/c1"),
            Path::new("/sys/fs/cgroup/memory/libcrun-shim/x/c1")
        );
        assert_eq!(
            dir(CgroupMode::V2, "memory", "/libcrun-shim/x/c1"),
            Path::new("/sys/fs/cgroup/libcrun-shim/x/c1")
        );
    }
}
