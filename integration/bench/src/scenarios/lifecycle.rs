//! 1. Lifecycle latency of `/bin/true` on one busybox rootfs, sequential:
//!    `crun run` (the floor) and `crun run` of the spec our agent writes,
//!    the SDK through crun-shimd and its agent (and
//!    to the agent directly: the host's hop),
//!    `crun-shim run --rm`, `podman run --rm --rootfs`, `ctr run --rm`.

use std::time::Instant;

use super::{Outcome, Setup, config, lifecycle, timed};
use crate::anchors::{containerd::Containerd, crun::Crun, podman::Podman, run};
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Warm-up runs of each subject, not counted.
const WARM_UP: usize = 3;

/// Runs the scenario.
pub async fn measure(setup: &Setup<'_>, ours: &Ours) -> Outcome {
    let rootfs = setup.rootfs;
    let n = setup.runs;
    let args = ["/bin/true"];
    let mut scenario = Scenario::new(
        "lifecycle",
        "Lifecycle of /bin/true (sequential)",
        "ms",
        Better::Lower,
        "crun run",
    )
    .goal("full path ≤ 1.3× crun run; ≥ 5× faster than podman and containerd");

    // The floor, and beside it crun running the very spec our agent
    // writes for this container (Docker's default seccomp profile among
    // what `crun spec` lacks), one of each in turn.
    let crun = Crun::new(rootfs, &args)?;
    let our_spec = Crun::with_spec(&ours.spec_of(config(rootfs, "bench-spec", &args)).await?)?;
    let (mut times, mut spec_times) = (Vec::new(), Vec::new());
    for i in 0..WARM_UP + n {
        times.push(timed(|| crun.run(&format!("bench-{i}")))?);
        spec_times.push(timed(|| our_spec.run(&format!("bench-spec-{i}")))?);
    }
    scenario.push(Figure::of("crun run", &millis(&times[WARM_UP..])));
    scenario.push(Figure::of(
        "crun run, our spec",
        &millis(&spec_times[WARM_UP..]),
    ));

    let direct = ours.agent_runtime().await?;
    for (subject, runtime) in [
        ("libcrun-shim SDK", &ours.runtime),
        ("libcrun-shim SDK, agent direct", &direct),
    ] {
        let mut times = Vec::new();
        for i in 0..WARM_UP + n {
            let began = Instant::now();
            let code = lifecycle(runtime, config(rootfs, &format!("sdk-{i}"), &args)).await?;
            times.push(began.elapsed());
            if code != 0 {
                return Err(format!("/bin/true exited {code}").into());
            }
        }
        scenario.push(Figure::of(subject, &millis(&times[WARM_UP..])));
    }

    let times = (0..WARM_UP + n)
        .map(|_| {
            timed(|| {
                run(ours
                    .cli()
                    .args(["run", "--rm", "--network", "none", "--rootfs"])
                    .arg(rootfs)
                    .arg("--")
                    .args(args))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of("crun-shim run --rm", &millis(&times[WARM_UP..])));

    let podman = Podman::new()?;
    let times = (0..WARM_UP + n)
        .map(|i| timed(|| podman.run_rm(rootfs, &format!("bench-{i}"), &args)))
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of("podman run --rm", &millis(&times[WARM_UP..])));
    drop(podman);

    let containerd = Containerd::start()?;
    let times = (0..WARM_UP + n)
        .map(|i| timed(|| containerd.run_rm(rootfs, &format!("bench-{i}"), &args)))
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of("ctr run --rm", &millis(&times[WARM_UP..])));
    Ok(scenario)
}
