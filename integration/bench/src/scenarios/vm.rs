//! 7. The VM path, under QEMU **TCG** (KVM hangs on our machines): the
//!    boot, from `crun-shimd`'s start to the guest's agent answering; the
//!    lifecycle of `/bin/true` through the VM's agent beside the local one
//!    (the same daemon, the same SDK); and one call's round trip straight
//!    to each agent, over hybrid vsock and over a Unix socket (the vsock
//!    hop). The guest is docker/'s, built from the release binaries.

use std::time::{Duration, Instant};

use integration::BusyboxRootfs;
use integration::vm::{VmHost, VmOptions, share_dir};
use libcrun_shim::{ContainerRuntime, RuntimeConfig};

use super::{Setup, config, lifecycle};
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Boots measured (each a fresh daemon and VM).
const BOOTS: usize = 5;
/// Warm-up runs, not counted.
const WARM_UP: usize = 3;
/// Round trips of one call.
const CALLS: usize = 200;

fn options(local_agent: bool) -> VmOptions {
    VmOptions {
        shares: vec![share_dir().to_path_buf()],
        local_agent,
        ..Default::default()
    }
}

async fn start(options: VmOptions) -> Result<VmHost, Box<dyn std::error::Error>> {
    Ok(tokio::task::spawn_blocking(move || VmHost::start(&options)).await??)
}

/// Runs the scenario: boot, lifecycle, round trip.
pub async fn measure(setup: &Setup<'_>) -> Result<[Scenario; 3], Box<dyn std::error::Error>> {
    let mut boot = Scenario::new(
        "vm-boot",
        "VM boot: crun-shimd start to the VM agent answering (QEMU TCG)",
        "ms",
        Better::Lower,
        "boot",
    )
    .goal("≤ 3 s under TCG");
    let (mut boots, mut in_guest) = (Vec::new(), Vec::new());
    for _ in 0..BOOTS {
        let vm = start(options(false)).await?;
        boots.push(vm.boot_time());
        in_guest.extend(vm.guest_uptime_at_agent_start());
        tokio::task::spawn_blocking(move || drop(vm)).await?;
    }
    boot.push(Figure::of("boot", &millis(&boots)));
    // Where the boot goes: the guest's own clock when its init started the
    // agent (kernel and init); the rest is QEMU, firmware and loading the
    // kernel before, and the agent's start and the first connection after.
    boot.push(Figure::of(
        "of which the guest's kernel and init (guest clock)",
        &millis(&in_guest),
    ));

    let vm = start(options(true)).await?;
    let daemon = format!("unix://{}", vm.host().socket().display());
    let through = |agent: &str| {
        ContainerRuntime::new_with_config(RuntimeConfig {
            endpoint: daemon.clone(),
            agent: Some(agent.into()),
            ..Default::default()
        })
    };
    let rootfs = BusyboxRootfs::new_in(share_dir())?;
    let mut cycle = Scenario::new(
        "vm-lifecycle",
        "Lifecycle of /bin/true through crun-shimd: the local agent vs the VM's (QEMU TCG)",
        "ms",
        Better::Lower,
        "local agent",
    );
    for (subject, agent) in [("local agent", "local"), ("VM agent (TCG)", "vm")] {
        let runtime = through(agent).await?;
        let mut times = Vec::new();
        for i in 0..WARM_UP + setup.runs {
            let began = Instant::now();
            let code = lifecycle(
                &runtime,
                config(&rootfs.path(), &format!("vm-bench-{i}"), &["/bin/true"]),
            )
            .await?;
            times.push(began.elapsed());
            if code != 0 {
                return Err(format!("/bin/true exited {code} on the {agent} agent").into());
            }
        }
        cycle.push(Figure::of(subject, &millis(&times[WARM_UP..])));
    }

    let mut hop = Scenario::new(
        "vm-hop",
        "One call (Version) straight to an agent: Unix socket vs hybrid vsock into the VM (QEMU TCG)",
        "ms",
        Better::Lower,
        "local agent, Unix socket",
    )
    .goal("the vsock hop adds ≤ 2 ms per call");
    let local = vm.host().socket().with_file_name("agent.sock");
    for (subject, endpoint) in [
        (
            "local agent, Unix socket",
            format!("unix://{}", local.display()),
        ),
        ("VM agent, hybrid vsock (TCG)", vm.endpoint()),
    ] {
        let runtime = ContainerRuntime::connect(&endpoint).await?;
        let mut times: Vec<Duration> = Vec::new();
        for i in 0..WARM_UP + CALLS {
            let began = Instant::now();
            runtime.version().await?;
            if i >= WARM_UP {
                times.push(began.elapsed());
            }
        }
        hop.push(Figure::of(subject, &millis(&times)));
    }
    drop(rootfs);
    tokio::task::spawn_blocking(move || drop(vm)).await?;
    Ok([boot, cycle, hop])
}
