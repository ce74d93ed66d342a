//! Mount-namespace set-up for processes that call libcrun.
//!
//! libcrun protects against CVE-2019-5736 (a container overwriting the
//! runtime's binary through `/proc/self/exe`) with a constructor that runs
//! before `main` in every program linking it: unless the program's binary
//! is a sealed memfd, on a read-only mount, or already a private copy, it
//! copies the binary to an anonymous file and re-executes itself from
//! there. For a helper started once per container, that copy costs time,
//! and disk or memory for as long as the helper runs. Starting the helper
//! from a read-only bind mount of its binary ([`read_only_bind`]) gives the
//! same protection without the copy: the container cannot write to it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling process into a new mount namespace that still
/// receives the host's mount events (`MS_SLAVE`), so that mounts made in it
/// stay private while mounts made on the host later are seen. Children
/// inherit it. Must be called while the process is single-threaded; needs
/// `CAP_SYS_ADMIN`.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare only changes this process's namespaces.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    let root = CString::new("/").expect("static path");
    // SAFETY: remounts "/" recursively as a slave; pointers are valid.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    })
}

/// Bind-mounts `path` read-only onto itself, in the current mount
/// namespace (call [`private_mount_namespace`] first to keep the mount
/// out of the host's). Programs linking libcrun started from it are not
/// copied and re-executed at start.
pub fn read_only_bind(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: bind-mounts an existing path onto itself; pointers are valid.
    check(unsafe {
        libc::mount(
            c.as_ptr(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })?;
    // SAFETY: makes that bind mount read-only.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        )
    })
}
