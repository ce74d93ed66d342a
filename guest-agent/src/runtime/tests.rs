//! The runtime's decisions, on the test backend: no root, no libcrun
//! call, no process. The end-to-end tests (`guest-agent/tests`) run the
//! same operations on real containers.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;

use super::backend::testing::{Call, ExecScript, TestBackend};
use super::exec::ExecRequest;
use super::{Backend, ListFilter, NetworkOptions, Runtime, RuntimeOptions};
use crate::error::Error;
use crate::events::JournalLimits;
use crate::model::{
    ContainerConfig, EventKind, HealthCheck, HealthState, HealthStatus, NetworkMode, Operation,
    ProcessSpec, Resources, RestartPolicy, RootSource, Status,
};
use crate::store::{self, ExitRecord, Record, Store};

/// A runtime on a temporary state root, acting through a test backend.
struct Fixture {
    runtime: Arc<Runtime>,
    backend: Arc<TestBackend>,
    rootfs: PathBuf,
    /// Holds the state root and the rootfs.
    _dir: tempfile::TempDir,
}

/// A root filesystem with `/bin/sh` (a link to an executable file).
fn rootfs(dir: &std::path::Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    let busybox = rootfs.join("bin/busybox");
    std::fs::write(&busybox, b"").unwrap();
    std::fs::set_permissions(&busybox, PermissionsExt::from_mode(0o755)).unwrap();
    symlink("busybox", rootfs.join("bin/sh")).unwrap();
    rootfs
}

async fn open(dir: &std::path::Path, backend: Arc<TestBackend>) -> Arc<Runtime> {
    use libcrun_sys::cgroup::{CgroupMode, Preparation};
    let options = RuntimeOptions {
        root: dir.join("state"),
        serves: String::new(),
        monitor_binary: PathBuf::from("/nonexistent/crun-shim-monitor"),
        cgroups: Preparation {
            host_mode: CgroupMode::V2,
            effective_mode: CgroupMode::V2,
            private_mount_namespace: false,
        },
        journal: JournalLimits::default(),
        images: Default::default(),
        network: NetworkOptions {
            networking: crun_shim_network::NetworkingOptions::new(
                dir.join("network"),
                dir.join("netns"),
                dir.join("net.d"),
            ),
            default_mode: NetworkMode::None,
        },
    };
    let store = Store::open(&options.root, &options.serves).unwrap();
    Runtime::open_with(options, store, backend as Arc<dyn Backend>)
        .await
        .unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(TestBackend::default());
    Fixture {
        runtime: open(dir.path(), backend.clone()).await,
        backend,
        rootfs: rootfs(dir.path()),
        _dir: dir,
    }
}

impl Fixture {
    fn config(&self, id: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            root: RootSource::Rootfs(self.rootfs.clone()),
            command: vec!["sh".into(), "-c".into(), "true".into()],
            ..Default::default()
        }
    }

    async fn running(&self, id: &str) {
        self.runtime.create(self.config(id)).await.unwrap();
        self.runtime.start(id).await.unwrap();
    }

    fn status(&self, id: &str) -> Status {
        self.runtime.entry(id).unwrap().snapshot().status
    }

    /// The journal's events so far: kind, container, exec.
    async fn events(&self) -> Vec<(EventKind, String, Option<String>)> {
        let count = self.runtime.journal.last_sequence() as usize;
        self.runtime
            .subscribe(Some(0), Default::default())
            .unwrap()
            .take(count)
            .map(|e| {
                let e = e.unwrap();
                (e.kind, e.container_id, e.exec_id)
            })
            .collect()
            .await
    }

    /// The container's record on disk.
    fn record(&self, id: &str) -> Option<Record> {
        self.runtime.store.load_record(id).unwrap()
    }
}

fn assert_invalid_state(result: crate::error::Result<impl std::fmt::Debug>, status: Status) {
    match result {
        Err(Error::InvalidState { status: s, .. }) => assert_eq!(s, status),
        other => panic!("expected InvalidState({status:?}), got {other:?}"),
    }
}

#[tokio::test]
async fn create_records_a_created_container_through_its_monitor() {
    let f = fixture().await;
    let view = f.runtime.create(f.config("c1")).await.unwrap();
    assert_eq!(view.record.status, Status::Created);
    assert!(view.exec_ids.is_empty());
    assert_eq!(
        f.backend.calls(),
        [Call::Create {
            id: "c1".into(),
            run: 1
        }]
    );
    assert_eq!(f.record("c1").unwrap().status, Status::Created);
    assert_eq!(
        f.events().await,
        [(EventKind::Create, "c1".to_string(), None)]
    );
    // The config as it runs: defaults filled in.
    assert_eq!(view.record.config.log, Default::default());
    assert_eq!(
        f.runtime.list(&ListFilter::default()),
        [f.runtime.entry("c1").unwrap().view()]
    );
}

#[tokio::test]
async fn bad_configs_are_refused_before_anything_is_made() {
    let f = fixture().await;
    let mut bad = vec![
        ContainerConfig {
            id: "../x".into(),
            ..f.config("x")
        },
        ContainerConfig {
            root: RootSource::Rootfs("rootfs".into()),
            ..f.config("x")
        },
        ContainerConfig {
            root: RootSource::Image(String::new()),
            ..f.config("x")
        },
        ContainerConfig {
            stop_signal: Some("SIGNOPE".into()),
            ..f.config("x")
        },
        ContainerConfig {
            health_check: Some(HealthCheck {
                command: vec![],
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                retries: 0,
                start_period: Duration::ZERO,
            }),
            ..f.config("x")
        },
    ];
    let mut unknown_cap = f.config("x");
    unknown_cap.capabilities.add = vec!["CAP_NOPE".into()];
    bad.push(unknown_cap);
    for config in bad {
        let err = f.runtime.create(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{config:?}: {err:?}"
        );
    }
    // The machine's part: no such rootfs, no such executable.
    let missing = ContainerConfig {
        root: RootSource::Rootfs("/no/such/rootfs".into()),
        ..f.config("x")
    };
    assert!(matches!(
        f.runtime.create(missing).await,
        Err(Error::NotFound(_))
    ));
    let no_program = ContainerConfig {
        command: vec!["/no/such/program".into()],
        ..f.config("x")
    };
    match f.runtime.create(no_program).await {
        Err(Error::FailedPrecondition(m)) => assert!(m.contains("/no/such/program"), "{m}"),
        other => panic!("{other:?}"),
    }
    let created = |c: &Call| matches!(c, Call::Create { .. });
    assert!(!f.backend.calls().iter().any(created), "no monitor started");
    assert!(f.runtime.store.container_ids().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_and_frees_the_id() {
    let f = fixture().await;
    f.backend
        .fail_next_create(libc::EINVAL, "mount `/x`: Invalid argument");
    let err = f.runtime.create(f.config("c1")).await.unwrap_err();
    assert!(matches!(err, Error::Libcrun { .. }), "{err:?}");
    assert_eq!(
        f.backend.calls(),
        [
            Call::Create {
                id: "c1".into(),
                run: 1
            },
            Call::Delete {
                id: "c1".into(),
                force: true
            },
        ]
    );
    assert!(f.runtime.store.container_ids().unwrap().is_empty());
    assert!(matches!(f.runtime.entry("c1"), Err(Error::NotFound(_))));
    f.runtime.create(f.config("c1")).await.unwrap();
    let err = f.runtime.create(f.config("c1")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
}

#[tokio::test]
async fn start_runs_only_a_created_container() {
    let f = fixture().await;
    f.runtime.create(f.config("c1")).await.unwrap();
    let view = f.runtime.start("c1").await.unwrap();
    assert_eq!(view.record.status, Status::Running);
    assert!(view.record.started_at.is_some());
    assert!(f.backend.calls().contains(&Call::Start("c1".into())));
    assert_invalid_state(f.runtime.start("c1").await, Status::Running);
    let kinds: Vec<_> = f.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, [EventKind::Create, EventKind::Start]);
}

#[tokio::test]
async fn stop_asks_with_the_stop_signal_then_kills_everything() {
    let f = fixture().await;
    // A container that leaves on SIGTERM.
    f.running("polite").await;
    let view = f.runtime.stop("polite", None, None).await.unwrap();
    assert_eq!(view.record.status, Status::Stopped);
    assert_eq!(view.record.last_exit.unwrap().exit_code, 143);
    assert!(f.backend.calls().contains(&Call::Kill {
        id: "polite".into(),
        signal: libc::SIGTERM,
        all: false
    }));

    // One that ignores its stop signal (SIGUSR1 here): SIGKILL to all of
    // it at the timeout.
    let config = ContainerConfig {
        stop_signal: Some("USR1".into()),
        ..f.config("stubborn")
    };
    f.runtime.create(config).await.unwrap();
    f.runtime.start("stubborn").await.unwrap();
    f.backend.ignore("stubborn", libc::SIGUSR1);
    let view = f
        .runtime
        .stop("stubborn", None, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(view.record.last_exit.unwrap().exit_code, 137);
    let kills: Vec<_> = f
        .backend
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Kill { id, .. } if id == "stubborn"))
        .collect();
    assert_eq!(
        kills,
        [
            Call::Kill {
                id: "stubborn".into(),
                signal: libc::SIGUSR1,
                all: false
            },
            Call::Kill {
                id: "stubborn".into(),
                signal: libc::SIGKILL,
                all: true
            },
        ]
    );

    // Stopping a stopped container does nothing; killing it is refused.
    let calls = f.backend.calls().len();
    f.runtime.stop("stubborn", None, None).await.unwrap();
    assert_invalid_state(f.runtime.kill("stubborn", 9, false).await, Status::Stopped);
    assert_eq!(f.backend.calls().len(), calls);
}

#[tokio::test]
async fn a_created_container_is_stopped_with_sigkill_at_once() {
    let f = fixture().await;
    f.runtime.create(f.config("c1")).await.unwrap();
    let view = f.runtime.stop("c1", None, None).await.unwrap();
    assert_eq!(view.record.status, Status::Stopped);
    assert_eq!(
        f.backend.calls()[1],
        Call::Kill {
            id: "c1".into(),
            signal: libc::SIGKILL,
            all: false
        }
    );
    assert!(view.record.stopped_by_api);
}

#[tokio::test]
async fn pause_and_resume_follow_the_state_rules() {
    let f = fixture().await;
    f.runtime.create(f.config("c1")).await.unwrap();
    assert_invalid_state(f.runtime.pause("c1").await, Status::Created);
    f.runtime.start("c1").await.unwrap();
    assert_invalid_state(f.runtime.resume("c1").await, Status::Running);
    assert_eq!(
        f.runtime.pause("c1").await.unwrap().record.status,
        Status::Paused
    );
    assert_invalid_state(f.runtime.pause("c1").await, Status::Paused);
    assert_invalid_state(
        f.runtime
            .exec(
                "c1",
                ExecRequest {
                    process: ProcessSpec {
                        command: vec!["sh".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await,
        Status::Paused,
    );
    // A signal to a paused container thaws it, so that it can act.
    f.backend.ignore("c1", libc::SIGHUP);
    f.runtime.kill("c1", libc::SIGHUP, false).await.unwrap();
    let calls = f.backend.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [
            Call::Kill {
                id: "c1".into(),
                signal: libc::SIGHUP,
                all: false
            },
            Call::Resume("c1".into())
        ]
    );
    let kinds: Vec<_> = f.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        [EventKind::Create, EventKind::Start, EventKind::Pause]
    );
}

#[tokio::test]
async fn delete_needs_force_for_live_processes_and_removes_everything() {
    let f = fixture().await;
    f.running("c1").await;
    assert_invalid_state(f.runtime.delete("c1", false).await, Status::Running);
    f.runtime.delete("c1", true).await.unwrap();
    let calls = f.backend.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [
            Call::Kill {
                id: "c1".into(),
                signal: libc::SIGKILL,
                all: true
            },
            Call::Delete {
                id: "c1".into(),
                force: true
            }
        ]
    );
    assert!(matches!(f.runtime.entry("c1"), Err(Error::NotFound(_))));
    assert!(f.runtime.store.container_ids().unwrap().is_empty());
    assert_eq!(f.events().await.last().unwrap().0, EventKind::Delete);

    // A created container needs no force; libcrun having lost its state
    // already is fine.
    f.runtime.create(f.config("c2")).await.unwrap();
    f.backend.exit("c2", 0);
    f.runtime.wait("c2").await.unwrap();
    f.runtime.delete("c2", false).await.unwrap();
    f.runtime.create(f.config("c3")).await.unwrap();
    f.runtime.delete("c3", false).await.unwrap();
    f.runtime.delete("c3", false).await.unwrap_err();
}

#[tokio::test]
async fn an_exit_is_recorded_and_the_restart_policy_applies() {
    let f = fixture().await;
    let config = ContainerConfig {
        restart_policy: RestartPolicy::OnFailure { max_retries: 1 },
        ..f.config("c1")
    };
    f.runtime.create(config).await.unwrap();
    f.runtime.start("c1").await.unwrap();
    f.backend.exit("c1", 3);
    // The policy runs it again: run 2, created through a new monitor.
    let entry = f.runtime.entry("c1").unwrap();
    let mut records = entry.subscribe();
    records
        .wait_for(|r| r.run == 2 && r.status == Status::Running)
        .await
        .unwrap();
    let record = entry.snapshot();
    assert_eq!(
        (record.restart_count, record.last_exit.unwrap().exit_code),
        (1, 3)
    );
    assert!(f.backend.calls().contains(&Call::Create {
        id: "c1".into(),
        run: 2
    }));
    // At most one restart.
    f.backend.exit("c1", 4);
    let exit = f.runtime.wait("c1").await.unwrap();
    assert_eq!(exit.exit_code, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.status("c1"), Status::Stopped);
    let kinds: Vec<_> = f.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Create,
            EventKind::Start,
            EventKind::Exit,
            EventKind::Restart,
            EventKind::Start,
            EventKind::Exit
        ]
    );
}

#[tokio::test]
async fn a_container_killed_through_the_api_is_not_restarted() {
    let f = fixture().await;
    let config = ContainerConfig {
        restart_policy: RestartPolicy::Always,
        ..f.config("c1")
    };
    f.runtime.create(config).await.unwrap();
    f.runtime.start("c1").await.unwrap();
    f.runtime.kill("c1", libc::SIGKILL, false).await.unwrap();
    f.runtime.wait("c1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.status("c1"), Status::Stopped);
    assert!(!f.backend.calls().contains(&Call::Create {
        id: "c1".into(),
        run: 2
    }));
}

#[tokio::test]
async fn a_monitor_gone_without_an_exit_record_is_exit_255_and_an_orphan() {
    let f = fixture().await;
    f.running("c1").await;
    f.backend.kill_monitor("c1");
    let exit = f.runtime.wait("c1").await.unwrap();
    assert_eq!(exit.exit_code, 255);
    assert!(f.record("c1").unwrap().exit_unknown);
    let orphans = f.runtime.orphans().unwrap();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!(orphans[0].container_id, "c1");
}

/// A record as an agent that died would have left it.
fn left_record(id: &str, rootfs: &std::path::Path, monitor: crate::process::ProcessRef) -> Record {
    Record {
        config: ContainerConfig {
            id: id.into(),
            root: RootSource::Rootfs(rootfs.to_path_buf()),
            command: vec!["sh".into()],
            ..Default::default()
        },
        status: Status::Running,
        pid: 42,
        monitor: Some(monitor),
        run: 1,
        created_at: SystemTime::now(),
        started_at: Some(SystemTime::now()),
        last_exit: None,
        restart_count: 0,
        rootfs_path: rootfs.to_path_buf(),
        image_digest: None,
        cgroup_path: String::new(),
        exit_unknown: false,
        stopped_by_api: false,
        health: HealthState::default(),
        network: Default::default(),
    }
}

#[tokio::test]
async fn recovery_adopts_live_monitors_and_collects_exits_that_happened_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = rootfs(dir.path());
    let backend = Arc::new(TestBackend::default());
    // Left by an agent that died: a container whose monitor still runs,
    // one whose run ended (its monitor wrote the exit), one whose monitor
    // vanished without a word.
    let live = backend.spawn_process();
    let ended = backend.spawn_process();
    let lost = backend.spawn_process();
    {
        // The dead agent's hold on the root, released as it ends.
        let store = Store::open(&dir.path().join("state"), "").unwrap();
        for (id, monitor) in [("live", live), ("ended", ended), ("lost", lost)] {
            std::fs::create_dir_all(store.container_dir(id)).unwrap();
            store
                .save_record(&left_record(id, &rootfs, monitor))
                .unwrap();
        }
        let exit = crate::model::ExitStatus::from_code(7, SystemTime::now());
        store::write_json(
            &store.container_dir("ended").join(store::EXIT_FILE),
            &ExitRecord { run: 1, exit },
        )
        .unwrap();
    }
    backend.signal_process(ended.pid, libc::SIGKILL).unwrap();
    backend.signal_process(lost.pid, libc::SIGKILL).unwrap();

    let runtime = open(dir.path(), backend.clone()).await;
    let status = |id: &str| runtime.entry(id).unwrap().snapshot();
    assert_eq!(status("live").status, Status::Running);
    assert_eq!(status("ended").last_exit.unwrap().exit_code, 7);
    assert_eq!(status("lost").last_exit.unwrap().exit_code, 255);
    assert!(status("lost").exit_unknown);
    // The adopted one is watched: its exit is recorded.
    backend.signal_process(live.pid, libc::SIGKILL).unwrap();
    assert_eq!(runtime.wait("live").await.unwrap().exit_code, 255);

    // A second reconciliation finds nothing new to adopt.
    let report = runtime.recover().await.unwrap();
    assert!(report.adopted.is_empty() && report.exited.is_empty());
}

fn exec_request(command: &[&str]) -> ExecRequest {
    ExecRequest {
        process: ProcessSpec {
            command: command.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn exec_runs_only_in_a_running_container_and_reports_output_exit_and_events() {
    let f = fixture().await;
    f.runtime.create(f.config("c1")).await.unwrap();
    assert_invalid_state(
        f.runtime.exec("c1", exec_request(&["sh"])).await,
        Status::Created,
    );
    f.runtime.start("c1").await.unwrap();
    let err = f.runtime.exec("c1", exec_request(&[])).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");

    f.backend.next_exec(ExecScript::Exit {
        stdout: b"out\n".to_vec(),
        stderr: b"err\n".to_vec(),
        code: 3,
    });
    let result = f
        .runtime
        .exec_sync("c1", exec_request(&["sh"]).process, Bytes::new(), None, 0)
        .await
        .unwrap();
    assert_eq!(
        (
            result.stdout.as_slice(),
            result.stderr.as_slice(),
            result.exit.exit_code
        ),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    let execs: Vec<_> = f
        .events()
        .await
        .into_iter()
        .filter(|e| e.2.is_some())
        .map(|e| e.0)
        .collect();
    assert_eq!(
        execs,
        [
            EventKind::ExecAdded,
            EventKind::ExecStarted,
            EventKind::Exit
        ]
    );
    assert!(f.runtime.entry("c1").unwrap().view().exec_ids.is_empty());
}

#[tokio::test]
async fn exec_ids_are_unique_while_the_exec_runs() {
    let f = fixture().await;
    f.running("c1").await;
    f.backend.next_exec(ExecScript::Hang);
    let request = ExecRequest {
        exec_id: Some("e1".into()),
        ..exec_request(&["sh"])
    };
    let mut session = f.runtime.exec("c1", request.clone()).await.unwrap();
    assert_eq!(session.exec_id, "e1");
    assert_eq!(f.runtime.list(&ListFilter::default())[0].exec_ids, ["e1"]);
    let err = f.runtime.exec("c1", request.clone()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    session
        .input
        .send(super::exec::ExecInput::Signal(libc::SIGTERM))
        .await
        .unwrap();
    while session.output.recv().await.is_some() {}
    assert_eq!((&mut session.exit).await.unwrap().unwrap().exit_code, 143);
    f.runtime.exec("c1", request).await.unwrap();
}

#[tokio::test]
async fn exec_sync_kills_at_its_timeout_and_bounds_its_output() {
    let f = fixture().await;
    f.running("c1").await;
    f.backend.next_exec(ExecScript::Hang);
    let process = exec_request(&["sh"]).process;
    let result = f
        .runtime
        .exec_sync(
            "c1",
            process.clone(),
            Bytes::new(),
            Some(Duration::from_millis(50)),
            0,
        )
        .await
        .unwrap();
    assert!(result.timed_out);
    assert_eq!(result.exit.exit_code, 137);

    f.backend.next_exec(ExecScript::Exit {
        stdout: vec![b'x'; 300_000],
        stderr: Vec::new(),
        code: 0,
    });
    let result = f
        .runtime
        .exec_sync("c1", process, Bytes::new(), None, 100_000)
        .await
        .unwrap();
    assert_eq!(result.stdout.len(), 100_000);
    assert!(result.stdout_truncated && !result.stderr_truncated);
}

#[tokio::test]
async fn an_exec_that_cannot_start_is_the_callers_error_and_frees_its_id() {
    let f = fixture().await;
    f.running("c1").await;
    match f
        .runtime
        .exec("c1", exec_request(&["/no/such/program"]))
        .await
    {
        Err(Error::FailedPrecondition(m)) => assert!(m.contains("/no/such/program"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !f.backend
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Exec { .. })),
        "the helper was not started"
    );
    f.backend
        .next_exec(ExecScript::NotStarted("chdir `/nope`: No such file".into()));
    let request = ExecRequest {
        exec_id: Some("e1".into()),
        ..exec_request(&["sh"])
    };
    let err = f.runtime.exec("c1", request.clone()).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    assert!(f.runtime.entry("c1").unwrap().view().exec_ids.is_empty());
    f.runtime.exec("c1", request).await.unwrap();
}

#[tokio::test]
async fn update_changes_a_live_container_and_the_spec_of_later_runs() {
    let f = fixture().await;
    f.running("c1").await;
    let limits = Resources {
        pids_limit: Some(64),
        ..Default::default()
    };
    let view = f.runtime.update("c1", &limits).await.unwrap();
    assert_eq!(view.record.config.resources.pids_limit, Some(64));
    assert!(
        f.backend
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Update(id, r) if id == "c1" && r.pids().is_some()))
    );
    f.runtime.stop("c1", None, None).await.unwrap();
    let calls = f.backend.calls().len();
    let more = Resources {
        memory_limit_bytes: Some(1 << 26),
        ..Default::default()
    };
    f.runtime.update("c1", &more).await.unwrap();
    assert_eq!(
        f.backend.calls().len(),
        calls,
        "no libcrun call when stopped"
    );
    let spec = f.runtime.inspect("c1").await.unwrap().oci_spec_json;
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let resources = &spec["linux"]["resources"];
    assert_eq!(
        (&resources["pids"]["limit"], &resources["memory"]["limit"]),
        (&serde_json::json!(64), &serde_json::json!(1 << 26))
    );
}

#[tokio::test]
async fn metrics_need_live_processes() {
    let f = fixture().await;
    f.runtime.create(f.config("c1")).await.unwrap();
    match f.runtime.metrics("c1").await {
        Err(Error::InvalidState {
            status, operation, ..
        }) => assert_eq!((status, operation), (Status::Created, Operation::Metrics)),
        other => panic!("{other:?}"),
    }
    assert!(
        f.runtime
            .stream_metrics(vec![], Default::default(), Some(Duration::from_millis(10)))
            .is_err()
    );
}

#[tokio::test]
async fn health_checks_run_through_exec_and_turn_the_container_healthy() {
    let f = fixture().await;
    let config = ContainerConfig {
        health_check: Some(HealthCheck {
            command: vec!["sh".into(), "-c".into(), "test -e /tmp/ready".into()],
            interval: Duration::from_millis(20),
            timeout: Duration::ZERO,
            retries: 0,
            start_period: Duration::ZERO,
        }),
        ..f.config("c1")
    };
    let view = f.runtime.create(config).await.unwrap();
    let check = view.record.config.health_check.unwrap();
    assert_eq!(
        (check.timeout, check.retries),
        (HealthCheck::DEFAULT_TIMEOUT, HealthCheck::DEFAULT_RETRIES)
    );
    f.runtime.start("c1").await.unwrap();
    assert_eq!(
        f.runtime.health("c1").unwrap().status,
        HealthStatus::Starting
    );
    let entry = f.runtime.entry("c1").unwrap();
    entry
        .subscribe()
        .wait_for(|r| r.health.status == HealthStatus::Healthy)
        .await
        .unwrap();
    assert!(f.backend.calls().contains(&Call::Exec {
        id: "c1".into(),
        args: vec!["sh".into(), "-c".into(), "test -e /tmp/ready".into()]
    }));
    let changes: Vec<_> = f
        .events()
        .await
        .into_iter()
        .filter(|e| e.0 == EventKind::HealthStatus)
        .collect();
    assert_eq!(changes.len(), 1);
}

#[tokio::test]
async fn an_auto_remove_container_is_deleted_once_its_exit_is_announced() {
    let f = fixture().await;
    let refused = f
        .runtime
        .create(ContainerConfig {
            auto_remove: true,
            restart_policy: RestartPolicy::Always,
            ..f.config("c0")
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::InvalidArgument(_)), "{refused:?}");
    assert!(!f.runtime.store.container_dir("c0").exists());

    let config = ContainerConfig {
        auto_remove: true,
        ..f.config("c1")
    };
    f.runtime.create(config).await.unwrap();
    f.runtime.start("c1").await.unwrap();
    let entry = f.runtime.entry("c1").unwrap();
    f.backend.exit("c1", 3);
    // Waiters see the exit first.
    assert_eq!(entry.wait_exit(1, None).await.unwrap().exit_code, 3);
    deleted(&f.runtime, "c1").await;
    assert!(matches!(f.runtime.entry("c1"), Err(Error::NotFound(_))));
    assert!(!f.runtime.store.container_dir("c1").exists());
    let kinds: Vec<_> = f.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Create,
            EventKind::Start,
            EventKind::Exit,
            EventKind::Delete
        ]
    );
    // A Delete that came too late finds nothing; one that waited for the
    // removal's lock returns when the container is gone.
    assert!(matches!(
        f.runtime.delete("c1", false).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn recovery_deletes_auto_remove_containers_that_exited_or_were_being_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = rootfs(dir.path());
    let backend = Arc::new(TestBackend::default());
    // Left by an agent that died: an auto-remove container that exited
    // while no agent ran, one whose exit was recorded but not yet acted
    // on, one still running, and a stopped one without auto-remove.
    let exited = backend.spawn_process();
    let live = backend.spawn_process();
    {
        let store = Store::open(&dir.path().join("state"), "").unwrap();
        let auto = |id: &str, monitor| {
            let mut record = left_record(id, &rootfs, monitor);
            record.config.auto_remove = true;
            record
        };
        let mut recorded = auto("recorded", exited);
        let mut kept = left_record("kept", &rootfs, exited);
        for record in [&mut recorded, &mut kept] {
            record.status = Status::Stopped;
            record.monitor = None;
            record.last_exit = Some(crate::model::ExitStatus::from_code(0, SystemTime::now()));
        }
        for record in [auto("exited", exited), recorded, auto("live", live), kept] {
            std::fs::create_dir_all(store.container_dir(&record.config.id)).unwrap();
            store.save_record(&record).unwrap();
        }
        store::write_json(
            &store.container_dir("exited").join(store::EXIT_FILE),
            &ExitRecord {
                run: 1,
                exit: crate::model::ExitStatus::from_code(7, SystemTime::now()),
            },
        )
        .unwrap();
    }
    backend.signal_process(exited.pid, libc::SIGKILL).unwrap();

    let runtime = open(dir.path(), backend.clone()).await;
    let gone = |id: &str| {
        matches!(runtime.entry(id), Err(Error::NotFound(_)))
            && !runtime.store.container_dir(id).exists()
    };
    assert!(gone("exited") && gone("recorded"));
    assert_eq!(
        runtime.entry("live").unwrap().snapshot().status,
        Status::Running
    );
    assert_eq!(
        runtime.entry("kept").unwrap().snapshot().status,
        Status::Stopped
    );
    // The adopted one goes at its exit.
    backend.signal_process(live.pid, libc::SIGKILL).unwrap();
    deleted(&runtime, "live").await;
    assert!(gone("live"));
    let report = runtime.recover().await.unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
}

/// Waits (at most 10 s) for the Delete event of container `id`.
async fn deleted(runtime: &Runtime, id: &str) {
    let mut deletes = runtime
        .subscribe(Some(0), Default::default())
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            std::future::ready(e.kind == EventKind::Delete && e.container_id == id)
        });
    tokio::time::timeout(Duration::from_secs(10), deletes.next())
        .await
        .expect("deleted within 10 s");
}
