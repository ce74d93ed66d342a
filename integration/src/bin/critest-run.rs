//! critest-run: the Kubernetes CRI conformance suite (critest, from
//! cri-tools) against `crun-shim-cri` over `crun-shimd`, with critest's
//! images from a local registry reached through the CRI's mirrors.
//!
//! `critest-run [CRITEST ARGS...]` runs `$CRITEST` with the skip list of
//! what cannot apply here, prints the passed/failed/skipped counts and
//! exits non-zero when a spec failed (or the run did not finish). Extra
//! arguments go to critest (`--ginkgo.focus=...`).

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use integration::cri::CriStack;

/// What cannot apply on this machine: the digest-pinned image on a public
/// registry, AppArmor and SELinux (not enabled), NRI (no NRI socket).
const SKIP: &str = "public image with digest|AppArmor|NRI|SELinux";

fn main() -> ExitCode {
    if let Err(e) = shared_mount_namespace() {
        eprintln!("critest-run: making a mount namespace with a shared root: {e}");
        return ExitCode::FAILURE;
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("critest-run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// critest mounts on the node and expects containers to see it (mount
/// propagation, submounts of read-only volumes), as on a Kubernetes node
/// whose root mount is shared (systemd makes it so; the kubelet expects
/// it). The run gets a mount namespace of its own with a shared root: the
/// agent's namespace, a slave of it, then receives critest's mounts, and
/// none of them reaches the machine's namespace, whatever its root's
/// propagation. Called before any thread exists (unshare needs that).
fn shared_mount_namespace() -> std::io::Result<()> {
    // SAFETY: unshare changes only this (still single-threaded) process's
    // mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: makes "/" (a static C string) recursively shared in the new
    // namespace; the other pointers may be null for a propagation change.
    let ret = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SHARED,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

async fn run() -> ExitCode {
    let Some(critest) = std::env::var_os("CRITEST") else {
        eprintln!("critest-run: CRITEST is not set: eval \"$(integration/setup.sh)\" first");
        return ExitCode::from(2);
    };
    let stack = match CriStack::start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("critest-run: starting the CRI: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = stack.dir().join("report");
    let child = Command::new(&critest)
        .arg(format!("--runtime-endpoint={}", stack.endpoint()))
        .arg(format!("--image-endpoint={}", stack.endpoint()))
        .arg(format!("--ginkgo.skip={SKIP}"))
        .arg(format!("--report-dir={}", report.display()))
        .arg("--ginkgo.no-color")
        .args(std::env::args().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("critest-run: running {}: {e}", critest.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    // Shown as it comes (a run takes minutes), and kept for the summary.
    let mut text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("critest-run: waiting for critest: {e}");
            return ExitCode::FAILURE;
        }
    };
    match summary(&text) {
        Some(s) => {
            println!(
                "critest: {} passed, {} failed, {} skipped (of {} specs)",
                s.passed, s.failed, s.skipped, s.total
            );
            if s.failed > 0 || !status.success() {
                eprintln!("--- crun-shim-cri log (tail) ---");
                let log = stack.log();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("critest-run: critest ended ({status}) without a summary");
            ExitCode::FAILURE
        }
    }
}

/// The counts of a ginkgo run.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    passed: u32,
    failed: u32,
    skipped: u32,
    total: u32,
}

/// Reads ginkgo's `N Passed | N Failed | N Pending | N Skipped` line and
/// `Ran N of M Specs`.
fn summary(text: &str) -> Option<Summary> {
    let counts = text.lines().rev().find(|l| l.contains(" Passed | "))?;
    let count = |name: &str| -> Option<u32> {
        counts
            .split('|')
            .find(|part| part.trim_end().ends_with(name))?
            .split_whitespace()
            .rev()
            .nth(1)?
            .parse()
            .ok()
    };
    let total = text.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("Ran ")?
            .split(" of ")
            .nth(1)?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })?;
    Some(Summary {
        passed: count("Passed")?,
        failed: count("Failed")?,
        skipped: count("Skipped")?,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ginkgo_summaries_are_read() {
        let text = "...\nRan 80 of 137 Specs in 201.3 seconds\nFAIL! -- 75 Passed | 5 Failed | 0 Pending | 57 Skipped\n";
        assert_eq!(
            summary(text),
            Some(Summary {
                passed: 75,
                failed: 5,
                skipped: 57,
                total: 137
            })
        );
        assert_eq!(summary("no summary"), None);
    }
}
