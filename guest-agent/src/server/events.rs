//! EventService over the runtime.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use libcrun_shim_proto::v1::{self as pb, event_service_server::EventService};
use tonic::{Request, Response, Status};

use super::RpcResult;
use crate::error::Error;
use crate::model::EventFilter;
use crate::runtime::Runtime;

/// Metadata key of the oldest sequence the journal holds, sent with an
/// OUT_OF_RANGE error so clients can resume without parsing the message.
pub const OLDEST_SEQUENCE_KEY: &str = "x-oldest-sequence";

/// The event service.
pub struct Events {
    runtime: Arc<Runtime>,
}

impl Events {
    /// A service over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Events { runtime }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// A status for a journal error, naming the oldest sequence still kept.
fn status(runtime: &Runtime, e: Error) -> Status {
    let out_of_range = matches!(e, Error::OutOfRange(_));
    let mut status = Status::from(e);
    if out_of_range && let Ok(oldest) = runtime.oldest_event().to_string().parse() {
        status.metadata_mut().insert(OLDEST_SEQUENCE_KEY, oldest);
    }
    status
}

#[tonic::async_trait]
impl EventService for Events {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeEventsRequest>,
    ) -> RpcResult<EventStream> {
        let r = request.into_inner();
        let filter = EventFilter::try_from(&r).map_err(Error::from)?;
        let subscription = self
            .runtime
            .subscribe(r.since_sequence, filter)
            .map_err(|e| status(&self.runtime, e))?;
        let runtime = self.runtime.clone();
        let stream = subscription.map(move |item| {
            item.map(|e| pb::Event::from(&e))
                .map_err(|e| status(&runtime, e))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
