//! ExecService over the runtime.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use libcrun_shim_proto::v1::{self as pb, exec_service_server::ExecService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::RpcResult;
use super::convert::{self, ConversionError};
use crate::error::Error;
use crate::model::ProcessSpec;
use crate::runtime::Runtime;
use crate::runtime::exec::{ExecInput, ExecOutput, ExecRequest};
use crate::runtime::process::{ProcessSource, StartProcess};
use crate::spec;

/// The exec service.
pub struct Exec {
    runtime: Arc<Runtime>,
}

impl Exec {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Exec { runtime }
    }
}

type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecResponse, Status>> + Send>>;

pub(super) fn terminal_size(size: Option<pb::TerminalSize>) -> Option<(u16, u16)> {
    size.map(|s| {
        (
            s.rows.min(u16::MAX as u32) as u16,
            s.cols.min(u16::MAX as u32) as u16,
        )
    })
}

/// The process of a request, which must carry one.
fn process(p: Option<pb::ProcessSpec>) -> Result<ProcessSpec, Error> {
    p.map(ProcessSpec::from)
        .ok_or_else(|| ConversionError::Missing("process").into())
}

fn response(r: pb::exec_response::Response) -> Result<pb::ExecResponse, Status> {
    Ok(pb::ExecResponse { response: Some(r) })
}

#[tonic::async_trait]
impl ExecService for Exec {
    type ExecStream = ExecStream;

    async fn exec(&self, request: Request<Streaming<pb::ExecRequest>>) -> RpcResult<ExecStream> {
        use pb::exec_request::Request as In;
        use pb::exec_response::Response as Out;
        let mut inbound = request.into_inner();
        let start = match inbound.message().await? {
            Some(pb::ExecRequest {
                request: Some(In::Start(start)),
            }) => start,
            _ => {
                return Err(Error::InvalidArgument(
                    "the first message of an exec stream must be `start`".into(),
                )
                .into());
            }
        };
        let exec_id = (!start.exec_id.is_empty()).then_some(start.exec_id);
        let mut session = self
            .runtime
            .exec(
                &start.container_id,
                ExecRequest {
                    exec_id,
                    process: process(start.process)?,
                    stdin: start.stdin,
                    terminal_size: terminal_size(start.terminal_size),
                },
            )
            .await?;

        // Client → process.
        let input = session.input.clone();
        tokio::spawn(async move {
            loop {
                let item = match inbound.message().await {
                    Ok(Some(msg)) => msg.request,
                    // The client finished sending: end of stdin.
                    Ok(None) => {
                        let _ = input.send(ExecInput::CloseStdin).await;
                        return;
                    }
                    // The client went away: the process goes too.
                    Err(_) => {
                        let _ = input.send(ExecInput::Signal(libc::SIGKILL)).await;
                        return;
                    }
                };
                let event = match item {
                    Some(In::Stdin(data)) => ExecInput::Stdin(data),
                    Some(In::Resize(size)) => {
                        let (rows, cols) = terminal_size(Some(size)).unwrap_or_default();
                        ExecInput::Resize(rows, cols)
                    }
                    Some(In::CloseStdin(_)) => ExecInput::CloseStdin,
                    Some(In::Signal(name)) => match spec::signal::parse(&name) {
                        Ok(sig) => ExecInput::Signal(sig),
                        Err(_) => continue,
                    },
                    Some(In::Start(_)) | None => continue,
                };
                if input.send(event).await.is_err() {
                    return;
                }
            }
        });

        // Process → client: started, output in order, exit last.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let started = Out::Started(pb::ExecStarted {
            exec_id: session.exec_id.clone(),
            pid: u32::try_from(session.pid).unwrap_or(0),
        });
        tokio::spawn(async move {
            let mut client_gone = tx.send(response(started)).await.is_err();
            while let Some(output) = session.output.recv().await {
                if client_gone {
                    continue;
                }
                let out = match output {
                    ExecOutput::Stdout(data) => Out::Stdout(data),
                    ExecOutput::Stderr(data) => Out::Stderr(data),
                };
                if tx.send(response(out)).await.is_err() {
                    client_gone = true;
                    let _ = session.input.send(ExecInput::Signal(libc::SIGKILL)).await;
                }
            }
            let last = match session.exit.await {
                Ok(Ok(exit)) => response(Out::Exit((&exit).into())),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Error::Internal("exec ended without a status".into()).into()),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn exec_sync(
        &self,
        request: Request<pb::ExecSyncRequest>,
    ) -> RpcResult<pb::ExecSyncResponse> {
        let r = request.into_inner();
        let timeout = convert::optional_duration(r.timeout, "timeout").map_err(Error::from)?;
        let result = self
            .runtime
            .exec_sync(
                &r.container_id,
                process(r.process)?,
                r.stdin,
                timeout,
                r.max_output_bytes,
            )
            .await?;
        Ok(Response::new(pb::ExecSyncResponse {
            exit: Some((&result.exit).into()),
            stdout: result.stdout.into(),
            stderr: result.stderr.into(),
            timed_out: result.timed_out,
            stdout_truncated: result.stdout_truncated,
            stderr_truncated: result.stderr_truncated,
        }))
    }

    async fn start_process(
        &self,
        request: Request<pb::StartProcessRequest>,
    ) -> RpcResult<pb::StartProcessResponse> {
        use pb::start_process_request::Process;
        let r = request.into_inner();
        let source = match r.process {
            Some(Process::Spec(spec)) => ProcessSource::Spec(spec.into()),
            Some(Process::OciProcessJson(json)) => ProcessSource::Oci(json),
            None => return Err(Error::from(ConversionError::Missing("process")).into()),
        };
        let record = self
            .runtime
            .start_process(
                &r.container_id,
                StartProcess {
                    exec_id: r.exec_id,
                    source,
                    stdio: r
                        .stdio
                        .unwrap_or_default()
                        .try_into()
                        .map_err(Error::from)?,
                    terminal_size: terminal_size(r.terminal_size),
                },
            )
            .await?;
        Ok(Response::new(pb::StartProcessResponse {
            process: Some((&record).into()),
        }))
    }

    async fn inspect_process(
        &self,
        request: Request<pb::InspectProcessRequest>,
    ) -> RpcResult<pb::InspectProcessResponse> {
        let r = request.into_inner();
        let record = self.runtime.inspect_process(&r.container_id, &r.exec_id)?;
        Ok(Response::new(pb::InspectProcessResponse {
            process: Some((&record).into()),
        }))
    }

    async fn wait_process(
        &self,
        request: Request<pb::WaitProcessRequest>,
    ) -> RpcResult<pb::WaitProcessResponse> {
        let r = request.into_inner();
        let exit = self
            .runtime
            .wait_process(&r.container_id, &r.exec_id)
            .await?;
        Ok(Response::new(pb::WaitProcessResponse {
            exit: Some((&exit).into()),
        }))
    }

    async fn signal_process(
        &self,
        request: Request<pb::SignalProcessRequest>,
    ) -> RpcResult<pb::SignalProcessResponse> {
        let r = request.into_inner();
        let signal = if r.signal.is_empty() {
            libc::SIGKILL
        } else {
            spec::signal::parse(&r.signal)?
        };
        self.runtime
            .signal_process(&r.container_id, &r.exec_id, signal)?;
        Ok(Response::new(pb::SignalProcessResponse {}))
    }

    async fn delete_process(
        &self,
        request: Request<pb::DeleteProcessRequest>,
    ) -> RpcResult<pb::DeleteProcessResponse> {
        let r = request.into_inner();
        let exit = self
            .runtime
            .delete_process(&r.container_id, &r.exec_id, r.force)
            .await?;
        Ok(Response::new(pb::DeleteProcessResponse {
            exit: Some((&exit).into()),
        }))
    }
}
