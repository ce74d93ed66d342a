//! Clients in other languages against a server of the v1 API, the way users
//! meet it: grpcurl with nothing but server reflection (no `.proto` at hand),
//! a Python client generated from `proto/` by grpcio-tools
//! (`tests/python/lifecycle.py`), and grpc-java (`tests/java`).
//!
//! Each check is a function taking the server's Unix socket, so the same
//! checks run against any server of the API. The `#[test]`s run them
//! against the host daemon `crun-shimd` ([`HostProcess`]) in front of a
//! real agent ([`AgentProcess`]), with a busybox root filesystem
//! ([`BusyboxRootfs`]).
//!
//! What the tests need, and fail without (none is skipped):
//! * `GRPCURL`: the grpcurl binary, and `LIBCRUN_SHIM_PYTHON`: a Python with
//!   grpcio-tools. `integration/setup.sh` installs both into a virtualenv in
//!   its cache and prints their `export` lines (`integration/test.sh` evals
//!   them). `LIBCRUN_SHIM_JAVA_CLIENT`: the classpath of the grpc-java
//!   client `tests/java/UnixSocketClient.java`, which
//!   `integration/setup.d/60-java-client.sh` builds.
//!
//! None of the clients is told to send `localhost` as the HTTP/2
//! `:authority`: grpcurl 1.8, gRPC core (Python) and grpc-java send the
//! socket path, as their users' code will.
//! * The daemon's and the agent's binaries, which this crate cannot have
//!   Cargo build for it (no `CARGO_BIN_EXE_*` from another package): see
//!   [`integration::binary`].
//!   Build them first with `cargo build --workspace` (`integration/test.sh`
//!   does), or the tests run stale binaries or fail to find them.
//!
//! To run only these: `eval "$(integration/setup.sh)"; cargo build --workspace;
//! cargo test -p integration --test clients`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use integration::agent::AgentProcess;
use integration::host::HostProcess;
use integration::{BusyboxRootfs, binary};
use serde_json::{Value, json};

/// The longest one client process (a grpcurl call, code generation, the
/// Python lifecycle) may run before the test kills it and fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(90);

/// The deadline grpcurl puts on each call (`-max-time`, seconds): shorter
/// than [`PROCESS_TIMEOUT`], so a hung call ends as grpcurl's own error.
const CALL_TIMEOUT_SECS: &str = "60";

/// grpcurl exits with 64 + the gRPC status code when the call fails.
const GRPCURL_NOT_FOUND: i32 = 64 + 5;

// --- the tests: crun-shimd in front of a real agent --------------------------

#[test]
fn grpcurl_lists_every_service_through_reflection() {
    let server = Server::start();
    grpcurl_lists_services(&server.socket());
}

#[test]
fn grpcurl_describes_the_container_service_through_reflection() {
    let server = Server::start();
    grpcurl_describes_container_service(&server.socket());
}

#[test]
fn grpcurl_health_check_serves() {
    let server = Server::start();
    grpcurl_health_serving(&server.socket());
    // The agent's own server too (the daemon's client sends `localhost`).
    grpcurl_health_serving(&server._agent.socket());
}

#[test]
fn grpcurl_runs_a_container_lifecycle() {
    let server = Server::start();
    let rootfs = BusyboxRootfs::new().expect("busybox rootfs");
    grpcurl_lifecycle(&server.socket(), &rootfs.path());
}

#[test]
fn generated_python_client_runs_a_container_lifecycle() {
    let server = Server::start();
    let rootfs = BusyboxRootfs::new().expect("busybox rootfs");
    python_lifecycle(&server.socket(), &rootfs.path());
}

#[test]
fn grpc_java_client_over_the_unix_socket() {
    let server = Server::start();
    java_unix_socket(&server.socket(), "crun-shimd");
    java_unix_socket(&server._agent.socket(), "crun-shim-agent");
}

// --- the checks: any server of the v1 API ------------------------------------

/// `grpcurl list` shows every service of `proto/libcrun_shim/v1` and the
/// standard health service.
fn grpcurl_lists_services(socket: &Path) {
    let listed = Grpcurl::new(socket).ok(&[], &["list"]);
    let listed: Vec<&str> = listed.lines().map(str::trim).collect();
    let mut expected = proto_services();
    assert!(
        expected.len() >= 8
            && expected
                .iter()
                .any(|s| s == "libcrun_shim.v1.ContainerService"),
        "reading the services of proto/: {expected:?}"
    );
    expected.push("grpc.health.v1.Health".into());
    for service in &expected {
        assert!(
            listed.contains(&service.as_str()),
            "`grpcurl list` misses {service}: {listed:?}"
        );
    }
}

/// `grpcurl describe libcrun_shim.v1.ContainerService` shows every RPC of the
/// service as `container.proto` declares it.
fn grpcurl_describes_container_service(socket: &Path) {
    let service = "libcrun_shim.v1.ContainerService";
    let described = Grpcurl::new(socket).ok(&[], &["describe", service]);
    assert!(
        described.contains(&format!("{service} is a service")),
        "describe {service}:\n{described}"
    );
    let rpcs = proto_rpcs("container.proto", "ContainerService");
    assert!(
        rpcs.len() >= 11 && rpcs.iter().any(|r| r == "Create"),
        "reading the RPCs of container.proto: {rpcs:?}"
    );
    for rpc in rpcs {
        let declared = described
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("rpc {rpc} (")));
        assert!(
            declared,
            "describe {service} misses rpc {rpc}:\n{described}"
        );
    }
}

/// `grpc.health.v1.Health/Check` answers SERVING.
fn grpcurl_health_serving(socket: &Path) {
    let answer = Grpcurl::new(socket).call("grpc.health.v1.Health/Check", &json!({}));
    assert_eq!(answer["status"], "SERVING", "Health/Check: {answer}");
}

/// A container created from `rootfs`, started, waited for, inspected, its
/// logs read, and deleted, all as grpcurl JSON calls.
fn grpcurl_lifecycle(socket: &Path, rootfs: &Path) {
    let grpcurl = Grpcurl::new(socket);
    let id = format!("grpcurl-{}", std::process::id());
    let service = "libcrun_shim.v1.ContainerService";
    let created = grpcurl.call(
        &format!("{service}/Create"),
        &json!({
            "config": {
                "id": id,
                "rootfs": rootfs.display().to_string(),
                "command": ["sh", "-c", "echo hello from grpcurl"],
            }
        }),
    );
    let cleanup = Cleanup {
        grpcurl: &grpcurl,
        id: &id,
    };
    assert_eq!(created["container"]["id"], id.as_str(), "Create: {created}");
    assert_eq!(
        created["container"]["status"], "CONTAINER_STATUS_CREATED",
        "Create: {created}"
    );

    let started = grpcurl.call(&format!("{service}/Start"), &json!({ "id": id }));
    let status = &started["container"]["status"];
    assert!(
        status == "CONTAINER_STATUS_RUNNING" || status == "CONTAINER_STATUS_STOPPED",
        "Start: {started}"
    );

    let waited = grpcurl.call(&format!("{service}/Wait"), &json!({ "id": id }));
    assert_eq!(waited["exit"]["exitCode"], 0, "Wait: {waited}");
    assert_eq!(waited["exit"]["signal"], 0, "Wait: {waited}");

    let inspected = grpcurl.call(&format!("{service}/Inspect"), &json!({ "id": id }));
    let container = &inspected["container"];
    assert_eq!(
        container["status"], "CONTAINER_STATUS_STOPPED",
        "Inspect: {inspected}"
    );
    assert_eq!(container["lastExit"]["exitCode"], 0, "Inspect: {inspected}");
    assert_eq!(
        container["config"]["command"],
        json!(["sh", "-c", "echo hello from grpcurl"]),
        "Inspect: {inspected}"
    );

    // A server stream: one JSON object per message, `bytes` in base64.
    let batches = grpcurl.stream(
        "libcrun_shim.v1.LogService/Logs",
        &json!({ "containerId": id, "follow": true }),
    );
    let mut stdout = Vec::new();
    for entry in batches
        .iter()
        .flat_map(|b| b["entries"].as_array().cloned().unwrap_or_default())
    {
        if entry["stream"] != "LOG_STREAM_STDERR" {
            let data = entry["data"].as_str().expect("log entry data");
            stdout.extend(base64_decode(data).expect("log entry data in base64"));
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        "hello from grpcurl\n",
        "Logs: {batches:?}"
    );

    std::mem::forget(cleanup);
    let deleted = grpcurl.call(&format!("{service}/Delete"), &json!({ "id": id }));
    assert_eq!(deleted, json!({}), "Delete: {deleted}");
    let gone = grpcurl.run(
        &[],
        &[&format!("{service}/Inspect")],
        Some(&json!({ "id": id })),
    );
    assert_eq!(
        gone.status.code(),
        Some(GRPCURL_NOT_FOUND),
        "Inspect after Delete should be NOT_FOUND:\n{gone}"
    );
    assert!(
        gone.stderr.contains("NotFound"),
        "Inspect after Delete:\n{gone}"
    );
}

/// A Python client generated from `proto/` with grpcio-tools runs
/// `tests/python/lifecycle.py` against the server: create, start, wait,
/// logs through the server stream, delete.
fn python_lifecycle(socket: &Path, rootfs: &Path) {
    let python = required_env("LIBCRUN_SHIM_PYTHON");
    let generated = tempfile::Builder::new()
        .prefix("python-client")
        .tempdir()
        .expect("temporary directory");
    let proto = workspace().join("proto");
    let mut protoc = Command::new(&python);
    protoc
        .current_dir(&proto)
        .args(["-m", "grpc_tools.protoc", "-I", "."])
        .arg("--python_out")
        .arg(generated.path())
        .arg("--grpc_python_out")
        .arg(generated.path())
        .args(
            proto_files()
                .iter()
                .map(|f| f.strip_prefix(&proto).unwrap()),
        );
    let output = run(&mut protoc);
    assert!(
        output.status.success(),
        "grpc_tools.protoc failed:\n{output}"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lifecycle.py");
    let id = format!("python-{}", std::process::id());
    let mut lifecycle = Command::new(&python);
    lifecycle
        .arg(&script)
        .arg(socket)
        .arg(rootfs)
        .arg(&id)
        .env("PYTHONPATH", generated.path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run(&mut lifecycle);
    assert!(
        output.status.success(),
        "{} failed:\n{output}",
        script.display()
    );
    let result: Value = serde_json::from_str(output.stdout.trim())
        .unwrap_or_else(|e| panic!("lifecycle.py printed no JSON ({e}):\n{output}"));
    assert_eq!(result["exit_code"], 3, "lifecycle.py: {result}");
    assert_eq!(
        result["stdout"], "hello from python\n",
        "lifecycle.py: {result}"
    );
    assert_eq!(result["stderr"], "to stderr\n", "lifecycle.py: {result}");
    assert_eq!(
        result["status"], "CONTAINER_STATUS_STOPPED",
        "lifecycle.py: {result}"
    );
    assert_eq!(result["deleted"], true, "lifecycle.py: {result}");
}

/// grpc-java, with its default authority (the socket path), calls Health
/// and Version of the server behind `socket` (`tests/java`).
fn java_unix_socket(socket: &Path, component: &str) {
    let classpath = std::env::var("LIBCRUN_SHIM_JAVA_CLIENT").unwrap_or_else(|_| {
        panic!(
            "LIBCRUN_SHIM_JAVA_CLIENT is not set: run `eval \"$(integration/setup.sh)\"` first \
             (integration/test.sh does)"
        )
    });
    let output = run(Command::new("java")
        .arg("-cp")
        .arg(&classpath)
        .arg("UnixSocketClient")
        .arg(socket));
    assert!(output.status.success(), "the Java client failed:\n{output}");
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("authority {}", socket.display()).as_str()),
        "grpc-java's own authority, the socket path:\n{output}"
    );
    // HealthCheckResponse { status: SERVING }: field 1, varint 1.
    assert_eq!(
        lines.get(1).copied(),
        Some("grpc.health.v1.Health/Check 0801"),
        "{output}"
    );
    let version = lines
        .get(2)
        .and_then(|l| l.strip_prefix("libcrun_shim.v1.SystemService/Version "))
        .unwrap_or_else(|| panic!("no Version answer:\n{output}"));
    // VersionResponse { component: "…" }: field 1, length, the name.
    let expected: String = [0x0a, component.len() as u8]
        .iter()
        .chain(component.as_bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(version.starts_with(&expected), "Version: {version}");
}

// --- grpcurl -----------------------------------------------------------------

/// grpcurl, speaking plaintext HTTP/2 to a Unix socket, with reflection only.
struct Grpcurl {
    bin: PathBuf,
    socket: PathBuf,
}

impl Grpcurl {
    fn new(socket: &Path) -> Grpcurl {
        Grpcurl {
            bin: required_env("GRPCURL"),
            socket: socket.to_path_buf(),
        }
    }

    /// `grpcurl [common flags] FLAGS SOCKET ARGS`, with `request` as the
    /// JSON request (`-d`) when given.
    fn command(&self, flags: &[&str], args: &[&str], request: Option<&Value>) -> Command {
        let mut command = Command::new(&self.bin);
        // No `-authority`: grpcurl 1.8 sends the socket path as the HTTP/2
        // :authority, which our servers accept (proto's serving::AuthorityFix).
        command
            .args(["-plaintext", "-unix"])
            .args(["-max-time", CALL_TIMEOUT_SECS])
            .args(flags);
        if let Some(request) = request {
            // Zero values too (an exit code 0 is absent otherwise).
            command.args(["-emit-defaults", "-d", &request.to_string()]);
        }
        command.arg(&self.socket).args(args);
        command
    }

    /// Runs grpcurl to its end (see [`run`]).
    fn run(&self, flags: &[&str], args: &[&str], request: Option<&Value>) -> Output {
        run(&mut self.command(flags, args, request))
    }

    /// Runs grpcurl and returns its stdout; fails the test unless it succeeds.
    fn ok(&self, flags: &[&str], args: &[&str]) -> String {
        let output = self.run(flags, args, None);
        assert!(output.status.success(), "grpcurl failed:\n{output}");
        output.stdout
    }

    /// Calls a server-streaming `method` and returns its messages.
    fn stream(&self, method: &str, request: &Value) -> Vec<Value> {
        let output = self.run(&[], &[method], Some(request));
        assert!(
            output.status.success(),
            "grpcurl {method} failed:\n{output}"
        );
        serde_json::Deserializer::from_str(&output.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("grpcurl {method} printed no JSON ({e}):\n{output}"))
    }

    /// Calls a unary `method` and returns its response.
    fn call(&self, method: &str, request: &Value) -> Value {
        let mut messages = self.stream(method, request);
        assert_eq!(messages.len(), 1, "{method}: {messages:?}");
        messages.remove(0)
    }
}

/// Deletes a container (with force) when a lifecycle check fails midway.
struct Cleanup<'a> {
    grpcurl: &'a Grpcurl,
    id: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        // No panic here: this runs while the test's failure unwinds.
        let _ = try_run(&mut self.grpcurl.command(
            &[],
            &["libcrun_shim.v1.ContainerService/Delete"],
            Some(&json!({ "id": self.id, "force": true })),
        ));
    }
}

/// Decodes standard base64 (protobuf JSON's encoding of `bytes`).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let (mut bytes, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

// --- processes, binaries, proto/ ---------------------------------------------

/// What a finished client process printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to its end, at most [`PROCESS_TIMEOUT`]: past it the
/// process is killed and the test fails with what it printed.
fn run(command: &mut Command) -> Output {
    try_run(command).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run`], returning what went wrong instead of failing the test.
fn try_run(command: &mut Command) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = child.stdout.take().map(|p| reader(Box::new(p)));
    let stderr = child.stderr.take().map(|p| reader(Box::new(p)));
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status, false),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let status = child.wait().map_err(|e| format!("{command:?}: {e}"))?;
                break (status, true);
            }
            Err(e) => return Err(format!("waiting for {command:?}: {e}")),
        }
    };
    let text = |reader: Option<std::thread::JoinHandle<String>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    let output = Output {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    };
    if timed_out {
        return Err(format!(
            "{command:?} ran longer than {PROCESS_TIMEOUT:?}:\n{output}"
        ));
    }
    Ok(output)
}

/// A tool the set-up provides, named by an environment variable: the test
/// fails without it.
fn required_env(name: &str) -> PathBuf {
    let path = std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: run `eval \"$(integration/setup.sh)\"` first \
             (integration/test.sh does)"
            )
        });
    assert!(
        path.is_file(),
        "{name}={} does not exist: run integration/setup.sh",
        path.display()
    );
    path
}

/// The workspace's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the integration crate")
        .to_path_buf()
}

/// The daemon `crun-shimd` in front of a real agent, each on its private
/// socket (and the agent on its private state root).
struct Server {
    host: HostProcess,
    _agent: AgentProcess,
}

impl Server {
    fn start() -> Server {
        let agent = AgentProcess::start(&binary("crun-shim-agent"), &binary("crun-shim-monitor"))
            .expect("starting the agent");
        let host = HostProcess::start(
            &binary("crun-shimd"),
            &[
                "--agent".into(),
                format!("local=unix://{}", agent.socket().display()),
            ],
        )
        .expect("starting crun-shimd");
        Server {
            host,
            _agent: agent,
        }
    }

    fn socket(&self) -> PathBuf {
        self.host.socket()
    }
}

/// The `.proto` files of the v1 API, sorted.
fn proto_files() -> Vec<PathBuf> {
    let dir = workspace().join("proto/libcrun_shim/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    files
}

/// The fully qualified services that `proto/` declares.
fn proto_services() -> Vec<String> {
    let mut services = Vec::new();
    for file in proto_files() {
        let text = std::fs::read_to_string(&file).expect("reading a .proto");
        services.extend(text.lines().filter_map(|l| {
            let name = l.strip_prefix("service ")?.split_whitespace().next()?;
            Some(format!("libcrun_shim.v1.{name}"))
        }));
    }
    services
}

/// The RPC names of `service` in `proto/libcrun_shim/v1/FILE`.
fn proto_rpcs(file: &str, service: &str) -> Vec<String> {
    let path = workspace().join("proto/libcrun_shim/v1").join(file);
    let text = std::fs::read_to_string(&path).expect("reading a .proto");
    text.lines()
        .skip_while(|l| !l.starts_with(&format!("service {service} ")))
        .take_while(|l| *l != "}")
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("rpc ")?;
            Some(rest.split(['(', ' ']).next()?.to_string())
        })
        .collect()
}
