//! Layers applied for real, on this machine's file system: whiteouts in
//! both modes, ownership, modes, hard links, symlinks, extended
//! attributes, and crafted hostile layers that try to write outside their
//! target.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crun_shim_images::Error;
use crun_shim_images::unpack::{Mode, apply_layer, decompress};

/// One entry of a crafted layer.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Owned(&'a str, u32, u32, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Xattr(&'a str, &'a str, &'a [u8]),
}

/// Writes a raw path into a header: the tar crate refuses `..` and
/// absolute paths, which hostile layers have.
fn raw_name(header: &mut tar::Header, path: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            E::Dir(path, mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                raw_name(&mut header, path);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            }
            E::File(path, mode, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                raw_name(&mut header, path);
                header.set_cksum();
                builder.append(&header, *data).unwrap();
            }
            E::Owned(path, mode, uid, gid, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_uid((*uid).into());
                header.set_gid((*gid).into());
                header.set_size(data.len() as u64);
                raw_name(&mut header, path);
                header.set_cksum();
                builder.append(&header, *data).unwrap();
            }
            E::Symlink(path, target) | E::Hardlink(path, target) => {
                header.set_entry_type(if matches!(entry, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_mode(0o777);
                header.set_size(0);
                raw_name(&mut header, path);
                let link = &mut header.as_old_mut().linkname;
                link.fill(0);
                link[..target.len()].copy_from_slice(target.as_bytes());
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            }
            E::Xattr(path, key, value) => {
                let key = format!("SCHILY.xattr.{key}");
                builder
                    .append_pax_extensions([(key.as_str(), *value)])
                    .unwrap();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(0);
                raw_name(&mut header, path);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn apply(target: &Path, entries: &[E], mode: Mode) -> crun_shim_images::Result<()> {
    apply_layer(&layer(entries)[..], target, mode).map(|_| ())
}

/// Everything under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn files_directories_links_and_metadata_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let done = apply_layer(
        &layer(&[
            E::Dir("bin/", 0o755),
            E::File("bin/tool", 0o4755, b"#!/bin/sh\n"),
            E::Owned("home/user/notes", 0o600, 1000, 1001, b"mine"),
            E::Symlink("usr/bin", "/bin"),
            E::Hardlink("bin/tool-link", "bin/tool"),
            E::Xattr("caps", "user.test", b"value"),
        ])[..],
        t,
        Mode::Flatten,
    )
    .unwrap();
    assert_eq!(done.entries, 6);
    assert_eq!(done.bytes, 14);

    let tool = fs::metadata(t.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(tool.mtime(), 1_600_000_000);
    let link = fs::metadata(t.join("bin/tool-link")).unwrap();
    assert_eq!(link.ino(), tool.ino(), "a hard link, not a copy");
    assert_eq!(tool.nlink(), 2);

    let notes = fs::metadata(t.join("home/user/notes")).unwrap();
    assert_eq!((notes.uid(), notes.gid()), (1000, 1001));
    assert_eq!(notes.permissions().mode() & 0o777, 0o600);
    // A parent the layer did not list is made 0755.
    let home = fs::metadata(t.join("home")).unwrap();
    assert_eq!(home.permissions().mode() & 0o777, 0o755);

    assert_eq!(
        fs::read_link(t.join("usr/bin")).unwrap(),
        Path::new("/bin"),
        "symlinks are kept as they are"
    );
    let bin = fs::metadata(t.join("bin")).unwrap();
    assert_eq!(bin.mtime(), 1_600_000_000, "directory times set last");

    // tmpfs (where tempdir usually is) may refuse user.* attributes:
    // either kept or counted.
    match xattr::get(t.join("caps"), "user.test").unwrap_or(None) {
        Some(value) => assert_eq!(value, b"value"),
        None => assert_eq!(done.xattrs_skipped, 1),
    }
}

#[test]
fn flatten_applies_whiteouts_and_opaque_directories() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    apply(
        t,
        &[
            E::File("etc/group", 0o644, b"g"),
            E::File("etc/passwd", 0o644, b"p"),
            E::File("srv/old", 0o644, b"old"),
            E::Dir("srv/sub/", 0o755),
            E::File("var/tree/a/b", 0o644, b"b"),
        ],
        Mode::Flatten,
    )
    .unwrap();
    apply(
        t,
        &[
            E::File("etc/.wh.group", 0o644, b""),
            E::File("srv/new", 0o644, b"new"),
            E::File("srv/.wh..wh..opq", 0o644, b""),
            E::File("var/.wh.tree", 0o644, b""),
            // A file replaces a file, and a directory a file.
            E::File("etc/passwd", 0o644, b"p2"),
        ],
        Mode::Flatten,
    )
    .unwrap();
    assert_eq!(
        tree(t),
        ["etc", "etc/passwd", "srv", "srv/new", "var"],
        "whiteouts removed, the opaque directory kept only this layer's entry"
    );
    assert_eq!(fs::read(t.join("etc/passwd")).unwrap(), b"p2");
}

#[test]
fn overlay_mode_writes_overlay_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // trusted.* attributes need root, as the agent runs.
    apply(
        t,
        &[
            E::File("etc/.wh.group", 0o644, b""),
            E::Dir("srv/", 0o755),
            E::File("srv/.wh..wh..opq", 0o644, b""),
            E::File("srv/new", 0o644, b"new"),
        ],
        Mode::Overlay,
    )
    .unwrap();
    let whiteout = fs::symlink_metadata(t.join("etc/group")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert_eq!(
        xattr::get(t.join("srv"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(tree(t), ["etc", "etc/group", "srv", "srv/new"]);
}

#[test]
fn a_layer_cannot_climb_out_with_dot_dot() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    fs::create_dir(&target).unwrap();
    for path in ["../escaped", "a/../../escaped", "/../escaped"] {
        let err = apply(&target, &[E::File(path, 0o644, b"x")], Mode::Flatten).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{path}: {err}");
    }
    assert!(!outside.path().join("escaped").exists());
}

#[test]
fn symlinked_parents_stay_inside_the_target() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    fs::create_dir(&target).unwrap();
    let escape = outside.path().display().to_string();
    apply(
        &target,
        &[
            // Absolute and relative symlinks out, then files through them.
            E::Symlink("abs", &escape),
            E::File(&format!("abs/{}", "through-abs"), 0o644, b"x"),
            E::Symlink("rel", "../.."),
            E::File("rel/through-rel", 0o644, b"x"),
            E::Symlink("root", "/"),
            E::File("root/etc/through-root", 0o644, b"x"),
        ],
        Mode::Flatten,
    )
    .unwrap();
    // Nothing beside the target, and nothing in the real /etc.
    let beside: Vec<_> = fs::read_dir(outside.path()).unwrap().flatten().collect();
    assert_eq!(beside.len(), 1, "only the target itself");
    assert!(!Path::new("/etc/through-root").exists());
    assert!(target.join("through-rel").is_file());
    assert!(target.join("etc/through-root").is_file());
    assert!(
        target
            .join(escape.trim_start_matches('/'))
            .join("through-abs")
            .is_file()
    );
}

#[test]
fn a_symlink_already_in_the_target_is_contained_too() {
    // Flatten mode applies over earlier layers: their symlinks are as
    // hostile as the layer's own.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(outside.path(), target.join("planted")).unwrap();
    apply(&target, &[E::File("planted/x", 0o644, b"x")], Mode::Flatten).unwrap();
    let beside: Vec<_> = fs::read_dir(outside.path()).unwrap().flatten().collect();
    assert_eq!(beside.len(), 1, "only the target itself");
}

#[test]
fn hard_links_cannot_reach_outside() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, "secret").unwrap();
    let target = outside.path().join("target");
    fs::create_dir(&target).unwrap();
    let secret_path = secret.display().to_string();
    for entries in [
        vec![E::Hardlink("stolen", "../secret")],
        vec![E::Hardlink("stolen", &secret_path)],
        vec![
            E::Symlink("up", outside.path().to_str().unwrap()),
            E::Hardlink("stolen", "up/secret"),
        ],
    ] {
        let err = apply(&target, &entries, Mode::Flatten).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
        assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1, "not linked");
    }
}

#[test]
fn a_layer_cannot_steer_the_overlay_mount() {
    let dir = tempfile::tempdir().unwrap();
    let done = apply_layer(
        &layer(&[E::Xattr("f", "trusted.overlay.redirect", b"/elsewhere")])[..],
        dir.path(),
        Mode::Overlay,
    )
    .unwrap();
    assert_eq!(done.xattrs_skipped, 1);
    assert_eq!(
        xattr::get(dir.path().join("f"), "trusted.overlay.redirect").unwrap(),
        None
    );
}

#[test]
fn compressed_layers_round_trip() {
    use std::io::{BufReader, Write};
    let tar = layer(&[E::File("a", 0o644, b"hello")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    for (media_type, bytes) in [
        ("application/vnd.oci.image.layer.v1.tar+gzip", gz),
        ("application/vnd.oci.image.layer.v1.tar+zstd", zst),
        ("application/vnd.oci.image.layer.v1.tar", tar.clone()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let reader = decompress(media_type, BufReader::new(&bytes[..])).unwrap();
        apply_layer(reader, dir.path(), Mode::Flatten).unwrap();
        assert_eq!(
            fs::read(dir.path().join("a")).unwrap(),
            b"hello",
            "{media_type}"
        );
    }
    // Bytes that are not what the media type says.
    let dir = tempfile::tempdir().unwrap();
    let reader = decompress(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        BufReader::new(&tar[..]),
    )
    .unwrap();
    assert!(matches!(
        apply_layer(reader, dir.path(), Mode::Flatten),
        Err(Error::BadContent(_))
    ));
}

/// A layer's device nodes are inert on the host: a 0666 `/dev/mem`-like
/// node and a block device become empty mode-0 files recording what they
/// were; devices every host offers to all users stay nodes.
#[test]
fn device_nodes_are_stored_inert() {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, major, minor) in [
        ("dev/mem", tar::EntryType::Char, 1, 1),
        ("dev/sda", tar::EntryType::Block, 8, 0),
        ("dev/null", tar::EntryType::Char, 1, 3),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(6);
        header.set_size(0);
        header.set_mtime(1_600_000_000);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_path(path).unwrap();
        header.set_cksum();
        builder.append(&header, &[][..]).unwrap();
    }
    let layer = builder.into_inner().unwrap();
    for mode in [Mode::Overlay, Mode::Flatten] {
        let dir = tempfile::tempdir().unwrap();
        let done = apply_layer(&layer[..], dir.path(), mode).unwrap();
        assert_eq!(done.devices_inert, 2, "{mode:?}");
        for (name, record) in [("mem", "0:6:0666:char-1-1"), ("sda", "0:6:0666:block-8-0")] {
            let path = dir.path().join("dev").join(name);
            let meta = fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_file(), "{name} is no device");
            assert_eq!((meta.len(), meta.mode() & 0o7777), (0, 0), "{name}");
            if let Ok(Some(value)) = xattr::get(&path, "user.containers.override_stat") {
                assert_eq!(value, record.as_bytes(), "{name}");
            }
        }
        let null = fs::symlink_metadata(dir.path().join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    }
}
