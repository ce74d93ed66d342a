//! The host's cgroup mode, and what libcrun needs on a hybrid host.
//!
//! libcrun supports cgroup v1 and cgroup v2 but refuses a *hybrid* host (v1
//! controllers under a tmpfs at `/sys/fs/cgroup`, plus a cgroup2 mount at
//! `/sys/fs/cgroup/unified`) as soon as that cgroup2 mount holds a
//! controller ("cgroups in hybrid mode not supported"). In a private mount
//! namespace where that cgroup2 mount is gone, the same host looks like a
//! plain v1 host and libcrun runs containers on v1. [`prepare_process`] does
//! exactly that on hybrid hosts and nothing on v1 or v2 hosts.

use std::ffi::CString;
use std::io;

/// How cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1 controllers only.
    V1,
    /// cgroup v1 controllers plus a cgroup2 mount at
    /// `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup v2 only (unified hierarchy at `/sys/fs/cgroup`).
    V2,
}

/// The cgroup mount point.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where hybrid hosts mount cgroup2.
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

fn fs_type(path: &str) -> io::Result<libc::c_long> {
    let c = CString::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `buf` is a plain struct statfs fills in.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid path and `buf` a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as libc::c_long)
}

/// Detects how cgroups are mounted as this process sees them.
pub fn detect() -> io::Result<CgroupMode> {
    if fs_type(CGROUP_ROOT)? == libc::CGROUP2_SUPER_MAGIC {
        return Ok(CgroupMode::V2);
    }
    match fs_type(HYBRID_UNIFIED) {
        Ok(t) if t == libc::CGROUP2_SUPER_MAGIC => Ok(CgroupMode::Hybrid),
        _ => Ok(CgroupMode::V1),
    }
}

/// What [`prepare_process`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preparation {
    /// The host's cgroup mode.
    pub host_mode: CgroupMode,
    /// The mode libcrun sees in this process from now on.
    pub effective_mode: CgroupMode,
    /// Whether the process moved to a private mount namespace.
    pub private_mount_namespace: bool,
}

/// Makes the calling process fit for libcrun's cgroup handling.
///
/// On a hybrid host, moves the process into a new mount namespace that
/// still receives the host's mount events (`MS_SLAVE`, so mounts made later
/// on the host, such as container root filesystems, are seen) and lazily
/// unmounts `/sys/fs/cgroup/unified` there, leaving plain cgroup v1. On v1
/// and v2 hosts it changes nothing. Children inherit the namespace.
///
/// Must be called while the process is single-threaded (unsharing the mount
/// namespace is refused otherwise) and before libcrun is first used
/// (libcrun caches the cgroup mode). Needs `CAP_SYS_ADMIN`.
pub fn prepare_process() -> io::Result<Preparation> {
    let host_mode = detect()?;
    if host_mode != CgroupMode::Hybrid {
        return Ok(Preparation {
            host_mode,
            effective_mode: host_mode,
            private_mount_namespace: false,
        });
    }
    crate::namespace::private_mount_namespace()?;
    let unified = CString::new(HYBRID_UNIFIED).expect("static path");
    // SAFETY: detaches the cgroup2 mount in this namespace only.
    if unsafe { libc::umount2(unified.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let effective_mode = detect()?;
    Ok(Preparation {
        host_mode,
        effective_mode,
        private_mount_namespace: true,
    })
}
