//! The trace context goes from a client span, through `inject`, to the
//! server span of `server_layer`: one trace, the client span the parent.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use libcrun_shim_telemetry::{InjectContext, inject, server_layer};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt as _, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tonic::transport::{Endpoint, Server, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer as _, ServiceExt as _};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The spans finished in this process (one subscriber for all the tests).
fn finished() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        exporter
    })
}

/// Waits for a finished span (server spans end after the client has its
/// answer).
fn wait_for(what: &str, pred: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = finished().get_finished_spans().expect("spans");
        if let Some(span) = spans.into_iter().find(|s| pred(s)) {
            return span;
        }
        assert!(Instant::now() < deadline, "no finished span {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attribute(span: &SpanData, key: &'static str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from_static_str(key))
        .map(|kv| kv.value.clone())
}

/// Serves the gRPC health service with `server_layer` on a Unix socket in
/// `dir`; returns a channel to it.
async fn serve(dir: &std::path::Path) -> tonic::transport::Channel {
    let path = dir.join("grpc.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(async move {
        let _reporter = reporter;
        Server::builder()
            .layer(server_layer())
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .expect("serve");
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_span_is_the_parent_of_the_server_span() {
    finished();
    let dir = tempfile::tempdir().expect("tempdir");
    let channel = serve(dir.path()).await;

    // Through the interceptor.
    let client_span = tracing::info_span!("client call");
    let client_cx = client_span.context().span().span_context().clone();
    assert!(client_cx.is_valid());
    let mut client = HealthClient::with_interceptor(channel.clone(), InjectContext);
    client
        .check(HealthCheckRequest::default())
        .instrument(client_span)
        .await
        .expect("check");
    let server = wait_for("with the client span as parent", |s| {
        s.parent_span_id == client_cx.span_id()
    });
    assert_eq!(server.span_context.trace_id(), client_cx.trace_id());
    assert!(server.parent_span_is_remote);
    assert_eq!(server.name, "/grpc.health.v1.Health/Check");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(attribute(&server, "rpc.system"), Some("grpc".into()));
    assert_eq!(
        attribute(&server, "rpc.service"),
        Some("grpc.health.v1.Health".into())
    );
    assert_eq!(attribute(&server, "rpc.method"), Some("Check".into()));
    assert_eq!(server.status, Status::Unset);

    // Through `inject`, on a request that carries a stale traceparent (as a
    // request forwarded from an incoming one may): the current span wins.
    let client_span = tracing::info_span!("client call with inject");
    let client_cx = client_span.context().span().span_context().clone();
    let mut client = HealthClient::new(channel.clone());
    async {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: "no.such.Service".into(),
        });
        request.metadata_mut().insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let status = client
            .check(inject(request))
            .await
            .expect_err("unknown service");
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
    .instrument(client_span)
    .await;
    let server = wait_for("with the second client span as parent", |s| {
        s.parent_span_id == client_cx.span_id()
    });
    assert_eq!(server.span_context.trace_id(), client_cx.trace_id());
    // NOT_FOUND is the caller's fault: recorded, not a server error.
    assert_eq!(
        attribute(&server, "rpc.grpc.status_code"),
        Some(5_i64.into())
    );
    assert_eq!(server.status, Status::Unset);

    // Without a trace context, the server span starts a trace.
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest::default())
        .await
        .expect("check");
    drop(response);
    let root = wait_for("without a parent", |s| {
        s.name == "/grpc.health.v1.Health/Check" && s.parent_span_id == SpanId::INVALID
    });
    assert!(!root.parent_span_is_remote);
}

#[tokio::test]
async fn layer_extracts_the_http_headers_and_records_errors() {
    finished();
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let parent_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let service = server_layer().layer(tower::service_fn(|_: http::Request<()>| async {
        let response = http::Response::builder()
            .header("grpc-status", "13")
            .body(())
            .unwrap();
        Ok::<_, std::convert::Infallible>(response)
    }));
    let request = http::Request::builder()
        .uri("http://agent/libcrun_shim.v1.ContainerService/Create")
        .header(
            "traceparent",
            format!("00-{trace_id}-{parent_id}-01").as_str(),
        )
        .header("tracestate", "vendor=value")
        .body(())
        .unwrap();
    service.oneshot(request).await.unwrap();
    let span = wait_for("in the given trace", |s| {
        s.span_context.trace_id() == trace_id
    });
    assert_eq!(span.name, "/libcrun_shim.v1.ContainerService/Create");
    assert_eq!(span.parent_span_id, parent_id);
    assert!(span.parent_span_is_remote);
    assert!(span.span_context.is_sampled());
    assert_eq!(span.span_context.trace_state().get("vendor"), Some("value"));
    assert_eq!(
        attribute(&span, "rpc.service"),
        Some("libcrun_shim.v1.ContainerService".into())
    );
    assert_eq!(attribute(&span, "rpc.method"), Some("Create".into()));
    assert_eq!(
        attribute(&span, "rpc.grpc.status_code"),
        Some(13_i64.into())
    );
    assert!(matches!(span.status, Status::Error { .. }));
}

#[test]
fn inject_without_a_span_leaves_the_metadata_alone() {
    finished();
    let forwarded = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut request = tonic::Request::new(());
    request
        .metadata_mut()
        .insert("traceparent", forwarded.parse().unwrap());
    let request = inject(request);
    assert_eq!(
        request
            .metadata()
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap(),
        forwarded
    );

    let empty = inject(tonic::Request::new(()));
    assert!(empty.metadata().get("traceparent").is_none());

    let span = tracing::info_span!("outgoing");
    let expected = span.context().span().span_context().clone();
    let request = span.in_scope(|| inject(tonic::Request::new(())));
    let traceparent = request
        .metadata()
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", expected.trace_id(), expected.span_id())
    );
    // An empty trace state is not sent.
    assert!(request.metadata().get("tracestate").is_none());
}
