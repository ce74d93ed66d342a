//! The container lifecycle through a real agent: create, start, pause,
//! resume, stop, kill, wait, update, list, delete, with busybox containers.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, eventually, monitors_under};
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

/// This thread's mount points (the test's "host" after [`node_namespace`]).
fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Moves this test's thread (the agent it starts inherits it) to a mount
/// namespace of its own, a slave of the machine's, where the test plays
/// the host: a Kubernetes node. Nothing mounted in it reaches the machine.
fn node_namespace() {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .expect("making / a slave");
}

/// A directory that is a shared mount point of the test's "host" (see
/// [`node_namespace`], which it calls), unmounted when dropped.
struct SharedSource(tempfile::TempDir);

impl SharedSource {
    fn new() -> SharedSource {
        use nix::mount::{MsFlags, mount};
        node_namespace();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        SharedSource(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for SharedSource {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A bind mount whose propagation is `rshared` (the CRI's Bidirectional)
/// sends the container's mounts to the host's source and the host's to the
/// container; the staging mount that takes (see the agent's
/// `runtime::propagation`) lives only while the container is created, and
/// its unmount takes nothing off the host. A source not on a shared mount
/// is refused, leaving nothing.
#[tokio::test(flavor = "current_thread")]
async fn rshared_binds_propagate_both_ways() {
    use nix::mount::{MsFlags, mount};
    let shared = SharedSource::new();
    let source = shared.path();
    let mut h = Harness::start().await;
    let agent_pid = h.local().pid().unwrap();
    let containers = h.local().root().join("containers");
    let agent_mounts_under = |dir: &std::path::Path| {
        std::fs::read_to_string(format!("/proc/{agent_pid}/mountinfo"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|p| p.starts_with(&*dir.to_string_lossy()))
    };
    let bind = |source: &std::path::Path| pb::Mount {
        destination: "/shared".into(),
        source: source.display().to_string(),
        options: vec!["rbind".into(), "rshared".into()],
        ..Default::default()
    };

    let mut config = h.sh(
        "both-ways",
        "test -f /shared/from-host/f && mkdir -p /shared/inner \
         && mount -t tmpfs none /shared/inner && echo hi > /shared/inner/f",
    );
    config.mounts = vec![bind(source)];
    config.capabilities = Some(pb::Capabilities {
        add: vec!["SYS_ADMIN".into()],
        drop: vec![],
    });
    h.create(config).await.expect("create");
    assert!(
        !agent_mounts_under(&containers.join("both-ways")),
        "a staging mount outlived the create"
    );
    // Host to container, after the create.
    let from_host = source.join("from-host");
    std::fs::create_dir(&from_host).unwrap();
    mount(
        Some("none"),
        &from_host,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(from_host.join("f"), "x").unwrap();
    h.start_container("both-ways").await;
    assert_eq!(h.wait("both-ways").await.exit_code, 0);
    // Container to host.
    let inner = source.join("inner");
    assert!(host_mounts().contains(&inner.display().to_string()));
    assert_eq!(std::fs::read_to_string(inner.join("f")).unwrap(), "hi\n");
    h.delete("both-ways", false).await.unwrap();
    assert!(!containers.join("both-ways").exists());
    assert!(!agent_mounts_under(&containers));
    // The container's mount stays on the host, as with any runtime.
    assert!(host_mounts().contains(&inner.display().to_string()));

    // Not on a shared mount: refused, nothing left.
    let private = tempfile::tempdir().unwrap();
    let mut config = h.sh("one-way", "true");
    config.mounts = vec![bind(private.path())];
    let e = h
        .create(config)
        .await
        .expect_err("a source on no shared mount");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(e.message().contains("not on a shared mount"), "{e}");
    assert!(!containers.join("one-way").exists());
    assert!(!agent_mounts_under(&containers));
}

/// A SIGKILL of the agent while an rshared bind's staging mount exists
/// (here: its create waits on a logging program that never signals
/// readiness) leaves that mount only in the dead agent's namespace: the
/// restarted agent undoes the create, and the host keeps its mounts under
/// the source (no unmount propagates back from the teardown).
#[tokio::test(flavor = "current_thread")]
async fn a_sigkill_while_an_rshared_bind_is_staged_leaves_the_host_whole() {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::fs::PermissionsExt;
    let shared = SharedSource::new();
    let source = shared.path();
    let keep = source.join("keep");
    std::fs::create_dir(&keep).unwrap();
    mount(
        Some("none"),
        &keep,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(keep.join("f"), "x").unwrap();
    let tools = tempfile::tempdir().unwrap();
    let logger = tools.path().join("logger");
    std::fs::write(&logger, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut h = Harness::start().await;
    let root = h.local().root();
    let staging = root.join("containers/cut/propagation/0");
    let mut config = h.sh("cut", "true");
    config.mounts = vec![pb::Mount {
        destination: "/shared".into(),
        source: source.display().to_string(),
        options: vec!["rbind".into(), "rshared".into()],
        ..Default::default()
    }];
    config.stdio = Some(pb::StdioConfig {
        stdout: format!("binary://{}", logger.display()),
        ..Default::default()
    });
    let mut containers = h.containers.clone();
    let create = tokio::spawn(async move {
        containers
            .create(pb::CreateContainerRequest {
                config: Some(config),
                agent: String::new(),
            })
            .await
    });
    let agent_pid = h.local().pid().unwrap();
    let staged = || {
        std::fs::read_to_string(format!("/proc/{agent_pid}/mountinfo"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(&*staging.to_string_lossy()))
    };
    assert!(
        eventually(Duration::from_secs(8), staged).await,
        "the staging mount was not made"
    );
    h.restart_agent().await;
    let _ = create.await;
    let agent_pid = h.local().pid().unwrap();
    assert!(
        !root.join("containers/cut").exists(),
        "the create was not undone"
    );
    assert!(
        eventually(Duration::from_secs(10), || monitors_under(&root).is_empty()).await,
        "a monitor of the undone create lives on"
    );
    let agent_mounts = std::fs::read_to_string(format!("/proc/{agent_pid}/mountinfo")).unwrap();
    assert!(!agent_mounts.contains(&*root.join("containers").to_string_lossy()));
    assert!(host_mounts().contains(&keep.display().to_string()));
    assert_eq!(std::fs::read_to_string(keep.join("f")).unwrap(), "x");
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
    h.assert_gone("ran", "removed before the exit was sent")
        .await;

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
