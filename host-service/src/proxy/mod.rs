//! The v1 services of the daemon: each call is forwarded to the agent that
//! holds the container (or to the chosen agent, or to all of them, merged),
//! and the answers are stamped with the agent's name. Streams are passed
//! through as they come, so back-pressure reaches the agent.

mod containers;
mod exec;
mod images;
mod networks;
mod observe;
mod system;

use std::sync::Arc;

pub use containers::Containers;
pub use exec::Exec;
pub use images::Images;
pub use networks::Networks;
pub use observe::{Events, Health, Logs, Metrics};
pub use system::System;

use crate::agents::{Agent, AgentPool};

/// Shorthand for the result of an RPC.
type RpcResult<T> = Result<tonic::Response<T>, tonic::Status>;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The agents.
    pub pool: Arc<AgentPool>,
}

/// Metadata passed on to agents as it came: the caller's deadline (the
/// agent's tonic parses it, within its bounds, as ours does) and trace
/// context.
const FORWARDED: &[&str] = &["grpc-timeout", "traceparent", "tracestate"];

/// The request to send to an agent: the caller's message and deadline, and
/// the trace context: this RPC's span when the daemon exports traces (so
/// the agent's span is its child), else the caller's, passed on as it came.
pub fn forward<T>(request: tonic::Request<T>) -> tonic::Request<T> {
    let headers: Vec<_> = FORWARDED
        .iter()
        .filter_map(|k| request.metadata().get(*k).map(|v| (*k, v.clone())))
        .collect();
    let mut out = tonic::Request::new(request.into_inner());
    for (k, v) in headers {
        out.metadata_mut().insert(k, v);
    }
    libcrun_shim_telemetry::inject(out)
}

/// A message for an agent, in a request carrying what `parent` carries.
pub fn forward_as<T, U>(parent: &tonic::Request<T>, message: U) -> tonic::Request<U> {
    let mut carrier = tonic::Request::new(());
    *carrier.metadata_mut() = parent.metadata().clone();
    let (metadata, extensions, ()) = forward(carrier).into_parts();
    tonic::Request::from_parts(metadata, extensions, message)
}

/// An agent's answer as the daemon's: transport failures name the agent.
fn answer<T>(
    agent: &Agent,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, tonic::Status> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| agent.record_failure(s))
}

/// A stream of answers as the daemon gives it.
type Relayed<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Opens the relay of a bidirectional stream whose first message (`start`)
/// names the container: the agent holding it, and the client's messages
/// (the first one again in front) in a request carrying what the caller's
/// carried. A client that goes away ends the stream, which cancels the
/// agent's call, and the agent acts on that.
async fn open_relay<M: Send + 'static>(
    pool: &AgentPool,
    request: tonic::Request<tonic::Streaming<M>>,
    what: &str,
    container_of: impl FnOnce(&M) -> Option<String>,
) -> Result<
    (
        Arc<Agent>,
        tonic::Request<impl futures::Stream<Item = M> + Send + 'static>,
    ),
    tonic::Status,
> {
    use futures::StreamExt;
    let (metadata, extensions, mut inbound) = request.into_parts();
    let first = inbound.message().await?.ok_or_else(|| {
        tonic::Status::invalid_argument(format!("an {what} stream must start with `start`"))
    })?;
    let Some(container_id) = container_of(&first) else {
        return Err(tonic::Status::invalid_argument(format!(
            "the first message of an {what} stream must be `start`"
        )));
    };
    let agent = pool.route(&container_id).await?;
    let outbound = futures::stream::once(async move { first }).chain(
        inbound
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| std::future::ready(m.ok())),
    );
    let parent = tonic::Request::from_parts(metadata, extensions, ());
    Ok((agent, forward_as(&parent, outbound)))
}

/// An agent's stream of answers as the daemon's: failures name the agent.
fn relayed<T: Send + 'static>(
    agent: Arc<Agent>,
    result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> RpcResult<Relayed<T>> {
    use futures::StreamExt;
    let responses = result.map_err(|s| agent.record_failure(s))?.into_inner();
    let stream = responses.map(move |r| r.map_err(|s| agent.record_failure(s)));
    Ok(tonic::Response::new(Box::pin(stream)))
}

/// Asks the agents named by `agent` (all when empty), in order, until one
/// answers other than NOT_FOUND; returns it and its answer. `not_found`
/// when every agent says NOT_FOUND, else the last failure.
async fn first_found<T, F>(
    pool: &AgentPool,
    agent: &str,
    not_found: tonic::Status,
    call: impl Fn(Arc<Agent>) -> F,
) -> Result<(Arc<Agent>, T), tonic::Status>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = not_found;
    for agent in pool.select(agent)? {
        match answer(&agent, call(agent.clone()).await) {
            Ok(found) => return Ok((agent, found)),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => last = s,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_keeps_deadline_and_trace_context_only() {
        let mut r = tonic::Request::new(7u32);
        r.metadata_mut()
            .insert("grpc-timeout", "250m".parse().unwrap());
        r.metadata_mut()
            .insert("traceparent", "00-abc-def-01".parse().unwrap());
        r.metadata_mut()
            .insert("authorization", "secret".parse().unwrap());
        let f = forward(r);
        assert_eq!(f.metadata().get("grpc-timeout").unwrap(), "250m");
        assert_eq!(f.metadata().get("traceparent").unwrap(), "00-abc-def-01");
        assert!(f.metadata().get("authorization").is_none());
        assert_eq!(*f.get_ref(), 7);
    }

    #[test]
    fn a_hostile_deadline_passes_through_untouched() {
        // Hours beyond what a u64 of seconds holds: parsing and multiplying
        // here used to overflow.
        for value in ["5124095576030432H", "99999999999999999999H", "1x"] {
            let mut r = tonic::Request::new(());
            r.metadata_mut()
                .insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(forward(r).metadata().get("grpc-timeout").unwrap(), value);
        }
    }
}
