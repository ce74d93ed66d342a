//! podman (with crun, cgroupfs, no network), on a private storage root.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::run;

/// podman on private storage, removed on drop.
pub struct Podman {
    root: tempfile::TempDir,
}

impl Podman {
    /// Private storage and run directories.
    pub fn new() -> io::Result<Podman> {
        Ok(Podman {
            root: tempfile::Builder::new().prefix("bench-podman").tempdir()?,
        })
    }

    /// `podman` with the suite's global options.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.root.path().join("storage"))
            .arg("--runroot")
            .arg(self.root.path().join("run"))
            .arg("--tmpdir")
            .arg(self.root.path().join("tmp"))
            .args([
                "--runtime",
                "crun",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        command
    }

    /// `podman run` arguments for `args` on `rootfs`: no network, and the
    /// rlimits this machine allows (podman's defaults exceed its hard
    /// limit on open files).
    fn run_args(&self, rootfs: &Path, id: &str, detach: bool, args: &[&str]) -> Command {
        self.run_args_on(&["--network", "none"], rootfs, id, detach, args)
    }

    /// [`Podman::run_args`] with `network` options in place of
    /// `--network none`.
    fn run_args_on(
        &self,
        network: &[&str],
        rootfs: &Path,
        id: &str,
        detach: bool,
        args: &[&str],
    ) -> Command {
        let mut command = self.command();
        command.arg("run").args(network);
        command.args(["--ulimit", "nofile=1024:1024"]);
        command.args(["--ulimit", "nproc=1024:1024", "--name", id]);
        command.arg(if detach { "-d" } else { "--rm" });
        command.arg("--rootfs").arg(rootfs).args(args);
        command
    }

    /// `podman run --rm` to the end.
    pub fn run_rm(&self, rootfs: &Path, id: &str, args: &[&str]) -> io::Result<()> {
        run(&mut self.run_args(rootfs, id, false, args)).map(drop)
    }

    /// `podman run --rm -p PUBLISH` on podman's default bridge network, to
    /// the end.
    pub fn run_rm_published(
        &self,
        publish: &str,
        rootfs: &Path,
        id: &str,
        args: &[&str],
    ) -> io::Result<()> {
        run(&mut self.run_args_on(&["-p", publish], rootfs, id, false, args)).map(drop)
    }

    /// `podman run -d`.
    pub fn run_detached(&self, rootfs: &Path, id: &str, args: &[&str]) -> io::Result<()> {
        run(&mut self.run_args(rootfs, id, true, args)).map(drop)
    }

    /// `podman logs -f ID`, its stdout piped.
    pub fn follow_logs(&self, id: &str) -> io::Result<Child> {
        self.command()
            .args(["logs", "-f", id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    /// `podman pull` of a plain-HTTP registry's image.
    pub fn pull(&self, reference: &str) -> io::Result<()> {
        run(self
            .command()
            .args(["pull", "-q", "--tls-verify=false", reference]))
        .map(drop)
    }

    /// Removes every container and image.
    pub fn clean(&self) {
        let _ = run(self.command().args(["rm", "-af", "-t", "0"]));
        let _ = run(self.command().args(["rmi", "-af"]));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.clean();
        // Overlay mounts podman left under its storage.
        let _ = run(self.command().args(["system", "reset", "-f"]));
    }
}
