//! The `crun-shim` binary against a real daemon: exit codes passed
//! through, JSON parsed back, logs followed to the end, a tty exec under a
//! pseudo-terminal, and errors as one line.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::BusyboxRootfs;
use integration::host::HostProcess;
use serde_json::Value;

/// A daemon and a busybox root filesystem.
struct Env {
    host: HostProcess,
    rootfs: BusyboxRootfs,
}

fn env() -> Env {
    Env {
        host: HostProcess::start_local().expect("crun-shimd"),
        rootfs: BusyboxRootfs::new().expect("rootfs"),
    }
}

impl Env {
    /// `crun-shim ARGS` pointed at this daemon.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crun-shim"));
        command
            .args(args)
            .env(
                "CRUN_SHIM_HOST",
                format!("unix://{}", self.host.socket().display()),
            )
            .stdin(Stdio::null());
        command
    }

    /// Runs `crun-shim ARGS` to completion.
    fn run(&self, args: &[&str]) -> Output {
        self.cli(args).output().expect("running crun-shim")
    }

    /// Runs `crun-shim ARGS`, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "crun-shim {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// `crun-shim run -d --name NAME --rootfs ROOTFS ARGS`; returns its output.
    fn detached(&self, name: &str, args: &[&str]) -> String {
        let rootfs = self.rootfs();
        let mut all = vec!["run", "-d", "--name", name, "--rootfs", &rootfs];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    fn rootfs(&self) -> String {
        self.rootfs.path().display().to_string()
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn run_passes_the_exit_code_through() {
    let e = env();
    let rootfs = e.rootfs();
    let output = e.run(&[
        "run",
        "--rm",
        "--name",
        "once",
        "--rootfs",
        &rootfs,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(text(&output.stdout), "out\n");
    assert_eq!(text(&output.stderr), "err\n");
    // --rm deleted it.
    assert_eq!(e.ok(&["ps", "-a", "-q"]), "");

    // Without --rm it stays, stopped, for `wait` and `rm`.
    let output = e.run(&[
        "run", "--name", "kept", "--rootfs", &rootfs, "sh", "-c", "exit 5",
    ]);
    assert_eq!(output.status.code(), Some(5));
    let waited = e.run(&["wait", "kept"]);
    assert_eq!(
        (waited.status.code(), text(&waited.stdout)),
        (Some(5), "5\n")
    );
    assert_eq!(e.ok(&["rm", "kept"]), "kept\n");

    // -d --rm: nobody waits, the agent removes it when it exits.
    let id = e.ok(&[
        "run", "-d", "--rm", "--name", "gone", "--rootfs", &rootfs, "sh", "-c", "exit 0",
    ]);
    assert_eq!(id, "gone\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !e.ok(&["ps", "-a", "-q"]).is_empty() {
        assert!(std::time::Instant::now() < deadline, "-d --rm left it");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Its name is free again, on the daemon too.
    let output = e.run(&[
        "run", "--rm", "--name", "gone", "--rootfs", &rootfs, "sh", "-c", "exit 4",
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
}

#[test]
fn a_detached_container_through_its_lifecycle() {
    let e = env();
    let id = e.detached("web", &["-l", "app=web", "--memory", "64m", "sleep", "600"]);
    assert_eq!(id, "web\n");

    let status = |e: &Env| -> Value {
        let ps: Value = serde_json::from_str(&e.ok(&["ps", "-a", "--format", "json"])).unwrap();
        assert_eq!(ps.as_array().unwrap().len(), 1, "{ps}");
        assert_eq!(ps[0]["id"], "web");
        ps[0]["status"].clone()
    };
    assert_eq!(status(&e), "running");
    let ps: Value =
        serde_json::from_str(&e.ok(&["ps", "--filter", "label=app=web", "--format", "json"]))
            .unwrap();
    assert_eq!(ps[0]["config"]["resources"]["memory"], 64 << 20);
    let table = e.ok(&["ps"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("web") && table.contains("Up "), "{table}");

    assert_eq!(e.ok(&["pause", "web"]), "web\n");
    assert_eq!(status(&e), "paused");
    e.ok(&["resume", "web"]);
    assert_eq!(status(&e), "running");

    let exec = e.run(&["exec", "web", "sh", "-c", "echo in there; exit 4"]);
    assert_eq!(
        (exec.status.code(), text(&exec.stdout)),
        (Some(4), "in there\n")
    );
    let exec = e
        .cli(&["exec", "-i", "web", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut exec = exec.unwrap();
    exec.stdin.take().unwrap().write_all(b"12345").unwrap();
    let exec = exec.wait_with_output().unwrap();
    assert_eq!(text(&exec.stdout).trim(), "5");

    let inspect: Value = serde_json::from_str(&e.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["id"], "web");
    assert!(
        inspect[0]["oci_spec"]["ociVersion"].is_string(),
        "{inspect}"
    );

    e.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(status(&e), "stopped");
    let waited = e.run(&["wait", "web"]);
    assert_eq!(waited.status.code(), Some(137));
    e.ok(&["rm", "web"]);
    assert_eq!(e.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn logs_follow_ends_when_the_container_exits() {
    let e = env();
    e.detached(
        "talker",
        &[
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo bye >&2",
        ],
    );
    let started = Instant::now();
    let output = e.run(&["logs", "-f", "talker"]);
    assert!(output.status.success());
    assert_eq!(text(&output.stdout), "line1\nline2\nline3\n");
    assert_eq!(text(&output.stderr), "bye\n");
    assert!(started.elapsed() < Duration::from_secs(20));

    // The tail counts the lines of both streams.
    let tail = e.run(&["logs", "--tail", "2", "talker"]);
    assert_eq!(
        (text(&tail.stdout), text(&tail.stderr)),
        ("line3\n", "bye\n")
    );
    let stamped = e.ok(&["logs", "-t", "talker"]);
    for line in stamped.lines() {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(humantime_like(time), "{line}");
        assert!(rest.starts_with("line"), "{line}");
    }
    assert_eq!(
        e.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "talker"]),
        ""
    );
}

/// An RFC 3339 UTC time as the CLI prints it.
fn humantime_like(text: &str) -> bool {
    text.len() > 20 && text.ends_with('Z') && text.as_bytes()[4] == b'-' && text.contains('T')
}

#[test]
fn exec_with_a_tty_under_a_pseudo_terminal() {
    let e = env();
    e.detached("shell", &["--", "sleep", "600"]);

    let size = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let slave = |pty: &nix::pty::OpenptyResult| -> Stdio { pty.slave.try_clone().unwrap().into() };
    let mut child = e
        .cli(&["exec", "-it", "shell", "sh"])
        .stdin(slave(&pty))
        .stdout(slave(&pty))
        .stderr(slave(&pty))
        .spawn()
        .expect("crun-shim exec");
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let (chunks, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        // EIO once the last holder of the terminal's other side is gone.
        while let Ok(n @ 1..) = reader.read(&mut buffer) {
            if chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let read_until = |output: &mut String, wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !output.contains(wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(chunk) => output.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{wanted:?} not in {output:?}"),
            }
        }
    };
    master.write_all(b"tty; stty size\n").unwrap();
    read_until(&mut output, "33 101");
    assert!(output.contains("/dev/pts/"), "{output}");

    // This terminal is resized: the exec's follows on SIGWINCH.
    let bigger = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ..size
    };
    nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, nix::pty::Winsize);
    // SAFETY: TIOCSWINSZ reads one Winsize from the pointer given.
    unsafe { set_winsize(std::os::fd::AsRawFd::as_raw_fd(&master), &bigger) }.unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    master
        .write_all(b"stty size; echo done-$((6*7)); exit 7\n")
        .unwrap();
    read_until(&mut output, "done-42");
    assert!(output.contains("40 120"), "{output}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7), "{output}");
}

#[test]
fn errors_are_one_line_and_a_non_zero_exit() {
    let e = env();
    for (args, start) in [
        (&["inspect", "ghost"][..], "crun-shim: not found: "),
        (&["start", "ghost"][..], "crun-shim: not found: "),
        (&["stop", "../etc"][..], "crun-shim: invalid argument: "),
        (
            &["create", "bad/id", "--rootfs", "/", "true"][..],
            "crun-shim: invalid argument: ",
        ),
        // Bad values are usage errors before anything runs.
        (
            &["run", "--memory", "lots", "--rootfs", "/", "true"][..],
            "crun-shim: invalid value 'lots' for '--memory <SIZE>'",
        ),
        (
            &["run", "--restart", "sometimes", "--rootfs", "/", "true"][..],
            "crun-shim: invalid value 'sometimes' for '--restart <POLICY>'",
        ),
        (
            &[
                "run",
                "--rm",
                "--restart",
                "always",
                "--rootfs",
                "/",
                "true",
            ][..],
            "crun-shim: invalid argument: a container removed when it exits cannot have a restart policy",
        ),
        (
            &["stop"][..],
            "crun-shim: the following required arguments were not provided",
        ),
    ] {
        let output = e.run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{args:?}: {stderr}");
        assert!(stderr.starts_with(start), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_crun-shim"))
        .args(["--host", "/nowhere/crun-shimd.sock", "ps"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr.starts_with("crun-shim: unavailable: "), "{stderr}");
    assert!(stderr.contains("/nowhere/crun-shimd.sock"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn stats_events_health_and_the_runtime() {
    let e = env();
    e.detached(
        "watched",
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            "sleep",
            "600",
        ],
    );
    let stats = e.ok(&["stats", "--no-stream"]);
    assert!(stats.starts_with("CONTAINER"), "{stats}");
    assert!(stats.contains("watched") && stats.contains('%'), "{stats}");
    let stats: Value =
        serde_json::from_str(&e.ok(&["stats", "--no-stream", "--format", "json", "watched"]))
            .unwrap();
    assert_eq!(stats[0]["container_id"], "watched");
    assert!(stats[0]["cpu_percent"].is_number(), "{stats}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while !e.ok(&["health", "watched"]).starts_with("watched: healthy") {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Events, replayed from the journal, one JSON object a line.
    let mut events = e
        .cli(&[
            "events",
            "--since",
            "0",
            "--format",
            "json",
            "--filter",
            "container=watched",
            "--filter",
            "type=create",
            "--filter",
            "type=start",
            "--filter",
            "type=health_status",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let mut types = Vec::new();
    while types.len() < 3 {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(event["container_id"], "watched");
        types.push(event["event_type"].as_str().unwrap().to_string());
    }
    events.kill().unwrap();
    events.wait().unwrap();
    assert_eq!(types, ["create", "start", "health_status"]);

    let version = e.ok(&["version"]);
    assert!(version.contains("Server: crun-shimd"), "{version}");
    let info: Value = serde_json::from_str(&e.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["agents"][0]["name"], "local");
    assert!(e.ok(&["recover"]).contains("orphans: none"));

    e.ok(&["kill", "watched"]);
    assert_eq!(e.run(&["wait", "watched"]).status.code(), Some(137));
    assert_eq!(e.ok(&["cleanup"]), "watched\n");
}

#[test]
fn completions_and_the_man_page() {
    let bin = env!("CARGO_BIN_EXE_crun-shim");
    let bash = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(text(&bash.stdout).contains("complete -F _crun__shim"));
    let man = Command::new(bin).arg("man").output().unwrap();
    assert!(man.status.success());
    assert!(
        text(&man.stdout).starts_with(".ie"),
        "{}",
        text(&man.stdout)
    );
    assert!(text(&man.stdout).contains(".TH crun-shim"));
}

#[test]
fn pull_images_run_an_image_and_rmi() {
    let e = env();
    let registry = integration::registry::Registry::start().expect("docker-registry");
    let layer = integration::registry::tar_of_dir(&e.rootfs.path()).expect("layer");
    let image = integration::registry::TestImage::new(
        vec![(layer, integration::registry::Compression::Gzip)],
        serde_json::json!({"Cmd": ["/bin/sh", "-c", "echo from the image; exit 4"]}),
        "amd64",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(registry.push("cli/busybox", "v1", &image))
        .expect("push");
    let reference = format!("{}/cli/busybox:v1", registry.host());

    e.ok(&["pull", "--quiet", &reference]);
    let listed: Value = serde_json::from_str(&e.ok(&["images", "--format", "json"])).expect("JSON");
    assert_eq!(listed[0]["id"], image.id(), "{listed}");
    assert_eq!(listed[0]["references"][0], reference.as_str());

    // The image's Cmd runs, and its exit code comes back.
    let output = e.run(&["run", "--rm", &reference]);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert_eq!(text(&output.stdout), "from the image\n");

    e.ok(&["rmi", &reference]);
    assert_eq!(e.ok(&["images", "--quiet"]).trim(), "");
    let output = e.run(&["rmi", &reference]);
    assert_ne!(output.status.code(), Some(0));
    assert_eq!(text(&output.stderr).lines().count(), 1, "one line");
}

/// `stop` of several containers stops them at once, as Docker does: six
/// containers that ignore SIGTERM, each SIGKILLed after `-t 2`, stop in
/// about 2 s, not 12.
#[test]
fn stop_of_many_containers_runs_concurrently() {
    let e = env();
    let names: Vec<String> = (0..6).map(|i| format!("many{i}")).collect();
    for name in &names {
        e.detached(
            name,
            &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        );
    }
    let mut args = vec!["stop", "-t", "2"];
    args.extend(names.iter().map(String::as_str));
    let started = Instant::now();
    let out = e.ok(&args);
    let took = started.elapsed();
    assert_eq!(
        out,
        names.iter().map(|n| format!("{n}\n")).collect::<String>()
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let mut rm = vec!["rm"];
    rm.extend(names.iter().map(String::as_str));
    e.ok(&rm);
}

/// Seccomp in real containers: the default profile filters (a call it
/// does not allow fails with EPERM even with the capability it needs),
/// `seccomp=unconfined` removes the filter, a custom profile (OCI or
/// Docker form) applies, and no-new-privileges can be turned off.
#[test]
fn seccomp_by_default_unconfined_or_custom() {
    let e = env();
    let rootfs = e.rootfs();
    let run = |opts: &[&str], script: &str| -> (String, String) {
        let mut args = vec!["run", "--rm", "--rootfs", &rootfs];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        let out = e.run(&args);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let status = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status";
    let (out, _) = run(&[], status);
    assert!(out.contains("Seccomp:\t2"), "filtered by default: {out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    // swapoff is no call of the default profile, even with CAP_SYS_ADMIN.
    let swapoff = "busybox swapoff /nonexistent";
    let (_, err) = run(&["--cap-add", "SYS_ADMIN"], swapoff);
    assert!(err.contains("Operation not permitted"), "{err}");

    let unconfined = [
        "--security-opt",
        "seccomp=unconfined",
        "--cap-add",
        "SYS_ADMIN",
    ];
    let (out, _) = run(&unconfined, status);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let (_, err) = run(&unconfined, swapoff);
    assert!(
        !err.contains("Operation not permitted") && err.contains("swapoff"),
        "the kernel answers, not the filter: {err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("oci.json");
    std::fs::write(
        &oci,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let docker = dir.path().join("docker.json");
    std::fs::write(
        &docker,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "includes": {"arches": ["amd64", "arm64"]}}]}"#,
    )
    .unwrap();
    for profile in [&oci, &docker] {
        let opt = format!("seccomp={}", profile.display());
        let (_, err) = run(&["--security-opt", &opt], "mkdir /tmp/made && echo made");
        assert!(err.contains("Operation not permitted"), "{opt}: {err}");
    }
    let (out, _) = run(&["--security-opt", "no-new-privileges=false"], status);
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
    let bad = e.run(&[
        "run",
        "--rm",
        "--rootfs",
        &rootfs,
        "--security-opt",
        "seccomp=/nonexistent.json",
        "true",
    ]);
    // A usage error, refused before anything runs: one line, status 125
    // like every error of the CLI.
    let stderr = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with(
            "crun-shim: invalid value 'seccomp=/nonexistent.json' for '--security-opt <OPT>'"
        ),
        "{stderr}"
    );
}

#[test]
fn networks_published_ports_and_names_from_the_command_line() {
    use integration::net::{TestNetwork, http_get};
    let e = env();
    let net = TestNetwork::new(0);
    assert_eq!(
        e.ok(&[
            "network",
            "create",
            &net.name,
            "--subnet",
            &net.subnet,
            "--bridge",
            &net.bridge
        ]),
        format!("{}\n", net.name)
    );
    let ls = e.ok(&["network", "ls"]);
    assert!(ls.starts_with("NAME "), "{ls}");
    assert!(ls.contains("crun-shim (default)"), "{ls}");
    let mine = ls
        .lines()
        .find(|l| l.starts_with(&net.name))
        .expect("listed");
    assert!(
        mine.contains(&net.subnet) && mine.contains(&net.bridge),
        "{mine}"
    );

    let serve =
        "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www";
    e.detached(
        "web",
        &[
            "--network",
            &net.name,
            "--network-alias",
            "www",
            "-p",
            "127.0.0.1::80",
            "sh",
            "-c",
            serve,
        ],
    );
    let port = e.ok(&["port", "web"]);
    let host = port
        .strip_prefix("80/tcp -> ")
        .and_then(|p| p.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{port}"));
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert_eq!(e.ok(&["port", "web", "80"]), format!("{host}\n"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        match http_get(host, "/") {
            Ok(body) => break body,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(err) => panic!("{host}: {err}"),
        }
    };
    assert_eq!(body, "served\n");
    let ps = e.ok(&["ps"]);
    assert!(ps.contains(&format!("{host}->80/tcp")), "{ps}");

    // By name and alias from another container of the network, with the
    // DNS settings and host entries asked for.
    let rootfs = e.rootfs();
    let output = e.run(&[
        "run", "--rm", "--rootfs", &rootfs, "--network", &net.name,
        "--dns", "192.0.2.53", "--dns-search", "example.test", "--add-host", "db:192.0.2.10",
        "sh", "-c",
        "wget -q -O- http://web/ && wget -q -O- http://www/ && grep -h -e nameserver -e search -e db /etc/resolv.conf /etc/hosts",
    ]);
    assert_eq!(
        text(&output.stdout),
        "served\nserved\nsearch example.test\nnameserver 192.0.2.53\n192.0.2.10\tdb\n",
        "{}",
        text(&output.stderr)
    );
    // The same port again is refused, naming it.
    let port_number = host.rsplit(':').next().unwrap();
    let taken = e.run(&[
        "run",
        "-d",
        "--name",
        "twice",
        "--rootfs",
        &rootfs,
        "--network",
        &net.name,
        "-p",
        &format!("127.0.0.1:{port_number}:80"),
        "sleep",
        "600",
    ]);
    assert_eq!(taken.status.code(), Some(125));
    assert!(
        text(&taken.stderr).contains(&format!("127.0.0.1:{port_number}/tcp is already in use")),
        "{}",
        text(&taken.stderr)
    );
    // Bad values are usage errors (status 125) before anything is asked.
    let bad = e.run(&["run", "--rootfs", &rootfs, "-p", "80:80:80:80", "true"]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("too many ':'"),
        "{}",
        text(&bad.stderr)
    );
    let bad = e.run(&["run", "--rootfs", &rootfs, "--ip", "10.0.0.9", "true"]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad.stderr));

    let inspect: Value = serde_json::from_str(&e.ok(&["network", "inspect", &net.name])).unwrap();
    assert_eq!(inspect[0]["members"][0]["container_id"], "web");
    assert_eq!(inspect[0]["config_json"]["name"], net.name.as_str());
    let in_use = e.run(&["network", "rm", &net.name]);
    assert_eq!(in_use.status.code(), Some(125), "{}", text(&in_use.stderr));
    e.ok(&["rm", "-f", "web"]);
    assert_eq!(
        e.ok(&["network", "rm", &net.name]),
        format!("{}\n", net.name)
    );
    assert!(!e.ok(&["network", "ls", "-q"]).contains(&net.name));
}

#[test]
fn run_interactive_and_attach_carry_stdin_and_output() {
    let e = env();
    let rootfs = e.rootfs();
    // run -i: this stdin to the container, its EOF ends `read`.
    let mut child = e
        .cli(&[
            "run",
            "--rm",
            "-i",
            "--rootfs",
            &rootfs,
            "--",
            "/bin/sh",
            "-c",
            "read x; echo got $x; exit 6",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(text(&output.stdout), "got hello\n");
    assert_eq!(output.status.code(), Some(6));

    // attach to a container started with -i: output from now on, stdin
    // through, the container's exit code at its end.
    e.detached(
        "att",
        &[
            "-i",
            "--",
            "/bin/sh",
            "-c",
            "while read line; do echo echo:$line; done; exit 4",
        ],
    );
    let mut child = e
        .cli(&["attach", "att"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(text(&output.stdout), "echo:one\necho:two\n");
    assert_eq!(output.status.code(), Some(4));
    e.ok(&["rm", "att"]);
}
