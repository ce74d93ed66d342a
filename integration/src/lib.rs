//! Fixtures for tests that run real containers.
//!
//! Every test of this workspace that needs a container's root filesystem
//! gets it from here: [`BusyboxRootfs`] builds one from Debian's
//! `busybox-static` (installed by `integration/setup.sh`); [`agent`] runs a
//! real `crun-shim-agent` on a private state root, [`host`] a real
//! `crun-shimd`, [`net`] networks of a test's own, [`vm`] a Linux guest
//! under QEMU run by `crun-shimd`, and [`binary`] finds the workspace's
//! binaries; [`critest_images`] builds the images critest pulls.

pub mod agent;
pub mod containerd;
pub mod cri;
pub mod critest_images;
pub mod host;
pub mod net;
pub mod registry;
pub mod served;
pub mod vm;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The busybox applets linked into every test root filesystem.
const APPLETS: &[&str] = &[
    "sh",
    "ash",
    "echo",
    "cat",
    "sleep",
    "true",
    "false",
    "kill",
    "hostname",
    "uname",
    "id",
    "ls",
    "env",
    "pwd",
    "head",
    "tail",
    "dd",
    "yes",
    "wc",
    "sha256sum",
    "md5sum",
    "mkdir",
    "rm",
    "touch",
    "ps",
    "ip",
    "ping",
    "nc",
    "seq",
    "printf",
    "test",
    "tr",
    "trap",
    "stty",
    "tty",
    "wget",
    "httpd",
    "grep",
    "sed",
    "awk",
];

/// A busybox root filesystem in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct BusyboxRootfs {
    dir: tempfile::TempDir,
}

impl BusyboxRootfs {
    /// Builds a root filesystem with busybox, its common applets, the mount
    /// points a container needs and a minimal /etc (root and `nobody`).
    pub fn new() -> io::Result<BusyboxRootfs> {
        BusyboxRootfs::new_in(&std::env::temp_dir())
    }

    /// [`BusyboxRootfs::new`] under `parent` (a directory shared with a
    /// VM, say).
    pub fn new_in(parent: &Path) -> io::Result<BusyboxRootfs> {
        let dir = tempfile::Builder::new()
            .prefix("busybox-rootfs")
            .tempdir_in(parent)?;
        build(&dir.path().join("rootfs"))?;
        Ok(BusyboxRootfs { dir })
    }

    /// The root filesystem (a directory named `rootfs` inside a private
    /// temporary directory, whose other entries a test may use as a bundle).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// The private directory holding the root filesystem.
    pub fn bundle(&self) -> &Path {
        self.dir.path()
    }
}

/// Builds a busybox root filesystem at `rootfs`.
pub fn build(rootfs: &Path) -> io::Result<()> {
    let busybox = Path::new(BUSYBOX);
    if !busybox.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{BUSYBOX} is missing: install busybox-static (integration/setup.sh does)"),
        ));
    }
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root", "run"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    fs::copy(busybox, rootfs.join("bin/busybox"))?;
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// Polls `f` until it holds; panics naming `what` after 30 s.
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The path of one of the workspace's binaries (`crun-shim-agent`,
/// `crun-shim-monitor`, `crun-shimd`): in `CRUN_SHIM_BIN_DIR` when set,
/// else in the profile directory the running test was built into
/// (`target/debug`, wherever `CARGO_TARGET_DIR` puts it; the test command
/// builds the workspace before it runs the tests).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("CRUN_SHIM_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Tests run from PROFILE/deps/NAME-HASH, examples from
            // PROFILE/examples/NAME.
            let exe = std::env::current_exe().unwrap_or_default();
            let parent = exe.parent().unwrap_or(Path::new("."));
            match parent.file_name().and_then(|n| n.to_str()) {
                Some("deps" | "examples") => parent.parent().unwrap_or(parent).to_path_buf(),
                _ => parent.to_path_buf(),
            }
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`) \
         or point CRUN_SHIM_BIN_DIR at the directory holding it",
        path.display()
    );
    path
}
