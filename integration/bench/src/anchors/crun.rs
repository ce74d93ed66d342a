//! `crun run`: the CLI on a bundle of the rootfs, the floor of what any
//! runtime built on crun can do.

use std::io;
use std::path::Path;
use std::process::Command;

use super::run;

/// A bundle and a state root for the crun CLI.
pub struct Crun {
    bundle: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Crun {
    /// A bundle running `args` on `rootfs` (crun's own default spec).
    pub fn new(rootfs: &Path, args: &[&str]) -> io::Result<Crun> {
        let crun = Crun::empty()?;
        run(Command::new("crun")
            .arg("spec")
            .current_dir(crun.bundle.path()))?;
        let path = crun.bundle.path().join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["process"]["args"] = serde_json::json!(args);
        config["process"]["terminal"] = serde_json::json!(false);
        config["root"] = serde_json::json!({"path": rootfs, "readonly": false});
        crun.write_config(&config)?;
        Ok(crun)
    }

    /// A bundle running `spec` (an OCI `config.json`, as our agent writes
    /// it) without its cgroup path, so that crun puts each container where
    /// it puts those of [`Crun::new`].
    pub fn with_spec(spec: &[u8]) -> io::Result<Crun> {
        let mut config: serde_json::Value = serde_json::from_slice(spec)?;
        if let Some(linux) = config["linux"].as_object_mut() {
            linux.remove("cgroupsPath");
        }
        let crun = Crun::empty()?;
        crun.write_config(&config)?;
        Ok(crun)
    }

    /// An empty bundle and state root.
    fn empty() -> io::Result<Crun> {
        Ok(Crun {
            bundle: tempfile::Builder::new().prefix("bench-crun").tempdir()?,
            state: tempfile::Builder::new()
                .prefix("bench-crun-state")
                .tempdir()?,
        })
    }

    /// Writes the bundle's `config.json`.
    fn write_config(&self, config: &serde_json::Value) -> io::Result<()> {
        std::fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec(config)?,
        )
    }

    /// `crun run` to the end, as container `id`.
    pub fn run(&self, id: &str) -> io::Result<()> {
        run(Command::new("crun")
            .arg("--root")
            .arg(self.state.path())
            .args(["run", "--bundle"])
            .arg(self.bundle.path())
            .arg(id))
        .map(drop)
    }
}
