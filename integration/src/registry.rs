//! A real OCI registry for tests: Debian's `docker-registry` on a free
//! loopback port with its storage in a temporary directory (optionally
//! behind htpasswd basic auth), and test images built in memory and pushed
//! to it with oci-client.

use std::io::{self, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{ImageIndexEntry, OciImageIndex, OciImageManifest, Platform};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};

use crate::served::Served;

/// The registry binary Debian's `docker-registry` package installs.
const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    _process: Served,
    dir: tempfile::TempDir,
    host: String,
    auth: RegistryAuth,
}

impl Registry {
    /// Starts an open registry.
    pub fn start() -> io::Result<Registry> {
        Registry::start_inner(None, None)
    }

    /// Starts an open registry on 127.0.0.1:`port` (a port a VM's guest
    /// forward was set up for before the registry existed).
    pub fn start_on(port: u16) -> io::Result<Registry> {
        Registry::start_inner(None, Some(port))
    }

    /// Starts a registry that wants `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> io::Result<Registry> {
        Registry::start_inner(Some((user, password)), None)
    }

    fn start_inner(credentials: Option<(&str, &str)>, port: Option<u16>) -> io::Result<Registry> {
        let dir = tempfile::Builder::new().prefix("registry-test").tempdir()?;
        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("storage").display()
        );
        let auth = match credentials {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()?;
                if !out.status.success() {
                    return Err(io::Error::other(format!(
                        "htpasswd failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                std::fs::write(&htpasswd, out.stdout)?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    htpasswd.display()
                ));
                RegistryAuth::Basic(user.into(), password.into())
            }
            None => RegistryAuth::Anonymous,
        };
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(REGISTRY_BINARY);
        command.arg("serve").arg(&config_path);
        let process = Served::start_until(
            command,
            &dir.path().join("registry.log"),
            "docker-registry",
            || std::net::TcpStream::connect(&host).is_ok(),
        )?;
        Ok(Registry {
            _process: process,
            dir,
            host,
            auth,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The file in the registry's storage holding a blob (to corrupt it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn client() -> Client {
        static PROVIDER: std::sync::Once = std::sync::Once::new();
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
    }

    /// Pushes `image` as `repository:tag`; returns the manifest's digest.
    pub async fn push(&self, repository: &str, tag: &str, image: &TestImage) -> io::Result<String> {
        self.push_image(
            &Registry::client(),
            &self.reference(repository, tag)?,
            image,
        )
        .await
    }

    /// Pushes a multi-platform index as `repository:tag` over `images`
    /// (os, architecture, image; each pushed by digest first); returns the
    /// index's digest.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        images: &[(&str, &str, &TestImage)],
    ) -> io::Result<String> {
        let client = Registry::client();
        let mut manifests = Vec::new();
        for (os, architecture, image) in images {
            let digest = image.manifest_digest();
            self.push_image(&client, &self.reference(repository, &digest)?, image)
                .await?;
            manifests.push(ImageIndexEntry {
                media_type: oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.into(),
                digest,
                size: image.manifest_bytes().len() as i64,
                platform: Some(Platform {
                    architecture: (*architecture).into(),
                    os: (*os).into(),
                    os_version: None,
                    os_features: None,
                    variant: None,
                    features: None,
                }),
                annotations: None,
                artifact_type: None,
            });
        }
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.into()),
            manifests,
            artifact_type: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
        let digest = sha256(&bytes);
        self.push_manifest(
            &client,
            &self.reference(repository, tag)?,
            bytes,
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
        )
        .await?;
        Ok(digest)
    }

    /// Pushes the blobs of `image`, then its manifest as these very bytes.
    async fn push_image(
        &self,
        client: &Client,
        reference: &Reference,
        image: &TestImage,
    ) -> io::Result<String> {
        client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        for (bytes, _) in &image.layers {
            client
                .push_blob(reference, bytes.clone(), &sha256(bytes))
                .await
                .map_err(io::Error::other)?;
        }
        client
            .push_blob(reference, image.config.clone(), &image.id())
            .await
            .map_err(io::Error::other)?;
        self.push_manifest(
            client,
            reference,
            image.manifest_bytes(),
            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
        )
        .await?;
        Ok(image.manifest_digest())
    }

    async fn push_manifest(
        &self,
        client: &Client,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> io::Result<()> {
        client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        client
            .push_manifest_raw(
                reference,
                bytes,
                media_type.parse().map_err(io::Error::other)?,
            )
            .await
            .map_err(io::Error::other)?;
        Ok(())
    }

    fn reference(&self, repository: &str, tag_or_digest: &str) -> io::Result<Reference> {
        let sep = if tag_or_digest.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{}/{repository}{sep}{tag_or_digest}", self.host)
            .parse()
            .map_err(io::Error::other)
    }
}

/// The media type of zstd layers.
const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// An image built in memory: layers (tar bytes, compressed), and a config.
#[derive(Debug, Clone)]
pub struct TestImage {
    layers: Vec<(Vec<u8>, &'static str)>,
    config: Vec<u8>,
}

impl TestImage {
    /// An image of `layers` (each an uncompressed tar and how to compress
    /// it) whose config's `config` section is `config` (Entrypoint, Cmd,
    /// Env, WorkingDir...), for `architecture`.
    pub fn new(
        layers: Vec<(Vec<u8>, Compression)>,
        config: serde_json::Value,
        architecture: &str,
    ) -> TestImage {
        let diff_ids: Vec<String> = layers.iter().map(|(tar, _)| sha256(tar)).collect();
        let layers = layers
            .into_iter()
            .map(|(tar, compression)| match compression {
                Compression::None => (tar, oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE),
                Compression::Gzip => {
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(&tar).expect("gzip in memory");
                    (
                        gz.finish().expect("gzip in memory"),
                        oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
                    )
                }
                Compression::Zstd => (
                    zstd::encode_all(&tar[..], 3).expect("zstd in memory"),
                    ZSTD_LAYER,
                ),
            })
            .collect();
        let config = serde_json::json!({
            "created": "2026-01-02T03:04:05Z",
            "architecture": architecture,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        TestImage {
            layers,
            config: serde_json::to_vec(&config).expect("JSON"),
        }
    }

    /// The digests of its layer blobs, bottom first.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|(b, _)| sha256(b)).collect()
    }

    /// Its id: the digest of its config.
    pub fn id(&self) -> String {
        sha256(&self.config)
    }

    fn manifest(&self) -> OciImageManifest {
        let (layers, config) = self.layers_and_config();
        OciImageManifest::build(&layers, &config, None)
    }

    fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest()).expect("JSON")
    }

    /// The digest of its manifest as pushed.
    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest_bytes())
    }

    /// The layers as plain tars, bottom first.
    pub fn layer_tars(&self) -> io::Result<Vec<Vec<u8>>> {
        self.layers
            .iter()
            .map(|(bytes, media_type)| match *media_type {
                oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE => {
                    let mut tar = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&bytes[..]),
                        &mut tar,
                    )?;
                    Ok(tar)
                }
                ZSTD_LAYER => zstd::decode_all(&bytes[..]),
                _ => Ok(bytes.clone()),
            })
            .collect()
    }

    /// Its config (the image config JSON).
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&self.config).expect("JSON")
    }

    /// Writes the image as an OCI image layout in `dir` (created), its
    /// manifest named by each of `names` (`org.opencontainers.image.ref.name`).
    pub fn write_oci_layout(&self, dir: &Path, names: &[&str]) -> io::Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let put = |bytes: &[u8]| -> io::Result<String> {
            let digest = sha256(bytes);
            std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)?;
            Ok(digest)
        };
        for (bytes, _) in &self.layers {
            put(bytes)?;
        }
        put(&self.config)?;
        let manifest = self.manifest_bytes();
        let digest = put(&manifest)?;
        let manifests: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({
                    "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                    "digest": digest,
                    "size": manifest.len(),
                    "annotations": {"org.opencontainers.image.ref.name": name},
                })
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
    }

    /// Reads back an image [`write_oci_layout`](Self::write_oci_layout)
    /// wrote (its first manifest), checking every blob's digest.
    pub fn read_oci_layout(dir: &Path) -> io::Result<TestImage> {
        let get = |digest: &str| -> io::Result<Vec<u8>> {
            let bytes = std::fs::read(
                dir.join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )?;
            if sha256(&bytes) != digest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {digest} of {} is corrupt", dir.display()),
                ));
            }
            Ok(bytes)
        };
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} in {}", dir.display()),
            )
        };
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .ok_or_else(|| bad("no manifest"))?;
        let manifest: serde_json::Value = serde_json::from_slice(&get(digest)?)?;
        let config = get(manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| bad("no config"))?)?;
        let mut layers = Vec::new();
        for layer in manifest["layers"]
            .as_array()
            .ok_or_else(|| bad("no layers"))?
        {
            let media_type = match layer["mediaType"].as_str() {
                Some(oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE) => {
                    oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE
                }
                Some(ZSTD_LAYER) => ZSTD_LAYER,
                Some(oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE) => {
                    oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE
                }
                _ => return Err(bad("an unknown layer media type")),
            };
            layers.push((
                get(layer["digest"]
                    .as_str()
                    .ok_or_else(|| bad("a layer without digest"))?)?,
                media_type,
            ));
        }
        let image = TestImage { layers, config };
        if image.manifest_digest() != digest {
            return Err(bad("a manifest that does not rebuild the same"));
        }
        Ok(image)
    }

    fn layers_and_config(&self) -> (Vec<ImageLayer>, Config) {
        let layers = self
            .layers
            .iter()
            .map(|(bytes, media_type)| ImageLayer::new(bytes.clone(), media_type.to_string(), None))
            .collect();
        let config = Config::new(
            self.config.clone(),
            oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE.into(),
            None,
        );
        (layers, config)
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The sha256 digest of `bytes`, as `sha256:HEX`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tar layer of a directory tree (`dir`'s content at the root).
pub fn tar_of_dir(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

/// A tar layer of files given as (path, mode, content); a content
/// starting with "->" makes a symlink to the rest.
pub fn tar_of_files(files: &[(&str, u32, &[u8])]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        if let Some(target) = content.strip_prefix(b"->") {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(
                &mut header,
                path,
                std::str::from_utf8(target).map_err(io::Error::other)?,
            )?;
        } else if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, path, &[][..])?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, path, *content)?;
        }
    }
    builder.into_inner()
}
