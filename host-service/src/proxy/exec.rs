//! ExecService: routed by the container of the first message; the stream
//! is passed through both ways.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use libcrun_shim_proto::v1::exec_service_client::ExecServiceClient;
use libcrun_shim_proto::v1::{self as pb, exec_service_server::ExecService};
use tonic::{Request, Response, Status, Streaming};

use super::{RpcResult, Shared, answer, forward, forward_as};

/// Exec, proxied.
#[derive(Debug, Clone)]
pub struct Exec(pub Shared);

type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecResponse, Status>> + Send>>;

fn client(agent: &crate::agents::Agent) -> ExecServiceClient<tonic::transport::Channel> {
    ExecServiceClient::new(agent.channel())
        .max_decoding_message_size(agent.max_message_bytes())
        .max_encoding_message_size(agent.max_message_bytes())
}

/// Forwards a call about one process to the agent of its container.
macro_rules! routed_exec {
    ($self:ident, $request:ident, $method:ident) => {{
        let agent = $self.0.pool.route(&$request.get_ref().container_id).await?;
        Ok(Response::new(answer(
            &agent,
            client(&agent).$method(forward($request)).await,
        )?))
    }};
}

#[tonic::async_trait]
impl ExecService for Exec {
    type ExecStream = ExecStream;

    async fn exec(&self, request: Request<Streaming<pb::ExecRequest>>) -> RpcResult<ExecStream> {
        let (metadata, extensions, mut inbound) = request.into_parts();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an exec stream must start with `start`"))?;
        let container_id = match &first.request {
            Some(pb::exec_request::Request::Start(start)) => start.container_id.clone(),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an exec stream must be `start`",
                ));
            }
        };
        let agent = self.0.pool.route(&container_id).await?;
        // The client's messages in order; a client that goes away cancels
        // the whole call, which the agent sees and acts on.
        let outbound = futures::stream::once(async move { first }).chain(
            inbound
                .take_while(|m| std::future::ready(m.is_ok()))
                .filter_map(|m| std::future::ready(m.ok())),
        );
        let parent = Request::from_parts(metadata, extensions, ());
        let call = forward_as(&parent, outbound);
        let responses = client(&agent)
            .exec(call)
            .await
            .map_err(|s| agent.record_failure(s))?
            .into_inner();
        let stream = responses.map(move |r| r.map_err(|s| agent.record_failure(s)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn exec_sync(
        &self,
        request: Request<pb::ExecSyncRequest>,
    ) -> RpcResult<pb::ExecSyncResponse> {
        routed_exec!(self, request, exec_sync)
    }

    async fn start_process(
        &self,
        request: Request<pb::StartProcessRequest>,
    ) -> RpcResult<pb::StartProcessResponse> {
        routed_exec!(self, request, start_process)
    }

    async fn inspect_process(
        &self,
        request: Request<pb::InspectProcessRequest>,
    ) -> RpcResult<pb::InspectProcessResponse> {
        routed_exec!(self, request, inspect_process)
    }

    async fn wait_process(
        &self,
        request: Request<pb::WaitProcessRequest>,
    ) -> RpcResult<pb::WaitProcessResponse> {
        routed_exec!(self, request, wait_process)
    }

    async fn signal_process(
        &self,
        request: Request<pb::SignalProcessRequest>,
    ) -> RpcResult<pb::SignalProcessResponse> {
        routed_exec!(self, request, signal_process)
    }

    async fn delete_process(
        &self,
        request: Request<pb::DeleteProcessRequest>,
    ) -> RpcResult<pb::DeleteProcessResponse> {
        routed_exec!(self, request, delete_process)
    }
}
