//! containerd 1.6 with `ctr`, on a private socket, root and state (its
//! CRI plugin off, or on for the CRI scenario), running crun through the
//! runc v2 shim.

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
    /// Starts containerd (its CRI plugin off) and waits for its socket.
    pub fn start() -> io::Result<Containerd> {
        Self::start_with(
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
            "",
            |_| Ok(()),
        )
    }

    /// Starts containerd with its CRI plugin on, as a kubelet node runs it:
    /// crun through the runc v2 shim, the sandbox image and the `mirrored`
    /// registries from `registry` (plain HTTP), and a bridge pod network of
    /// its own (a bridge and subnet named after this process) from the CNI
    /// plugins in `/usr/lib/cni`. Its streaming server listens on a free
    /// loopback port.
    pub fn start_cri(
        registry: &str,
        sandbox_image: &str,
        mirrored: &[&str],
    ) -> io::Result<Containerd> {
        let table = |sub: &str| format!("[plugins.\"io.containerd.grpc.v1.cri\"{sub}]\n");
        let mut tables = format!(
            "{}  sandbox_image = {sandbox_image:?}\n  disable_apparmor = true\n  \
             restrict_oom_score_adj = true\n  \
             stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
             {}  default_runtime_name = \"crun\"\n\
             {}  runtime_type = \"io.containerd.runc.v2\"\n\
             {}  BinaryName = \"/usr/bin/crun\"\n\
             {}  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"CNI_DIR\"\n",
            table(""),
            table(".containerd"),
            table(".containerd.runtimes.crun"),
            table(".containerd.runtimes.crun.options"),
            table(".cni"),
        );
        for name in mirrored {
            tables.push_str(&table(&format!(".registry.mirrors.\"{name}\"")));
            tables.push_str(&format!("  endpoint = [\"http://{registry}\"]\n"));
        }
        let pid = std::process::id();
        Self::start_with("", &tables, |dir| {
            let cni = dir.join("cni");
            std::fs::create_dir_all(&cni)?;
            let network = serde_json::json!({
                "cniVersion": "0.4.0",
                "name": format!("bench-cri-{pid}"),
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": format!("bcri{}", pid % 100_000),
                        "isGateway": true,
                        "ipMasq": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{
                                "subnet": format!("10.{}.{}.0/24", 200 + pid % 50, (pid / 50) % 250),
                            }]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": true}},
                ],
            });
            std::fs::write(cni.join("10-bench.conflist"), network.to_string())
        })
    }

    /// Starts containerd with `top` (top-level keys) and `tables` in its
    /// configuration (`CNI_DIR` there becomes `DIR/cni`), after `prepare`
    /// made what it needs in its directory, and waits for its socket.
    fn start_with(
        top: &str,
        tables: &str,
        prepare: impl FnOnce(&Path) -> io::Result<()>,
    ) -> io::Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("bench-containerd")
            .tempdir()?;
        prepare(dir.path())?;
        let path = |p: &str| dir.path().join(p).display().to_string();
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n{top}\
             [grpc]\n  address = {socket:?}\n[ttrpc]\n  address = {ttrpc:?}\n{tables}",
            root = path("root"),
            state = path("state"),
            socket = path("containerd.sock"),
            ttrpc = path("containerd.sock.ttrpc"),
            tables = tables.replace("CNI_DIR", &path("cni")),
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

    /// The CRI endpoint (with the CRI plugin on), as crictl takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
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
