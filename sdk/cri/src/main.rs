//! `crun-shim-cri`: serves the Kubernetes CRI (RuntimeService and
//! ImageService) on a Unix socket, over crun-shimd.
//!
//! ```text
//! crun-shim-cri --socket /run/libcrun-shim/cri.sock \
//!     --registry-mirror registry.k8s.io=127.0.0.1:5000
//! crictl --runtime-endpoint unix:///run/libcrun-shim/cri.sock pods
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use libcrun_shim::cri::{CriConfig, DEFAULT_CRI_SOCKET, DEFAULT_SANDBOX_IMAGE, Mirror};

/// The Kubernetes CRI runtime of libcrun-shim, over crun-shimd.
#[derive(Debug, Parser)]
#[command(name = "crun-shim-cri", version)]
struct Args {
    /// The Unix socket to serve the CRI on.
    #[arg(long, env = "CRUN_SHIM_CRI_SOCKET", default_value = DEFAULT_CRI_SOCKET)]
    socket: PathBuf,
    /// crun-shimd's endpoint (a socket path or unix:///PATH). Default:
    /// CRUN_SHIM_HOST, else crun-shimd's default socket.
    #[arg(long)]
    daemon: Option<String>,
    /// The image pod sandboxes run (pause).
    #[arg(long, default_value = DEFAULT_SANDBOX_IMAGE)]
    sandbox_image: String,
    /// Fetch a registry's images from another registry, keeping their
    /// names: REGISTRY=HOST[:PORT] (repeatable).
    #[arg(long = "registry-mirror", value_name = "REGISTRY=HOST[:PORT]")]
    mirrors: Vec<Mirror>,
    /// The streaming server's address (exec, attach, port-forward URLs).
    #[arg(long, default_value = "127.0.0.1:0")]
    streaming_address: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = CriConfig {
        socket: args.socket,
        daemon: args.daemon,
        sandbox_image: args.sandbox_image,
        mirrors: args.mirrors,
        streaming_address: args.streaming_address,
    };
    match libcrun_shim::CriServer::with_config(config).serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crun-shim-cri: {e}");
            ExitCode::FAILURE
        }
    }
}
