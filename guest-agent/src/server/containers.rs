//! ContainerService over the runtime.

use std::sync::Arc;

use libcrun_shim_proto::v1::{self as pb, container_service_server::ContainerService};
use tonic::{Request, Response, Status};

use super::RpcResult;
use super::convert::{self, container_to_proto};
use crate::error::Error;
use crate::runtime::{ListFilter, Runtime};
use crate::spec;
use crate::store::Record;

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
    fn listed(&self, r: pb::ListContainersRequest) -> Result<Vec<pb::Container>, Status> {
        let filter = ListFilter {
            statuses: r
                .statuses
                .iter()
                .map(|s| convert::status_from_proto(*s))
                .collect::<Result<_, _>>()?,
            labels: r.labels.into_iter().collect(),
        };
        Ok(self
            .runtime
            .list(&filter)
            .iter()
            .map(|r| self.container(r))
            .collect())
    }

    fn container(&self, record: &Record) -> pb::Container {
        let execs = self
            .runtime
            .inspect(&record.config.id)
            .map(|(_, e, _)| e)
            .unwrap_or_default();
        container_to_proto(record, execs)
    }
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
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        let record = self
            .runtime
            .create(convert::config_from_proto(config)?)
            .await?;
        Ok(Response::new(pb::CreateContainerResponse {
            container: Some(self.container(&record)),
        }))
    }

    async fn start(
        &self,
        request: Request<pb::StartContainerRequest>,
    ) -> RpcResult<pb::StartContainerResponse> {
        let record = self.runtime.start(&request.into_inner().id).await?;
        Ok(Response::new(pb::StartContainerResponse {
            container: Some(self.container(&record)),
        }))
    }

    async fn stop(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> RpcResult<pb::StopContainerResponse> {
        let r = request.into_inner();
        let timeout = convert::optional_duration(r.timeout.as_ref(), "timeout")?;
        let record = self
            .runtime
            .stop(&r.id, signal(&r.signal)?, timeout)
            .await?;
        Ok(Response::new(pb::StopContainerResponse {
            container: Some(self.container(&record)),
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
        let record = self.runtime.pause(&request.into_inner().id).await?;
        Ok(Response::new(pb::PauseContainerResponse {
            container: Some(self.container(&record)),
        }))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeContainerRequest>,
    ) -> RpcResult<pb::ResumeContainerResponse> {
        let record = self.runtime.resume(&request.into_inner().id).await?;
        Ok(Response::new(pb::ResumeContainerResponse {
            container: Some(self.container(&record)),
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
        let (record, execs, spec) = self.runtime.inspect(&request.into_inner().id)?;
        let mut container = container_to_proto(&record, execs);
        container.bundle = self
            .runtime
            .store()
            .container_dir(&record.config.id)
            .display()
            .to_string();
        Ok(Response::new(pb::InspectContainerResponse {
            container: Some(container),
            oci_spec_json: spec,
        }))
    }

    async fn wait(
        &self,
        request: Request<pb::WaitContainerRequest>,
    ) -> RpcResult<pb::WaitContainerResponse> {
        let exit = self.runtime.wait(&request.into_inner().id).await?;
        Ok(Response::new(pb::WaitContainerResponse {
            exit: Some(convert::exit_to_proto(&exit)),
        }))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateContainerRequest>,
    ) -> RpcResult<pb::UpdateContainerResponse> {
        let r = request.into_inner();
        let resources = convert::resources_from_proto(
            r.resources
                .ok_or_else(|| Status::invalid_argument("resources are required"))?,
        );
        let record = self.runtime.update(&r.id, &resources).await?;
        Ok(Response::new(pb::UpdateContainerResponse {
            container: Some(self.container(&record)),
        }))
    }
}
