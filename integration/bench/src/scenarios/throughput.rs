//! 2. Throughput: N containers of `/bin/true`, each created, started,
//!    waited for and deleted, at concurrency 1, 4 and 16; containers per
//!    second, ours (the SDK) beside podman and containerd.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;

use super::{Outcome, Setup, config, lifecycle};
use crate::anchors::{containerd::Containerd, podman::Podman};
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure};

/// The concurrency levels.
pub const LEVELS: [usize; 3] = [1, 4, 16];

/// Runs the scenario: one figure per subject and level.
pub async fn measure(setup: &Setup<'_>, ours: &Ours) -> Outcome {
    let rootfs = setup.rootfs;
    let total = setup.options.containers;
    let mut scenario = Scenario::new(
        "throughput",
        &format!("Throughput: {total} containers create+start+wait+delete"),
        "containers/s",
        Better::Higher,
        "libcrun-shim SDK, c=1",
    );
    for level in LEVELS {
        let began = Instant::now();
        let results: Vec<_> = futures::stream::iter(0..total)
            .map(|i| {
                let config = config(rootfs, &format!("tp{level}-{i}"), &["/bin/true"]);
                lifecycle(&ours.runtime, config)
            })
            .buffer_unordered(level)
            .collect()
            .await;
        let took = began.elapsed();
        for code in results {
            if code? != 0 {
                return Err("/bin/true failed".into());
            }
        }
        scenario.push(Figure::single(
            &format!("libcrun-shim SDK, c={level}"),
            total as f64 / took.as_secs_f64(),
        ));
    }
    let podman = Podman::new()?;
    for level in LEVELS {
        let rate = processes(total, level, |i| {
            podman.run_rm(rootfs, &format!("tp{level}-{i}"), &["/bin/true"])
        })?;
        scenario.push(Figure::single(&format!("podman, c={level}"), rate));
    }
    drop(podman);
    let containerd = Containerd::start()?;
    for level in LEVELS {
        let rate = processes(total, level, |i| {
            containerd.run_rm(rootfs, &format!("tp{level}-{i}"), &["/bin/true"])
        })?;
        scenario.push(Figure::single(
            &format!("containerd (ctr), c={level}"),
            rate,
        ));
    }
    Ok(scenario)
}

/// Runs `one(i)` for i in 0..total on `level` threads; runs per second.
fn processes(
    total: usize,
    level: usize,
    one: impl Fn(usize) -> std::io::Result<()> + Sync,
) -> std::io::Result<f64> {
    let next = AtomicUsize::new(0);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..level)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok::<(), std::io::Error>(());
                        }
                        one(i)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;
    Ok(total as f64 / began.elapsed().as_secs_f64())
}
