//! Logs and OpenTelemetry traces for the libcrun-shim gRPC servers
//! (`crun-shim-agent`, `crun-shimd`).
//!
//! - [`init`] installs the process's `tracing` subscriber: logs to stderr
//!   filtered by `RUST_LOG` (default `info`), plus export of spans over
//!   OTLP when the standard `OTEL_EXPORTER_OTLP_*` variables name an
//!   endpoint. With no endpoint set, nothing of OpenTelemetry is installed
//!   but the W3C propagator: no exporter, no thread.
//! - [`server_layer`] gives a tonic server one span per RPC, named after the
//!   gRPC method, whose parent is the W3C trace context (`traceparent`,
//!   `tracestate`) of the incoming request.
//! - [`inject`] (or the [`InjectContext`] interceptor) writes the current
//!   span's trace context into an outgoing request, so that one trace covers
//!   a call from the daemon through to the agent.
//!
//! ```no_run
//! let telemetry = match libcrun_shim_telemetry::init("crun-shimd") {
//!     Ok(guard) => guard,
//!     Err(e) => {
//!         eprintln!("crun-shimd: {e}");
//!         std::process::exit(1);
//!     }
//! };
//! // ... tonic::transport::Server::builder()
//! //         .layer(libcrun_shim_telemetry::server_layer())
//! //         .add_service(...)
//! // and, for each call to an agent, inside the handler:
//! //     client.create(libcrun_shim_telemetry::inject(request))
//! drop(telemetry); // exports the spans still queued
//! std::process::exit(0);
//! ```

mod export;
mod propagation;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use propagation::{
    InjectContext, ServerLayer, ServerService, inject, inject_into_headers, server_layer,
};

/// The environment variables naming an OTLP endpoint for traces: with none
/// of them set (or all empty), no span is exported.
pub const OTLP_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another global `tracing` subscriber is installed already.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// The OTLP exporter cannot be built from the `OTEL_EXPORTER_OTLP_*`
    /// variables (a malformed endpoint, for example).
    #[error("configuring the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The exporter's own tokio runtime cannot be created.
    #[error("creating the OTLP exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Keeps the OTLP exporter of [`init`] running; dropping it exports the
/// spans still queued (waiting a few seconds at most) and stops the
/// exporter's threads. Keep it until the process ends, and drop it before
/// `std::process::exit`, which runs no destructor.
#[derive(Debug)]
#[must_use = "dropping the guard stops exporting spans"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP (an OTLP endpoint variable is
    /// set).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("shutting the OTLP trace exporter down: {e}");
        }
    }
}

/// Installs the tracing subscriber (stderr fmt layer with RUST_LOG filter,
/// plus the OpenTelemetry layer when OTLP is configured) and the W3C
/// propagator. Returns a guard that flushes and shuts the exporter down on
/// drop. `default_service_name` is used when OTEL_SERVICE_NAME is unset.
///
/// `RUST_LOG` (default `info`) filters what is logged and what is exported
/// alike; the per-RPC spans of [`server_layer`] are at `INFO`.
///
/// Spans are exported when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and `OTEL_SDK_DISABLED` is not
/// `true` nor `OTEL_TRACES_EXPORTER` `none`. The exporter then follows the
/// standard variables: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` (`grpc` or
/// `http/protobuf`, the default), `..._HEADERS`, `..._TIMEOUT`,
/// `..._COMPRESSION`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_BSP_*`.
///
/// No thread is started here, whatever the configuration: the exporter's
/// two threads (the batch processor and a tokio runtime of its own, which
/// outlives the caller's runtimes) start when the first span ends. A
/// process that must stay single-threaded for a while (to unshare its
/// mount namespace, say) may call `init` first, as long as no span ends
/// before it is done. `init` needs no tokio runtime.
pub fn init(default_service_name: &str) -> Result<TelemetryGuard, Error> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let provider = if otlp_configured(|name| std::env::var(name).ok()) {
        Some(tracer_provider(default_service_name)?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    if let Some(provider) = &provider {
        global::set_tracer_provider(provider.clone());
    }
    Ok(TelemetryGuard { provider })
}

/// Whether the environment (`var` reads a variable) asks for OTLP export.
fn otlp_configured(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && OTLP_ENDPOINT_VARIABLES.iter().any(|name| set(name))
}

/// The tracer provider exporting over OTLP, configured from the
/// environment; it starts no thread until a span ends.
fn tracer_provider(default_service_name: &str) -> Result<SdkTracerProvider, Error> {
    let mut resource = Resource::builder().build();
    let named = resource
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if !named {
        resource = Resource::builder()
            .with_service_name(default_service_name.to_owned())
            .build();
    }
    let processor = export::LazyBatchProcessor::new()?;
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(processor)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn otlp_is_configured_by_an_endpoint_variable() {
        assert!(!otlp_configured(env(&[])));
        assert!(!otlp_configured(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            ""
        )])));
        assert!(!otlp_configured(env(&[
            ("OTEL_SERVICE_NAME", "x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        ])));
        assert!(otlp_configured(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(otlp_configured(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!otlp_configured(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SDK_DISABLED", "TRUE")
        ])));
        assert!(!otlp_configured(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }
}
