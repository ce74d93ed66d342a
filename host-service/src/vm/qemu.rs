//! The Linux backend: QEMU with `vhost-device-vsock` (hybrid vsock: the
//! guest's vsock is a Unix socket here) and one `virtiofsd` per share,
//! each a child of the daemon that dies with it.

use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crun_shim_init::params::GuestParams;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use super::config::{Accel, NetworkMode, Protocol, VmConfig};
use super::{Vm, VmTools, control, record_pid};

/// How long a helper may take to create its socket.
const SOCKET_WAIT: Duration = Duration::from_secs(10);
/// How long the guest gets to power off after `poweroff`.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);
/// How long QEMU gets to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running VM: QEMU and its device processes.
pub(super) struct Machine {
    qemu: Child,
    helpers: Vec<(&'static str, Child)>,
}

impl Machine {
    /// Starts the devices, then QEMU.
    pub(super) async fn boot(vm: &Vm, tools: &VmTools, accel: Accel) -> io::Result<Machine> {
        let dir = &vm.dir;
        let mut helpers = Vec::new();
        let vhost = dir.join("vhost-vsock.sock");
        let mut vsock = Command::new(&tools.vhost_device_vsock);
        vsock
            .arg("--guest-cid")
            .arg(vm.config.cid.to_string())
            .arg("--socket")
            .arg(&vhost)
            .arg("--uds-path")
            .arg(vm.boot_socket());
        helpers.push((
            "vhost-device-vsock",
            spawn(vsock, dir, "vhost-device-vsock.log")?,
        ));
        for (i, share) in vm.config.shares.iter().enumerate() {
            let mut fs = Command::new(&tools.virtiofsd);
            fs.arg("--socket-path")
                .arg(dir.join(format!("fs{i}.sock")))
                .arg("--shared-dir")
                .arg(&share.path)
                .args(["--cache", "auto", "--log-level", "warn"])
                // Its default raises the open-file limit to fs.nr_open,
                // which fails where the hard limit is lower.
                .arg("--rlimit-nofile")
                .arg(nofile_hard_limit().to_string());
            if share.read_only {
                fs.arg("--readonly");
            }
            helpers.push(("virtiofsd", spawn(fs, dir, "virtiofsd.log")?));
        }
        let mut sockets = vec![vhost];
        sockets.extend((0..vm.config.shares.len()).map(|i| dir.join(format!("fs{i}.sock"))));
        for socket in &sockets {
            wait_socket(socket, &mut helpers).await?;
        }
        let mut qemu = Command::new(&tools.qemu);
        qemu.args(qemu_args(vm, accel));
        let qemu = spawn(qemu, dir, "qemu.log")?;
        info!(vm = %vm.name, pid = qemu.id(), "QEMU started");
        Ok(Machine { qemu, helpers })
    }

    /// Waits until QEMU or one of its devices exits; says which and how.
    pub(super) async fn wait(&mut self) -> String {
        // Never empty: vhost-device-vsock is always there.
        let helpers = futures::future::select_all(
            self.helpers
                .iter_mut()
                .map(|(name, child)| Box::pin(async move { (*name, child.wait().await) })),
        );
        tokio::select! {
            status = self.qemu.wait() => format!("QEMU exited ({})", describe(status)),
            ((name, status), _, _) = helpers => format!("{name} exited ({})", describe(status)),
        }
    }

    /// Asks the guest to power off (its init stops the agent and unmounts
    /// the disks), then stops QEMU if it has not exited in time.
    pub(super) async fn stop(&mut self, vm: &Vm) {
        let asked = tokio::time::timeout(
            Duration::from_secs(3),
            control::poweroff(&vm.vsock_socket()),
        )
        .await;
        match asked {
            Ok(Ok(())) => {
                if tokio::time::timeout(POWEROFF_GRACE, self.qemu.wait())
                    .await
                    .is_ok()
                {
                    info!(vm = %vm.name, "VM powered off");
                } else {
                    warn!(vm = %vm.name, "the guest did not power off in time");
                }
            }
            Ok(Err(e)) => warn!(vm = %vm.name, error = %e, "cannot ask the guest to power off"),
            Err(_) => warn!(vm = %vm.name, "the guest's init did not answer poweroff"),
        }
        if let Some(pid) = self.qemu.id() {
            // SAFETY: signals QEMU, this machine's child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            if tokio::time::timeout(TERM_GRACE, self.qemu.wait())
                .await
                .is_err()
            {
                let _ = self.qemu.kill().await;
            }
        }
        self.kill().await;
    }

    /// Kills QEMU and its devices at once.
    pub(super) async fn kill(&mut self) {
        let _ = self.qemu.kill().await;
        for (_, helper) in &mut self.helpers {
            let _ = helper.kill().await;
        }
    }
}

/// This process's hard limit of open files.
fn nofile_hard_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_max
    } else {
        1024
    }
}

fn describe(status: io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// Spawns a VM process: output to `log` in the VM's directory, killed
/// when the daemon dies (PR_SET_PDEATHSIG: tokio spawns from its worker
/// threads, which live as long as the daemon), its pid recorded.
fn spawn(mut command: Command, dir: &Path, log: &str) -> io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = command.as_std().get_program().to_owned();
    let child = command
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.to_string_lossy())))?;
    if let Some(pid) = child.id() {
        record_pid(dir, pid)?;
    }
    Ok(child)
}

/// Waits until a helper's socket exists (it listens), failing early when
/// a helper exits.
async fn wait_socket(socket: &Path, helpers: &mut [(&'static str, Child)]) -> io::Result<()> {
    let deadline = Instant::now() + SOCKET_WAIT;
    while !socket.exists() {
        for (name, child) in helpers.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(io::Error::other(format!(
                    "{name} exited ({status}) before creating {}",
                    socket.display()
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not appear", socket.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The kernel command line: a serial console, a panic that stops the
/// machine, and what the init is told.
fn kernel_command_line(config: &VmConfig) -> String {
    format!(
        "console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp {}",
        GuestParams::from(config).render()
    )
}

/// QEMU's arguments for `vm` (q35, memfd memory shared with the vhost-user
/// devices, no default devices, the guest's console in console.log).
fn qemu_args(vm: &Vm, accel: Accel) -> Vec<String> {
    let c = &vm.config;
    let dir = |name: &str| vm.dir.join(name).display().to_string();
    let mem = c.memory.0 >> 20;
    let (accel_name, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg | Accel::Auto => ("tcg", "max"),
    };
    let mut args: Vec<String> = [
        "-name".into(),
        format!("libcrun-shim-{},process=libcrun-shim-{}", vm.name, vm.name),
        "-machine".into(),
        format!("q35,accel={accel_name},memory-backend=mem"),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        format!("{mem}M"),
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", dir("console.log")),
        "-no-reboot".into(),
        "-kernel".into(),
        c.kernel.display().to_string(),
        "-initrd".into(),
        c.initramfs.display().to_string(),
        "-append".into(),
        kernel_command_line(c),
        "-chardev".into(),
        format!("socket,id=vsock,path={}", dir("vhost-vsock.sock")),
        "-device".into(),
        "vhost-user-vsock-pci,chardev=vsock".into(),
    ]
    .into();
    for (i, disk) in c.disks.iter().enumerate() {
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=disk{i},format=raw,discard=unmap,readonly={}",
            escape(&disk.path),
            if disk.read_only { "on" } else { "off" }
        ));
        args.push("-device".into());
        args.push(format!("virtio-blk-pci,drive=disk{i}"));
    }
    if c.network.mode != NetworkMode::None {
        let mut netdev = String::from("user,id=net0");
        if c.network.mode == NetworkMode::Restricted {
            netdev.push_str(",restrict=on");
        }
        for f in &c.network.port_forwards {
            let proto = match f.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            netdev.push_str(&format!(
                ",hostfwd={proto}:{}:{}-:{}",
                f.host_address, f.host_port, f.guest_port
            ));
        }
        for f in &c.network.guest_forwards {
            // One relay process per connection (a chardev would serve one).
            netdev.push_str(&format!(
                ",guestfwd=tcp:{}:{}-cmd:{} {} {}",
                f.guest_address,
                f.guest_port,
                relay(),
                f.host.ip(),
                f.host.port()
            ));
        }
        args.push("-netdev".into());
        args.push(netdev);
        args.push("-device".into());
        args.push("virtio-net-pci,netdev=net0".into());
    }
    for (i, share) in c.shares.iter().enumerate() {
        args.push("-chardev".into());
        args.push(format!(
            "socket,id=fs{i},path={}",
            dir(&format!("fs{i}.sock"))
        ));
        args.push("-device".into());
        args.push(format!(
            "vhost-user-fs-pci,chardev=fs{i},tag={}",
            share.tag(i)
        ));
    }
    args
}

/// The program QEMU runs for each guest-forwarded connection, with the
/// host address and port as its arguments: netcat (busybox's, else `nc`).
fn relay() -> String {
    if Path::new("/bin/busybox").exists() {
        "/bin/busybox nc".into()
    } else {
        "nc".into()
    }
}

/// A path inside a QEMU option value (`,` is doubled).
fn escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(extra: &str) -> Vm {
        let config: VmConfig =
            toml::from_str(&format!("kernel = \"/k\"\ninitramfs = \"/i\"\n{extra}")).unwrap();
        Vm {
            name: "t".into(),
            config,
            dir: "/run/vms/t".into(),
        }
    }

    fn has(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn devices_follow_the_configuration() {
        let args = qemu_args(
            &vm(r#"
memory = "1GiB"
cpus = 1
[[disks]]
path = "/a,b.img"
size = 512
create_if_missing = true
mount = "/var/lib/libcrun-shim"
[network]
mode = "restricted"
port_forwards = [{ host_port = 8080, guest_port = 80 }]
guest_forwards = [{ guest_port = 5000, host = "127.0.0.1:5001" }]
[[shares]]
path = "/tmp"
"#),
            Accel::Tcg,
        );
        assert!(has(&args, "-machine", "q35,accel=tcg,memory-backend=mem"));
        assert!(has(&args, "-m", "1024M"));
        assert!(has(&args, "-smp", "1"));
        assert!(has(
            &args,
            "-object",
            "memory-backend-memfd,id=mem,size=1024M,share=on"
        ));
        assert!(has(
            &args,
            "-drive",
            "file=/a,,b.img,if=none,id=disk0,format=raw,discard=unmap,readonly=off"
        ));
        let netdev = &args[args.iter().position(|a| a == "-netdev").unwrap() + 1];
        assert!(netdev.starts_with("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,guestfwd=tcp:10.0.2.100:5000-cmd:"), "{netdev}");
        assert!(netdev.ends_with(" 127.0.0.1 5001"), "{netdev}");
        assert!(has(
            &args,
            "-device",
            "vhost-user-fs-pci,chardev=fs0,tag=share0"
        ));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(
            append.contains("libcrun_shim.disk=vda:/var/lib/libcrun-shim"),
            "{append}"
        );
        assert!(
            append.contains("libcrun_shim.share=share0:/tmp"),
            "{append}"
        );
        assert!(
            append.contains("libcrun_shim.net=10.0.2.15/24:10.0.2.2 "),
            "{append}"
        );
    }

    #[test]
    fn no_network_means_no_device() {
        let args = qemu_args(&vm("[network]\nmode = \"none\""), Accel::Kvm);
        assert!(!args.iter().any(|a| a == "-netdev"));
        assert!(has(&args, "-cpu", "host"));
    }
}
