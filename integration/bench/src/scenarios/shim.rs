//! 7. containerd through our shim: `ctr run --rm` of `/bin/true` with
//!    `io.containerd.crunshim.v2` beside containerd's own
//!    `io.containerd.runc.v2` running crun (`--runc-binary`), and the memory
//!    per idle task of `containerd-shim-crunshim-v2` beside
//!    `containerd-shim-runc-v2`. containerd 1.6, and 2.x when the set-up
//!    built it (`CONTAINERD2`).

use std::path::Path;

use integration::containerd::{Containerd, Version};

use super::{Outcome, Setup, timed};
use crate::anchors::run;
use crate::procs::{self, Memory};
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Warm-up runs of each subject, not counted.
const WARM_UP: usize = 3;
/// Idle tasks per shim for the memory figures.
const IDLE_TASKS: usize = 10;
/// Our runtime.
const OURS: &str = "io.containerd.crunshim.v2";

/// The versions to measure: 1.6 always, 2.x when present.
fn versions() -> Vec<(Version, &'static str)> {
    let mut versions = vec![(Version::V16, "1.6")];
    if Version::V2.binaries().is_ok() {
        versions.push((Version::V2, "2.x"));
    }
    versions
}

/// `ctr run` arguments of a runtime: ours, or runc.v2 on crun.
fn runtime_args(ours: bool) -> Vec<&'static str> {
    if ours {
        vec!["--runtime", OURS]
    } else {
        vec!["--runc-binary", "/usr/bin/crun"]
    }
}

/// Runs the latency scenario.
pub fn latency(setup: &Setup<'_>) -> Outcome {
    let mut scenario = Scenario::new(
        "shim",
        "containerd: ctr run --rm of /bin/true (sequential)",
        "ms",
        Better::Lower,
        "runc.v2 + crun, containerd 1.6",
    )
    .goal("our shim faster than containerd's runc.v2 shim running crun");
    for (version, name) in versions() {
        let ctd = Containerd::start(version)?;
        // Debian's crun 1.8.1 refuses containerd 2's spec version (1.2):
        // runc.v2 on crun runs on 1.6 only; our agent reconciles it.
        let subjects: &[bool] = if version == Version::V16 {
            &[false, true]
        } else {
            &[true]
        };
        for &ours in subjects {
            let subject = if ours {
                format!("crunshim.v2, containerd {name}")
            } else {
                format!("runc.v2 + crun, containerd {name}")
            };
            let times = (0..WARM_UP + setup.runs)
                .map(|i| {
                    timed(|| {
                        let id = format!("lat-{}-{i}", u8::from(ours));
                        run(ctd
                            .ctr(&["run", "--rm", "--null-io"])
                            .args(runtime_args(ours))
                            .arg("--rootfs")
                            .arg(setup.rootfs)
                            .args([id.as_str(), "/bin/true"]))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            scenario.push(Figure::of(&subject, &millis(&times[WARM_UP..])));
        }
    }
    Ok(scenario)
}

/// The shims of one runtime serving this containerd.
fn shims(ctd: &Containerd, binary: &str) -> Vec<u32> {
    let socket = ctd.socket().display().to_string();
    procs::by_name(binary)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&socket))
        })
        .collect()
}

fn per_task(total: Memory, tasks: usize) -> (f64, f64) {
    (
        total.pss_kib as f64 / tasks as f64,
        total.rss_kib as f64 / tasks as f64,
    )
}

/// Starts idle tasks with one runtime and returns the memory per task of
/// its shims (and, for ours, of the agent's monitors too).
fn idle(
    ctd: &Containerd,
    rootfs: &Path,
    ours: bool,
) -> Result<(Memory, Memory), Box<dyn std::error::Error>> {
    for i in 0..IDLE_TASKS {
        let id = format!("idle-{}-{i}", u8::from(ours));
        run(ctd
            .ctr(&["run", "-d", "--null-io"])
            .args(runtime_args(ours))
            .arg("--rootfs")
            .arg(rootfs)
            .args([id.as_str(), "/bin/sleep", "100000"]))?;
    }
    // Let them settle (the shims' first allocations, the agents' trims).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let binary = if ours {
        "containerd-shim-crunshim-v2"
    } else {
        "containerd-shim-runc-v2"
    };
    let shim_pids = shims(ctd, binary);
    if shim_pids.len() != IDLE_TASKS {
        return Err(format!(
            "{} {binary} processes for {IDLE_TASKS} tasks",
            shim_pids.len()
        )
        .into());
    }
    let shims = procs::total(&shim_pids);
    // Our per-task cost also has the container's monitor (it holds the
    // stdio and the exit that runc's shim holds itself).
    let monitors = if ours {
        let host = ctd.host.pid().unwrap_or(0);
        let agent = procs::by_name("crun-shim-agent")
            .into_iter()
            .find(|(_, parent)| *parent == host)
            .map(|(pid, _)| pid)
            .unwrap_or(0);
        let pids: Vec<u32> = procs::by_name("crun-shim-monitor")
            .into_iter()
            .filter(|(_, parent)| *parent == agent)
            .map(|(pid, _)| pid)
            .collect();
        procs::total(&pids)
    } else {
        Memory::default()
    };
    for i in 0..IDLE_TASKS {
        let id = format!("idle-{}-{i}", u8::from(ours));
        let _ = ctd.run(&["task", "kill", "-s", "SIGKILL", &id]);
        let _ = ctd.run(&["task", "rm", "-f", &id]);
        let _ = ctd.run(&["container", "rm", &id]);
    }
    Ok((shims, monitors))
}

/// Runs the memory scenario.
pub fn memory(setup: &Setup<'_>) -> Outcome {
    let mut scenario = Scenario::new(
        "shim-memory",
        "containerd: memory per idle task (10 tasks, PSS and RSS)",
        "KiB",
        Better::Lower,
        "containerd-shim-runc-v2 RSS, containerd 1.6",
    )
    .goal("our shim ≤ 1/4 of containerd-shim-runc-v2's RSS per task");
    for (version, name) in versions() {
        let ctd = Containerd::start(version)?;
        let (ours, monitors) = idle(&ctd, setup.rootfs, true)?;
        if version == Version::V16 {
            let (runc, _) = idle(&ctd, setup.rootfs, false)?;
            let (runc_pss, runc_rss) = per_task(runc, IDLE_TASKS);
            scenario.push(Figure::single(
                &format!("containerd-shim-runc-v2 RSS, containerd {name}"),
                runc_rss,
            ));
            scenario.push(Figure::single(
                &format!("containerd-shim-runc-v2 PSS, containerd {name}"),
                runc_pss,
            ));
        }
        let (ours_pss, ours_rss) = per_task(ours, IDLE_TASKS);
        let (both_pss, both_rss) = per_task(ours + monitors, IDLE_TASKS);
        scenario.push(Figure::single(
            &format!("containerd-shim-crunshim-v2 RSS, containerd {name}"),
            ours_rss,
        ));
        scenario.push(Figure::single(
            &format!("containerd-shim-crunshim-v2 PSS, containerd {name}"),
            ours_pss,
        ));
        scenario.push(Figure::single(
            &format!("crunshim-v2 + monitor RSS, containerd {name}"),
            both_rss,
        ));
        scenario.push(Figure::single(
            &format!("crunshim-v2 + monitor PSS, containerd {name}"),
            both_pss,
        ));
    }
    Ok(scenario)
}
