//! Pulling an image: the manifest (resolved to one platform), the config,
//! then the layers, downloaded concurrently (bounded) and unpacked as each
//! arrives; every blob is checked against its digest and size before it is
//! committed, and the image enters the index last.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::reference::{self, Platform};
use crate::store::{Image, ImageConfig, Layer, Store, commit_dir};
use crate::unpack;

/// The manifest media types a pull accepts.
const MANIFEST_TYPES: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The largest manifest or config accepted, in bytes.
const MAX_JSON_BLOB: u64 = 8 << 20;

/// How often byte counts are reported (state changes are reported at once).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// The image reference, normalised like Docker's.
    pub reference: String,
    /// Credentials; else the docker config's, else anonymous.
    pub credentials: Option<Credentials>,
    /// The platform to pick from an index; else this machine's.
    pub platform: Option<Platform>,
    /// A registry (`host[:port]`) serving the reference's repositories, to
    /// fetch from instead of the reference's own; the image keeps its name.
    pub mirror: Option<String>,
}

/// Where a layer is in a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerState {
    /// Queued.
    #[default]
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

/// One layer's progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerProgress {
    /// The layer's digest.
    pub digest: String,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// The layer's size.
    pub total_bytes: u64,
    /// Its state.
    pub state: LayerState,
}

/// A pull's progress, as a watch channel carries it (the latest state
/// wins: a slow reader never slows the pull).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullProgress {
    /// The normalised reference.
    pub reference: String,
    /// The layers, in manifest order.
    pub layers: Vec<LayerProgress>,
}

impl PullProgress {
    /// Bytes downloaded, all layers.
    pub fn downloaded_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.downloaded_bytes).sum()
    }

    /// Bytes to download, all layers.
    pub fn total_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.total_bytes).sum()
    }
}

/// Reports progress: state changes at once, byte counts at most every
/// [`PROGRESS_INTERVAL`].
struct Reporter<'a> {
    tx: &'a watch::Sender<PullProgress>,
}

impl Reporter<'_> {
    fn state(&self, index: usize, state: LayerState) {
        self.tx.send_modify(|p| {
            let layer = &mut p.layers[index];
            layer.state = state;
            if matches!(state, LayerState::Verified | LayerState::AlreadyExists) {
                layer.downloaded_bytes = layer.total_bytes;
            }
        });
    }

    fn bytes(&self, index: usize, downloaded: u64) {
        self.tx.send_if_modified(|p| {
            p.layers[index].downloaded_bytes = downloaded;
            false
        });
    }

    fn flush(&self) {
        self.tx.send_modify(|_| {});
    }
}

impl Store {
    /// Pulls an image into the store, reporting progress on `progress`.
    /// Dropping the future abandons the pull: nothing half-done is kept.
    pub async fn pull(
        &self,
        request: PullRequest,
        progress: &watch::Sender<PullProgress>,
    ) -> Result<Image> {
        let mut reference = reference::parse(&request.reference)?;
        if let Some(mirror) = &request.mirror {
            reference::check_registry(mirror)?;
            reference.set_mirror_registry(mirror.clone());
        }
        let canonical = reference::canonical(&reference);
        let platform = request.platform.clone().unwrap_or_else(Platform::current);
        let client = self.client(reference.resolve_registry());
        let auth = match &request.credentials {
            Some(c) => c.to_registry_auth(),
            None => match &self.inner.options.docker_config {
                Some(config) => {
                    crate::auth::from_docker_config(config, reference.resolve_registry())?
                        .map_or(RegistryAuth::Anonymous, |c| c.to_registry_auth())
                }
                None => RegistryAuth::Anonymous,
            },
        };

        let (manifest_bytes, manifest_digest) = client
            .pull_manifest_raw(&reference, &auth, MANIFEST_TYPES)
            .await
            .map_err(|e| registry_error(&canonical, e))?;
        let (manifest_bytes, manifest_digest) = match parse_manifest(&manifest_bytes)? {
            OciManifest::Image(_) => (manifest_bytes, manifest_digest),
            OciManifest::ImageIndex(index) => {
                let entry = index
                    .manifests
                    .iter()
                    .find(|m| {
                        m.platform.as_ref().is_some_and(|p| {
                            platform.matches(
                                &p.os.to_string(),
                                &p.architecture.to_string(),
                                p.variant.as_deref(),
                            )
                        })
                    })
                    .ok_or_else(|| {
                        Error::NotFound(format!("{canonical} has no image for {platform}"))
                    })?;
                reference::check_digest(&entry.digest)?;
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                client
                    .pull_manifest_raw(&by_digest, &auth, MANIFEST_TYPES)
                    .await
                    .map_err(|e| registry_error(&canonical, e))?
            }
        };
        let OciManifest::Image(manifest) = parse_manifest(&manifest_bytes)? else {
            return Err(Error::BadContent(format!(
                "{canonical}: an index where an image manifest was expected"
            )));
        };
        reference::check_digest(&manifest_digest)?;
        reference::check_digest(&manifest.config.digest)?;
        for layer in &manifest.layers {
            reference::check_digest(&layer.digest)?;
            if layer.size < 0 {
                return Err(Error::BadContent(format!(
                    "layer {} has a negative size",
                    layer.digest
                )));
            }
        }
        let mut needed: Vec<String> = vec![manifest_digest.clone(), manifest.config.digest.clone()];
        needed.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        let _pin = self.pin(&needed);

        progress.send_replace(PullProgress {
            reference: canonical.clone(),
            layers: manifest
                .layers
                .iter()
                .map(|l| LayerProgress {
                    digest: l.digest.clone(),
                    total_bytes: l.size as u64,
                    ..Default::default()
                })
                .collect(),
        });
        let reporter = Reporter { tx: progress };

        // The config, in memory; parsed before any layer is fetched.
        let config_bytes = self
            .fetch_small(&client, &reference, &manifest.config)
            .await
            .map_err(|e| registry_error(&canonical, e))?;
        let config = parse_config(&config_bytes)?;

        // Layers: downloaded and unpacked concurrently. (A loop, not a
        // closure: the futures must stay Send for any lifetime.)
        let mut jobs = Vec::with_capacity(manifest.layers.len());
        for (i, layer) in manifest.layers.iter().enumerate() {
            jobs.push(self.fetch_layer(&client, &reference, layer, i, &reporter));
        }
        futures::stream::iter(jobs)
            .buffer_unordered(self.inner.options.max_concurrent_downloads.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| match e {
                Error::Registry(m) => Error::Registry(format!("{canonical}: {m}")),
                other => other,
            })?;
        reporter.flush();

        // Manifest and config blobs, then the index.
        self.write_blob(&manifest_digest, &manifest_bytes)?;
        self.write_blob(&manifest.config.digest, &config_bytes)?;
        let (created, os, architecture, config) = config;
        let image = Image {
            id: manifest.config.digest.clone(),
            references: Vec::new(),
            digest: manifest_digest,
            size: manifest.layers.iter().map(|l| l.size as u64).sum(),
            created,
            os,
            architecture,
            config,
            layers: manifest
                .layers
                .iter()
                .map(|l| Layer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size as u64,
                })
                .collect(),
            used_by: Vec::new(),
            removed: false,
        };
        self.commit(image, canonical)
    }

    /// A registry client for `registry`: plain HTTP for loopback and
    /// configured insecure registries, HTTPS otherwise.
    fn client(&self, registry: &str) -> Client {
        let insecure = reference::is_loopback_registry(registry)
            || self
                .inner
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry);
        ensure_crypto_provider();
        Client::new(ClientConfig {
            protocol: if insecure {
                ClientProtocol::HttpsExcept(vec![registry.to_string()])
            } else {
                ClientProtocol::Https
            },
            // Indexes are resolved here, to the platform asked for.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        })
    }

    /// A manifest or config blob, verified, in memory.
    async fn fetch_small(
        &self,
        client: &Client,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> std::result::Result<Vec<u8>, OciDistributionError> {
        if let Ok(bytes) = std::fs::read(self.blob_path(&descriptor.digest)) {
            return Ok(bytes);
        }
        if descriptor.size as u64 > MAX_JSON_BLOB {
            return Err(OciDistributionError::SpecViolationError(format!(
                "config {} of {} bytes is too large",
                descriptor.digest, descriptor.size
            )));
        }
        let mut bytes = Vec::with_capacity(descriptor.size.max(0) as usize);
        client.pull_blob(reference, descriptor, &mut bytes).await?;
        if bytes.len() as i64 != descriptor.size {
            return Err(OciDistributionError::SpecViolationError(format!(
                "blob {} has {} bytes, not {}",
                descriptor.digest,
                bytes.len(),
                descriptor.size
            )));
        }
        Ok(bytes)
    }

    /// Downloads (unless present) and unpacks (unless done) one layer.
    async fn fetch_layer(
        &self,
        client: &Client,
        reference: &Reference,
        layer: &OciDescriptor,
        index: usize,
        reporter: &Reporter<'_>,
    ) -> Result<()> {
        let unpacked = self.layer_path(&layer.digest);
        if unpacked.is_dir() {
            reporter.state(index, LayerState::AlreadyExists);
            return Ok(());
        }
        let blob = self.blob_path(&layer.digest);
        if blob.is_file() {
            reporter.state(index, LayerState::AlreadyExists);
        } else {
            reporter.state(index, LayerState::Downloading);
            self.download(client, reference, layer, index, reporter)
                .await?;
            reporter.state(index, LayerState::Verified);
        }
        reporter.state(index, LayerState::Extracting);
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let media_type = layer.media_type.clone();
        let tmp = tokio::task::spawn_blocking(move || -> Result<tempfile::TempDir> {
            let file = std::fs::File::open(&blob)
                .map_err(|e| Error::io(format!("opening {}", blob.display()), e))?;
            let reader = unpack::decompress(
                &media_type,
                std::io::BufReader::with_capacity(1 << 20, file),
            )?;
            unpack::apply_layer(reader, tmp.path(), unpack::Mode::Overlay)?;
            Ok(tmp)
        })
        .await
        .map_err(|e| Error::io("unpacking a layer", std::io::Error::other(e)))??;
        commit_dir(tmp, &unpacked)?;
        reporter.state(index, LayerState::Done);
        Ok(())
    }

    /// Streams a layer blob to a temporary file, checking its size and
    /// digest, then moves it into `blobs/`.
    async fn download(
        &self,
        client: &Client,
        reference: &Reference,
        layer: &OciDescriptor,
        index: usize,
        reporter: &Reporter<'_>,
    ) -> Result<()> {
        let registry = |e| registry_error(&layer.digest, e);
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temporary file", e))?;
        let file = tokio::fs::File::from_std(
            tmp.reopen()
                .map_err(|e| Error::io("reopening a temporary file", e))?,
        );
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        // The stream checks the digest at its end (an error then).
        let mut stream = client
            .pull_blob_stream(reference, layer)
            .await
            .map_err(registry)?;
        let expected = layer.size as u64;
        let mut received = 0u64;
        let mut reported = Instant::now();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<DigestError>())
                {
                    Some(mismatch) => {
                        Error::BadContent(format!("layer {}: {mismatch}", layer.digest))
                    }
                    None => Error::Registry(format!("downloading layer {}: {e}", layer.digest)),
                }
            })?;
            received += chunk.len() as u64;
            if received > expected {
                return Err(Error::BadContent(format!(
                    "layer {} is larger than the {expected} bytes its manifest says",
                    layer.digest
                )));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io("writing a layer", e))?;
            if reported.elapsed() >= PROGRESS_INTERVAL {
                reporter.bytes(index, received);
                reporter.flush();
                reported = Instant::now();
            }
        }
        if received != expected {
            return Err(Error::BadContent(format!(
                "layer {} has {received} bytes, not the {expected} its manifest says",
                layer.digest
            )));
        }
        out.flush()
            .await
            .map_err(|e| Error::io("writing a layer", e))?;
        reporter.bytes(index, received);
        let dest = self.blob_path(&layer.digest);
        tmp.persist(&dest)
            .map_err(|e| Error::io(format!("renaming to {}", dest.display()), e.error))?;
        Ok(())
    }

    /// Stores a small verified blob (manifest, config) unless present.
    fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        crate::store::write_atomic(&path, bytes)
    }
}

/// The ring crypto provider for registries over HTTPS (reqwest is built
/// without one of its own).
fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn parse_manifest(bytes: &[u8]) -> Result<OciManifest> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadContent(format!("malformed manifest: {e}")))
}

/// Created, os, architecture and what containers inherit, from an image
/// config blob.
fn parse_config(
    bytes: &[u8],
) -> Result<(Option<std::time::SystemTime>, String, String, ImageConfig)> {
    let parsed: oci_spec::image::ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadContent(format!("malformed image config: {e}")))?;
    let c = parsed.config().clone().unwrap_or_default();
    let config = ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        user: c.user().clone().unwrap_or_default(),
        exposed_ports: c.exposed_ports().clone().unwrap_or_default(),
        labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        stop_signal: c.stop_signal().clone().unwrap_or_default(),
    };
    // A malformed date is no reason to refuse an image: it has none then.
    let created = parsed
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(std::time::SystemTime::from);
    Ok((
        created,
        parsed.os().to_string(),
        parsed.architecture().to_string(),
        config,
    ))
}

/// A registry failure as the store's error, about `what`.
fn registry_error(what: &str, e: OciDistributionError) -> Error {
    use OciDistributionError as E;
    let not_found = |code: &OciErrorCode| {
        matches!(
            code,
            OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::BlobUnknown
                | OciErrorCode::NotFound
        )
    };
    match e {
        E::AuthenticationFailure(m) => {
            Error::Unauthenticated(format!("{what}: the registry refused the credentials: {m}"))
        }
        E::UnauthorizedError { .. } => {
            Error::Unauthenticated(format!("{what}: the registry asks for credentials"))
        }
        E::ImageManifestNotFoundError(m) => Error::NotFound(format!("{what}: {m}")),
        E::RegistryError { envelope, .. } => {
            let message = envelope
                .errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            if envelope.errors.iter().any(|e| not_found(&e.code)) {
                Error::NotFound(format!("{what} not found: {message}"))
            } else if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Error::Unauthenticated(format!("{what}: {message}"))
            } else {
                Error::Registry(format!("{what}: {message}"))
            }
        }
        E::ServerError {
            code: 404, message, ..
        } => Error::NotFound(format!("{what} not found: {message}")),
        E::ServerError {
            code: 401 | 403,
            message,
            ..
        } => Error::Unauthenticated(format!("{what}: {message}")),
        E::DigestError(d) => Error::BadContent(format!("{what}: {d}")),
        E::SpecViolationError(m)
        | E::ManifestParsingError(m)
        | E::VersionedParsingError(m)
        | E::UnsupportedMediaTypeError(m) => Error::BadContent(format!("{what}: {m}")),
        E::RequestError(r) => Error::Registry(format!("{what}: cannot reach the registry: {r}")),
        other => Error::Registry(format!("{what}: {other}")),
    }
}
