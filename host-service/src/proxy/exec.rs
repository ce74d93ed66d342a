//! ExecService: routed by the container of the first message; the stream
//! is passed through both ways.

use libcrun_shim_proto::v1::exec_service_client::ExecServiceClient;
use libcrun_shim_proto::v1::{self as pb, exec_service_server::ExecService};
use tonic::{Request, Response, Streaming};

use super::{Relayed, RpcResult, Shared, answer, forward, open_relay, relayed};

/// Exec, proxied.
#[derive(Debug, Clone)]
pub struct Exec(pub Shared);

type ExecStream = Relayed<pb::ExecResponse>;

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
        let (agent, call) = open_relay(&self.0.pool, request, "exec", |m| match &m.request {
            Some(pb::exec_request::Request::Start(start)) => Some(start.container_id.clone()),
            _ => None,
        })
        .await?;
        let result = client(&agent).exec(call).await;
        relayed(agent, result)
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
