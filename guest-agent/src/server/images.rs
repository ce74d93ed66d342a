//! ImageService over the runtime's image store.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use libcrun_shim_proto::v1::{self as pb, image_service_server::ImageService};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::RpcResult;
use super::convert;
use crate::error::Error;
use crate::runtime::Runtime;

/// The image service.
pub struct Images {
    runtime: Arc<Runtime>,
}

impl Images {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Images { runtime }
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullImageProgress, Status>> + Send>>;

/// Progress messages a slow client may have pending; newer ones replace
/// what it has not taken (a pull never waits for its client).
const PROGRESS_BUFFER: usize = 8;

#[tonic::async_trait]
impl ImageService for Images {
    type PullStream = PullStream;

    async fn pull(&self, request: Request<pb::PullImageRequest>) -> RpcResult<PullStream> {
        let request = convert::pull_request(request.into_inner())?;
        let (progress_tx, mut progress) = watch::channel(crun_shim_images::PullProgress::default());
        let (tx, rx) = mpsc::channel(PROGRESS_BUFFER);
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            let pull = runtime.pull_image(request, &progress_tx);
            tokio::pin!(pull);
            loop {
                tokio::select! {
                    result = &mut pull => {
                        let last = result
                            .map(|image| convert::pull_progress_to_proto(&progress.borrow(), Some(&image)))
                            .map_err(Status::from);
                        let _ = tx.send(last).await;
                        return;
                    }
                    // The client went away: the pull is abandoned (dropped).
                    () = tx.closed() => return,
                    Ok(()) = progress.changed() => {
                        let message = convert::pull_progress_to_proto(&progress.borrow_and_update(), None);
                        // A full buffer: this report is skipped, a later one says more.
                        let _ = tx.try_send(Ok(message));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list(&self, _: Request<pb::ListImagesRequest>) -> RpcResult<pb::ListImagesResponse> {
        Ok(Response::new(pb::ListImagesResponse {
            images: self
                .runtime
                .list_images()
                .iter()
                .map(convert::image_to_proto)
                .collect(),
        }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectImageRequest>,
    ) -> RpcResult<pb::InspectImageResponse> {
        let image = self
            .runtime
            .inspect_image(&request.into_inner().reference)?;
        Ok(Response::new(pb::InspectImageResponse {
            image: Some(convert::image_to_proto(&image)),
        }))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> RpcResult<pb::RemoveImageResponse> {
        let r = request.into_inner();
        let runtime = self.runtime.clone();
        let removed =
            tokio::task::spawn_blocking(move || runtime.remove_image(&r.reference, r.force))
                .await
                .map_err(|e| Error::Internal(format!("removing an image: {e}")))??;
        Ok(Response::new(pb::RemoveImageResponse {
            untagged: removed.untagged,
            deleted: removed.deleted,
            reclaimed_bytes: removed.reclaimed_bytes,
        }))
    }

    async fn get_rootfs(
        &self,
        request: Request<pb::GetRootfsRequest>,
    ) -> RpcResult<pb::GetRootfsResponse> {
        let (path, image) = self
            .runtime
            .image_rootfs(&request.into_inner().reference)
            .await?;
        Ok(Response::new(pb::GetRootfsResponse {
            path: path.display().to_string(),
            image: Some(convert::image_to_proto(&image)),
        }))
    }
}
