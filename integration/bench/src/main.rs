//! `crun-shim-bench`: libcrun-shim measured beside its anchors (the crun
//! CLI, podman, containerd 1.6) on this machine, in one run:
//!
//! 1. lifecycle latency of `/bin/true`;
//! 2. throughput at concurrency 1, 4 and 16;
//! 3. log streaming to a follower;
//! 4. memory per idle container at 1, 10 and 100, and the metrics of
//!    all 100 in one call;
//! 5. exit event latency;
//! 6. image pull + unpack, and create-to-started of image containers;
//! 7. the lifecycle of a bridged container with a published port;
//! 8. the VM path under QEMU TCG: boot, lifecycle through the VM's agent
//!    beside the local one, and one call over hybrid vsock;
//! 9. containerd through our shim vs its runc.v2 shim on crun: `ctr run
//!    --rm` latency and memory per idle task;
//! 10. Kubernetes CRI through crictl: a pod and one container against
//!     crun-shim-cri vs containerd 1.6's CRI plugin.
//!
//! It prints a table of medians and ratios and writes `results.json`,
//! `results.md` and `results.svg`. `integration/bench.sh` installs the
//! anchors, builds in release and runs it; see `integration/BENCHMARKS.md`.
//! Needs root. Every anchor runs on private state that is removed after.
//!
//! It finds `crun-shimd`, `crun-shim-agent` and `crun-shim` in
//! `CRUN_SHIM_BIN_DIR`: libcrun (linked for its cgroup set-up) re-executes
//! every program linking it from an anonymous copy, which has no directory
//! to find its siblings in.

mod anchors;
mod ours;
mod procs;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;

use report::{Machine, Report};
use scenarios::Setup;

/// The suite's options.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Options {
    /// Where results.{json,md,svg} go.
    #[arg(long, default_value = "integration/bench/results")]
    out: PathBuf,
    /// Repetitions of each timed run (lifecycle, image starts; events
    /// take at least 100).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Containers per throughput level.
    #[arg(long, default_value_t = 200)]
    containers: usize,
    /// MiB the log benchmark writes.
    #[arg(long, default_value_t = 1024)]
    log_mib: u64,
    /// Only these scenarios (lifecycle, throughput, logs, memory, events,
    /// shim, pull, vm, network, cri).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    // This machine's hybrid cgroups: a private mount namespace where
    // libcrun (ours, and crun under every anchor) sees cgroup v1.
    let cgroups = libcrun_sys::cgroup::prepare_process()?;
    let rootfs = integration::BusyboxRootfs::new()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run_all(
        &options,
        &rootfs.path(),
        format!("{:?}", cgroups.host_mode),
    ))?;
    print!("{}", report.markdown());
    report.write(&options.out)?;
    println!("\nwritten to {}", options.out.display());
    Ok(())
}

async fn run_all(
    options: &Options,
    rootfs: &std::path::Path,
    cgroups: String,
) -> Result<Report, Box<dyn std::error::Error>> {
    let setup = Setup {
        rootfs,
        runs: options.runs,
        options,
    };
    let ours = ours::Ours::start().await?;
    // The agent says which libcrun it runs.
    let libcrun = ours.agent_runtime().await?.version().await?.libcrun_version;
    let machine = machine(cgroups, libcrun);
    let wanted = |id: &str| options.only.is_empty() || options.only.iter().any(|o| o == id);
    let mut report = Report {
        machine,
        scenarios: Vec::new(),
        failed: Vec::new(),
    };
    let mut record = |id: &str, outcome: scenarios::Outcome| match outcome {
        Ok(scenario) => {
            eprintln!("bench: {id} done");
            report.scenarios.push(scenario);
        }
        Err(e) => {
            eprintln!("bench: {id} failed: {e}");
            report.failed.push((id.to_string(), e.to_string()));
        }
    };
    if wanted("lifecycle") {
        record(
            "lifecycle",
            scenarios::lifecycle::measure(&setup, &ours).await,
        );
    }
    if wanted("throughput") {
        record(
            "throughput",
            scenarios::throughput::measure(&setup, &ours).await,
        );
    }
    if wanted("logs") {
        record("logs", scenarios::logs::measure(&setup, &ours).await);
    }
    if wanted("memory") {
        match scenarios::memory::measure(&setup, &ours).await {
            Ok([pss, rss, metrics]) => {
                record("memory-pss", Ok(pss));
                record("memory-rss", Ok(rss));
                record("metrics", Ok(metrics));
            }
            Err(e) => record("memory", Err(e)),
        }
    }
    if wanted("events") {
        record("events", scenarios::events::measure(&setup, &ours).await);
    }
    if wanted("network") {
        record("network", scenarios::network::measure(&setup, &ours).await);
    }
    if wanted("shim") {
        record("shim", scenarios::shim::latency(&setup));
        record("shim-memory", scenarios::shim::memory(&setup));
    }
    if wanted("pull") {
        match scenarios::images::measure(&setup, &ours).await {
            Ok((pulls, starts)) => {
                record("pull", Ok(pulls));
                record("image-start", Ok(starts));
            }
            Err(e) => record("pull", Err(e)),
        }
    }
    if wanted("cri") {
        match scenarios::cri::measure(&setup).await {
            Ok([cycle, steps]) => {
                record("cri", Ok(cycle));
                record("cri-steps", Ok(steps));
            }
            Err(e) => record("cri", Err(e)),
        }
    }
    if wanted("vm") {
        match scenarios::vm::measure(&setup).await {
            Ok([boot, cycle, hop]) => {
                record("vm-boot", Ok(boot));
                record("vm-lifecycle", Ok(cycle));
                record("vm-hop", Ok(hop));
            }
            Err(e) => record("vm", Err(e)),
        }
    }
    Ok(report)
}

/// The machine, and the version of every runtime measured.
fn machine(cgroups: String, libcrun: String) -> Machine {
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .unwrap_or_else(|| "not installed".into())
    };
    Machine {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cgroups,
        versions: vec![
            ("libcrun-shim".into(), env!("CARGO_PKG_VERSION").into()),
            ("libcrun (in-process)".into(), libcrun),
            ("crun".into(), anchors::version("crun")),
            ("podman".into(), anchors::version("podman")),
            ("containerd".into(), anchors::version("containerd")),
            ("skopeo".into(), anchors::version("skopeo")),
            ("umoci".into(), anchors::version("umoci")),
        ],
        date: first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    }
}
