//! Fixture trees with the exact contents of real v1 and v2 hosts, and a
//! collection from this machine's own cgroups.

use std::fs;
use std::path::Path;

use super::*;
use crate::model::InterfaceMetrics;

/// The container's cgroup path, as libcrun records it.
const CGROUP: &str = "/libcrun-shim/6fa91eeca46fe438/web";
/// Its init process.
const PID: i32 = 4242;

/// Writes `files` (path relative to `root`, content), creating directories.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// Sources for a fixture tree: `cgroup/` and `proc/` under `root`.
fn sources(root: &Path, mode: CgroupMode) -> Sources {
    Sources {
        cgroup_root: root.join("cgroup"),
        proc_root: root.join("proc"),
        mode,
    }
}

/// A v1 container's file, under its controller's hierarchy.
fn v1(controller: &str, file: &str) -> String {
    format!("cgroup/{controller}{CGROUP}/{file}")
}

/// A v2 container's file.
fn v2(file: &str) -> String {
    format!("cgroup{CGROUP}/{file}")
}

/// /proc/<pid>/net/dev of a namespace with an interface besides lo.
const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 149611868  107991    3    7    0     0          0        12   606401    5105    1    2    0     0       0          0
";

/// What [`NET_DEV`] lists, sorted by name.
fn expected_network() -> Vec<InterfaceMetrics> {
    vec![
        InterfaceMetrics {
            name: "eth0".into(),
            rx_bytes: 149611868,
            rx_packets: 107991,
            rx_errors: 3,
            rx_dropped: 7,
            tx_bytes: 606401,
            tx_packets: 5105,
            tx_errors: 1,
            tx_dropped: 2,
        },
        InterfaceMetrics {
            name: "lo".into(),
            rx_bytes: 3193,
            rx_packets: 29,
            tx_bytes: 3193,
            tx_packets: 29,
            ..Default::default()
        },
    ]
}

/// memory.stat of a v1 cgroup with descendants (local and `total_`
/// values differ), as kernel 6.x prints it.
const V1_MEMORY_STAT: &str = "\
cache 9261056
rss 5234688
rss_huge 0
shmem 9084928
mapped_file 7659520
dirty 8192
writeback 0
workingset_refault_anon 0
workingset_refault_file 1169
swap 4096
swapcached 0
pgpgin 41629
pgpgout 38090
pgfault 47812
pgmajfault 0
inactive_anon 0
active_anon 1531904
inactive_file 4096
active_file 172032
unevictable 12787712
hierarchical_memory_limit 536870912
hierarchical_memsw_limit 9223372036854771712
total_cache 104816640
total_rss 9592832
total_rss_huge 0
total_shmem 19308544
total_mapped_file 11112448
total_dirty 147456
total_writeback 0
total_workingset_refault_anon 0
total_workingset_refault_file 2897542
total_swap 65536
total_swapcached 0
total_pgpgin 87125327
total_pgpgout 87102746
total_pgfault 97916169
total_pgmajfault 19867
total_inactive_anon 4222976
total_active_anon 11784192
total_inactive_file 48828416
total_active_file 36679680
total_unevictable 12787712
";

/// blkio bytes for two devices, as kernel 6.x prints them.
const V1_IO_SERVICE_BYTES: &str = "\
254:0 Read 4096000
254:0 Write 1048576
254:0 Sync 1052672
254:0 Async 4091904
254:0 Discard 0
254:0 Total 5144576
7:0 Read 8192
7:0 Write 0
7:0 Sync 0
7:0 Async 8192
7:0 Discard 0
7:0 Total 8192
Total 5152768
";

/// blkio operations for the same devices.
const V1_IO_SERVICED: &str = "\
254:0 Read 250
254:0 Write 12
254:0 Sync 14
254:0 Async 248
254:0 Discard 0
254:0 Total 262
7:0 Read 2
7:0 Write 0
7:0 Sync 0
7:0 Async 2
7:0 Discard 0
7:0 Total 2
Total 264
";

/// A v1 container as kernel 6.x shows it.
fn v1_host(root: &Path) {
    tree(
        root,
        &[
            (&v1("cpuacct", "cpuacct.usage"), "2461836044227\n"),
            (&v1("cpuacct", "cpuacct.usage_user"), "1862138197866\n"),
            (&v1("cpuacct", "cpuacct.usage_sys"), "532631020961\n"),
            (
                &v1("cpuacct", "cpuacct.stat"),
                "user 191429\nsystem 54754\n",
            ),
            (
                &v1("cpu", "cpu.stat"),
                "nr_periods 120\nnr_throttled 14\nthrottled_time 523000000\nnr_bursts 0\nburst_time 0\n",
            ),
            (&v1("memory", "memory.usage_in_bytes"), "12582912\n"),
            (&v1("memory", "memory.limit_in_bytes"), "536870912\n"),
            (&v1("memory", "memory.max_usage_in_bytes"), "12713984\n"),
            (&v1("memory", "memory.stat"), V1_MEMORY_STAT),
            (
                &v1("memory", "memory.oom_control"),
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
            (
                &v1("blkio", "blkio.throttle.io_service_bytes_recursive"),
                V1_IO_SERVICE_BYTES,
            ),
            (&v1("blkio", "blkio.throttle.io_service_bytes"), "Total 0\n"),
            (
                &v1("blkio", "blkio.throttle.io_serviced_recursive"),
                V1_IO_SERVICED,
            ),
            (&v1("blkio", "blkio.throttle.io_serviced"), "Total 0\n"),
            (
                &v1("blkio", "blkio.bfq.io_service_bytes_recursive"),
                "Total 0\n",
            ),
            (&v1("blkio", "blkio.bfq.io_serviced_recursive"), "Total 0\n"),
            (&v1("pids", "pids.current"), "5\n"),
            (&v1("pids", "pids.max"), "64\n"),
            (&format!("proc/{PID}/net/dev"), NET_DEV),
        ],
    );
}

#[test]
fn v1_every_field() {
    let dir = tempfile::tempdir().unwrap();
    v1_host(dir.path());
    let m = collect(&sources(dir.path(), CgroupMode::V1), "web", CGROUP, PID).unwrap();
    assert_eq!(m.container_id, "web");
    assert_eq!(
        m.cpu,
        CpuMetrics {
            usage_total_ns: 2461836044227,
            usage_user_ns: 1862138197866,
            usage_system_ns: 532631020961,
            periods: 120,
            throttled_periods: 14,
            throttled_time_ns: 523000000,
        }
    );
    assert_eq!(
        m.memory,
        MemoryMetrics {
            usage_bytes: 12582912,
            limit_bytes: 536870912,
            cache_bytes: 104816640,
            rss_bytes: 9592832,
            max_usage_bytes: 12713984,
            oom_kill_count: 3,
            swap_bytes: 65536,
        }
    );
    assert_eq!(
        m.blkio,
        BlkioMetrics {
            read_bytes: 4096000 + 8192,
            write_bytes: 1048576,
            read_ops: 252,
            write_ops: 12,
        }
    );
    assert_eq!(
        m.pids,
        PidsMetrics {
            current: 5,
            limit: 64
        }
    );
    assert_eq!(m.network, expected_network());
}

#[test]
fn v1_hybrid_reads_as_v1() {
    let dir = tempfile::tempdir().unwrap();
    v1_host(dir.path());
    let v1 = collect(&sources(dir.path(), CgroupMode::V1), "web", CGROUP, PID).unwrap();
    let hybrid = collect(&sources(dir.path(), CgroupMode::Hybrid), "web", CGROUP, PID).unwrap();
    assert_eq!(
        (hybrid.cpu, hybrid.memory, hybrid.blkio),
        (v1.cpu, v1.memory, v1.blkio)
    );
}

#[test]
fn v1_older_kernels_and_no_limits() {
    let dir = tempfile::tempdir().unwrap();
    v1_host(dir.path());
    for file in [
        v1("cpuacct", "cpuacct.usage_user"),
        v1("cpuacct", "cpuacct.usage_sys"),
    ] {
        fs::remove_file(dir.path().join(file)).unwrap();
    }
    tree(
        dir.path(),
        &[
            (
                &v1("memory", "memory.limit_in_bytes"),
                "9223372036854771712\n",
            ),
            // Leaf cgroups of old kernels without total_ keys.
            (
                &v1("memory", "memory.stat"),
                "cache 8769536\nrss 1732608\nrss_huge 0\nshmem 0\nmapped_file 73728\n",
            ),
            (&v1("pids", "pids.max"), "max\n"),
        ],
    );
    let m = collect(&sources(dir.path(), CgroupMode::V1), "web", CGROUP, PID).unwrap();
    // USER_HZ is 100 on Linux: 10 ms per tick.
    assert_eq!(m.cpu.usage_user_ns, 191429 * 10_000_000);
    assert_eq!(m.cpu.usage_system_ns, 54754 * 10_000_000);
    assert_eq!(m.memory.limit_bytes, 0);
    assert_eq!(m.memory.cache_bytes, 8769536);
    assert_eq!(m.memory.rss_bytes, 1732608);
    assert_eq!(m.memory.swap_bytes, 0);
    assert_eq!(
        m.pids,
        PidsMetrics {
            current: 5,
            limit: 0
        }
    );
}

#[test]
fn v1_blkio_falls_back_when_the_throttle_files_list_no_device() {
    let dir = tempfile::tempdir().unwrap();
    v1_host(dir.path());
    let throttle = [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_serviced_recursive",
    ];
    for file in throttle {
        tree(dir.path(), &[(&v1("blkio", file), "Total 0\n")]);
    }
    let collect_blkio = || {
        collect(&sources(dir.path(), CgroupMode::V1), "web", CGROUP, PID)
            .unwrap()
            .blkio
    };
    // Nothing anywhere: zeros.
    assert_eq!(collect_blkio(), BlkioMetrics::default());

    // BFQ's statistics.
    tree(
        dir.path(),
        &[
            (
                &v1("blkio", "blkio.bfq.io_service_bytes_recursive"),
                V1_IO_SERVICE_BYTES,
            ),
            (
                &v1("blkio", "blkio.bfq.io_serviced_recursive"),
                V1_IO_SERVICED,
            ),
        ],
    );
    let full = BlkioMetrics {
        read_bytes: 4104192,
        write_bytes: 1048576,
        read_ops: 252,
        write_ops: 12,
    };
    assert_eq!(collect_blkio(), full);

    // CFQ's (kernels before 5.0, no BFQ), non-recursive only.
    for file in [
        "blkio.bfq.io_service_bytes_recursive",
        "blkio.bfq.io_serviced_recursive",
    ] {
        fs::remove_file(dir.path().join(v1("blkio", file))).unwrap();
    }
    tree(
        dir.path(),
        &[
            (&v1("blkio", "blkio.io_service_bytes"), V1_IO_SERVICE_BYTES),
            (&v1("blkio", "blkio.io_serviced"), V1_IO_SERVICED),
        ],
    );
    assert_eq!(collect_blkio(), full);

    // The non-recursive throttle files when the recursive ones are absent.
    for file in throttle {
        fs::remove_file(dir.path().join(v1("blkio", file))).unwrap();
    }
    tree(
        dir.path(),
        &[(
            &v1("blkio", "blkio.throttle.io_service_bytes"),
            "8:0 Read 1\n8:0 Write 2\n8:0 Sync 3\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 3\nTotal 3\n",
        )],
    );
    assert_eq!(
        collect_blkio(),
        BlkioMetrics {
            read_bytes: 1,
            write_bytes: 2,
            ..Default::default()
        }
    );
}

/// cpu.stat of a v2 cgroup with the cpu controller, kernel 6.x.
const V2_CPU_STAT: &str = "\
usage_usec 8281064
user_usec 6214331
system_usec 2066733
nice_usec 0
core_sched.force_idle_usec 0
nr_periods 4121
nr_throttled 312
throttled_usec 1839215
nr_bursts 0
burst_usec 0
";

/// memory.stat of a v2 cgroup, kernel 6.x.
const V2_MEMORY_STAT: &str = "\
anon 30085120
file 12857344
kernel 1126400
kernel_stack 49152
pagetables 311296
sec_pagetables 0
percpu 6720
sock 0
vmalloc 8192
shmem 0
zswap 0
zswapped 0
file_mapped 7335936
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 30064640
active_anon 20480
inactive_file 9179136
active_file 3678208
unevictable 0
slab_reclaimable 505832
slab_unreclaimable 226168
slab 732000
workingset_refault_anon 0
workingset_refault_file 0
workingset_activate_anon 0
workingset_activate_file 0
workingset_restore_anon 0
workingset_restore_file 0
workingset_nodereclaim 0
pgdemote_kswapd 0
pgdemote_direct 0
pgdemote_khugepaged 0
pgscan 0
pgsteal 0
pgscan_kswapd 0
pgscan_direct 0
pgscan_khugepaged 0
pgsteal_kswapd 0
pgsteal_direct 0
pgsteal_khugepaged 0
pgfault 18542
pgmajfault 41
pgrefill 0
pgactivate 5
pgdeactivate 0
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
zswpwb 0
thp_fault_alloc 0
thp_collapse_alloc 0
thp_swpout 0
thp_swpout_fallback 0
";

/// io.stat with a disk, the device-mapper volume on it, and a device
/// under iocost (its fields follow the standard ones).
const V2_IO_STAT: &str = "\
259:0 rbytes=21430272 wbytes=4304896 rios=612 wios=311 dbytes=0 dios=0
253:0 rbytes=21430272 wbytes=4304896 rios=612 wios=1077 dbytes=0 dios=0
8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0 cost.usage=1342 cost.wait=0 cost.indebt=0 cost.indelay=0
";

/// A v2 container as kernel 6.x shows it.
fn v2_host(root: &Path) {
    tree(
        root,
        &[
            (&v2("cpu.stat"), V2_CPU_STAT),
            (&v2("memory.current"), "44183552\n"),
            (&v2("memory.max"), "536870912\n"),
            (&v2("memory.peak"), "61505536\n"),
            (&v2("memory.stat"), V2_MEMORY_STAT),
            (&v2("memory.swap.current"), "1048576\n"),
            (
                &v2("memory.events"),
                "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n",
            ),
            (&v2("io.stat"), V2_IO_STAT),
            (&v2("pids.current"), "5\n"),
            (&v2("pids.max"), "max\n"),
            (&format!("proc/{PID}/net/dev"), NET_DEV),
        ],
    );
}

#[test]
fn v2_every_field() {
    let dir = tempfile::tempdir().unwrap();
    v2_host(dir.path());
    let m = collect(&sources(dir.path(), CgroupMode::V2), "web", CGROUP, PID).unwrap();
    assert_eq!(m.container_id, "web");
    assert_eq!(
        m.cpu,
        CpuMetrics {
            usage_total_ns: 8281064000,
            usage_user_ns: 6214331000,
            usage_system_ns: 2066733000,
            periods: 4121,
            throttled_periods: 312,
            throttled_time_ns: 1839215000,
        }
    );
    assert_eq!(
        m.memory,
        MemoryMetrics {
            usage_bytes: 44183552,
            limit_bytes: 536870912,
            cache_bytes: 12857344,
            rss_bytes: 30085120,
            max_usage_bytes: 61505536,
            oom_kill_count: 1,
            swap_bytes: 1048576,
        }
    );
    assert_eq!(
        m.blkio,
        BlkioMetrics {
            read_bytes: 2 * 21430272 + 4096,
            write_bytes: 2 * 4304896,
            read_ops: 2 * 612 + 1,
            write_ops: 311 + 1077,
        }
    );
    assert_eq!(
        m.pids,
        PidsMetrics {
            current: 5,
            limit: 0
        }
    );
    assert_eq!(m.network, expected_network());
}

#[test]
fn v2_without_the_cpu_controller_or_memory_peak_and_unlimited() {
    let dir = tempfile::tempdir().unwrap();
    v2_host(dir.path());
    fs::remove_file(dir.path().join(v2("memory.peak"))).unwrap();
    tree(
        dir.path(),
        &[
            // cpu.stat without the cpu controller enabled.
            (
                &v2("cpu.stat"),
                "usage_usec 8281064\nuser_usec 6214331\nsystem_usec 2066733\nnice_usec 0\n",
            ),
            (&v2("memory.max"), "max\n"),
            (&v2("pids.max"), "128\n"),
            (&v2("io.stat"), ""),
        ],
    );
    let m = collect(&sources(dir.path(), CgroupMode::V2), "web", CGROUP, PID).unwrap();
    assert_eq!(
        m.cpu,
        CpuMetrics {
            usage_total_ns: 8281064000,
            usage_user_ns: 6214331000,
            usage_system_ns: 2066733000,
            ..Default::default()
        }
    );
    assert_eq!(m.memory.limit_bytes, 0);
    assert_eq!(m.memory.max_usage_bytes, 0);
    assert_eq!(m.memory.usage_bytes, 44183552);
    assert_eq!(m.blkio, BlkioMetrics::default());
    assert_eq!(m.pids.limit, 128);
}

#[test]
fn missing_files_give_zeros_and_a_gone_process_no_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [CgroupMode::V1, CgroupMode::V2] {
        let m = collect(&sources(dir.path(), mode), "web", CGROUP, PID).unwrap();
        assert_eq!(m.cpu, CpuMetrics::default());
        assert_eq!(m.memory, MemoryMetrics::default());
        assert_eq!(m.blkio, BlkioMetrics::default());
        assert_eq!(m.pids, PidsMetrics::default());
        assert!(m.network.is_empty());
    }
}

#[test]
fn a_malformed_file_is_an_error_naming_it() {
    let cases = [
        (
            CgroupMode::V1,
            v1("cpuacct", "cpuacct.usage"),
            "2461836044227x\n",
        ),
        (
            CgroupMode::V1,
            v1("memory", "memory.stat"),
            "cache 1\ntotal_rss -5\n",
        ),
        (CgroupMode::V1, v1("pids", "pids.max"), "unlimited\n"),
        (
            CgroupMode::V1,
            v1("blkio", "blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read\n",
        ),
        (CgroupMode::V2, v2("memory.current"), "12a\n"),
        (CgroupMode::V2, v2("cpu.stat"), "usage_usec\n"),
        (CgroupMode::V2, v2("io.stat"), "8:0 rbytes 12\n"),
        (CgroupMode::V2, v2("io.stat"), "8:0 rbytes=12 wbytes=lots\n"),
        (
            CgroupMode::V2,
            format!("proc/{PID}/net/dev"),
            "h\nh\n  lo: 1 2 3\n",
        ),
        (
            CgroupMode::V2,
            format!("proc/{PID}/net/dev"),
            "h\nh\n  lo 1 2 3\n",
        ),
    ];
    for (mode, file, content) in cases {
        let dir = tempfile::tempdir().unwrap();
        match mode {
            CgroupMode::V2 => v2_host(dir.path()),
            _ => v1_host(dir.path()),
        }
        tree(dir.path(), &[(&file, content)]);
        let err = collect(&sources(dir.path(), mode), "web", CGROUP, PID).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{file}: {err}");
        let path = dir.path().join(&file);
        assert!(
            err.to_string().contains(&*path.to_string_lossy()),
            "{file}: {err}"
        );
    }
}

#[test]
fn net_dev_of_older_kernels_without_a_space_after_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let net_dev = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0:4294967296 3000000    0    0    0     0          0         0 12345678901    5105    0    0    0     0       0          0
";
    tree(dir.path(), &[(&format!("proc/{PID}/net/dev"), net_dev)]);
    let m = collect(&sources(dir.path(), CgroupMode::V2), "web", CGROUP, PID).unwrap();
    assert_eq!(
        m.network,
        [InterfaceMetrics {
            name: "eth0".into(),
            rx_bytes: 4294967296,
            rx_packets: 3000000,
            tx_bytes: 12345678901,
            tx_packets: 5105,
            ..Default::default()
        }]
    );
}

#[test]
fn oom_kill_count_in_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    v1_host(dir.path());
    assert_eq!(
        oom_kill_count(&sources(dir.path(), CgroupMode::V1), CGROUP).unwrap(),
        3
    );
    let dir = tempfile::tempdir().unwrap();
    v2_host(dir.path());
    assert_eq!(
        oom_kill_count(&sources(dir.path(), CgroupMode::V2), CGROUP).unwrap(),
        1
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        oom_kill_count(&sources(empty.path(), CgroupMode::V2), CGROUP).unwrap(),
        0
    );
}

/// This test process's own cgroups and network namespace. On v1 its
/// cgroup may differ per controller, so the test points a root of its own
/// at each controller's directory and reads the cgroup `/` under it.
#[test]
fn this_process_on_this_host() {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let links = tempfile::tempdir().unwrap();
    let (sources, cgroup_path) = match libcrun_sys::cgroup::detect().unwrap() {
        CgroupMode::V2 => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            (Sources::host(CgroupMode::V2), path.to_string())
        }
        mode @ (CgroupMode::V1 | CgroupMode::Hybrid) => {
            for line in own.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) =
                    (parts.next(), parts.next().unwrap(), parts.next().unwrap());
                for controller in controllers.split(',') {
                    if ["cpu", "cpuacct", "memory", "blkio", "pids"].contains(&controller) {
                        let real = Path::new("/sys/fs/cgroup")
                            .join(controller)
                            .join(relative(path));
                        std::os::unix::fs::symlink(real, links.path().join(controller)).unwrap();
                    }
                }
            }
            let sources = Sources {
                cgroup_root: links.path().to_path_buf(),
                proc_root: "/proc".into(),
                mode,
            };
            (sources, "/".to_string())
        }
    };
    let pid = i32::try_from(std::process::id()).unwrap();
    let m = collect(&sources, "self", &cgroup_path, pid).unwrap();
    assert!(m.cpu.usage_total_ns > 0, "{:?}", m.cpu);
    assert!(
        m.cpu.usage_user_ns + m.cpu.usage_system_ns > 0,
        "{:?}",
        m.cpu
    );
    assert!(m.memory.usage_bytes > 0, "{:?}", m.memory);
    assert!(m.network.iter().any(|i| i.name == "lo"), "{:?}", m.network);
    assert!(m.network.is_sorted_by(|a, b| a.name <= b.name));
    assert!(m.time.elapsed().is_ok_and(|age| age.as_secs() < 60));
}
