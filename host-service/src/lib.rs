//! `crun-shimd`, the libcrun-shim host service: the gRPC front door users
//! talk to. It serves the whole v1 API and proxies it to one or more guest
//! agents (`crun-shim-agent`), over Unix sockets or vsock; with none
//! configured on Linux it starts a local agent and supervises it.
//!
//! * [`config`]: flags > environment > TOML file > defaults;
//! * [`agents`]: connections, health and the container → agent cache;
//! * [`proxy`]: the v1 services, forwarding and merging;
//! * [`server`]: listeners, limits, health and reflection;
//! * [`supervisor`]: the local agent;
//! * [`vm`]: VMs as agents (QEMU on Linux, Virtualization.framework on macOS).
//!
//! The daemon holds no state that can be lost: which agent holds which
//! container is rebuilt from the agents themselves.

pub mod agents;
pub mod config;
pub mod error;
pub mod proxy;
pub mod server;
pub mod supervisor;
pub mod vm;

use config::{AgentConfig, Config};
use error::Result;
use tracing::info;

/// The name of the agent the daemon starts itself.
pub const LOCAL_AGENT: &str = "local";

/// Runs the daemon until SIGTERM, SIGINT or a Shutdown call.
pub async fn run(mut config: Config) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut supervised = Vec::new();
    if config.local_agent {
        let binary = match config.agent_binary.clone() {
            Some(b) => b,
            None => supervisor::default_binary()?,
        };
        let socket = config.socket.with_file_name("agent.sock");
        config.agents.push(AgentConfig {
            name: LOCAL_AGENT.into(),
            endpoint: format!("unix://{}", socket.display()),
        });
        supervised.push(tokio::spawn(supervisor::supervise(
            binary,
            config.agent_root.clone(),
            socket,
            stop_rx.clone(),
        )));
    }
    for (name, vm_config) in &config.vms {
        let vm = vm::Vm {
            name: name.clone(),
            config: vm_config.clone(),
            dir: config.socket.with_file_name("vms").join(name),
        };
        config.agents.push(AgentConfig {
            name: name.clone(),
            endpoint: vm.endpoint().to_string(),
        });
        supervised.push(tokio::spawn(vm::supervise(
            vm,
            config.vm_tools.clone(),
            stop_rx.clone(),
        )));
    }
    let pool = agents::AgentPool::new(&config.agents, config.max_message_bytes)?;
    pool.watch();
    let (shutdown_tx, shutdown_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let reason = libcrun_shim_proto::serving::stop_requested(shutdown_rx).await;
        info!("{reason}: shutting down");
        let _ = stop_tx.send(true);
    });
    info!(socket = %config.socket.display(), tcp = ?config.tcp, agents = config.agents.len(), "serving");
    let served = server::serve(&config, proxy::Shared { pool }, shutdown_tx, stop_rx).await;
    for task in supervised {
        let _ = task.await;
    }
    served
}
