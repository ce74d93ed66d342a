//! Bad input gets a precise error, never a panic, and a failed create
//! leaves nothing behind.

mod common;

use common::{Harness, cgroup_dirs};
use libcrun_shim_proto::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn bad_ids_are_invalid_arguments() {
    let mut h = Harness::start().await;
    for id in [
        "",
        "../x",
        "/",
        "a/b",
        "..",
        "a\0b",
        "-x",
        "white space",
        &"x".repeat(129),
    ] {
        let config = h.sh(id, "true");
        let err = h.create(config).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}: {err:?}");
        for result in [
            h.containers
                .start(pb::StartContainerRequest { id: id.into() })
                .await
                .map(drop),
            h.containers
                .inspect(pb::InspectContainerRequest { id: id.into() })
                .await
                .map(drop),
            h.delete(id, true).await,
        ] {
            assert_eq!(result.unwrap_err().code(), Code::InvalidArgument, "{id:?}");
        }
    }
    assert!(
        std::fs::read_dir(h.local().root().join("containers"))
            .unwrap()
            .next()
            .is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn bad_configs_name_what_is_wrong() {
    let mut h = Harness::start().await;

    let mut missing_rootfs = h.sh("a", "true");
    missing_rootfs.root = Some(pb::container_config::Root::Rootfs("/no/such/rootfs".into()));
    let err = h.create(missing_rootfs).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("/no/such/rootfs"), "{err:?}");

    let mut relative = h.sh("a", "true");
    relative.root = Some(pb::container_config::Root::Rootfs("rootfs".into()));
    assert_eq!(
        h.create(relative).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut no_root = h.sh("a", "true");
    no_root.root = None;
    assert_eq!(
        h.create(no_root).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut no_command = h.sh("a", "true");
    no_command.command.clear();
    let err = h.create(no_command).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("command"), "{err:?}");

    let mut bad_env = h.sh("a", "true");
    bad_env.env = vec!["NOEQUALS".into()];
    assert_eq!(
        h.create(bad_env).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut bad_signal = h.sh("a", "true");
    bad_signal.stop_signal = "SIGNOPE".into();
    assert_eq!(
        h.create(bad_signal).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut bad_user = h.sh("a", "true");
    bad_user.user = "nosuchuser".into();
    let err = h.create(bad_user).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nosuchuser"), "{err:?}");

    let mut bad_mount = h.sh("a", "true");
    bad_mount.mounts = vec![pb::Mount {
        destination: "/data".into(),
        source: "/no/such/dir".into(),
        ..Default::default()
    }];
    let err = h.create(bad_mount).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("/no/such/dir"), "{err:?}");

    // A duplicate id.
    h.create(h.sh("dup", "sleep 60")).await.unwrap();
    let err = h.create(h.sh("dup", "true")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // Wrong states.
    let err = h
        .containers
        .pause(pb::PauseContainerRequest { id: "dup".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    h.start_container("dup").await;
    let err = h
        .containers
        .start(pb::StartContainerRequest { id: "dup".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        h.delete("dup", false).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let err = h
        .containers
        .kill(pb::KillContainerRequest {
            id: "dup".into(),
            signal: "SIGWHAT".into(),
            all: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .containers
        .start(pb::StartContainerRequest { id: "ghost".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_behind() {
    let mut h = Harness::start().await;
    // Where this agent puts its containers' cgroups.
    h.create(h.sh("probe", "true")).await.unwrap();
    let spec = h
        .containers
        .inspect(pb::InspectContainerRequest { id: "probe".into() })
        .await
        .unwrap()
        .into_inner()
        .oci_spec_json;
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let probe_cgroup = spec["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let parent = probe_cgroup
        .trim_end_matches("probe")
        .trim_matches('/')
        .to_string();
    // libcrun itself fails: the mount cannot be made.
    let mut config = h.sh("broken", "true");
    config.mounts = vec![pb::Mount {
        destination: "/x".into(),
        source: "none".into(),
        r#type: "nosuchfs".into(),
        ..Default::default()
    }];
    let err = h.create(config).await.unwrap_err();
    assert!(
        err.message().contains("mount"),
        "libcrun's message: {err:?}"
    );

    // A program that does not exist in the rootfs.
    let mut config = h.sh("noprog", "true");
    config.command = vec!["/no/such/program".into()];
    let err = h.create(config).await.unwrap_err();
    assert!(
        err.message().contains("/no/such/program"),
        "libcrun's message: {err:?}"
    );

    let root = h.local().root();
    for id in ["broken", "noprog"] {
        assert!(
            !root.join("containers").join(id).exists(),
            "{id}: state directory left"
        );
        assert!(
            !root.join("libcrun").join(id).exists(),
            "{id}: libcrun state left"
        );
        let cgroups = cgroup_dirs(&format!("{parent}/{id}"));
        assert!(cgroups.is_empty(), "{id}: cgroups left: {cgroups:?}");
    }
    // No monitor or container process is left either.
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|cmd| {
            let argv0 = cmd.split('\0').next().unwrap_or_default();
            let failed = ["broken", "noprog"]
                .iter()
                .any(|id| cmd.contains(&format!("\0--id\0{id}\0")));
            (argv0.ends_with("crun-shim-monitor")
                && cmd.contains(&*root.to_string_lossy())
                && failed)
                || cmd.starts_with("/no/such/program")
        })
        .collect();
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");

    // The agent is still healthy and the id is free again.
    let config = h.sh("broken", "exit 0");
    h.create(config)
        .await
        .expect("the id is usable after the failure");
}
