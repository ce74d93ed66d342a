//! The HTTP server: registers requests under tokens, hands out their URLs,
//! and upgrades `/exec/{token}`, `/attach/{token}` and
//! `/portforward/{token}` to SPDY/3.1 or WebSocket sessions.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

use crate::portforward;
use crate::remotecommand::{self, Command};
use crate::runtime::{AttachRequest, ExecRequest, PortForwardRequest, RequestError, Runtime};
use crate::spdy::{self, SessionConfig};
use crate::tokens::{Request as Registered, RequestCache};
use crate::websocket::ByteStream;

/// The header a SPDY client lists its protocols in, and the server names
/// its choice in.
const PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The header a refusal lists the server's protocols in.
const ACCEPTED_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";

/// Settings of a [`StreamingServer`]; the defaults are the kubelet's.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a URL stays good before its client connects.
    pub token_ttl: Duration,
    /// The most URLs waiting for their client at once.
    pub max_in_flight: usize,
    /// How long a client has to open a session's streams after the
    /// upgrade.
    pub stream_creation_timeout: Duration,
    /// Ends a SPDY session when no frame went either way for this long.
    pub stream_idle_timeout: Option<Duration>,
    /// How long to wait for the client to close its side once a session is
    /// over.
    pub close_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token_ttl: Duration::from_secs(60),
            max_in_flight: 1000,
            stream_creation_timeout: Duration::from_secs(30),
            stream_idle_timeout: Some(Duration::from_secs(4 * 3600)),
            close_grace: Duration::from_secs(10),
        }
    }
}

/// What a session needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) stream_creation_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_grace: Duration,
}

impl Limits {
    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig {
            idle_timeout: self.idle_timeout,
            ..SessionConfig::default()
        }
    }
}

struct Inner<R> {
    runtime: Arc<R>,
    base_url: String,
    cache: RequestCache,
    limits: Limits,
}

/// The streaming server of a CRI runtime. Cheap to clone: clones share the
/// registered requests.
///
/// ```no_run
/// # use crun_shim_streaming::{StreamingServer, Config, Runtime, ExecRequest};
/// # async fn example<R: Runtime>(runtime: R, request: ExecRequest) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let base_url = format!("http://{}", listener.local_addr()?);
/// let server = StreamingServer::new(runtime, base_url, Config::default());
/// tokio::spawn(server.clone().serve(listener));
/// // In the CRI server's Exec:
/// let url = server.exec_url(request).expect("a valid request");
/// # Ok(()) }
/// ```
pub struct StreamingServer<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for StreamingServer<R> {
    fn clone(&self) -> Self {
        StreamingServer {
            inner: self.inner.clone(),
        }
    }
}

impl<R> std::fmt::Debug for StreamingServer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingServer")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> StreamingServer<R> {
    /// A server whose URLs start with `base_url` (`http://HOST:PORT`, where
    /// clients reach [`serve`](Self::serve)'s listener).
    pub fn new(runtime: R, base_url: impl Into<String>, config: Config) -> StreamingServer<R> {
        StreamingServer {
            inner: Arc::new(Inner {
                runtime: Arc::new(runtime),
                base_url: base_url.into().trim_end_matches('/').to_string(),
                cache: RequestCache::new(config.token_ttl, config.max_in_flight),
                limits: Limits {
                    stream_creation_timeout: config.stream_creation_timeout,
                    idle_timeout: config.stream_idle_timeout,
                    close_grace: config.close_grace,
                },
            }),
        }
    }

    /// Binds `addr` (port 0 picks one), serves it in a task, and returns the
    /// server (its URLs name the bound address) with the task.
    pub async fn bind(
        runtime: R,
        addr: SocketAddr,
        config: Config,
    ) -> io::Result<(StreamingServer<R>, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let server = StreamingServer::new(
            runtime,
            format!("http://{}", listener.local_addr()?),
            config,
        );
        let task = tokio::spawn(server.clone().serve(listener));
        Ok((server, task))
    }

    /// The URLs' common start.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Registers an exec and returns the URL its client upgrades.
    pub fn exec_url(&self, request: ExecRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.register(Registered::Exec(request))
    }

    /// Registers an attach and returns the URL its client upgrades.
    pub fn attach_url(&self, request: AttachRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.register(Registered::Attach(request))
    }

    /// Registers a port-forward and returns the URL its client upgrades.
    pub fn port_forward_url(&self, request: PortForwardRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.register(Registered::PortForward(request))
    }

    fn register(&self, request: Registered) -> Result<String, RequestError> {
        let kind = request.kind();
        let token = self.inner.cache.insert(request)?;
        Ok(format!("{}/{kind}/{token}", self.inner.base_url))
    }

    /// Serves HTTP/1.1 on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(self.clone().serve_connection(tcp));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serves one HTTP/1.1 connection (from any transport: TCP, TLS, ...),
    /// including the sessions it upgrades to.
    pub async fn serve_connection<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| {
            let server = self.clone();
            async move { Ok::<_, Infallible>(server.handle(request)) }
        });
        if let Err(e) = http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await
        {
            tracing::debug!(error = %e, "streaming connection ended");
        }
    }

    fn handle(&self, mut request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some((kind, token)) = route(request.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let upgrade = match Upgrade::of(request.headers()) {
            Some(upgrade) => upgrade,
            None => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "this URL needs an upgrade to SPDY/3.1 or websocket",
                );
            }
        };
        let Some(registered) = self.inner.cache.take(kind, token) else {
            return plain(StatusCode::NOT_FOUND, "unknown or expired streaming token");
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        let headers = request.headers();
        let limits = self.inner.limits;
        let runtime = self.inner.runtime.clone();
        match upgrade {
            Upgrade::Spdy => {
                let offered = list(headers, PROTOCOL_VERSION);
                let ours: &[&str] = match registered {
                    Registered::PortForward(_) => &[portforward::SPDY_PROTOCOL],
                    _ => &remotecommand::SPDY_PROTOCOLS,
                };
                if offered.is_empty() {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "unable to upgrade: the X-Stream-Protocol-Version header is missing",
                    );
                }
                let Some(protocol) = negotiate(&offered, ours) else {
                    let mut response = plain(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {ours:?}"
                        ),
                    );
                    for p in ours {
                        response
                            .headers_mut()
                            .append(ACCEPTED_PROTOCOL_VERSIONS, HeaderValue::from_static(p));
                    }
                    return response;
                };
                spawn_upgraded(on_upgrade, move |io| async move {
                    match Session::from(registered) {
                        Session::Command(c) => {
                            remotecommand::serve_spdy(io, protocol, c, runtime, limits).await
                        }
                        Session::PortForward(r) => {
                            portforward::serve_spdy(io, r, runtime, limits).await
                        }
                    }
                });
                let mut response = switching(spdy::UPGRADE_TOKEN);
                response
                    .headers_mut()
                    .insert(PROTOCOL_VERSION, HeaderValue::from_static(protocol));
                response
            }
            Upgrade::WebSocket { key } => {
                let offered = list(headers, SEC_WEBSOCKET_PROTOCOL.as_str());
                let offered = if offered.is_empty() {
                    vec![String::new()]
                } else {
                    offered
                };
                let ours: &[&str] = match registered {
                    Registered::PortForward(_) => &portforward::WEBSOCKET_PROTOCOLS,
                    _ => &remotecommand::WEBSOCKET_PROTOCOLS,
                };
                let Some(protocol) = negotiate(&offered, ours) else {
                    return plain(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "requested protocol(s) are not supported: {offered:?}; supports {ours:?}"
                        ),
                    );
                };
                // A channel port-forward names its ports in the query.
                let ports = match &registered {
                    Registered::PortForward(r) if protocol != portforward::TUNNEL_PROTOCOL => {
                        match query_ports(request.uri().query().unwrap_or("")) {
                            Ok(ports) if ports.iter().all(|p| r.allows(*p)) => ports,
                            Ok(_) => {
                                return plain(
                                    StatusCode::BAD_REQUEST,
                                    "a port is not forwarded by this request",
                                );
                            }
                            Err(why) => return plain(StatusCode::BAD_REQUEST, &why),
                        }
                    }
                    _ => Vec::new(),
                };
                spawn_upgraded(on_upgrade, move |io| async move {
                    let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, None).await;
                    match Session::from(registered) {
                        Session::Command(c) => {
                            remotecommand::serve_websocket(ws, protocol, c, runtime, limits).await
                        }
                        Session::PortForward(r) if protocol == portforward::TUNNEL_PROTOCOL => {
                            portforward::serve_spdy(ByteStream::new(ws), r, runtime, limits).await
                        }
                        Session::PortForward(r) => {
                            portforward::serve_websocket(ws, protocol, r, ports, runtime, limits)
                                .await
                        }
                    }
                });
                let mut response = switching("websocket");
                let h = response.headers_mut();
                h.insert(
                    SEC_WEBSOCKET_ACCEPT,
                    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
                        .expect("base64 is a header value"),
                );
                if !protocol.is_empty() {
                    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
                }
                response
            }
        }
    }
}

/// What an upgraded connection runs.
enum Session {
    Command(Command),
    PortForward(PortForwardRequest),
}

impl From<Registered> for Session {
    fn from(registered: Registered) -> Session {
        match registered {
            Registered::Exec(r) => Session::Command(Command::Exec(r)),
            Registered::Attach(r) => Session::Command(Command::Attach(r)),
            Registered::PortForward(r) => Session::PortForward(r),
        }
    }
}

/// Serves the upgraded connection in a task, once the 101 went out.
fn spawn_upgraded<F, Fut>(on_upgrade: OnUpgrade, serve: F)
where
    F: FnOnce(TokioIo<Upgraded>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "the upgrade failed"),
        }
    });
}

/// `/exec/TOKEN` → ("exec", "TOKEN").
fn route(path: &str) -> Option<(&str, &str)> {
    let (kind, token) = path.strip_prefix('/')?.split_once('/')?;
    let known = matches!(kind, "exec" | "attach" | "portforward");
    (known && !token.is_empty() && !token.contains('/')).then_some((kind, token))
}

enum Upgrade {
    Spdy,
    WebSocket { key: String },
}

impl Upgrade {
    fn of(headers: &HeaderMap) -> Option<Upgrade> {
        let connection = list(headers, CONNECTION.as_str());
        if !connection.iter().any(|c| c.eq_ignore_ascii_case("upgrade")) {
            return None;
        }
        let upgrade = list(headers, UPGRADE.as_str());
        if upgrade
            .iter()
            .any(|u| u.eq_ignore_ascii_case(spdy::UPGRADE_TOKEN))
        {
            return Some(Upgrade::Spdy);
        }
        if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket"))
            && headers
                .get(SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13")
        {
            let key = headers.get(SEC_WEBSOCKET_KEY)?.to_str().ok()?.to_string();
            return Some(Upgrade::WebSocket { key });
        }
        None
    }
}

/// The comma-separated values of every `name` header, trimmed.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first protocol the client offers that the server speaks (the
/// client's preference wins, as in Kubernetes).
fn negotiate(offered: &[String], ours: &[&'static str]) -> Option<&'static str> {
    offered
        .iter()
        .find_map(|o| ours.iter().find(|p| **p == o.as_str()).copied())
}

/// The ports of `?port=80&port=443` (or `port=80,443`).
fn query_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let Some(value) = pair.strip_prefix("port=") else {
            continue;
        };
        for p in value.split("%2C").flat_map(|v| v.split(',')) {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(format!("unable to parse {p:?} as a port")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn switching(upgrade: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static(upgrade));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_queries_parse() {
        assert_eq!(route("/exec/abc"), Some(("exec", "abc")));
        assert_eq!(route("/portforward/x-y_z"), Some(("portforward", "x-y_z")));
        assert_eq!(route("/exec/"), None);
        assert_eq!(route("/exec/a/b"), None);
        assert_eq!(route("/other/a"), None);
        assert_eq!(query_ports("port=80&port=443"), Ok(vec![80, 443]));
        assert_eq!(query_ports("port=80,8080"), Ok(vec![80, 8080]));
        assert!(query_ports("").is_err());
        assert!(query_ports("port=0").is_err());
        assert!(query_ports("port=http").is_err());
    }

    #[test]
    fn the_client_preference_wins() {
        let offered = ["v4.channel.k8s.io".to_string(), "v5.channel.k8s.io".into()];
        assert_eq!(
            negotiate(&offered, &remotecommand::SPDY_PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&["x".into()], &remotecommand::SPDY_PROTOCOLS),
            None
        );
    }
}
