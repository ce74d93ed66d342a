//! Bind mounts that share mounts both ways with the host (`shared` or
//! `rshared`: the CRI's Bidirectional propagation).
//!
//! The agent works in a mount namespace that is a one-way copy of the host's
//! (`libcrun_sys::namespace`): its copy of a host mount is a *slave* of it,
//! so a container's bind of that copy would receive the host's mounts but
//! never send its own back. Sharing the agent's whole namespace with the
//! host would leak every mount the agent makes, so only these binds get a
//! way back: before libcrun creates the container, the agent clones the
//! *host's* mount of the source (`open_tree(OPEN_TREE_CLONE)` in the mount
//! namespace the agent was started in; a clone of a shared mount is a peer
//! of it) and moves the clone onto a staging mount point in the container's
//! directory, `ROOT/containers/ID/propagation/N` (N: the index of the mount
//! in the config). The container's spec binds the staging mount point
//! instead of the source; libcrun's bind of it joins the same peer group,
//! with the container's root made `rshared` (see `spec`), so a mount made
//! in the container reaches the host, and the host's reach the container.
//! The source must be on a shared mount on the host (kubelet makes it so);
//! otherwise the create fails with FailedPrecondition.
//!
//! Ownership and crash-safety: the staging mounts are needed only while
//! libcrun sets up the container's mount namespace, so the agent makes them
//! right before each run's create (a restart included) and unmounts them
//! right after it, failed or not; Delete and `remove_leftovers` unmount any
//! left under the container's directory too. Every unmount first makes the
//! staging mount private, so that unmounting it never takes the mounts the
//! container made off the host (an unmount propagates to peers). A SIGKILL
//! of the agent between the two leaves a staging mount only in the dead
//! agent's mount namespace, which lives on while monitors started from it
//! do and goes with the last of them; a namespace's teardown does not
//! propagate unmounts, so the host keeps its mounts. A new agent starts in
//! a fresh namespace without it, and removing the container's directory
//! (Delete, or recovery of an unrecorded create) detaches the mount from
//! every namespace it is still in.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::Runtime;
use crate::error::{Error, IoContext, Result};
use crate::model::Mount;

/// The directory of a container's staging mount points.
const DIR: &str = "propagation";

/// Whether `m` is a bind mount whose mounts go back to the host.
fn is_shared_bind(m: &Mount) -> bool {
    m.is_bind() && m.options.iter().any(|o| o == "shared" || o == "rshared")
}

/// The staging mount point of the config's mount number `index`.
fn staging(dir: &Path, index: usize) -> PathBuf {
    dir.join(DIR).join(index.to_string())
}

/// Points the spec's binds of shared mounts at their staging mount points
/// in container directory `dir`.
pub(super) fn redirect(oci: &mut Spec, dir: &Path, mounts: &[Mount]) {
    let Some(oci_mounts) = oci.mounts_mut() else {
        return;
    };
    for (index, m) in mounts.iter().enumerate().filter(|(_, m)| is_shared_bind(m)) {
        if let Some(om) = oci_mounts.iter_mut().find(|om| {
            om.destination() == Path::new(&m.destination)
                && om.source().as_deref() == Some(Path::new(&m.source))
        }) {
            om.set_source(Some(staging(dir, index)));
        }
    }
}

/// A path as a C string.
fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {} has a NUL byte", path.display())))
}

/// The optional fields of the mount on `point` in this thread's mount
/// namespace (the topmost one), `None` when nothing is mounted there.
fn propagation_fields(point: &Path) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").ok()?;
    let point = point.to_string_lossy();
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mounted = fields.get(4)?.replace("\\040", " ") == point;
        mounted.then(|| {
            fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        })
    })
}

/// A detached clone of the mount of `source` (with the mounts under it if
/// `recursive`) as `namespace`, a mount namespace, sees it, or as this
/// thread does without one. Entering the namespace takes a short-lived
/// thread of its own (a thread sharing its filesystem attributes cannot).
fn clone_tree(
    namespace: Option<&OwnedFd>,
    source: &CString,
    recursive: bool,
) -> io::Result<OwnedFd> {
    let ns = namespace.map(|fd| fd.as_raw_fd());
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(ns) = ns {
                // SAFETY: unshare and setns change only this thread's
                // filesystem attributes and mount namespace; it ends below.
                let entered = unsafe {
                    libc::unshare(libc::CLONE_FS) == 0 && libc::setns(ns, libc::CLONE_NEWNS) == 0
                };
                if !entered {
                    return Err(io::Error::last_os_error());
                }
            }
            let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
            if recursive {
                flags |= libc::AT_RECURSIVE as libc::c_uint;
            }
            // SAFETY: open_tree reads a valid C string and returns a new
            // descriptor, owned below.
            let fd = unsafe {
                libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags)
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the descriptor was just returned to us.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the mount-cloning thread panicked")))
    })
}

/// Attaches detached mount `tree` on `target` in this thread's namespace.
fn move_onto(tree: &OwnedFd, target: &CString) -> io::Result<()> {
    // SAFETY: moves the detached tree `tree` names onto a valid path.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Lazily unmounts the topmost mount on `point`, made private first (with
/// the mounts under it) so that the unmount does not reach its peers: a
/// staging mount's peers are the host's mount and the container's, whose
/// submounts an unmount would otherwise take too.
pub(super) fn detach(point: &Path) -> Result<()> {
    let c = cstring(point)?;
    // SAFETY: changes the propagation of a mount point; the pointers are
    // valid (a failure shows in the unmount).
    unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| Error::io(format!("unmounting {}", point.display()), e.into()))
}

/// Unmounts whatever is mounted on `point` (see [`detach`]).
fn unmount(point: &Path) {
    while propagation_fields(point).is_some() {
        if detach(point).is_err() {
            return;
        }
    }
}

/// Unmounts the staging mounts of container directory `dir` (see the
/// module's doc), if any.
pub(super) fn unstage(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join(DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        unmount(&entry.path());
    }
}

impl Runtime {
    /// Makes the staging mounts of container `id`'s shared binds (see the
    /// module's doc); on failure leaves none.
    pub(super) fn stage(&self, id: &str, mounts: &[Mount]) -> Result<()> {
        let dir = self.store.container_dir(id);
        let host = self
            .options()
            .network
            .networking
            .durable_mount_namespace
            .as_deref();
        for (index, m) in mounts.iter().enumerate().filter(|(_, m)| is_shared_bind(m)) {
            let point = staging(&dir, index);
            if let Err(e) = stage_one(host, m, &point) {
                unstage(&dir);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Clones the host's mount of `m`'s source onto `point`.
fn stage_one(host: Option<&OwnedFd>, m: &Mount, point: &Path) -> Result<()> {
    std::fs::create_dir_all(point).context(|| format!("creating {}", point.display()))?;
    unmount(point);
    let recursive = !m.options.iter().any(|o| o == "bind");
    let tree = clone_tree(host, &cstring(Path::new(&m.source))?, recursive)
        .context(|| format!("cloning the host's mount of {}", m.source))?;
    move_onto(&tree, &cstring(point)?)
        .context(|| format!("mounting {} on {}", m.source, point.display()))?;
    let shared = propagation_fields(point).is_some_and(|f| f.contains("shared:"));
    if !shared {
        unmount(point);
        return Err(Error::FailedPrecondition(format!(
            "mount on {}: {} is not on a shared mount of the host, so mounts cannot propagate \
             back to it (Bidirectional/rshared); make it one (mount --make-rshared)",
            m.destination, m.source
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: &str, destination: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.into(),
            source: source.into(),
            kind: String::new(),
            options: options.iter().map(|o| o.to_string()).collect(),
            read_only: false,
        }
    }

    #[test]
    fn only_shared_binds_are_redirected() {
        let mounts = vec![
            mount("/a", "/in/a", &["rbind", "rprivate"]),
            mount("/b", "/in/b", &["rbind", "rshared"]),
            mount("/c", "/in/c", &["bind", "shared"]),
        ];
        let mut oci = Spec::default();
        let base = oci.mounts().clone().unwrap_or_default();
        let mut all = base.clone();
        for m in &mounts {
            let mut om = oci_spec::runtime::Mount::default();
            om.set_destination(m.destination.clone().into());
            om.set_source(Some(m.source.clone().into()));
            all.push(om);
        }
        oci.set_mounts(Some(all));
        let dir = Path::new("/state/containers/x");
        redirect(&mut oci, dir, &mounts);
        let sources: Vec<_> = oci.mounts().as_ref().unwrap()[base.len()..]
            .iter()
            .map(|m| m.source().clone().unwrap())
            .collect();
        assert_eq!(
            sources,
            [
                PathBuf::from("/a"),
                dir.join("propagation/1"),
                dir.join("propagation/2")
            ]
        );
    }
}
