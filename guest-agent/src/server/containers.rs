//! ContainerService over the runtime.

use std::sync::Arc;

use libcrun_shim_proto::v1::{self as pb, container_service_server::ContainerService};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::RpcResult;
use super::convert::{self, ConversionError};
use crate::error::Error;
use crate::model::{ContainerConfig, Resources};
use crate::runtime::attach::AttachInput;
use crate::runtime::exec::ExecOutput;
use crate::runtime::{ContainerView, ListFilter, RunEvent, Runtime};
use crate::spec;

type AttachStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::AttachResponse, Status>> + Send>>;
type RunStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::RunContainerResponse, Status>> + Send>>;

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

    type AttachStream = AttachStream;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachRequest>>,
    ) -> RpcResult<AttachStream> {
        use pb::attach_request::Request as In;
        use pb::attach_response::Response as Out;
        let mut inbound = request.into_inner();
        let start = match inbound.message().await? {
            Some(pb::AttachRequest {
                request: Some(In::Start(start)),
            }) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an attach stream must be `start`",
                ));
            }
        };
        let exec_id = (!start.exec_id.is_empty()).then_some(start.exec_id.as_str());
        let mut session = self.runtime.attach(&start.container_id, exec_id).await?;

        // Client → process; the client ending its stream or going away
        // detaches, leaving the process alone.
        let input = session.input.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let event = match msg.request {
                    Some(In::Stdin(data)) => AttachInput::Stdin(data),
                    Some(In::Resize(size)) => {
                        let (rows, cols) =
                            super::exec::terminal_size(Some(size)).unwrap_or_default();
                        AttachInput::Resize(rows, cols)
                    }
                    Some(In::CloseStdin(_)) => AttachInput::CloseStdin,
                    Some(In::Start(_)) | None => continue,
                };
                if input.send(event).await.is_err() {
                    return;
                }
            }
        });

        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (want_out, want_err) = (start.stdout, start.stderr);
        tokio::spawn(async move {
            while let Some(output) = session.output.recv().await {
                let out = match output {
                    ExecOutput::Stdout(data) if want_out => Out::Stdout(data),
                    ExecOutput::Stderr(data) if want_err => Out::Stderr(data),
                    _ => continue,
                };
                if tx
                    .send(Ok(pb::AttachResponse {
                        response: Some(out),
                    }))
                    .await
                    .is_err()
                {
                    // Detached.
                    return;
                }
            }
            let last = match session.exit.await {
                Ok(Ok(exit)) => Ok(pb::AttachResponse {
                    response: Some(Out::Exit((&exit).into())),
                }),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Status::internal("attach ended without a status")),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_processes(
        &self,
        request: Request<pb::ListProcessesRequest>,
    ) -> RpcResult<pb::ListProcessesResponse> {
        let processes = self
            .runtime
            .list_processes(&request.into_inner().id)
            .await?
            .into_iter()
            .map(|(pid, exec_id)| pb::ProcessInfo {
                pid: u32::try_from(pid).unwrap_or(0),
                exec_id: exec_id.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListProcessesResponse { processes }))
    }

    type RunStream = RunStream;

    async fn run(&self, request: Request<pb::RunContainerRequest>) -> RpcResult<RunStream> {
        use pb::run_container_response::Event;
        let r = request.into_inner();
        let config = r
            .config
            .ok_or(ConversionError::Missing("config"))
            .and_then(ContainerConfig::try_from)
            .map_err(Error::from)?;
        let events = self.runtime.run(config, r.remove).await?;
        let stream = ReceiverStream::new(events).map(|event| {
            let event = match event? {
                RunEvent::Started(view) => Event::Started(view.as_ref().into()),
                RunEvent::Output(entries) => Event::Output(super::logs::response(entries, false)),
                RunEvent::Exit(exit) => Event::Exit((&exit).into()),
            };
            Ok(pb::RunContainerResponse { event: Some(event) })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
