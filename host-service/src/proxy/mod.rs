//! The v1 services of the daemon: each call is forwarded to the agent that
//! holds the container (or to the chosen agent, or to all of them, merged),
//! and the answers are stamped with the agent's name. Streams are passed
//! through as they come, so back-pressure reaches the agent.

mod containers;
mod exec;
mod images;
mod observe;
mod system;

use std::sync::Arc;
use std::time::Duration;

pub use containers::Containers;
pub use exec::Exec;
pub use images::Images;
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

/// Metadata passed on to agents: the caller's trace context.
const FORWARDED: &[&str] = &["traceparent", "tracestate"];

/// The request to send to an agent: the caller's message and deadline, and
/// the trace context: this RPC's span when the daemon exports traces (so
/// the agent's span is its child), else the caller's, passed on as it came.
pub fn forward<T>(request: tonic::Request<T>) -> tonic::Request<T> {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    let headers: Vec<_> = FORWARDED
        .iter()
        .filter_map(|k| request.metadata().get(*k).map(|v| (*k, v.clone())))
        .collect();
    let mut out = tonic::Request::new(request.into_inner());
    if let Some(t) = timeout {
        out.set_timeout(t);
    }
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

/// Parses a `grpc-timeout` header value ("100m", "5S").
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// An agent's answer as the daemon's: transport failures name the agent.
fn answer<T>(
    agent: &Agent,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, tonic::Status> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| agent.status(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("10q"), None);
    }

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
        let timeout = f.metadata().get("grpc-timeout").unwrap().to_str().unwrap();
        assert_eq!(
            parse_grpc_timeout(timeout),
            Some(Duration::from_millis(250))
        );
        assert_eq!(f.metadata().get("traceparent").unwrap(), "00-abc-def-01");
        assert!(f.metadata().get("authorization").is_none());
        assert_eq!(*f.get_ref(), 7);
    }
}
