//! Serving: the v1 services, grpc.health.v1 and server reflection, on the
//! Unix socket and optionally on TCP (with TLS, optionally requiring
//! client certificates), with message size, stream and deadline limits.

use std::path::Path;

use libcrun_shim_proto::v1::container_service_server::ContainerServiceServer;
use libcrun_shim_proto::v1::event_service_server::EventServiceServer;
use libcrun_shim_proto::v1::exec_service_server::ExecServiceServer;
use libcrun_shim_proto::v1::health_check_service_server::HealthCheckServiceServer;
use libcrun_shim_proto::v1::image_service_server::ImageServiceServer;
use libcrun_shim_proto::v1::log_service_server::LogServiceServer;
use libcrun_shim_proto::v1::metrics_service_server::MetricsServiceServer;
use libcrun_shim_proto::v1::network_service_server::NetworkServiceServer;
use libcrun_shim_proto::v1::system_service_server::SystemServiceServer;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Router;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use libcrun_shim_proto::limited;
use libcrun_shim_telemetry::ServerLayer;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::proxy::{self, Shared};

/// Builds the services once per listener.
struct Services {
    shared: Shared,
    shutdown: tokio::sync::mpsc::Sender<()>,
    max: usize,
}

impl Services {
    async fn router(&self, mut builder: Server<Layers>) -> Result<Router<Layers>> {
        let s = &self.shared;
        let max = self.max;
        let router = libcrun_shim_proto::serving::router_with_standard_services(&mut builder)
            .await
            .map_err(|e| Error::Serve(format!("reflection: {e}")))?;
        Ok(router
            .add_service(limited!(
                ContainerServiceServer,
                proxy::Containers(s.clone()),
                max
            ))
            .add_service(limited!(ExecServiceServer, proxy::Exec(s.clone()), max))
            .add_service(limited!(LogServiceServer, proxy::Logs(s.clone()), max))
            .add_service(limited!(EventServiceServer, proxy::Events(s.clone()), max))
            .add_service(limited!(
                MetricsServiceServer,
                proxy::Metrics(s.clone()),
                max
            ))
            .add_service(limited!(
                HealthCheckServiceServer,
                proxy::Health(s.clone()),
                max
            ))
            .add_service(limited!(ImageServiceServer, proxy::Images(s.clone()), max))
            .add_service(limited!(
                NetworkServiceServer,
                proxy::Networks(s.clone()),
                max
            ))
            .add_service(limited!(
                SystemServiceServer,
                proxy::System::new(s.clone(), self.shutdown.clone()),
                max
            )))
    }
}

/// The layers around every service: a span per RPC (see
/// `libcrun_shim_telemetry`).
type Layers = tower::layer::util::Stack<ServerLayer, tower::layer::util::Identity>;

fn builder(config: &Config) -> Server<Layers> {
    let mut builder = Server::builder().max_concurrent_streams(Some(config.max_concurrent_streams));
    if let Some(timeout) = config.request_timeout {
        builder = builder.timeout(timeout);
    }
    builder.layer(libcrun_shim_telemetry::server_layer())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// Serves until `stopping` turns true, then lets calls in flight finish
/// (for a short grace period).
pub async fn serve(
    config: &Config,
    shared: Shared,
    shutdown: tokio::sync::mpsc::Sender<()>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let services = Services {
        shared,
        shutdown,
        max: config.max_message_bytes,
    };
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix = libcrun_shim_proto::serving::bind_unix(&config.socket)
        .map_err(|e| Error::io("serving on the Unix socket", e))?;
    let unix_router = services.router(builder(config)).await?;
    let mut tasks = vec![tokio::spawn(unix_router.serve_with_incoming_shutdown(
        libcrun_shim_proto::serving::unix_incoming(unix),
        signal(stopping.clone()),
    ))];
    if let Some(addr) = config.tcp {
        let mut tcp_builder = builder(config);
        if let Some(tls) = &config.tls {
            let mut tls_config = ServerTlsConfig::new()
                .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
            if let Some(ca) = &tls.client_ca {
                tls_config =
                    tls_config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
            }
            tcp_builder = tcp_builder
                .tls_config(tls_config)
                .map_err(|e| Error::Serve(format!("TLS: {e}")))?;
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("binding {addr}"), e))?;
        let router = services.router(tcp_builder).await?;
        tasks.push(tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            signal(stopping.clone()),
        )));
    }
    let mut grace = stopping;
    let all = futures::future::join_all(tasks);
    tokio::select! {
        results = all => {
            for r in results {
                r.map_err(|e| Error::Serve(e.to_string()))?.map_err(|e| Error::Serve(e.to_string()))?;
            }
        }
        () = async move {
            let _ = grace.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

/// How long calls in flight may run on after shutdown began.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
