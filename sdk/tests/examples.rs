//! Each example of the SDK runs for real against a daemon started here.

use std::path::PathBuf;
use std::process::Command;

use integration::BusyboxRootfs;
use integration::host::HostProcess;

/// The example binary `name`, which `cargo test` builds into
/// `PROFILE/examples` beside this test's `PROFILE/deps`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the profile directory");
    let path = profile.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: cargo test builds examples",
        path.display()
    );
    path
}

/// Runs example `name` against a fresh daemon; returns its stdout.
fn run(name: &str) -> String {
    let host = HostProcess::start_local().expect("crun-shimd");
    let rootfs = BusyboxRootfs::new().expect("rootfs");
    let output = Command::new(example(name))
        .env(
            "CRUN_SHIM_HOST",
            format!("unix://{}", host.socket().display()),
        )
        .env("CRUN_SHIM_ROOTFS", rootfs.path())
        .output()
        .expect("running the example");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}\ndaemon:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
    stdout
}

/// Asserts that `output` has each of `lines`, in order.
fn assert_lines_in_order(output: &str, lines: &[&str]) {
    let mut rest = output;
    for line in lines {
        match rest.find(line) {
            Some(at) => rest = &rest[at + line.len()..],
            None => panic!("{line:?} missing (or out of order) in:\n{output}"),
        }
    }
}

#[test]
fn basic_usage() {
    let output = run("basic_usage");
    assert_lines_in_order(
        &output,
        &[
            "created basic-usage",
            "started basic-usage",
            "basic-usage: running",
            "exec: 6 times 7 is 42",
            "exec exit code: 0",
            "logs: hello from basic-usage",
            "stopped basic-usage (exit code 137)",
            "deleted basic-usage",
        ],
    );
}

#[test]
fn health_metrics() {
    let output = run("health_metrics");
    assert_lines_in_order(
        &output,
        &[
            "Health status: Starting",
            "Health status: Healthy",
            "CPU: ",
            "Memory: ",
            "/ 134217728 bytes",
            "PIDs: 1 / 32",
            "health-metrics: CPU ",
        ],
    );
}

#[test]
fn production_setup() {
    let output = run("production_setup");
    assert_lines_in_order(
        &output,
        &[
            "connected to crun-shimd",
            "recovered: 0 adopted, 0 exited, 0 orphans",
            "event: production-worker create",
            "event: production-worker start",
            "event: production-worker exited with Some(1)",
            "event: production-worker exited with Some(0)",
            "restarts: 2",
            "attempts logged: 3",
            "removed production-worker",
        ],
    );
}
