//! Events through a real agent: the order of a lifecycle, replay after a
//! reconnect and after an agent restart without gaps or duplicates, OOM,
//! filters, and a resume point older than the journal.

mod common;

use common::{Harness, events_until, kinds};
use libcrun_shim_proto::v1 as pb;
use pb::EventType as T;

// Each of these runs against a fresh local agent and against the VM's agent.
crate::on_local_and_vm!(
    a_lifecycle_in_order,
    replay_after_reconnect_and_after_restart_has_no_gaps_or_duplicates,
    filters_select_containers_types_and_labels,
    an_oom_kill_is_an_event_and_an_exit_flag,
);

fn sequences(events: &[pb::Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

async fn a_lifecycle_in_order(mut h: Harness) {
    let mut stream = h.subscribe(None).await;
    let mut config = h.sh("life", "sleep 60");
    config.labels.insert("team".into(), "a".into());
    h.create(config).await.unwrap();
    h.start_container("life").await;
    let r = h
        .exec
        .exec_sync(pb::ExecSyncRequest {
            container_id: "life".into(),
            process: Some(pb::ProcessSpec {
                command: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.exit.unwrap().exit_code, 0);
    h.containers
        .pause(pb::PauseContainerRequest { id: "life".into() })
        .await
        .unwrap();
    h.containers
        .resume(pb::ResumeContainerRequest { id: "life".into() })
        .await
        .unwrap();
    h.containers
        .kill(pb::KillContainerRequest {
            id: "life".into(),
            signal: "KILL".into(),
            all: false,
        })
        .await
        .unwrap();
    h.wait("life").await;
    h.delete("life", false).await.unwrap();
    let events = events_until(&mut stream, |e| {
        e.last().is_some_and(|e| e.r#type == T::Delete as i32)
    })
    .await;
    let life = |t| (t, "life".to_string());
    assert_eq!(
        kinds(&events),
        vec![
            life(T::Create),
            life(T::Start),
            life(T::ExecAdded),
            life(T::ExecStarted),
            life(T::Exit),
            life(T::Pause),
            life(T::Resume),
            life(T::Exit),
            life(T::Delete),
        ]
    );
    // Numbered without gaps, timestamped, labelled; the exec's exit names it.
    let seq = sequences(&events);
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
    assert!(
        events
            .iter()
            .all(|e| e.time.is_some() && e.labels["team"] == "a")
    );
    assert!(!events[4].exec_id.is_empty() && events[4].exec_id == events[2].exec_id);
    let Some(pb::event::Details::Exit(exit)) = &events[7].details else {
        panic!("exit details")
    };
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
    assert!(
        events[7].exec_id.is_empty(),
        "the container's own exit has no exec id"
    );
}

async fn replay_after_reconnect_and_after_restart_has_no_gaps_or_duplicates(mut h: Harness) {
    let mut first = h.subscribe(Some(h.base)).await;
    h.run("a", "exit 0").await;
    h.wait("a").await;
    let seen = events_until(&mut first, |e| e.len() == 3).await;
    let b = h.base;
    assert_eq!(sequences(&seen), vec![b + 1, b + 2, b + 3]);
    drop(first);
    let last = seen.last().unwrap().sequence;

    // While the subscriber is away, more happens; the agent is even
    // killed and restarted in the middle.
    h.run("b", "exit 1").await;
    h.wait("b").await;
    h.restart_agent().await;
    h.delete("a", false).await.unwrap();
    h.run("c", "exit 2").await;
    h.wait("c").await;

    let mut resumed = h.subscribe(Some(last)).await;
    let replayed = events_until(&mut resumed, |e| {
        e.last()
            .is_some_and(|e| e.container_id == "c" && e.r#type == T::Exit as i32)
    })
    .await;
    let seq = sequences(&replayed);
    assert_eq!(seq.first(), Some(&(last + 1)));
    assert!(
        seq.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or duplicate: {seq:?}"
    );
    assert_eq!(
        kinds(&replayed),
        vec![
            (T::Create, "b".into()),
            (T::Start, "b".into()),
            (T::Exit, "b".into()),
            (T::Delete, "a".into()),
            (T::Create, "c".into()),
            (T::Start, "c".into()),
            (T::Exit, "c".into()),
        ]
    );
    // The replay goes on live.
    h.run("d", "exit 0").await;
    let live = events_until(&mut resumed, |e| e.len() == 1).await;
    assert_eq!(live[0].sequence, seq.last().unwrap() + 1);
    assert_eq!(live[0].container_id, "d");
}

async fn filters_select_containers_types_and_labels(mut h: Harness) {
    let mut stream = h
        .events
        .subscribe(pb::SubscribeEventsRequest {
            since_sequence: Some(h.base),
            types: vec![T::Exit as i32],
            labels: [("tier".to_string(), "db".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut web = h.sh("web", "exit 0");
    web.labels.insert("tier".into(), "web".into());
    let mut db = h.sh("db", "exit 4");
    db.labels.insert("tier".into(), "db".into());
    h.create(web).await.unwrap();
    h.create(db).await.unwrap();
    h.start_container("web").await;
    h.start_container("db").await;
    let events = events_until(&mut stream, |e| !e.is_empty()).await;
    assert_eq!(kinds(&events), vec![(T::Exit, "db".into())]);
}

async fn an_oom_kill_is_an_event_and_an_exit_flag(mut h: Harness) {
    let mut stream = h.subscribe(None).await;
    let mut config = h.sh("hog", "head -c 200000000 /dev/zero | tail");
    config.resources = Some(pb::Resources {
        memory_limit_bytes: Some(32 << 20),
        memory_swap_limit_bytes: Some(32 << 20),
        ..Default::default()
    });
    h.create(config).await.unwrap();
    h.start_container("hog").await;
    let exit = h.wait("hog").await;
    assert!(exit.oom_killed, "{exit:?}");
    let events = events_until(&mut stream, |e| {
        e.iter().any(|e| e.r#type == T::Exit as i32)
    })
    .await;
    let types: Vec<T> = kinds(&events).into_iter().map(|(t, _)| t).collect();
    assert!(types.contains(&T::Oom), "{types:?}");
}

#[tokio::test]
async fn a_resume_point_older_than_the_journal_is_out_of_range() {
    let mut h = Harness::start_with(&["--events-max", "10"]).await;
    for i in 0..8 {
        h.run(&format!("c{i}"), "exit 0").await;
        h.wait(&format!("c{i}")).await;
    }
    let err = h
        .events
        .subscribe(pb::SubscribeEventsRequest {
            since_sequence: Some(0),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    let oldest: u64 = err
        .metadata()
        .get("x-oldest-sequence")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(oldest > 1, "{err:?}");
    assert!(err.message().contains(&oldest.to_string()), "{err:?}");
    // Resuming from just before the oldest works and replays everything kept.
    let mut stream = h.subscribe(Some(oldest - 1)).await;
    let events = events_until(&mut stream, |e| {
        e.last()
            .is_some_and(|e| e.container_id == "c7" && e.r#type == T::Exit as i32)
    })
    .await;
    assert_eq!(events[0].sequence, oldest);
}
