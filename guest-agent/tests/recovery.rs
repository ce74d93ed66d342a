//! The agent killed with SIGKILL and restarted: containers and their log
//! capture go on, exits that happened meanwhile are reported exactly.

mod common;

use std::time::Duration;

use common::{
    Harness, alive, cgroup_dirs, cgroup_parent, events_until, eventually, monitors_under,
};
use libcrun_shim_proto::v1 as pb;

fn log_size(h: &Harness, id: &str) -> u64 {
    std::fs::read_dir(h.local().root().join(format!("containers/{id}/logs")))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn containers_and_logs_survive_an_agent_sigkill() {
    let mut h = Harness::start().await;
    let running = h
        .run(
            "ticker",
            "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done",
        )
        .await;
    let exits_later = h.run("later", "sleep 1; exit 7").await;
    assert!(eventually(Duration::from_secs(5), || log_size(&h, "ticker") > 0).await);

    h.local_mut().kill();
    let before = log_size(&h, "ticker");
    // While no agent runs: the container lives, its log grows, and the
    // other container exits.
    assert!(
        eventually(Duration::from_secs(5), || log_size(&h, "ticker")
            > before + 100)
        .await,
        "log capture stopped with the agent"
    );
    assert!(alive(running.pid as i32), "container died with the agent");
    let later_pid = exits_later.pid as i32;
    assert!(eventually(Duration::from_secs(10), || !alive(later_pid)).await);

    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    let ticker = h.inspect("ticker").await;
    assert_eq!(Harness::status(&ticker), pb::ContainerStatus::Running);
    assert_eq!(ticker.pid, running.pid);
    let later = h.inspect("later").await;
    assert_eq!(Harness::status(&later), pb::ContainerStatus::Stopped);
    let exit = later
        .last_exit
        .expect("exit recorded while the agent was down");
    assert_eq!((exit.exit_code, exit.signal), (7, 0));
    assert_eq!(h.wait("later").await.exit_code, 7);

    // The log has no gap: every tick from 1 on, in order.
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "ticker".into(),
            ..Default::default()
        })
        .await;
    let text = String::from_utf8(out).unwrap();
    for (n, line) in text.lines().enumerate() {
        assert_eq!(line, format!("tick {}", n + 1));
    }

    // The adopted container is fully controllable: its exit is seen.
    h.containers
        .kill(pb::KillContainerRequest {
            id: "ticker".into(),
            signal: "9".into(),
            all: false,
        })
        .await
        .expect("kill");
    let exit = h.wait("ticker").await;
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
    h.delete("ticker", false).await.expect("delete");
}

#[tokio::test]
async fn a_created_container_survives_a_restart_and_starts() {
    let mut h = Harness::start().await;
    let config = h.sh("waiting", "echo started; exit 0");
    h.create(config).await.unwrap();
    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    assert_eq!(
        Harness::status(&h.inspect("waiting").await),
        pb::ContainerStatus::Created
    );
    h.start_container("waiting").await;
    assert_eq!(h.wait("waiting").await.exit_code, 0);
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "waiting".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"started\n");
}

/// Whether libcrun has made a container the agent has no record of yet: a
/// create half-way, its init process, cgroups and state made.
fn create_half_made(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join("libcrun"))
        .map(|d| {
            d.flatten().any(|e| {
                let id = e.file_name();
                !id.to_string_lossy().starts_with('.')
                    && !root
                        .join("containers")
                        .join(&id)
                        .join("record.json")
                        .exists()
            })
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn creates_cut_by_an_agent_sigkill_complete_or_leave_nothing() {
    let mut h = Harness::start().await;
    let parent = cgroup_parent(&mut h).await;
    let root = h.local().root();
    let ids: Vec<String> = (0..20).map(|i| format!("cut{i}")).collect();
    let creates = h.create_concurrently(ids.iter().map(|id| h.sh(id, "sleep 300")).collect());
    // SIGKILL while a create is half-way.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !create_half_made(&root) {
        assert!(
            std::time::Instant::now() < deadline,
            "no create seen half-way"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    h.local_mut().kill();
    for create in creates {
        let _ = create.await;
    }

    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    let listed: Vec<pb::Container> = h
        .containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    for c in &listed {
        assert_eq!(Harness::status(c), pb::ContainerStatus::Created, "{}", c.id);
        assert!(alive(c.pid as i32), "{}: listed, its init is gone", c.id);
    }
    let monitors = monitors_under(&root);
    for id in ids.iter().filter(|id| !listed.iter().any(|c| &c.id == *id)) {
        assert!(
            !root.join("containers").join(id).exists(),
            "{id}: directory left"
        );
        assert!(
            !root.join("libcrun").join(id).exists(),
            "{id}: libcrun state left"
        );
        let cgroups = cgroup_dirs(&format!("{parent}/{id}"));
        assert!(cgroups.is_empty(), "{id}: cgroups left: {cgroups:?}");
        assert!(
            !monitors.iter().any(|(_, cwd)| cwd.ends_with(id)),
            "{id}: monitor left"
        );
        // The id is free again.
        h.create(h.sh(id, "true")).await.expect("create again");
    }
    let log = std::fs::read_to_string(h.local().log()).unwrap_or_default();
    eprintln!(
        "{} of {} creates completed, {} undone",
        listed.len(),
        ids.len(),
        log.matches("undoing a create").count()
    );
    for id in &ids {
        h.delete(id, true).await.expect("delete");
    }
}

#[tokio::test]
async fn a_container_whose_monitor_is_killed_is_not_reported_stopped_while_it_runs() {
    let mut h = Harness::start().await;
    let running = h.run("orphaned", "sleep 300").await;
    let root = h.local().root();
    let monitors: Vec<i32> = monitors_under(&root)
        .into_iter()
        .filter(|(_, cwd)| cwd.ends_with("orphaned"))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    // SAFETY: kills the container's monitor, as an administrator's kill -9.
    unsafe { libc::kill(monitors[0], libc::SIGKILL) };

    let exit = h.wait("orphaned").await;
    // Reported stopped only once nothing of it runs.
    assert!(!alive(running.pid as i32), "reported stopped while it runs");
    assert!(exit.unknown, "{exit:?}");
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
    let c = h.inspect("orphaned").await;
    assert_eq!(Harness::status(&c), pb::ContainerStatus::Stopped);
    h.delete("orphaned", false).await.expect("delete");
}

#[tokio::test]
async fn every_started_exec_gets_its_exit_after_an_agent_sigkill() {
    const MARKED: &str = "sleep 300; : lost-exec-of-the-recovery-test";
    let mut h = Harness::start().await;
    h.run("host", "sleep 300").await;
    let mut events = h.subscribe(Some(0)).await;
    let mut exec = h.exec.clone();
    let sleeper = tokio::spawn(async move {
        exec.exec_sync(pb::ExecSyncRequest {
            container_id: "host".into(),
            process: Some(pb::ProcessSpec {
                command: vec!["sh".into(), "-c".into(), MARKED.into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
    });
    let seen = events_until(&mut events, |e| {
        e.iter()
            .any(|e| e.r#type == pb::EventType::ExecStarted as i32)
    })
    .await;
    let started = seen.last().expect("exec_started");
    let (started, lost) = (started.sequence, started.exec_id.clone());
    h.local_mut().kill();
    let _ = sleeper.await;

    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    let mut events = h.subscribe(Some(started)).await;
    let seen = events_until(&mut events, |e| {
        e.iter()
            .any(|e| e.r#type == pb::EventType::Exit as i32 && e.exec_id == lost)
    })
    .await;
    let exit = seen
        .iter()
        .find(|e| e.exec_id == lost)
        .and_then(|e| match &e.details {
            Some(pb::event::Details::Exit(exit)) => Some(*exit),
            _ => None,
        })
        .expect("the lost exec's exit event");
    assert!(exit.unknown, "{exit:?}");
    // The process nobody can wait for any more was ended.
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|cmd| cmd.contains(MARKED))
        .count();
    assert_eq!(left, 0, "the lost exec still runs");
    h.delete("host", true).await.expect("delete");
}

/// A power loss (a VM killed, a host that crashed) can leave libcrun's
/// seccomp cache with an empty entry: libcrun writes it without fsync. The
/// restarted agent must not load it (`seccomp (SECCOMP_SET_MODE_FILTER):
/// Invalid argument` for every later container).
#[tokio::test]
async fn a_seccomp_cache_cut_short_by_a_power_loss_stops_no_container() {
    let mut h = Harness::start().await;
    h.run("first", "exit 0").await;
    assert_eq!(h.wait("first").await.exit_code, 0);
    let cache = h.local().root().join("libcrun/.cache/seccomp");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("libcrun caches the default profile")
        .flatten()
        .collect();
    assert!(!entries.is_empty(), "no entry in {}", cache.display());

    h.local_mut().kill();
    // What ext4 leaves of a file written without fsync when the power goes.
    for entry in &entries {
        std::fs::File::create(entry.path()).unwrap();
    }
    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    h.run("second", "exit 3").await;
    assert_eq!(h.wait("second").await.exit_code, 3);
}

/// A Run with `remove` whose agent is SIGKILLed mid-run: the container is
/// deleted all the same, by the next agent: at once if it exited while no
/// agent ran, at its exit if it still runs.
#[tokio::test]
async fn a_removing_run_cut_by_an_agent_sigkill_still_removes_its_container() {
    let mut h = Harness::start().await;
    let parent = cgroup_parent(&mut h).await;
    let mut started = Vec::new();
    for (id, script) in [("short", "sleep 0.3"), ("long", "sleep 3")] {
        let mut stream = h
            .containers
            .run(pb::RunContainerRequest {
                config: Some(h.sh(id, script)),
                agent: String::new(),
                remove: true,
            })
            .await
            .expect("run")
            .into_inner();
        let first = stream
            .message()
            .await
            .expect("run stream")
            .expect("started");
        let Some(pb::run_container_response::Event::Started(c)) = first.event else {
            panic!("started first, got {first:?}");
        };
        started.push(c.pid as i32);
    }
    h.local_mut().kill();
    assert!(eventually(Duration::from_secs(10), || !alive(started[0])).await);
    assert!(alive(started[1]), "the long one runs on");

    h.local_mut().restart().expect("restart");
    h.reconnect().await;
    let root = h.local().root();
    let dir = |id: &str| root.join("containers").join(id);
    h.assert_gone(
        "short",
        "exited while no agent ran: removed by the recovery",
    )
    .await;
    assert!(!dir("short").exists());
    assert_eq!(
        Harness::status(&h.inspect("long").await),
        pb::ContainerStatus::Running
    );
    assert!(
        eventually(Duration::from_secs(10), || !dir("long").exists()).await,
        "the adopted run was not removed at its exit"
    );
    h.assert_gone("long", "removed at its exit").await;
    for id in ["short", "long"] {
        let cgroups = cgroup_dirs(&format!("{parent}/{id}"));
        assert!(cgroups.is_empty(), "{id}: cgroups left: {cgroups:?}");
        assert!(!root.join("libcrun").join(id).exists());
    }
}
