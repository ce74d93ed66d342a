//! Root filesystems given as mounts (containerd's snapshots): made by the
//! agent, in order, on `ROOT/containers/ID/rootfs` in its own mount
//! namespace, before each run (after an agent restart the namespace is new)
//! and unmounted at Delete.
//!
//! The agent mounts them rather than the client because the client's mounts
//! need not reach the agent: on a host whose `/` is not a shared mount, or
//! with the agent in a VM, they would not.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::Runtime;
use crate::error::{Error, Result};
use crate::model::RootfsMount;

/// The mount point of a container's given root filesystem.
fn target(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Whether `path` is a mount point in this namespace (bind mounts of the
/// same device included).
fn is_mounted(path: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let path = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| p.replace("\\040", " ") == path)
}

/// Splits mount(8) options into flags and filesystem data.
fn flags_and_data(options: &[String]) -> (MsFlags, bool, String) {
    let mut flags = MsFlags::empty();
    let mut read_only = false;
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => read_only = true,
            "rw" | "defaults" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "suid" | "dev" | "exec" | "async" | "atime" | "diratime" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, read_only, data.join(","))
}

/// Makes one mount on `target`.
fn mount_one(m: &RootfsMount, target: &Path) -> Result<()> {
    let (mut flags, read_only, data) = flags_and_data(&m.options);
    let bind = m.kind == "bind" || flags.contains(MsFlags::MS_BIND);
    if bind {
        flags |= MsFlags::MS_BIND;
    } else if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let fail = |e: nix::Error| {
        Error::io(
            format!(
                "mounting the root filesystem ({} {}) on {}",
                m.kind,
                m.source,
                target.display()
            ),
            e.into(),
        )
    };
    nix::mount::mount(
        Some(m.source.as_str()),
        target,
        (!bind).then_some(m.kind.as_str()),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(fail)?;
    if bind && read_only {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

impl Runtime {
    /// Mounts a container's given root filesystem unless it is mounted;
    /// returns its path.
    pub(super) fn mount_given_rootfs(&self, id: &str, mounts: &[RootfsMount]) -> Result<PathBuf> {
        let target = target(&self.store.container_dir(id));
        std::fs::create_dir_all(&target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
        if is_mounted(&target) {
            return Ok(target);
        }
        for (i, m) in mounts.iter().enumerate() {
            if let Err(e) = mount_one(m, &target) {
                // Leave nothing half-made.
                for _ in 0..i {
                    let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
                }
                return Err(e);
            }
        }
        Ok(target)
    }
}

/// Unmounts a container's given root filesystem, every layer of it.
pub(super) fn unmount_given_rootfs(dir: &Path) -> Result<()> {
    let target = target(dir);
    // No such path, no mount on it: most containers never had one, and the
    // mount table is not read for them (a few percent of a Delete's CPU on
    // a host with many mounts).
    let absent =
        std::fs::symlink_metadata(&target).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if absent {
        return Ok(());
    }
    while is_mounted(&target) {
        nix::mount::umount2(&target, MntFlags::MNT_DETACH)
            .map_err(|e| Error::io(format!("unmounting {}", target.display()), e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let options: Vec<String> = ["index=off", "ro", "lowerdir=/a:/b", "nosuid", "rprivate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, read_only, data) = flags_and_data(&options);
        assert!(read_only);
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(data, "index=off,lowerdir=/a:/b");
        let (flags, _, data) = flags_and_data(&["rbind".to_string(), "rw".to_string()]);
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(data.is_empty());
    }
}
