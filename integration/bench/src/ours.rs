//! libcrun-shim as users run it: `crun-shimd` with the local agent it
//! starts itself, driven through the SDK and the `crun-shim` CLI.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use integration::binary;
use integration::host::HostProcess;
use libcrun_shim::ContainerRuntime;

use crate::procs;

/// A private crun-shimd (and its agent), stopped on drop.
pub struct Ours {
    host: HostProcess,
    /// An SDK client of it.
    pub runtime: ContainerRuntime,
}

impl Ours {
    /// Starts the daemon with a private agent state root, waits for its
    /// agent, and connects.
    pub async fn start() -> Result<Ours, Box<dyn std::error::Error>> {
        let host = HostProcess::start_local()?;
        let runtime =
            ContainerRuntime::connect(&format!("unix://{}", host.socket().display())).await?;
        Ok(Ours { host, runtime })
    }

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.host.socket()
    }

    /// An SDK client of the local agent itself, past the daemon (its
    /// socket is beside the daemon's): what the host's hop costs.
    pub async fn agent_runtime(&self) -> libcrun_shim::Result<ContainerRuntime> {
        let socket = self.socket().with_file_name("agent.sock");
        ContainerRuntime::connect(&format!("unix://{}", socket.display())).await
    }

    /// The OCI spec the local agent gives a container of `config`: the
    /// `config.json` of one it creates, then deletes.
    pub async fn spec_of(
        &self,
        config: libcrun_shim::ContainerConfig,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let root = self
            .host
            .agent_root()
            .ok_or("crun-shimd has no local agent")?
            .to_path_buf();
        let id = self.runtime.create(config).await?;
        let spec = std::fs::read(root.join("containers").join(&id).join("config.json"));
        self.runtime.delete(&id).await?;
        Ok(spec?)
    }

    /// `crun-shim --host SOCKET`.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(binary("crun-shim"));
        command
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()));
        command
    }

    /// The local agent's pid.
    pub fn agent_pid(&self) -> io::Result<u32> {
        let host = self
            .host
            .pid()
            .ok_or_else(|| io::Error::other("crun-shimd exited"))?;
        procs::by_name("crun-shim-agent")
            .into_iter()
            .find(|(_, parent)| *parent == host)
            .map(|(pid, _)| pid)
            .ok_or_else(|| io::Error::other("no local agent under crun-shimd"))
    }

    /// The agent and its per-container monitors (the spare one included).
    pub fn agent_and_monitors(&self) -> io::Result<Vec<u32>> {
        let agent = self.agent_pid()?;
        let mut pids = vec![agent];
        pids.extend(
            procs::by_name("crun-shim-monitor")
                .into_iter()
                .filter(|(_, parent)| *parent == agent)
                .map(|(pid, _)| pid),
        );
        Ok(pids)
    }
}
