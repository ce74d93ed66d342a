//! A Kubernetes streaming client for the tests (SPDY and WebSocket, as
//! client-go speaks them), and a runtime that runs real processes on this
//! host and forwards to real TCP ports on loopback.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use crun_shim_streaming::spdy::{Headers, Role, Session, SessionConfig, Stream};
use crun_shim_streaming::{
    AttachRequest, Config, ExecRequest, PortStream, ProcessIo, Runtime, RuntimeError,
    StreamingServer, TerminalSize,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Runs commands as real processes; attach echoes stdin to stdout; port
/// forwards connect to 127.0.0.1:PORT.
pub struct HostRuntime;

impl Runtime for HostRuntime {
    async fn exec(&self, request: ExecRequest, io: ProcessIo) -> Result<i32, RuntimeError> {
        let ProcessIo {
            stdin,
            stdout,
            stderr,
            resize,
            tty,
        } = io;
        match request.command[0].as_str() {
            "fail" => return Err(RuntimeError::new("no such container")),
            // Reports the terminal sizes it is sent, as a process reading
            // SIGWINCH would see them.
            "report-resizes" => {
                let (Some(mut resize), Some(mut out)) = (resize, stdout) else {
                    return Err(RuntimeError::new("no terminal"));
                };
                assert!(tty);
                let count: usize = request.command[1].parse().unwrap();
                for _ in 0..count {
                    let size = resize
                        .recv()
                        .await
                        .ok_or_else(|| RuntimeError::new("eof"))?;
                    out.write_all(format!("{}x{}\n", size.width, size.height).as_bytes())
                        .await?;
                }
                out.shutdown().await?;
                return Ok(0);
            }
            _ => {}
        }
        let mut child = tokio::process::Command::new(&request.command[0])
            .args(&request.command[1..])
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let feed = {
            let child_in = child.stdin.take();
            async move {
                if let (Some(mut from), Some(mut to)) = (stdin, child_in) {
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                }
            }
        };
        let out = drain(child.stdout.take().unwrap(), stdout);
        let err = drain(child.stderr.take().unwrap(), stderr);
        let (_, out, err, status) = tokio::join!(feed, out, err, child.wait());
        out?;
        err?;
        Ok(status?.code().unwrap_or(128))
    }

    async fn attach(&self, _request: AttachRequest, io: ProcessIo) -> Result<(), RuntimeError> {
        let (Some(mut input), Some(mut output)) = (io.stdin, io.stdout) else {
            return Err(RuntimeError::new("attach needs stdin and stdout"));
        };
        tokio::io::copy(&mut input, &mut output).await?;
        if let Some(mut err) = io.stderr {
            err.write_all(b"detached\n").await?;
            err.shutdown().await?;
        }
        output.shutdown().await?;
        Ok(())
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
        mut stream: PortStream,
    ) -> Result<(), RuntimeError> {
        if pod_sandbox_id != "pod" {
            return Err(RuntimeError::new(format!(
                "no pod sandbox {pod_sandbox_id}"
            )));
        }
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tokio::io::copy_bidirectional(&mut stream, &mut tcp).await?;
        Ok(())
    }
}

/// Copies a process's output to the client's stream (or nowhere), then
/// ends that stream.
async fn drain(
    mut from: impl tokio::io::AsyncRead + Unpin,
    to: Option<crun_shim_streaming::Output>,
) -> std::io::Result<()> {
    match to {
        Some(mut to) => {
            tokio::io::copy(&mut from, &mut to).await?;
            to.shutdown().await
        }
        None => tokio::io::copy(&mut from, &mut tokio::io::sink())
            .await
            .map(drop),
    }
}

/// A streaming server on a free loopback port.
pub async fn server(config: Config) -> StreamingServer<HostRuntime> {
    let (server, _task) =
        StreamingServer::bind(HostRuntime, "127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
    server
}

/// An exec request for `command` with stdout and stderr.
pub fn exec(command: &[&str]) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
    }
}

/// A TCP server on loopback that answers each connection with what it
/// read, uppercased, once the client ended its side. Returns its port.
pub async fn upper_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut all = Vec::new();
                tcp.read_to_end(&mut all).await.unwrap();
                tcp.write_all(&all.to_ascii_uppercase()).await.unwrap();
            });
        }
    });
    port
}

/// A TCP server on loopback that answers each chunk it reads at once,
/// uppercased. Returns its port.
pub async fn upper_echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => tcp.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap(),
                    }
                }
            });
        }
    });
    port
}

/// An HTTP response the server answered instead of switching protocols.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').unwrap();
    (host.to_string(), format!("/{path}"))
}

/// Upgrades `url` the way client-go does (POST, `Upgrade: SPDY/3.1`, the
/// protocols in preference order); returns the session and the protocol
/// the server chose.
pub async fn spdy_connect(url: &str, protocols: &[&str]) -> Result<(Session, String), Refusal> {
    let (host, path) = split_url(url);
    let mut tcp = TcpStream::connect(&host).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
    );
    for p in protocols {
        request.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The head, byte by byte: SPDY frames may follow it at once.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if status != 101 {
        return Err(Refusal { status, headers });
    }
    let protocol = headers
        .iter()
        .find(|(n, _)| n == "x-stream-protocol-version")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (session, _incoming) = Session::new(tcp, Role::Client, SessionConfig::default());
    Ok((session, protocol))
}

/// What an exec or attach session gave back.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub error: Vec<u8>,
}

impl Outcome {
    /// The error stream as JSON (v4 and later).
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.error).unwrap()
    }
}

/// The streams a client asks for.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub stdin: Option<Vec<u8>>,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub resizes: Vec<TerminalSize>,
}

async fn open(session: &Session, kind: &str) -> Stream {
    session
        .open(Headers::new().with("streamType", kind))
        .await
        .unwrap()
}

async fn read_all(stream: Option<Stream>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut s) = stream {
        s.read_to_end(&mut out).await.unwrap();
    }
    out
}

/// Runs an exec or attach session over SPDY as client-go's executor does:
/// error stream first, then stdin, stdout, stderr (not with a terminal),
/// resize (with a terminal, from v3).
pub async fn spdy_session(session: &Session, protocol: &str, ask: Ask) -> Outcome {
    let error = open(session, "error").await;
    let stdin = match &ask.stdin {
        Some(_) => Some(open(session, "stdin").await),
        None => None,
    };
    let stdout = if ask.stdout {
        Some(open(session, "stdout").await)
    } else {
        None
    };
    let stderr = if ask.stderr && !ask.tty {
        Some(open(session, "stderr").await)
    } else {
        None
    };
    let resize = if ask.tty && !protocol.starts_with("v2") && protocol != "channel.k8s.io" {
        Some(open(session, "resize").await)
    } else {
        None
    };
    if let (Some(mut s), Some(bytes)) = (stdin, ask.stdin.clone()) {
        tokio::spawn(async move {
            s.write_all(&bytes).await.unwrap();
            s.shutdown().await.unwrap();
        });
    }
    if let Some(mut s) = resize {
        let sizes = ask.resizes.clone();
        tokio::spawn(async move {
            for size in sizes {
                let mut line = serde_json::to_vec(&size).unwrap();
                line.push(b'\n');
                s.write_all(&line).await.unwrap();
            }
        });
    }
    let (stdout, stderr, error) =
        tokio::join!(read_all(stdout), read_all(stderr), read_all(Some(error)));
    Outcome {
        stdout,
        stderr,
        error,
    }
}

/// Connects a WebSocket to `url` offering `protocols`.
pub async fn ws_connect(
    url: &str,
    protocols: &[&str],
) -> Result<(WebSocketStream<TcpStream>, String), Refusal> {
    let (host, path) = split_url(url);
    let mut request = format!("ws://{host}{path}").into_client_request().unwrap();
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    let tcp = TcpStream::connect(&host).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            Ok((ws, protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Refusal {
            status: response.status().as_u16(),
            headers: Vec::new(),
        }),
        Err(e) => panic!("websocket handshake: {e}"),
    }
}

/// Sends `data` on `channel` in the protocol's encoding.
pub async fn ws_send(ws: &mut WebSocketStream<TcpStream>, base64: bool, channel: u8, data: &[u8]) {
    let message = if base64 {
        let mut text = ((b'0' + channel) as char).to_string();
        text.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
        Message::Text(text.into())
    } else {
        let mut bytes = vec![channel];
        bytes.extend_from_slice(data);
        Message::Binary(bytes.into())
    };
    ws.send(message).await.unwrap();
}

/// Reads channel messages (binary, or base64 text) until the server
/// closes; returns the bytes of each channel (and how many messages each
/// had).
pub async fn ws_collect(ws: &mut WebSocketStream<TcpStream>) -> Vec<(Vec<u8>, usize)> {
    let mut channels = vec![(Vec::new(), 0); 8];
    while let Some(message) = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("the server closes in time")
    {
        let (channel, data) = match message.unwrap() {
            Message::Binary(b) => (b[0], b.slice(1..)),
            Message::Text(t) => {
                let t = t.as_str();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&t[1..])
                    .unwrap();
                (t.as_bytes()[0] - b'0', Bytes::from(data))
            }
            Message::Close(_) => break,
            _ => continue,
        };
        let slot = &mut channels[channel as usize];
        slot.0.extend_from_slice(&data);
        slot.1 += 1;
    }
    channels
}
