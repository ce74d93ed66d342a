//! 3. Log streaming: a container writes N MiB of lines to stdout as fast
//!    as it can; the bytes per second reaching a follower: the same
//!    command into a plain pipe (the limit), our `logs -f` through the SDK,
//!    and `podman logs -f`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use futures::StreamExt;
use libcrun_shim::LogOptions;

use super::{Outcome, Setup, config};
use crate::anchors::podman::Podman;
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure};

/// The writer: 100-byte lines, `bytes` in all.
fn writer(bytes: u64) -> Vec<String> {
    let line = "libcrun-shim log benchmark: 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("yes '{line}' | head -c {bytes}"),
    ]
}

/// Reads a child's stdout to the end; the bytes read.
fn drain(mut from: impl Read) -> std::io::Result<u64> {
    let mut buffer = vec![0; 1 << 20];
    let mut total = 0;
    loop {
        match from.read(&mut buffer)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Runs the scenario.
pub async fn measure(setup: &Setup<'_>, ours: &Ours) -> Outcome {
    let bytes = setup.options.log_mib << 20;
    let command = writer(bytes);
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let mut scenario = Scenario::new(
        "logs",
        &format!(
            "Log streaming: {} MiB of stdout to a follower",
            setup.options.log_mib
        ),
        "MiB/s",
        Better::Higher,
        "plain pipe",
    )
    .goal("≥ 50% of the pipe");
    let rate = |n: u64, since: Instant| n as f64 / (1 << 20) as f64 / since.elapsed().as_secs_f64();

    // The same busybox, outside any container, into a pipe.
    let began = Instant::now();
    let mut child = Command::new(integration::BUSYBOX)
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()?;
    let n = drain(child.stdout.take().expect("piped"))?;
    child.wait()?;
    scenario.push(Figure::single(
        &subject("plain pipe", n, bytes),
        rate(n, began),
    ));

    // Ours: the log file is sized to hold it all (no rotation under the
    // follower), the follower starts with the container and copies bytes,
    // as `crun-shim logs -f` does (merged lines, not a chunk per line).
    let mut container = config(setup.rootfs, "logs-bench", &args);
    container.log_max_size = Some(bytes * 2);
    let began = Instant::now();
    ours.runtime.create(container).await?;
    ours.runtime.start("logs-bench").await?;
    let mut stream = ours
        .runtime
        .logs_stream_merged(
            "logs-bench",
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .await?;
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk?.data.len() as u64;
    }
    scenario.push(Figure::single(
        &subject("libcrun-shim logs -f (SDK)", n, bytes),
        rate(n, began),
    ));
    ours.runtime.delete_with("logs-bench", true).await?;

    let podman = Podman::new()?;
    let began = Instant::now();
    podman.run_detached(setup.rootfs, "logs-bench", &args)?;
    let mut follower = podman.follow_logs("logs-bench")?;
    let n = drain(follower.stdout.take().expect("piped"))?;
    follower.wait()?;
    scenario.push(Figure::single(
        &subject("podman logs -f", n, bytes),
        rate(n, began),
    ));
    Ok(scenario)
}

/// The subject's name, saying so when its follower missed bytes (the
/// rate is of the bytes that arrived).
fn subject(name: &str, got: u64, want: u64) -> String {
    if got == want {
        name.to_string()
    } else {
        format!(
            "{name} (got {:.0}% of the bytes)",
            got as f64 * 100.0 / want as f64
        )
    }
}
