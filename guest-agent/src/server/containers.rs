//! ContainerService over the runtime.

use std::sync::Arc;

use libcrun_shim_proto::v1::{self as pb, container_service_server::ContainerService};
use tonic::{Request, Response};

use super::RpcResult;
use super::convert::{self, ConversionError};
use crate::error::Error;
use crate::model::{ContainerConfig, Resources};
use crate::runtime::{ContainerView, ListFilter, Runtime};
use crate::spec;

/// The container lifecycle service.
pub struct Containers {
    runtime: Arc<Runtime>,
}

impl Containers {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Containers { runtime }
    }

    /// The containers a List request selects, for the wire.
    fn listed(&self, r: pb::ListContainersRequest) -> Result<Vec<pb::Container>, Error> {
        let filter = ListFilter {
            statuses: convert::statuses(&r.statuses)?,
            labels: r.labels.into_iter().collect(),
        };
        Ok(self.runtime.list(&filter).iter().map(Into::into).collect())
    }
}

/// A container for the wire.
fn container(view: &ContainerView) -> Option<pb::Container> {
    Some(view.into())
}

/// Parses an optional signal name ("" means the default).
fn signal(name: &str) -> Result<Option<i32>, Error> {
    if name.is_empty() {
        Ok(None)
    } else {
        spec::signal::parse(name).map(Some)
    }
}

#[tonic::async_trait]
impl ContainerService for Containers {
    async fn create(
        &self,
        request: Request<pb::CreateContainerRequest>,
    ) -> RpcResult<pb::CreateContainerResponse> {
        let config = request
            .into_inner()
            .config
            .ok_or(ConversionError::Missing("config"))
            .and_then(ContainerConfig::try_from)
            .map_err(Error::from)?;
        let view = self.runtime.create(config).await?;
        Ok(Response::new(pb::CreateContainerResponse {
            container: container(&view),
        }))
    }

    async fn start(
        &self,
        request: Request<pb::StartContainerRequest>,
    ) -> RpcResult<pb::StartContainerResponse> {
        let view = self.runtime.start(&request.into_inner().id).await?;
        Ok(Response::new(pb::StartContainerResponse {
            container: container(&view),
        }))
    }

    async fn stop(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> RpcResult<pb::StopContainerResponse> {
        let r = request.into_inner();
        let timeout = convert::optional_duration(r.timeout, "timeout").map_err(Error::from)?;
        let view = self
            .runtime
            .stop(&r.id, signal(&r.signal)?, timeout)
            .await?;
        Ok(Response::new(pb::StopContainerResponse {
            container: container(&view),
        }))
    }

    async fn kill(
        &self,
        request: Request<pb::KillContainerRequest>,
    ) -> RpcResult<pb::KillContainerResponse> {
        let r = request.into_inner();
        let sig = signal(&r.signal)?.unwrap_or(libc::SIGKILL);
        self.runtime.kill(&r.id, sig, r.all).await?;
        Ok(Response::new(pb::KillContainerResponse {}))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseContainerRequest>,
    ) -> RpcResult<pb::PauseContainerResponse> {
        let view = self.runtime.pause(&request.into_inner().id).await?;
        Ok(Response::new(pb::PauseContainerResponse {
            container: container(&view),
        }))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeContainerRequest>,
    ) -> RpcResult<pb::ResumeContainerResponse> {
        let view = self.runtime.resume(&request.into_inner().id).await?;
        Ok(Response::new(pb::ResumeContainerResponse {
            container: container(&view),
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteContainerRequest>,
    ) -> RpcResult<pb::DeleteContainerResponse> {
        let r = request.into_inner();
        self.runtime.delete(&r.id, r.force).await?;
        Ok(Response::new(pb::DeleteContainerResponse {}))
    }

    async fn list(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> RpcResult<pb::ListContainersResponse> {
        let containers = self.listed(request.into_inner())?;
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    type ListStreamStream = libcrun_shim_proto::serving::ListStream;

    async fn list_stream(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> RpcResult<Self::ListStreamStream> {
        let containers = self.listed(request.into_inner())?;
        Ok(Response::new(libcrun_shim_proto::serving::list_stream(
            containers,
        )))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectContainerRequest>,
    ) -> RpcResult<pb::InspectContainerResponse> {
        let inspection = self.runtime.inspect(&request.into_inner().id).await?;
        let mut container = pb::Container::from(&inspection.container);
        container.bundle = inspection.bundle.display().to_string();
        Ok(Response::new(pb::InspectContainerResponse {
            container: Some(container),
            oci_spec_json: inspection.oci_spec_json,
        }))
    }

    async fn wait(
        &self,
        request: Request<pb::WaitContainerRequest>,
    ) -> RpcResult<pb::WaitContainerResponse> {
        let exit = self.runtime.wait(&request.into_inner().id).await?;
        Ok(Response::new(pb::WaitContainerResponse {
            exit: Some((&exit).into()),
        }))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateContainerRequest>,
    ) -> RpcResult<pb::UpdateContainerResponse> {
        let r = request.into_inner();
        let resources = r
            .resources
            .map(Resources::from)
            .ok_or(Error::from(ConversionError::Missing("resources")))?;
        let view = self.runtime.update(&r.id, &resources).await?;
        Ok(Response::new(pb::UpdateContainerResponse {
            container: container(&view),
        }))
    }
}
