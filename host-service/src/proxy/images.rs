//! ImageService: Pull places the image on an agent; List merges; Inspect
//! and Remove go to the agent named, or to the agents that hold it.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use libcrun_shim_proto::v1::image_service_client::ImageServiceClient;
use libcrun_shim_proto::v1::{self as pb, image_service_server::ImageService};
use tonic::{Code, Request, Response, Status};

use super::{RpcResult, Shared, answer, first_found, forward, forward_as};
use crate::agents::Agent;

/// Images, proxied.
#[derive(Debug, Clone)]
pub struct Images(pub Shared);

fn client(agent: &Agent) -> ImageServiceClient<tonic::transport::Channel> {
    ImageServiceClient::new(agent.channel()).max_decoding_message_size(agent.max_message_bytes())
}

fn not_found(reference: &str) -> Status {
    Status::not_found(format!("image {reference} not found"))
}

fn stamp(image: &mut pb::Image, agent: &str) {
    image.agent = agent.to_string();
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullImageProgress, Status>> + Send>>;

#[tonic::async_trait]
impl ImageService for Images {
    type PullStream = PullStream;

    async fn pull(&self, request: Request<pb::PullImageRequest>) -> RpcResult<PullStream> {
        let agent = self.0.pool.place(&request.get_ref().agent)?;
        let stream = client(&agent)
            .pull(forward(request))
            .await
            .map_err(|s| agent.record_failure(s))?
            .into_inner();
        let stream = stream.map(move |r| {
            r.map(|mut p| {
                if let Some(image) = p.image.as_mut() {
                    stamp(image, &agent.name);
                }
                p
            })
            .map_err(|s| agent.record_failure(s))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> RpcResult<pb::ListImagesResponse> {
        let agents = self.0.pool.select(&request.get_ref().agent)?;
        let calls = agents.iter().map(|agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { (agent, client(agent).list(r).await) }
        });
        let mut images = Vec::new();
        for (agent, result) in futures::future::join_all(calls).await {
            match answer(agent, result) {
                Ok(r) => images.extend(r.images.into_iter().map(|mut i| {
                    stamp(&mut i, &agent.name);
                    i
                })),
                Err(s) if s.code() == Code::Unavailable => {}
                Err(s) => return Err(s),
            }
        }
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectImageRequest>,
    ) -> RpcResult<pb::InspectImageResponse> {
        let (reference, agent) = (&request.get_ref().reference, &request.get_ref().agent);
        let (agent, mut found) = first_found(&self.0.pool, agent, not_found(reference), |agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { client(&agent).inspect(r).await }
        })
        .await?;
        if let Some(image) = found.image.as_mut() {
            stamp(image, &agent.name);
        }
        Ok(Response::new(found))
    }

    async fn get_rootfs(
        &self,
        request: Request<pb::GetRootfsRequest>,
    ) -> RpcResult<pb::GetRootfsResponse> {
        let (reference, agent) = (&request.get_ref().reference, &request.get_ref().agent);
        let (agent, mut found) = first_found(&self.0.pool, agent, not_found(reference), |agent| {
            let r = forward_as(&request, request.get_ref().clone());
            async move { client(&agent).get_rootfs(r).await }
        })
        .await?;
        if let Some(image) = found.image.as_mut() {
            stamp(image, &agent.name);
        }
        Ok(Response::new(found))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> RpcResult<pb::RemoveImageResponse> {
        let mut total = pb::RemoveImageResponse::default();
        let mut found = false;
        for agent in self.0.pool.select(&request.get_ref().agent)? {
            let r = forward_as(&request, request.get_ref().clone());
            match answer(&agent, client(&agent).remove(r).await) {
                Ok(r) => {
                    found = true;
                    total.untagged.extend(r.untagged);
                    total.deleted.extend(r.deleted);
                    total.reclaimed_bytes += r.reclaimed_bytes;
                }
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(s),
            }
        }
        if !found {
            return Err(not_found(&request.get_ref().reference));
        }
        Ok(Response::new(total))
    }
}
