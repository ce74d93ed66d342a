//! containerd 1.6 with `ctr`, on a private socket, root and state (its
//! CRI plugin off), running crun through the runc v2 shim.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run;

/// A private containerd, stopped and removed on drop.
pub struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Containerd {
    /// Starts containerd and waits for its socket.
    pub fn start() -> io::Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("bench-containerd")
            .tempdir()?;
        let path = |p: &str| dir.path().join(p).display().to_string();
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {socket:?}\n[ttrpc]\n  address = {ttrpc:?}\n",
            root = path("root"),
            state = path("state"),
            socket = path("containerd.sock"),
            ttrpc = path("containerd.sock.ttrpc"),
        );
        std::fs::write(dir.path().join("config.toml"), config)?;
        let log = std::fs::File::create(dir.path().join("containerd.log"))?;
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let containerd = Containerd { dir, daemon };
        let began = Instant::now();
        while run(containerd.ctr().arg("version")).is_err() {
            if began.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other("containerd did not answer in 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(containerd)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// `ctr` on this containerd.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(self.socket());
        command
    }

    fn run_args(&self, rootfs: &Path, id: &str, detach: bool, args: &[&str]) -> Command {
        let mut command = self.ctr();
        command.args(["run", "--null-io", "--runc-binary", "/usr/bin/crun"]);
        command.arg(if detach { "-d" } else { "--rm" });
        command.arg("--rootfs").arg(rootfs).arg(id).args(args);
        command
    }

    /// `ctr run --rm` to the end.
    pub fn run_rm(&self, rootfs: &Path, id: &str, args: &[&str]) -> io::Result<()> {
        run(&mut self.run_args(rootfs, id, false, args)).map(drop)
    }

    /// `ctr run -d`.
    pub fn run_detached(&self, rootfs: &Path, id: &str, args: &[&str]) -> io::Result<()> {
        run(&mut self.run_args(rootfs, id, true, args)).map(drop)
    }

    /// `ctr image pull` (plain HTTP) and unpack into the snapshotter.
    pub fn pull(&self, reference: &str) -> io::Result<()> {
        run(self
            .ctr()
            .args(["image", "pull", "--plain-http", reference]))
        .map(drop)
    }

    /// Removes every task, container, image and unused content.
    pub fn clean(&self) {
        let listed = run(self.ctr().args(["container", "list", "-q"]));
        for id in listed
            .map(|o| o.stdout)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
        {
            let id = String::from_utf8_lossy(id);
            if id.is_empty() {
                continue;
            }
            let _ = run(self.ctr().args(["task", "kill", "-s", "SIGKILL", &id]));
            let _ = run(self.ctr().args(["task", "delete", "-f", &id]));
            let _ = run(self.ctr().args(["container", "delete", &id]));
        }
        let images = run(self.ctr().args(["image", "list", "-q"]));
        for reference in images
            .map(|o| o.stdout)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
        {
            let reference = String::from_utf8_lossy(reference);
            if !reference.is_empty() {
                let _ = run(self.ctr().args(["image", "remove", "--sync", &reference]));
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Snapshots mounted under the root go with the directory.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root"))
            .stderr(Stdio::null())
            .status();
    }
}
