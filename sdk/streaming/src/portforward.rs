//! Port-forward sessions (Kubernetes' `portforward.k8s.io` over SPDY, and
//! its WebSocket channel form): each forwarded connection is a pair of
//! streams, data and error, named by the `requestid` and `port` headers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;

use crate::reset::ResetAsEof;
use crate::runtime::{Input, Output, PortForwardRequest, PortStream, Runtime};
use crate::server::Limits;
use crate::spdy::{IncomingStream, Role, Session, Stream};
use crate::websocket::{Channels, Codec};

/// The port-forward protocol over SPDY.
pub(crate) const SPDY_PROTOCOL: &str = "portforward.k8s.io";

/// The port-forward protocols over WebSocket: channels, or SPDY tunnelled
/// in binary messages (client-go's `--websocket-portforward`).
pub(crate) const WEBSOCKET_PROTOCOLS: [&str; 4] = [
    "SPDY/3.1+portforward.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "",
];

/// The WebSocket protocol that tunnels SPDY.
pub(crate) const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
    port: u16,
    since: Option<Instant>,
}

/// Why a stream cannot be part of a forward.
fn check(stream: &IncomingStream, request: &PortForwardRequest) -> Result<(u16, bool), String> {
    let headers = stream.headers();
    let port = headers
        .get("port")
        .ok_or("\"port\" header is required")?
        .parse::<u16>()
        .map_err(|e| format!("unable to parse the port: {e}"))?;
    if !request.allows(port) {
        return Err(format!("port {port} is not forwarded by this request"));
    }
    let is_data = match headers.get("streamtype") {
        Some("data") => true,
        Some("error") => false,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("\"streamType\" header is required".into()),
    };
    Ok((port, is_data))
}

/// The request id of a stream: its header, or for old clients without one,
/// a pairing by stream id (the error stream n, its data stream n+2).
fn request_id(stream: &IncomingStream, is_data: bool) -> String {
    match stream.headers().get("requestid") {
        Some(id) => id.to_string(),
        None if is_data => stream.id().saturating_sub(2).to_string(),
        None => stream.id().to_string(),
    }
}

/// Serves port-forwarding over an upgraded SPDY connection until the
/// client closes it.
pub(crate) async fn serve_spdy<R, T>(
    io: T,
    request: PortForwardRequest,
    runtime: Arc<R>,
    limits: Limits,
) where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (_session, mut incoming) = Session::new(io, Role::Server, limits.session_config());
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = JoinSet::new();
    let mut sweep = tokio::time::interval(limits.stream_creation_timeout / 4);
    loop {
        tokio::select! {
            stream = incoming.next() => {
                let Some(stream) = stream else { break };
                let (port, is_data) = match check(&stream, &request) {
                    Ok(checked) => checked,
                    Err(why) => {
                        tracing::debug!(%why, "refusing a port-forward stream");
                        stream.refuse();
                        continue;
                    }
                };
                let id = request_id(&stream, is_data);
                let pair = pairs.entry(id.clone()).or_default();
                pair.since.get_or_insert_with(Instant::now);
                pair.port = port;
                let slot = if is_data { &mut pair.data } else { &mut pair.error };
                if slot.is_some() {
                    let kind = if is_data { "data" } else { "error" };
                    let message = format!("error processing stream for request {id}: {kind} stream already assigned");
                    stream.refuse();
                    if let Some(error) = pair.error.as_mut() {
                        let _ = error.write_all(message.as_bytes()).await;
                    }
                    continue;
                }
                *slot = Some(stream.accept());
                if pair.data.is_some() && pair.error.is_some() {
                    let pair = pairs.remove(&id).expect("the pair just completed");
                    let (Some(data), Some(error)) = (pair.data, pair.error) else { continue };
                    forwards.spawn(forward(
                        runtime.clone(),
                        request.pod_sandbox_id.clone(),
                        pair.port,
                        data,
                        error,
                    ));
                }
            }
            _ = sweep.tick() => {
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, p)| p.since.is_some_and(|t| t.elapsed() >= limits.stream_creation_timeout))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some(Pair { error: Some(mut error), .. }) = pairs.remove(&id) {
                        let message = format!("timed out waiting for the streams of request {id}");
                        let _ = error.write_all(message.as_bytes()).await;
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
    // The client closed the connection: its forwards end with it.
    forwards.shutdown().await;
}

/// Runs one forward, then ends both streams; a failure is told on the error
/// stream as the kubelet tells it (JSON, one line).
async fn forward<R: Runtime>(
    runtime: Arc<R>,
    pod_sandbox_id: String,
    port: u16,
    data: Stream,
    mut error: Stream,
) {
    let (recv, send) = data.into_split();
    let reset = Arc::new(AtomicBool::new(false));
    let stream = PortStream::new(
        Box::new(ResetAsEof::new(recv, reset.clone())) as Input,
        Box::new(ResetAsEof::new(send, reset.clone())) as Output,
    );
    let result = runtime
        .port_forward(pod_sandbox_id.clone(), port, stream)
        .await;
    // A client that reset the data stream gave the connection up: nothing
    // to tell it (an error message would make it drop every forward).
    if let Err(e) = result
        && !reset.load(Ordering::Relaxed)
    {
        let message = json!({
            "closeConnection": true,
            "message": format!("error forwarding port {port} to pod {pod_sandbox_id}, uid : {e}"),
        });
        let mut line = serde_json::to_vec(&message).expect("JSON");
        line.push(b'\n');
        let _ = error.write_all(&line).await;
    }
    let _ = error.shutdown().await;
}

/// Serves port-forwarding over a WebSocket of channels: two per port (data
/// 2n, error 2n+1), each first carrying the port (2 bytes, little endian).
pub(crate) async fn serve_websocket<R, T>(
    ws: WebSocketStream<T>,
    protocol: &str,
    request: PortForwardRequest,
    ports: Vec<u16>,
    runtime: Arc<R>,
    limits: Limits,
) where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = if protocol.contains("base64") {
        Codec::Base64
    } else {
        Codec::Binary
    };
    let readable: Vec<bool> = ports.iter().flat_map(|_| [true, false]).collect();
    let mut channels = Channels::open(ws, codec, &readable, false);
    let mut forwards = JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        channels.send(data, port.to_le_bytes().to_vec()).await;
        channels.send(error, port.to_le_bytes().to_vec()).await;
        let Some(input) = channels.take_input(data) else {
            continue;
        };
        let stream = PortStream::new(input, channels.output(data));
        let mut error_out = channels.output(error);
        let runtime = runtime.clone();
        let pod = request.pod_sandbox_id.clone();
        forwards.spawn(async move {
            if let Err(e) = runtime.port_forward(pod.clone(), port, stream).await {
                let message = format!("error forwarding port {port} to pod {pod}, uid : {e}");
                let _ = error_out.write_all(message.as_bytes()).await;
            }
        });
    }
    tokio::select! {
        () = async { while forwards.join_next().await.is_some() {} } => {}
        () = channels.client_gone() => {
            forwards.shutdown().await;
            return;
        }
    }
    channels.close(limits.close_grace).await;
}
