//! What the host tells the guest, as `libcrun_shim.*` words of the kernel
//! command line: the one channel that reaches a Linux guest's init the same
//! way under QEMU (`-append`) and Virtualization.framework
//! (`VZLinuxBootLoader.commandLine`).
//!
//! `crun-shimd` renders [`GuestParams`] with [`GuestParams::render`]; the
//! guest's init reads them back with [`GuestParams::parse`]. Paths are
//! percent-encoded, so any absolute path fits in one word.
//!
//! ```
//! use crun_shim_init::params::*;
//!
//! let params = GuestParams {
//!     shares: vec![GuestMount { source: "share0".into(), path: "/srv/my rootfs".into(), read_only: true }],
//!     network: GuestNetwork::Static { address: "10.0.2.15/24".into(), gateway: "10.0.2.2".into(), dns: None },
//!     ..GuestParams::default()
//! };
//! let line = params.render();
//! assert!(line.contains("libcrun_shim.share=share0:/srv/my%20rootfs:ro"));
//! assert_eq!(GuestParams::parse(&line).unwrap(), params);
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

/// The vsock port the agent listens on by default.
pub const AGENT_PORT: u32 = 1024;
/// The vsock port of the init's control channel by default (`poweroff`).
pub const CONTROL_PORT: u32 = 1025;
/// Where the agent keeps its state in the guest.
pub const STATE_ROOT: &str = "/var/lib/libcrun-shim";
/// The prefix of every word this module reads or writes.
const PREFIX: &str = "libcrun_shim.";
/// The longest kernel command line on x86-64 (COMMAND_LINE_SIZE), bytes.
pub const MAX_COMMAND_LINE: usize = 2048;

/// A filesystem the init mounts: a disk (`source` a device name such as
/// `vda`) or a virtio-fs share (`source` its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestMount {
    /// The device name under /dev, or the virtio-fs tag.
    pub source: String,
    /// The absolute path it is mounted on in the guest.
    pub path: PathBuf,
    /// Mounted read-only (a disk is then never formatted).
    pub read_only: bool,
}

/// How the guest's network is configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GuestNetwork {
    /// Loopback only.
    #[default]
    None,
    /// DHCP on `eth0` (Virtualization.framework's NAT).
    Dhcp,
    /// A fixed address on `eth0` (QEMU's user network, whose addresses are
    /// known in advance: no DHCP round trip at boot).
    Static {
        /// `ADDRESS/PREFIX`, e.g. `10.0.2.15/24`.
        address: String,
        /// The default gateway.
        gateway: String,
        /// The name server, if any.
        dns: Option<String>,
    },
}

/// Everything the host configures in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestParams {
    /// The agent's vsock port.
    pub agent_port: u32,
    /// The init's control port.
    pub control_port: u32,
    /// Disks to mount, formatted (ext4) on first use when writable and blank.
    pub disks: Vec<GuestMount>,
    /// virtio-fs shares to mount.
    pub shares: Vec<GuestMount>,
    /// The network.
    pub network: GuestNetwork,
    /// The guest's host name.
    pub hostname: String,
    /// Registries (`HOST[:PORT]`) the agent pulls from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mount Rosetta (tag `rosetta`) and register it for x86-64 binaries.
    pub rosetta: bool,
    /// The agent's log filter (`RUST_LOG`), if not the default.
    pub log: Option<String>,
}

impl Default for GuestParams {
    fn default() -> GuestParams {
        GuestParams {
            agent_port: AGENT_PORT,
            control_port: CONTROL_PORT,
            disks: Vec::new(),
            shares: Vec::new(),
            network: GuestNetwork::None,
            hostname: "libcrun-shim".into(),
            insecure_registries: Vec::new(),
            rosetta: false,
            log: None,
        }
    }
}

/// A word of the command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel command line: {word:?}: {why}")]
pub struct ParamError {
    /// The word.
    pub word: String,
    /// What is wrong with it.
    pub why: String,
}

impl GuestParams {
    /// The `libcrun_shim.*` words, space-separated, to append to the
    /// kernel command line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut word = |key: &str, value: &str| {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{PREFIX}{key}={value}");
        };
        word("port", &self.agent_port.to_string());
        word("control", &self.control_port.to_string());
        for (key, mounts) in [("disk", &self.disks), ("share", &self.shares)] {
            for m in mounts {
                let mut value = format!(
                    "{}:{}",
                    encode(&m.source),
                    encode(&m.path.to_string_lossy())
                );
                if m.read_only {
                    value.push_str(":ro");
                }
                word(key, &value);
            }
        }
        match &self.network {
            GuestNetwork::None => {}
            GuestNetwork::Dhcp => word("net", "dhcp"),
            GuestNetwork::Static {
                address,
                gateway,
                dns,
            } => {
                let mut value = format!("{}:{}", encode(address), encode(gateway));
                if let Some(dns) = dns {
                    value = format!("{value}:{}", encode(dns));
                }
                word("net", &value);
            }
        }
        word("hostname", &encode(&self.hostname));
        for registry in &self.insecure_registries {
            word("insecure_registry", &encode(registry));
        }
        if self.rosetta {
            word("rosetta", "1");
        }
        if let Some(log) = &self.log {
            word("log", &encode(log));
        }
        out
    }

    /// Reads the `libcrun_shim.*` words of a kernel command line (other
    /// words are the kernel's and are skipped).
    pub fn parse(cmdline: &str) -> Result<GuestParams, ParamError> {
        let mut params = GuestParams::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix(PREFIX) else {
                continue;
            };
            let bad = |why: &str| ParamError {
                word: word.to_string(),
                why: why.to_string(),
            };
            let (key, value) = rest
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=VALUE"))?;
            let port = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("not a port"))
            };
            match key {
                "port" => params.agent_port = port()?,
                "control" => params.control_port = port()?,
                "disk" | "share" => {
                    let fields: Vec<&str> = value.split(':').collect();
                    let read_only = match fields.get(2) {
                        None => false,
                        Some(&"ro") => true,
                        Some(_) => return Err(bad("the third field can only be ro")),
                    };
                    if fields.len() > 3 || fields.len() < 2 {
                        return Err(bad("expected SOURCE:PATH[:ro]"));
                    }
                    let source = decode(fields[0]).map_err(|why| bad(&why))?;
                    let path = PathBuf::from(decode(fields[1]).map_err(|why| bad(&why))?);
                    if source.is_empty() || source.contains('/') {
                        return Err(bad("the source must be a device name or a tag"));
                    }
                    if !path.is_absolute() {
                        return Err(bad("the path must be absolute"));
                    }
                    let mount = GuestMount {
                        source,
                        path,
                        read_only,
                    };
                    if key == "disk" {
                        params.disks.push(mount);
                    } else {
                        params.shares.push(mount);
                    }
                }
                "net" if value == "dhcp" => params.network = GuestNetwork::Dhcp,
                "net" => {
                    let fields = value
                        .split(':')
                        .map(decode)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|why| bad(&why))?;
                    params.network = match fields.as_slice() {
                        [address, gateway] => GuestNetwork::Static {
                            address: address.clone(),
                            gateway: gateway.clone(),
                            dns: None,
                        },
                        [address, gateway, dns] => GuestNetwork::Static {
                            address: address.clone(),
                            gateway: gateway.clone(),
                            dns: Some(dns.clone()),
                        },
                        _ => return Err(bad("expected dhcp or ADDRESS/PREFIX:GATEWAY[:DNS]")),
                    };
                }
                "hostname" => params.hostname = decode(value).map_err(|why| bad(&why))?,
                "insecure_registry" => params
                    .insecure_registries
                    .push(decode(value).map_err(|why| bad(&why))?),
                "rosetta" => params.rosetta = value == "1",
                "log" => params.log = Some(decode(value).map_err(|why| bad(&why))?),
                _ => return Err(bad("unknown parameter")),
            }
        }
        Ok(params)
    }
}

/// Percent-encodes what is not plainly safe in one command-line word.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/_.-+@=,".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_round_trips() {
        let params = GuestParams {
            agent_port: 2000,
            control_port: 2001,
            disks: vec![GuestMount {
                source: "vda".into(),
                path: STATE_ROOT.into(),
                read_only: false,
            }],
            shares: vec![
                GuestMount {
                    source: "share0".into(),
                    path: "/tmp/a b:c%d".into(),
                    read_only: true,
                },
                GuestMount {
                    source: "share1".into(),
                    path: "/srv/x".into(),
                    read_only: false,
                },
            ],
            network: GuestNetwork::Static {
                address: "10.0.2.15/24".into(),
                gateway: "10.0.2.2".into(),
                dns: Some("10.0.2.3".into()),
            },
            hostname: "vm-1".into(),
            insecure_registries: vec!["10.0.2.100:5000".into()],
            rosetta: true,
            log: Some("info,crun_shim_agent=debug".into()),
        };
        let line = params.render();
        assert!(!line.contains("a b"), "{line}");
        let parsed = GuestParams::parse(&format!("console=ttyS0 quiet {line} panic=-1")).unwrap();
        assert_eq!(parsed, params);
        let dhcp = GuestParams {
            network: GuestNetwork::Dhcp,
            ..Default::default()
        };
        assert_eq!(GuestParams::parse(&dhcp.render()).unwrap(), dhcp);
    }

    #[test]
    fn the_kernels_words_are_left_alone() {
        assert_eq!(
            GuestParams::parse("console=ttyS0 root=/dev/vda quiet").unwrap(),
            GuestParams::default()
        );
    }

    #[test]
    fn bad_words_are_named() {
        for (word, why) in [
            ("libcrun_shim.port=0", "not a port"),
            ("libcrun_shim.port", "expected KEY=VALUE"),
            (
                "libcrun_shim.disk=vda:relative",
                "the path must be absolute",
            ),
            (
                "libcrun_shim.disk=vda:/x:rw",
                "the third field can only be ro",
            ),
            (
                "libcrun_shim.share=a%2Fb:/x",
                "the source must be a device name or a tag",
            ),
            ("libcrun_shim.share=t:/x%zz", "bad escape at byte 2"),
            (
                "libcrun_shim.net=10.0.2.15",
                "expected dhcp or ADDRESS/PREFIX:GATEWAY[:DNS]",
            ),
            ("libcrun_shim.color=blue", "unknown parameter"),
        ] {
            let err = GuestParams::parse(word).unwrap_err();
            assert_eq!((err.word.as_str(), err.why.as_str()), (word, why));
        }
    }
}
