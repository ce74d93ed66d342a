//! What libcrun adds to a container's rootfs directory: the mount points
//! missing from it, which it creates (directories, or empty files for
//! files bind-mounted). A `--rootfs` directory is the user's: a container
//! leaves it as it found it, so these are noted in the container's
//! directory before the container is made ([`MADE_FILE`]) and removed with
//! it.

use std::path::{Component, Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::store;

/// The note of what the container's mount points add to its rootfs, in its
/// directory.
pub const MADE_FILE: &str = "rootfs-made.json";

/// The paths under `rootfs` that mounting on `destinations` creates: for
/// each destination, its missing part, shallowest first. A destination
/// reached through a symbolic link is left out (libcrun resolves it inside
/// the rootfs; where it lands is not known here).
pub fn missing_mount_points<'a>(
    rootfs: &Path,
    destinations: impl IntoIterator<Item = &'a Path>,
) -> Vec<PathBuf> {
    let mut made = Vec::new();
    for destination in destinations {
        let mut path = rootfs.to_path_buf();
        let mut missing = false;
        for component in destination.components() {
            match component {
                Component::Normal(name) => path.push(name),
                Component::RootDir | Component::CurDir => continue,
                _ => break,
            }
            if !missing {
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_symlink() => break,
                    Ok(_) => continue,
                    Err(_) => missing = true,
                }
            }
            if !made.contains(&path) {
                made.push(path.clone());
            }
        }
    }
    made
}

/// Notes `made` in container directory `dir`.
pub fn note(dir: &Path, made: &[PathBuf]) -> Result<()> {
    let path = dir.join(MADE_FILE);
    store::write_json(&path, &made).context(|| format!("writing {}", path.display()))
}

/// Removes what the note in container directory `dir` lists, deepest
/// first: empty directories and empty files only, and only where no
/// symbolic link was put on the way since.
pub fn remove_noted(dir: &Path) {
    let Ok(Some(made)) = store::read_json::<Vec<PathBuf>>(&dir.join(MADE_FILE)) else {
        return;
    };
    for path in made.iter().rev() {
        let Some(parent) = path.parent() else {
            continue;
        };
        if parent.canonicalize().ok().as_deref() != Some(parent) {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(path);
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(path);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_mounting_adds_is_noted_and_removed() {
        let rootfs = tempfile::tempdir().unwrap();
        let rootfs = rootfs.path().canonicalize().unwrap();
        std::fs::create_dir(rootfs.join("proc")).unwrap();
        std::fs::create_dir(rootfs.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", rootfs.join("link")).unwrap();
        let destinations = ["/proc", "/data/a/b", "/data/c", "/etc/x.conf", "/link/y"];
        let made = missing_mount_points(&rootfs, destinations.iter().map(Path::new));
        let expected: Vec<PathBuf> = ["data", "data/a", "data/a/b", "data/c", "etc/x.conf"]
            .iter()
            .map(|p| rootfs.join(p))
            .collect();
        assert_eq!(made, expected);

        let dir = tempfile::tempdir().unwrap();
        note(dir.path(), &made).unwrap();
        // As libcrun makes them; a file the container wrote stays.
        std::fs::create_dir_all(rootfs.join("data/a/b")).unwrap();
        std::fs::create_dir_all(rootfs.join("data/c")).unwrap();
        std::fs::write(rootfs.join("data/c/kept"), b"x").unwrap();
        std::fs::write(rootfs.join("etc/x.conf"), b"").unwrap();
        remove_noted(dir.path());
        assert!(!rootfs.join("data/a").exists());
        assert!(!rootfs.join("etc/x.conf").exists());
        assert!(rootfs.join("data/c/kept").exists(), "not empty: kept");
        assert!(rootfs.join("proc").exists() && rootfs.join("etc").exists());
    }
}
