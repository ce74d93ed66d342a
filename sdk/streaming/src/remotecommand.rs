//! Exec and attach sessions (Kubernetes' remotecommand protocols) over SPDY
//! and WebSocket: which streams the client opens, how the outcome is told on
//! the error stream, and terminal resizes.

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use crate::reset::ResetAsEof;
use crate::runtime::{
    AttachRequest, ExecRequest, Input, Output, ProcessIo, Runtime, RuntimeError, TerminalSize,
};
use crate::server::Limits;
use crate::spdy::{self, Role, Session};
use crate::websocket::{Channels, Codec};

/// The remotecommand protocols over SPDY, most preferred first.
pub(crate) const SPDY_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The remotecommand protocols over WebSocket ("" is a client that named
/// none: the binary v1 protocol).
pub(crate) const WEBSOCKET_PROTOCOLS: [&str; 6] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];

/// A remotecommand protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V1,
    V2,
    V3,
    V4,
    V5,
}

impl Version {
    /// The version of a protocol name of [`SPDY_PROTOCOLS`] or
    /// [`WEBSOCKET_PROTOCOLS`].
    pub(crate) fn of(protocol: &str) -> Version {
        match protocol.split('.').next() {
            Some("v5") => Version::V5,
            Some("v4") => Version::V4,
            Some("v3") => Version::V3,
            Some("v2") => Version::V2,
            _ => Version::V1,
        }
    }

    /// From v4 on, the error stream carries a JSON `metav1.Status`.
    fn status_json(self) -> bool {
        self >= Version::V4
    }
}

/// What a session runs.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Exec(ExecRequest),
    Attach(AttachRequest),
}

impl Command {
    fn streams(&self) -> (bool, bool, bool, bool) {
        match self {
            Command::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
            Command::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        }
    }
}

/// How a session ended.
#[derive(Debug)]
enum Outcome {
    Exited(i32),
    Attached,
    Failed(RuntimeError),
}

async fn run<R: Runtime>(runtime: &R, command: Command, io: ProcessIo) -> Outcome {
    match command {
        Command::Exec(request) => match runtime.exec(request, io).await {
            Ok(code) => Outcome::Exited(code),
            Err(e) => Outcome::Failed(e),
        },
        Command::Attach(request) => match runtime.attach(request, io).await {
            Ok(()) => Outcome::Attached,
            Err(e) => Outcome::Failed(e),
        },
    }
}

/// What the error stream says about `outcome` (nothing for a success
/// before v4), as the kubelet writes it.
fn status_message(version: Version, command: &Command, outcome: &Outcome) -> Option<Vec<u8>> {
    let status = match outcome {
        Outcome::Exited(0) | Outcome::Attached => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) if (0..=255).contains(code) => {
            let argv = match command {
                Command::Exec(r) => r.command.join(" "),
                Command::Attach(_) => String::new(),
            };
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command [{argv}], exit code {code}"
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Outcome::Exited(code) => internal_error(&format!("exit code {code} out of range")),
        Outcome::Failed(e) => {
            let what = match command {
                Command::Exec(_) => "error executing command in container",
                Command::Attach(_) => "error attaching to container",
            };
            internal_error(&format!("{what}: {e}"))
        }
    };
    if version.status_json() {
        return Some(serde_json::to_vec(&status).expect("JSON"));
    }
    // Before v4: the message alone, and nothing on success.
    (status["status"] != "Success").then(|| {
        status["message"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec()
    })
}

fn internal_error(message: &str) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// Reads the JSON terminal sizes a client sends, one after another, and
/// passes them on until the stream ends.
pub(crate) fn resizes<R>(mut input: R) -> mpsc::Receiver<TerminalSize>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            match input.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let mut sizes = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            let mut consumed = 0;
            loop {
                match sizes.next() {
                    Some(Ok(size)) => {
                        consumed = sizes.byte_offset();
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        tracing::debug!("malformed terminal size: resize stream dropped");
                        return;
                    }
                    None => {
                        consumed = buf.len();
                        break;
                    }
                }
            }
            buf.drain(..consumed);
            if buf.len() > 4096 {
                return;
            }
        }
    });
    rx
}

/// Serves an exec or attach over an upgraded SPDY connection.
pub(crate) async fn serve_spdy<R, T>(
    io: T,
    protocol: &str,
    command: Command,
    runtime: Arc<R>,
    limits: Limits,
) where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let version = Version::of(protocol);
    let (session, mut incoming) = Session::new(io, Role::Server, limits.session_config());
    let (stdin, stdout, stderr, tty) = command.streams();
    let resize_wanted = tty && version >= Version::V3;
    let expected = 1 + stdin as usize + stdout as usize + stderr as usize + resize_wanted as usize;

    let mut error = None;
    let mut input = None;
    let mut outputs: [Option<spdy::Stream>; 2] = [None, None];
    let mut resize = None;
    let mut received = 0;
    let deadline = tokio::time::sleep(limits.stream_creation_timeout);
    tokio::pin!(deadline);
    while received < expected {
        let stream = tokio::select! {
            s = incoming.next() => match s {
                Some(s) => s,
                None => return,
            },
            () = &mut deadline => {
                tracing::warn!("timed out waiting for the client's streams");
                session.finish(limits.close_grace).await;
                return;
            }
        };
        let kind = stream.headers().get("streamtype").unwrap_or("").to_string();
        let slot = match kind.as_str() {
            "error" => &mut error,
            "stdin" if stdin => &mut input,
            "stdout" if stdout => &mut outputs[0],
            "stderr" if stderr => &mut outputs[1],
            "resize" if resize_wanted => &mut resize,
            _ => {
                tracing::debug!(kind, "refusing an unexpected stream");
                stream.refuse();
                continue;
            }
        };
        if slot.is_some() {
            stream.refuse();
            continue;
        }
        *slot = Some(stream.accept());
        received += 1;
    }
    let Some(mut error) = error else { return };

    let mut io = ProcessIo {
        tty,
        ..ProcessIo::default()
    };
    // The server keeps stdin's sending half, to end it last: v2+ clients
    // stop sending stdin when the server ends that stream.
    let mut stdin_end = None;
    if let Some(s) = input {
        let (recv, send) = s.into_split();
        io.stdin = Some(Box::new(ResetAsEof::new(recv, Default::default())) as Input);
        stdin_end = Some(send);
    }
    let [out, err] = outputs;
    io.stdout = out.map(|s| Box::new(s.into_split().1) as Output);
    io.stderr = err.map(|s| Box::new(s.into_split().1) as Output);
    io.resize = resize.map(|s| resizes(s.into_split().0));

    let outcome = tokio::select! {
        outcome = run(&*runtime, command.clone(), io) => outcome,
        () = session.ended() => return,
    };
    if let Some(message) = status_message(version, &command, &outcome) {
        let _ = error.write_all(&message).await;
    }
    let _ = error.shutdown().await;
    drop(stdin_end);
    session.finish(limits.close_grace).await;
}

/// Serves an exec or attach over an upgraded WebSocket.
pub(crate) async fn serve_websocket<R, T>(
    ws: WebSocketStream<T>,
    protocol: &str,
    command: Command,
    runtime: Arc<R>,
    limits: Limits,
) where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    const STDIN: u8 = 0;
    const STDOUT: u8 = 1;
    const STDERR: u8 = 2;
    const ERROR: u8 = 3;
    const RESIZE: u8 = 4;
    let version = Version::of(protocol);
    let codec = if protocol.contains("base64") {
        Codec::Base64
    } else {
        Codec::Binary
    };
    let (stdin, stdout, stderr, tty) = command.streams();
    let mut channels = Channels::open(
        ws,
        codec,
        &[stdin, false, false, false, tty],
        version >= Version::V5,
    );
    // An empty message on the lowest writable channel tells the client the
    // session is ready.
    let ready = if stdout {
        STDOUT
    } else if stderr {
        STDERR
    } else {
        ERROR
    };
    channels.send(ready, Vec::new()).await;

    let io = ProcessIo {
        stdin: channels.take_input(STDIN),
        stdout: stdout.then(|| channels.output(STDOUT)),
        stderr: stderr.then(|| channels.output(STDERR)),
        resize: channels.take_input(RESIZE).map(resizes),
        tty,
    };
    let outcome = tokio::select! {
        outcome = run(&*runtime, command.clone(), io) => outcome,
        () = channels.client_gone() => return,
    };
    if let Some(message) = status_message(version, &command, &outcome) {
        channels.send(ERROR, message).await;
    }
    channels.close(limits.close_grace).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &[&str]) -> Command {
        Command::Exec(ExecRequest {
            container_id: "c".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
    }

    fn status(version: Version, outcome: Outcome) -> Option<String> {
        status_message(version, &exec(&["sh", "-c", "exit 3"]), &outcome)
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn v4_statuses_are_what_client_go_decodes() {
        assert_eq!(
            status(Version::V4, Outcome::Exited(0)).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let failed: serde_json::Value =
            serde_json::from_str(&status(Version::V5, Outcome::Exited(3)).unwrap()).unwrap();
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        let internal: serde_json::Value = serde_json::from_str(
            &status(
                Version::V4,
                Outcome::Failed(RuntimeError::new("no such container")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(internal["reason"], "InternalError");
        assert_eq!(internal["code"], 500);
        assert_eq!(
            internal["message"],
            "Internal error occurred: error executing command in container: no such container"
        );
    }

    #[test]
    fn older_versions_tell_failures_as_text_only() {
        assert_eq!(status(Version::V3, Outcome::Exited(0)), None);
        assert_eq!(status(Version::V1, Outcome::Attached), None);
        assert_eq!(
            status(Version::V2, Outcome::Exited(3)).unwrap(),
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert!(
            status(Version::V1, Outcome::Exited(300))
                .unwrap()
                .contains("out of range")
        );
    }

    #[test]
    fn protocol_names_map_to_versions() {
        assert_eq!(Version::of("v5.channel.k8s.io"), Version::V5);
        assert_eq!(Version::of("v4.base64.channel.k8s.io"), Version::V4);
        assert_eq!(Version::of("channel.k8s.io"), Version::V1);
        assert_eq!(Version::of("base64.channel.k8s.io"), Version::V1);
        assert_eq!(Version::of(""), Version::V1);
    }

    #[tokio::test]
    async fn resizes_arrive_across_chunk_boundaries() {
        let (mut w, r) = tokio::io::duplex(64);
        let mut sizes = resizes(r);
        w.write_all(br#"{"Width":80,"Hei"#).await.unwrap();
        w.write_all(b"ght\":24}\n{\"Width\":100,\"Height\":40}\n")
            .await
            .unwrap();
        drop(w);
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 100,
                height: 40
            })
        );
        assert_eq!(sizes.recv().await, None);
    }
}
