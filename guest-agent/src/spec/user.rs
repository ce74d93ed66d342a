//! Resolving a container's user spec against the `/etc/passwd` and
//! `/etc/group` of its root filesystem, as Docker does.
//!
//! The root filesystem may be hostile: its files are opened with
//! `openat2(RESOLVE_IN_ROOT)`, so symbolic links resolve inside it, and only
//! regular files of bounded size are read.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, IoContext, Result};

/// The largest `/etc/passwd` or `/etc/group` read.
const MAX_DB_SIZE: u64 = 16 * 1024 * 1024;

/// A user spec resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups: those of `/etc/group` listing the user, when
    /// the spec names no group.
    pub additional_gids: Vec<u32>,
    /// The home directory of the user's `/etc/passwd` entry, if any.
    pub home: Option<String>,
}

/// Resolves `user` ("uid", "uid:gid", "name", "name:group", "uid:group",
/// "name:gid") against `rootfs`'s `/etc/passwd` and `/etc/group`.
///
/// Numeric ids need no entry. The gid defaults to the user's entry's, or 0
/// without one. As in Docker, supplementary groups come from `/etc/group`
/// only when no group is given. A missing file has no entries; a user or
/// group name without an entry is `NotFound`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(Error::InvalidArgument(format!(
            "invalid user {user:?}: expected uid, name, uid:gid or name:group"
        )));
    }

    let passwd = read_db(rootfs, "/etc/passwd")?;
    let (uid, entry) = match numeric_id(user_part)? {
        Some(uid) => (uid, passwd_entries(&passwd).find(|e| e.uid == uid)),
        None => {
            let entry = passwd_entries(&passwd)
                .find(|e| e.name == user_part)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "user {user_part:?} not found in {}/etc/passwd",
                        rootfs.display()
                    ))
                })?;
            (entry.uid, Some(entry))
        }
    };

    let (gid, additional_gids) = match (group_part, &entry) {
        (Some(group), _) => {
            let gid = match numeric_id(group)? {
                Some(gid) => gid,
                None => group_entries(&read_db(rootfs, "/etc/group")?)
                    .find(|g| g.name == group)
                    .map(|g| g.gid)
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "group {group:?} not found in {}/etc/group",
                            rootfs.display()
                        ))
                    })?,
            };
            (gid, Vec::new())
        }
        (None, Some(e)) => {
            let mut gids = Vec::new();
            for g in group_entries(&read_db(rootfs, "/etc/group")?) {
                if g.members.split(',').any(|m| m == e.name) && !gids.contains(&g.gid) {
                    gids.push(g.gid);
                }
            }
            (e.gid, gids)
        }
        (None, None) => (0, Vec::new()),
    };

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.to_string()).filter(|h| !h.is_empty()),
    })
}

/// The id `s` stands for when it is all digits; `None` for a name.
fn numeric_id(s: &str) -> Result<Option<u32>> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    // (uid_t) -1 is "no change" to setresuid(2), never an id.
    s.parse()
        .ok()
        .filter(|id| *id != u32::MAX)
        .map(Some)
        .ok_or_else(|| Error::InvalidArgument(format!("id {s:?} is out of range")))
}

/// Reads `path` (absolute, resolved inside `rootfs`); empty when missing.
fn read_db(rootfs: &Path, path: &str) -> Result<String> {
    let shown = || format!("{}{path}", rootfs.display());
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .context(|| format!("opening rootfs {}", rootfs.display()))?;
    // O_NONBLOCK: a FIFO planted there must not block the open.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let file = match nix::fcntl::openat2(&root, path, how) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(String::new()),
        Err(e) => return Err(Error::io(format!("opening {}", shown()), e.into())),
    };
    if !file
        .metadata()
        .context(|| format!("stat {}", shown()))?
        .is_file()
    {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            shown()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_DB_SIZE + 1)
        .read_to_end(&mut bytes)
        .context(|| format!("reading {}", shown()))?;
    if bytes.len() as u64 > MAX_DB_SIZE {
        return Err(Error::InvalidArgument(format!(
            "{} is larger than {MAX_DB_SIZE} bytes",
            shown()
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An `/etc/passwd` line: `name:password:uid:gid:gecos:home:shell`.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// The well-formed entries of an `/etc/passwd`.
fn passwd_entries(db: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    db.lines().filter_map(|line| {
        let mut fields = line.trim().split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        let home = fields.nth(1).unwrap_or_default();
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

/// An `/etc/group` line: `name:password:gid:member,member`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// The well-formed entries of an `/etc/group`.
fn group_entries(db: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    db.lines().filter_map(|line| {
        let mut fields = line.trim().split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let gid = fields.next()?.parse().ok()?;
        let members = fields.next().unwrap_or_default();
        Some(GroupEntry { name, gid, members })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
broken line
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
staff:x:50:daemon
";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn user(uid: u32, gid: u32, gids: &[u32], home: Option<&str>) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: gids.to_vec(),
            home: home.map(str::to_string),
        }
    }

    #[test]
    fn resolves_names_and_ids() {
        let root = rootfs();
        for (spec, expected) in [
            ("root", user(0, 0, &[10], Some("/root"))),
            ("0", user(0, 0, &[10], Some("/root"))),
            ("app", user(1000, 1000, &[10, 29], Some("/home/app"))),
            ("1000", user(1000, 1000, &[10, 29], Some("/home/app"))),
            ("app:audio", user(1000, 29, &[], Some("/home/app"))),
            ("app:7", user(1000, 7, &[], Some("/home/app"))),
            ("1000:wheel", user(1000, 10, &[], Some("/home/app"))),
            ("daemon", user(1, 1, &[50], Some("/usr/sbin"))),
            ("nohome", user(1001, 1001, &[], None)),
            // Numeric ids need no entry; the gid then defaults to 0.
            ("4242", user(4242, 0, &[], None)),
            ("4242:4343", user(4242, 4343, &[], None)),
            ("4242:staff", user(4242, 50, &[], None)),
        ] {
            assert_eq!(resolve(root.path(), spec).unwrap(), expected, "{spec}");
        }
    }

    #[test]
    fn unknown_names_are_not_found() {
        let root = rootfs();
        for (spec, named) in [
            ("nobody", "\"nobody\""),
            ("app:nogroup", "\"nogroup\""),
            ("1:x", "\"x\""),
        ] {
            match resolve(root.path(), spec) {
                Err(Error::NotFound(msg)) => assert!(msg.contains(named), "{msg}"),
                other => panic!("{spec}: expected NotFound, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_specs_are_invalid() {
        let root = rootfs();
        for spec in ["", ":", ":0", "app:", "99999999999", "0:99999999999"] {
            assert!(
                matches!(resolve(root.path(), spec), Err(Error::InvalidArgument(_))),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn missing_files_have_no_entries() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(empty.path(), "123").unwrap(),
            user(123, 0, &[], None)
        );
        assert_eq!(resolve(empty.path(), "0:5").unwrap(), user(0, 5, &[], None));
        assert!(matches!(
            resolve(empty.path(), "app"),
            Err(Error::NotFound(_))
        ));
        // /etc being a file is the same as no /etc/passwd.
        fs::write(empty.path().join("etc"), "").unwrap();
        assert_eq!(resolve(empty.path(), "7").unwrap(), user(7, 0, &[], None));
    }

    #[test]
    fn symlinks_do_not_leave_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("passwd"),
            "evil:x:666:666::/evil:/bin/sh\n",
        )
        .unwrap();
        let outside_passwd = outside.path().join("passwd");
        let escape = format!("{}/{}", "../".repeat(64), outside_passwd.display());
        for target in [outside_passwd.to_str().unwrap(), escape.as_str()] {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir(root.path().join("etc")).unwrap();
            std::os::unix::fs::symlink(target, root.path().join("etc/passwd")).unwrap();
            assert!(
                matches!(resolve(root.path(), "evil"), Err(Error::NotFound(_))),
                "followed {target}"
            );
            assert_eq!(
                resolve(root.path(), "666").unwrap(),
                user(666, 0, &[], None)
            );
        }
    }

    #[test]
    fn symlinks_inside_the_rootfs_resolve_against_it() {
        let root = rootfs();
        fs::rename(
            root.path().join("etc/passwd"),
            root.path().join("etc/passwd.real"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd.real", root.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve(root.path(), "app").unwrap().uid, 1000);
    }

    #[test]
    fn only_regular_files_are_read() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/passwd")).unwrap();
        match resolve(root.path(), "app") {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("etc/passwd"), "{msg}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        let fifo = tempfile::tempdir().unwrap();
        fs::create_dir(fifo.path().join("etc")).unwrap();
        nix::unistd::mkfifo(
            &fifo.path().join("etc/passwd"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(
            resolve(fifo.path(), "app"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
