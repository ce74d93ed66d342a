//! Whole sessions through a real streaming server on loopback: exec,
//! attach and port-forward over SPDY and WebSocket, with a runtime that
//! runs real processes and forwards to real TCP servers.

mod common;

use std::time::Duration;

use common::{
    Ask, exec, server, spdy_connect, spdy_session, upper_server, ws_collect, ws_connect, ws_send,
};
use crun_shim_streaming::spdy::Headers;
use crun_shim_streaming::{
    AttachRequest, Config, ExecRequest, PortForwardRequest, StreamingServer, TerminalSize,
};
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const CLIENT_GO_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

fn out_and_err() -> Ask {
    Ask {
        stdout: true,
        stderr: true,
        ..Ask::default()
    }
}

/// A port-forward URL of pod "pod" for any port.
fn any_port_url(server: &StreamingServer<common::HostRuntime>) -> String {
    server
        .port_forward_url(PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: vec![],
        })
        .unwrap()
}

#[tokio::test]
async fn spdy_exec_gives_output_and_the_exit_code() {
    let server = server(Config::default()).await;
    let url = server
        .exec_url(exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
    let outcome = spdy_session(&session, &protocol, out_and_err()).await;
    assert_eq!(outcome.stdout, b"out\n");
    assert_eq!(outcome.stderr, b"err\n");
    let status = outcome.status();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let url = server.exec_url(exec(&["true"])).unwrap();
    let (session, protocol) = spdy_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let outcome = spdy_session(&session, &protocol, out_and_err()).await;
    assert_eq!(outcome.status()["status"], "Success");
}

#[tokio::test]
async fn spdy_exec_stdin_reaches_the_process_and_its_end_is_eof() {
    let server = server(Config::default()).await;
    // More than every window, so flow control has to work both ways.
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let url = server
        .exec_url(ExecRequest {
            stdin: true,
            ..exec(&["sha256sum"])
        })
        .unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let outcome = spdy_session(
        &session,
        &protocol,
        Ask {
            stdin: Some(input.clone()),
            ..out_and_err()
        },
    )
    .await;
    let expected = std::process::Command::new("sh")
        .args(["-c", "sha256sum"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&input)?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(outcome.stdout, expected.stdout);
    assert_eq!(outcome.status()["status"], "Success");

    // And a big output back.
    let url = server
        .exec_url(exec(&["head", "-c", "5000000", "/dev/zero"]))
        .unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let outcome = spdy_session(&session, &protocol, out_and_err()).await;
    assert_eq!(outcome.stdout.len(), 5_000_000);
}

#[tokio::test]
async fn older_spdy_protocols_tell_failures_as_text() {
    let server = server(Config::default()).await;
    for protocol in ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"] {
        let url = server
            .exec_url(exec(&["sh", "-c", "echo hi; exit 2"]))
            .unwrap();
        let (session, chosen) = spdy_connect(&url, &[protocol]).await.unwrap();
        assert_eq!(chosen, protocol);
        let outcome = spdy_session(&session, &chosen, out_and_err()).await;
        assert_eq!(outcome.stdout, b"hi\n");
        assert_eq!(
            String::from_utf8(outcome.error).unwrap(),
            "command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 2], exit code 2"
        );
        let url = server.exec_url(exec(&["true"])).unwrap();
        let (session, chosen) = spdy_connect(&url, &[protocol]).await.unwrap();
        let outcome = spdy_session(&session, &chosen, out_and_err()).await;
        assert!(outcome.error.is_empty(), "{protocol}: nothing on success");
    }
}

#[tokio::test]
async fn runtime_errors_are_internal_error_statuses() {
    let server = server(Config::default()).await;
    let url = server.exec_url(exec(&["fail"])).unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let status = spdy_session(&session, &protocol, out_and_err())
        .await
        .status();
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("no such container")
    );
}

#[tokio::test]
async fn spdy_tty_exec_receives_terminal_sizes() {
    let server = server(Config::default()).await;
    let url = server
        .exec_url(ExecRequest {
            tty: true,
            stdin: true,
            stderr: false,
            ..exec(&["report-resizes", "2"])
        })
        .unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let outcome = spdy_session(
        &session,
        &protocol,
        Ask {
            stdin: Some(Vec::new()),
            stdout: true,
            tty: true,
            resizes: vec![
                TerminalSize {
                    width: 80,
                    height: 24,
                },
                TerminalSize {
                    width: 132,
                    height: 50,
                },
            ],
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(outcome.stdout, b"80x24\n132x50\n");
    assert_eq!(outcome.status()["status"], "Success");
}

#[tokio::test]
async fn spdy_attach_carries_stdin_and_output() {
    let server = server(Config::default()).await;
    let url = server
        .attach_url(AttachRequest {
            container_id: "c1".into(),
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .unwrap();
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let outcome = spdy_session(
        &session,
        &protocol,
        Ask {
            stdin: Some(b"echo hello\n".to_vec()),
            ..out_and_err()
        },
    )
    .await;
    assert_eq!(outcome.stdout, b"echo hello\n");
    assert_eq!(outcome.stderr, b"detached\n");
    assert_eq!(outcome.status()["status"], "Success");
}

/// Opens a forwarded connection's streams as client-go does: the error
/// stream (closed at once on the client's side), then the data stream.
async fn open_forward(
    session: &crun_shim_streaming::spdy::Session,
    port: u16,
    request_id: u32,
) -> (
    crun_shim_streaming::spdy::Stream,
    crun_shim_streaming::spdy::Stream,
) {
    let headers = |kind: &str| {
        Headers::new()
            .with("streamType", kind)
            .with("port", port.to_string())
            .with("requestID", request_id.to_string())
    };
    let mut error = session.open(headers("error")).await.unwrap();
    error.shutdown().await.unwrap();
    let data = session.open(headers("data")).await.unwrap();
    (error, data)
}

/// One forwarded connection: sends `payload`, ends the client's side,
/// returns what came back and what the error stream said.
async fn forward_once(
    session: &crun_shim_streaming::spdy::Session,
    port: u16,
    request_id: u32,
    payload: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (mut error, mut data) = open_forward(session, port, request_id).await;
    data.write_all(payload).await.unwrap();
    data.shutdown().await.unwrap();
    let mut back = Vec::new();
    data.read_to_end(&mut back).await.unwrap();
    let mut message = Vec::new();
    error.read_to_end(&mut message).await.unwrap();
    (back, message)
}

#[tokio::test]
async fn spdy_port_forward_carries_concurrent_connections() {
    let server = server(Config::default()).await;
    let port = upper_server().await;
    let url = any_port_url(&server);
    let (session, protocol) = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    assert_eq!(protocol, "portforward.k8s.io");
    let big: Vec<u8> = b"abc".iter().cycle().take(400_000).copied().collect();
    let (one, two) = tokio::join!(
        forward_once(&session, port, 0, b"hello"),
        forward_once(&session, port, 1, &big),
    );
    assert_eq!(one, (b"HELLO".to_vec(), Vec::new()));
    assert_eq!(two.0, big.to_ascii_uppercase());
    assert!(two.1.is_empty());

    // A port nothing listens on: the error stream says so, as JSON.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (back, message) = forward_once(&session, closed, 2, b"x").await;
    assert!(back.is_empty());
    let message: serde_json::Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(message["closeConnection"], true);
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("error forwarding port {closed} to pod pod"))
    );
}

#[tokio::test]
async fn a_forward_the_client_resets_is_not_an_error() {
    // client-go resets a data stream once the pod's side is done; the
    // session must go on without an error (which would make the client
    // drop the whole connection).
    let server = server(Config::default()).await;
    let port = common::upper_echo_server().await;
    let url = any_port_url(&server);
    let (session, _) = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    let (mut error, mut data) = open_forward(&session, port, 0).await;
    data.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    data.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"PING");
    data.reset(crun_shim_streaming::spdy::RstStatus::Cancel);
    let mut message = Vec::new();
    error.read_to_end(&mut message).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&message), "");
    let (back, message) = forward_once(&session, port, 1, b"again").await;
    assert_eq!(
        (back.as_slice(), message.as_slice()),
        (&b"AGAIN"[..], &b""[..])
    );
}

#[tokio::test]
async fn spdy_port_forward_refuses_streams_it_cannot_serve() {
    let server = server(Config::default()).await;
    let url = server
        .port_forward_url(PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: vec![8080],
        })
        .unwrap();
    let (session, _) = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    for headers in [
        Headers::new().with("streamtype", "data"),
        Headers::new()
            .with("streamtype", "data")
            .with("port", "http"),
        Headers::new()
            .with("streamtype", "data")
            .with("port", "9090"),
        Headers::new()
            .with("streamtype", "bogus")
            .with("port", "8080"),
    ] {
        let refused = session.open(headers.clone()).await;
        assert!(refused.is_err(), "{headers:?} refused");
    }
}

#[tokio::test]
async fn websocket_v5_exec_closes_stdin_with_the_close_signal() {
    let server = server(Config::default()).await;
    let url = server
        .exec_url(ExecRequest {
            stdin: true,
            ..exec(&["sh", "-c", "cat; echo done >&2; exit 4"])
        })
        .unwrap();
    let (mut ws, protocol) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
    ws_send(&mut ws, false, 0, b"some input").await;
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let channels = ws_collect(&mut ws).await;
    assert_eq!(channels[1].0, b"some input");
    assert_eq!(channels[2].0, b"done\n");
    let status: serde_json::Value = serde_json::from_slice(&channels[3].0).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "4");
}

#[tokio::test]
async fn websocket_v4_base64_and_v1_exec() {
    let server = server(Config::default()).await;
    let url = server.exec_url(exec(&["printf", "\\001\\377bin"])).unwrap();
    let (mut ws, protocol) = ws_connect(&url, &["v4.base64.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(protocol, "v4.base64.channel.k8s.io");
    let channels = ws_collect(&mut ws).await;
    assert_eq!(channels[1].0, b"\x01\xffbin");
    // The first stdout message is the empty "ready" one.
    assert!(channels[1].1 >= 2);
    let status: serde_json::Value = serde_json::from_slice(&channels[3].0).unwrap();
    assert_eq!(status["status"], "Success");

    let url = server.exec_url(exec(&["sh", "-c", "exit 1"])).unwrap();
    let (mut ws, protocol) = ws_connect(&url, &["channel.k8s.io"]).await.unwrap();
    assert_eq!(protocol, "channel.k8s.io");
    let channels = ws_collect(&mut ws).await;
    assert!(String::from_utf8_lossy(&channels[3].0).contains("exit code 1"));
}

#[tokio::test]
async fn websocket_port_forward_names_its_ports_first() {
    let server = server(Config::default()).await;
    let port = common::upper_echo_server().await;
    let url = any_port_url(&server);
    let (mut ws, protocol) = ws_connect(&format!("{url}?port={port}"), &["v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(protocol, "v4.channel.k8s.io");
    // Each channel first says its port.
    let mut expected = vec![
        (0u8, port.to_le_bytes().to_vec()),
        (1, port.to_le_bytes().to_vec()),
    ];
    ws_send(&mut ws, false, 0, b"over websocket").await;
    expected.push((0, b"OVER WEBSOCKET".to_vec()));
    let mut got = Vec::new();
    let mut data = Vec::new();
    while data != [port.to_le_bytes().as_slice(), b"OVER WEBSOCKET"].concat() {
        let message =
            tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut ws))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        if let Message::Binary(b) = message {
            if b[0] == 0 {
                data.extend_from_slice(&b[1..]);
            }
            got.push((b[0], b[1..].to_vec()));
        }
    }
    assert!(got.starts_with(&expected[..1]) || got.starts_with(&expected[1..2]));
    assert!(got.contains(&expected[1]));
    ws.send(Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_forwards_ports() {
    use crun_shim_streaming::spdy::{Role, Session, SessionConfig};
    let server = server(Config::default()).await;
    let port = upper_server().await;
    let url = any_port_url(&server);
    let (ws, protocol) = ws_connect(&url, &["SPDY/3.1+portforward.k8s.io"])
        .await
        .unwrap();
    assert_eq!(protocol, "SPDY/3.1+portforward.k8s.io");
    let (session, _incoming) = Session::new(
        crun_shim_streaming::WebSocketBytes::new(ws),
        Role::Client,
        SessionConfig::default(),
    );
    let (back, message) = forward_once(&session, port, 0, b"tunnelled").await;
    assert_eq!(back, b"TUNNELLED");
    assert!(message.is_empty());
}

#[tokio::test]
async fn urls_are_single_use_and_bound_to_their_kind() {
    let server = server(Config::default()).await;
    let url = server.exec_url(exec(&["true"])).unwrap();
    // Another kind's path with this token: not found, token kept.
    let wrong = url.replace("/exec/", "/attach/");
    assert_eq!(
        spdy_connect(&wrong, &CLIENT_GO_PROTOCOLS)
            .await
            .unwrap_err()
            .status,
        404
    );
    let (session, protocol) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    spdy_session(&session, &protocol, out_and_err()).await;
    assert_eq!(
        spdy_connect(&url, &CLIENT_GO_PROTOCOLS)
            .await
            .unwrap_err()
            .status,
        404
    );

    let short = server_with_ttl(Duration::from_millis(50)).await;
    let url = short.exec_url(exec(&["true"])).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        spdy_connect(&url, &CLIENT_GO_PROTOCOLS)
            .await
            .unwrap_err()
            .status,
        404
    );
}

async fn server_with_ttl(
    ttl: Duration,
) -> crun_shim_streaming::StreamingServer<common::HostRuntime> {
    server(Config {
        token_ttl: ttl,
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn bad_upgrades_are_refused_with_reasons() {
    let server = server(Config::default()).await;
    let url = server.exec_url(exec(&["true"])).unwrap();
    let refusal = spdy_connect(&url, &["v9.channel.k8s.io"])
        .await
        .unwrap_err();
    assert_eq!(refusal.status, 403);
    let accepted: Vec<&str> = refusal
        .headers
        .iter()
        .filter(|(n, _)| n == "x-accepted-stream-protocol-versions")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(accepted, CLIENT_GO_PROTOCOLS);

    let url = server.exec_url(exec(&["true"])).unwrap();
    assert_eq!(spdy_connect(&url, &[]).await.unwrap_err().status, 400);
    let url = server.exec_url(exec(&["true"])).unwrap();
    assert_eq!(
        ws_connect(&url, &["v9.channel.k8s.io"])
            .await
            .unwrap_err()
            .status,
        403
    );
    let url = any_port_url(&server);
    assert_eq!(
        ws_connect(&url, &["v4.channel.k8s.io"])
            .await
            .unwrap_err()
            .status,
        400
    );
    assert!(
        server
            .exec_url(ExecRequest {
                tty: true,
                ..exec(&["true"])
            })
            .is_err()
    );
}

#[tokio::test]
async fn a_client_that_never_opens_its_streams_is_dropped() {
    let server = server(Config {
        stream_creation_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let url = server.exec_url(exec(&["true"])).unwrap();
    let (session, _) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let _error = session
        .open(Headers::new().with("streamtype", "error"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), session.ended())
        .await
        .expect("the server ends the session");
}

#[tokio::test]
async fn a_client_going_away_stops_the_process() {
    let server = server(Config::default()).await;
    let url = server
        .exec_url(exec(&["sh", "-c", "echo $$; exec sleep 600"]))
        .unwrap();
    let (session, _) = spdy_connect(&url, &CLIENT_GO_PROTOCOLS).await.unwrap();
    let _error = session
        .open(Headers::new().with("streamtype", "error"))
        .await
        .unwrap();
    let mut stdout = session
        .open(Headers::new().with("streamtype", "stdout"))
        .await
        .unwrap();
    let _stderr = session
        .open(Headers::new().with("streamtype", "stderr"))
        .await
        .unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        line.push(stdout.read_u8().await.unwrap());
    }
    let pid: u32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    let proc = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc).exists());
    drop((session, stdout));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&proc).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sleep {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
