//! What both servers (`crun-shim-agent`, `crun-shimd`) serve and handle
//! alike: the standard gRPC services, the Version answer, and the signals
//! and requests that stop them.

use std::fmt;

use crate::v1;

/// Starts a router with what every libcrun-shim server serves beside the
/// v1 API: grpc.health.v1 (reporting SERVING) and server reflection over
/// the v1 API and health, in both reflection protocols (`v1`, and
/// `v1alpha`, which older clients such as grpcurl 1.8 use).
pub async fn router_with_standard_services<L: Clone>(
    builder: &mut tonic::transport::Server<L>,
) -> Result<tonic::transport::server::Router<L>, tonic_reflection::server::Error> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    Ok(builder
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?))
}

/// The Version answer of a server of this workspace: `component` (such as
/// `crun-shimd`) at this build's version, and the libcrun it runs, if any.
pub fn version(component: &str, libcrun_version: &str) -> v1::VersionResponse {
    v1::VersionResponse {
        component: component.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: "v1".into(),
        git_commit: option_env!("LIBCRUN_SHIM_GIT_COMMIT")
            .unwrap_or_default()
            .into(),
        libcrun_version: libcrun_version.into(),
    }
}

/// Why a server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// A Shutdown call (a message on the server's shutdown channel).
    Requested,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
            StopReason::Requested => "Shutdown requested",
        })
    }
}

/// Waits for SIGINT, SIGTERM or a message on `requests`, whichever comes
/// first. A closed `requests` channel stops nothing.
pub async fn stop_requested(mut requests: tokio::sync::mpsc::Receiver<()>) -> StopReason {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let requested = async {
        if requests.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => StopReason::Interrupt,
        () = term => StopReason::Terminate,
        () = requested => StopReason::Requested,
    }
}
