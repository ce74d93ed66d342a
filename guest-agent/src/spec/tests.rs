use std::collections::BTreeMap;
use std::fs;

use serde_json::json;

use super::*;
use crate::model::{NetworkMode, Rlimit};

/// libcrun's own default spec, as the agent parses it.
fn base() -> Spec {
    parse_base(&libcrun_sys::default_spec(false).expect("libcrun's default spec")).expect("parses")
}

/// A root filesystem with a user "app" (1000:1000, in groups 10 and 29).
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("etc/group"),
        "wheel:x:10:app\naudio:x:29:app\n",
    )
    .unwrap();
    dir
}

fn config() -> ContainerConfig {
    ContainerConfig {
        id: "web".into(),
        command: vec!["/bin/sh".into(), "-c".into()],
        args: vec!["echo hi".into()],
        ..ContainerConfig::default()
    }
}

fn build_with(base: &Spec, rootfs: &Path, config: &ContainerConfig) -> Result<Spec> {
    build(
        config,
        &SpecContext {
            base,
            rootfs,
            cgroup_path: "/libcrun-shim/test/web".into(),
            netns: match config.network {
                NetworkMode::Host => Netns::Host,
                _ => Netns::New,
            },
            network_files: Vec::new(),
            shared: SharedNamespaces::default(),
        },
    )
}

fn build_in(config: &ContainerConfig) -> Result<Spec> {
    let root = rootfs();
    build_with(&base(), root.path(), config)
}

fn process(spec: &Spec) -> &Process {
    spec.process().as_ref().expect("process")
}

fn linux(spec: &Spec) -> &Linux {
    spec.linux().as_ref().expect("linux")
}

fn env(spec: &Spec) -> Vec<String> {
    process(spec).env().clone().unwrap_or_default()
}

fn invalid_argument(result: Result<Spec>, naming: &str) {
    match result {
        Err(Error::InvalidArgument(msg)) => {
            assert!(msg.contains(naming), "{msg:?} does not name {naming:?}")
        }
        other => panic!("expected InvalidArgument naming {naming:?}, got {other:?}"),
    }
}

fn has_network_namespace(spec: &Spec) -> bool {
    linux(spec)
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::Network)
}

fn capability_set(
    spec: &Spec,
    pick: fn(&LinuxCapabilities) -> &Option<Capabilities>,
) -> Capabilities {
    pick(process(spec).capabilities().as_ref().expect("capabilities"))
        .clone()
        .unwrap_or_default()
}

#[test]
fn builds_a_typical_container_over_libcrun_defaults() {
    let base = base();
    let root = rootfs();
    let data = tempfile::tempdir().unwrap();
    let config = ContainerConfig {
        env: vec!["FOO=bar".into()],
        working_dir: Some("/srv".into()),
        mounts: vec![model::Mount {
            destination: "/data".into(),
            source: data.path().to_str().unwrap().into(),
            read_only: true,
            ..model::Mount::default()
        }],
        resources: model::Resources {
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(100),
            ..model::Resources::default()
        },
        labels: BTreeMap::from([("team".into(), "core".into())]),
        annotations: BTreeMap::from([("org.example/key".into(), "value".into())]),
        ..config()
    };
    let spec = build_with(&base, root.path(), &config).unwrap();

    assert!(spec.version().contains("1.0"), "{}", spec.version());
    assert_eq!(spec.version(), base.version());
    let p = process(&spec);
    assert_eq!(p.args().as_deref().unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.console_size(), None);
    assert_eq!(
        env(&spec),
        [
            format!("PATH={DEFAULT_PATH}"),
            "FOO=bar".to_string(),
            "HOME=/root".to_string()
        ]
    );
    assert_eq!(p.cwd(), Path::new("/srv"));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.user().additional_gids(), &None);
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.capabilities(), process(&base).capabilities());

    let rootfs = spec.root().as_ref().unwrap();
    assert_eq!(rootfs.path(), root.path());
    assert_eq!(rootfs.readonly(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("web"));

    let mounts = spec.mounts().as_ref().unwrap();
    let base_mounts = base.mounts().as_ref().unwrap();
    assert_eq!(mounts.len(), base_mounts.len() + 1);
    assert_eq!(&mounts[..base_mounts.len()], &base_mounts[..]);
    let bind = mounts.last().unwrap();
    assert_eq!(bind.destination(), Path::new("/data"));
    assert_eq!(bind.typ().as_deref(), Some("bind"));
    assert_eq!(bind.source().as_deref(), Some(data.path()));
    assert_eq!(
        bind.options().as_deref().unwrap(),
        ["rbind", "rprivate", "ro"]
    );

    let l = linux(&spec);
    let base_linux = linux(&base);
    assert_eq!(l.namespaces(), base_linux.namespaces());
    assert!(has_network_namespace(&spec));
    assert_eq!(l.masked_paths(), base_linux.masked_paths());
    assert_eq!(l.readonly_paths(), base_linux.readonly_paths());
    assert_eq!(
        l.cgroups_path().as_deref(),
        Some(Path::new("/libcrun-shim/test/web"))
    );
    let res = l.resources().as_ref().unwrap();
    assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert_eq!(res.pids().unwrap().limit(), 100);
    assert_eq!(res.cpu(), &None);
    // libcrun's deny-all device rule stays.
    assert_eq!(
        res.devices(),
        base_linux.resources().as_ref().unwrap().devices()
    );

    let annotations = spec.annotations().as_ref().unwrap();
    assert_eq!(
        annotations.get("org.example/key").map(String::as_str),
        Some("value")
    );
    assert!(
        !annotations.contains_key("team"),
        "labels are not annotations"
    );

    // libcrun takes it.
    let json = serde_json::to_string(&spec).unwrap();
    libcrun_sys::Container::from_json(&json).expect("libcrun loads the spec");
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn terminal_sets_console_size_and_term() {
    let spec = build_in(&ContainerConfig {
        terminal: true,
        ..config()
    })
    .unwrap();
    let p = process(&spec);
    assert_eq!(p.terminal(), Some(true));
    let size = p.console_size().unwrap();
    assert_eq!((size.height(), size.width()), (24, 80));
    assert!(env(&spec).contains(&"TERM=xterm".to_string()));

    let spec = build_in(&ContainerConfig {
        terminal: true,
        env: vec!["TERM=vt100".into()],
        ..config()
    })
    .unwrap();
    let terms: Vec<_> = env(&spec)
        .into_iter()
        .filter(|e| e.starts_with("TERM="))
        .collect();
    assert_eq!(terms, ["TERM=vt100"]);

    // No TERM without a terminal, though libcrun's default has one.
    assert!(
        !env(&build_in(&config()).unwrap())
            .iter()
            .any(|e| e.starts_with("TERM="))
    );
}

#[test]
fn config_env_overrides_and_extends_the_base() {
    let spec = build_in(&ContainerConfig {
        env: vec![
            "PATH=/opt/bin".into(),
            "HOME=/work".into(),
            "EMPTY=".into(),
            "EQ=a=b".into(),
            "EQ=c".into(),
        ],
        ..config()
    })
    .unwrap();
    assert_eq!(
        env(&spec),
        ["PATH=/opt/bin", "HOME=/work", "EMPTY=", "EQ=c"]
    );
}

#[test]
fn path_defaults_when_the_base_has_none() {
    let mut base = base();
    base.process_mut().as_mut().unwrap().set_env(None);
    let root = rootfs();
    let spec = build_with(&base, root.path(), &config()).unwrap();
    assert_eq!(
        env(&spec),
        [format!("PATH={DEFAULT_PATH}"), "HOME=/root".to_string()]
    );
}

#[test]
fn invalid_env_entries_are_named() {
    for entry in ["FOO", "=bar", ""] {
        invalid_argument(
            build_in(&ContainerConfig {
                env: vec![entry.into()],
                ..config()
            }),
            &format!("{entry:?}"),
        );
    }
}

#[test]
fn invalid_command_and_working_dir() {
    invalid_argument(
        build_in(&ContainerConfig {
            command: vec![],
            args: vec![],
            ..config()
        }),
        "command is empty",
    );
    // Arguments alone are a command.
    let spec = build_in(&ContainerConfig {
        command: vec![],
        args: vec!["/bin/true".into()],
        ..config()
    })
    .unwrap();
    assert_eq!(process(&spec).args().as_deref().unwrap(), ["/bin/true"]);
    for dir in ["srv", ""] {
        invalid_argument(
            build_in(&ContainerConfig {
                working_dir: Some(dir.into()),
                ..config()
            }),
            &format!("{dir:?}"),
        );
    }
    invalid_argument(
        build_with(&base(), Path::new("relative/rootfs"), &config()),
        "relative/rootfs",
    );
}

#[test]
fn user_resolves_against_the_rootfs() {
    let spec = build_in(&ContainerConfig {
        user: Some("app".into()),
        additional_gids: vec![29, 500],
        ..config()
    })
    .unwrap();
    let user = process(&spec).user();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));
    assert_eq!(user.additional_gids().as_deref(), Some(&[10, 29, 500][..]));
    assert!(env(&spec).contains(&"HOME=/home/app".to_string()));

    let spec = build_in(&ContainerConfig {
        user: Some("4000:4000".into()),
        ..config()
    })
    .unwrap();
    let user = process(&spec).user();
    assert_eq!((user.uid(), user.gid()), (4000, 4000));
    assert!(env(&spec).contains(&"HOME=/".to_string()));

    let spec = build_in(&ContainerConfig {
        additional_gids: vec![7],
        ..config()
    })
    .unwrap();
    let user = process(&spec).user();
    assert_eq!((user.uid(), user.gid()), (0, 0));
    assert_eq!(user.additional_gids().as_deref(), Some(&[7][..]));

    match build_in(&ContainerConfig {
        user: Some("ghost".into()),
        ..config()
    }) {
        Err(Error::NotFound(msg)) => assert!(msg.contains("\"ghost\""), "{msg}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn read_only_rootfs() {
    let spec = build_in(&ContainerConfig {
        read_only_rootfs: true,
        ..config()
    })
    .unwrap();
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
}

#[test]
fn host_network_leaves_the_network_namespace() {
    let base = base();
    let root = rootfs();
    let host = build_with(
        &base,
        root.path(),
        &ContainerConfig {
            network: NetworkMode::Host,
            ..config()
        },
    )
    .unwrap();
    assert!(!has_network_namespace(&host));
    let others = |spec: &Spec| -> Vec<LinuxNamespaceType> {
        linux(spec)
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| ns.typ())
            .filter(|t| *t != LinuxNamespaceType::Network)
            .collect()
    };
    assert_eq!(others(&host), others(&base));

    // NetworkMode::None keeps the base's namespace, or adds one.
    assert!(has_network_namespace(
        &build_with(&base, root.path(), &config()).unwrap()
    ));
    let without = build_with(&host, root.path(), &config()).unwrap();
    assert!(has_network_namespace(&without));
    assert_eq!(others(&without), others(&base));
}

#[test]
fn a_joined_namespace_and_network_files_are_in_the_spec() {
    let base = base();
    let root = rootfs();
    let hosts = root.path().join("generated-hosts");
    let user_resolv = model::Mount {
        destination: "/etc/resolv.conf".into(),
        source: root.path().join("etc/passwd").display().to_string(),
        ..Default::default()
    };
    let spec = build(
        &ContainerConfig {
            mounts: vec![user_resolv],
            ..config()
        },
        &SpecContext {
            base: &base,
            rootfs: root.path(),
            cgroup_path: "/libcrun-shim/test/web".into(),
            netns: Netns::Join("/run/test/netns/web".into()),
            shared: SharedNamespaces::default(),
            network_files: vec![
                ("/etc/hosts".into(), hosts.clone()),
                (
                    "/etc/resolv.conf".into(),
                    root.path().join("generated-resolv"),
                ),
            ],
        },
    )
    .unwrap();
    let network: Vec<_> = linux(&spec)
        .namespaces()
        .iter()
        .flatten()
        .filter(|ns| ns.typ() == LinuxNamespaceType::Network)
        .collect();
    assert_eq!(network.len(), 1);
    assert_eq!(
        network[0].path().as_deref(),
        Some(Path::new("/run/test/netns/web"))
    );
    let mounts = spec.mounts().as_deref().unwrap();
    let on = |dest: &str| -> Vec<&Mount> {
        mounts
            .iter()
            .filter(|m| m.destination() == Path::new(dest))
            .collect()
    };
    assert_eq!(on("/etc/hosts").len(), 1);
    assert_eq!(
        on("/etc/hosts")[0].source().as_deref(),
        Some(hosts.as_path())
    );
    let resolv = on("/etc/resolv.conf");
    assert_eq!(resolv.len(), 1, "the user's mount wins");
    assert!(
        resolv[0]
            .source()
            .as_deref()
            .unwrap()
            .ends_with("etc/passwd")
    );
}

#[test]
fn shared_namespaces_sysctls_and_paths_are_in_the_spec() {
    let base = base();
    let root = rootfs();
    let config = ContainerConfig {
        sysctls: [("net.ipv4.ip_forward".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
        masked_paths: Some(Vec::new()),
        ..config()
    };
    let spec = build(
        &config,
        &SpecContext {
            base: &base,
            rootfs: root.path(),
            cgroup_path: "/libcrun-shim/test/web".into(),
            netns: Netns::New,
            network_files: Vec::new(),
            shared: SharedNamespaces {
                ipc: Shared::Join("/proc/42/ns/ipc".into()),
                uts: Shared::Join("/proc/42/ns/uts".into()),
                pid: Shared::Host,
            },
        },
    )
    .unwrap();
    let of = |typ: LinuxNamespaceType| -> Vec<Option<PathBuf>> {
        linux(&spec)
            .namespaces()
            .iter()
            .flatten()
            .filter(|ns| ns.typ() == typ)
            .map(|ns| ns.path().clone())
            .collect()
    };
    assert_eq!(
        of(LinuxNamespaceType::Ipc),
        vec![Some("/proc/42/ns/ipc".into())]
    );
    assert_eq!(
        of(LinuxNamespaceType::Uts),
        vec![Some("/proc/42/ns/uts".into())]
    );
    assert!(
        of(LinuxNamespaceType::Pid).is_empty(),
        "the host's PID namespace"
    );
    assert_eq!(of(LinuxNamespaceType::Mount).len(), 1);
    assert_eq!(
        spec.hostname(),
        &None,
        "a joined UTS namespace keeps its name"
    );
    let l = linux(&spec);
    assert_eq!(
        l.sysctl()
            .as_ref()
            .unwrap()
            .get("net.ipv4.ip_forward")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(l.masked_paths().as_deref(), Some(&[][..]));
    assert_eq!(
        l.readonly_paths(),
        linux(&base).readonly_paths(),
        "the base's stay"
    );
}

#[test]
fn mount_propagation_sets_the_root_propagation_it_needs() {
    let with = |options: &[&str]| {
        let root = rootfs();
        let mount = model::Mount {
            destination: "/data".into(),
            source: root.path().join("etc").display().to_string(),
            kind: "bind".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            read_only: false,
        };
        let spec = build_in(&ContainerConfig {
            mounts: vec![mount],
            ..config()
        })
        .unwrap();
        linux(&spec).rootfs_propagation().clone()
    };
    assert_eq!(
        with(&["rbind", "rprivate"]),
        linux(&base()).rootfs_propagation().clone()
    );
    assert_eq!(with(&["rbind", "rslave"]).as_deref(), Some("rslave"));
    assert_eq!(with(&["rbind", "rshared"]).as_deref(), Some("rshared"));
}

#[test]
fn hostname_from_config_or_id() {
    let spec = build_in(&ContainerConfig {
        hostname: Some("db-1.internal".into()),
        ..config()
    })
    .unwrap();
    assert_eq!(spec.hostname().as_deref(), Some("db-1.internal"));

    let spec = build_in(&ContainerConfig {
        id: "my_app.v2".into(),
        ..config()
    })
    .unwrap();
    assert_eq!(spec.hostname().as_deref(), Some("my-app-v2"));

    let spec = build_in(&ContainerConfig {
        id: "x".repeat(128),
        ..config()
    })
    .unwrap();
    assert_eq!(spec.hostname().as_deref(), Some("x".repeat(63).as_str()));

    let long_label = "a".repeat(64);
    let long_name = ["a".repeat(40), "b".repeat(40)].join(".");
    for bad in [
        "bad_host",
        "",
        "a..b",
        "dot.",
        "sp ace",
        "ünï",
        &long_label,
        &long_name,
    ] {
        invalid_argument(
            build_in(&ContainerConfig {
                hostname: Some(bad.into()),
                ..config()
            }),
            &format!("{bad:?}"),
        );
    }
}

#[test]
fn mounts() {
    let base = base();
    let root = rootfs();
    let src = tempfile::tempdir().unwrap();
    let src_path = src.path().to_str().unwrap().to_string();
    let spec = build_with(
        &base,
        root.path(),
        &ContainerConfig {
            mounts: vec![
                model::Mount {
                    destination: "/dev/shm".into(),
                    source: "shm".into(),
                    kind: "tmpfs".into(),
                    options: vec!["size=1g".into()],
                    read_only: false,
                },
                model::Mount {
                    destination: "/cache".into(),
                    source: "tmpfs".into(),
                    kind: "tmpfs".into(),
                    options: vec!["nosuid".into(), "mode=755".into()],
                    read_only: true,
                },
                model::Mount {
                    destination: "/src".into(),
                    source: src_path.clone(),
                    kind: "bind".into(),
                    options: vec!["bind".into(), "rslave".into(), "ro".into()],
                    read_only: true,
                },
            ],
            ..config()
        },
    )
    .unwrap();
    let mounts = spec.mounts().as_ref().unwrap();
    let base_mounts = base.mounts().as_ref().unwrap();
    assert_eq!(mounts.len(), base_mounts.len() + 2);
    // The default /dev/shm is replaced where it was.
    let shm = base_mounts
        .iter()
        .position(|m| m.destination() == Path::new("/dev/shm"))
        .unwrap();
    assert_eq!(mounts[shm].options().as_deref().unwrap(), ["size=1g"]);
    assert_eq!(mounts[shm].typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        mounts
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .count(),
        1
    );
    let cache = &mounts[base_mounts.len()];
    assert_eq!(cache.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        cache.options().as_deref().unwrap(),
        ["nosuid", "mode=755", "ro"]
    );
    let bind = &mounts[base_mounts.len() + 1];
    assert_eq!(bind.typ().as_deref(), Some("bind"));
    assert_eq!(bind.options().as_deref().unwrap(), ["bind", "rslave", "ro"]);

    let mount = |destination: &str, source: &str, kind: &str| ContainerConfig {
        mounts: vec![model::Mount {
            destination: destination.into(),
            source: source.into(),
            kind: kind.into(),
            ..model::Mount::default()
        }],
        ..config()
    };
    invalid_argument(build_in(&mount("data", &src_path, "")), "\"data\"");
    invalid_argument(build_in(&mount("", &src_path, "")), "\"\"");
    invalid_argument(
        build_in(&mount("/data", "relative/dir", "")),
        "\"relative/dir\"",
    );
    invalid_argument(build_in(&mount("/data", "", "")), "/data");
    let missing = src.path().join("missing");
    match build_in(&mount("/data", missing.to_str().unwrap(), "")) {
        Err(Error::NotFound(msg)) => assert!(msg.contains(missing.to_str().unwrap()), "{msg}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn resources_json_round_trip() {
    let r = model::Resources {
        memory_limit_bytes: Some(1 << 30),
        memory_reservation_bytes: Some(1 << 29),
        memory_swap_limit_bytes: Some(-1),
        cpu_shares: Some(512),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpuset_cpus: Some("0-1".into()),
        pids_limit: Some(-1),
    };
    let value = serde_json::to_value(resources(&r)).unwrap();
    assert_eq!(
        value,
        json!({
            "memory": {"limit": 1_i64 << 30, "reservation": 1_i64 << 29, "swap": -1},
            "cpu": {"shares": 512, "quota": 50_000, "period": 100_000, "cpus": "0-1"},
            "pids": {"limit": -1},
        })
    );
    let back: LinuxResources = serde_json::from_value(value).unwrap();
    assert_eq!(back, resources(&r));

    assert_eq!(
        serde_json::to_value(resources(&model::Resources::default())).unwrap(),
        json!({})
    );
    let only_cpu = model::Resources {
        cpu_quota_us: Some(20_000),
        ..model::Resources::default()
    };
    assert_eq!(
        serde_json::to_value(resources(&only_cpu)).unwrap(),
        json!({"cpu": {"quota": 20_000}})
    );
    let huge = model::Resources {
        memory_limit_bytes: Some(u64::MAX),
        ..model::Resources::default()
    };
    assert_eq!(resources(&huge).memory().unwrap().limit(), Some(i64::MAX));
}

#[test]
fn capability_changes() {
    let with = |add: &[&str], drop: &[&str]| {
        build_in(&ContainerConfig {
            capabilities: CapabilityChanges {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
            },
            ..config()
        })
    };
    let set = |caps: &[Capability]| caps.iter().copied().collect::<Capabilities>();
    let sets: [fn(&LinuxCapabilities) -> &Option<Capabilities>; 3] = [
        LinuxCapabilities::bounding,
        LinuxCapabilities::effective,
        LinuxCapabilities::permitted,
    ];
    let base = base();
    let base_bounding = capability_set(
        &build_with(&base, rootfs().path(), &config()).unwrap(),
        LinuxCapabilities::bounding,
    );
    assert_eq!(
        base_bounding,
        set(&[
            Capability::AuditWrite,
            Capability::Kill,
            Capability::NetBindService
        ])
    );

    let spec = with(&["net_admin"], &["CAP_KILL"]).unwrap();
    let expected = set(&[
        Capability::AuditWrite,
        Capability::NetBindService,
        Capability::NetAdmin,
    ]);
    for pick in sets {
        assert_eq!(capability_set(&spec, pick), expected);
    }
    // Ambient is cut, never extended.
    assert_eq!(
        capability_set(&spec, LinuxCapabilities::ambient),
        set(&[Capability::AuditWrite, Capability::NetBindService])
    );
    assert_eq!(
        capability_set(&spec, LinuxCapabilities::inheritable),
        set(&[])
    );

    let spec = with(&["CHOWN"], &["ALL"]).unwrap();
    for pick in sets {
        assert_eq!(capability_set(&spec, pick), set(&[Capability::Chown]));
    }
    assert_eq!(capability_set(&spec, LinuxCapabilities::ambient), set(&[]));

    let spec = with(&["all"], &["sys_admin"]).unwrap();
    for pick in sets {
        let caps = capability_set(&spec, pick);
        // "ALL" is what the agent holds (this machine's bounding set).
        assert_eq!(caps.len(), held_capabilities().len() - 1);
        assert!(!caps.contains(&Capability::SysAdmin));
        assert!(caps.contains(&Capability::NetRaw));
    }
    assert_eq!(
        capability_set(&spec, LinuxCapabilities::ambient),
        capability_set(&build_in(&config()).unwrap(), LinuxCapabilities::ambient)
    );

    invalid_argument(with(&["CAP_BOGUS"], &[]), "\"CAP_BOGUS\"");
    invalid_argument(with(&[], &["net admin"]), "\"net admin\"");
}

#[test]
fn all_capabilities_are_distinct_and_named() {
    let distinct: Capabilities = ALL_CAPABILITIES.into_iter().collect();
    assert_eq!(distinct.len(), ALL_CAPABILITIES.len());
    for cap in ALL_CAPABILITIES {
        let name = format!("CAP_{cap}");
        assert_eq!(normalize_capability(&name).unwrap(), name);
        assert_eq!(serde_json::to_value(cap).unwrap(), json!(name));
    }
}

#[test]
fn capability_normalization() {
    for (input, expected) in [
        ("net_admin", "CAP_NET_ADMIN"),
        ("NET_ADMIN", "CAP_NET_ADMIN"),
        ("CAP_NET_ADMIN", "CAP_NET_ADMIN"),
        ("cap_sys_admin", "CAP_SYS_ADMIN"),
        ("syslog", "CAP_SYSLOG"),
        ("ALL", "ALL"),
        ("all", "ALL"),
    ] {
        assert_eq!(normalize_capability(input).unwrap(), expected, "{input}");
    }
    for input in ["", "CAP_", "BOGUS", "CAP_CAP_KILL", "NET-ADMIN", " KILL"] {
        match normalize_capability(input) {
            Err(Error::InvalidArgument(msg)) => {
                assert!(msg.contains(&format!("{input:?}")), "{msg}")
            }
            other => panic!("{input:?}: expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn rlimit_normalization() {
    for (input, expected) in [
        ("nofile", "RLIMIT_NOFILE"),
        ("NOFILE", "RLIMIT_NOFILE"),
        ("RLIMIT_NOFILE", "RLIMIT_NOFILE"),
        ("rlimit_nproc", "RLIMIT_NPROC"),
        ("memlock", "RLIMIT_MEMLOCK"),
        ("rttime", "RLIMIT_RTTIME"),
    ] {
        assert_eq!(normalize_rlimit(input).unwrap(), expected, "{input}");
    }
    for input in ["", "RLIMIT_", "files", "RLIMIT_RLIMIT_NOFILE", "no file"] {
        match normalize_rlimit(input) {
            Err(Error::InvalidArgument(msg)) => {
                assert!(msg.contains(&format!("{input:?}")), "{msg}")
            }
            other => panic!("{input:?}: expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn rlimits_merge_and_validate() {
    let (_, nofile_max) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let rlimits = |spec: &Spec| process(spec).rlimits().clone().unwrap_or_default();

    let spec = build_in(&config()).unwrap();
    let nofile = rlimits(&spec)
        .into_iter()
        .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
        .expect("libcrun's default NOFILE");
    assert!(nofile.hard() <= nofile_max && nofile.soft() <= nofile.hard());

    let spec = build_in(&ContainerConfig {
        rlimits: vec![
            Rlimit {
                kind: "nofile".into(),
                soft: 512,
                hard: 2048,
            },
            Rlimit {
                kind: "RLIMIT_CORE".into(),
                soft: 0,
                hard: 0,
            },
        ],
        ..config()
    })
    .unwrap();
    let got: Vec<_> = rlimits(&spec)
        .iter()
        .map(|r| (r.typ(), r.soft(), r.hard()))
        .collect();
    assert_eq!(
        got,
        [
            (PosixRlimitType::RlimitNofile, 512, 2048),
            (PosixRlimitType::RlimitCore, 0, 0)
        ]
    );

    let bad = |kind: &str, soft, hard| {
        build_in(&ContainerConfig {
            rlimits: vec![Rlimit {
                kind: kind.into(),
                soft,
                hard,
            }],
            ..config()
        })
    };
    invalid_argument(bad("nofile", 100, 10), "nofile");
    invalid_argument(bad("bogus", 1, 1), "\"bogus\"");
}

#[test]
fn base_rlimits_are_clamped_to_our_hard_limits() {
    let (_, nofile_max) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let mut base = base();
    let huge = u64::MAX - 1;
    base.process_mut().as_mut().unwrap().set_rlimits(Some(vec![
        posix_rlimit(PosixRlimitType::RlimitNofile, huge, huge).unwrap(),
    ]));
    let root = rootfs();
    let spec = build_with(&base, root.path(), &config()).unwrap();
    let r = &process(&spec).rlimits().as_ref().unwrap()[0];
    assert_eq!(
        (r.soft(), r.hard()),
        (nofile_max.min(huge), nofile_max.min(huge))
    );
}

#[test]
fn annotations_merge_over_the_base() {
    let mut base = base();
    base.set_annotations(Some(HashMap::from([
        ("keep".to_string(), "1".to_string()),
        ("over".to_string(), "old".to_string()),
    ])));
    let root = rootfs();
    let spec = build_with(
        &base,
        root.path(),
        &ContainerConfig {
            annotations: BTreeMap::from([
                ("over".into(), "new".into()),
                ("add".into(), "2".into()),
            ]),
            ..config()
        },
    )
    .unwrap();
    let annotations = spec.annotations().as_ref().unwrap();
    assert_eq!(annotations.len(), 3);
    assert_eq!(annotations["keep"], "1");
    assert_eq!(annotations["over"], "new");
    assert_eq!(annotations["add"], "2");
}

#[test]
fn parse_base_rejects_garbage() {
    assert!(matches!(parse_base("{"), Err(Error::Internal(_))));
}

#[test]
fn seccomp_default_unconfined_custom_and_no_new_privileges() {
    use crate::model::Seccomp;
    let spec = build_in(&config()).unwrap();
    let filter = linux(&spec).seccomp().clone().expect("a filter by default");
    assert_eq!(
        filter.default_action(),
        oci_spec::runtime::LinuxSeccompAction::ScmpActErrno
    );
    assert_eq!(
        process(&spec).no_new_privileges(),
        Some(true),
        "crun's default kept"
    );

    let mut c = config();
    c.seccomp = Seccomp::Unconfined;
    c.no_new_privileges = Some(false);
    let spec = build_in(&c).unwrap();
    assert!(linux(&spec).seccomp().is_none());
    assert_eq!(process(&spec).no_new_privileges(), Some(false));

    c.seccomp = Seccomp::Custom(r#"{"defaultAction": "SCMP_ACT_LOG"}"#.into());
    let spec = build_in(&c).unwrap();
    assert_eq!(
        linux(&spec).seccomp().as_ref().unwrap().default_action(),
        oci_spec::runtime::LinuxSeccompAction::ScmpActLog
    );
    c.seccomp = Seccomp::Custom("not json".into());
    invalid_argument(build_in(&c), "seccomp profile");
}
