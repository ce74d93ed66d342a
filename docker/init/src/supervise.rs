//! The agent's life in the guest: started, restarted with backoff when it
//! dies, every orphan reaped, and the machine powered off on request.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crun_shim_init::params::{GuestParams, STATE_ROOT};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::log;

/// The agent and its monitor in the image.
const AGENT: &str = "/usr/bin/crun-shim-agent";
const MONITOR: &str = "/usr/bin/crun-shim-monitor";
/// The first pause before restarting a dead agent; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// An agent that ran this long resets the pause.
const STABLE: Duration = Duration::from_secs(30);
/// How long the agent, then every other process, gets to stop at power-off.
const AGENT_GRACE: Duration = Duration::from_secs(5);
const OTHERS_GRACE: Duration = Duration::from_secs(2);

/// The signals the init handles, blocked and read synchronously.
fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGUSR1,
    ] {
        set.add(s);
    }
    set
}

/// Waits for one of `set`, at most `timeout` (forever when `None`).
fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: a valid signal set, no siginfo wanted, a valid or null timeout.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ptr) };
    Signal::try_from(n).ok()
}

/// Reaps every child that exited; returns the agent's status if it did.
fn reap(agent: Option<Pid>) -> Option<WaitStatus> {
    let mut agent_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return agent_status,
            Ok(status) => {
                if status.pid() == agent {
                    agent_status = Some(status);
                }
            }
        }
    }
}

fn spawn_agent(params: &GuestParams) -> std::io::Result<Pid> {
    let mut command = Command::new(AGENT);
    command
        .arg("--listen")
        .arg(format!("vsock://any:{}", params.agent_port))
        .arg("--root")
        .arg(format!("{STATE_ROOT}/agent"))
        .arg("--monitor")
        .arg(MONITOR)
        // The guest carries no CNI plugins: its containers get their own
        // namespace with loopback unless they ask for more.
        .arg("--default-network-mode")
        .arg("none")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        // The console is a log file, not a terminal.
        .env("NO_COLOR", "1")
        .env("RUST_LOG", params.log.as_deref().unwrap_or("info"))
        .stdin(Stdio::null());
    // A state root on a disk outlives the VM: its records must survive a
    // kill of the VM like a power loss.
    if params
        .disks
        .iter()
        .any(|d| !d.read_only && d.path == std::path::Path::new(STATE_ROOT))
    {
        command.env("CRUN_SHIM_DURABLE_STATE", "1");
    }
    if !params.insecure_registries.is_empty() {
        command.env(
            "CRUN_SHIM_INSECURE_REGISTRIES",
            params.insecure_registries.join(","),
        );
    }
    // std resets the child's signal mask, so the agent gets its signals.
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Runs the agent until a power-off is asked for, then powers off.
pub fn run(params: &GuestParams) -> ! {
    let set = signals();
    if let Err(e) = set.thread_block() {
        log(&format!("blocking signals: {e}"));
    }
    // Ctrl-Alt-Del becomes SIGINT to us rather than an instant reboot.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    // The control thread inherits the blocked mask: signals come here.
    crate::control::listen(params.control_port);
    let mut agent: Option<(Pid, Instant)> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut restart_at = Instant::now();
    loop {
        if agent.is_none() && Instant::now() >= restart_at {
            match spawn_agent(params) {
                Ok(pid) => {
                    log(&format!(
                        "agent started (pid {pid}) on vsock port {}",
                        params.agent_port
                    ));
                    agent = Some((pid, Instant::now()));
                }
                Err(e) => {
                    log(&format!("cannot start the agent: {e}"));
                    restart_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let timeout = agent
            .is_none()
            .then(|| restart_at.saturating_duration_since(Instant::now()));
        match wait_signal(&set, timeout) {
            Some(Signal::SIGCHLD) => {
                if let Some(status) = reap(agent.map(|(pid, _)| pid)) {
                    let ran = agent.map(|(_, since)| since.elapsed()).unwrap_or_default();
                    log(&format!(
                        "agent exited ({status:?}) after {ran:?}; restarting in {backoff:?}"
                    ));
                    if ran >= STABLE {
                        backoff = FIRST_BACKOFF;
                    }
                    agent = None;
                    restart_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            Some(
                signal @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGPWR | Signal::SIGUSR1),
            ) => {
                log(&format!("{signal}: powering off"));
                let disks: Vec<String> = params
                    .disks
                    .iter()
                    .map(|d| d.path.to_string_lossy().into_owned())
                    .collect();
                stop_all(&set, agent.map(|(pid, _)| pid));
                power_off(&disks);
            }
            _ => {}
        }
    }
}

/// Stops the agent (SIGTERM: it leaves its containers), then every other
/// process, each within its grace period, reaping as they go.
fn stop_all(set: &SigSet, agent: Option<Pid>) {
    if let Some(pid) = agent {
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + AGENT_GRACE;
        let mut gone = false;
        while !gone && Instant::now() < deadline {
            wait_signal(
                set,
                Some(deadline.saturating_duration_since(Instant::now())),
            );
            gone = reap(Some(pid)).is_some();
        }
    }
    // kill(-1) reaches every process but this one.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + OTHERS_GRACE;
    while Instant::now() < deadline {
        reap(None);
        if waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) == Err(nix::errno::Errno::ECHILD)
        {
            break;
        }
        wait_signal(set, Some(Duration::from_millis(50)));
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    reap(None);
}

/// Syncs, unmounts `disks` and powers the machine off.
pub fn power_off(disks: &[String]) -> ! {
    nix::unistd::sync();
    for path in disks.iter().rev() {
        if let Err(e) = nix::mount::umount(path.as_str()) {
            log(&format!("unmounting {path}: {e}; remounting read-only"));
            let _ = nix::mount::mount(
                None::<&str>,
                path.as_str(),
                None::<&str>,
                nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    nix::unistd::sync();
    log("power off");
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Unreachable unless reboot failed: exiting PID 1 panics the kernel,
    // which with panic=-1 stops the machine too.
    std::process::exit(1)
}
