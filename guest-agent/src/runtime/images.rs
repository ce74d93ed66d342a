//! Images: the store of pulled images, and the root filesystems of
//! containers created from them (an overlay mount per container, made
//! before each run and removed at Delete).

use std::path::PathBuf;
use std::sync::Arc;

use crun_shim_images::overlay::Overlay;
use crun_shim_images::{Image, PullProgress, PullRequest, Removed};
use tokio::sync::watch;

use super::Runtime;
use crate::error::{Error, Result};
use crate::model::{ContainerConfig, RootSource};

impl Runtime {
    /// Pulls an image, reporting progress on `progress`.
    pub async fn pull_image(
        &self,
        request: PullRequest,
        progress: &watch::Sender<PullProgress>,
    ) -> Result<Image> {
        Ok(self.images.pull(request, progress).await?)
    }

    /// The images in the store.
    pub fn list_images(&self) -> Vec<Image> {
        self.images.list()
    }

    /// One image, by reference, id or digest.
    pub fn inspect_image(&self, reference: &str) -> Result<Image> {
        Ok(self.images.inspect(reference)?)
    }

    /// Removes an image reference (see `crun_shim_images::Store::remove`).
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Removed> {
        Ok(self.images.remove(reference, force)?)
    }

    /// An image's flattened root filesystem, made on first use.
    pub async fn image_rootfs(self: &Arc<Self>, reference: &str) -> Result<(PathBuf, Image)> {
        let images = self.images.clone();
        let reference = reference.to_string();
        tokio::task::spawn_blocking(move || images.rootfs(&reference))
            .await
            .map_err(|e| Error::Internal(format!("preparing a rootfs: {e}")))?
            .map_err(Error::from)
    }

    /// Leases the image of a container being created and mounts its
    /// overlay; returns the image and the rootfs path. `config` takes
    /// what it does not say from the image's config.
    pub(super) fn prepare_image_rootfs(
        &self,
        config: &mut ContainerConfig,
    ) -> Result<(Image, PathBuf)> {
        let RootSource::Image(reference) = &config.root else {
            return Err(Error::Internal("not a container of an image".into()));
        };
        let (image, lower) = self.images.lease(&config.id, reference)?;
        let overlay = Overlay::in_dir(&self.store.container_dir(&config.id), lower);
        overlay.mount()?;
        crate::spec::image::inherit(config, &image.config)?;
        Ok((image, overlay.target))
    }

    /// Mounts the overlay of a container of an image again if it is not
    /// (after an agent restart, before a new run).
    pub(super) fn remount_image_rootfs(&self, id: &str) -> Result<()> {
        if let Some((_, lower)) = self.images.leased(id) {
            Overlay::in_dir(&self.store.container_dir(id), lower).mount()?;
        }
        Ok(())
    }

    /// Removes a container's directory, after its overlay (if any) and its
    /// lease on its image.
    pub(super) fn discard_container_files(&self, id: &str) -> Result<()> {
        let dir = self.store.container_dir(id);
        Overlay::in_dir(&dir, Vec::new()).unmount()?;
        super::rootfs::remove_noted(&dir);
        super::mounts::unmount_given_rootfs(&dir)?;
        super::propagation::unstage(&dir);
        self.images.release(id)?;
        self.store.remove_container(id)
    }
}
