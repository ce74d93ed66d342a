//! LogService over the runtime.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use libcrun_shim_proto::v1::{self as pb, log_service_server::LogService};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::RpcResult;
use crate::error::Error;
use crate::logs::{LogEntry, LogQuery};
use crate::runtime::Runtime;

/// The log service.
pub struct Logs {
    runtime: Arc<Runtime>,
}

impl Logs {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Logs { runtime }
    }
}

type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LogService for Logs {
    type LogsStream = LogsStream;

    async fn logs(&self, request: Request<pb::LogsRequest>) -> RpcResult<LogsStream> {
        let r = request.into_inner();
        let query = LogQuery::try_from(&r).map_err(Error::from)?;
        let timestamps = r.timestamps;
        let batches = self.runtime.logs(&r.container_id, query)?;
        let stream = ReceiverStream::new(batches).map(move |batch| {
            batch
                .map(|entries| response(entries, timestamps))
                .map_err(|e| Error::io("reading logs", e).into())
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A batch of entries for the wire, with their times or without.
pub(super) fn response(entries: Vec<LogEntry>, timestamps: bool) -> pb::LogsResponse {
    pb::LogsResponse {
        entries: entries
            .into_iter()
            .map(|e| {
                let mut entry = pb::LogEntry::from(e);
                if !timestamps {
                    entry.time = None;
                }
                entry
            })
            .collect(),
    }
}
