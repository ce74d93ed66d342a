//! A private containerd for a test: its own config, root, state and socket
//! (the CRI plugin off), a `crun-shimd` of its own, and the workspace's
//! `containerd-shim-crunshim-v2` first on its `PATH`.
//!
//! Two versions are tested the same way: Debian's containerd 1.6
//! (`CONTAINERD16`/`CTR16`, default `/usr/bin`) and containerd 2.x built
//! from the Go module proxy by `integration/setup.d/30-containerd.sh`
//! (`CONTAINERD2`/`CTR2`, and `CONTAINERD2_BIN_DIR` for its own runc shim).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::host::HostProcess;
use crate::served::Served;

/// The containerd versions the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Debian's containerd 1.6.
    V16,
    /// containerd 2.x from the module proxy.
    V2,
}

impl Version {
    /// The daemon, ctr, and a directory to put first on the daemon's PATH
    /// (containerd 2's own runc shim), from the set-up's exports.
    pub fn binaries(self) -> io::Result<(PathBuf, PathBuf, Option<PathBuf>)> {
        let env = |name: &str, default: Option<&str>| -> io::Result<PathBuf> {
            std::env::var_os(name)
                .map(PathBuf::from)
                .or_else(|| default.map(PathBuf::from))
                .filter(|p| p.is_file())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name} is not set to a binary: run `eval \"$(integration/setup.sh)\"` first"),
                    )
                })
        };
        Ok(match self {
            Version::V16 => (
                env("CONTAINERD16", Some("/usr/bin/containerd"))?,
                env("CTR16", Some("/usr/bin/ctr"))?,
                None,
            ),
            Version::V2 => (
                env("CONTAINERD2", None)?,
                env("CTR2", None)?,
                std::env::var_os("CONTAINERD2_BIN_DIR").map(PathBuf::from),
            ),
        })
    }
}

/// A running private containerd with its own `crun-shimd`.
#[derive(Debug)]
pub struct Containerd {
    /// The libcrun-shim daemon the shim speaks to.
    pub host: HostProcess,
    process: Option<Served>,
    dir: tempfile::TempDir,
    daemon: PathBuf,
    ctr: PathBuf,
    path: String,
    version: Version,
}

impl Containerd {
    /// Starts a `crun-shimd` and a containerd of `version` whose shim
    /// reaches it (through `CRUN_SHIM_HOST` in containerd's environment).
    pub fn start(version: Version) -> io::Result<Containerd> {
        let (daemon, ctr, extra) = version.binaries()?;
        let host = HostProcess::start_local()?;
        // A short directory: containerd's socket paths must fit sun_path.
        let dir = tempfile::Builder::new().prefix("ctd").tempdir_in("/tmp")?;
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin)?;
        std::os::unix::fs::symlink(
            crate::binary("containerd-shim-crunshim-v2"),
            bin.join("containerd-shim-crunshim-v2"),
        )?;
        let mut path = bin.display().to_string();
        if let Some(extra) = extra {
            path = format!("{path}:{}", extra.display());
        }
        path = format!("{path}:{}", std::env::var("PATH").unwrap_or_default());
        let root = dir.path();
        let disabled = match version {
            Version::V16 => r#"["io.containerd.grpc.v1.cri"]"#,
            Version::V2 => {
                r#"["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]"#
            }
        };
        let config = format!(
            "version = {}\nroot = \"{r}/root\"\nstate = \"{r}/state\"\ndisabled_plugins = {disabled}\n[grpc]\n  address = \"{r}/c.sock\"\n[ttrpc]\n  address = \"{r}/c.sock.ttrpc\"\n",
            if version == Version::V2 { 3 } else { 2 },
            r = root.display(),
        );
        std::fs::write(root.join("config.toml"), config)?;
        let mut containerd = Containerd {
            host,
            process: None,
            dir,
            daemon,
            ctr,
            path,
            version,
        };
        containerd.launch()?;
        Ok(containerd)
    }

    fn launch(&mut self) -> io::Result<()> {
        let mut command = Command::new(&self.daemon);
        command
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("PATH", &self.path)
            .env(
                "CRUN_SHIM_HOST",
                format!("unix://{}", self.host.socket().display()),
            );
        self.process = Some(Served::start(
            command,
            &self.socket(),
            &self.dir.path().join("containerd.log"),
            "containerd",
        )?);
        Ok(())
    }

    /// Stops containerd (SIGTERM) and starts it again on the same state;
    /// running tasks and their shims stay.
    pub fn restart(&mut self) -> io::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
        self.launch()
    }

    /// The version running.
    pub fn version(&self) -> Version {
        self.version
    }

    /// containerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// A private directory of the test's (removed with it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What containerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A `ctr` command against this containerd (namespace `default`).
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.ctr);
        command.arg("--address").arg(self.socket()).args(args);
        command
    }

    /// Runs `ctr ARGS` to completion with stdin from /dev/null.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ctr(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// Runs `ctr ARGS` and panics with its output unless it succeeds;
    /// returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}{}\ncontainerd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Whatever the test left: its tasks (through containerd, so that
        // shims exit and mounts go), then containerd.
        let out = self.run(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.run(&["task", "rm", "-f", id]);
        }
        let out = self.run(&["container", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.run(&["container", "rm", id]);
        }
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
        let root = self.dir.path().display().to_string();
        // Snapshot mounts containerd may have left.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for point in points {
                let _ = nix_umount(point);
            }
        }
    }
}

fn nix_umount(path: &str) -> io::Result<()> {
    let c = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: umount2 with a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
