//! A real `crun-shimd` process for tests, on a private socket.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::agent::unix_channel;
use crate::served::Served;

/// A running daemon.
#[derive(Debug)]
pub struct HostProcess {
    process: Served,
    /// How it was started, for [`HostProcess::restart`].
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    tied: bool,
    dir: tempfile::TempDir,
    /// The state root of the local agent [`HostProcess::start_local`] started.
    agent_root: Option<tempfile::TempDir>,
}

impl HostProcess {
    /// Starts `crun-shimd` with `args` (its socket and log are private to
    /// the test) and waits until it serves.
    pub fn start(binary: &Path, args: &[String]) -> io::Result<HostProcess> {
        Self::start_with_env(binary, args, &[])
    }

    /// [`HostProcess::start`] with more environment variables for the
    /// daemon (and the local agent it starts, which inherits them).
    pub fn start_with_env(
        binary: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> io::Result<HostProcess> {
        Self::start_with(binary, args, env, false)
    }

    /// [`HostProcess::start_with_env`]; with `tied`, the daemon gets SIGTERM
    /// when the thread that started it ends (PR_SET_PDEATHSIG), so a test
    /// process that dies takes its daemon (and the VMs it runs) along.
    pub fn start_with(
        binary: &Path,
        args: &[String],
        env: &[(&str, &str)],
        tied: bool,
    ) -> io::Result<HostProcess> {
        let dir = tempfile::Builder::new().prefix("host-test").tempdir()?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let process = Self::spawn(binary, args, &env, dir.path(), tied)?;
        Ok(HostProcess {
            process,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
            env,
            tied,
            dir,
            agent_root: None,
        })
    }

    fn spawn(
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
        tied: bool,
    ) -> io::Result<Served> {
        let socket = dir.join("run/crun-shimd.sock");
        let mut command = Command::new(binary);
        command
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)));
        if tied {
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        Served::start(command, &socket, &dir.join("crun-shimd.log"), "crun-shimd")
    }

    /// Kills the daemon with SIGKILL, as a crash would: its local agent is
    /// not told.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the daemon again, as it was started (same socket, agent root
    /// and log), after [`HostProcess::kill`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.process.kill();
        self.process = Self::spawn(
            &self.binary,
            &self.args,
            &self.env,
            self.dir.path(),
            self.tied,
        )?;
        Ok(())
    }

    /// Starts the workspace's `crun-shimd` with no agent configured, so that
    /// it starts its own local `crun-shim-agent` on a private state root,
    /// and waits until that agent serves too. On drop, whatever containers
    /// the test left running are killed.
    pub fn start_local() -> io::Result<HostProcess> {
        let agent_root = tempfile::Builder::new()
            .prefix("host-agent-root")
            .tempdir()?;
        let config_dir = agent_root.path().join("net.d");
        let mut host = HostProcess::start_with_env(
            &crate::binary("crun-shimd"),
            &[
                "--agent-binary".into(),
                crate::binary("crun-shim-agent").display().to_string(),
                "--agent-root".into(),
                agent_root.path().display().to_string(),
            ],
            // Its own network definitions, never the machine's.
            &[(
                "CRUN_SHIM_NETWORK_CONFIG_DIR",
                &config_dir.display().to_string(),
            )],
        )?;
        host.agent_root = Some(agent_root);
        // The daemon's local agent listens beside the daemon's socket.
        let agent_socket = host.socket().with_file_name("agent.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&agent_socket).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the local agent did not serve: {}", host.log()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(host)
    }

    /// The daemon's private directory (its socket is `run/crun-shimd.sock`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state root of the local agent [`HostProcess::start_local`]
    /// started (`None` for a daemon started otherwise).
    pub fn agent_root(&self) -> Option<&Path> {
        self.agent_root.as_ref().map(|d| d.path())
    }

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/crun-shimd.sock")
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("crun-shimd.log")).unwrap_or_default()
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// A gRPC channel to the daemon.
    pub async fn channel(&self) -> Channel {
        unix_channel(&self.socket())
            .await
            .expect("connecting to crun-shimd")
    }

    /// Waits for the daemon to exit on its own, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(timeout)
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // The daemon stops its local agent on SIGTERM.
        self.process.terminate(Duration::from_secs(10));
        if let Some(root) = &self.agent_root {
            // A daemon the test killed left its agent running.
            crate::agent::kill_root_holder(root.path());
            crate::agent::remove_containers(&root.path().join("libcrun"));
            crate::agent::remove_networks(root.path(), &root.path().join("net.d"));
        }
    }
}
