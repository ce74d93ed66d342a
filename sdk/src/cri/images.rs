//! The CRI ImageService over crun-shimd's image store.

use tonic::{Request, Response, Status};

use super::Cri;
use super::error::{CriError, CriResult};
use super::proto::{self, image_service_server::ImageService};
use crate::{Error, ImageInfo, PullOptions};

impl Cri {
    /// The image `image` names (a reference, an id or a digest), if any.
    pub(crate) async fn find_image(&self, image: &str) -> CriResult<Option<ImageInfo>> {
        if image.is_empty() {
            return Err(CriError::InvalidArgument("no image given".into()));
        }
        match self.images.inspect(image).await {
            Ok(info) => Ok(Some(info)),
            Err(Error::NotFound(_)) => Ok(None),
            // A name the store cannot parse names no image it holds.
            Err(Error::InvalidArgument(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Pulls `image` (through its registry's mirror, if configured).
    pub(crate) async fn pull(
        &self,
        image: &str,
        auth: Option<&proto::AuthConfig>,
    ) -> CriResult<ImageInfo> {
        let mut options = PullOptions {
            mirror: self.config.mirror_for(image).map(str::to_string),
            ..Default::default()
        };
        if let Some(auth) = auth {
            let (user, password) = credentials(auth)?;
            options.username = user;
            options.password = password;
            if !auth.registry_token.is_empty() {
                options.registry_token = Some(auth.registry_token.clone());
            } else if !auth.identity_token.is_empty() {
                options.registry_token = Some(auth.identity_token.clone());
            }
        }
        Ok(self.images.pull_with(image, options, |_| {}).await?)
    }
}

/// The user name and password of `auth`: given apart, or as `auth`
/// (base64 of `user:password`).
fn credentials(auth: &proto::AuthConfig) -> CriResult<(Option<String>, Option<String>)> {
    use base64::Engine as _;
    if !auth.username.is_empty() || !auth.password.is_empty() {
        return Ok((Some(auth.username.clone()), Some(auth.password.clone())));
    }
    if auth.auth.is_empty() {
        return Ok((None, None));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| CriError::InvalidArgument("auth is not base64 of user:password".into()))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| CriError::InvalidArgument("auth is not base64 of user:password".into()))?;
    Ok((Some(user.into()), Some(password.into())))
}

/// A reference's repository: `name` of `name:tag` or `name@digest`.
fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

/// The CRI view of an image.
pub(crate) fn cri_image(image: &ImageInfo) -> proto::Image {
    let repo_tags: Vec<String> = image
        .references
        .iter()
        .filter(|r| !r.contains('@'))
        .cloned()
        .collect();
    let mut repo_digests: Vec<String> = image
        .references
        .iter()
        .filter(|r| r.contains('@'))
        .cloned()
        .collect();
    if !image.digest.is_empty() {
        for reference in &image.references {
            let digested = format!("{}@{}", repository(reference), image.digest);
            if !repo_digests.contains(&digested) {
                repo_digests.push(digested);
            }
        }
    }
    let (uid, username) = image_user(&image.config.user);
    proto::Image {
        id: image.id.clone(),
        repo_tags,
        repo_digests,
        size: image.size,
        uid: uid.map(|value| proto::Int64Value { value }),
        username,
        spec: Some(proto::ImageSpec {
            image: image.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// An image's user as the CRI reports it: a uid, or a name.
fn image_user(user: &str) -> (Option<i64>, String) {
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) if user.is_empty() => (None, String::new()),
        Err(_) => (None, user.to_string()),
    }
}

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        request: Request<proto::ListImagesRequest>,
    ) -> Result<Response<proto::ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        let images = match filter {
            Some(image) => self.find_image(&image).await?.into_iter().collect(),
            None => self.images.list().await.map_err(CriError::from)?,
        };
        Ok(Response::new(proto::ListImagesResponse {
            images: images.iter().map(cri_image).collect(),
        }))
    }

    async fn image_status(
        &self,
        request: Request<proto::ImageStatusRequest>,
    ) -> Result<Response<proto::ImageStatusResponse>, Status> {
        let spec = request.into_inner().image.unwrap_or_default();
        let image = self.find_image(&spec.image).await?;
        Ok(Response::new(proto::ImageStatusResponse {
            image: image.as_ref().map(cri_image),
            info: Default::default(),
        }))
    }

    async fn pull_image(
        &self,
        request: Request<proto::PullImageRequest>,
    ) -> Result<Response<proto::PullImageResponse>, Status> {
        let request = request.into_inner();
        let spec = request.image.unwrap_or_default();
        if spec.image.is_empty() {
            return Err(CriError::InvalidArgument("no image given".into()).into());
        }
        let image = self.pull(&spec.image, request.auth.as_ref()).await?;
        Ok(Response::new(proto::PullImageResponse {
            image_ref: image.id,
        }))
    }

    async fn remove_image(
        &self,
        request: Request<proto::RemoveImageRequest>,
    ) -> Result<Response<proto::RemoveImageResponse>, Status> {
        let spec = request.into_inner().image.unwrap_or_default();
        // By id, every reference goes with the image (the kubelet's image
        // garbage collector removes by id).
        let Some(image) = self.find_image(&spec.image).await? else {
            return Ok(Response::new(proto::RemoveImageResponse {}));
        };
        let names = if spec.image == image.id || image.references.is_empty() {
            let mut all = image.references.clone();
            if all.is_empty() {
                all.push(image.id.clone());
            }
            all
        } else {
            vec![spec.image.clone()]
        };
        // As the CRI has it, an image in use goes too: the kubelet removes
        // only images no pod needs, and the containers keep their layers.
        for name in names {
            match self.images.remove(&name, true).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(CriError::from(e).into()),
            }
        }
        Ok(Response::new(proto::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<proto::ImageFsInfoRequest>,
    ) -> Result<Response<proto::ImageFsInfoResponse>, Status> {
        let info = self.runtime.info().await.map_err(CriError::from)?;
        let usage = super::stats::filesystem_usage(&info);
        Ok(Response::new(proto::ImageFsInfoResponse {
            image_filesystems: usage.clone().into_iter().collect(),
            container_filesystems: usage.into_iter().collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_shown_with_tags_digests_and_user() {
        let image = ImageInfo {
            id: "sha256:abc".into(),
            references: vec![
                "registry.k8s.io/pause:3.9".into(),
                "k8s.gcr.io/pause:3.9".into(),
            ],
            digest: "sha256:def".into(),
            config: crate::ImageConfig {
                user: "1002:1002".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let cri = cri_image(&image);
        assert_eq!(cri.repo_tags.len(), 2);
        assert_eq!(
            cri.repo_digests,
            vec![
                "registry.k8s.io/pause@sha256:def".to_string(),
                "k8s.gcr.io/pause@sha256:def".to_string()
            ]
        );
        assert_eq!(cri.uid, Some(proto::Int64Value { value: 1002 }));
        assert_eq!(image_user("www-data"), (None, "www-data".into()));
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(repository("localhost:5000/a/b:1"), "localhost:5000/a/b");
        assert_eq!(repository("localhost:5000/a/b"), "localhost:5000/a/b");
    }

    #[test]
    fn auth_is_read_from_either_form() {
        use base64::Engine as _;
        let auth = proto::AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("me:secret"),
            ..Default::default()
        };
        assert_eq!(
            credentials(&auth).unwrap(),
            (Some("me".into()), Some("secret".into()))
        );
        let bad = proto::AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(credentials(&bad).is_err());
    }
}
