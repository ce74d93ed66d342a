//! `crun-shim-init`: PID 1 of libcrun-shim's Linux guest.
//!
//! It makes the initramfs a root that containers can `pivot_root` away
//! from, mounts what the agent needs (proc, sys, dev, cgroup v2, tmpfs),
//! loads the kernel modules the image lists in load order, mounts the disks
//! (formatting blank writable ones as ext4) and virtio-fs shares, brings up
//! the network, and runs `crun-shim-agent` on vsock — restarting it with
//! backoff when it dies — while reaping every orphan. A `poweroff` on its
//! vsock control port, SIGTERM, SIGINT or SIGPWR stops the agent and the
//! containers, unmounts the disks and powers the machine off.
//!
//! Everything it is told comes from the kernel command line
//! ([`crun_shim_init::params`]).

#[cfg(target_os = "linux")]
mod control;
#[cfg(target_os = "linux")]
mod setup;
#[cfg(target_os = "linux")]
mod supervise;

#[cfg(target_os = "linux")]
fn main() {
    if std::process::id() != 1 {
        eprintln!("crun-shim-init: runs only as PID 1 of the guest");
        std::process::exit(2);
    }
    let params = match setup::prepare() {
        Ok(params) => params,
        Err(e) => {
            log(&format!("cannot prepare the guest: {e}"));
            supervise::power_off(&[]);
        }
    };
    supervise::run(&params);
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("crun-shim-init: runs only as PID 1 of a Linux guest");
    std::process::exit(2);
}

/// One line on the console, stamped with the time since boot.
#[cfg(target_os = "linux")]
fn log(message: &str) {
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let uptime = uptime.split_whitespace().next().unwrap_or("?");
    eprintln!("[{uptime:>8}] crun-shim-init: {message}");
}
