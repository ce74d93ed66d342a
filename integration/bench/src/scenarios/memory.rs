//! 4. Memory of idle containers (`sleep`): RSS and PSS of what each
//!    runtime keeps per container (our monitor, podman's conmon,
//!    containerd's shim), at 1, 10 and 100 containers, per container.

use std::time::Duration;

use super::{Setup, config};
use crate::anchors::{containerd::Containerd, podman::Podman};
use crate::ours::Ours;
use crate::procs::{self, Memory};
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// The counts measured at.
pub const COUNTS: [usize; 3] = [1, 10, 100];

/// By absolute path: `ctr run --rootfs` gives the process no PATH.
const IDLE: [&str; 2] = ["/bin/sleep", "3600"];

/// Runs the scenario: per-container PSS, then RSS (KiB) at each count;
/// and, with the 100 containers running, the all-containers metrics call.
pub async fn measure(
    setup: &Setup<'_>,
    ours: &Ours,
) -> Result<[Scenario; 3], Box<dyn std::error::Error>> {
    let rootfs = setup.rootfs;
    let per_container = |id: &str, what: &str| {
        Scenario::new(
            id,
            &format!("Memory per idle container, {what}"),
            "KiB",
            Better::Lower,
            "libcrun-shim monitor, n=100",
        )
        .goal("≤ 1 MiB per container")
    };
    let mut pss = per_container("memory-pss", "PSS (shared pages divided among their users)");
    let mut rss = per_container("memory-rss", "RSS (shared pages counted in full by each)");

    // Ours: the agent and its monitors; the growth over the idle agent,
    // per container.
    let base = procs::total(&ours.agent_and_monitors()?);
    let mut started = 0;
    let mut ours_at = Vec::new();
    for count in COUNTS {
        while started < count {
            let id = format!("idle-{started}");
            ours.runtime.create(config(rootfs, &id, &IDLE)).await?;
            ours.runtime.start(&id).await?;
            started += 1;
        }
        settle();
        let now = procs::total(&ours.agent_and_monitors()?);
        ours_at.push((count, per(now, base, count)));
    }
    let mut metrics = Scenario::new(
        "metrics",
        "Metrics of all containers, one call over 100 running",
        "ms",
        Better::Lower,
        "libcrun-shim SDK all_metrics",
    )
    .goal("< 50 ms");
    let mut times = Vec::new();
    for _ in 0..setup.runs {
        let began = std::time::Instant::now();
        let all = ours.runtime.all_metrics().await?;
        times.push(began.elapsed());
        if all.len() != started {
            return Err(format!("metrics of {} containers, not {started}", all.len()).into());
        }
    }
    metrics.push(Figure::of("libcrun-shim SDK all_metrics", &millis(&times)));
    for i in 0..started {
        ours.runtime.delete_with(&format!("idle-{i}"), true).await?;
    }

    let podman = Podman::new()?;
    let podman_at = anchor(|id| podman.run_detached(rootfs, id, &IDLE), "conmon")?;
    drop(podman);
    let containerd = Containerd::start()?;
    let containerd_at = anchor(
        |id| containerd.run_detached(rootfs, id, &IDLE),
        "containerd-shim-runc-v2",
    )?;
    drop(containerd);

    for (who, at) in [
        ("libcrun-shim monitor", ours_at),
        ("podman conmon", podman_at),
        ("containerd shim", containerd_at),
    ] {
        for (count, memory) in at {
            let subject = format!("{who}, n={count}");
            pss.push(Figure::single(&subject, memory.pss_kib as f64));
            rss.push(Figure::single(&subject, memory.rss_kib as f64));
        }
    }
    Ok([pss, rss, metrics])
}

/// An anchor's memory per container at each count: the processes named
/// `process` (one or more per container), after `start` of each.
fn anchor(
    start: impl Fn(&str) -> std::io::Result<()>,
    process: &str,
) -> std::io::Result<Vec<(usize, Memory)>> {
    let mut at = Vec::new();
    let mut started = 0;
    for count in COUNTS {
        while started < count {
            start(&format!("idle-{started}"))?;
            started += 1;
        }
        settle();
        let pids: Vec<u32> = procs::by_name(process)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        at.push((count, per(procs::total(&pids), Memory::default(), count)));
    }
    Ok(at)
}

/// Lets new processes settle before they are measured.
fn settle() {
    std::thread::sleep(Duration::from_secs(1));
}

/// The growth from `base` to `now`, per container.
fn per(now: Memory, base: Memory, count: usize) -> Memory {
    Memory {
        rss_kib: now.rss_kib.saturating_sub(base.rss_kib) / count as u64,
        pss_kib: now.pss_kib.saturating_sub(base.pss_kib) / count as u64,
    }
}
