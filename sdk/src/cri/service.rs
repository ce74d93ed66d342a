//! The CRI RuntimeService: a thin adapter over [`Cri`]'s operations.

use tonic::{Request, Response, Status};

use super::Cri;
use super::error::CriError;
use super::proto::{self, runtime_service_server::RuntimeService};

/// The runtime's name in Version answers.
const RUNTIME_NAME: &str = "crun-shim";
/// The CRI version served.
const RUNTIME_API_VERSION: &str = "v1";

type Answer<T> = Result<Response<T>, Status>;

fn streaming_error(e: crun_shim_streaming::RequestError) -> Status {
    match e {
        crun_shim_streaming::RequestError::Invalid(_) => Status::invalid_argument(e.to_string()),
        crun_shim_streaming::RequestError::TooMany(_) => Status::resource_exhausted(e.to_string()),
    }
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(
        &self,
        _request: Request<proto::VersionRequest>,
    ) -> Answer<proto::VersionResponse> {
        Ok(Response::new(proto::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: crate::VERSION.into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<proto::RunPodSandboxRequest>,
    ) -> Answer<proto::RunPodSandboxResponse> {
        let config = request
            .into_inner()
            .config
            .ok_or_else(|| CriError::InvalidArgument("no pod sandbox config".into()))?;
        let pod_sandbox_id = self.run_pod_sandbox(config).await?;
        Ok(Response::new(proto::RunPodSandboxResponse {
            pod_sandbox_id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<proto::StopPodSandboxRequest>,
    ) -> Answer<proto::StopPodSandboxResponse> {
        self.stop_pod_sandbox(&request.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(proto::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<proto::RemovePodSandboxRequest>,
    ) -> Answer<proto::RemovePodSandboxResponse> {
        self.remove_pod_sandbox(&request.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(proto::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<proto::PodSandboxStatusRequest>,
    ) -> Answer<proto::PodSandboxStatusResponse> {
        Ok(Response::new(
            self.pod_sandbox_status(&request.into_inner().pod_sandbox_id)
                .await?,
        ))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<proto::ListPodSandboxRequest>,
    ) -> Answer<proto::ListPodSandboxResponse> {
        let items = self.list_pod_sandbox(request.into_inner().filter).await?;
        Ok(Response::new(proto::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<proto::CreateContainerRequest>,
    ) -> Answer<proto::CreateContainerResponse> {
        let request = request.into_inner();
        let config = request
            .config
            .ok_or_else(|| CriError::InvalidArgument("no container config".into()))?;
        let container_id = self
            .create_container(&request.pod_sandbox_id, config)
            .await?;
        Ok(Response::new(proto::CreateContainerResponse {
            container_id,
        }))
    }

    async fn start_container(
        &self,
        request: Request<proto::StartContainerRequest>,
    ) -> Answer<proto::StartContainerResponse> {
        self.start_container(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(proto::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<proto::StopContainerRequest>,
    ) -> Answer<proto::StopContainerResponse> {
        let request = request.into_inner();
        self.stop_container(&request.container_id, request.timeout)
            .await?;
        Ok(Response::new(proto::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<proto::RemoveContainerRequest>,
    ) -> Answer<proto::RemoveContainerResponse> {
        self.remove_container(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(proto::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<proto::ListContainersRequest>,
    ) -> Answer<proto::ListContainersResponse> {
        let containers = self.list_containers(request.into_inner().filter).await?;
        Ok(Response::new(proto::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<proto::ContainerStatusRequest>,
    ) -> Answer<proto::ContainerStatusResponse> {
        Ok(Response::new(
            self.container_status(&request.into_inner().container_id)
                .await?,
        ))
    }

    async fn update_container_resources(
        &self,
        request: Request<proto::UpdateContainerResourcesRequest>,
    ) -> Answer<proto::UpdateContainerResourcesResponse> {
        let request = request.into_inner();
        self.update_container_resources(&request.container_id, request.linux)
            .await?;
        Ok(Response::new(proto::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        request: Request<proto::ReopenContainerLogRequest>,
    ) -> Answer<proto::ReopenContainerLogResponse> {
        self.reopen_container_log(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(proto::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(
        &self,
        request: Request<proto::ExecSyncRequest>,
    ) -> Answer<proto::ExecSyncResponse> {
        let request = request.into_inner();
        Ok(Response::new(
            self.exec_sync(&request.container_id, request.cmd, request.timeout)
                .await?,
        ))
    }

    async fn exec(&self, request: Request<proto::ExecRequest>) -> Answer<proto::ExecResponse> {
        let request = request.into_inner();
        let container = self.running_container(&request.container_id).await?;
        let url = self
            .streaming
            .exec_url(crun_shim_streaming::ExecRequest {
                container_id: container.info.id,
                command: request.cmd,
                tty: request.tty,
                stdin: request.stdin,
                stdout: request.stdout,
                stderr: request.stderr,
            })
            .map_err(streaming_error)?;
        Ok(Response::new(proto::ExecResponse { url }))
    }

    async fn attach(
        &self,
        request: Request<proto::AttachRequest>,
    ) -> Answer<proto::AttachResponse> {
        let request = request.into_inner();
        let container = self.running_container(&request.container_id).await?;
        let url = self
            .streaming
            .attach_url(crun_shim_streaming::AttachRequest {
                container_id: container.info.id,
                tty: request.tty,
                stdin: request.stdin,
                stdout: request.stdout,
                stderr: request.stderr,
            })
            .map_err(streaming_error)?;
        Ok(Response::new(proto::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        request: Request<proto::PortForwardRequest>,
    ) -> Answer<proto::PortForwardResponse> {
        let request = request.into_inner();
        let sandbox = self.sandbox(&request.pod_sandbox_id).await?;
        let ports = request
            .port
            .iter()
            .map(|&p| {
                u16::try_from(p)
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| CriError::InvalidArgument(format!("port {p}")))
            })
            .collect::<Result<Vec<u16>, CriError>>()?;
        let url = self
            .streaming
            .port_forward_url(crun_shim_streaming::PortForwardRequest {
                pod_sandbox_id: sandbox.id().to_string(),
                ports,
            })
            .map_err(streaming_error)?;
        Ok(Response::new(proto::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        request: Request<proto::ContainerStatsRequest>,
    ) -> Answer<proto::ContainerStatsResponse> {
        let stats = self
            .container_stats(&request.into_inner().container_id)
            .await?;
        Ok(Response::new(proto::ContainerStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_container_stats(
        &self,
        request: Request<proto::ListContainerStatsRequest>,
    ) -> Answer<proto::ListContainerStatsResponse> {
        let stats = self
            .list_container_stats(request.into_inner().filter)
            .await?;
        Ok(Response::new(proto::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<proto::PodSandboxStatsRequest>,
    ) -> Answer<proto::PodSandboxStatsResponse> {
        let stats = self
            .pod_sandbox_stats(&request.into_inner().pod_sandbox_id)
            .await?;
        Ok(Response::new(proto::PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<proto::ListPodSandboxStatsRequest>,
    ) -> Answer<proto::ListPodSandboxStatsResponse> {
        let stats = self
            .list_pod_sandbox_stats(request.into_inner().filter)
            .await?;
        Ok(Response::new(proto::ListPodSandboxStatsResponse { stats }))
    }

    async fn update_runtime_config(
        &self,
        _request: Request<proto::UpdateRuntimeConfigRequest>,
    ) -> Answer<proto::UpdateRuntimeConfigResponse> {
        // The pod CIDR is the network's, set where the network is made.
        Ok(Response::new(proto::UpdateRuntimeConfigResponse {}))
    }

    async fn runtime_config(
        &self,
        _request: Request<proto::RuntimeConfigRequest>,
    ) -> Answer<proto::RuntimeConfigResponse> {
        // The agent places containers with cgroupfs paths of its own.
        Ok(Response::new(proto::RuntimeConfigResponse {
            linux: Some(proto::LinuxRuntimeConfiguration {
                cgroup_driver: proto::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Answer<proto::StatusResponse> {
        let runtime = match self.runtime.version().await {
            Ok(_) => condition("RuntimeReady", None),
            Err(e) => condition("RuntimeReady", Some(("DaemonUnreachable", e.to_string()))),
        };
        let network = match super::network::network_ready(self).await {
            Ok(()) => condition("NetworkReady", None),
            Err(why) => condition("NetworkReady", Some(("NetworkPluginNotReady", why))),
        };
        Ok(Response::new(proto::StatusResponse {
            status: Some(proto::RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            info: Default::default(),
            runtime_handlers: vec![proto::RuntimeHandler {
                name: String::new(),
                features: Some(proto::RuntimeHandlerFeatures::default()),
            }],
            features: Some(proto::RuntimeFeatures::default()),
        }))
    }
}

/// A runtime condition: true, or false with a reason and a message.
fn condition(kind: &str, failure: Option<(&str, String)>) -> proto::RuntimeCondition {
    match failure {
        None => proto::RuntimeCondition {
            r#type: kind.into(),
            status: true,
            ..Default::default()
        },
        Some((reason, message)) => proto::RuntimeCondition {
            r#type: kind.into(),
            status: false,
            reason: reason.into(),
            message,
        },
    }
}
