//! A containerd Shim v2 over libcrun-shim (feature `shim-v2`): the task
//! API v2 of containerd (1.6 speaks it; 2.x bridges it) translated into
//! calls of the `libcrun_shim.v1` API on `crun-shimd`.
//!
//! The binary `containerd-shim-crunshim-v2` (package
//! `containerd-shim-crunshim-v2`, runtime name `io.containerd.crunshim.v2`)
//! is [`main`]. containerd starts one per container, or one per pod when the
//! bundle's spec carries the `io.kubernetes.cri.sandbox-id` annotation (as
//! containerd's runc shim groups them), so that a pod of many containers
//! costs one shim.
//!
//! The shim holds nothing that is lost when it dies: the containers run
//! under the agent, their standard streams (containerd's FIFOs, `file://`
//! and `binary://` log URIs) are held by their monitors, exec processes are
//! detached processes of the agent (`StartProcess`), and exit statuses are
//! recorded by the agent. What the shim keeps in memory is only what
//! containerd has not started yet (an exec registered but not started) and
//! the containers it relays events for. When it is killed, containerd's
//! `delete` (this binary's `delete` action) removes the container from the
//! agent and unmounts the bundle's root filesystem.
//!
//! Containers appear in `crun-shim ps` as `NAMESPACE--ID` with the labels
//! [`LABEL_NAMESPACE`] and [`LABEL_ID`].

mod convert;
mod daemon;
mod relay;
mod task;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::{ExitSignal, Shim, spawn};
use containerd_shim::protos::api;
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Flags, StartOpts};

use crate::error::{Error, Result};
pub use daemon::endpoint_from_options;

/// The runtime name containerd knows this shim by.
pub const RUNTIME_ID: &str = "io.containerd.crunshim.v2";
/// The label holding a container's containerd namespace.
pub const LABEL_NAMESPACE: &str = "io.containerd.namespace";
/// The label holding a container's containerd id.
pub const LABEL_ID: &str = "io.containerd.id";
/// The label naming the shim process (its first task id) that relays the
/// container's events.
pub const LABEL_SHIM: &str = "io.containerd.crunshim.shim";
/// The label holding the container's bundle directory.
pub const LABEL_BUNDLE: &str = "io.containerd.bundle";
/// The annotation by which containers of one pod share a shim.
pub const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// The file in a bundle recording which daemon the shim spoke to, for a
/// later `delete` action.
const ENDPOINT_FILE: &str = "crun-shimd.endpoint";

/// The id a containerd task has in libcrun-shim: `NAMESPACE--ID` (neither
/// part may hold `--` in containerd, so the pair can be told back).
pub fn container_id(namespace: &str, id: &str) -> String {
    format!("{namespace}--{id}")
}

/// A containerd Shim v2 task service for one bundle, served on a ttrpc
/// socket: the seed's `ShimV2::new(socket, bundle, namespace).serve()`.
///
/// [`main`] is what containerd runs; `ShimV2` serves the same task API on
/// a socket of your choosing (events go to containerd's `TTRPC_ADDRESS`
/// when it is set).
///
/// ```no_run
/// # async fn demo() -> libcrun_shim::Result<()> {
/// use std::path::PathBuf;
/// use libcrun_shim::ShimV2;
///
/// let shim = ShimV2::new(
///     PathBuf::from("/run/containerd/shim.sock"),
///     PathBuf::from("/var/lib/containerd/bundle"),
///     "default".to_string(),
/// );
/// shim.serve().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ShimV2 {
    socket: PathBuf,
    bundle: PathBuf,
    namespace: String,
    endpoint: Option<String>,
}

impl ShimV2 {
    /// A shim serving on `socket` for the tasks of containerd namespace
    /// `namespace`, its first bundle `bundle`.
    pub fn new(socket: PathBuf, bundle: PathBuf, namespace: String) -> ShimV2 {
        ShimV2 {
            socket,
            bundle,
            namespace,
            endpoint: None,
        }
    }

    /// The daemon to speak to (default: `CRUN_SHIM_HOST`, else the default
    /// socket).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> ShimV2 {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Serves the task API until containerd shuts the shim down.
    pub async fn serve(self) -> Result<()> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| daemon::endpoint(&self.bundle));
        let publisher = match std::env::var("TTRPC_ADDRESS") {
            Ok(address) => Some(
                RemotePublisher::new(&address)
                    .await
                    .map_err(|e| Error::Unavailable(format!("containerd at {address}: {e}")))?,
            ),
            Err(_) => None,
        };
        let exit = Arc::new(ExitSignal::default());
        let shim_id = self
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let service = task::Service::new(
            &endpoint,
            &self.namespace,
            &shim_id,
            publisher,
            exit.clone(),
        );
        let listener = std::os::unix::net::UnixListener::bind(&self.socket).map_err(|e| {
            Error::InvalidArgument(format!("socket {}: {e}", self.socket.display()))
        })?;
        let listener =
            containerd_shim::protos::ttrpc::r#async::transport::Listener::try_from(listener)
                .map_err(|e| Error::Internal(format!("ttrpc listener: {e}")))?;
        let task: Box<dyn containerd_shim::protos::shim_async::Task + Send + Sync> =
            Box::new(service);
        let mut server = Server::new()
            .add_listener(listener)
            .register_service(create_task(Arc::from(task)));
        server
            .start()
            .await
            .map_err(|e| Error::Internal(format!("ttrpc server: {e}")))?;
        exit.wait().await;
        let _ = server.shutdown().await;
        let _ = std::fs::remove_file(&self.socket);
        Ok(())
    }
}

/// The shim as containerd drives it (`start`, `delete`, serve).
struct Process {
    namespace: String,
    id: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

#[async_trait]
impl Shim for Process {
    type T = task::Service;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Process {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    /// Starts (or finds) the shim serving this task's group and returns its
    /// address; prints nothing else (containerd 1.6 reads stdout and stderr
    /// together).
    async fn start_shim(
        &mut self,
        opts: StartOpts,
    ) -> std::result::Result<String, containerd_shim::Error> {
        let endpoint = daemon::endpoint_for_start(&self.bundle);
        // Recorded for a `delete` run after the shim or the daemon died.
        let _ = std::fs::write(self.bundle.join(ENDPOINT_FILE), &endpoint);
        let grouping = grouping(&self.bundle).unwrap_or_else(|| opts.id.clone());
        let address = spawn(
            opts,
            &grouping,
            vec![(crate::config::HOST_ENV, endpoint.as_str())],
        )
        .await?;
        // containerd 1.6 reconnects to the shim through this file after a
        // restart of its own.
        std::fs::write(self.bundle.join("address"), &address)
            .map_err(|e| containerd_shim::Error::Other(format!("writing the address file: {e}")))?;
        Ok(address)
    }

    /// Cleans up after a task whose shim is gone: removes the container
    /// from libcrun-shim (killing it if it still runs) and unmounts the
    /// bundle's root filesystem. Reports exit 137 unless the agent still
    /// knew how the container ended.
    async fn delete_shim(
        &mut self,
    ) -> std::result::Result<api::DeleteResponse, containerd_shim::Error> {
        let endpoint = daemon::endpoint(&self.bundle);
        let id = container_id(&self.namespace, &self.id);
        let exit = daemon::force_delete(&endpoint, &id).await;
        task::unmount_rootfs(&self.bundle);
        let (code, at) = exit.unwrap_or((137, std::time::SystemTime::now()));
        let mut response = api::DeleteResponse::new();
        response.exit_status = code;
        response.exited_at = protobuf_time(at);
        Ok(response)
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        let endpoint = daemon::endpoint(&self.bundle);
        task::Service::new(
            &endpoint,
            &self.namespace,
            &self.id,
            Some(publisher),
            self.exit.clone(),
        )
    }
}

/// The pod a bundle's container belongs to, from its spec's annotations.
fn grouping(bundle: &Path) -> Option<String> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    spec["annotations"][SANDBOX_ANNOTATION]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn protobuf_time(
    t: std::time::SystemTime,
) -> containerd_shim::protos::protobuf::MessageField<
    containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp,
> {
    convert::timestamp(t)
}

/// The entry point of `containerd-shim-crunshim-v2`: containerd's `start`
/// and `delete` actions, and the task service itself. Runs on a
/// single-threaded runtime: a shim is idle almost all the time, and each
/// thread would cost memory per container.
pub fn main() {
    // containerd 2 asks `-info` (runtime options on stdin) for the shim's
    // name and version.
    if std::env::args().any(|a| a == "-info" || a == "--info") {
        std::process::exit(match print_info() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{RUNTIME_ID}: {e}");
                1
            }
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(containerd_shim::asynchronous::run::<Process>(
        RUNTIME_ID, None,
    ));
}

/// Prints the shim's `RuntimeInfo` (protobuf) for containerd's `-info`.
fn print_info() -> std::io::Result<()> {
    use containerd_shim::protos::protobuf::Message;
    use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    use std::io::{Read, Write};
    let mut options = Vec::new();
    if !daemon::stdin_is_terminal() {
        std::io::stdin().read_to_end(&mut options)?;
    }
    let info = RuntimeInfo {
        name: RUNTIME_ID.into(),
        version: containerd_shim::protos::protobuf::MessageField::some(RuntimeVersion {
            version: crate::VERSION.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = info.write_to_bytes().map_err(std::io::Error::other)?;
    std::io::stdout().write_all(&bytes)
}
