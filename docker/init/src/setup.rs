//! The guest's set-up, in order: a pivotable root, the pseudo-filesystems,
//! kernel modules, cgroup controllers, host name, disks, shares, network.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crun_shim_init::params::{GuestMount, GuestNetwork, GuestParams};
use nix::mount::{MsFlags, mount};

use crate::log;

/// The kernel modules to load, one path a line, in load order (written by
/// docker/build-guest.sh from the kernel's modules.dep).
const MODULES: &str = "/etc/libcrun-shim/modules";
/// The busybox binary holding `ip`, `udhcpc`.
const BUSYBOX: &str = "/bin/busybox";
/// How long a device (a disk, eth0) may take to appear after its module.
const DEVICE_WAIT: Duration = Duration::from_secs(10);

/// A failed step, named.
type Result<T> = std::result::Result<T, String>;

fn step<T, E: std::fmt::Display>(what: &str, r: std::result::Result<T, E>) -> Result<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Sets the guest up and returns what the host asked for.
pub fn prepare() -> Result<GuestParams> {
    pivotable_root()?;
    pseudo_filesystems()?;
    let cmdline = step("/proc/cmdline", fs::read_to_string("/proc/cmdline"))?;
    let params = GuestParams::parse(&cmdline).map_err(|e| e.to_string())?;
    load_modules()?;
    enable_controllers()?;
    step(
        "setting the host name",
        nix::unistd::sethostname(&params.hostname),
    )?;
    step(
        "/etc/hosts",
        fs::write(
            "/etc/hosts",
            format!("127.0.0.1 localhost {}\n::1 localhost\n", params.hostname),
        ),
    )?;
    for disk in &params.disks {
        mount_disk(disk)?;
    }
    for share in &params.shares {
        mount_share(share)?;
    }
    if params.rosetta {
        rosetta()?;
    }
    network(&params.network)?;
    log("guest ready");
    Ok(params)
}

/// The initramfs is `rootfs`, which `pivot_root` cannot leave (it has no
/// parent mount), and libcrun pivots into every container's root. A bind
/// mount of it moved over `/` has a parent: chrooted into it, pivots work.
fn pivotable_root() -> Result<()> {
    let new = Path::new("/.root");
    step("mkdir /.root", fs::create_dir_all(new))?;
    step(
        "binding / on /.root",
        mount(
            Some("/"),
            new,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
    )?;
    step("chdir /.root", std::env::set_current_dir(new))?;
    step(
        "moving /.root to /",
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>),
    )?;
    step("chroot", nix::unistd::chroot("."))?;
    step("chdir /", std::env::set_current_dir("/"))?;
    let _ = fs::remove_dir(new);
    Ok(())
}

fn mount_fs(source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
    step(&format!("mkdir {target}"), fs::create_dir_all(target))?;
    step(
        &format!("mounting {fstype} on {target}"),
        mount(
            Some(source),
            target,
            Some(fstype),
            flags,
            (!data.is_empty()).then_some(data),
        ),
    )
}

fn pseudo_filesystems() -> Result<()> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nodev, "")?;
    mount_fs("sysfs", "/sys", "sysfs", nodev, "")?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        "mode=0755",
    )?;
    console()?;
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "mode=0620,ptmxmode=0666,gid=5",
    )?;
    mount_fs(
        "shm",
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=1777",
    )?;
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = symlink(target, link);
    }
    mount_fs(
        "tmpfs",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=0755",
    )?;
    mount_fs(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=1777",
    )?;
    mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", nodev, "nsdelegate")?;
    Ok(())
}

/// Points fds 0-2 at /dev/console (the kernel may have found none in the
/// initramfs before devtmpfs was mounted).
fn console() -> Result<()> {
    let console = step(
        "/dev/console",
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console"),
    )?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe { libc::dup2(console.as_raw_fd(), fd) };
    }
    Ok(())
}

fn load_modules() -> Result<()> {
    let started = Instant::now();
    let list = step(MODULES, fs::read_to_string(MODULES))?;
    let mut loaded = 0;
    for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let file = step(path, fs::File::open(path))?;
        match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) => loaded += 1,
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("loading {path}: {e}")),
        }
    }
    log(&format!(
        "{loaded} kernel modules loaded in {:?}",
        started.elapsed()
    ));
    Ok(())
}

/// Lets containers' cgroups use every controller the kernel offers.
fn enable_controllers() -> Result<()> {
    let root = Path::new("/sys/fs/cgroup");
    let available = step(
        "cgroup.controllers",
        fs::read_to_string(root.join("cgroup.controllers")),
    )?;
    let enable: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    step(
        "cgroup.subtree_control",
        fs::write(root.join("cgroup.subtree_control"), enable.join(" ")),
    )
}

fn wait_for(path: &Path) -> Result<()> {
    let deadline = Instant::now() + DEVICE_WAIT;
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} did not appear", path.display()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// What is on a disk: ext2/3/4, nothing (all zero at the start), or
/// something else.
#[derive(Debug, PartialEq, Eq)]
enum Content {
    Ext,
    Blank,
    Other,
}

fn content(device: &Path) -> io::Result<Content> {
    let mut head = vec![0u8; 64 << 10];
    fs::File::open(device)?.read_exact(&mut head)?;
    Ok(if head[1080..1082] == [0x53, 0xEF] {
        Content::Ext
    } else if head.iter().all(|b| *b == 0) {
        Content::Blank
    } else {
        Content::Other
    })
}

fn mount_disk(disk: &GuestMount) -> Result<()> {
    let device = Path::new("/dev").join(&disk.source);
    wait_for(&device)?;
    let is_block = fs::metadata(&device)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    if !is_block {
        return Err(format!("{} is not a block device", device.display()));
    }
    let what = step(&device.display().to_string(), content(&device))?;
    match what {
        Content::Ext => {}
        Content::Blank if !disk.read_only => {
            log(&format!("formatting the blank disk {}", device.display()));
            run(Command::new("/sbin/mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-L", "libcrun-shim"])
                .arg(&device))?;
        }
        _ => {
            return Err(format!(
                "{} holds no ext4 filesystem and is not blank (or is read-only): not touching it",
                device.display()
            ));
        }
    }
    let mut flags = MsFlags::MS_NOATIME;
    if disk.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let path = disk.path.to_string_lossy();
    let mounted = mount_fs(&device.to_string_lossy(), &path, "ext4", flags, "");
    if mounted.is_err() && !disk.read_only {
        // A VM killed mid-write: the journal replays on mount; anything
        // worse gets a check, then one more try.
        log(&format!("checking {}", device.display()));
        let _ = Command::new("/sbin/e2fsck").arg("-p").arg(&device).status();
        return mount_fs(&device.to_string_lossy(), &path, "ext4", flags, "");
    }
    mounted
}

fn mount_share(share: &GuestMount) -> Result<()> {
    let mut flags = MsFlags::empty();
    if share.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount_fs(
        &share.source,
        &share.path.to_string_lossy(),
        "virtiofs",
        flags,
        "",
    )
}

/// Rosetta (Apple silicon, Virtualization.framework): the share tagged
/// `rosetta` runs x86-64 ELF binaries through binfmt_misc.
fn rosetta() -> Result<()> {
    mount_fs(
        "rosetta",
        "/run/rosetta",
        "virtiofs",
        MsFlags::MS_RDONLY,
        "",
    )?;
    mount_fs(
        "binfmt_misc",
        "/proc/sys/fs/binfmt_misc",
        "binfmt_misc",
        MsFlags::empty(),
        "",
    )?;
    let rule = concat!(
        ":rosetta:M::",
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:",
        r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:",
        "/run/rosetta/rosetta:CF"
    );
    step(
        "registering rosetta",
        fs::write("/proc/sys/fs/binfmt_misc/register", rule),
    )
}

fn network(network: &GuestNetwork) -> Result<()> {
    ip(&["link", "set", "lo", "up"])?;
    match network {
        GuestNetwork::None => Ok(()),
        GuestNetwork::Dhcp => {
            wait_for(Path::new("/sys/class/net/eth0"))?;
            ip(&["link", "set", "eth0", "up"])?;
            run(Command::new(BUSYBOX).args([
                "udhcpc",
                "-i",
                "eth0",
                "-q",
                "-n",
                "-t",
                "10",
                "-s",
                "/etc/libcrun-shim/udhcpc.sh",
            ]))
        }
        GuestNetwork::Static {
            address,
            gateway,
            dns,
        } => {
            wait_for(Path::new("/sys/class/net/eth0"))?;
            ip(&["addr", "add", address, "dev", "eth0"])?;
            ip(&["link", "set", "eth0", "up"])?;
            ip(&["route", "add", "default", "via", gateway])?;
            if let Some(dns) = dns {
                step(
                    "/etc/resolv.conf",
                    fs::write("/etc/resolv.conf", format!("nameserver {dns}\n")),
                )?;
            }
            log(&format!("eth0 is {address}, gateway {gateway}"));
            Ok(())
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new(BUSYBOX).arg("ip").args(args))
}

fn run(command: &mut Command) -> Result<()> {
    let what = format!("{command:?}");
    let status = step(&what, command.status())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}
