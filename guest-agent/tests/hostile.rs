//! Hostile input, row by row: each gets its exact code, and a refused
//! create leaves nothing behind (processes, mounts, cgroups, directories,
//! nothing added to the rootfs).

mod common;

use common::{Harness, cgroup_dirs, cgroup_parent, monitors_under, names};
use libcrun_shim_proto::v1 as pb;
use tonic::Code;

type Edit = Box<dyn Fn(&mut pb::ContainerConfig)>;

fn resources(edit: impl Fn(&mut pb::Resources) + 'static) -> Edit {
    Box::new(move |c| edit(c.resources.get_or_insert_with(Default::default)))
}

fn rootfs(path: &str) -> Edit {
    let path = path.to_string();
    Box::new(move |c| c.root = Some(pb::container_config::Root::Rootfs(path.clone())))
}

fn bind(options: &[&str]) -> Edit {
    let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    Box::new(move |c| {
        c.mounts = vec![pb::Mount {
            destination: "/hostile-mount".into(),
            source: "/tmp".into(),
            options: options.clone(),
            ..Default::default()
        }]
    })
}

#[tokio::test]
async fn each_hostile_create_gets_its_code_and_leaves_nothing() {
    let mut h = Harness::start().await;
    let parent = cgroup_parent(&mut h).await;
    let link = h.rootfs.bundle().join("to-host-root");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let link = link.display().to_string();
    let rootfs_before = names(&h.rootfs.path());

    use Code::{FailedPrecondition, InvalidArgument};
    let rows: Vec<(&str, Code, Edit)> = vec![
        ("rootfs /", InvalidArgument, rootfs("/")),
        ("rootfs symlink to /", InvalidArgument, rootfs(&link)),
        ("NUL in rootfs", InvalidArgument, rootfs("/tmp/a\0b")),
        (
            "NUL in a mount source",
            InvalidArgument,
            Box::new(|c| {
                c.mounts = vec![pb::Mount {
                    destination: "/m".into(),
                    source: "/tmp\0/x".into(),
                    ..Default::default()
                }]
            }),
        ),
        (
            "NUL in env",
            InvalidArgument,
            Box::new(|c| c.env = vec!["A=b\0c".into()]),
        ),
        (
            "NUL in an argument",
            InvalidArgument,
            Box::new(|c| c.command.push("a\0b".into())),
        ),
        (
            "empty program",
            InvalidArgument,
            Box::new(|c| c.command = vec!["".into()]),
        ),
        (
            "missing absolute program",
            FailedPrecondition,
            Box::new(|c| c.command = vec!["/no/such/program".into()]),
        ),
        (
            "program not on PATH",
            FailedPrecondition,
            Box::new(|c| c.command = vec!["no-such-program".into()]),
        ),
        (
            "uid 4294967295",
            InvalidArgument,
            Box::new(|c| c.user = "4294967295".into()),
        ),
        (
            "gid 4294967295",
            InvalidArgument,
            Box::new(|c| c.user = "0:4294967295".into()),
        ),
        ("bind option bogus", InvalidArgument, bind(&["bogus"])),
        (
            "memory 0",
            InvalidArgument,
            resources(|r| r.memory_limit_bytes = Some(0)),
        ),
        (
            "memory 1",
            InvalidArgument,
            resources(|r| r.memory_limit_bytes = Some(1)),
        ),
        (
            "negative swap",
            InvalidArgument,
            resources(|r| {
                r.memory_limit_bytes = Some(64 << 20);
                r.memory_swap_limit_bytes = Some(-5);
            }),
        ),
        (
            "cpu quota -2",
            InvalidArgument,
            resources(|r| r.cpu_quota_us = Some(-2)),
        ),
        (
            "--cpus -2",
            InvalidArgument,
            resources(|r| {
                r.cpu_quota_us = Some(-200_000);
                r.cpu_period_us = Some(100_000);
            }),
        ),
        (
            "--cpus 1e9",
            InvalidArgument,
            resources(|r| {
                r.cpu_quota_us = Some(100_000_000_000_000);
                r.cpu_period_us = Some(100_000);
            }),
        ),
        (
            "cpu period 0",
            InvalidArgument,
            resources(|r| r.cpu_period_us = Some(0)),
        ),
        (
            "cpu shares 0",
            InvalidArgument,
            resources(|r| r.cpu_shares = Some(0)),
        ),
        (
            "cpu shares max",
            InvalidArgument,
            resources(|r| r.cpu_shares = Some(u64::MAX)),
        ),
        (
            "pids 0",
            InvalidArgument,
            resources(|r| r.pids_limit = Some(0)),
        ),
        (
            "pids 7 on cpuset 99",
            InvalidArgument,
            resources(|r| {
                r.pids_limit = Some(7);
                r.cpuset_cpus = Some("99".into());
            }),
        ),
        (
            "cpuset out of u32",
            InvalidArgument,
            resources(|r| r.cpuset_cpus = Some("0-4000000000".into())),
        ),
        (
            "4e9 log files",
            InvalidArgument,
            Box::new(|c| {
                c.log_config = Some(pb::LogConfig {
                    max_size_bytes: 100 << 20,
                    max_files: 4_000_000_000,
                })
            }),
        ),
        (
            "100-byte log files",
            InvalidArgument,
            Box::new(|c| {
                c.log_config = Some(pb::LogConfig {
                    max_size_bytes: 100,
                    max_files: 2,
                })
            }),
        ),
        (
            "unknown network mode",
            InvalidArgument,
            Box::new(|c| c.network_mode = 99),
        ),
        (
            "unknown restart policy",
            InvalidArgument,
            Box::new(|c| {
                c.restart_policy = Some(pb::RestartPolicy {
                    kind: 99,
                    max_retries: 0,
                })
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (n, (name, code, edit)) in rows.iter().enumerate() {
        let id = format!("h{n}");
        let mut config = h.sh(&id, "true");
        edit(&mut config);
        match h.create(config).await {
            Err(status) if status.code() == *code => {}
            other => failures.push(format!("{name}: expected {code:?}, got {other:?}")),
        }
        let left = cgroup_dirs(&format!("{parent}/{id}"));
        if !left.is_empty() {
            failures.push(format!("{name}: cgroups left: {left:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let root = h.local().root();
    assert_eq!(names(&root.join("containers")), Vec::<String>::new());
    let state: Vec<String> = names(&root.join("libcrun"))
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(state, Vec::<String>::new(), "libcrun state left");
    let monitors = monitors_under(&root);
    assert!(monitors.is_empty(), "monitors left: {monitors:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&*root.to_string_lossy()),
        "mounts left under {}",
        root.display()
    );
    assert_eq!(names(&h.rootfs.path()), rootfs_before, "rootfs changed");

    // The id of a refused create with limits is free and clean: a new
    // container of that id inherits no pids limit.
    let lk = rows
        .iter()
        .position(|(name, ..)| *name == "pids 7 on cpuset 99")
        .unwrap();
    let id = format!("h{lk}");
    h.create(h.sh(&id, "sleep 30")).await.unwrap();
    let limits: Vec<String> = cgroup_dirs(&format!("{parent}/{id}"))
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("pids.max")).ok())
        .collect();
    assert!(!limits.is_empty(), "no pids cgroup for {id}");
    assert!(limits.iter().all(|l| l.trim() == "max"), "{limits:?}");
    h.delete(&id, true).await.unwrap();
}

#[tokio::test]
async fn states_ids_and_updates_get_their_codes() {
    let mut h = Harness::start().await;
    h.create(h.sh("made", "sleep 30")).await.unwrap();
    let kill = |id: &str| pb::KillContainerRequest {
        id: id.into(),
        signal: "SIGTERM".into(),
        all: false,
    };
    // The proto: FAILED_PRECONDITION if the container is not running.
    let err = h.containers.kill(kill("made")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = h
        .exec
        .exec_sync(pb::ExecSyncRequest {
            container_id: "made".into(),
            process: Some(pb::ProcessSpec {
                command: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Exec requests follow the same rules.
    h.run("up", "sleep 30").await;
    for (what, process) in [
        ("empty program", vec!["".to_string()], vec![], ""),
        ("NUL in env", vec!["true".into()], vec!["A=\0".into()], ""),
        ("uid (uid_t) -1", vec!["true".into()], vec![], "4294967295"),
    ]
    .map(|(what, command, env, user)| {
        (
            what,
            pb::ProcessSpec {
                command,
                env,
                user: user.into(),
                ..Default::default()
            },
        )
    }) {
        let err = h
            .exec
            .exec_sync(pb::ExecSyncRequest {
                container_id: "up".into(),
                process: Some(process),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    }
    h.delete("up", true).await.unwrap();

    // Limits are checked on update too, before the cgroup is touched.
    for bad in [
        pb::Resources {
            memory_limit_bytes: Some(1),
            ..Default::default()
        },
        pb::Resources {
            cpuset_cpus: Some("99".into()),
            ..Default::default()
        },
        pb::Resources {
            pids_limit: Some(0),
            ..Default::default()
        },
    ] {
        let err = h
            .containers
            .update(pb::UpdateContainerRequest {
                id: "made".into(),
                resources: Some(bad.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    }

    // A hostile id is refused without being repeated in full.
    let long = "x".repeat(10_000);
    let err = h.create(h.sh(&long, "true")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 400, "{} bytes", err.message().len());
    let err = h.containers.kill(kill(&long)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 400, "{} bytes", err.message().len());

    // Unknown enum values in a list filter.
    let err = h
        .containers
        .list(pb::ListContainersRequest {
            statuses: vec![99],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.delete("made", true).await.unwrap();
}

#[tokio::test]
async fn mount_points_made_in_a_rootfs_directory_go_with_the_container() {
    let mut h = Harness::start().await;
    let before = names(&h.rootfs.path());
    let data = tempfile::tempdir().unwrap();
    let mut config = h.sh("mp", "test -d /made/here/data && test -f /made/file");
    let file = data.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    config.mounts = vec![
        pb::Mount {
            destination: "/made/here/data".into(),
            source: data.path().display().to_string(),
            ..Default::default()
        },
        pb::Mount {
            destination: "/made/file".into(),
            source: file.display().to_string(),
            ..Default::default()
        },
    ];
    h.create(config).await.unwrap();
    h.start_container("mp").await;
    assert_eq!(h.wait("mp").await.exit_code, 0);
    assert!(h.rootfs.path().join("made/here/data").is_dir());
    h.delete("mp", false).await.unwrap();
    assert_eq!(names(&h.rootfs.path()), before, "mount points left");
}
