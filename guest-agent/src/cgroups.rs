//! Reading containers' cgroups, on cgroup v1 and v2 hosts.

use std::io;

use crate::metrics::{self, Sources};

/// How many times the OOM killer killed a process in the cgroup, on this
/// host's cgroups as this process sees them.
pub fn oom_kill_count(cgroup_path: &str) -> io::Result<u64> {
    let sources = Sources::host(libcrun_sys::cgroup::detect()?);
    metrics::oom_kill_count(&sources, cgroup_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory cgroup of this test process, read on this host.
    #[test]
    fn own_memory_cgroup() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let memory = own.lines().find_map(|line| {
            let (_, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            (controllers.split(',').any(|c| c == "memory")).then_some(path)
        });
        let unified = own.lines().find_map(|line| line.strip_prefix("0::"));
        let path = memory.or(unified).unwrap();
        assert_eq!(oom_kill_count(path).unwrap(), 0);
    }
}
