//! A Kubernetes CRI runtime over crun-shimd: [`CriServer`] serves CRI v1
//! `RuntimeService` and `ImageService` on a Unix socket, for the kubelet,
//! `crictl` and `critest`, as a client of the `libcrun_shim.v1` API.
//!
//! - A pod sandbox is a crun-shimd container running the sandbox image's
//!   pause process in the pod's namespaces; the pod's containers join its
//!   network, IPC and UTS namespaces (and its PID namespace when the pod
//!   shares one, where pause is PID 1 and reaps).
//! - Everything the CRI needs to remember is kept on those containers
//!   (labels, and the CRI config in an annotation): the server holds no
//!   state, so pods and containers show in `crun-shim ps` with their labels
//!   and survive a restart of this server.
//! - Exec, attach and port-forward are served by the streaming server
//!   (`crun-shim-streaming`) at the URLs the CRI calls return.
//! - Images are crun-shimd's; registries may be served by mirrors
//!   ([`CriConfig::mirrors`]) while images keep their names.
//!
//! ```no_run
//! # async fn demo() -> Result<(), libcrun_shim::cri::CriError> {
//! libcrun_shim::CriServer::new("/run/libcrun-shim/cri.sock").serve().await
//! # }
//! ```

mod config;
mod containers;
mod error;
mod images;
mod logs;
mod meta;
mod network;
mod pods;
mod service;
mod stats;
mod streaming;

use std::future::Future;

pub use config::{CriConfig, DEFAULT_CRI_SOCKET, DEFAULT_SANDBOX_IMAGE, Mirror};
pub use error::CriError;
/// The CRI v1 protocol (package `runtime.v1`) this server speaks.
pub use libcrun_shim_proto::cri as proto;

use crun_shim_streaming::StreamingServer;
use libcrun_shim_proto::cri::image_service_server::ImageServiceServer;
use libcrun_shim_proto::cri::runtime_service_server::RuntimeServiceServer;
use streaming::StreamRuntime;

use crate::{ContainerRuntime, ImageStore, RuntimeConfig};

/// The CRI server: [`CriServer::serve`] until SIGINT or SIGTERM.
#[derive(Debug, Clone)]
pub struct CriServer {
    config: CriConfig,
}

/// What the CRI services share.
#[derive(Clone)]
pub(crate) struct Cri {
    pub(crate) config: CriConfig,
    pub(crate) runtime: ContainerRuntime,
    pub(crate) images: ImageStore,
    pub(crate) streaming: StreamingServer<StreamRuntime>,
    pub(crate) logs: logs::Writers,
}

impl CriServer {
    /// A server on `socket` with the default settings.
    pub fn new(socket: impl Into<std::path::PathBuf>) -> CriServer {
        CriServer {
            config: CriConfig {
                socket: socket.into(),
                ..CriConfig::default()
            },
        }
    }

    /// A server with these settings.
    pub fn with_config(config: CriConfig) -> CriServer {
        CriServer { config }
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn serve(self) -> Result<(), CriError> {
        self.serve_until(async {
            let (_keep, requests) = tokio::sync::mpsc::channel(1);
            libcrun_shim_proto::serving::stop_requested(requests).await;
        })
        .await
    }

    /// Connects to crun-shimd, binds the socket and the streaming server,
    /// and serves until `shutdown` completes.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), CriError> {
        let runtime_config = RuntimeConfig {
            endpoint: self
                .config
                .daemon
                .clone()
                .unwrap_or_else(|| RuntimeConfig::from_env().endpoint),
            // Calls such as a pull or a stop take as long as they take;
            // the kubelet sets its own deadlines.
            request_timeout: None,
            ..RuntimeConfig::from_env()
        };
        let runtime = ContainerRuntime::new_with_config(runtime_config).await?;
        let (streaming, streaming_task) = StreamingServer::bind(
            StreamRuntime {
                runtime: runtime.clone(),
            },
            self.config.streaming_address,
            crun_shim_streaming::Config::default(),
        )
        .await?;
        let cri = Cri {
            images: runtime.images(),
            runtime,
            streaming,
            logs: logs::Writers::default(),
            config: self.config.clone(),
        };
        if let Err(e) = cri.resume_logs().await {
            tracing::warn!("resuming container logs: {e}");
        }
        let listener = libcrun_shim_proto::serving::bind_unix(&self.config.socket)?;
        tracing::info!(
            socket = %self.config.socket.display(),
            streaming = %cri.streaming.base_url(),
            "serving the CRI"
        );
        let result = tonic::transport::Server::builder()
            .add_service(
                RuntimeServiceServer::new(cri.clone())
                    .max_decoding_message_size(libcrun_shim_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(libcrun_shim_proto::MAX_MESSAGE_BYTES),
            )
            .add_service(
                ImageServiceServer::new(cri)
                    .max_decoding_message_size(libcrun_shim_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(libcrun_shim_proto::MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(
                libcrun_shim_proto::serving::unix_incoming(listener),
                shutdown,
            )
            .await;
        streaming_task.abort();
        let _ = std::fs::remove_file(&self.config.socket);
        result.map_err(|e| CriError::Io(std::io::Error::other(e)))
    }
}
