//! `init` with an OTLP endpoint starts no thread: the exporter's threads
//! start when the first span ends, and stop with the guard. (One test per
//! binary: `init` installs the global subscriber.)

use std::time::{Duration, Instant};

fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exporter_threads_start_with_the_first_span() {
    // A local port nobody listens on: exports fail fast.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for (name, value) in [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500".to_owned()),
    ] {
        // SAFETY: this binary's only test, before anything reads the
        // environment on another thread.
        unsafe { std::env::set_var(name, value) };
    }
    let before = threads();
    let guard = libcrun_shim_telemetry::init("test-service").expect("init");
    assert!(guard.exporting());
    tracing::info!("no span yet");
    assert_eq!(threads().len(), before.len(), "init started a thread");

    tracing::info_span!("first").in_scope(|| {});
    wait_until("the exporter's threads", || {
        threads().iter().any(|name| name == "otlp-export")
    });
    assert!(threads().len() > before.len());

    let start = Instant::now();
    drop(guard);
    assert!(start.elapsed() < Duration::from_secs(10));
    wait_until("the exporter's threads to stop", || {
        threads().len() == before.len()
    });
}
