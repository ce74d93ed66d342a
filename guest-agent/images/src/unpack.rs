//! Applying a layer (a tar stream) to a directory, safely whatever it holds.
//!
//! Every entry's parent directory is opened with `openat2(2)` and
//! `RESOLVE_IN_ROOT`, relative to the target: symlinks in a parent path,
//! absolute or not, resolve as if the target were `/`, so no symlink a
//! layer plants (nor one already in the target) leads outside it. The entry
//! itself is then made with the `*at` calls on that directory, never
//! following a symlink in its last component. Paths are normalised
//! lexically first; a `..` that would climb above the root is refused
//! ([`Error::UnsafeEntry`]), as are hard links whose target is not in the
//! tree. Needs `/proc` (for extended attributes and recursive removal
//! through a directory descriptor), as the agent always has.
//!
//! Two modes, for the two ways the store uses layers:
//! - [`Mode::Overlay`]: a layer unpacked on its own, to be an overlayfs
//!   lower directory: OCI whiteouts become overlay whiteouts (a 0/0
//!   character device) and opaque markers the `trusted.overlay.opaque`
//!   attribute;
//! - [`Mode::Flatten`]: layers applied one over another into one plain
//!   directory: whiteouts remove what lower layers left.
//!
//! Ownership, modes (setuid bits too), modification times, extended
//! attributes (PAX `SCHILY.xattr.*`), hard links, symlinks and FIFOs are
//! kept. A layer's own `trusted.overlay.*` attributes are dropped: they
//! would steer the overlay mount.
//!
//! # Device nodes
//!
//! The store is on the host, so a device node a layer holds would be a
//! real device there (a 0666 `/dev/mem` look-alike, reachable by whoever
//! reaches the store). Only devices that every user of any Linux host may
//! already open are kept as nodes: the ones a container's device cgroup
//! allows by default (null, zero, full, random, urandom, tty, ptmx), and
//! the 0/0 character device, which is no device (overlayfs whiteouts).
//! Any other is stored inert, as rootless stores do: an empty regular file
//! of mode 0 whose `user.containers.override_stat` attribute records what
//! it was (`UID:GID:MODE:char-MAJOR-MINOR`, containers/storage's form, so
//! tools that present such files as devices, like fuse-overlayfs, can).
//! Inside the container such a path is that empty file; the container's
//! own `/dev` is made by the runtime, not taken from the image.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode as FileMode, SFlag, UtimensatFlags, fchmodat, makedev, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};
use tar::EntryType;

use crate::error::{Error, Result};

/// The prefix of an OCI whiteout file's name.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of an OCI opaque-directory marker.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs attribute marking a directory opaque.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The PAX record prefix of an extended attribute.
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Into an empty directory that will be an overlayfs lower layer:
    /// whiteouts are kept, in overlayfs' own form.
    Overlay,
    /// Over the layers below, in the same directory: whiteouts remove.
    Flatten,
}

/// What applying a layer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries applied (whiteouts included).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Extended attributes that could not be kept: refused by the file
    /// system, or `trusted.overlay.*` ones from the layer.
    pub xattrs_skipped: u64,
    /// Device nodes stored inert (see the module's documentation).
    pub devices_inert: u64,
}

/// The attribute an inert device node records itself in.
pub const OVERRIDE_STAT_XATTR: &str = "user.containers.override_stat";

/// Character devices kept as nodes: (major, minor) of null, zero, full,
/// random, urandom, tty and ptmx, which every host's `/dev` offers to all
/// users, and 0/0, no device at all.
const HARMLESS_DEVICES: &[(u64, u64)] = &[
    (0, 0),
    (1, 3),
    (1, 5),
    (1, 7),
    (1, 8),
    (1, 9),
    (5, 0),
    (5, 2),
];

/// Wraps a layer blob in the decompressor its media type names: gzip,
/// zstd, or none (`…tar`). Other media types are [`Error::BadContent`].
pub fn decompress<'a>(
    media_type: &str,
    layer: impl io::BufRead + 'a,
) -> Result<Box<dyn Read + 'a>> {
    if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(layer)))
    } else if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        let decoder = zstd::stream::read::Decoder::with_buffer(layer)
            .map_err(|e| Error::io("starting a zstd decoder", e))?;
        Ok(Box::new(decoder))
    } else if media_type.ends_with(".tar") || media_type.ends_with(".tar.v1") {
        Ok(Box::new(layer))
    } else {
        Err(Error::BadContent(format!(
            "layer media type {media_type:?} is not supported (tar, gzip or zstd)"
        )))
    }
}

/// Applies one layer to `target` (an existing directory).
///
/// On error the target holds part of the layer: callers unpack into a
/// temporary directory and commit it only on success.
pub fn apply_layer(layer: impl Read, target: &Path, mode: Mode) -> Result<Unpacked> {
    let root = openat(
        nix::fcntl::AT_FDCWD,
        target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| Error::io(format!("opening {}", target.display()), e.into()))?;
    let mut applier = Applier {
        root,
        mode,
        done: Unpacked::default(),
        parent: None,
        this_layer: HashSet::new(),
        directories: Vec::new(),
        buffer: vec![0; 256 << 10],
    };
    let mut archive = tar::Archive::new(layer);
    let entries = archive
        .entries()
        .map_err(|e| Error::BadContent(format!("reading the layer: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::BadContent(format!("reading the layer: {e}")))?;
        applier.apply(entry)?;
    }
    applier.finish()?;
    Ok(applier.done)
}

/// The state of one layer being applied.
struct Applier {
    /// The target directory.
    root: OwnedFd,
    mode: Mode,
    done: Unpacked,
    /// The last parent directory opened, kept for the next entry (most
    /// entries share their predecessor's directory).
    parent: Option<(PathBuf, OwnedFd)>,
    /// Paths this layer made (Flatten mode), which an opaque marker keeps.
    this_layer: HashSet<PathBuf>,
    /// Directories and their modification times, set last: entries made
    /// in them change them.
    directories: Vec<(PathBuf, i64)>,
    buffer: Vec<u8>,
}

/// One entry's metadata, read from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Applier {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let Some(path) =
            normalise(Path::new(OsStr::from_bytes(&raw))).map_err(|reason| Error::UnsafeEntry {
                path: shown.clone(),
                reason,
            })?
        else {
            // The root itself ("./"): its metadata is the target's own.
            return Ok(());
        };
        self.done.entries += 1;
        let name = path
            .file_name()
            .expect("a normalised path has a last component");
        let name_str = name.to_string_lossy();

        if name_str == OPAQUE_MARKER {
            let parent = path.parent().unwrap_or(Path::new(""));
            return self.opaque(parent, &shown);
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_entry(&shown, "a whiteout without a name"));
            }
            return self.whiteout(&path.with_file_name(hidden), &shown);
        }

        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = self.open_parent(&dir, &shown)?;
        let keep = self.make(&mut entry, kind, &path, &shown, parent.as_fd())?;
        if keep {
            self.parent = Some((dir, parent));
        }
        self.remember(path);
        Ok(())
    }

    /// Makes one entry (not a whiteout) in `parent`. Returns whether
    /// `parent` is still the directory it was opened as.
    fn make<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        path: &Path,
        shown: &str,
        parent: BorrowedFd<'_>,
    ) -> Result<bool> {
        let name = path
            .file_name()
            .expect("a normalised path has a last component");
        let mut meta = read_meta(entry)?;
        // Whatever is there is replaced, but a directory over a directory
        // merges.
        let existing = lstat_at(parent, name);
        let is_dir = matches!(kind, EntryType::Directory);
        if let Some(existing) = existing {
            let existing_is_dir = existing.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !(is_dir && existing_is_dir) {
                remove_at(parent, name).map_err(|e| {
                    Error::io(format!("replacing {} in the layer", path.display()), e)
                })?;
            }
        }
        let at = |e: Errno| Error::io(format!("unpacking {}", path.display()), e.into());
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file =
                    create_new(parent, name, FileMode::from_bits_truncate(0o600)).map_err(at)?;
                loop {
                    let n = match entry.read(&mut self.buffer) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::BadContent(format!(
                                "reading {} from the layer: {e}",
                                path.display()
                            )));
                        }
                    };
                    file.write_all(&self.buffer[..n])
                        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                    self.done.bytes += n as u64;
                }
            }
            EntryType::Directory => {
                if existing.is_none() {
                    mkdirat(parent, name, FileMode::from_bits_truncate(0o700)).map_err(at)?;
                }
                self.directories.push((path.to_path_buf(), meta.mtime));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(shown, "a symlink without a target"))?;
                symlinkat(OsStr::from_bytes(&target), parent, name).map_err(at)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(shown, "a hard link without a target"))?;
                let target = normalise(Path::new(OsStr::from_bytes(&target)))
                    .map_err(|reason| unsafe_entry(shown, &reason))?
                    .ok_or_else(|| unsafe_entry(shown, "a hard link to the root"))?;
                let target_dir = self.resolve_dir(target.parent().unwrap_or(Path::new("")));
                let target_dir = target_dir.map_err(|_| {
                    unsafe_entry(
                        shown,
                        &format!("hard link target {} is not in the layer", target.display()),
                    )
                })?;
                let target_name = target.file_name().expect("a normalised path");
                linkat(&target_dir, target_name, parent, name, AtFlags::empty()).map_err(|e| {
                    unsafe_entry(shown, &format!("hard link to {}: {e}", target.display()))
                })?;
                // A hard link shares its target's metadata: nothing to set.
                return Ok(true);
            }
            EntryType::Char | EntryType::Block => {
                let (major, minor) = device(entry)?;
                let char = matches!(kind, EntryType::Char);
                if char && HARMLESS_DEVICES.contains(&(major, minor)) {
                    let dev = makedev(major, minor);
                    mknodat(
                        parent,
                        name,
                        SFlag::S_IFCHR,
                        FileMode::from_bits_truncate(0o600),
                        dev,
                    )
                    .map_err(at)?;
                } else {
                    // Inert: an empty file, root's and of mode 0 (set
                    // below), recording what it was.
                    let record = format!(
                        "{}:{}:{:04o}:{}-{major}-{minor}",
                        meta.uid,
                        meta.gid,
                        meta.mode & 0o7777,
                        if char { "char" } else { "block" }
                    );
                    tracing::debug!(path = %path.display(), %record, "device node stored inert");
                    drop(create_new(parent, name, FileMode::empty()).map_err(at)?);
                    meta = Meta {
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        mtime: meta.mtime,
                        xattrs: vec![(OVERRIDE_STAT_XATTR.into(), record.into_bytes())],
                    };
                    self.done.devices_inert += 1;
                }
            }
            EntryType::Fifo => {
                mknodat(
                    parent,
                    name,
                    SFlag::S_IFIFO,
                    FileMode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(at)?;
            }
            other => {
                return Err(unsafe_entry(
                    shown,
                    &format!("entry type {other:?} is not unpacked"),
                ));
            }
        }
        let file_mode = FileMode::from_bits_truncate(meta.mode & 0o7777);
        let is_symlink = matches!(kind, EntryType::Symlink);
        fchownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(at)?;
        if !is_symlink {
            // After chown, which clears setuid and setgid bits. The last
            // component was just made, not a symlink: following is safe.
            fchmodat(parent, name, file_mode, FchmodatFlags::FollowSymlink).map_err(at)?;
        }
        for (key, value) in &meta.xattrs {
            self.set_xattr(parent, name, key, value);
        }
        if !is_dir {
            let mtime = TimeSpec::new(meta.mtime, 0);
            utimensat(
                parent,
                name,
                &mtime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(at)?;
        }
        // A new directory or symlink may stand where a cached parent path
        // led before.
        Ok(!matches!(kind, EntryType::Directory | EntryType::Symlink))
    }

    /// Notes a path this layer made (only Flatten mode needs them).
    fn remember(&mut self, path: PathBuf) {
        if self.mode == Mode::Flatten {
            self.this_layer.insert(path);
        }
    }

    /// An OCI whiteout of `hidden`.
    fn whiteout(&mut self, hidden: &Path, shown: &str) -> Result<()> {
        let name = hidden.file_name().expect("a whiteout names something");
        let dir = hidden.parent().unwrap_or(Path::new(""));
        let parent = self.open_parent(dir, shown)?;
        let parent = parent.as_fd();
        let at = |e: io::Error| Error::io(format!("whiteout of {}", hidden.display()), e);
        match self.mode {
            Mode::Flatten => {
                if lstat_at(parent, name).is_some() {
                    remove_at(parent, name).map_err(at)?;
                }
            }
            Mode::Overlay => {
                if lstat_at(parent, name).is_some() {
                    remove_at(parent, name).map_err(at)?;
                }
                mknodat(
                    parent,
                    name,
                    SFlag::S_IFCHR,
                    FileMode::empty(),
                    makedev(0, 0),
                )
                .map_err(|e| at(e.into()))?;
            }
        }
        Ok(())
    }

    /// An OCI opaque marker in `dir`: what lower layers have there is
    /// hidden.
    fn opaque(&mut self, dir: &Path, shown: &str) -> Result<()> {
        let fd = self.make_dir(dir, shown)?;
        let at = |e: io::Error| Error::io(format!("making {} opaque", dir.display()), e);
        match self.mode {
            Mode::Overlay => {
                let file = std::fs::File::from(fd);
                xattr::FileExt::set_xattr(&file, OVERLAY_OPAQUE_XATTR, b"y").map_err(at)?;
            }
            Mode::Flatten => {
                let children = std::fs::read_dir(proc_path(fd.as_fd(), None)).map_err(at)?;
                for child in children {
                    let child = child.map_err(at)?;
                    let name = child.file_name();
                    if !self.this_layer.contains(&dir.join(&name)) {
                        remove_at(fd.as_fd(), &name).map_err(at)?;
                    }
                }
                self.parent = None;
            }
        }
        Ok(())
    }

    /// Sets the directories' modification times, now that nothing more
    /// is made in them.
    fn finish(&mut self) -> Result<()> {
        self.parent = None;
        for (path, mtime) in std::mem::take(&mut self.directories).into_iter().rev() {
            let Ok(dir) = self.resolve_dir(&path) else {
                // Removed or replaced by a later entry.
                continue;
            };
            let mtime = TimeSpec::new(mtime, 0);
            utimensat(
                &dir,
                OsStr::new("."),
                &mtime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| Error::io(format!("setting the time of {}", path.display()), e.into()))?;
        }
        Ok(())
    }

    /// The directory `dir` an entry goes in: the cached one if it is the
    /// same, else opened (and made, as 0755 directories, where the layer
    /// did not list it first). The caller puts it back in the cache.
    fn open_parent(&mut self, dir: &Path, shown: &str) -> Result<OwnedFd> {
        match self.parent.take() {
            Some((cached, fd)) if cached == dir => Ok(fd),
            _ => self.make_dir(dir, shown),
        }
    }

    /// Opens `dir` (inside the root), making what is missing of it where
    /// its symlinks lead (inside the root), as Docker and containerd do.
    fn make_dir(&self, dir: &Path, shown: &str) -> Result<OwnedFd> {
        let failed = |what: &Path, e: Errno| {
            unsafe_entry(
                shown,
                &format!("its directory {} cannot be made: {e}", what.display()),
            )
        };
        match self.resolve_dir(dir) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(failed(dir, e)),
        }
        // Where `dir` leads, with no symlink left in it; then each missing
        // directory made, every step opened without following symlinks.
        let resolved = self.scoped_path(dir).map_err(|e| failed(dir, e))?;
        let mut made = self
            .resolve_dir(Path::new(""))
            .map_err(|e| Error::io("opening the layer's root", e.into()))?;
        let open = |at: &OwnedFd, name: &OsStr| {
            openat(
                at,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
        };
        for name in &resolved {
            made = match open(&made, name) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(&made, name.as_os_str(), FileMode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(failed(dir, e)),
                    }
                    open(&made, name).map_err(|e| failed(dir, e))?
                }
                Err(e) => return Err(failed(dir, e)),
            };
        }
        Ok(made)
    }

    /// The components of where `path` leads inside the root, following
    /// its symlinks as `RESOLVE_IN_ROOT` would (an absolute target starts
    /// again at the root, `..` stops at it), but also through parts that
    /// do not exist yet.
    fn scoped_path(&self, path: &Path) -> std::result::Result<Vec<OsString>, Errno> {
        /// As the kernel's own limit on symlinks in one lookup.
        const MAX_LINKS: usize = 40;
        let mut pending: VecDeque<OsString> = path
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            match name.as_bytes() {
                b"/" | b"." | b"" => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(name);
            // Every earlier component is a directory, not a symlink: the
            // kernel follows nothing to reach this one.
            let here: PathBuf = resolved.iter().collect();
            match nix::fcntl::readlinkat(&self.root, &here) {
                Ok(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::ELOOP);
                    }
                    resolved.pop();
                    let target = PathBuf::from(target);
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    for component in target.components().rev() {
                        pending.push_front(component.as_os_str().to_os_string());
                    }
                }
                // Not a symlink, or not there yet (made by the caller).
                Err(Errno::EINVAL | Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(resolved)
    }

    /// Opens a directory of the tree, symlinks resolved inside the root.
    fn resolve_dir(&self, dir: &Path) -> std::result::Result<OwnedFd, Errno> {
        let path = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        loop {
            match openat2(&self.root, path, how) {
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    /// Sets one extended attribute, counting what cannot be kept.
    fn set_xattr(&mut self, parent: BorrowedFd<'_>, name: &OsStr, key: &[u8], value: &[u8]) {
        let key = OsStr::from_bytes(key);
        if key.as_bytes().starts_with(b"trusted.overlay.") {
            self.done.xattrs_skipped += 1;
            return;
        }
        // lsetxattr: the last component (the entry) is not followed.
        if let Err(e) = xattr::set(proc_path(parent, Some(name)), key, value) {
            tracing::debug!(?key, error = %e, "extended attribute not kept");
            self.done.xattrs_skipped += 1;
        }
    }
}

/// An entry's path, relative and without `.` or `..`; `None` for the root
/// itself. A `..` above the root is an error (the reason).
fn normalise(path: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("climbs above the root with \"..\"".to_string());
                }
            }
            Component::Normal(name) => out.push(name),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Reads an entry's metadata, PAX records included.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
    let bad =
        |what: &str, e: io::Error| Error::BadContent(format!("bad {what} in a layer entry: {e}"));
    let header = entry.header();
    let old = header.as_old();
    let mut meta = Meta {
        mode: u32::try_from(
            numeric(&old.mode, header.mode().map(u64::from)).map_err(|e| bad("mode", e))?,
        )
        .unwrap_or(0o644),
        uid: id(numeric(&old.uid, header.uid()).map_err(|e| bad("uid", e))?),
        gid: id(numeric(&old.gid, header.gid()).map_err(|e| bad("gid", e))?),
        mtime: i64::try_from(numeric(&old.mtime, header.mtime()).map_err(|e| bad("mtime", e))?)
            .unwrap_or(i64::MAX),
        xattrs: Vec::new(),
    };
    if let Some(extensions) = entry.pax_extensions().map_err(|e| bad("PAX records", e))? {
        for extension in extensions {
            let extension = extension.map_err(|e| bad("PAX record", e))?;
            let key = extension.key_bytes();
            let number = || {
                std::str::from_utf8(extension.value_bytes())
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
            };
            if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX.as_bytes()) {
                meta.xattrs
                    .push((name.to_vec(), extension.value_bytes().to_vec()));
            } else if key == b"uid" {
                meta.uid = number().map(id).unwrap_or(meta.uid);
            } else if key == b"gid" {
                meta.gid = number().map(id).unwrap_or(meta.gid);
            } else if key == b"mtime" {
                meta.mtime = number()
                    .and_then(|n| i64::try_from(n).ok())
                    .unwrap_or(meta.mtime);
            }
        }
    }
    Ok(meta)
}

/// A numeric header field: as the tar crate parses it, but a blank field
/// is 0, as Go's archive/tar (which builds most images) reads it.
fn numeric(field: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// A user or group id from a header, clamped to the kernel's range.
fn id(raw: u64) -> u32 {
    u32::try_from(raw).unwrap_or(u32::MAX - 1)
}

/// A device entry's (major, minor).
fn device<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(u64, u64)> {
    let header = entry.header();
    let major = header.device_major().ok().flatten();
    let minor = header.device_minor().ok().flatten();
    match (major, minor) {
        (Some(major), Some(minor)) => Ok((major.into(), minor.into())),
        _ => Err(Error::BadContent(
            "a device entry without a device number".to_string(),
        )),
    }
}

/// Creates `name` in `dir`, a new regular file (never through a symlink).
fn create_new(dir: BorrowedFd<'_>, name: &OsStr, mode: FileMode) -> nix::Result<std::fs::File> {
    openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map(std::fs::File::from)
}

/// The entry's file status, without following it; `None` when absent.
fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<nix::sys::stat::FileStat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

/// Removes `name` in `dir`, a whole tree if it is a directory (never
/// following a symlink).
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => std::fs::remove_dir_all(proc_path(dir, Some(name))),
        Err(e) => Err(e.into()),
    }
}

/// `/proc/self/fd/N[/name]`: a path to a descriptor's directory (the
/// magic link is followed, as every component but the last).
fn proc_path(dir: BorrowedFd<'_>, name: Option<&OsStr>) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if let Some(name) = name {
        path.push(name);
    }
    path
}

/// An unsafe-entry error.
fn unsafe_entry(path: &str, reason: &str) -> Error {
    Error::UnsafeEntry {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_climbs_refused() {
        let n = |p: &str| normalise(Path::new(p));
        assert_eq!(n("./a/b/").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(n("/etc/passwd").unwrap(), Some(PathBuf::from("etc/passwd")));
        assert_eq!(n("a/../b").unwrap(), Some(PathBuf::from("b")));
        assert_eq!(n("./").unwrap(), None);
        assert!(n("../x").is_err());
        assert!(n("a/../../x").is_err());
    }

    #[test]
    fn media_types_pick_the_decompressor() {
        let plain = b"plain".as_slice();
        let mut out = String::new();
        decompress("application/vnd.oci.image.layer.v1.tar", plain)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "plain");
        assert!(decompress("application/vnd.oci.image.layer.v1.tar+gzip", plain).is_ok());
        assert!(decompress("application/vnd.docker.image.rootfs.diff.tar.gzip", plain).is_ok());
        assert!(matches!(
            decompress("application/vnd.oci.image.layer.v1.tar+bzip2", plain),
            Err(Error::BadContent(_))
        ));
    }
}
