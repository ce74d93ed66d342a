//! The store on disk: content-addressed blobs, layers unpacked once each,
//! an index of images committed atomically, and leases that keep an
//! image's layers while containers use them.
//!
//! ```text
//! ROOT/index.json              images and leases (written, then renamed)
//! ROOT/blobs/sha256/HEX        manifests, configs, layer blobs as pulled
//! ROOT/layers/sha256/HEX       one layer (blob HEX) unpacked, with overlay whiteouts
//! ROOT/rootfs/HEX              an image's flattened root filesystem (GetRootfs)
//! ROOT/tmp/                    downloads and unpacks in progress
//! ```
//!
//! Nothing enters `blobs/`, `layers/` or `rootfs/` but by a rename of a
//! complete, verified file or directory; `tmp/` is emptied at open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reference;

/// What a container inherits from an image (its config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The default arguments.
    pub cmd: Vec<String>,
    /// Environment variables, KEY=VALUE.
    pub env: Vec<String>,
    /// The working directory ("" for none).
    pub working_dir: String,
    /// The user ("" for root).
    pub user: String,
    /// Declared ports, "PORT/PROTO".
    pub exposed_ports: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The stop signal ("" for the default).
    pub stop_signal: String,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The blob's digest ("sha256:...").
    pub digest: String,
    /// Its media type (compression).
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The digest of its config: the image id.
    pub id: String,
    /// The normalised references naming it.
    pub references: Vec<String>,
    /// The digest of the manifest it was pulled by.
    pub digest: String,
    /// The sum of its layers' blob sizes.
    pub size: u64,
    /// When it was built, if its config says.
    pub created: Option<std::time::SystemTime>,
    /// Its OS.
    pub os: String,
    /// Its architecture.
    pub architecture: String,
    /// What containers inherit.
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<Layer>,
    /// The containers using it (filled when read).
    #[serde(skip)]
    pub used_by: Vec<String>,
    /// Removed by force while containers still used it: kept for them, out
    /// of List, until the last lease goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) removed: bool,
}

impl Image {
    /// Digests of every blob the image needs: manifest, config, layers.
    fn blobs(&self) -> impl Iterator<Item = &str> {
        [self.digest.as_str(), self.id.as_str()]
            .into_iter()
            .chain(self.layers.iter().map(|l| l.digest.as_str()))
    }
}

/// What Remove did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// References removed.
    pub untagged: Vec<String>,
    /// Image ids deleted.
    pub deleted: Vec<String>,
    /// Bytes of blobs, layers and root filesystems freed.
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    /// By image id.
    images: BTreeMap<String, Image>,
    /// Container id -> image id.
    leases: BTreeMap<String, String>,
}

/// Options of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Registries (`host[:port]`) reached over plain HTTP besides loopback
    /// ones.
    pub insecure_registries: Vec<String>,
    /// The docker `config.json` credentials are read from when a pull
    /// brings none; `None` for none.
    pub docker_config: Option<PathBuf>,
    /// Layers downloaded at once by one pull.
    pub max_concurrent_downloads: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            insecure_registries: Vec::new(),
            docker_config: crate::auth::default_docker_config(),
            max_concurrent_downloads: 3,
        }
    }
}

/// The image store. Cheap to clone; every clone is the same store.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) options: StoreOptions,
    index: Mutex<Index>,
    /// Blobs pulls in progress need, with how many pulls need them: kept
    /// from garbage collection until the pull commits or fails.
    pinned: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hex part of a digest already checked.
fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl Store {
    /// Opens (creating if need be) the store at `root`, empties its `tmp/`
    /// and collects whatever nothing references (left by a crash).
    pub fn open(root: &Path, options: StoreOptions) -> Result<Store> {
        for dir in ["blobs/sha256", "layers/sha256", "rootfs", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        let tmp = root.join("tmp");
        for entry in read_dir(&tmp)? {
            remove_all(&entry)?;
        }
        let index_path = root.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::BadContent(format!("{} is corrupt: {e}", index_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(Error::io(format!("reading {}", index_path.display()), e)),
        };
        let store = Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                options,
                index: Mutex::new(index),
                pinned: Mutex::new(HashMap::new()),
            }),
        };
        store.sweep()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(hex(digest))
    }

    pub(crate) fn layer_path(&self, digest: &str) -> PathBuf {
        self.inner.root.join("layers/sha256").join(hex(digest))
    }

    fn rootfs_path(&self, image_id: &str) -> PathBuf {
        self.inner.root.join("rootfs").join(hex(image_id))
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// The images (without those removed by force and still in use).
    pub fn list(&self) -> Vec<Image> {
        let index = lock(&self.inner.index);
        index
            .images
            .values()
            .filter(|i| !i.removed)
            .map(|i| with_users(&index, i))
            .collect()
    }

    /// One image, by reference (`alpine`, `host:5000/app:v1`,
    /// `app@sha256:...`), image id (`sha256:...`, or 12 or more of its hex
    /// digits) or manifest digest.
    pub fn inspect(&self, reference: &str) -> Result<Image> {
        let index = lock(&self.inner.index);
        let id = resolve(&index, reference)?;
        Ok(with_users(&index, &index.images[&id]))
    }

    /// Removes `reference` from its image, and the image when no
    /// reference is left (an image id or digest removes every reference).
    /// An image containers use is refused unless `force`; forced, it leaves
    /// the list but keeps its layers until they are released. Blobs and
    /// layers nothing else uses are deleted.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Removed> {
        let mut removed = Removed::default();
        let garbage = {
            let mut index = lock(&self.inner.index);
            let id = resolve(&index, reference)?;
            let users = users(&index, &id);
            let by_reference = reference::parse(reference)
                .map(|r| reference::canonical(&r))
                .ok()
                .filter(|r| index.images[&id].references.contains(r));
            let image = index.images.get_mut(&id).expect("resolved");
            match by_reference {
                Some(r) if image.references.len() > 1 => {
                    image.references.retain(|x| *x != r);
                    removed.untagged.push(r);
                }
                _ => {
                    if !users.is_empty() && !force {
                        return Err(Error::InUse(format!(
                            "image {reference} is used by containers {}: delete them first, or force",
                            users.join(", ")
                        )));
                    }
                    removed.untagged.append(&mut image.references);
                    removed.deleted.push(id.clone());
                    if users.is_empty() {
                        index.images.remove(&id);
                    } else {
                        image.removed = true;
                    }
                }
            }
            self.save(&index)?;
            self.unreferenced(&index, &removed.deleted)
        };
        removed.reclaimed_bytes = self.delete(garbage);
        Ok(removed)
    }

    /// Leases `reference` to container `container`: its layers stay until
    /// [`Store::release`], even if the image is removed. Returns the image
    /// and its layer directories, top first (as overlayfs `lowerdir`
    /// wants them).
    pub fn lease(&self, container: &str, reference: &str) -> Result<(Image, Vec<PathBuf>)> {
        let mut index = lock(&self.inner.index);
        let id = resolve(&index, reference)?;
        let image = index.images[&id].clone();
        let layers = self.lower_dirs(&image);
        if index.leases.get(container) != Some(&id) {
            index.leases.insert(container.to_string(), id);
            self.save(&index)?;
        }
        Ok((with_users(&index, &image), layers))
    }

    /// The image and layer directories (top first) leased to `container`,
    /// if any.
    pub fn leased(&self, container: &str) -> Option<(Image, Vec<PathBuf>)> {
        let index = lock(&self.inner.index);
        let image = index.images.get(index.leases.get(container)?)?;
        Some((image.clone(), self.lower_dirs(image)))
    }

    /// An image's unpacked layer directories, top first (overlayfs'
    /// `lowerdir` order).
    fn lower_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.layer_path(&l.digest))
            .collect()
    }

    /// Ends `container`'s lease (idempotent); an image removed by force is
    /// deleted with its last lease. Returns the bytes freed.
    pub fn release(&self, container: &str) -> Result<u64> {
        let garbage = {
            let mut index = lock(&self.inner.index);
            let Some(id) = index.leases.remove(container) else {
                return Ok(0);
            };
            let gone =
                index.images.get(&id).is_some_and(|i| i.removed) && users(&index, &id).is_empty();
            if gone {
                index.images.remove(&id);
            }
            self.save(&index)?;
            if gone {
                self.unreferenced(&index, &[id])
            } else {
                Vec::new()
            }
        };
        Ok(self.delete(garbage))
    }

    /// The flattened root filesystem of an image (made on first use, kept
    /// until the image is deleted).
    pub fn rootfs(&self, reference: &str) -> Result<(PathBuf, Image)> {
        let image = self.inspect(reference)?;
        let path = self.rootfs_path(&image.id);
        if path.is_dir() {
            return Ok((path, image));
        }
        let tmp = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        for layer in &image.layers {
            let blob = self.blob_path(&layer.digest);
            let file = std::fs::File::open(&blob)
                .map_err(|e| Error::io(format!("opening {}", blob.display()), e))?;
            let reader = crate::unpack::decompress(
                &layer.media_type,
                std::io::BufReader::with_capacity(1 << 20, file),
            )?;
            crate::unpack::apply_layer(reader, tmp.path(), crate::unpack::Mode::Flatten)?;
        }
        set_mode(tmp.path(), 0o755)?;
        commit_dir(tmp, &path)?;
        Ok((path, image))
    }

    /// Records a pulled image under `reference` (moving the reference
    /// from any image that had it).
    pub(crate) fn commit(&self, mut image: Image, reference: String) -> Result<Image> {
        let mut index = lock(&self.inner.index);
        // An image left without a name is kept (Docker's "dangling" image):
        // its id still names it until it is removed.
        for other in index.images.values_mut() {
            if other.id != image.id {
                other.references.retain(|r| *r != reference);
            }
        }
        let stored = index.images.entry(image.id.clone()).or_insert_with(|| {
            image.references.clear();
            image.clone()
        });
        stored.removed = false;
        if !stored.references.contains(&reference) {
            stored.references.push(reference);
        }
        let committed = stored.clone();
        self.save(&index)?;
        Ok(with_users(&index, &committed))
    }

    /// Keeps blobs from garbage collection while a pull needs them.
    pub(crate) fn pin(&self, digests: &[String]) -> Pin<'_> {
        let mut pinned = lock(&self.inner.pinned);
        for d in digests {
            *pinned.entry(d.clone()).or_default() += 1;
        }
        Pin {
            store: self,
            digests: digests.to_vec(),
        }
    }

    fn save(&self, index: &Index) -> Result<()> {
        let path = self.inner.root.join("index.json");
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| Error::BadContent(format!("encoding the index: {e}")))?;
        write_atomic(&path, &bytes)
    }

    /// Blobs, layers and root filesystems of the images `deleted` that no
    /// image left and no pull in progress needs.
    fn unreferenced(&self, index: &Index, deleted: &[String]) -> Vec<PathBuf> {
        let kept: BTreeSet<&str> = index.images.values().flat_map(Image::blobs).collect();
        let pinned = lock(&self.inner.pinned);
        let mut garbage = Vec::new();
        for id in deleted {
            if index.images.contains_key(id) {
                continue;
            }
            garbage.push(self.rootfs_path(id));
        }
        // The deleted images' records are gone: what they used is whatever
        // on disk no remaining image names (found by a sweep of the
        // candidates only: blobs and layers named by nothing).
        for dir in ["blobs/sha256", "layers/sha256"] {
            for path in read_dir(&self.inner.root.join(dir)).unwrap_or_default() {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let digest = format!("sha256:{name}");
                if !kept.contains(digest.as_str()) && !pinned.contains_key(&digest) {
                    garbage.push(path);
                }
            }
        }
        garbage
    }

    /// Deletes `paths`; returns the bytes they held.
    fn delete(&self, paths: Vec<PathBuf>) -> u64 {
        let mut freed = 0;
        for path in paths {
            let size = disk_usage(&path);
            match remove_all(&path) {
                Ok(()) => freed += size,
                Err(e) => tracing::warn!("garbage collection: {e}"),
            }
        }
        freed
    }

    /// Deletes what nothing references (at open: no pull is in progress).
    fn sweep(&self) -> Result<()> {
        let garbage = {
            let index = lock(&self.inner.index);
            let ids: BTreeSet<String> = index.images.keys().map(|id| hex(id).to_string()).collect();
            let mut garbage = self.unreferenced(&index, &[]);
            for path in read_dir(&self.inner.root.join("rootfs"))? {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if !ids.contains(name) {
                    garbage.push(path);
                }
            }
            garbage
        };
        let freed = self.delete(garbage);
        if freed > 0 {
            tracing::info!(bytes = freed, "image store: removed unreferenced content");
        }
        Ok(())
    }
}

/// Blobs a pull needs, pinned until dropped.
#[derive(Debug)]
pub(crate) struct Pin<'a> {
    store: &'a Store,
    digests: Vec<String>,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut pinned = lock(&self.store.inner.pinned);
        for d in &self.digests {
            if let Some(n) = pinned.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    pinned.remove(d);
                }
            }
        }
    }
}

fn users(index: &Index, id: &str) -> Vec<String> {
    index
        .leases
        .iter()
        .filter(|(_, image)| *image == id)
        .map(|(container, _)| container.clone())
        .collect()
}

fn with_users(index: &Index, image: &Image) -> Image {
    let mut image = image.clone();
    image.used_by = users(index, &image.id);
    image
}

/// The id of the image `reference` names.
fn resolve(index: &Index, reference: &str) -> Result<String> {
    let live = || index.images.values().filter(|i| !i.removed);
    if reference.starts_with("sha256:") {
        reference::check_digest(reference)?;
        return live()
            .find(|i| i.id == reference || i.digest == reference)
            .map(|i| i.id.clone())
            .ok_or_else(|| Error::NotFound(format!("image {reference} not found")));
    }
    if reference.len() >= 12
        && reference.len() <= 64
        && reference.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let matches: Vec<_> = live()
            .filter(|i| hex(&i.id).starts_with(reference))
            .collect();
        match matches.as_slice() {
            [one] => return Ok(one.id.clone()),
            [] => {}
            _ => {
                return Err(Error::InvalidReference(format!(
                    "{reference} names several images"
                )));
            }
        }
    }
    let parsed = reference::parse(reference)?;
    let canonical = reference::canonical(&parsed);
    if let Some(image) = live().find(|i| i.references.contains(&canonical)) {
        return Ok(image.id.clone());
    }
    if let Some(digest) = parsed.digest() {
        // repo@digest names the image pulled by that digest, whatever tag.
        let repo = format!("{}/{}", parsed.registry(), parsed.repository());
        if let Some(image) = live().find(|i| {
            i.digest == digest
                && i.references.iter().any(|r| {
                    r.starts_with(&format!("{repo}:")) || r.starts_with(&format!("{repo}@"))
                })
        }) {
            return Ok(image.id.clone());
        }
    }
    Err(Error::NotFound(format!("image {canonical} not found")))
}

/// The paths in a directory.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    Ok(entries.flatten().map(|e| e.path()).collect())
}

/// Removes a file or a directory tree; a missing one is fine.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Bytes a file or tree takes on disk.
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// Moves a complete temporary directory to `dest`; if another writer got
/// there first, theirs stands (the content is the same) and ours goes.
pub(crate) fn commit_dir(tmp: tempfile::TempDir, dest: &Path) -> Result<()> {
    let from = tmp.keep();
    match std::fs::rename(&from, dest) {
        Ok(()) => Ok(()),
        Err(e)
            if dest.is_dir()
                && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) =>
        {
            remove_all(&from)
        }
        Err(e) => {
            let _ = remove_all(&from);
            Err(Error::io(
                format!("renaming {} to {}", from.display(), dest.display()),
                e,
            ))
        }
    }
}

/// Writes a file atomically: a temporary file in the same directory,
/// synced, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("creating a file in {}", dir.display()), e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("renaming to {}", path.display()), e.error))?;
    Ok(())
}
