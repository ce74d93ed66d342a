//! The agent beside the crun CLI, on this machine:
//!
//! 1. lifecycle latency: 100 sequential create+start+wait+delete of
//!    `/bin/true` on one busybox rootfs, through the agent's gRPC API,
//!    beside `crun run` of the same rootfs (the floor);
//! 2. memory: RSS and PSS of the agent plus the monitors, before and
//!    after starting 100 idle (sleeping) containers;
//! 3. metrics: one ListMetrics call over those 100 running containers.
//!
//! Run with `integration/bench.sh` (installs crun, builds in release).
//! Prints medians and ratios; a benchmark, not a test: it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration::BusyboxRootfs;
use integration::agent::AgentProcess;
use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;
use libcrun_shim_proto::v1::metrics_service_client::MetricsServiceClient;

const RUNS: usize = 100;
const IDLE: usize = 100;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `crun run` of `/bin/true`, `RUNS` times.
fn crun_runs(rootfs: &Path) -> Vec<Duration> {
    let bundle = tempfile::tempdir().expect("bundle");
    let state = tempfile::tempdir().expect("state");
    let spec = Command::new("crun")
        .arg("spec")
        .current_dir(bundle.path())
        .status()
        .expect("crun spec");
    assert!(spec.success());
    let path = bundle.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["process"]["terminal"] = serde_json::json!(false);
    config["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    (0..RUNS)
        .map(|i| {
            let began = Instant::now();
            let status = Command::new("crun")
                .arg("--root")
                .arg(state.path())
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(format!("bench-{i}"))
                .status()
                .expect("crun run");
            let took = began.elapsed();
            assert!(status.success(), "crun run failed");
            took
        })
        .collect()
}

fn config(rootfs: &Path, id: &str, command: &[&str]) -> pb::ContainerConfig {
    pb::ContainerConfig {
        id: id.into(),
        root: Some(pb::container_config::Root::Rootfs(
            rootfs.display().to_string(),
        )),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// create+start+wait+delete through the agent, `RUNS` times.
async fn agent_runs(
    client: &mut ContainerServiceClient<tonic::transport::Channel>,
    rootfs: &Path,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let id = format!("bench-{i}");
        let began = Instant::now();
        client
            .create(pb::CreateContainerRequest {
                config: Some(config(rootfs, &id, &["/bin/true"])),
                agent: String::new(),
            })
            .await
            .expect("create");
        client
            .start(pb::StartContainerRequest { id: id.clone() })
            .await
            .expect("start");
        let exit = client
            .wait(pb::WaitContainerRequest { id: id.clone() })
            .await
            .expect("wait");
        client
            .delete(pb::DeleteContainerRequest { id, force: false })
            .await
            .expect("delete");
        times.push(began.elapsed());
        assert_eq!(exit.into_inner().exit.unwrap().exit_code, 0);
    }
    times
}

/// RSS and PSS in KiB of a process (from smaps_rollup).
fn rss_pss(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// The agent and its monitors (its `crun-shim-monitor` children, the
/// spare included).
fn agent_and_monitors(agent: u32) -> Vec<u32> {
    let mut pids = vec![agent];
    pids.extend(
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
                ppid == Some(agent) && argv0.ends_with(b"crun-shim-monitor")
            }),
    );
    pids
}

fn total(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .map(|p| rss_pss(*p))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn main() {
    // Benchmarks get harness flags like --bench; there is nothing to filter.
    let prep = libcrun_sys::cgroup::prepare_process().expect("cgroups");
    let rootfs = BusyboxRootfs::new().expect("rootfs");
    let agent_bin = PathBuf::from(env!("CARGO_BIN_EXE_crun-shim-agent"));
    let monitor_bin = PathBuf::from(env!("CARGO_BIN_EXE_crun-shim-monitor"));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let crun_version = Command::new("crun").arg("--version").output().map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    });
    println!(
        "machine: kernel {}, {} cpus, cgroups {:?}; {}; libcrun {} in-process",
        kernel.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        prep.host_mode,
        crun_version.unwrap_or_else(|_| "crun not installed".into()),
        libcrun_sys::libcrun_version()
    );

    let crun = crun_runs(&rootfs.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let agent = AgentProcess::start(&agent_bin, &monitor_bin).expect("agent");
    let (ours, memory, metrics_times) = runtime.block_on(async {
        let mut client = ContainerServiceClient::new(agent.channel().await);
        // Warm up (page cache, first connections).
        let _ = agent_runs_n(&mut client, &rootfs.path(), 5).await;
        let ours = agent_runs(&mut client, &rootfs.path()).await;

        let agent_pid = agent.pid().expect("agent pid");
        let before_pids = agent_and_monitors(agent_pid);
        let before = total(&before_pids);
        for i in 0..IDLE {
            let id = format!("idle-{i}");
            client
                .create(pb::CreateContainerRequest {
                    config: Some(config(&rootfs.path(), &id, &["sleep", "3600"])),
                    agent: String::new(),
                })
                .await
                .expect("create");
            client
                .start(pb::StartContainerRequest { id })
                .await
                .expect("start");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pids = agent_and_monitors(agent_pid);
        let after = total(&pids);
        let one_monitor = pids.get(1).map(|p| rss_pss(*p)).unwrap_or_default();
        let mut metrics_client = MetricsServiceClient::new(agent.channel().await);
        let mut metrics_times = Vec::new();
        for _ in 0..20 {
            let began = Instant::now();
            let all = metrics_client
                .list_metrics(pb::ListMetricsRequest::default())
                .await
                .expect("list metrics")
                .into_inner();
            metrics_times.push(began.elapsed());
            assert_eq!(all.metrics.len(), IDLE);
        }
        for i in 0..IDLE {
            let _ = client
                .delete(pb::DeleteContainerRequest {
                    id: format!("idle-{i}"),
                    force: true,
                })
                .await;
        }
        (
            ours,
            (before, after, pids.len() - before_pids.len(), one_monitor),
            metrics_times,
        )
    });

    println!();
    println!("lifecycle of /bin/true, {RUNS} sequential runs (ms)");
    println!("{:<44} {:>8} {:>8} {:>8}", "", "median", "p90", "ratio");
    let floor = median(crun.clone());
    for (name, times) in [
        ("crun run (CLI, the floor)", crun),
        ("agent gRPC create+start+wait+delete", ours),
    ] {
        let m = median(times.clone());
        println!(
            "{:<44} {:>8.2} {:>8.2} {:>8.2}",
            name,
            ms(m),
            ms(percentile(times, 0.9)),
            m.as_secs_f64() / floor.as_secs_f64()
        );
    }
    let ((rss0, pss0), (rss1, pss1), n, (mrss, mpss)) = memory;
    println!();
    println!("memory of {IDLE} idle containers ({n} monitors more)");
    println!("  agent + spare monitor:     RSS {rss0} KiB, PSS {pss0} KiB");
    println!("  agent + all monitors:      RSS {rss1} KiB, PSS {pss1} KiB");
    println!(
        "  added per container:       RSS {:.0} KiB, PSS {:.0} KiB (one monitor: RSS {mrss} KiB, PSS {mpss} KiB)",
        rss1.saturating_sub(rss0) as f64 / IDLE as f64,
        pss1.saturating_sub(pss0) as f64 / IDLE as f64
    );
    println!();
    println!(
        "ListMetrics over {IDLE} running containers, 20 calls: median {:.2} ms, p90 {:.2} ms (goal < 50 ms)",
        ms(median(metrics_times.clone())),
        ms(percentile(metrics_times, 0.9))
    );
}

async fn agent_runs_n(
    client: &mut ContainerServiceClient<tonic::transport::Channel>,
    rootfs: &Path,
    n: usize,
) -> usize {
    for i in 0..n {
        let id = format!("warm-{i}");
        client
            .create(pb::CreateContainerRequest {
                config: Some(config(rootfs, &id, &["/bin/true"])),
                agent: String::new(),
            })
            .await
            .expect("create");
        client
            .start(pb::StartContainerRequest { id: id.clone() })
            .await
            .expect("start");
        client
            .wait(pb::WaitContainerRequest { id: id.clone() })
            .await
            .expect("wait");
        client
            .delete(pb::DeleteContainerRequest { id, force: false })
            .await
            .expect("delete");
    }
    n
}
