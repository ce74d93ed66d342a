//! How the SDK reaches the runtime, and the settings of the Linux VM that
//! runs the containers on macOS.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transport::Endpoint;

/// The daemon's default socket (where `crun-shimd` listens by default).
pub use libcrun_shim_proto::DEFAULT_SOCKET;

/// The environment variable naming the endpoint [`RuntimeConfig::from_env`]
/// (and so [`ContainerRuntime::new`](crate::ContainerRuntime::new)) uses.
pub const HOST_ENV: &str = "CRUN_SHIM_HOST";

/// The vsock port a guest agent listens on in the VM by default.
pub const DEFAULT_VSOCK_PORT: u32 = 1024;

/// The tag under which Rosetta is shared with the VM.
pub const ROSETTA_TAG: &str = "rosetta";

/// The longest virtio-fs tag, in bytes (Virtualization.framework's limit).
pub const MAX_VIRTIO_FS_TAG: usize = 36;

/// Everything [`ContainerRuntime::new_with_config`](crate::ContainerRuntime::new_with_config)
/// needs: where the daemon is, call timeouts, and the VM settings used on
/// macOS, where containers run in a Linux VM.
///
/// ```
/// use std::path::PathBuf;
/// use libcrun_shim::*;
///
/// let config = RuntimeConfig {
///     endpoint: "unix:///tmp/libcrun-shim.sock".into(),
///     vm_memory: 2 * 1024 * 1024 * 1024,
///     vm_cpus: 2,
///     vm_network: VmNetworkConfig {
///         mode: VmNetworkMode::Nat,
///         port_forwards: vec![PortForward { host_port: 8080, guest_port: 80, protocol: Protocol::Tcp }],
///         bridge_interface: None,
///     },
///     virtio_fs_shares: vec![VirtioFsShare {
///         tag: "host-share".into(),
///         path: PathBuf::from("/tmp/host-share"),
///         read_only: false,
///     }],
///     rosetta_config: RosettaConfig { enabled: true },
///     ..Default::default()
/// };
/// config.validate()?;
/// # Ok::<(), libcrun_shim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// The daemon (or agent) to talk to: `unix:///PATH`, a socket path,
    /// `vsock://CID:PORT` or `http://HOST:PORT`. Default: [`DEFAULT_SOCKET`].
    pub endpoint: String,
    /// On a daemon with several agents: the agent that new containers and
    /// pulled images go to. `None` lets the daemon pick the least loaded.
    pub agent: Option<String>,
    /// How long to wait for the first connection. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A deadline for each short call (not for `wait`, `stop`, `exec`,
    /// `shutdown`, pulls or streams). `None` (the default): no deadline.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// VM: the vsock port the guest agent listens on. Default 1024.
    pub vsock_port: u32,
    /// VM: the kernel and initramfs to boot, in that order.
    pub vm_asset_paths: Vec<PathBuf>,
    /// VM: memory in bytes, a multiple of 1 MiB. Default 2 GiB.
    pub vm_memory: u64,
    /// VM: virtual CPUs. Default 2.
    pub vm_cpus: u32,
    /// VM: disks attached to the VM, in order.
    pub vm_disks: Vec<VmDiskConfig>,
    /// VM: its network.
    pub vm_network: VmNetworkConfig,
    /// VM: host directories shared with the VM over virtio-fs.
    pub virtio_fs_shares: Vec<VirtioFsShare>,
    /// VM: Rosetta, to run x86-64 Linux binaries on Apple silicon.
    pub rosetta_config: RosettaConfig,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            endpoint: format!("unix://{DEFAULT_SOCKET}"),
            agent: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            vsock_port: DEFAULT_VSOCK_PORT,
            vm_asset_paths: Vec::new(),
            vm_memory: 2 << 30,
            vm_cpus: 2,
            vm_disks: Vec::new(),
            vm_network: VmNetworkConfig::default(),
            virtio_fs_shares: Vec::new(),
            rosetta_config: RosettaConfig::default(),
        }
    }
}

/// A disk image attached to the VM.
///
/// ```
/// use libcrun_shim::{DiskFormat, VmDiskConfig};
///
/// let disk = VmDiskConfig {
///     path: "/var/lib/libcrun-shim/data.img".into(),
///     size: 10 << 30,
///     read_only: false,
///     format: DiskFormat::Raw,
///     create_if_missing: true,
/// };
/// assert_eq!(disk.size, 10 * 1024 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VmDiskConfig {
    /// The image file, an absolute path.
    pub path: PathBuf,
    /// Its size in bytes, a multiple of 512; used when it is created.
    pub size: u64,
    /// Attach it read-only.
    pub read_only: bool,
    /// The image's format.
    pub format: DiskFormat,
    /// Create a sparse image of `size` bytes when the file does not exist.
    pub create_if_missing: bool,
}

/// The format of a VM disk image.
///
/// ```
/// assert_eq!(libcrun_shim::DiskFormat::default(), libcrun_shim::DiskFormat::Raw);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiskFormat {
    /// A raw image, byte for byte the disk.
    #[default]
    Raw,
}

/// The VM's network.
///
/// ```
/// use libcrun_shim::{VmNetworkConfig, VmNetworkMode};
///
/// let bridged = VmNetworkConfig {
///     mode: VmNetworkMode::Bridged,
///     bridge_interface: Some("en0".into()),
///     ..Default::default()
/// };
/// assert!(bridged.port_forwards.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VmNetworkConfig {
    /// How the VM is connected.
    pub mode: VmNetworkMode,
    /// Host ports forwarded into the VM (NAT only).
    pub port_forwards: Vec<PortForward>,
    /// The host interface to bridge to (bridged only, and required there).
    pub bridge_interface: Option<String>,
}

/// How the VM is connected to the network.
///
/// ```
/// assert_eq!(libcrun_shim::VmNetworkMode::default(), libcrun_shim::VmNetworkMode::Nat);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmNetworkMode {
    /// Behind the host's NAT: outgoing traffic works, incoming only through
    /// port forwards.
    #[default]
    Nat,
    /// On the network of a host interface, with its own address there.
    Bridged,
    /// A private network between the host and the VM only.
    HostOnly,
}

/// A host port forwarded to a port of the VM.
///
/// ```
/// use libcrun_shim::{PortForward, Protocol};
/// let web = PortForward { host_port: 8080, guest_port: 80, protocol: Protocol::Tcp };
/// assert_eq!(web.protocol, Protocol::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the VM.
    pub guest_port: u16,
    /// The transport protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A transport protocol.
///
/// ```
/// assert_eq!(libcrun_shim::Protocol::Udp.to_string(), "udp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A host directory shared with the VM over virtio-fs, mounted in the VM
/// by its tag.
///
/// ```
/// let share = libcrun_shim::VirtioFsShare {
///     tag: "projects".into(),
///     path: "/Users/me/projects".into(),
///     read_only: true,
/// };
/// assert!(share.read_only);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtioFsShare {
    /// The tag the VM mounts it by: 1 to 36 bytes, unique.
    pub tag: String,
    /// The host directory, an absolute path.
    pub path: PathBuf,
    /// Share it read-only.
    pub read_only: bool,
}

/// Rosetta in the VM (Apple silicon only): x86-64 Linux binaries run
/// translated. It is shared with the VM under the tag [`ROSETTA_TAG`].
///
/// ```
/// assert!(!libcrun_shim::RosettaConfig::default().enabled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RosettaConfig {
    /// Share Rosetta with the VM.
    pub enabled: bool,
}

impl RuntimeConfig {
    /// The default configuration, with the endpoint taken from the
    /// environment variable `CRUN_SHIM_HOST` ([`HOST_ENV`]) when it is set.
    ///
    /// ```
    /// let config = libcrun_shim::RuntimeConfig::from_env();
    /// assert!(!config.endpoint.is_empty());
    /// ```
    pub fn from_env() -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        if let Some(host) = std::env::var(HOST_ENV).ok().filter(|h| !h.is_empty()) {
            config.endpoint = host;
        }
        config
    }

    /// Checks the configuration: the endpoint's form, and the VM settings
    /// (memory, CPUs, disks, network, shares, Rosetta). The error is
    /// [`Error::InvalidArgument`] naming the field and what is wrong with it.
    ///
    /// ```
    /// use libcrun_shim::{Error, RuntimeConfig};
    ///
    /// let config = RuntimeConfig { vm_cpus: 0, ..Default::default() };
    /// match config.validate() {
    ///     Err(Error::InvalidArgument(message)) => assert_eq!(message, "vm_cpus: must be at least 1"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn validate(&self) -> Result<()> {
        Endpoint::parse(&self.endpoint)?;
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        if self.agent.as_deref() == Some("") {
            return invalid("agent: empty name (use None for any agent)".into());
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout: must be more than zero".into());
        }
        if self.request_timeout.is_some_and(|t| t.is_zero()) {
            return invalid(
                "request_timeout: must be more than zero (None for no deadline)".into(),
            );
        }
        if self.vsock_port == 0 {
            return invalid("vsock_port: must not be 0".into());
        }
        for (i, path) in self.vm_asset_paths.iter().enumerate() {
            if !path.is_absolute() {
                return invalid(format!(
                    "vm_asset_paths[{i}]: {} is not an absolute path",
                    path.display()
                ));
            }
        }
        const MIB: u64 = 1 << 20;
        if self.vm_memory < 128 * MIB {
            return invalid(format!(
                "vm_memory: {} bytes is less than the minimum of 128 MiB",
                self.vm_memory
            ));
        }
        if self.vm_memory % MIB != 0 {
            return invalid(format!(
                "vm_memory: {} bytes is not a multiple of 1 MiB",
                self.vm_memory
            ));
        }
        if self.vm_cpus == 0 {
            return invalid("vm_cpus: must be at least 1".into());
        }
        let mut disks = HashSet::new();
        for (i, disk) in self.vm_disks.iter().enumerate() {
            if !disk.path.is_absolute() {
                return invalid(format!(
                    "vm_disks[{i}].path: {} is not an absolute path",
                    disk.path.display()
                ));
            }
            if !disks.insert(&disk.path) {
                return invalid(format!(
                    "vm_disks[{i}].path: {} is attached twice",
                    disk.path.display()
                ));
            }
            if disk.create_if_missing && disk.size == 0 {
                return invalid(format!(
                    "vm_disks[{i}].size: must be more than zero with create_if_missing"
                ));
            }
            if disk.size % 512 != 0 {
                return invalid(format!(
                    "vm_disks[{i}].size: {} bytes is not a multiple of 512",
                    disk.size
                ));
            }
        }
        self.vm_network.validate()?;
        let mut tags = HashSet::new();
        for (i, share) in self.virtio_fs_shares.iter().enumerate() {
            if share.tag.is_empty() || share.tag.len() > MAX_VIRTIO_FS_TAG {
                return invalid(format!(
                    "virtio_fs_shares[{i}].tag: {:?} must be 1 to {MAX_VIRTIO_FS_TAG} bytes",
                    share.tag
                ));
            }
            if self.rosetta_config.enabled && share.tag == ROSETTA_TAG {
                return invalid(format!(
                    "virtio_fs_shares[{i}].tag: {ROSETTA_TAG:?} is taken by Rosetta"
                ));
            }
            if !tags.insert(&share.tag) {
                return invalid(format!(
                    "virtio_fs_shares[{i}].tag: {:?} is used twice",
                    share.tag
                ));
            }
            if !share.path.is_absolute() {
                return invalid(format!(
                    "virtio_fs_shares[{i}].path: {} is not an absolute path",
                    share.path.display()
                ));
            }
        }
        Ok(())
    }
}

impl VmNetworkConfig {
    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        match (self.mode, self.bridge_interface.as_deref()) {
            (VmNetworkMode::Bridged, None | Some("")) => {
                return invalid("vm_network.bridge_interface: required in bridged mode".into());
            }
            (VmNetworkMode::Nat | VmNetworkMode::HostOnly, Some(_)) => {
                return invalid("vm_network.bridge_interface: only allowed in bridged mode".into());
            }
            _ => {}
        }
        if self.mode != VmNetworkMode::Nat && !self.port_forwards.is_empty() {
            return invalid("vm_network.port_forwards: only allowed in NAT mode".into());
        }
        let mut seen = HashSet::new();
        for (i, forward) in self.port_forwards.iter().enumerate() {
            if forward.host_port == 0 || forward.guest_port == 0 {
                return invalid(format!(
                    "vm_network.port_forwards[{i}]: port 0 is not a port"
                ));
            }
            if !seen.insert((forward.host_port, forward.protocol)) {
                return invalid(format!(
                    "vm_network.port_forwards[{i}]: host port {}/{} is forwarded twice",
                    forward.host_port, forward.protocol
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(config: RuntimeConfig) -> String {
        match config.validate() {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn the_default_is_valid() {
        RuntimeConfig::default().validate().unwrap();
    }

    #[test]
    fn each_mistake_is_named() {
        let disk = |path: &str, size| VmDiskConfig {
            path: path.into(),
            size,
            create_if_missing: true,
            ..Default::default()
        };
        let cases = [
            (
                RuntimeConfig {
                    vm_memory: 64 << 20,
                    ..Default::default()
                },
                "vm_memory: 67108864 bytes is less than the minimum of 128 MiB",
            ),
            (
                RuntimeConfig {
                    vm_disks: vec![disk("disk.img", 1 << 30)],
                    ..Default::default()
                },
                "vm_disks[0].path: disk.img is not an absolute path",
            ),
            (
                RuntimeConfig {
                    vm_disks: vec![disk("/d.img", 1 << 30), disk("/d.img", 1 << 30)],
                    ..Default::default()
                },
                "vm_disks[1].path: /d.img is attached twice",
            ),
            (
                RuntimeConfig {
                    vm_disks: vec![disk("/d.img", 1000)],
                    ..Default::default()
                },
                "vm_disks[0].size: 1000 bytes is not a multiple of 512",
            ),
            (
                RuntimeConfig {
                    vm_network: VmNetworkConfig {
                        mode: VmNetworkMode::Bridged,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "vm_network.bridge_interface: required in bridged mode",
            ),
            (
                RuntimeConfig {
                    vm_network: VmNetworkConfig {
                        mode: VmNetworkMode::HostOnly,
                        port_forwards: vec![PortForward {
                            host_port: 80,
                            guest_port: 80,
                            protocol: Protocol::Tcp,
                        }],
                        bridge_interface: None,
                    },
                    ..Default::default()
                },
                "vm_network.port_forwards: only allowed in NAT mode",
            ),
            (
                RuntimeConfig {
                    virtio_fs_shares: vec![VirtioFsShare {
                        tag: "rosetta".into(),
                        path: "/x".into(),
                        read_only: false,
                    }],
                    rosetta_config: RosettaConfig { enabled: true },
                    ..Default::default()
                },
                "virtio_fs_shares[0].tag: \"rosetta\" is taken by Rosetta",
            ),
            (
                RuntimeConfig {
                    endpoint: "tcp://x:1".into(),
                    ..Default::default()
                },
                "endpoint \"tcp://x:1\": unsupported scheme (expected unix:///PATH, a socket path, vsock://CID:PORT or http://HOST:PORT)",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(message(config), expected);
        }
    }
}
