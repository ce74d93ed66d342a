//! A real `crun-shimd` process for tests, on a private socket.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tonic::transport::Channel;

use crate::agent::unix_channel;
use crate::served::Served;

/// A running daemon.
#[derive(Debug)]
pub struct HostProcess {
    process: Served,
    dir: tempfile::TempDir,
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
        let dir = tempfile::Builder::new().prefix("host-test").tempdir()?;
        let socket = dir.path().join("run/crun-shimd.sock");
        let mut command = Command::new(binary);
        command
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .envs(env.iter().copied());
        let process = Served::start(
            command,
            &socket,
            &dir.path().join("crun-shimd.log"),
            "crun-shimd",
        )?;
        Ok(HostProcess { process, dir })
    }

    /// The daemon's private directory (its socket is `run/crun-shimd.sock`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
    }
}
