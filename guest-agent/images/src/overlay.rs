//! A container's root filesystem: an overlayfs mount of an image's layers
//! (read-only) under the container's own writable layer. No copy.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directories of one container's overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Image layers, top first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (same filesystem as `upper`).
    pub work: PathBuf,
    /// Where the root filesystem appears.
    pub target: PathBuf,
}

impl Overlay {
    /// The overlay of `lower` with its upper, work and target directories
    /// under `dir` (`upper/`, `work/`, `rootfs/`).
    pub fn in_dir(dir: &Path, lower: Vec<PathBuf>) -> Overlay {
        Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: dir.join("rootfs"),
        }
    }

    /// Mounts the overlay (creating its directories) unless the target is a
    /// mount point already, in this mount namespace.
    pub fn mount(&self) -> Result<()> {
        for dir in [&self.upper, &self.work, &self.target] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        if is_mount_point(&self.target)? {
            return Ok(());
        }
        let empty;
        let lower: Vec<&Path> = if self.lower.is_empty() {
            // overlayfs wants a lower layer: an image without layers has an
            // empty one.
            empty = self.work.with_file_name("empty");
            std::fs::create_dir_all(&empty)
                .map_err(|e| Error::io(format!("creating {}", empty.display()), e))?;
            vec![empty.as_path()]
        } else {
            self.lower.iter().map(PathBuf::as_path).collect()
        };
        for dir in lower
            .iter()
            .chain([&self.upper.as_path(), &self.work.as_path()])
        {
            let text = dir.to_string_lossy();
            if text.contains([':', ',']) {
                return Err(Error::InvalidReference(format!(
                    "overlay directory {text:?} has ':' or ','"
                )));
            }
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower
                .iter()
                .map(|p| p.to_string_lossy())
                .collect::<Vec<_>>()
                .join(":"),
            self.upper.display(),
            self.work.display()
        );
        // The page the kernel copies mount options into.
        if options.len() >= 4096 {
            return Err(Error::BadContent(format!(
                "the overlay of {} layers needs {} bytes of mount options, over the kernel's 4095",
                lower.len(),
                options.len()
            )));
        }
        nix::mount::mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            Error::io(
                format!("mounting the overlay on {}", self.target.display()),
                e.into(),
            )
        })?;
        Ok(())
    }

    /// Unmounts the overlay if mounted (lazily: a process still inside
    /// keeps it until it leaves).
    pub fn unmount(&self) -> Result<()> {
        if !is_mount_point(&self.target)? {
            return Ok(());
        }
        match nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
            Err(e) => Err(Error::io(
                format!("unmounting {}", self.target.display()),
                e.into(),
            )),
        }
    }
}

/// Whether `path` is a mount point: on another device than its parent.
fn is_mount_point(path: &Path) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    let parent_meta = std::fs::metadata(parent)
        .map_err(|e| Error::io(format!("stat {}", parent.display()), e))?;
    Ok(meta.dev() != parent_meta.dev())
}
