//! The per-RPC server span and W3C trace-context propagation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// gRPC status codes that make a server span an error (OpenTelemetry's
/// semantic conventions for RPC): UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
const SERVER_ERROR_CODES: [i64; 6] = [2, 4, 12, 13, 14, 15];

/// A tower layer for tonic servers (`Server::builder().layer(...)`) that
/// wraps each request in an `info_span!("rpc", otel.name = %path,
/// rpc.system = "grpc", rpc.service, rpc.method)` whose parent is the
/// context extracted from the HTTP headers.
///
/// The span is a server span (`otel.kind = "server"`). When the response
/// carries its gRPC status in its headers (as tonic answers an error), the
/// span records it in `rpc.grpc.status_code` and is marked as an error for
/// the codes that mean a server fault. The span ends when the response's
/// headers are ready: a streaming response goes on after it.
///
/// ```no_run
/// # async fn serve() -> Result<(), tonic::transport::Error> {
/// # let (_, health) = tonic_health::server::health_reporter();
/// tonic::transport::Server::builder()
///     .layer(libcrun_shim_telemetry::server_layer())
///     .add_service(health)
///     .serve("127.0.0.1:50051".parse().unwrap())
///     .await
/// # }
/// ```
pub fn server_layer() -> ServerLayer {
    ServerLayer
}

/// The layer of [`server_layer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLayer;

impl<S> tower::Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService { inner }
    }
}

/// The service of [`ServerLayer`]: `inner`, each call in a span.
#[derive(Debug, Clone)]
pub struct ServerService<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for ServerService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = rpc_span(&request);
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let recorder = span.clone();
        Box::pin(
            async move {
                let result = response.await;
                if let Ok(response) = &result {
                    record_status(&recorder, response.headers());
                }
                result
            }
            .instrument(span),
        )
    }
}

/// The span of one RPC, its parent taken from the request's headers.
fn rpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer (nothing to do then).
        let _ = span.set_parent(parent);
    }
    span
}

/// Records a gRPC status found in the response headers (a trailers-only
/// response, as tonic sends for an error).
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if SERVER_ERROR_CODES.contains(&code) {
        span.record("otel.status_code", "error");
    }
}

/// Reads the trace context from HTTP headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes the trace context into HTTP headers.
struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        if value.is_empty() {
            self.0.remove(name);
        } else if let Ok(value) = http::HeaderValue::from_str(&value) {
            self.0.insert(name, value);
        }
    }
}

/// Writes the trace context into tonic metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if value.is_empty() {
            self.0.remove(key);
        } else if let Ok(value) = tonic::metadata::AsciiMetadataValue::try_from(value) {
            self.0.insert(key, value);
        }
    }
}

/// Writes the trace context of the current span through `injector`
/// (`traceparent`, `tracestate`, replacing any there). Writes nothing when
/// there is no valid span context.
fn inject_current(injector: &mut dyn Injector) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, injector);
    }
}

/// Writes the current span's trace context into HTTP headers, as
/// [`inject`] does into a tonic request's metadata.
pub fn inject_into_headers(headers: &mut http::HeaderMap) {
    inject_current(&mut HeaderInjector(headers));
}

/// Injects the current span's W3C trace context (`traceparent`,
/// `tracestate`) into the request's metadata, replacing any found there,
/// so that the server's span of the call is a child of the current span.
///
/// When there is no current span context (no span, or the process exports
/// no trace: [`crate::init`] found no OTLP endpoint), the metadata is left
/// as it is: a `traceparent` copied from an incoming request then passes
/// through unchanged.
///
/// Call it on each outgoing request, inside the span the call belongs to
/// (in a handler of a server with [`server_layer`], the RPC's span is
/// current):
///
/// ```no_run
/// # async fn f(mut client: tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>) -> Result<(), tonic::Status> {
/// let request = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
/// client.check(libcrun_shim_telemetry::inject(request)).await?;
/// # Ok(())
/// # }
/// ```
///
/// or let [`InjectContext`] do it for every call of a client.
pub fn inject<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    inject_current(&mut MetadataInjector(request.metadata_mut()));
    request
}

/// A tonic client interceptor that calls [`inject`] on every request:
///
/// ```no_run
/// # use tonic_health::pb::health_client::HealthClient;
/// # fn f(channel: tonic::transport::Channel) {
/// let client = HealthClient::with_interceptor(channel, libcrun_shim_telemetry::InjectContext);
/// # }
/// ```
///
/// The client's type becomes
/// `XClient<InterceptedService<Channel, InjectContext>>`; with a tower
/// stack, `tonic::service::interceptor::InterceptorLayer::new(InjectContext)`
/// does the same. Interceptors run when the call is made, so the span
/// current at the call is the parent.
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectContext;

impl tonic::service::Interceptor for InjectContext {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        Ok(inject(request))
    }
}
