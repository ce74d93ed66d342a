//! 7. The lifecycle of `/bin/true` in a bridged container with one published
//!    port (127.0.0.1, any free host port), sequential: ours through the SDK
//!    and the CLI on the agent's default network, podman on its own default
//!    bridge; and each without a network, the cost of the bridge being the
//!    difference.

use std::time::Instant;

use libcrun_shim::NetworkMode;

use super::{Outcome, Setup, config, lifecycle, timed};
use crate::anchors::{podman::Podman, run};
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Warm-up runs of each subject, not counted (the first bridged one also
/// makes the bridge and the plugins' shared chains).
const WARM_UP: usize = 3;

/// The published port, in `-p` syntax.
const PUBLISH: &str = "127.0.0.1::80";

/// The subject the ratios are against.
const NONE: &str = "libcrun-shim SDK, --network none";

/// Runs the scenario.
pub async fn measure(setup: &Setup<'_>, ours: &Ours) -> Outcome {
    let rootfs = setup.rootfs;
    let n = setup.runs;
    let args = ["/bin/true"];
    let mut scenario = Scenario::new(
        "network",
        "Lifecycle of /bin/true with a published port (sequential)",
        "ms",
        Better::Lower,
        NONE,
    )
    .goal("bridge and port ≤ 1/3 of podman's; ≤ 2× ours without a network");

    for (subject, bridged) in [
        (NONE, false),
        ("libcrun-shim SDK, bridge -p 127.0.0.1::80", true),
    ] {
        let mut times = Vec::new();
        for i in 0..WARM_UP + n {
            let mut config = config(rootfs, &format!("net-{bridged}-{i}"), &args);
            if bridged {
                config.network = NetworkMode::Bridge;
                config.ports = vec![PUBLISH.parse()?];
            }
            let began = Instant::now();
            let code = lifecycle(&ours.runtime, config).await?;
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
                    .args(["run", "--rm", "-p", PUBLISH, "--rootfs"])
                    .arg(rootfs)
                    .arg("--")
                    .args(args))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of(
        "crun-shim run --rm -p 127.0.0.1::80",
        &millis(&times[WARM_UP..]),
    ));

    let podman = Podman::new()?;
    let times = (0..WARM_UP + n)
        .map(|i| timed(|| podman.run_rm(rootfs, &format!("bench-none-{i}"), &args)))
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of(
        "podman run --rm --network none",
        &millis(&times[WARM_UP..]),
    ));
    let times = (0..WARM_UP + n)
        .map(|i| {
            timed(|| podman.run_rm_published(PUBLISH, rootfs, &format!("bench-net-{i}"), &args))
        })
        .collect::<Result<Vec<_>, _>>()?;
    scenario.push(Figure::of(
        "podman run --rm -p 127.0.0.1::80",
        &millis(&times[WARM_UP..]),
    ));
    Ok(scenario)
}
