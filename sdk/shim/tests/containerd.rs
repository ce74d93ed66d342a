//! `containerd-shim-crunshim-v2` under real containerd: Debian's 1.6 and
//! 2.x from the module proxy, the same tests against both. Each test runs
//! its own containerd (own config, root, state and socket; CRI off) and its
//! own `crun-shimd`, with the workspace's shim first on containerd's PATH.
//!
//! Needs root, `cargo build --workspace` and the set-up's exports
//! (`eval "$(integration/setup.sh)"`), as `integration/test.sh` provides.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::BusyboxRootfs;
use integration::containerd::{Containerd, Version, tail};
use libcrun_shim_proto::v1 as pb;

const RUNTIME: &str = "io.containerd.crunshim.v2";

/// Our containers, as `crun-shim ps` sees them.
fn our_containers(ctd: &Containerd) -> Vec<pb::Container> {
    try_our_containers(ctd).unwrap()
}

/// Our containers, or the daemon's error (while its agent restarts, say).
fn try_our_containers(ctd: &Containerd) -> Result<Vec<pb::Container>, tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = ctd.host.channel().await;
        Ok(
            pb::container_service_client::ContainerServiceClient::new(channel)
                .list(pb::ListContainersRequest::default())
                .await?
                .into_inner()
                .containers,
        )
    })
}

/// Sets the memory limit of task `id` through its shim's Update, the task
/// API call containerd makes for it (`ctr` has no command for it): a
/// client of the shim's socket, at the address containerd recorded in the
/// task's bundle.
fn update_memory_limit(ctd: &Containerd, id: &str, limit: u64) {
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::{Client, TaskClient, api, ttrpc};
    let state = ctd.dir().join("state");
    let address = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|plugin| plugin.path().join("default").join(id).join("address"))
        .find_map(|path| std::fs::read_to_string(path).ok())
        .expect("the task's bundle records its shim's address");
    let task = TaskClient::new(Client::connect(address.trim()).unwrap());
    let request = api::UpdateTaskRequest {
        id: id.to_string(),
        resources: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: format!(r#"{{"memory":{{"limit":{limit}}}}}"#).into_bytes(),
            ..Default::default()
        }),
        ..Default::default()
    };
    task.update(ttrpc::context::with_timeout(10_000_000_000), &request)
        .unwrap();
}

/// Polls `f` for up to 30 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn task_status(ctd: &Containerd, id: &str) -> Option<String> {
    ctd.ok(&["task", "ls"])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&id))
        .and_then(|f| f.get(2).map(|s| s.to_string()))
}

fn rootfs_run_prints_and_exits_with_the_code(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let out = ctd.run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--rootfs",
        rootfs.path().to_str().unwrap(),
        "t1",
        "/bin/sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "stderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&ctd.log(), 20)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(out.status.code(), Some(3));
    // --rm left nothing behind, in containerd or in libcrun-shim.
    assert_eq!(ctd.ok(&["container", "ls", "-q"]), "");
    assert!(our_containers(&ctd).is_empty());
}

fn stdin_eof_ends_the_process(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let mut child = ctd
        .ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--rootfs",
            rootfs.path().to_str().unwrap(),
            "cat1",
            "/bin/cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"data\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "data\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

fn image_from_a_registry_runs_its_cmd(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let registry = integration::registry::Registry::start().unwrap();
    let image = integration::registry::TestImage::new(
        vec![(
            integration::registry::tar_of_dir(&rootfs.path()).unwrap(),
            integration::registry::Compression::Gzip,
        )],
        serde_json::json!({
            "Cmd": ["/bin/sh", "-c", "echo hello from the image"],
            "Env": ["PATH=/bin"],
        }),
        "amd64",
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(registry.push("busybox", "v1", &image))
        .unwrap();
    let reference = format!("{}/busybox:v1", registry.host());
    ctd.ok(&["image", "pull", "--plain-http", &reference]);
    let out = ctd.ok(&["run", "--rm", "--runtime", RUNTIME, &reference, "img1"]);
    assert_eq!(out, "hello from the image\n");
    // The snapshot was mounted on the bundle's rootfs and is gone again.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("/img1/rootfs"),
        "the rootfs of img1 is still mounted"
    );
}

fn a_detached_task_through_its_life(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let mut events = ctd
        .ctr(&["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ctd.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--rootfs",
        rootfs.path().to_str().unwrap(),
        "d1",
        "/bin/sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    eventually("d1 running", || {
        task_status(&ctd, "d1").as_deref() == Some("RUNNING")
    });

    // It is one of ours, labelled with containerd's names.
    let ours = our_containers(&ctd);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id, "default--d1");
    let labels = &ours[0].config.as_ref().unwrap().labels;
    assert_eq!(
        labels.get("io.containerd.namespace").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        labels.get("io.containerd.id").map(String::as_str),
        Some("d1")
    );

    // Exec: exit codes come back, with and without a terminal.
    let out = ctd.run(&[
        "task",
        "exec",
        "--exec-id",
        "e0",
        "d1",
        "/bin/sh",
        "-c",
        "echo in; exit 4",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    assert_eq!(out.status.code(), Some(4));
    let ctr_line = format!(
        "{} --address {} task exec -t --exec-id e1 d1 /bin/sh -c 'tty; exit 5'",
        ctd.ctr(&[]).get_program().to_string_lossy(),
        ctd.socket().display()
    );
    // ctr -t wants a terminal: util-linux's script gives it one.
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &ctr_line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(5));

    // ps, metrics, pause and resume.
    let ps = ctd.ok(&["task", "ps", "d1"]);
    let pid = ours[0].pid.to_string();
    assert!(ps.lines().any(|l| l.starts_with(&pid)), "{ps}");
    let metrics = ctd.ok(&["task", "metrics", "d1"]);
    assert!(
        metrics.contains("pids.current") || metrics.contains("pids"),
        "{metrics}"
    );
    // A running exec shows in ps under its exec id.
    ctd.ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "e9",
        "d1",
        "/bin/sleep",
        "1000",
    ]);
    eventually("e9 in ps", || ctd.ok(&["task", "ps", "d1"]).contains("e9"));
    ctd.ok(&["task", "kill", "--exec-id", "e9", "-s", "SIGKILL", "d1"]);
    update_memory_limit(&ctd, "d1", 64 << 20);
    let limit = our_containers(&ctd)[0]
        .config
        .as_ref()
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.memory_limit_bytes);
    assert_eq!(limit, Some(64 << 20));
    ctd.ok(&["task", "pause", "d1"]);
    assert_eq!(task_status(&ctd, "d1").as_deref(), Some("PAUSED"));
    ctd.ok(&["task", "resume", "d1"]);
    assert_eq!(task_status(&ctd, "d1").as_deref(), Some("RUNNING"));

    // SIGTERM: the trap's exit code.
    ctd.ok(&["task", "kill", "-s", "SIGTERM", "d1"]);
    eventually("d1 stopped", || {
        task_status(&ctd, "d1").as_deref() == Some("STOPPED")
    });
    let out = ctd.run(&["task", "kill", "d1"]);
    assert!(!out.status.success(), "killing a stopped task fails");
    let deleted = ctd.ok(&["task", "rm", "d1"]);
    assert!(deleted.is_empty() || deleted.contains("d1"), "{deleted}");
    ctd.ok(&["container", "rm", "d1"]);
    assert!(our_containers(&ctd).is_empty());

    // The events, in containerd's order.
    let mut log = String::new();
    eventually("the delete event", || {
        log = read_available(events.stdout.as_mut().unwrap(), &log);
        log.contains("/tasks/delete")
    });
    let _ = events.kill();
    let _ = events.wait();
    let topics: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"d1\""))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/delete",
        ],
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("/tasks/exit")
            && l.contains("\"id\":\"d1\"")
            && l.contains("\"exit_status\":7")),
        "{log}"
    );
}

/// Reads what a pipe has now (non-blocking) and appends it to `so_far`.
fn read_available(pipe: &mut std::process::ChildStdout, so_far: &str) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL on a pipe we own.
    unsafe {
        let fd = pipe.as_raw_fd();
        libc_fcntl_nonblock(fd);
    }
    let mut out = so_far.to_string();
    let mut buf = [0u8; 65536];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    out
}

/// Makes `fd` non-blocking.
///
/// # Safety
/// `fd` must be open.
unsafe fn libc_fcntl_nonblock(fd: i32) {
    // SAFETY: the caller guarantees `fd` is open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn a_task_survives_a_containerd_restart(version: Version) {
    let mut ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    ctd.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--rootfs",
        rootfs.path().to_str().unwrap(),
        "r1",
        "/bin/sleep",
        "1000",
    ]);
    eventually("r1 running", || {
        task_status(&ctd, "r1").as_deref() == Some("RUNNING")
    });
    ctd.restart().unwrap();
    eventually("r1 listed after the restart", || {
        task_status(&ctd, "r1").as_deref() == Some("RUNNING")
    });
    ctd.ok(&["task", "kill", "-s", "SIGKILL", "r1"]);
    eventually("r1 stopped", || {
        task_status(&ctd, "r1").as_deref() == Some("STOPPED")
    });
    ctd.ok(&["task", "rm", "r1"]);
    ctd.ok(&["container", "rm", "r1"]);
    assert!(our_containers(&ctd).is_empty());
}

/// The shim serving task `id` (started with `-id ID`) of this containerd.
fn shim_of(ctd: &Containerd, id: &str) -> Option<i32> {
    let socket = ctd.socket().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.first()
                .is_some_and(|a| a.ends_with("containerd-shim-crunshim-v2"))
                && args.windows(2).any(|w| w[0] == "-id" && w[1] == id)
                && args.iter().any(|a| a == &socket)
        })
}

fn a_killed_shim_is_cleaned_up(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    ctd.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--rootfs",
        rootfs.path().to_str().unwrap(),
        "k1",
        "/bin/sleep",
        "1000",
    ]);
    eventually("k1 running", || {
        task_status(&ctd, "k1").as_deref() == Some("RUNNING")
    });
    let shim = shim_of(&ctd, "k1").expect("the shim of k1");
    // SAFETY: kills the shim this test's containerd started.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    // containerd notices the shim's death and runs its `delete`, which
    // removes the container from libcrun-shim (killing it).
    eventually("k1 gone from libcrun-shim", || {
        our_containers(&ctd).is_empty()
    });
    let _ = ctd.run(&["task", "rm", "-f", "k1"]);
    ctd.ok(&["container", "rm", "k1"]);
    assert_eq!(ctd.ok(&["task", "ls", "-q"]), "");
}

fn log_uris_file_and_binary(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let rootfs = rootfs.path();
    let file = ctd.dir().join("logs/f1.log");
    let uri = format!("file://{}", file.display());
    ctd.ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--log-uri",
        &uri,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "f1",
        "/bin/sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("out\n") && text.contains("err\n"), "{text:?}");

    // containerd's logging-program protocol: stdout on 3, stderr on 4,
    // ready when 5 closes; the URI's query gives the arguments.
    let logger = ctd.dir().join("logger.sh");
    std::fs::write(
        &logger,
        "#!/bin/sh\nout=\"$2/$CONTAINER_NAMESPACE-$CONTAINER_ID\"\nexec 5>&-\ncat <&3 >\"$out.out\" &\ncat <&4 >\"$out.err\" &\nwait\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&logger)
        .status()
        .unwrap();
    let uri = format!("binary://{}?dir={}", logger.display(), ctd.dir().display());
    ctd.ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--log-uri",
        &uri,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "b1",
        "/bin/sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    let out = ctd.dir().join("default-b1.out");
    eventually("the logger's files", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t == "to-out\n")
    });
    assert_eq!(
        std::fs::read_to_string(ctd.dir().join("default-b1.err")).unwrap(),
        "to-err\n"
    );
}

fn runtime_options_name_the_daemon(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let rootfs = rootfs.path().display().to_string();
    // The runtime options (runtimeoptions.v1's config_path, as ctr and the
    // CRI plugin pass them) win over containerd's CRUN_SHIM_HOST.
    let config = ctd.dir().join("crunshim.toml");
    std::fs::write(
        &config,
        "address = \"unix:///nonexistent/crun-shimd.sock\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let out = ctd.run(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        &config,
        "--rootfs",
        &rootfs,
        "o1",
        "/bin/true",
    ]);
    assert!(
        !out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/crun-shimd.sock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = ctd.run(&["container", "rm", "o1"]);
    // Its shim, which never reached a daemon, has exited.
    eventually("o1's shim gone", || shim_of(&ctd, "o1").is_none());
    std::fs::write(
        &config,
        format!("address = \"unix://{}\"\n", ctd.host.socket().display()),
    )
    .unwrap();
    let out = ctd.ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        &config,
        "--rootfs",
        &rootfs,
        "o2",
        "/bin/echo",
        "through the options",
    ]);
    assert_eq!(out, "through the options\n");
}

fn the_agent_killed_loses_no_task_or_exec(version: Version) {
    let ctd = Containerd::start(version).unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let rootfs = rootfs.path().display().to_string();
    ctd.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--rootfs",
        &rootfs,
        "a1",
        "/bin/sleep",
        "1000",
    ]);
    ctd.ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "e1",
        "a1",
        "/bin/sleep",
        "1000",
    ]);
    // SIGKILL the agent; crun-shimd starts it again and it adopts the
    // container and the exec process from their monitors.
    let host = ctd.host.pid().unwrap();
    let agent_of = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                    == Some(host)
                    && String::from_utf8_lossy(&cmdline).contains("crun-shim-agent")
            })
    };
    let agent = agent_of().expect("the local agent");
    // SAFETY: kills the agent of this test's daemon.
    unsafe { libc::kill(agent, libc::SIGKILL) };
    eventually("a new agent", || agent_of().is_some_and(|p| p != agent));
    eventually("a1 listed again", || {
        try_our_containers(&ctd).is_ok_and(|containers| {
            containers
                .iter()
                .any(|c| c.id == "default--a1" && c.exec_ids.contains(&"e1".to_string()))
        })
    });
    let out = ctd.run(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "a1",
        "/bin/sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctd.ok(&["task", "kill", "--exec-id", "e1", "-s", "SIGKILL", "a1"]);
    ctd.ok(&["task", "kill", "-s", "SIGKILL", "a1"]);
    eventually("a1 stopped", || {
        task_status(&ctd, "a1").as_deref() == Some("STOPPED")
    });
    ctd.ok(&["task", "rm", "a1"]);
    ctd.ok(&["container", "rm", "a1"]);
    assert!(our_containers(&ctd).is_empty());
}

macro_rules! both_versions {
    ($($name:ident),* $(,)?) => {
        mod containerd_1_6 {
            $(#[test] fn $name() { super::$name(super::Version::V16) })*
        }
        mod containerd_2 {
            $(#[test] fn $name() { super::$name(super::Version::V2) })*
        }
    };
}

both_versions!(
    rootfs_run_prints_and_exits_with_the_code,
    stdin_eof_ends_the_process,
    image_from_a_registry_runs_its_cmd,
    a_detached_task_through_its_life,
    a_task_survives_a_containerd_restart,
    a_killed_shim_is_cleaned_up,
    log_uris_file_and_binary,
    runtime_options_name_the_daemon,
    the_agent_killed_loses_no_task_or_exec,
);
