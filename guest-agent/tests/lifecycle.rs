//! The container lifecycle through a real agent: create, start, pause,
//! resume, stop, kill, wait, update, list, delete, with busybox containers.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, eventually};
use libcrun_shim_proto::v1 as pb;

#[tokio::test]
async fn full_lifecycle() {
    let mut h = Harness::start().await;
    let mut config = h.sh(
        "life",
        "trap 'exit 0' TERM; echo hello; while :; do sleep 0.1; done",
    );
    config.labels.insert("app".into(), "web".into());
    config.hostname = "life-host".into();
    let created = h.create(config).await.expect("create");
    assert_eq!(Harness::status(&created), pb::ContainerStatus::Created);
    assert!(created.pid > 0);

    let started = h.start_container("life").await;
    assert_eq!(Harness::status(&started), pb::ContainerStatus::Running);
    assert!(started.started_at.is_some());

    // List with filters.
    let list =
        |statuses: Vec<pb::ContainerStatus>, labels: Vec<(&str, &str)>| pb::ListContainersRequest {
            statuses: statuses.into_iter().map(|s| s as i32).collect(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            agent: String::new(),
        };
    let ids =
        |r: pb::ListContainersResponse| r.containers.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let running = h
        .containers
        .list(list(vec![pb::ContainerStatus::Running], vec![]))
        .await
        .unwrap();
    assert_eq!(ids(running.into_inner()), vec!["life"]);
    let stopped = h
        .containers
        .list(list(vec![pb::ContainerStatus::Stopped], vec![]))
        .await
        .unwrap();
    assert!(ids(stopped.into_inner()).is_empty());
    let web = h
        .containers
        .list(list(vec![], vec![("app", "web")]))
        .await
        .unwrap();
    assert_eq!(ids(web.into_inner()), vec!["life"]);
    let any_app = h
        .containers
        .list(list(vec![], vec![("app", "")]))
        .await
        .unwrap();
    assert_eq!(ids(any_app.into_inner()).len(), 1);
    let db = h
        .containers
        .list(list(vec![], vec![("app", "db")]))
        .await
        .unwrap();
    assert!(ids(db.into_inner()).is_empty());

    // Inspect carries the spec the container runs with.
    let inspected = h
        .containers
        .inspect(pb::InspectContainerRequest { id: "life".into() })
        .await
        .unwrap()
        .into_inner();
    let spec: serde_json::Value = serde_json::from_str(&inspected.oci_spec_json).unwrap();
    assert_eq!(spec["hostname"], "life-host");
    assert_eq!(
        inspected.container.unwrap().config.unwrap().labels["app"],
        "web"
    );

    // Stop: SIGTERM is trapped (once "hello" is out: before its trap, the
    // shell as PID 1 of its namespace would not even see SIGTERM), the
    // shell exits 0 at once.
    h.until_stdout("life", "hello\n").await;
    let stopped = h
        .containers
        .stop(pb::StopContainerRequest {
            id: "life".into(),
            signal: String::new(),
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
        })
        .await
        .expect("stop")
        .into_inner()
        .container
        .unwrap();
    assert_eq!(Harness::status(&stopped), pb::ContainerStatus::Stopped);
    let exit = stopped.last_exit.expect("exit recorded");
    assert_eq!((exit.exit_code, exit.signal), (0, 0));
    assert_eq!(stopped.pid, 0);

    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "life".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"hello\n");

    h.delete("life", false).await.expect("delete");
    let err = h
        .containers
        .inspect(pb::InspectContainerRequest { id: "life".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(!h.local().root().join("containers/life").exists());
    assert!(!h.local().root().join("libcrun/life").exists());
}

#[tokio::test]
async fn exit_codes_are_exact() {
    let mut h = Harness::start().await;
    h.run("zero", "exit 0").await;
    h.run("three", "exit 3").await;
    h.run("killed", "sleep 60").await;
    h.containers
        .kill(pb::KillContainerRequest {
            id: "killed".into(),
            signal: "KILL".into(),
            all: false,
        })
        .await
        .expect("kill");
    let zero = h.wait("zero").await;
    assert_eq!(
        (zero.exit_code, zero.signal, zero.oom_killed),
        (0, 0, false)
    );
    let three = h.wait("three").await;
    assert_eq!((three.exit_code, three.signal), (3, 0));
    let killed = h.wait("killed").await;
    assert_eq!((killed.exit_code, killed.signal), (137, 9));
    // Wait on a stopped container returns at once, with the same status.
    assert_eq!(h.wait("three").await.exit_code, 3);
    // Kill of a stopped container is refused.
    let err = h
        .containers
        .kill(pb::KillContainerRequest {
            id: "three".into(),
            signal: "TERM".into(),
            all: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn stop_kills_a_process_that_ignores_sigterm() {
    let mut h = Harness::start().await;
    h.run(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    )
    .await;
    h.until_stdout("stubborn", "ready\n").await;
    let began = Instant::now();
    let stopped = h
        .containers
        .stop(pb::StopContainerRequest {
            id: "stubborn".into(),
            signal: "SIGTERM".into(),
            timeout: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .expect("stop")
        .into_inner()
        .container
        .unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let exit = stopped.last_exit.unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
}

/// Reads the counter the container writes to its rootfs.
fn counter(h: &Harness) -> u64 {
    std::fs::read_to_string(h.rootfs.path().join("tmp/counter"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn paused_containers_make_no_progress() {
    let mut h = Harness::start().await;
    h.run(
        "busy",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.01; done",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || counter(&h) > 5).await,
        "counter runs"
    );
    let paused = h
        .containers
        .pause(pb::PauseContainerRequest { id: "busy".into() })
        .await
        .expect("pause")
        .into_inner()
        .container
        .unwrap();
    assert_eq!(Harness::status(&paused), pb::ContainerStatus::Paused);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frozen = counter(&h);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counter(&h), frozen, "a paused container made progress");

    // Exec into a paused container is refused.
    let err = h
        .exec
        .exec_sync(pb::ExecSyncRequest {
            container_id: "busy".into(),
            process: Some(pb::ProcessSpec {
                command: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // So is a second pause, and a delete without force.
    let err = h
        .containers
        .pause(pb::PauseContainerRequest { id: "busy".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        h.delete("busy", false).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );

    let resumed = h
        .containers
        .resume(pb::ResumeContainerRequest { id: "busy".into() })
        .await
        .expect("resume")
        .into_inner()
        .container
        .unwrap();
    assert_eq!(Harness::status(&resumed), pb::ContainerStatus::Running);
    assert!(
        eventually(Duration::from_secs(5), || counter(&h) > frozen + 5).await,
        "counter runs again"
    );
    // Force-delete a paused container works too.
    h.containers
        .pause(pb::PauseContainerRequest { id: "busy".into() })
        .await
        .unwrap();
    h.delete("busy", true)
        .await
        .expect("force delete of a paused container");
}

#[tokio::test]
async fn update_changes_the_limits_of_a_running_container() {
    let mut h = Harness::start().await;
    let mut config = h.sh("limited", "sleep 60");
    config.resources = Some(pb::Resources {
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(100),
        ..Default::default()
    });
    h.create(config).await.expect("create");
    h.start_container("limited").await;
    let updated = h
        .containers
        .update(pb::UpdateContainerRequest {
            id: "limited".into(),
            resources: Some(pb::Resources {
                memory_limit_bytes: Some(128 << 20),
                ..Default::default()
            }),
        })
        .await
        .expect("update")
        .into_inner()
        .container
        .unwrap();
    let resources = updated.config.unwrap().resources.unwrap();
    assert_eq!(resources.memory_limit_bytes, Some(128 << 20));
    assert_eq!(
        resources.pids_limit,
        Some(100),
        "unset limits are left as they are"
    );
    // The kernel sees the new limit.
    let inspected = h
        .containers
        .inspect(pb::InspectContainerRequest {
            id: "limited".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let spec: serde_json::Value = serde_json::from_str(&inspected.oci_spec_json).unwrap();
    let cgroup = spec["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let v1 = format!("/sys/fs/cgroup/memory/{cgroup}/memory.limit_in_bytes");
    let v2 = format!("/sys/fs/cgroup/{cgroup}/memory.max");
    let limit = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .expect("memory limit file");
    assert_eq!(limit.trim(), (128u64 << 20).to_string());
    h.delete("limited", true).await.unwrap();
    assert!(
        !std::path::Path::new(&v1).exists() && !std::path::Path::new(&v2).exists(),
        "cgroup removed"
    );
}

/// Run: one call creates, starts, streams the output as written and ends
/// with the exit status; with `remove` the container is gone by then.
#[tokio::test]
async fn run_streams_output_and_exit_in_one_call() {
    use pb::run_container_response::Event;
    let mut h = Harness::start().await;
    let run = |config, remove| pb::RunContainerRequest {
        config: Some(config),
        agent: String::new(),
        remove,
    };
    let config = h.sh(
        "ran",
        "echo out; echo err >&2; sleep 0.2; echo more; exit 7",
    );
    let mut stream = h
        .containers
        .run(run(config, true))
        .await
        .expect("run")
        .into_inner();
    let mut started = None;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut exit = None;
    while let Some(message) = stream.message().await.expect("run stream") {
        assert!(exit.is_none(), "exit is last");
        match message.event.expect("event") {
            Event::Started(c) => {
                assert!(started.is_none() && stdout.is_empty(), "started is first");
                started = Some(c);
            }
            Event::Output(batch) => {
                assert!(started.is_some(), "output after started");
                for entry in batch.entries {
                    assert!(entry.time.is_none());
                    match entry.stream() {
                        pb::LogStream::Stderr => stderr.extend_from_slice(&entry.data),
                        _ => stdout.extend_from_slice(&entry.data),
                    }
                }
            }
            Event::Exit(e) => exit = Some(e),
        }
    }
    let started = started.expect("started");
    assert_eq!(Harness::status(&started), pb::ContainerStatus::Running);
    assert_eq!(stdout, b"out\nmore\n");
    assert_eq!(stderr, b"err\n");
    assert_eq!(exit.expect("exit").exit_code, 7);
    let gone = h
        .containers
        .inspect(pb::InspectContainerRequest { id: "ran".into() })
        .await
        .expect_err("removed before the exit was sent");
    assert_eq!(gone.code(), tonic::Code::NotFound);

    // Without `remove` it stays, stopped, with its exit.
    let config = h.sh("kept", "exit 3");
    let mut stream = h
        .containers
        .run(run(config, false))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(message) = stream.message().await.unwrap() {
        last = message.event;
    }
    assert!(matches!(last, Some(Event::Exit(e)) if e.exit_code == 3));
    let kept = h.inspect("kept").await;
    assert_eq!(Harness::status(&kept), pb::ContainerStatus::Stopped);
    h.delete("kept", false).await.unwrap();

    // A run the client leaves: the container runs on, and `remove` still
    // deletes it once it has exited.
    let config = h.sh("left", "sleep 0.3");
    let stream = h.containers.run(run(config, true)).await.unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = h
            .containers
            .inspect(pb::InspectContainerRequest { id: "left".into() })
            .await;
        if found.is_err_and(|s| s.code() == tonic::Code::NotFound) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed after its exit, with nobody reading"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run refuses a removal that a restart policy would defeat, creating
/// nothing.
#[tokio::test]
async fn run_refuses_remove_with_a_restart_policy() {
    let mut h = Harness::start().await;
    let mut config = h.sh("policy", "true");
    config.restart_policy = Some(pb::RestartPolicy {
        kind: pb::restart_policy::Kind::Always as i32,
        max_retries: 0,
    });
    let refused = h
        .containers
        .run(pb::RunContainerRequest {
            config: Some(config),
            agent: String::new(),
            remove: true,
        })
        .await
        .expect_err("remove with a restart policy");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let none = h
        .containers
        .inspect(pb::InspectContainerRequest {
            id: "policy".into(),
        })
        .await
        .expect_err("nothing created");
    assert_eq!(none.code(), tonic::Code::NotFound);
}
