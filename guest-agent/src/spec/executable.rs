//! The executable a process runs, looked up in the container's root the
//! way libcrun will: a name with a slash as it is (relative to the working
//! directory), a bare name along the process's PATH. An executable that
//! cannot be resolved is the caller's to fix: `FailedPrecondition` naming
//! it, found before libcrun is asked (libcrun would say it only as text).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use super::{DEFAULT_PATH, env_key};
use crate::error::{Error, Result};

/// What a path in the container's root is.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// An executable regular file.
    Executable,
    /// Under a mount made when the container starts: not visible yet.
    Unseen,
    /// Nothing there.
    Missing,
    /// Something that cannot be run: why.
    NotExecutable(&'static str),
}

/// Checks that the program of `process` resolves to an executable file in
/// `root` (the container's root filesystem as this process sees it).
/// Paths under `mounts` (destinations of mounts not made yet) are taken on
/// trust. A root that cannot be opened leaves the verdict to libcrun.
pub fn check(root: &Path, process: &Process, mounts: &[PathBuf]) -> Result<()> {
    let program = process
        .args()
        .as_ref()
        .and_then(|args| args.first())
        .ok_or_else(|| Error::InvalidArgument("command is empty".into()))?;
    if program.is_empty() {
        return Err(Error::InvalidArgument("the program name is empty".into()));
    }
    let Ok(root_fd) = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    let cwd = process.cwd();
    let probe = |path: &Path| -> Probe {
        let path = cwd.join(path);
        if mounts
            .iter()
            .any(|m| m != Path::new("/") && path.starts_with(m))
        {
            return Probe::Unseen;
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let file = match nix::fcntl::openat2(&root_fd, &path, how) {
            Ok(fd) => std::fs::File::from(fd),
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Probe::Missing,
            Err(_) => return Probe::Unseen,
        };
        match file.metadata() {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Probe::Executable,
            Ok(m) if m.is_file() => Probe::NotExecutable("is not executable"),
            Ok(m) if m.is_dir() => Probe::NotExecutable("is a directory"),
            Ok(_) => Probe::NotExecutable("is not a regular file"),
            Err(_) => Probe::Unseen,
        }
    };
    if program.contains('/') {
        return match probe(Path::new(program)) {
            Probe::Executable | Probe::Unseen => Ok(()),
            Probe::Missing => Err(Error::FailedPrecondition(format!(
                "executable {program} not found in the container"
            ))),
            Probe::NotExecutable(why) => Err(Error::FailedPrecondition(format!(
                "executable {program} {why}"
            ))),
        };
    }
    let path_var = process
        .env()
        .iter()
        .flatten()
        .rev()
        .find(|e| env_key(e) == "PATH")
        .and_then(|e| e.split_once('='))
        .map_or(DEFAULT_PATH, |(_, v)| v);
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        match probe(&Path::new(dir).join(program)) {
            Probe::Executable | Probe::Unseen => return Ok(()),
            Probe::Missing | Probe::NotExecutable(_) => {}
        }
    }
    Err(Error::FailedPrecondition(format!(
        "executable {program:?} not found in the container's PATH ({path_var})"
    )))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn process(args: &[&str], env: &[&str]) -> Process {
        let mut p = Process::default();
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        p.set_env(Some(env.iter().map(|e| e.to_string()).collect()));
        p
    }

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("busybox"), b"").unwrap();
        std::fs::set_permissions(bin.join("busybox"), PermissionsExt::from_mode(0o755)).unwrap();
        symlink("busybox", bin.join("sh")).unwrap();
        // An absolute link resolves inside the root, not on the host.
        symlink("/bin/busybox", bin.join("abs")).unwrap();
        symlink("/nowhere", bin.join("dangling")).unwrap();
        std::fs::write(dir.path().join("data"), b"").unwrap();
        dir
    }

    fn refused(result: Result<()>, naming: &str) {
        match result {
            Err(Error::FailedPrecondition(m)) => assert!(m.contains(naming), "{m}"),
            other => panic!("{naming}: expected FailedPrecondition, got {other:?}"),
        }
    }

    #[test]
    fn resolves_paths_and_names_inside_the_root() {
        let root = rootfs();
        let path = ["PATH=/usr/bin:/bin"];
        for args in [["sh"], ["/bin/sh"], ["abs"], ["bin/busybox"]] {
            check(root.path(), &process(&args, &path), &[]).unwrap();
        }
        refused(
            check(root.path(), &process(&["/no/such/program"], &path), &[]),
            "/no/such/program",
        );
        refused(
            check(root.path(), &process(&["noprog"], &path), &[]),
            "\"noprog\"",
        );
        refused(
            check(root.path(), &process(&["dangling"], &path), &[]),
            "dangling",
        );
        refused(
            check(root.path(), &process(&["/data"], &path), &[]),
            "/data is not executable",
        );
        refused(
            check(root.path(), &process(&["/bin"], &path), &[]),
            "/bin is a directory",
        );
        // Not on this PATH.
        refused(
            check(root.path(), &process(&["sh"], &["PATH=/usr/bin"]), &[]),
            "PATH (/usr/bin)",
        );
        assert!(matches!(
            check(root.path(), &process(&[""], &path), &[]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn paths_under_mounts_made_at_start_are_taken_on_trust() {
        let root = rootfs();
        let mounts = [PathBuf::from("/opt/tools")];
        check(
            root.path(),
            &process(&["/opt/tools/run"], &["PATH=/bin"]),
            &mounts,
        )
        .unwrap();
        check(
            root.path(),
            &process(&["run"], &["PATH=/bin:/opt/tools"]),
            &mounts,
        )
        .unwrap();
        refused(
            check(
                root.path(),
                &process(&["/opt/run"], &["PATH=/bin"]),
                &mounts,
            ),
            "/opt/run",
        );
    }
}
