//! A real `crun-shim-cri` over a real `crun-shimd`, with the images critest
//! pulls served by a local registry through the CRI's mirrors: what the
//! crictl walk-through and the critest run talk to.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::critest_images::{default_cache_root, ensure_built, push_all};
use crate::host::HostProcess;
use crate::registry::Registry;
use crate::served::Served;

/// The registries whose images critest pulls, all served by the local one.
pub const MIRRORED: &[&str] = &["registry.k8s.io", "k8s.gcr.io", "gcr.io"];

/// The sandbox image of the test pods: critest's own pause.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.9";

/// A CRI server with everything behind it; all stop on drop.
#[derive(Debug)]
pub struct CriStack {
    cri: Served,
    /// Its arguments, for [`CriStack::restart_cri`].
    args: Vec<String>,
    /// The daemon and its local agent.
    pub host: HostProcess,
    /// The registry serving critest's images.
    pub registry: Registry,
    dir: tempfile::TempDir,
}

impl CriStack {
    /// Builds (or finds cached) critest's images, serves them, and starts
    /// `crun-shimd` with its local agent and `crun-shim-cri` on a private
    /// socket.
    pub async fn start() -> io::Result<CriStack> {
        let images = ensure_built(&default_cache_root())?;
        let registry = Registry::start()?;
        push_all(&registry, &images).await?;
        let host = HostProcess::start_local()?;
        let dir = tempfile::Builder::new().prefix("cri-test").tempdir()?;
        let mut args = vec![
            "--socket".to_string(),
            dir.path().join("cri.sock").display().to_string(),
            "--daemon".into(),
            host.socket().display().to_string(),
            "--sandbox-image".into(),
            SANDBOX_IMAGE.into(),
        ];
        for registry_name in MIRRORED {
            args.push("--registry-mirror".into());
            args.push(format!("{registry_name}={}", registry.host()));
        }
        let cri = Self::spawn(&args, dir.path())?;
        Ok(CriStack {
            cri,
            args,
            host,
            registry,
            dir,
        })
    }

    fn spawn(args: &[String], dir: &std::path::Path) -> io::Result<Served> {
        let mut command = Command::new(crate::binary("crun-shim-cri"));
        command.args(args);
        Served::start(
            command,
            &dir.join("cri.sock"),
            &dir.join("cri.log"),
            "crun-shim-cri",
        )
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("cri.sock")
    }

    /// The CRI endpoint as crictl and critest take it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The CRI server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cri.log")).unwrap_or_default()
    }

    /// A private directory for the test's files (pod logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Kills the CRI server with SIGKILL, as a crash would, and starts it
    /// again.
    pub fn restart_cri(&mut self) -> io::Result<()> {
        self.cri.kill();
        self.cri = Self::spawn(&self.args, self.dir.path())?;
        Ok(())
    }
}
