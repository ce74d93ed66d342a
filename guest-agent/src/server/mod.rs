//! The gRPC layer: thin services over the runtime, served on a Unix socket
//! or a vsock port, with grpc.health.v1 and server reflection. Every runtime error becomes one precise status code
//! here, and nowhere else.

mod containers;
pub mod convert;
pub mod events;
mod exec;
mod health;
mod images;
mod logs;
mod metrics;
mod network;
mod system;

use std::path::PathBuf;
use std::sync::Arc;

use libcrun_shim_proto::limited;
use libcrun_shim_proto::v1::container_service_server::ContainerServiceServer;
use libcrun_shim_proto::v1::event_service_server::EventServiceServer;
use libcrun_shim_proto::v1::exec_service_server::ExecServiceServer;
use libcrun_shim_proto::v1::health_check_service_server::HealthCheckServiceServer;
use libcrun_shim_proto::v1::image_service_server::ImageServiceServer;
use libcrun_shim_proto::v1::log_service_server::LogServiceServer;
use libcrun_shim_proto::v1::metrics_service_server::MetricsServiceServer;
use libcrun_shim_proto::v1::network_service_server::NetworkServiceServer;
use libcrun_shim_proto::v1::system_service_server::SystemServiceServer;
use tonic::{Code, Status};

use crate::error::Error;
use crate::runtime::Runtime;

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path (`unix:///PATH`).
    Unix(PathBuf),
    /// A vsock port (`vsock://CID:PORT`; CID -1 or `any` for any).
    Vsock {
        /// The context id to bind.
        cid: u32,
        /// The port.
        port: u32,
    },
}

impl std::fmt::Display for ListenAddr {
    /// The form [`ListenAddr`] parses from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
            ListenAddr::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s}: the socket path must be absolute (unix:///PATH)"
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| format!("{s}: expected vsock://CID:PORT"))?;
            let cid = match cid {
                "any" | "-1" => u32::MAX,
                c => c.parse().map_err(|_| format!("{s}: bad CID {c:?}"))?,
            };
            let port = port
                .parse()
                .map_err(|_| format!("{s}: bad port {port:?}"))?;
            return Ok(ListenAddr::Vsock { cid, port });
        }
        Err(format!("{s}: expected unix:///PATH or vsock://CID:PORT"))
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::InvalidState { .. } | Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Libcrun { source, .. } => match source.errno() {
                Some(libc::ENOENT) => Code::NotFound,
                Some(libc::EINVAL) => Code::InvalidArgument,
                Some(libc::EEXIST) => Code::AlreadyExists,
                Some(libc::EPERM | libc::EACCES) => Code::PermissionDenied,
                _ => Code::Internal,
            },
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Code::NotFound,
                std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
                _ => Code::Internal,
            },
            Error::Image(image) => {
                use crun_shim_images::Error as E;
                match image {
                    E::InvalidReference(_) => Code::InvalidArgument,
                    E::NotFound(_) => Code::NotFound,
                    E::Unauthenticated(_) => Code::Unauthenticated,
                    E::InUse(_) => Code::FailedPrecondition,
                    // Content that is not what its digest says.
                    E::BadContent(_) => Code::DataLoss,
                    // A layer that tries to write outside its directory.
                    E::UnsafeEntry { .. } => Code::PermissionDenied,
                    E::Registry(_) => Code::Unavailable,
                    E::Io { .. } => Code::Internal,
                }
            }
            Error::Network(network) => {
                use crun_shim_network::Error as E;
                match network {
                    E::InvalidArgument(_) => Code::InvalidArgument,
                    E::NetworkNotFound(_) => Code::NotFound,
                    E::NetworkExists(_) | E::PortInUse { .. } => Code::AlreadyExists,
                    // A definition that does not parse, a plugin not
                    // installed: the machine's state, not the request.
                    E::NetworkInUse(_) | E::BadConfig(_) => Code::FailedPrecondition,
                    E::Plugin { .. } | E::CorruptState(_) | E::Io { .. } => Code::Internal,
                }
            }
            Error::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

/// How long calls in flight may run on after shutdown began.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves the v1 API until `shutdown` completes (and the calls in flight
/// end, or [`SHUTDOWN_GRACE`] passes), with messages of at most
/// `max_message_bytes` either way.
pub async fn serve(
    runtime: Arc<Runtime>,
    listen: &ListenAddr,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    shutdown_tx: tokio::sync::mpsc::Sender<()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let max = max_message_bytes;
    let router = libcrun_shim_proto::serving::router_with_standard_services(
        &mut tonic::transport::Server::builder().layer(libcrun_shim_telemetry::server_layer()),
    )
    .await?
    .add_service(limited!(
        ContainerServiceServer,
        containers::Containers::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        ExecServiceServer,
        exec::Exec::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        LogServiceServer,
        logs::Logs::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        EventServiceServer,
        events::Events::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        MetricsServiceServer,
        metrics::Metrics::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        ImageServiceServer,
        images::Images::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        NetworkServiceServer,
        network::Networks::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        HealthCheckServiceServer,
        health::Health::new(runtime.clone()),
        max
    ))
    .add_service(limited!(
        SystemServiceServer,
        system::System::new(runtime, shutdown_tx),
        max
    ));
    // Once shutting down, calls in flight get a grace period; clients that
    // keep idle connections open do not hold the agent up past it.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(grace);
    match listen {
        ListenAddr::Unix(path) => {
            let listener = libcrun_shim_proto::serving::bind_unix(path)?;
            let serving = router.serve_with_incoming_shutdown(
                libcrun_shim_proto::serving::unix_incoming(listener),
                shutdown,
            );
            tokio::select! {
                served = serving => served?,
                () = &mut grace => {}
            }
        }
        ListenAddr::Vsock { cid, port } => {
            let listener =
                tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))?;
            let serving = router.serve_with_incoming_shutdown(listener.incoming(), shutdown);
            tokio::select! {
                served = serving => served?,
                () = &mut grace => {}
            }
        }
    }
    Ok(())
}

/// Shorthand for the result of an RPC.
type RpcResult<T> = Result<tonic::Response<T>, Status>;
