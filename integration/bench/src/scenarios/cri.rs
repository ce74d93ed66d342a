//! 10. Kubernetes CRI: a pod and one container through `crictl` (`runp`,
//!     `create`, `start`, `stop`, `rm`, `stopp`, `rmp`), against
//!     `crun-shim-cri` and against containerd 1.6's CRI plugin (running crun
//!     through its runc v2 shim), both on a bridge pod network from the CNI
//!     plugins of `/usr/lib/cni`, with the same images from the same local
//!     registry through their mirror configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration::cri::{CriStack, MIRRORED, SANDBOX_IMAGE};

use super::{Setup, timed};
use crate::anchors::containerd::Containerd;
use crate::anchors::run;
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Warm-up cycles of each runtime, not counted (the first pulls the pause
/// image into containerd).
const WARM_UP: usize = 2;
/// The container's image.
const BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
/// The steps of one cycle, in order.
const STEPS: [&str; 7] = ["runp", "create", "start", "stop", "rm", "stopp", "rmp"];

/// `crictl` on one CRI endpoint.
struct Crictl {
    binary: PathBuf,
    endpoint: String,
}

impl Crictl {
    fn new(endpoint: String) -> Result<Crictl, Box<dyn std::error::Error>> {
        let binary = std::env::var_os("CRICTL")
            .map(PathBuf::from)
            .ok_or("CRICTL is not set: eval \"$(integration/setup.sh)\" first")?;
        Ok(Crictl { binary, endpoint })
    }

    /// Runs crictl; its stdout, trimmed.
    fn run(&self, args: &[&str]) -> std::io::Result<String> {
        let output = run(Command::new(&self.binary)
            .arg("--runtime-endpoint")
            .arg(&self.endpoint)
            .arg("--image-endpoint")
            .arg(&self.endpoint)
            .args(["--config", "/dev/null", "--timeout", "60s"])
            .args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// One pod + container cycle; how long each step took.
    fn cycle(&self, dir: &Path, i: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
        let pod = dir.join(format!("pod-{i}.json"));
        std::fs::write(
            &pod,
            serde_json::json!({
                "metadata": {"name": format!("bench-{i}"), "namespace": "bench", "uid": format!("bench-uid-{i}")},
                "log_directory": dir.join("logs").join(i.to_string()),
                "linux": {},
            })
            .to_string(),
        )?;
        let container = dir.join("container.json");
        std::fs::write(
            &container,
            serde_json::json!({
                "metadata": {"name": "sleeper"},
                "image": {"image": BUSYBOX},
                "command": ["sleep", "3600"],
                "log_path": "sleeper.log",
                "linux": {},
            })
            .to_string(),
        )?;
        let (pod, container) = (pod.display().to_string(), container.display().to_string());
        let mut times = Vec::with_capacity(STEPS.len());
        let mut pod_id = String::new();
        times.push(timed(|| {
            pod_id = self.run(&["runp", &pod])?;
            Ok::<_, std::io::Error>(())
        })?);
        let mut id = String::new();
        times.push(timed(|| {
            id = self.run(&["create", &pod_id, &container, &pod])?;
            Ok::<_, std::io::Error>(())
        })?);
        for args in [
            &["start", id.as_str()][..],
            &["stop", "--timeout", "0", &id],
            &["rm", &id],
            &["stopp", &pod_id],
            &["rmp", &pod_id],
        ] {
            times.push(timed(|| self.run(args))?);
        }
        Ok(times)
    }
}

/// The times of counted cycles: whole cycles, and each step's (in the
/// order of [`STEPS`]).
struct Cycles {
    totals: Vec<Duration>,
    steps: Vec<Vec<Duration>>,
}

/// `runs` counted cycles after the warm-up.
fn measure_cycles(crictl: &Crictl, runs: usize) -> Result<Cycles, Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("bench-cri").tempdir()?;
    crictl.run(&["pull", BUSYBOX])?;
    let mut totals = Vec::new();
    let mut steps = vec![Vec::new(); STEPS.len()];
    for i in 0..WARM_UP + runs {
        let times = crictl.cycle(dir.path(), i)?;
        if i >= WARM_UP {
            totals.push(times.iter().sum());
            for (step, time) in steps.iter_mut().zip(times) {
                step.push(time);
            }
        }
    }
    Ok(Cycles { totals, steps })
}

/// Runs the scenario: the whole cycle, and each of its steps (with no
/// ratio: each step is read against the other runtime's same step).
pub async fn measure(setup: &Setup<'_>) -> Result<[Scenario; 2], Box<dyn std::error::Error>> {
    let mut cycle = Scenario::new(
        "cri",
        "Kubernetes CRI: pod + one container through crictl (runp, create, start, stop, rm, stopp, rmp)",
        "ms",
        Better::Lower,
        "containerd 1.6 CRI",
    )
    .goal("≥ 3× faster than containerd's CRI");
    let mut steps = Scenario::new(
        "cri-steps",
        "Kubernetes CRI: each crictl step of the cycle above",
        "ms",
        Better::Lower,
        "",
    );

    let ours = CriStack::start().await?;
    let anchor = Containerd::start_cri(ours.registry.host(), SANDBOX_IMAGE, MIRRORED)?;
    // Measured one after the other on the same machine, the other idle.
    for (subject, endpoint) in [
        ("crun-shim-cri", ours.endpoint()),
        ("containerd 1.6 CRI", anchor.endpoint()),
    ] {
        let crictl = Crictl::new(endpoint)?;
        let cycles = measure_cycles(&crictl, setup.runs)?;
        cycle.push(Figure::of(subject, &millis(&cycles.totals)));
        // What crictl itself costs per step: a call that does nothing.
        let versions = (0..setup.runs)
            .map(|_| timed(|| crictl.run(&["version"])))
            .collect::<Result<Vec<_>, _>>()?;
        steps.push(Figure::of(
            &format!("{subject}: crictl version (the client's floor)"),
            &millis(&versions),
        ));
        for (name, times) in STEPS.iter().zip(&cycles.steps) {
            steps.push(Figure::of(&format!("{subject}: {name}"), &millis(times)));
        }
    }
    Ok([cycle, steps])
}
