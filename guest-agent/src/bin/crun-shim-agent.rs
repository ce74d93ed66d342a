//! `crun-shim-agent`: runs OCI containers through libcrun and serves the
//! libcrun-shim v1 gRPC API.

use std::path::PathBuf;

use clap::Parser;
use crun_shim_agent::events::JournalLimits;
use crun_shim_agent::model::NetworkMode;
use crun_shim_agent::runtime::{NetworkOptions, Runtime, RuntimeOptions};
use crun_shim_agent::server::{self, ListenAddr};
use tracing::{error, info};

/// Runs OCI containers through libcrun and serves the libcrun-shim v1 gRPC
/// API. Containers keep running when the agent stops; a restarted agent
/// takes them over from its state root.
#[derive(Debug, Parser)]
#[command(name = "crun-shim-agent", version)]
struct Args {
    /// Where to serve: unix:///PATH or vsock://CID:PORT (CID "any" for any).
    #[arg(
        long,
        env = "CRUN_SHIM_AGENT_LISTEN",
        default_value = "unix:///run/libcrun-shim/agent.sock"
    )]
    listen: ListenAddr,
    /// The state root: container records, bundles, logs, libcrun's state.
    #[arg(
        long,
        env = "CRUN_SHIM_AGENT_ROOT",
        default_value = "/var/lib/libcrun-shim/agent"
    )]
    root: PathBuf,
    /// The crun-shim-monitor binary. Default: next to this binary.
    #[arg(long, env = "CRUN_SHIM_MONITOR")]
    monitor: Option<PathBuf>,
    /// Events the journal keeps for replay (Subscribe with since_sequence).
    #[arg(long, env = "CRUN_SHIM_EVENTS_MAX", default_value_t = JournalLimits::default().max_events)]
    events_max: u64,
    /// Bytes the event journal may take on disk.
    #[arg(long, env = "CRUN_SHIM_EVENTS_MAX_BYTES", default_value_t = JournalLimits::default().max_bytes)]
    events_max_bytes: u64,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP. Repeat for
    /// several. Loopback registries (127.0.0.0/8, ::1, localhost) always
    /// are, as Docker does.
    #[arg(
        long = "insecure-registry",
        env = "CRUN_SHIM_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Largest message accepted or sent, in bytes (the daemon's own default:
    /// keep it at least the daemon's --max-message-bytes).
    #[arg(long, env = "CRUN_SHIM_AGENT_MAX_MESSAGE_BYTES", default_value_t = libcrun_shim_proto::MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Layers one pull downloads at once.
    #[arg(long, env = "CRUN_SHIM_MAX_CONCURRENT_DOWNLOADS", default_value_t = 3)]
    max_concurrent_downloads: usize,
    /// The docker config.json registry credentials are read from when a
    /// pull brings none [default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json].
    #[arg(long, env = "CRUN_SHIM_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,
    /// Where network definitions (CNI configuration lists) are; the
    /// default network's is written there when no file defines it.
    #[arg(
        long,
        env = "CRUN_SHIM_NETWORK_CONFIG_DIR",
        default_value = "/etc/libcrun-shim/net.d"
    )]
    network_config_dir: PathBuf,
    /// A directory of CNI plugins, searched in order; ':' separates several
    /// [default: /usr/lib/cni, /opt/cni/bin, /usr/libexec/cni].
    #[arg(
        long = "cni-plugin-dir",
        env = "CRUN_SHIM_CNI_PATH",
        value_delimiter = ':'
    )]
    cni_plugin_dirs: Vec<PathBuf>,
    /// Where containers' network namespaces are mounted [default: ROOT/netns].
    #[arg(long, env = "CRUN_SHIM_NETNS_DIR")]
    netns_dir: Option<PathBuf>,
    /// The default network: the one containers join when they name none.
    #[arg(long, env = "CRUN_SHIM_DEFAULT_NETWORK", default_value = "crun-shim")]
    default_network: String,
    /// The default network's bridge, when the agent defines it.
    #[arg(long, default_value = "crun-shim0")]
    default_network_bridge: String,
    /// The default network's subnet, when the agent defines it.
    #[arg(long, default_value = "10.77.0.0/16")]
    default_network_subnet: ipnet::Ipv4Net,
    /// The network mode of containers that ask for none.
    #[arg(long, value_enum, default_value_t = DefaultNetworkMode::Bridge)]
    default_network_mode: DefaultNetworkMode,
}

/// The network modes a container may get by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DefaultNetworkMode {
    /// Its own namespace on the default network.
    Bridge,
    /// Its own namespace with loopback only.
    None,
}

fn main() {
    let args = Args::parse();
    // Starts no thread (see `prepare`): the exporter's start with the
    // first span that ends.
    let telemetry = match libcrun_shim_telemetry::init("crun-shim-agent") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("crun-shim-agent: {e}");
            std::process::exit(1);
        }
    };
    let monitor_binary = match args
        .monitor
        .clone()
        .map_or_else(default_monitor, Ok)
        .and_then(|p| {
            p.canonicalize()
                .map_err(|e| format!("{}: {e}", p.display()))
        }) {
        Ok(path) => path,
        Err(e) => {
            error!("{e}");
            std::process::exit(1);
        }
    };
    // The mount namespace the agent starts in, where network namespaces
    // are mounted to outlive it (see crun_shim_network::netns).
    let durable_mount_namespace = match crun_shim_network::netns::current_mount_namespace() {
        Ok(fd) => std::sync::Arc::new(fd),
        Err(e) => {
            error!("opening this process's mount namespace: {e}");
            std::process::exit(1);
        }
    };
    let cgroups = match prepare(&monitor_binary) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => {
            let options = RuntimeOptions {
                root: args.root.clone(),
                serves: args.listen.to_string(),
                monitor_binary,
                cgroups,
                journal: JournalLimits {
                    max_events: args.events_max,
                    max_bytes: args.events_max_bytes,
                },
                images: crun_shim_images::StoreOptions {
                    insecure_registries: args.insecure_registries.clone(),
                    docker_config: args
                        .docker_config
                        .clone()
                        .or_else(crun_shim_images::auth::default_docker_config),
                    max_concurrent_downloads: args.max_concurrent_downloads.max(1),
                },
                network: network_options(&args, durable_mount_namespace),
            };
            rt.block_on(run(args, options))
        }
        Err(e) => {
            error!("starting tokio: {e}");
            1
        }
    };
    drop(telemetry);
    std::process::exit(code);
}

/// The networking's options from the command line.
fn network_options(
    args: &Args,
    durable_mount_namespace: std::sync::Arc<std::os::fd::OwnedFd>,
) -> NetworkOptions {
    let mut networking = crun_shim_network::NetworkingOptions::new(
        args.root.join("network"),
        args.netns_dir
            .clone()
            .unwrap_or_else(|| args.root.join("netns")),
        args.network_config_dir.clone(),
    );
    if !args.cni_plugin_dirs.is_empty() {
        networking.plugin_dirs = args.cni_plugin_dirs.clone();
    }
    networking.default_network = crun_shim_network::DefaultNetwork {
        name: args.default_network.clone(),
        bridge: args.default_network_bridge.clone(),
        subnet: args.default_network_subnet,
    };
    networking.durable_mount_namespace = Some(durable_mount_namespace);
    NetworkOptions {
        networking,
        default_mode: match args.default_network_mode {
            DefaultNetworkMode::Bridge => NetworkMode::Bridge,
            DefaultNetworkMode::None => NetworkMode::None,
        },
    }
}

/// Sets the process up before any thread exists (unsharing the mount
/// namespace needs a single-threaded process): a private mount namespace,
/// without a hybrid host's cgroup2 mount, in which the monitor binary is
/// read-only (see `libcrun_sys::namespace`).
fn prepare(monitor: &std::path::Path) -> Result<libcrun_sys::cgroup::Preparation, String> {
    let cgroups = libcrun_sys::cgroup::prepare_process()
        .map_err(|e| format!("preparing cgroups for libcrun: {e}"))?;
    if !cgroups.private_mount_namespace {
        libcrun_sys::namespace::private_mount_namespace()
            .map_err(|e| format!("entering a private mount namespace: {e}"))?;
    }
    libcrun_sys::namespace::read_only_bind(monitor)
        .map_err(|e| format!("mounting {} read-only: {e}", monitor.display()))?;
    Ok(cgroups)
}

/// `crun-shim-monitor` next to this executable. libcrun re-executes this
/// program from a private copy at start, so `/proc/self/exe` no longer
/// names its file: the path it was started by (argv[0]) does.
fn default_monitor() -> Result<PathBuf, String> {
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    let exe = if argv0.components().count() > 1 {
        argv0
    } else {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(&argv0))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("cannot locate {}; pass --monitor", argv0.display()))?
    };
    let path = exe.with_file_name("crun-shim-monitor");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} not found; pass --monitor", path.display()))
    }
}

async fn run(args: Args, options: RuntimeOptions) -> i32 {
    info!(
        root = %args.root.display(),
        libcrun = libcrun_sys::libcrun_version(),
        cgroups = ?options.cgroups.host_mode,
        "starting"
    );
    let runtime = match Runtime::open(options).await {
        Ok(r) => r,
        Err(e) => {
            error!("opening {}: {e}", args.root.display());
            return 1;
        }
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = async move {
        let reason = libcrun_shim_proto::serving::stop_requested(shutdown_rx).await;
        info!("{reason}: shutting down");
    };
    info!(listen = ?args.listen, "serving");
    match server::serve(
        runtime.clone(),
        &args.listen,
        args.max_message_bytes,
        shutdown,
        shutdown_tx,
    )
    .await
    {
        Ok(()) => {
            if let ListenAddr::Unix(path) = &args.listen {
                let _ = std::fs::remove_file(path);
            }
            // The graceful path: containers keep running, the journal is
            // flushed to disk.
            match runtime.shutdown(false, Default::default()).await {
                Ok(_) => 0,
                Err(e) => {
                    error!("flushing the event journal: {e}");
                    1
                }
            }
        }
        Err(e) => {
            error!("serving on {:?}: {e}", args.listen);
            1
        }
    }
}
