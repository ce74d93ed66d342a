//! A VM's configuration: a `[vms.NAME]` section of crun-shimd's TOML file,
//! with its rules (sizes, paths, tags, forwards) checked in one place for
//! both backends.
//!
//! ```toml
//! [vms.dev]
//! kernel = "/var/cache/libcrun-shim/guest/vmlinuz"
//! initramfs = "/var/cache/libcrun-shim/guest/initramfs.img"
//! memory = "2GiB"
//! cpus = 2
//! insecure_registries = ["10.0.2.100:5000"]
//!
//! [[vms.dev.disks]]                 # the agent's state survives VM restarts
//! path = "/var/lib/libcrun-shim/vms/dev/state.img"
//! size = "8GiB"
//! create_if_missing = true
//! mount = "/var/lib/libcrun-shim"
//!
//! [vms.dev.network]
//! mode = "restricted"              # nat | restricted (QEMU only) | none
//! port_forwards = [{ host_port = 8080, guest_port = 80 }]
//! guest_forwards = [{ guest_port = 5000, host = "127.0.0.1:5000" }]
//!
//! [[vms.dev.shares]]                # mounted at the same path in the guest
//! path = "/srv/rootfs"
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crun_shim_init::params::{
    AGENT_PORT, GuestMount, GuestNetwork, GuestParams, MAX_COMMAND_LINE, STATE_ROOT,
};
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// The tag under which Rosetta is shared with the VM.
pub const ROSETTA_TAG: &str = "rosetta";
/// The longest virtio-fs tag, in bytes (Virtualization.framework's limit).
pub const MAX_TAG: usize = 36;
/// The guest's address for [`GuestForward`]s by default (QEMU's user
/// network is 10.0.2.0/24; .2 is the host's NAT, .3 its DNS, .15 the guest).
pub const GUEST_FORWARD_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
const MIB: u64 = 1 << 20;

/// A size in bytes: an integer, or a string with a binary unit
/// (`"512MiB"`, `"8G"`, `"1T"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"123"`, `"4K"`, `"4KiB"`, `"2M"`, `"2MiB"`, `"1G"`, `"1GiB"`, `"1T"`, `"1TiB"`.
    pub fn parse(s: &str) -> std::result::Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            "T" | "TiB" => 40,
            other => {
                return Err(format!(
                    "{s:?}: unknown unit {other:?} (B, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        n.checked_mul(1 << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n >= 1 << shift && n % (1 << shift) == 0 {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// How QEMU runs the guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when /dev/kvm opens, and TCG from the first boot KVM does not
    /// bring to "agent serving" within a short deadline (KVM hangs on some
    /// hosts, nested ones among them).
    #[default]
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// QEMU's binary translation: slower, works everywhere.
    Tcg,
}

/// A VM: the guest to boot and the devices it gets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// The kernel (docker/build-guest.sh's `vmlinuz`; on Apple silicon an
    /// uncompressed arm64 `Image`).
    pub kernel: PathBuf,
    /// The initramfs holding the init and the agent (`initramfs.img`).
    pub initramfs: PathBuf,
    /// Memory: at least 128 MiB, a multiple of 1 MiB. Default 2 GiB.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Virtual CPUs. Default 2.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Disks, attached in order (`vda`, `vdb`, ...).
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    /// The network.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Host directories shared over virtio-fs.
    #[serde(default)]
    pub shares: Vec<ShareConfig>,
    /// Rosetta for x86-64 binaries (macOS on Apple silicon only).
    #[serde(default)]
    pub rosetta: bool,
    /// Registries (`HOST[:PORT]`) the guest's agent pulls from over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// QEMU's accelerator (Linux only).
    #[serde(default)]
    pub accel: Accel,
    /// The guest's vsock context id (QEMU). Default 3.
    #[serde(default = "default_cid")]
    pub cid: u32,
    /// The vsock port the guest's agent listens on. Default 1024.
    #[serde(default = "default_port")]
    pub port: u32,
    /// How long a boot may take to reach "agent serving" before the VM is
    /// restarted. Default 120 s (TCG on a loaded machine is slow).
    #[serde(default = "default_boot_timeout", with = "humantime_serde")]
    pub boot_timeout: Duration,
    /// The agent's log filter in the guest (`RUST_LOG`). Default `info`.
    #[serde(default)]
    pub log: Option<String>,
}

fn default_memory() -> ByteSize {
    ByteSize(2 << 30)
}
fn default_cpus() -> u32 {
    2
}
fn default_cid() -> u32 {
    3
}
fn default_port() -> u32 {
    AGENT_PORT
}
fn default_boot_timeout() -> Duration {
    Duration::from_secs(120)
}

/// A disk image attached to the VM (raw format).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The image file, an absolute path.
    pub path: PathBuf,
    /// Its size; used when it is created. A multiple of 512 bytes.
    #[serde(default)]
    pub size: ByteSize,
    /// Create a sparse image of `size` when the file does not exist (the
    /// guest formats it ext4 at first boot when it is mounted).
    #[serde(default)]
    pub create_if_missing: bool,
    /// Attach it read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Where the guest mounts it (ext4). A disk mounted on
    /// `/var/lib/libcrun-shim` holds the agent's state, which then survives
    /// the VM's restarts. Unset: attached, not mounted.
    #[serde(default)]
    pub mount: Option<PathBuf>,
}

/// How the VM reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Behind the host's NAT: outgoing traffic works, incoming only through
    /// port forwards (QEMU's user network; Virtualization.framework's NAT).
    #[default]
    Nat,
    /// QEMU's user network with `restrict=on`: nothing leaves the VM but
    /// the explicit port forwards and guest forwards (Linux only).
    Restricted,
    /// No network device: loopback only.
    None,
}

/// The VM's network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The mode.
    #[serde(default)]
    pub mode: NetworkMode,
    /// Host ports forwarded to ports of the guest (published ports).
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
    /// Guest addresses forwarded to host addresses (QEMU only), such as a
    /// registry on the host's loopback.
    #[serde(default)]
    pub guest_forwards: Vec<GuestForward>,
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A host port forwarded to a port of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the guest.
    pub guest_port: u16,
    /// The protocol. Default TCP.
    #[serde(default)]
    pub protocol: Protocol,
    /// The host address to listen on. Default 127.0.0.1.
    #[serde(default = "loopback")]
    pub host_address: IpAddr,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// A TCP address in the guest's network forwarded to one on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestForward {
    /// The address the guest connects to. Default 10.0.2.100.
    #[serde(default = "guest_forward_address")]
    pub guest_address: Ipv4Addr,
    /// The port the guest connects to.
    pub guest_port: u16,
    /// Where connections go on the host.
    pub host: SocketAddr,
}

fn guest_forward_address() -> Ipv4Addr {
    GUEST_FORWARD_ADDRESS
}

/// A host directory shared with the guest over virtio-fs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// The host directory, an absolute path.
    pub path: PathBuf,
    /// Where the guest mounts it. Default: the same path, so that
    /// `--rootfs` and `-v` paths mean the same inside and out.
    #[serde(default)]
    pub guest_path: Option<PathBuf>,
    /// The virtio-fs tag: 1 to 36 bytes. Default `shareN` (N its index).
    #[serde(default)]
    pub tag: Option<String>,
    /// Share it read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl ShareConfig {
    /// The tag of share number `index`.
    pub fn tag(&self, index: usize) -> String {
        self.tag.clone().unwrap_or_else(|| format!("share{index}"))
    }

    /// Where the guest mounts it.
    pub fn guest_path(&self) -> &Path {
        self.guest_path.as_deref().unwrap_or(&self.path)
    }
}

/// Guest paths a share or disk may not hide.
const SYSTEM_PATHS: &[&str] = &[
    "/", "/proc", "/sys", "/dev", "/run", "/etc", "/usr", "/bin", "/sbin", "/lib",
];

impl VmConfig {
    /// Checks the rules both backends share; `name` prefixes each error.
    pub fn check(&self, name: &str) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("vms.{name}.{what}")));
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || name.is_empty()
        {
            return Err(Error::Config(format!(
                "vms.{name}: a VM's name is letters, digits, '-' and '_'"
            )));
        }
        for (what, path) in [("kernel", &self.kernel), ("initramfs", &self.initramfs)] {
            if !path.is_absolute() {
                return bad(format!(
                    "{what}: {} is not an absolute path",
                    path.display()
                ));
            }
        }
        if self.memory.0 < 128 * MIB {
            return bad(format!(
                "memory: {} is less than the minimum of 128MiB",
                self.memory
            ));
        }
        if self.memory.0 % MIB != 0 {
            return bad(format!("memory: {} is not a multiple of 1MiB", self.memory));
        }
        if self.cpus == 0 {
            return bad("cpus: must be at least 1".into());
        }
        if self.port == 0 || self.cid < 3 {
            return bad(
                "port and cid: the port must not be 0 and the cid must be 3 or more".into(),
            );
        }
        let mut guest_paths = HashSet::new();
        let mut guest_path = |what: String, path: &Path| {
            if !path.is_absolute() {
                return bad(format!(
                    "{what}: {} is not an absolute path",
                    path.display()
                ));
            }
            if SYSTEM_PATHS.iter().any(|p| path == Path::new(p))
                || path.starts_with("/proc")
                || path.starts_with("/sys")
                || path.starts_with("/dev")
            {
                return bad(format!(
                    "{what}: {} would hide the guest's own files",
                    path.display()
                ));
            }
            if !guest_paths.insert(path.to_path_buf()) {
                return bad(format!("{what}: {} is mounted twice", path.display()));
            }
            Ok(())
        };
        let mut disks = HashSet::new();
        for (i, disk) in self.disks.iter().enumerate() {
            if !disk.path.is_absolute() {
                return bad(format!(
                    "disks[{i}].path: {} is not an absolute path",
                    disk.path.display()
                ));
            }
            if !disks.insert(&disk.path) {
                return bad(format!(
                    "disks[{i}].path: {} is attached twice",
                    disk.path.display()
                ));
            }
            if disk.create_if_missing && disk.size.0 == 0 {
                return bad(format!(
                    "disks[{i}].size: must be more than zero with create_if_missing"
                ));
            }
            if disk.size.0 % 512 != 0 {
                return bad(format!(
                    "disks[{i}].size: {} is not a multiple of 512 bytes",
                    disk.size
                ));
            }
            if !disk.create_if_missing && !disk.path.exists() {
                return bad(format!(
                    "disks[{i}].path: {} does not exist (set create_if_missing)",
                    disk.path.display()
                ));
            }
            if let Some(mount) = &disk.mount {
                guest_path(format!("disks[{i}].mount"), mount)?;
            }
        }
        let mut tags = HashSet::new();
        for (i, share) in self.shares.iter().enumerate() {
            let tag = share.tag(i);
            if tag.is_empty() || tag.len() > MAX_TAG {
                return bad(format!(
                    "shares[{i}].tag: {tag:?} must be 1 to {MAX_TAG} bytes"
                ));
            }
            if self.rosetta && tag == ROSETTA_TAG {
                return bad(format!(
                    "shares[{i}].tag: {ROSETTA_TAG:?} is taken by Rosetta"
                ));
            }
            if !tags.insert(tag.clone()) {
                return bad(format!("shares[{i}].tag: {tag:?} is used twice"));
            }
            if !share.path.is_absolute() {
                return bad(format!(
                    "shares[{i}].path: {} is not an absolute path",
                    share.path.display()
                ));
            }
            if !share.path.is_dir() {
                return bad(format!(
                    "shares[{i}].path: {} is not a directory",
                    share.path.display()
                ));
            }
            guest_path(format!("shares[{i}].guest_path"), share.guest_path())?;
        }
        self.network.check(name)?;
        // What each backend has.
        if cfg!(target_os = "macos") {
            if self.network.mode == NetworkMode::Restricted
                || !self.network.guest_forwards.is_empty()
            {
                return bad("network: restricted mode and guest_forwards need QEMU (Linux); on macOS the host is the NAT's gateway".into());
            }
        } else if self.rosetta {
            return bad("rosetta: Virtualization.framework on Apple silicon only".into());
        }
        let cmdline = GuestParams::from(self).render();
        if cmdline.len() + 200 > MAX_COMMAND_LINE {
            return bad(format!(
                "the guest's kernel command line would be {} bytes, more than {MAX_COMMAND_LINE}: fewer or shorter shares and disks",
                cmdline.len() + 200
            ));
        }
        Ok(())
    }

    /// Whether the agent's state lives on a disk (and so survives the
    /// VM's restarts).
    pub fn persistent_state(&self) -> bool {
        self.disks
            .iter()
            .any(|d| !d.read_only && d.mount.as_deref() == Some(Path::new(STATE_ROOT)))
    }
}

/// What the guest's init is told about a VM.
impl From<&VmConfig> for GuestParams {
    fn from(config: &VmConfig) -> GuestParams {
        GuestParams {
            agent_port: config.port,
            disks: config
                .disks
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    Some(GuestMount {
                        source: disk_device(i),
                        path: d.mount.clone()?,
                        read_only: d.read_only,
                    })
                })
                .collect(),
            shares: config
                .shares
                .iter()
                .enumerate()
                .map(|(i, s)| GuestMount {
                    source: s.tag(i),
                    path: s.guest_path().to_path_buf(),
                    read_only: s.read_only,
                })
                .collect(),
            network: match config.network.mode {
                NetworkMode::None => GuestNetwork::None,
                NetworkMode::Nat | NetworkMode::Restricted if cfg!(target_os = "macos") => {
                    GuestNetwork::Dhcp
                }
                // QEMU's user network: fixed, known addresses.
                NetworkMode::Nat | NetworkMode::Restricted => GuestNetwork::Static {
                    address: "10.0.2.15/24".into(),
                    gateway: "10.0.2.2".into(),
                    dns: (config.network.mode == NetworkMode::Nat).then(|| "10.0.2.3".into()),
                },
            },
            insecure_registries: config.insecure_registries.clone(),
            rosetta: config.rosetta,
            log: config.log.clone(),
            ..GuestParams::default()
        }
    }
}

/// The guest's name of disk number `index`: vda, vdb, ... (virtio-blk
/// devices in the order they are attached).
pub fn disk_device(index: usize) -> String {
    let mut name = String::new();
    let mut n = index;
    loop {
        name.insert(0, (b'a' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    format!("vd{name}")
}

impl NetworkConfig {
    fn check(&self, name: &str) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("vms.{name}.network.{what}")));
        if self.mode == NetworkMode::None
            && (!self.port_forwards.is_empty() || !self.guest_forwards.is_empty())
        {
            return bad(
                "port_forwards, guest_forwards: not without a network (mode = \"none\")".into(),
            );
        }
        let mut seen = HashSet::new();
        for (i, f) in self.port_forwards.iter().enumerate() {
            if f.host_port == 0 || f.guest_port == 0 {
                return bad(format!("port_forwards[{i}]: port 0 is not a port"));
            }
            if !seen.insert((f.host_address, f.host_port, f.protocol)) {
                return bad(format!(
                    "port_forwards[{i}]: host port {}/{} is forwarded twice",
                    f.host_port, f.protocol
                ));
            }
        }
        let mut seen = HashSet::new();
        for (i, f) in self.guest_forwards.iter().enumerate() {
            if f.guest_port == 0 || f.host.port() == 0 {
                return bad(format!("guest_forwards[{i}]: port 0 is not a port"));
            }
            let in_user_net = f.guest_address.octets()[..3] == [10, 0, 2];
            if !in_user_net || [2, 3, 15].contains(&f.guest_address.octets()[3]) {
                return bad(format!(
                    "guest_forwards[{i}].guest_address: {} must be a free address of 10.0.2.0/24 (not .2, .3 or .15)",
                    f.guest_address
                ));
            }
            if !seen.insert((f.guest_address, f.guest_port)) {
                return bad(format!(
                    "guest_forwards[{i}]: {}:{} is forwarded twice",
                    f.guest_address, f.guest_port
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(extra: &str) -> std::result::Result<VmConfig, String> {
        let text = format!("kernel = \"/k\"\ninitramfs = \"/i\"\n{extra}");
        let config: VmConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.check("t").map_err(|e| match e {
            Error::Config(message) => message,
            other => other.to_string(),
        })?;
        Ok(config)
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        for (text, bytes) in [
            ("512", 512),
            ("4KiB", 4096),
            ("2M", 2 << 20),
            ("1GiB", 1 << 30),
            ("3 G", 3 << 30),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text}");
        }
        assert!(ByteSize::parse("1.5G").is_err());
        assert!(ByteSize::parse("1Q").is_err());
        assert!(ByteSize::parse("99999999999T").is_err());
        assert_eq!(ByteSize(2 << 30).to_string(), "2GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn defaults_and_a_full_section() {
        let c = vm("").unwrap();
        assert_eq!(
            (c.memory, c.cpus, c.port, c.cid),
            (ByteSize(2 << 30), 2, 1024, 3)
        );
        assert_eq!(c.network.mode, NetworkMode::Nat);
        assert!(!c.persistent_state());
        let dir = tempfile::tempdir().unwrap();
        let c = vm(&format!(
            r#"memory = "1GiB"
accel = "tcg"
boot_timeout = "30s"
[[disks]]
path = "/d.img"
size = "1GiB"
create_if_missing = true
mount = "/var/lib/libcrun-shim"
[network]
mode = "restricted"
port_forwards = [{{ host_port = 8080, guest_port = 80 }}]
guest_forwards = [{{ guest_port = 5000, host = "127.0.0.1:5000" }}]
[[shares]]
path = "{}"
read_only = true
"#,
            dir.path().display()
        ))
        .unwrap();
        assert!(c.persistent_state());
        assert_eq!(c.boot_timeout, Duration::from_secs(30));
        let params = GuestParams::from(&c);
        assert_eq!(params.disks[0].source, "vda");
        assert_eq!(params.shares[0].source, "share0");
        assert_eq!(params.shares[0].path, dir.path());
        assert!(params.shares[0].read_only);
    }

    #[test]
    fn each_mistake_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for (extra, expected) in [
            (
                "memory = \"64MiB\"",
                "vms.t.memory: 64MiB is less than the minimum of 128MiB",
            ),
            (
                "memory = 200000000",
                "vms.t.memory: 200000000B is not a multiple of 1MiB",
            ),
            ("cpus = 0", "vms.t.cpus: must be at least 1"),
            (
                "[[disks]]\npath = \"d.img\"\nsize = 512\ncreate_if_missing = true",
                "vms.t.disks[0].path: d.img is not an absolute path",
            ),
            (
                "[[disks]]\npath = \"/d.img\"\ncreate_if_missing = true",
                "vms.t.disks[0].size: must be more than zero with create_if_missing",
            ),
            (
                "[[disks]]\npath = \"/d.img\"\nsize = 1000\ncreate_if_missing = true",
                "vms.t.disks[0].size: 1000B is not a multiple of 512 bytes",
            ),
            (
                "[[disks]]\npath = \"/nonexistent.img\"",
                "vms.t.disks[0].path: /nonexistent.img does not exist (set create_if_missing)",
            ),
            (
                "[[disks]]\npath = \"/d.img\"\nsize = 512\ncreate_if_missing = true\nmount = \"/proc/x\"",
                "vms.t.disks[0].mount: /proc/x would hide the guest's own files",
            ),
            (
                &format!(
                    "[[shares]]\npath = \"{d}\"\n[[shares]]\npath = \"{d}\"\ntag = \"share0\""
                ),
                "vms.t.shares[1].tag: \"share0\" is used twice",
            ),
            (
                &format!("rosetta = true\n[[shares]]\npath = \"{d}\"\ntag = \"rosetta\""),
                "vms.t.shares[0].tag: \"rosetta\" is taken by Rosetta",
            ),
            (
                &format!("[[shares]]\npath = \"{d}\"\ntag = \"{}\"", "x".repeat(37)),
                &format!(
                    "vms.t.shares[0].tag: \"{}\" must be 1 to 36 bytes",
                    "x".repeat(37)
                ),
            ),
            (
                "[[shares]]\npath = \"/nonexistent-dir\"",
                "vms.t.shares[0].path: /nonexistent-dir is not a directory",
            ),
            (
                "[network]\nmode = \"none\"\nport_forwards = [{ host_port = 1, guest_port = 1 }]",
                "vms.t.network.port_forwards, guest_forwards: not without a network (mode = \"none\")",
            ),
            (
                "[network]\nport_forwards = [{ host_port = 1, guest_port = 1 }, { host_port = 1, guest_port = 2 }]",
                "vms.t.network.port_forwards[1]: host port 1/tcp is forwarded twice",
            ),
            (
                "[network]\nguest_forwards = [{ guest_address = \"10.0.2.2\", guest_port = 1, host = \"127.0.0.1:1\" }]",
                "vms.t.network.guest_forwards[0].guest_address: 10.0.2.2 must be a free address of 10.0.2.0/24 (not .2, .3 or .15)",
            ),
        ] {
            assert_eq!(vm(extra).unwrap_err(), expected, "{extra}");
        }
        assert!(
            vm("colour = \"red\"")
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn disks_are_named_as_the_guest_sees_them() {
        assert_eq!(disk_device(0), "vda");
        assert_eq!(disk_device(25), "vdz");
        assert_eq!(disk_device(26), "vdaa");
    }
}
