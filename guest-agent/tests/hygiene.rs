//! Recovery and hygiene through a real agent: orphans found and removed,
//! CleanupStopped, each shutdown mode, restart policies, and an agent
//! killed in the middle of a lifecycle losing nothing.

mod common;

use std::time::Duration;

use common::{Harness, alive, events_until, eventually, kinds};
use libcrun_shim_proto::v1 as pb;
use pb::EventType as T;

async fn orphans(h: &mut Harness) -> Vec<(pb::OrphanKind, String)> {
    let mut o: Vec<_> = h
        .system
        .list_orphaned(pb::ListOrphanedRequest::default())
        .await
        .unwrap()
        .into_inner()
        .orphans
        .into_iter()
        .map(|o| (pb::OrphanKind::try_from(o.kind).unwrap(), o.container_id))
        .collect();
    o.sort_by_key(|(k, id)| (*k as i32, id.clone()));
    o
}

#[tokio::test]
async fn orphans_are_found_and_force_delete_removes_them_idempotently() {
    use pb::OrphanKind::{Cgroup, MissingProcess, RuntimeState, StateDirectory};
    let mut h = Harness::start().await;
    assert!(orphans(&mut h).await.is_empty());
    // A container whose record is damaged while the agent is down (one
    // without a record at all is a create cut short, undone at start-up:
    // see recovery.rs).
    let lost = h.run("lost", "sleep 600").await;
    h.local_mut().kill();
    std::fs::write(h.local().root().join("containers/lost/record.json"), b"{").unwrap();
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    // A container whose monitor is killed: its exit can no longer be seen.
    let orphaned = h.run("orphaned", "sleep 600").await;
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(h.local().root().join("containers/orphaned/record.json")).unwrap(),
    )
    .unwrap();
    let monitor = record["monitor"]["pid"].as_i64().unwrap() as i32;
    // SAFETY: kills the monitor the test just read from the record.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(10), || !alive(monitor)).await);
    let wait = async {
        loop {
            if h.inspect("orphaned").await.status == pb::ContainerStatus::Stopped as i32 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("exit recorded");

    let found = orphans(&mut h).await;
    for expected in [
        (RuntimeState, "lost".to_string()),
        (StateDirectory, "lost".to_string()),
        (Cgroup, "lost".to_string()),
        (MissingProcess, "orphaned".to_string()),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }

    let removed = h
        .system
        .force_delete(pb::ForceDeleteRequest { id: "lost".into() })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert!(!removed.is_empty());
    assert!(
        !alive(lost.pid as i32),
        "the lost container's process was killed"
    );
    let again = h
        .system
        .force_delete(pb::ForceDeleteRequest { id: "lost".into() })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert!(again.is_empty(), "idempotent: {again:?}");
    h.system
        .force_delete(pb::ForceDeleteRequest {
            id: "orphaned".into(),
        })
        .await
        .unwrap();
    assert!(
        !alive(orphaned.pid as i32),
        "the orphaned container's process was killed"
    );
    assert!(orphans(&mut h).await.is_empty());
    let err = h
        .system
        .force_delete(pb::ForceDeleteRequest { id: "../x".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn cleanup_stopped_removes_stopped_containers_and_their_logs() {
    let mut h = Harness::start().await;
    h.run("done1", "echo bye").await;
    h.run("done2", "exit 3").await;
    h.run("alive", "sleep 600").await;
    h.wait("done1").await;
    h.wait("done2").await;
    let mut removed = h
        .system
        .cleanup_stopped(pb::CleanupStoppedRequest::default())
        .await
        .unwrap()
        .into_inner()
        .removed_ids;
    removed.sort();
    assert_eq!(removed, vec!["done1", "done2"]);
    assert!(!h.local().root().join("containers/done1").exists());
    assert_eq!(
        h.inspect("alive").await.status,
        pb::ContainerStatus::Running as i32
    );
}

#[tokio::test]
async fn shutdown_leaving_containers_running_then_adopted() {
    let mut h = Harness::start().await;
    let c = h.run("stays", "sleep 600").await;
    let r = h
        .system
        .shutdown(pb::ShutdownRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.stopped_ids.is_empty());
    assert_eq!(
        h.local_mut()
            .wait_exit(Duration::from_secs(10))
            .map(|s| s.code()),
        Some(Some(0))
    );
    assert!(alive(c.pid as i32), "the container outlives the agent");
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    assert_eq!(
        h.inspect("stays").await.status,
        pb::ContainerStatus::Running as i32
    );
}

#[tokio::test]
async fn shutdown_stopping_containers() {
    let mut h = Harness::start().await;
    let c = h
        .run(
            "goes",
            "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done",
        )
        .await;
    h.run(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    )
    .await;
    h.until_stdout("goes", "ready\n").await;
    h.until_stdout("stubborn", "ready\n").await;
    let mut stopped = h
        .system
        .shutdown(pb::ShutdownRequest {
            stop_containers: true,
            timeout: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .stopped_ids;
    stopped.sort();
    assert_eq!(stopped, vec!["goes", "stubborn"]);
    assert_eq!(
        h.local_mut()
            .wait_exit(Duration::from_secs(10))
            .map(|s| s.code()),
        Some(Some(0))
    );
    assert!(!alive(c.pid as i32));
    // The exits were recorded and journalled before the agent left.
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let exit = h.inspect("goes").await.last_exit.unwrap();
    assert_eq!(exit.exit_code, 0);
    let mut stream = h.subscribe(Some(0)).await;
    let events = events_until(&mut stream, |e| {
        e.iter().filter(|e| e.r#type == T::Exit as i32).count() == 2
    })
    .await;
    assert_eq!(
        events.iter().filter(|e| e.r#type == T::Exit as i32).count(),
        2
    );
}

#[tokio::test]
async fn sigterm_is_graceful() {
    let mut h = Harness::start().await;
    let c = h.run("calm", "sleep 600").await;
    // SAFETY: sends SIGTERM to the agent this test started.
    unsafe { libc::kill(h.local().pid().unwrap() as i32, libc::SIGTERM) };
    assert_eq!(
        h.local_mut()
            .wait_exit(Duration::from_secs(10))
            .map(|s| s.code()),
        Some(Some(0))
    );
    assert!(alive(c.pid as i32));
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let mut stream = h.subscribe(Some(0)).await;
    let events = events_until(&mut stream, |e| e.len() == 2).await;
    assert_eq!(
        kinds(&events),
        vec![(T::Create, "calm".into()), (T::Start, "calm".into())]
    );
}

#[tokio::test]
async fn restart_policies() {
    let mut h = Harness::start().await;
    let mut stream = h.subscribe(None).await;
    let policy = |kind: pb::restart_policy::Kind, max_retries| {
        Some(pb::RestartPolicy {
            kind: kind as i32,
            max_retries,
        })
    };
    let mut flaky = h.sh("flaky", "echo run; exit 3");
    flaky.restart_policy = policy(pb::restart_policy::Kind::OnFailure, 2);
    let mut never = h.sh("never", "exit 1");
    never.restart_policy = policy(pb::restart_policy::Kind::No, 0);
    let mut forever = h.sh("forever", "sleep 0.2");
    forever.restart_policy = policy(pb::restart_policy::Kind::Always, 0);
    for config in [flaky, never, forever] {
        let id = config.id.clone();
        h.create(config).await.unwrap();
        h.start_container(&id).await;
    }
    let flaky_done = |e: &[pb::Event]| {
        e.iter()
            .filter(|e| e.container_id == "flaky" && e.r#type == T::Exit as i32)
            .count()
            == 3
    };
    let events = events_until(&mut stream, flaky_done).await;
    let flaky: Vec<T> = kinds(&events)
        .into_iter()
        .filter(|(_, id)| id == "flaky")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        flaky,
        vec![
            T::Create,
            T::Start,
            T::Exit,
            T::Restart,
            T::Start,
            T::Exit,
            T::Restart,
            T::Start,
            T::Exit
        ]
    );
    let restarts: Vec<u32> = events
        .iter()
        .filter_map(|e| match &e.details {
            Some(pb::event::Details::Restart(r)) if e.container_id == "flaky" => {
                Some(r.restart_count)
            }
            _ => None,
        })
        .collect();
    assert_eq!(restarts, vec![1, 2]);
    // Two restarts at most, then it stays stopped; logs span every run.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let f = h.inspect("flaky").await;
    assert_eq!(
        (f.status, f.restart_count),
        (pb::ContainerStatus::Stopped as i32, 2)
    );
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "flaky".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"run\nrun\nrun\n");
    let n = h.inspect("never").await;
    assert_eq!(
        (n.status, n.restart_count),
        (pb::ContainerStatus::Stopped as i32, 0)
    );
    // Always restarts, until stopped through the API.
    let restarted = async {
        loop {
            if h.inspect("forever").await.restart_count >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), restarted)
        .await
        .expect("always restarts");
    h.containers
        .stop(pb::StopContainerRequest {
            id: "forever".into(),
            signal: String::new(),
            timeout: None,
        })
        .await
        .unwrap();
    let count = h.inspect("forever").await.restart_count;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = h.inspect("forever").await;
    assert_eq!(
        (after.status, after.restart_count),
        (pb::ContainerStatus::Stopped as i32, count)
    );
}

#[tokio::test]
async fn an_agent_killed_mid_lifecycle_loses_nothing() {
    let mut h = Harness::start().await;
    let mut stream = h.subscribe(Some(0)).await;
    let config = h.sh("mid", "echo one; sleep 0.5; echo two; exit 9");
    h.create(config).await.unwrap();
    h.start_container("mid").await;
    // The first subscriber sees create and start, then its agent dies.
    let before = events_until(&mut stream, |e| e.len() == 2).await;
    assert_eq!(before.len(), 2);
    h.local_mut().kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let exit = h.wait("mid").await;
    assert_eq!(exit.exit_code, 9);
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "mid".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"one\ntwo\n");
    // Resumed from the last event it saw, the rest replays.
    let last = before.last().unwrap().sequence;
    let mut resumed = h.subscribe(Some(last)).await;
    let after = events_until(&mut resumed, |e| !e.is_empty()).await;
    assert_eq!(kinds(&after), vec![(T::Exit, "mid".into())]);
    assert_eq!(after[0].sequence, last + 1);
}
