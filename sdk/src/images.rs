//! OCI images in the agents' image stores: pulled from registries where
//! the containers run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use libcrun_shim_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::config::RuntimeConfig;
use crate::convert;
use crate::error::{Error, Result};

/// The image stores of the runtime's agents.
///
/// ```no_run
/// # async fn demo() -> libcrun_shim::Result<()> {
/// use libcrun_shim::{ImageStore, PullProgress};
///
/// let store = ImageStore::new().await?;
/// let image = store
///     .pull("docker.io/library/alpine:latest", |p: &PullProgress| {
///         if p.total_bytes > 0 {
///             println!("{:.1}%", p.downloaded_bytes as f64 * 100.0 / p.total_bytes as f64);
///         }
///     })
///     .await?;
/// println!("pulled {} ({} bytes)", image.id, image.size);
/// for image in store.list().await? {
///     println!("{:?}", image.references);
/// }
/// let rootfs = store.get_rootfs("alpine:latest").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ImageStore {
    client: Client,
}

/// How to pull an image.
///
/// ```
/// let options = libcrun_shim::PullOptions { platform: Some("linux/arm64".into()), ..Default::default() };
/// assert!(options.username.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullOptions {
    /// Registry user name (with `password`).
    pub username: Option<String>,
    /// Registry password or access token.
    pub password: Option<String>,
    /// A bearer token, instead of a user name and password.
    pub registry_token: Option<String>,
    /// The platform to pick from a multi-platform image (`os/arch[/variant]`).
    /// `None`: the agent's.
    pub platform: Option<String>,
    /// A registry (`host[:port]`) to fetch from in place of the reference's
    /// own (a mirror serving the same repositories); the image keeps its
    /// name. A loopback mirror is reached over plain HTTP.
    pub mirror: Option<String>,
}

/// Progress of a pull, reported as it goes.
///
/// ```
/// let progress = libcrun_shim::PullProgress { downloaded_bytes: 5, total_bytes: 10, ..Default::default() };
/// assert_eq!(progress.percent(), Some(50.0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullProgress {
    /// The normalised reference being pulled.
    pub reference: String,
    /// Every layer, in manifest order.
    pub layers: Vec<LayerProgress>,
    /// Bytes downloaded so far.
    pub downloaded_bytes: u64,
    /// Bytes to download (known once the manifest is read).
    pub total_bytes: u64,
}

impl PullProgress {
    /// How far the download is, in percent; `None` before the size is known.
    ///
    /// ```
    /// assert_eq!(libcrun_shim::PullProgress::default().percent(), None);
    /// ```
    pub fn percent(&self) -> Option<f64> {
        (self.total_bytes > 0)
            .then(|| self.downloaded_bytes as f64 * 100.0 / self.total_bytes as f64)
    }
}

/// Progress of one layer.
///
/// ```
/// let layer = libcrun_shim::LayerProgress::default();
/// assert_eq!(layer.state, libcrun_shim::LayerState::Unknown);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayerProgress {
    /// The layer's digest.
    pub digest: String,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Its size (compressed).
    pub total_bytes: u64,
    /// What is happening to it.
    pub state: LayerState,
}

/// What is happening to a layer during a pull.
///
/// ```
/// assert_eq!(libcrun_shim::LayerState::AlreadyExists.to_string(), "already exists");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerState {
    /// Not reported.
    #[default]
    Unknown,
    /// Queued.
    Waiting,
    /// Downloading.
    Downloading,
    /// Downloaded and checked against its digest.
    Verified,
    /// Being unpacked.
    Extracting,
    /// Downloaded and unpacked.
    Done,
    /// Already in the store.
    AlreadyExists,
}

impl std::fmt::Display for LayerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerState::Unknown => "unknown",
            LayerState::Waiting => "waiting",
            LayerState::Downloading => "downloading",
            LayerState::Verified => "verified",
            LayerState::Extracting => "extracting",
            LayerState::Done => "done",
            LayerState::AlreadyExists => "already exists",
        })
    }
}

/// An image in a store.
///
/// ```no_run
/// # async fn demo(store: libcrun_shim::ImageStore) -> libcrun_shim::Result<()> {
/// let image = store.inspect("alpine").await?;
/// println!("{} {}/{} {:?}", image.id, image.os, image.architecture, image.config.cmd);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image id: the digest of its config.
    pub id: String,
    /// The references naming it.
    pub references: Vec<String>,
    /// The digest of the manifest it was pulled by.
    pub digest: String,
    /// Size of its layers in bytes (compressed).
    pub size: u64,
    /// When it was built.
    #[serde(with = "humantime_serde")]
    pub created: Option<SystemTime>,
    /// Its operating system.
    pub os: String,
    /// Its architecture.
    pub architecture: String,
    /// What containers inherit from it.
    pub config: ImageConfig,
    /// Its layers' digests, bottom first.
    pub layers: Vec<String>,
    /// The agent holding it (set by `crun-shimd`).
    pub agent: String,
    /// Containers using it.
    pub used_by: Vec<String>,
}

/// The parts of an image's configuration containers inherit.
///
/// ```
/// let config = libcrun_shim::ImageConfig::default();
/// assert!(config.entrypoint.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The default arguments.
    pub cmd: Vec<String>,
    /// Environment variables.
    pub env: Vec<String>,
    /// The working directory.
    pub working_dir: String,
    /// The user.
    pub user: String,
    /// Declared ports (`PORT/PROTO`).
    pub exposed_ports: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The stop signal.
    pub stop_signal: String,
}

/// What [`ImageStore::remove`] removed.
///
/// ```
/// let removed = libcrun_shim::RemovedImage::default();
/// assert_eq!(removed.reclaimed_bytes, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemovedImage {
    /// References removed.
    pub untagged: Vec<String>,
    /// Image ids deleted.
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub reclaimed_bytes: u64,
}

impl ImageStore {
    /// Connects to the default endpoint (or `CRUN_SHIM_HOST`), like
    /// [`ContainerRuntime::new`](crate::ContainerRuntime::new).
    pub async fn new() -> Result<ImageStore> {
        ImageStore::new_with_config(RuntimeConfig::from_env()).await
    }

    /// Connects as `config` says; pulls go to `config.agent` when set.
    pub async fn new_with_config(config: RuntimeConfig) -> Result<ImageStore> {
        Ok(ImageStore {
            client: Client::connect(&config).await?,
        })
    }

    pub(crate) fn from_client(client: Client) -> ImageStore {
        ImageStore { client }
    }

    /// Pulls `reference`, calling `progress` at each report, and returns
    /// the pulled image.
    pub async fn pull<F>(&self, reference: &str, progress: F) -> Result<ImageInfo>
    where
        F: FnMut(&PullProgress),
    {
        self.pull_with(reference, PullOptions::default(), progress)
            .await
    }

    /// [`ImageStore::pull`] with credentials or a platform.
    ///
    /// ```no_run
    /// # async fn demo(store: libcrun_shim::ImageStore) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::PullOptions;
    /// let options = PullOptions { platform: Some("linux/arm64".into()), ..Default::default() };
    /// store.pull_with("alpine", options, |_| {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn pull_with<F>(
        &self,
        reference: &str,
        options: PullOptions,
        mut progress: F,
    ) -> Result<ImageInfo>
    where
        F: FnMut(&PullProgress),
    {
        let auth = (options.username.is_some()
            || options.password.is_some()
            || options.registry_token.is_some())
        .then(|| pb::RegistryAuth {
            username: options.username.unwrap_or_default(),
            password: options.password.unwrap_or_default(),
            registry_token: options.registry_token.unwrap_or_default(),
        });
        let mut stream = self
            .client
            .images()
            .pull(pb::PullImageRequest {
                reference: reference.into(),
                auth,
                platform: options.platform.unwrap_or_default(),
                agent: self.client.agent(),
                mirror: options.mirror.unwrap_or_default(),
            })
            .await?
            .into_inner();
        while let Some(mut message) = stream.message().await? {
            let image = message.image.take();
            progress(&PullProgress::from(message));
            if let Some(image) = image {
                return Ok(image.try_into()?);
            }
        }
        Err(Error::Internal(format!(
            "the pull of {reference} ended without an image"
        )))
    }

    /// Lists the images (of every agent, on `crun-shimd`).
    pub async fn list(&self) -> Result<Vec<ImageInfo>> {
        let request = self.client.with_deadline(pb::ListImagesRequest {
            agent: self.client.agent(),
        });
        let images = self
            .client
            .images()
            .list(request)
            .await?
            .into_inner()
            .images;
        Ok(convert::all(images)?)
    }

    /// One image, by reference, id or digest.
    pub async fn inspect(&self, reference: &str) -> Result<ImageInfo> {
        let request = self.client.with_deadline(pb::InspectImageRequest {
            reference: reference.into(),
            agent: self.client.agent(),
        });
        let image = self
            .client
            .images()
            .inspect(request)
            .await?
            .into_inner()
            .image;
        Ok(convert::required(image, "image")?)
    }

    /// Removes an image reference (and the image when none is left).
    /// Without `force`, an image used by a container is refused with
    /// [`Error::FailedPrecondition`].
    ///
    /// ```no_run
    /// # async fn demo(store: libcrun_shim::ImageStore) -> libcrun_shim::Result<()> {
    /// let removed = store.remove("alpine:latest", false).await?;
    /// println!("freed {} bytes", removed.reclaimed_bytes);
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, reference: &str, force: bool) -> Result<RemovedImage> {
        let request = self.client.with_deadline(pb::RemoveImageRequest {
            reference: reference.into(),
            force,
            agent: self.client.agent(),
        });
        let removed = self.client.images().remove(request).await?.into_inner();
        Ok(RemovedImage {
            untagged: removed.untagged,
            deleted: removed.deleted,
            reclaimed_bytes: removed.reclaimed_bytes,
        })
    }

    /// The path, on the agent's machine, of a directory holding the image's
    /// root filesystem, shared by every caller: for
    /// [`RootSource::Rootfs`](crate::RootSource::Rootfs) with
    /// `read_only_rootfs`, on the same agent.
    pub async fn get_rootfs(&self, reference: &str) -> Result<PathBuf> {
        let request = self.client.with_deadline(pb::GetRootfsRequest {
            reference: reference.into(),
            agent: self.client.agent(),
        });
        let response = self.client.images().get_rootfs(request).await?.into_inner();
        Ok(response.path.into())
    }
}
