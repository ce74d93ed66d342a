//! crun-shimd's macOS VM backend, Rust side: a VM described in Rust
//! ([`VmSpec`]), booted in Swift by Apple's Virtualization.framework
//! (`swift/Sources/VMBridge/VMBridge.swift`), bridged with swift-bridge.
//!
//! The Swift side exposes the guest's vsock as a Unix socket speaking the
//! hybrid-vsock protocol (`CONNECT <port>\n`, answered `OK <port>\n`), the
//! same protocol as vhost-device-vsock on Linux: crun-shimd dials both with
//! one dialer (`libcrun-shim-transport`, endpoint `hvsock:///PATH:PORT`).
//!
//! What builds where: the bridge module and the generated Swift/C glue
//! build on every platform (and are tested on Linux); calling Swift
//! ([`Vm`]) needs macOS, where `build-macos.sh` builds the Swift package
//! and links it (see README.md).

mod ffi;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use ffi::ffi::VmError;

/// The longest Unix socket path on macOS (`sun_path` is 104 bytes).
pub const MAX_SOCKET_PATH: usize = 103;
/// The longest virtio-fs tag Virtualization.framework accepts.
pub const MAX_TAG: usize = 36;

/// A disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// A raw image.
    pub path: PathBuf,
    /// Attached read-only.
    pub read_only: bool,
}

/// A host directory shared with the guest over virtio-fs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The tag the guest mounts it by.
    pub tag: String,
    /// The host directory.
    pub path: PathBuf,
    /// Shared read-only.
    pub read_only: bool,
}

/// Everything VMBridge.swift needs to boot a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The kernel: an uncompressed arm64 `Image` on Apple silicon.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The kernel command line (console, and the guest's `libcrun_shim.*`).
    pub command_line: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disks, in order (`vda`, `vdb`, ...).
    pub disks: Vec<Disk>,
    /// virtio-fs shares.
    pub shares: Vec<Share>,
    /// A NAT network device (else none).
    pub nat: bool,
    /// Share Rosetta under the tag `rosetta`.
    pub rosetta: bool,
    /// The Unix socket the Swift side serves the guest's vsock on.
    pub relay_socket: PathBuf,
    /// Where the guest's console goes.
    pub console_log: PathBuf,
}

/// A VmSpec Virtualization.framework would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl VmSpec {
    /// Checks what Virtualization.framework and macOS require beyond the
    /// rules of crun-shimd's VM configuration: a socket path that fits in
    /// `sun_path`, tags of at most 36 bytes, whole MiB of memory, and a
    /// kernel that is not compressed (VZLinuxBootLoader boots an arm64
    /// `Image` as is).
    pub fn check(&self) -> Result<(), SpecError> {
        let bad = |m: String| Err(SpecError(m));
        let socket = self.relay_socket.as_os_str().len();
        if socket > MAX_SOCKET_PATH {
            return bad(format!(
                "{}: {socket} bytes, more than the {MAX_SOCKET_PATH} a Unix socket path may have on macOS",
                self.relay_socket.display()
            ));
        }
        if self.cpus == 0 || self.memory_bytes == 0 || self.memory_bytes % (1 << 20) != 0 {
            return bad("cpus and memory: at least one CPU, memory in whole MiB".into());
        }
        for share in &self.shares {
            if share.tag.is_empty() || share.tag.len() > MAX_TAG {
                return bad(format!("share tag {:?}: 1 to {MAX_TAG} bytes", share.tag));
            }
        }
        match kernel_format(&self.kernel) {
            Ok(KernelFormat::Compressed) => bad(format!(
                "{}: a compressed kernel; Virtualization.framework boots an uncompressed Image (gunzip it)",
                self.kernel.display()
            )),
            Ok(_) => Ok(()),
            Err(e) => bad(format!("{}: {e}", self.kernel.display())),
        }
    }

    fn kernel(&self) -> String {
        self.kernel.display().to_string()
    }
    fn initramfs(&self) -> String {
        self.initramfs.display().to_string()
    }
    fn command_line(&self) -> String {
        self.command_line.clone()
    }
    fn cpus(&self) -> u32 {
        self.cpus
    }
    fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
    fn disk_count(&self) -> usize {
        self.disks.len()
    }
    fn disk_path(&self, index: usize) -> String {
        self.disks
            .get(index)
            .map(|d| d.path.display().to_string())
            .unwrap_or_default()
    }
    fn disk_read_only(&self, index: usize) -> bool {
        self.disks.get(index).is_some_and(|d| d.read_only)
    }
    fn share_count(&self) -> usize {
        self.shares.len()
    }
    fn share_tag(&self, index: usize) -> String {
        self.shares
            .get(index)
            .map(|s| s.tag.clone())
            .unwrap_or_default()
    }
    fn share_path(&self, index: usize) -> String {
        self.shares
            .get(index)
            .map(|s| s.path.display().to_string())
            .unwrap_or_default()
    }
    fn share_read_only(&self, index: usize) -> bool {
        self.shares.get(index).is_some_and(|s| s.read_only)
    }
    fn nat(&self) -> bool {
        self.nat
    }
    fn rosetta(&self) -> bool {
        self.rosetta
    }
    fn relay_socket(&self) -> String {
        self.relay_socket.display().to_string()
    }
    fn console_log(&self) -> String {
        self.console_log.display().to_string()
    }
}

/// What a kernel file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An arm64 `Image` ("ARM\x64" at offset 0x38).
    Arm64Image,
    /// gzip, zstd, xz or lz4: VZLinuxBootLoader cannot boot it.
    Compressed,
    /// Anything else (an x86 bzImage, say); left to the framework.
    Other,
}

/// Reads the first bytes of `kernel` to tell its format.
pub fn kernel_format(kernel: &Path) -> std::io::Result<KernelFormat> {
    let mut head = [0u8; 64];
    let mut file = std::fs::File::open(kernel)?;
    let n = file.read(&mut head)?;
    let head = &head[..n];
    Ok(if head.len() >= 0x3c && &head[0x38..0x3c] == b"ARM\x64" {
        KernelFormat::Arm64Image
    } else if head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
        || head.starts_with(&[0x04, 0x22, 0x4d, 0x18])
    {
        KernelFormat::Compressed
    } else {
        KernelFormat::Other
    })
}

/// The generated glue's directory (Swift and C files for the package).
pub const GENERATED_DIR: &str = env!("BRIDGE_SWIFT_GENERATED_DIR");

/// A VM booted by Virtualization.framework (macOS only: the Swift side).
#[cfg(target_os = "macos")]
pub struct Vm {
    bridge: ffi::ffi::VMBridge,
}

#[cfg(target_os = "macos")]
impl Vm {
    /// Checks `spec` and boots the VM; on return its vsock relay serves.
    pub async fn start(spec: VmSpec) -> Result<Vm, SpecError> {
        spec.check()?;
        let bridge = ffi::ffi::VMBridge::new(spec);
        match bridge.start().await {
            Ok(()) => Ok(Vm { bridge }),
            Err(e) => Err(SpecError(format!("{e:?}: {}", bridge.last_error()))),
        }
    }

    /// Waits until the VM stops; says why.
    pub async fn wait(&self) -> String {
        self.bridge.wait_until_stopped().await
    }

    /// Asks the guest to stop (power button), then stops the VM.
    pub async fn stop(&self) -> Result<(), SpecError> {
        self.bridge
            .stop()
            .await
            .map_err(|e| SpecError(format!("{e:?}: {}", self.bridge.last_error())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> VmSpec {
        let kernel = dir.join("Image");
        let mut image = vec![0u8; 64];
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        std::fs::write(&kernel, image).unwrap();
        VmSpec {
            kernel,
            initramfs: dir.join("initramfs.img"),
            command_line: "console=hvc0 libcrun_shim.port=1024".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            disks: vec![Disk {
                path: "/var/lib/libcrun-shim/vms/dev/state.img".into(),
                read_only: false,
            }],
            shares: vec![Share {
                tag: "share0".into(),
                path: "/Users/me/src".into(),
                read_only: true,
            }],
            nat: true,
            rosetta: true,
            relay_socket: dir.join("vsock.sock"),
            console_log: dir.join("console.log"),
        }
    }

    #[test]
    fn swift_reads_what_rust_described() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path());
        s.check().unwrap();
        assert_eq!(s.disk_count(), 1);
        assert_eq!(s.disk_path(0), "/var/lib/libcrun-shim/vms/dev/state.img");
        assert!(!s.disk_read_only(0));
        assert_eq!(
            (s.share_tag(0), s.share_path(0)),
            ("share0".into(), "/Users/me/src".into())
        );
        assert!(s.share_read_only(0));
        // Out of range reads as empty, never a panic across the FFI.
        assert_eq!(s.share_tag(9), "");
        assert!(!s.disk_read_only(9));
        assert_eq!(s.memory_bytes(), 1 << 30);
    }

    #[test]
    fn what_the_framework_would_refuse_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path());
        s.relay_socket = PathBuf::from(format!("/{}", "x".repeat(120)));
        assert!(s.check().unwrap_err().0.contains("more than the 103"));
        let mut s = spec(dir.path());
        s.shares[0].tag = "t".repeat(37);
        assert!(s.check().unwrap_err().0.contains("1 to 36 bytes"));
        let mut s = spec(dir.path());
        std::fs::write(&s.kernel, [0x1f, 0x8b, 8, 0]).unwrap();
        assert!(s.check().unwrap_err().0.contains("gunzip it"));
        s.kernel = dir.path().join("missing");
        assert!(s.check().is_err());
    }

    #[test]
    fn the_glue_is_generated_for_swift() {
        let dir = Path::new(GENERATED_DIR);
        let swift = std::fs::read_to_string(
            dir.join("libcrun-shim-bridge-swift/libcrun-shim-bridge-swift.swift"),
        )
        .unwrap();
        // Swift implements VMBridge; its async start throws VmError.
        assert!(swift.contains("VmSpec"), "{swift}");
        assert!(swift.contains("throws(VmError)"), "{swift}");
        let header = std::fs::read_to_string(
            dir.join("libcrun-shim-bridge-swift/libcrun-shim-bridge-swift.h"),
        )
        .unwrap();
        assert!(header.contains("VmSpec$share_tag"), "{header}");
        assert!(dir.join("SwiftBridgeCore.swift").exists());
    }
}
