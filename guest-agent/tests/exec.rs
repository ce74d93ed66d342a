//! Exec through a real agent: stdin and its EOF, a terminal with resize,
//! ExecSync with timeouts and bounded output, refusals.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use libcrun_shim_proto::v1 as pb;
use pb::exec_request::Request as In;
use pb::exec_response::Response as Out;
use tokio_stream::wrappers::ReceiverStream;

// Each of these runs against a fresh local agent and against the VM's agent.
crate::on_local_and_vm!(
    stdin_reaches_the_process_and_its_eof_too,
    a_terminal_with_resize,
    exec_sync_timeouts_and_bounded_output,
    exec_refusals,
);

fn start(container: &str, command: &[&str], tty: bool, stdin: bool) -> pb::ExecRequest {
    pb::ExecRequest {
        request: Some(In::Start(pb::ExecStart {
            container_id: container.into(),
            exec_id: String::new(),
            process: Some(pb::ProcessSpec {
                command: command.iter().map(|s| s.to_string()).collect(),
                tty,
                ..Default::default()
            }),
            stdin,
            terminal_size: tty.then_some(pb::TerminalSize {
                rows: 30,
                cols: 100,
            }),
        })),
    }
}

fn msg(request: In) -> pb::ExecRequest {
    pb::ExecRequest {
        request: Some(request),
    }
}

/// Collected output of an exec stream.
#[derive(Default, Debug)]
struct Collected {
    started: Option<pb::ExecStarted>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<pb::ExitStatus>,
}

async fn collect(
    stream: &mut tonic::Streaming<pb::ExecResponse>,
    until: impl Fn(&Collected) -> bool,
) -> Collected {
    let mut c = Collected::default();
    while let Some(r) = stream.message().await.expect("exec stream") {
        assert!(c.exit.is_none(), "nothing may follow the exit");
        match r.response.expect("response") {
            Out::Started(s) => {
                assert!(
                    c.started.is_none() && c.stdout.is_empty(),
                    "started comes first, once"
                );
                c.started = Some(s);
            }
            Out::Stdout(d) => c.stdout.extend_from_slice(&d),
            Out::Stderr(d) => c.stderr.extend_from_slice(&d),
            Out::Exit(e) => c.exit = Some(e),
        }
        if until(&c) {
            break;
        }
    }
    c
}

async fn stdin_reaches_the_process_and_its_eof_too(mut h: Harness) {
    h.run("box", "sleep 60").await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(start(
        "box",
        &["sh", "-c", "cat; echo done >&2; exit 5"],
        false,
        true,
    ))
    .await
    .unwrap();
    tx.send(msg(In::Stdin("hello ".into()))).await.unwrap();
    tx.send(msg(In::Stdin("world\n".into()))).await.unwrap();
    tx.send(msg(In::CloseStdin(pb::CloseStdin {})))
        .await
        .unwrap();
    let mut stream = h
        .exec
        .exec(ReceiverStream::new(rx))
        .await
        .expect("exec")
        .into_inner();
    // The client keeps its side open: EOF must come from close_stdin alone.
    let c = tokio::time::timeout(Duration::from_secs(20), collect(&mut stream, |_| false))
        .await
        .expect("cat saw EOF and exited");
    drop(tx);
    assert!(c.started.as_ref().unwrap().pid > 0);
    assert_eq!(c.stdout, b"hello world\n");
    assert_eq!(c.stderr, b"done\n");
    let exit = c.exit.expect("exit last");
    assert_eq!((exit.exit_code, exit.signal), (5, 0));
    // The exec is gone from the container once it exited.
    assert!(h.inspect("box").await.exec_ids.is_empty());
}

async fn a_terminal_with_resize(mut h: Harness) {
    h.run("tty", "sleep 60").await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(start("tty", &["sh"], true, true)).await.unwrap();
    let mut stream = h
        .exec
        .exec(ReceiverStream::new(rx))
        .await
        .expect("exec")
        .into_inner();
    tx.send(msg(In::Stdin("tty; stty size\n".into())))
        .await
        .unwrap();
    let c = tokio::time::timeout(
        Duration::from_secs(20),
        collect(&mut stream, |c| {
            String::from_utf8_lossy(&c.stdout).contains("30 100")
        }),
    )
    .await
    .expect("initial size");
    assert!(
        String::from_utf8_lossy(&c.stdout).contains("/dev/pts/"),
        "{:?}",
        String::from_utf8_lossy(&c.stdout)
    );
    tx.send(msg(In::Resize(pb::TerminalSize {
        rows: 50,
        cols: 132,
    })))
    .await
    .unwrap();
    tx.send(msg(In::Stdin("stty size\n".into()))).await.unwrap();
    let c = tokio::time::timeout(
        Duration::from_secs(20),
        collect(&mut stream, |c| {
            String::from_utf8_lossy(&c.stdout).contains("50 132")
        }),
    )
    .await
    .expect("resized");
    assert!(c.stderr.is_empty(), "a terminal has one output stream");
    tx.send(msg(In::Stdin("exit 4\n".into()))).await.unwrap();
    let c = tokio::time::timeout(Duration::from_secs(20), collect(&mut stream, |_| false))
        .await
        .expect("exit");
    assert_eq!(c.exit.expect("exit").exit_code, 4);
}

async fn exec_sync_timeouts_and_bounded_output(mut h: Harness) {
    h.run("sync", "sleep 60").await;
    let sync = |command: &[&str], timeout_ms: i32, max: u64| pb::ExecSyncRequest {
        container_id: "sync".into(),
        process: Some(pb::ProcessSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        timeout: (timeout_ms > 0).then_some(prost_types::Duration {
            seconds: 0,
            nanos: timeout_ms * 1_000_000,
        }),
        max_output_bytes: max,
        stdin: Default::default(),
    };
    let r = h
        .exec
        .exec_sync(sync(&["sh", "-c", "echo out; echo err >&2; exit 2"], 0, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.stdout.as_ref(), r.stderr.as_ref()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(r.exit.unwrap().exit_code, 2);
    assert!(!r.timed_out);

    let began = Instant::now();
    let r = h
        .exec
        .exec_sync(sync(&["sleep", "30"], 500, 0))
        .await
        .unwrap()
        .into_inner();
    assert!(r.timed_out);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "killed at the timeout"
    );
    assert_eq!(r.exit.unwrap().signal, 9);

    let r = h
        .exec
        .exec_sync(sync(&["sh", "-c", "yes | head -c 100000"], 0, 1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.stdout_truncated && !r.stderr_truncated);

    let mut with_stdin = sync(&["sh", "-c", "tr a-z A-Z"], 0, 0);
    with_stdin.stdin = "shout\n".into();
    let r = h.exec.exec_sync(with_stdin).await.unwrap().into_inner();
    assert_eq!(r.stdout.as_ref(), b"SHOUT\n");

    let r = h
        .exec
        .exec_sync(sync(&["id", "-u"], 0, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stdout.as_ref(), b"0\n");
    let mut as_nobody = sync(&["id", "-u"], 0, 0);
    as_nobody.process.as_mut().unwrap().user = "nobody".into();
    let r = h.exec.exec_sync(as_nobody).await.unwrap().into_inner();
    assert_eq!(r.stdout.as_ref(), b"65534\n");
}

async fn exec_refusals(mut h: Harness) {
    let config = h.sh("created", "sleep 60");
    h.create(config).await.unwrap();
    let request = |id: &str, command: Vec<String>| pb::ExecSyncRequest {
        container_id: id.into(),
        process: Some(pb::ProcessSpec {
            command,
            ..Default::default()
        }),
        ..Default::default()
    };
    let code =
        |r: Result<tonic::Response<pb::ExecSyncResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(
            h.exec
                .exec_sync(request("created", vec!["true".into()]))
                .await
        ),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        code(h.exec.exec_sync(request("nope", vec!["true".into()])).await),
        tonic::Code::NotFound
    );
    h.start_container("created").await;
    assert_eq!(
        code(h.exec.exec_sync(request("created", vec![])).await),
        tonic::Code::InvalidArgument
    );
    let missing = h
        .exec
        .exec_sync(request("created", vec!["/no/such/program".into()]))
        .await
        .unwrap_err();
    assert!(
        missing.message().contains("/no/such/program"),
        "{missing:?}"
    );
    h.run("done", "exit 0").await;
    h.wait("done").await;
    assert_eq!(
        code(h.exec.exec_sync(request("done", vec!["true".into()])).await),
        tonic::Code::FailedPrecondition
    );
}
