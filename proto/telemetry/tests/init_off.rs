//! `init` with no OTLP endpoint variable: logs only, no exporter, no
//! thread. (One test per binary: `init` installs the global subscriber.)

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc").count()
}

#[test]
fn init_without_an_endpoint_installs_no_exporter() {
    for name in libcrun_shim_telemetry::OTLP_ENDPOINT_VARIABLES {
        // SAFETY: this binary's only test, before anything reads the
        // environment on another thread.
        unsafe { std::env::remove_var(name) };
    }
    let before = threads();
    let guard = libcrun_shim_telemetry::init("test-service").expect("init");
    assert!(!guard.exporting());
    // Logging works, and spans are plain tracing spans: no OpenTelemetry
    // layer gives them a trace context.
    let span = tracing::info_span!("rpc");
    span.in_scope(|| tracing::info!("logged to stderr"));
    assert!(!span.context().span().span_context().is_valid());
    drop(span);
    assert_eq!(threads(), before, "init started a thread");
    // The W3C propagator is installed for code that uses the global one.
    let fields = opentelemetry::global::get_text_map_propagator(|p| {
        p.fields().map(str::to_owned).collect::<Vec<_>>()
    });
    assert_eq!(fields, ["traceparent", "tracestate"]);
    // One subscriber per process.
    assert!(matches!(
        libcrun_shim_telemetry::init("again"),
        Err(libcrun_shim_telemetry::Error::Subscriber(_))
    ));
    drop(guard);
    assert_eq!(threads(), before);
}
