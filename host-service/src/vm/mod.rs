//! VMs as agents: each `[vms.NAME]` section is a Linux guest (built by
//! `docker/`) that crun-shimd boots, supervises and stops, and whose
//! `crun-shim-agent` it reaches over hybrid vsock exactly like a local one.
//!
//! * [`config`]: the section and its rules;
//! * `qemu` (Linux): QEMU (KVM or TCG) with `vhost-device-vsock` and one
//!   `virtiofsd` per share;
//! * `vz` (macOS): Virtualization.framework through `bridge-swift`, host
//!   ports forwarded over vsock by [`control`];
//! * [`control`]: the guest init's control port (power off, forwards).
//!
//! Who owns what: everything of a running VM lives in its runtime
//! directory (sockets, console log, pids), owned by the daemon; the VM's
//! processes are the daemon's children and die with it (SIGKILL on parent
//! death), so a killed daemon leaves no VM behind, and a new daemon clears
//! the directory (killing any process its pid file still names) before it
//! boots again. Disks are the user's: created when missing, never removed.
//! The agent's state on a disk mounted at `/var/lib/libcrun-shim` survives
//! every restart of the VM, so its containers are reported lost only when
//! that disk (the state root) is gone; without such a disk the state root is
//! the guest's memory.

pub mod config;
pub mod control;
#[cfg(target_os = "linux")]
mod qemu;
#[cfg(target_os = "macos")]
mod vz;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcrun_shim_transport::{Endpoint, connect_hybrid};
use tokio::sync::watch;
use tracing::{info, warn};

use config::Accel;
pub use config::VmConfig;

/// The first pause before a VM that stopped is booted again; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A VM that ran this long resets the pause.
const STABLE: Duration = Duration::from_secs(60);
/// How long KVM gets to boot under `accel = "auto"` before TCG takes over.
const KVM_PROBE: Duration = Duration::from_secs(15);

/// The programs a VM runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmTools {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// `vhost-device-vsock` (crates.io), the vsock device.
    pub vhost_device_vsock: PathBuf,
    /// `virtiofsd` (crates.io), one per share.
    pub virtiofsd: PathBuf,
}

/// A configured VM.
#[derive(Debug, Clone)]
pub struct Vm {
    /// Its name, which is also its agent's name.
    pub name: String,
    /// Its configuration.
    pub config: VmConfig,
    /// Its runtime directory (sockets, console log, pids).
    pub dir: PathBuf,
}

impl Vm {
    /// The hybrid-vsock socket the guest's vsock is reached through. It
    /// exists only while the guest's agent serves: the device listens on
    /// [`Vm::boot_socket`], renamed to this once the agent answered, so no
    /// client dials a guest that is still booting.
    pub fn vsock_socket(&self) -> PathBuf {
        self.dir.join("vsock.sock")
    }

    /// Where the vsock device listens while the guest boots.
    fn boot_socket(&self) -> PathBuf {
        self.dir.join("vsock.sock.boot")
    }

    /// The agent's endpoint: `hvsock://DIR/vsock.sock:PORT`.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::HybridVsock {
            path: self.vsock_socket(),
            port: self.config.port,
        }
    }

    /// The guest's console output of the current boot (the previous boot's
    /// is `console.log.1`).
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// Creates missing disks (sparse) and a clean runtime directory.
    fn prepare(&self) -> io::Result<()> {
        for disk in &self.config.disks {
            if disk.create_if_missing && !disk.path.exists() {
                create_disk(&disk.path, disk.size.0)?;
                info!(vm = %self.name, disk = %disk.path.display(), size = %disk.size, "disk created");
            }
        }
        std::fs::create_dir_all(&self.dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        kill_recorded(&self.dir);
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let path = entry.path();
            let keep = path.extension().is_some_and(|e| e == "log" || e == "1");
            if !keep {
                let _ = std::fs::remove_file(&path);
            }
        }
        let console = self.console_log();
        if console.exists() {
            std::fs::rename(&console, self.dir.join("console.log.1"))?;
        }
        Ok(())
    }

    /// The last lines of the guest's console, for the daemon's log.
    fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.console_log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Creates a sparse disk image of `size` bytes; never overwrites one.
fn create_disk(path: &Path, size: u64) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_len(size)
}

/// The file naming the processes of a VM's current boot, one pid a line.
fn pid_file(dir: &Path) -> PathBuf {
    dir.join("pids")
}

/// Records `pid` as one of the VM's processes.
fn record_pid(dir: &Path, pid: u32) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pid_file(dir))?;
    writeln!(f, "{pid}")
}

/// Kills what an earlier daemon's boot of this VM left running: the
/// processes its pid file names whose command line still names the
/// directory (a pid reused by anything else is left alone).
fn kill_recorded(dir: &Path) {
    let Ok(pids) = std::fs::read_to_string(pid_file(dir)) else {
        return;
    };
    let needle = dir.to_string_lossy().into_owned();
    for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            warn!(pid, dir = %dir.display(), "killing a process left by an earlier boot");
            // SAFETY: signals a process whose command line names this VM's directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(pid_file(dir));
}

/// What the guest's init writes on the console when it starts the agent.
const AGENT_STARTED: &str = "crun-shim-init: agent started";

/// Waits until the guest's agent accepts a vsock connection, at most
/// `deadline`, then puts the public socket in place.
///
/// The device is dialed only once the guest's init says it started the
/// agent, one connection at a time, each awaited to its answer: hybrid
/// vsock devices queue connections made before the guest's driver is up,
/// and abandoned ones can wedge vhost-device-vsock.
async fn agent_serving(vm: &Vm, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    let console = vm.console_log();
    while Instant::now() < until {
        let started =
            std::fs::read_to_string(&console).is_ok_and(|text| text.contains(AGENT_STARTED));
        if started {
            let probe = tokio::time::timeout(
                Duration::from_secs(10),
                connect_hybrid(&vm.boot_socket(), vm.config.port),
            )
            .await;
            if let Ok(Ok(_)) = probe {
                return std::fs::rename(vm.boot_socket(), vm.vsock_socket()).is_ok();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Sleeps `pause` unless `stop` turns true first; returns whether it did.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        () = until_stop(stop) => true,
    }
}

/// Returns when `stop` turns true (or its sender is gone).
async fn until_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Boots the VM and keeps it running until `stop` turns true, then powers
/// it off (the guest stops its agent and unmounts its disks). A VM that
/// stops by itself, or whose agent does not serve within the boot timeout,
/// is booted again with backoff.
pub async fn supervise(vm: Vm, tools: VmTools, mut stop: watch::Receiver<bool>) {
    let mut accel = initial_accel(vm.config.accel);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let stopping = *stop.borrow();
        if stopping {
            return;
        }
        let started = Instant::now();
        let mut machine = match vm.prepare() {
            Ok(()) => boot(&vm, &tools, accel).await,
            Err(e) => Err(e),
        };
        let machine_ref = match &mut machine {
            Ok(m) => m,
            Err(e) => {
                warn!(vm = %vm.name, error = %e, "cannot boot the VM");
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        info!(vm = %vm.name, ?accel, "VM booting");
        let probing_kvm = vm.config.accel == Accel::Auto && accel == Accel::Kvm;
        let deadline = if probing_kvm {
            KVM_PROBE.min(vm.config.boot_timeout)
        } else {
            vm.config.boot_timeout
        };
        let booted = tokio::select! {
            serving = agent_serving(&vm, deadline) => Some(serving),
            why = machine_ref.wait() => {
                warn!(vm = %vm.name, %why, console = %vm.console_tail(20), "VM stopped while booting");
                None
            }
            () = until_stop(&mut stop) => {
                machine_ref.stop(&vm).await;
                return;
            }
        };
        match booted {
            Some(true) => {
                info!(vm = %vm.name, boot = ?started.elapsed(), ?accel, endpoint = %vm.endpoint(), "VM agent serving");
                tokio::select! {
                    why = machine_ref.wait() => {
                        warn!(vm = %vm.name, %why, console = %vm.console_tail(20), "VM stopped; booting it again");
                    }
                    () = until_stop(&mut stop) => {
                        machine_ref.stop(&vm).await;
                        return;
                    }
                }
            }
            Some(false) => {
                warn!(vm = %vm.name, ?deadline, console = %vm.console_tail(20), "the VM's agent did not serve in time; booting again");
                machine_ref.kill().await;
                if probing_kvm {
                    warn!(vm = %vm.name, "KVM did not boot the guest: using TCG from now on");
                    accel = Accel::Tcg;
                    continue;
                }
            }
            None => {}
        }
        if started.elapsed() >= STABLE {
            backoff = FIRST_BACKOFF;
        }
        if wait_or_stop(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// KVM or TCG for the first boot.
fn initial_accel(accel: Accel) -> Accel {
    match accel {
        Accel::Auto if kvm_usable() => Accel::Kvm,
        Accel::Auto => Accel::Tcg,
        other => other,
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

#[cfg(target_os = "linux")]
async fn boot(vm: &Vm, tools: &VmTools, accel: Accel) -> io::Result<qemu::Machine> {
    qemu::Machine::boot(vm, tools, accel).await
}

#[cfg(target_os = "macos")]
async fn boot(vm: &Vm, _tools: &VmTools, _accel: Accel) -> io::Result<vz::Machine> {
    vz::Machine::boot(vm).await
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
async fn boot(_vm: &Vm, _tools: &VmTools, _accel: Accel) -> io::Result<Unsupported> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "VMs run on Linux (QEMU) and macOS (bridge-swift)",
    ))
}

/// The machine type where no backend exists.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
struct Unsupported;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl Unsupported {
    async fn wait(&mut self) -> String {
        std::future::pending().await
    }
    async fn stop(&mut self, _vm: &Vm) {}
    async fn kill(&mut self) {}
}
