//! 5. Events: from a container's death (SIGKILL sent by the suite) to its
//!    exit event at an SDK subscriber of crun-shimd; p50 and p99.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libcrun_shim::{ContainerEventType, EventFilter};

use super::{Outcome, Setup, config};
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Runs the scenario.
pub async fn measure(setup: &Setup<'_>, ours: &Ours) -> Outcome {
    let mut scenario = Scenario::new(
        "events",
        "Exit event latency: SIGKILL to the event at a subscriber",
        "ms",
        Better::Lower,
        "libcrun-shim exit event",
    );
    let mut events = ours
        .runtime
        .event_stream(EventFilter {
            types: vec![ContainerEventType::Exit],
            ..Default::default()
        })
        .await?;
    let runs = setup.runs.max(100);
    let mut latencies = Vec::with_capacity(runs);
    for i in 0..runs {
        let id = format!("events-{i}");
        ours.runtime
            .create(config(setup.rootfs, &id, &["sleep", "3600"]))
            .await?;
        ours.runtime.start(&id).await?;
        let pid = ours.runtime.inspect(&id).await?.pid;
        let sent = Instant::now();
        // SAFETY: kill(2) on a pid the agent just reported for a running
        // container of ours.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .map_err(|_| format!("no exit event for {id} in 10 s"))?
                .ok_or("the event stream ended")??;
            if event.container_id == id {
                latencies.push(sent.elapsed());
                break;
            }
        }
        ours.runtime.delete(&id).await?;
    }
    scenario.push(Figure::of("libcrun-shim exit event", &millis(&latencies)));
    Ok(scenario)
}
