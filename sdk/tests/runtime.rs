//! The SDK against a real daemon: `crun-shimd` with its local agent,
//! running busybox containers.

use std::time::Duration;

use futures::StreamExt;
use integration::host::HostProcess;
use integration::{BusyboxRootfs, until};
use libcrun_shim::*;

/// A daemon, a root filesystem and a runtime connected to the daemon.
struct Fixture {
    host: HostProcess,
    rootfs: BusyboxRootfs,
    runtime: ContainerRuntime,
}

async fn fixture() -> Fixture {
    let host = HostProcess::start_local().expect("crun-shimd");
    let runtime = ContainerRuntime::connect(&host.socket().display().to_string())
        .await
        .expect("connect");
    Fixture {
        host,
        rootfs: BusyboxRootfs::new().expect("rootfs"),
        runtime,
    }
}

impl Fixture {
    /// A container running `script` with `sh -c`.
    fn config(&self, id: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            root: RootSource::Rootfs(self.rootfs.path()),
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    /// Creates and starts a container running `script`.
    async fn run(&self, id: &str, script: &str) -> String {
        let id = self.runtime.create(self.config(id, script)).await.unwrap();
        self.runtime.start(&id).await.unwrap();
        id
    }
}

#[tokio::test]
async fn the_lifecycle_of_a_container() {
    let f = fixture().await;
    let rt = &f.runtime;
    let mut config = f.config("life", "sleep 600");
    config.labels.insert("app".into(), "test".into());
    let id = rt.create(config).await.unwrap();
    assert_eq!(id, "life");
    let info = rt.inspect(&id).await.unwrap();
    assert_eq!(info.status, ContainerStatus::Created);
    assert_eq!(info.config.labels["app"], "test");
    assert!(info.oci_spec_json.unwrap().contains("\"ociVersion\""));

    rt.start(&id).await.unwrap();
    let running = rt
        .list_with(ListFilter {
            statuses: vec![ContainerStatus::Running],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, "life");
    assert!(running[0].pid > 0);
    assert_eq!(running[0].agent, "local");

    rt.pause(&id).await.unwrap();
    assert_eq!(
        rt.inspect(&id).await.unwrap().status,
        ContainerStatus::Paused
    );
    rt.resume(&id).await.unwrap();
    assert_eq!(
        rt.inspect(&id).await.unwrap().status,
        ContainerStatus::Running
    );

    let updated = rt
        .update(
            &id,
            ResourceLimits {
                memory: Some(64 << 20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.config.resources.memory, Some(64 << 20));

    rt.stop_with_timeout(&id, Duration::from_secs(1))
        .await
        .unwrap();
    let stopped = rt.inspect(&id).await.unwrap();
    assert_eq!(stopped.status, ContainerStatus::Stopped);
    let exit = stopped.last_exit.expect("an exit status");
    // sleep, the container's init, ignores SIGTERM: SIGKILL after 1 s.
    assert_eq!((exit.exit_code, exit.signal), (137, 9), "{exit:?}");
    assert_eq!(rt.wait(&id).await.unwrap(), exit);

    rt.delete(&id).await.unwrap();
    assert!(matches!(rt.inspect(&id).await, Err(Error::NotFound(_))));
    assert!(rt.list().await.unwrap().is_empty());
}

/// `run` through the daemon: output as written, the exit last, and with
/// `remove` the container gone (from the daemon's routing too: the id can
/// be used again at once).
#[tokio::test]
async fn run_to_the_end_in_one_call() {
    let f = fixture().await;
    let rt = &f.runtime;
    for round in 0..2 {
        let config = f.config("once", "echo one; echo two >&2; exit 4");
        let mut run = rt.run(config, RunOptions { remove: true }).await.unwrap();
        let mut seen = Vec::new();
        while let Some(event) = run.next().await {
            seen.push(event.unwrap());
        }
        match &seen[..] {
            [RunEvent::Started(info), rest @ .., RunEvent::Exit(exit)] => {
                assert_eq!(info.status, ContainerStatus::Running, "round {round}");
                assert!(!info.agent.is_empty(), "the daemon names the agent");
                assert_eq!(exit.exit_code, 4);
                let mut out: Vec<(OutputStream, String)> = rest
                    .iter()
                    .map(|e| match e {
                        RunEvent::Output(c) => {
                            (c.stream, String::from_utf8_lossy(&c.data).into_owned())
                        }
                        other => panic!("{other:?} between started and exit"),
                    })
                    .collect();
                out.sort_by_key(|(stream, _)| *stream == OutputStream::Stderr);
                assert_eq!(
                    out,
                    [
                        (OutputStream::Stdout, "one\n".to_string()),
                        (OutputStream::Stderr, "two\n".to_string())
                    ]
                );
            }
            other => panic!("unexpected run: {other:?}"),
        }
        let gone = rt.inspect("once").await.unwrap_err();
        assert!(matches!(gone, Error::NotFound(_)), "{gone:?}");
    }
    // A create that fails is the call's error.
    let mut bad = f.config("bad", "true");
    bad.root = RootSource::Rootfs("/nonexistent-rootfs".into());
    let failed = rt
        .run(bad, RunOptions::default())
        .await
        .err()
        .expect("error");
    assert!(matches!(failed, Error::NotFound(_)), "{failed:?}");
}

#[tokio::test]
async fn wait_and_kill_and_forced_delete() {
    let f = fixture().await;
    let rt = &f.runtime;
    let id = f.run("exits", "exit 7").await;
    assert_eq!(rt.wait(&id).await.unwrap().exit_code, 7);

    let id = f.run("killed", "sleep 600").await;
    rt.kill(&id, "KILL").await.unwrap();
    let exit = rt.wait(&id).await.unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, 9));

    let id = f.run("forced", "sleep 600").await;
    assert!(matches!(
        rt.delete(&id).await,
        Err(Error::FailedPrecondition(_))
    ));
    rt.delete_with(&id, true).await.unwrap();
    assert_eq!(rt.cleanup_stopped().await.unwrap().len(), 2);
    assert!(rt.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn exec_returns_output_and_exit_code() {
    let f = fixture().await;
    let rt = &f.runtime;
    let id = f.run("exec", "sleep 600").await;

    let result = rt
        .exec(&id, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        .await
        .unwrap();
    assert_eq!(
        (
            result.exit_code,
            result.stdout.as_str(),
            result.stderr.as_str()
        ),
        (3, "out\n", "err\n")
    );

    let result = rt
        .exec_with(
            &id,
            ExecOptions {
                input: "four".into(),
                env: vec!["X=y".into()],
                ..ExecOptions::new(["sh", "-c", "wc -c; echo $X"])
            },
        )
        .await
        .unwrap();
    assert_eq!(
        result.stdout.split_whitespace().collect::<Vec<_>>(),
        ["4", "y"]
    );

    // Interactive: stdin in, output out as it comes.
    let mut session = rt
        .exec_interactive(
            &id,
            ExecOptions {
                stdin: true,
                ..ExecOptions::new(["sh", "-c", "read line; echo got $line; exit 5"])
            },
        )
        .await
        .unwrap();
    assert!(session.pid() > 0);
    session.input().write("hello\n").await.unwrap();
    let mut stdout = Vec::new();
    let exit = loop {
        match session.next().await.expect("output").unwrap() {
            ExecOutput::Stdout(bytes) => stdout.extend_from_slice(&bytes),
            ExecOutput::Stderr(_) => {}
            ExecOutput::Exit(exit) => break exit,
        }
    };
    assert_eq!((exit.exit_code, &stdout[..]), (5, &b"got hello\n"[..]));
    assert!(session.next().await.is_none());

    // A tty: stdout and stderr merged, and the size given. libcrun sets
    // that size from its side once the process runs, so the process may
    // see 0x0 at first (then SIGWINCH): ask until it is there.
    let ask = "for i in $(seq 50); do s=$(stty size 2>&1); [ \"$s\" = '33 101' ] && break; sleep 0.1; done; echo $s";
    let session = rt
        .exec_interactive(
            &id,
            ExecOptions {
                tty: true,
                terminal_size: Some(TerminalSize {
                    rows: 33,
                    cols: 101,
                }),
                ..ExecOptions::new(["sh", "-c", ask])
            },
        )
        .await
        .unwrap();
    let result = session.wait().await.unwrap();
    assert_eq!(result.stdout.trim(), "33 101");

    let stopped = f.run("stopped", "true").await;
    rt.wait(&stopped).await.unwrap();
    assert!(matches!(
        rt.exec(&stopped, ["true"]).await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test]
async fn logs_with_tail_and_follow() {
    let f = fixture().await;
    let rt = &f.runtime;
    let id = f
        .run(
            "talker",
            "for i in 1 2 3 4 5; do echo line$i; echo oops$i >&2; sleep 0.2; done",
        )
        .await;
    // Following from the start returns once the container has exited, with everything.
    let all = rt
        .logs(
            &id,
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.stdout, "line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(all.stderr, "oops1\noops2\noops3\noops4\noops5\n");

    let tail = rt
        .logs(
            &id,
            LogOptions {
                tail: Some(2),
                stream: Some(OutputStream::Stdout),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        ("line4\nline5\n", "")
    );

    let mut chunks = rt
        .logs_stream(
            &id,
            LogOptions {
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(first.time.is_some());
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    let none = rt
        .logs(
            &id,
            LogOptions {
                since: Some(future),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(none, Logs::default());
}

#[tokio::test]
async fn events_arrive_on_the_receiver() {
    let f = fixture().await;
    let rt = &f.runtime;
    let mut receiver = rt
        .subscribe_events_with(EventFilter {
            container_ids: vec!["evented".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let id = f.run("evented", "exit 4").await;
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), receiver.recv())
        .await
        .expect("an event within 20s")
    {
        assert_eq!(event.container_id, id);
        seen.push(event.event_type);
        if event.event_type == ContainerEventType::Exit {
            assert_eq!(event.exit_code, Some(4));
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ContainerEventType::Create,
            ContainerEventType::Start,
            ContainerEventType::Exit
        ]
    );

    // Replaying from the journal gives the same events, numbered in order.
    let mut replay = rt
        .event_stream(EventFilter {
            since: Some(0),
            types: vec![ContainerEventType::Create, ContainerEventType::Exit],
            ..Default::default()
        })
        .await
        .unwrap();
    let create = replay.next().await.unwrap().unwrap();
    let exit = replay.next().await.unwrap().unwrap();
    assert_eq!(
        (create.event_type, exit.event_type),
        (ContainerEventType::Create, ContainerEventType::Exit)
    );
    assert!(exit.sequence > create.sequence);
}

#[tokio::test]
async fn metrics_of_a_running_container() {
    let f = fixture().await;
    let rt = &f.runtime;
    let id = f
        .run(
            "busy",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 600",
        )
        .await;
    let metrics = rt.metrics(&id).await.unwrap();
    assert_eq!(metrics.container_id, id);
    assert!(metrics.pids.current >= 1, "{metrics:?}");
    assert!(metrics.memory.usage > 0, "{metrics:?}");
    assert!(metrics.cpu.usage_total > 0, "{metrics:?}");

    let all = rt.all_metrics().await.unwrap();
    assert!(all.iter().any(|m| m.container_id == id));

    let mut ticks = rt
        .metrics_stream(std::slice::from_ref(&id), Duration::from_millis(200))
        .await
        .unwrap();
    for _ in 0..2 {
        let tick = ticks.next().await.unwrap().unwrap();
        assert_eq!(tick.len(), 1);
        assert_eq!(tick[0].container_id, id);
    }
}

#[tokio::test]
async fn a_health_check_turns_healthy_or_unhealthy() {
    let f = fixture().await;
    let rt = &f.runtime;
    let check = |script: &str| HealthCheck {
        command: vec!["sh".into(), "-c".into(), script.into()],
        interval: Some(Duration::from_millis(200)),
        timeout: Some(Duration::from_secs(5)),
        retries: Some(1),
        start_period: None,
    };
    let mut good = f.config("good", "touch /tmp/ready; sleep 600");
    good.health_check = Some(check("test -e /tmp/ready"));
    let mut bad = f.config("bad", "sleep 600");
    bad.health_check = Some(check("echo nope; exit 1"));
    for config in [good, bad] {
        let id = rt.create(config).await.unwrap();
        rt.start(&id).await.unwrap();
    }
    until("good healthy", || async {
        rt.health("good").await.unwrap().status == HealthStatus::Healthy
    })
    .await;
    until("bad unhealthy", || async {
        rt.health("bad").await.unwrap().status == HealthStatus::Unhealthy
    })
    .await;
    let bad = rt.health("bad").await.unwrap();
    assert!(bad.failing_streak >= 1);
    let last = bad.recent_results.last().expect("a result");
    assert_eq!((last.exit_code, last.output.as_str()), (1, "nope\n"));
    assert_eq!(
        rt.inspect("good").await.unwrap().health_status,
        HealthStatus::Healthy
    );

    let plain = f.run("plain", "sleep 600").await;
    assert_eq!(rt.health(&plain).await.unwrap().status, HealthStatus::None);
}

#[tokio::test]
async fn errors_can_be_matched() {
    let f = fixture().await;
    let rt = &f.runtime;
    assert!(matches!(rt.inspect("ghost").await, Err(Error::NotFound(_))));
    assert!(matches!(rt.start("ghost").await, Err(Error::NotFound(_))));
    assert!(matches!(
        rt.inspect("../etc").await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        rt.create(f.config("bad/id", "true")).await,
        Err(Error::InvalidArgument(_))
    ));
    let id = f.run("twice", "sleep 600").await;
    assert!(matches!(
        rt.create(f.config("twice", "true")).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        rt.start(&id).await,
        Err(Error::FailedPrecondition(_))
    ));
    let err = rt.delete(&id).await.unwrap_err();
    assert!(
        err.to_string().starts_with("failed precondition: "),
        "{err}"
    );

    // No daemon there: Unavailable, naming the endpoint.
    let missing = f.host.dir().join("nothing.sock");
    let err = ContainerRuntime::connect(&missing.display().to_string())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
    assert!(err.is_transient());

    let err = ContainerRuntime::new_with_config(RuntimeConfig {
        endpoint: "ftp://nowhere".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[tokio::test]
async fn the_runtime_reports_on_itself() {
    let f = fixture().await;
    let rt = &f.runtime;
    let version = rt.version().await.unwrap();
    assert_eq!(
        (version.component.as_str(), version.api_version.as_str()),
        ("crun-shimd", "v1")
    );
    until("the local agent ready", || async {
        rt.info()
            .await
            .unwrap()
            .agents
            .first()
            .is_some_and(|a| a.state == AgentState::Ready)
    })
    .await;
    let info = rt.info().await.unwrap();
    assert_eq!(info.agents.len(), 1);
    assert_eq!(info.agents[0].name, "local");
    assert!(!info.agents[0].libcrun_version.is_empty());

    assert!(rt.list_orphaned().await.unwrap().is_empty());
    let report = rt.recover().await.unwrap();
    assert!(report.orphans.is_empty(), "{report:?}");
    assert!(rt.force_delete("never-was").await.unwrap().is_empty());

    let id = f.run("done", "true").await;
    rt.wait(&id).await.unwrap();
    assert_eq!(rt.cleanup_stopped().await.unwrap(), vec![id]);
}

#[tokio::test]
async fn images_pulled_with_progress_and_a_prepared_rootfs() {
    let f = fixture().await;
    let registry = integration::registry::Registry::start().expect("docker-registry");
    let layer = integration::registry::tar_of_dir(&f.rootfs.path()).expect("layer");
    let image = integration::registry::TestImage::new(
        vec![(layer, integration::registry::Compression::Zstd)],
        serde_json::json!({"Env": ["GREETING=hi"], "Cmd": ["/bin/sh"]}),
        "amd64",
    );
    registry
        .push("sdk/busybox", "v1", &image)
        .await
        .expect("push");
    let reference = format!("{}/sdk/busybox:v1", registry.host());

    let store = f.runtime.images();
    let mut reports = Vec::new();
    let pulled = store
        .pull(&reference, |p: &PullProgress| {
            reports.push((p.downloaded_bytes, p.total_bytes))
        })
        .await
        .expect("pull");
    assert_eq!(pulled.id, image.id());
    assert_eq!(pulled.config.env, vec!["GREETING=hi".to_string()]);
    let (done, total) = *reports.last().expect("progress");
    assert!(total > 0 && done == total, "{reports:?}");
    assert_eq!(store.list().await.unwrap().len(), 1);

    let rootfs = store.get_rootfs(&reference).await.expect("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());

    let e = store.remove("not/pulled", false).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    store.remove(&reference, false).await.expect("remove");
    assert!(store.list().await.unwrap().is_empty());
}

/// The daemon killed while a call waits on it: `Error::Unavailable`, not
/// an internal "transport error".
#[tokio::test]
async fn a_daemon_dying_mid_call_is_unavailable() {
    let mut f = fixture().await;
    let id = f.run("waited", "sleep 600").await;
    let rt = f.runtime.clone();
    let waiting = tokio::spawn(async move { rt.wait(&id).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.host.kill();
    let err = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the wait ends")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}
