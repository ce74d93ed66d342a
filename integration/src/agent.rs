//! A real `crun-shim-agent` process for tests, with its own state root and
//! socket, and a gRPC channel to it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::served::Served;

/// Connects a gRPC channel to a Unix socket.
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
}

/// A running agent.
#[derive(Debug)]
pub struct AgentProcess {
    process: Option<Served>,
    agent: PathBuf,
    monitor: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts `agent` (with `monitor` as its monitor binary) in a fresh
    /// temporary state root and waits until it serves.
    pub fn start(agent: &Path, monitor: &Path) -> io::Result<AgentProcess> {
        AgentProcess::start_with(agent, monitor, &[])
    }

    /// Like [`AgentProcess::start`], with extra command-line arguments.
    pub fn start_with(agent: &Path, monitor: &Path, args: &[&str]) -> io::Result<AgentProcess> {
        let dir = tempfile::Builder::new().prefix("agent-test").tempdir()?;
        let mut process = AgentProcess {
            process: None,
            agent: agent.to_path_buf(),
            monitor: monitor.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
        };
        process.spawn()?;
        Ok(process)
    }

    /// The agent's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// The agent's state root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The agent's network definitions.
    pub fn network_config_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    /// The agent's stderr log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Served::pid)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let mut command = Command::new(&self.agent);
        command
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .arg("--root")
            .arg(self.root())
            .arg("--monitor")
            .arg(&self.monitor)
            // Its own network definitions (the default network's is
            // written there), never the machine's.
            .arg("--network-config-dir")
            .arg(self.network_config_dir())
            .args(&self.args);
        self.process = Some(Served::start(command, &socket, &self.log(), "the agent")?);
        Ok(())
    }

    /// A gRPC channel to the agent.
    pub async fn channel(&self) -> Channel {
        unix_channel(&self.socket())
            .await
            .expect("connecting to the agent")
    }

    /// Waits for the agent to exit on its own, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.as_mut()?.wait_exit(timeout)
    }

    /// Kills the agent with SIGKILL (its containers keep running).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the agent again on the same state root.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        remove_containers(&self.root().join("libcrun"));
        remove_networks(&self.root(), &self.network_config_dir());
    }
}

/// Detaches the network attachments of the containers a test left under
/// an agent's state root `root` (CNI DEL, namespaces unmounted), so that
/// no address lease, iptables rule or mount outlives the test.
pub(crate) fn remove_networks(root: &Path, config_dir: &Path) {
    if !root.join("network").is_dir() {
        return;
    }
    let options = crun_shim_network::NetworkingOptions::new(
        root.join("network"),
        root.join("netns"),
        config_dir.to_path_buf(),
    );
    let Ok(networking) = crun_shim_network::Networking::open(options) else {
        return;
    };
    for attachment in networking.attachments() {
        let _ = networking.detach(&attachment.container_id);
    }
}

/// Kills the agent that holds the lock of state root `root` (the pid on
/// the first line of `ROOT/agent.lock`), if one does.
pub fn kill_root_holder(root: &Path) {
    use std::os::fd::AsRawFd;
    let path = root.join("agent.lock");
    let Ok(file) = std::fs::File::open(&path) else {
        return;
    };
    // SAFETY: a test lock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return;
    }
    let note = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(pid) = note.lines().next().and_then(|p| p.parse::<i32>().ok()) {
        // SAFETY: kills the agent serving the test's own state root.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: as above, a test lock.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Kills what a test left running under a libcrun state root and removes
/// its cgroups, so that tests leave nothing on the host.
pub(crate) fn remove_containers(libcrun_root: &Path) {
    let Ok(entries) = std::fs::read_dir(libcrun_root) else {
        return;
    };
    let mut cgroups = Vec::new();
    for entry in entries.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if let Some(pid) = json_number(&status, "pid") {
            // SAFETY: sends SIGKILL to a container init the test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Some(path) = json_string(&status, "cgroup-path") {
            cgroups.push(path);
        }
    }
    for path in cgroups {
        let path = path.trim_start_matches('/');
        let mut dirs = vec![Path::new("/sys/fs/cgroup").join(path)];
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(controllers.flatten().map(|c| c.path().join(path)));
        }
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            // The killed processes take a moment to leave the cgroup.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Finds `"key": "STRING"` in a small JSON text.
fn json_string(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Finds `"key": NUMBER` in a small JSON text.
fn json_number(text: &str, key: &str) -> Option<i64> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
