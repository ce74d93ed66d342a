//! The crictl walk-through: Kubernetes' own CLI for CRI runtimes (cri-tools'
//! `crictl`, built by integration/setup.sh) against a real `crun-shim-cri`
//! over a real `crun-shimd`: a pod with a web server and a shell
//! container, exec on a real terminal, logs, stats, port-forward, and
//! the pod stopped and removed with nothing left behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::cri::CriStack;

const BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
const HTTPD: &str = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4";

/// crictl on the stack's socket.
struct Crictl {
    binary: PathBuf,
    endpoint: String,
}

impl Crictl {
    fn new(stack: &CriStack) -> Crictl {
        let binary = std::env::var_os("CRICTL")
            .map(PathBuf::from)
            .expect("CRICTL is not set: eval \"$(integration/setup.sh)\" first");
        Crictl {
            binary,
            endpoint: stack.endpoint(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--runtime-endpoint")
            .arg(&self.endpoint)
            .arg("--image-endpoint")
            .arg(&self.endpoint)
            .arg("--config")
            .arg("/dev/null")
            .args(args);
        command
    }

    /// Runs crictl; its stdout, or a panic with its stderr.
    fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).stdin(Stdio::null()).output().unwrap();
        check(args, &output);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

fn check(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "crictl {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write_json(dir: &Path, name: &str, value: serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

/// Polls `f` until it returns `Some`, for at most 30 s.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crictl_walk_through() {
    let stack = CriStack::start().await.unwrap();
    let crictl = Crictl::new(&stack);
    let dir = stack.dir().to_path_buf();
    let logs = dir.join("pod-logs");

    assert!(crictl.run(&["version"]).contains("RuntimeName:  crun-shim"));
    crictl.run(&["pull", BUSYBOX]);
    crictl.run(&["pull", HTTPD]);
    assert!(crictl.run(&["images"]).contains("e2e-test-images/httpd"));

    let pod = write_json(
        &dir,
        "pod.json",
        serde_json::json!({
            "metadata": {"name": "walk", "namespace": "default", "uid": "walk-uid"},
            "hostname": "walk-pod",
            "log_directory": logs,
            "labels": {"app": "walk"},
        }),
    );
    let pod_id = crictl.run(&["runp", &pod]);
    assert_eq!(pod_id.len(), 64, "{pod_id}");
    assert!(
        crictl
            .run(&["pods", "--label", "app=walk", "-q"])
            .contains(&pod_id)
    );

    let web = write_json(
        &dir,
        "web.json",
        serde_json::json!({
            "metadata": {"name": "web"},
            "image": {"image": HTTPD},
            "log_path": "web.log",
        }),
    );
    let shell = write_json(
        &dir,
        "shell.json",
        serde_json::json!({
            "metadata": {"name": "shell"},
            "image": {"image": BUSYBOX},
            "command": ["sh", "-c", "echo ready; exec sleep 1000"],
            "log_path": "shell.log",
        }),
    );
    let web_id = crictl.run(&["create", &pod_id, &web, &pod]);
    let shell_id = crictl.run(&["create", &pod_id, &shell, &pod]);
    crictl.run(&["start", &web_id]);
    crictl.run(&["start", &shell_id]);
    let listed = crictl.run(&["ps", "--pod", &pod_id, "-q"]);
    assert!(
        listed.contains(&web_id) && listed.contains(&shell_id),
        "{listed}"
    );

    // Logs, through crictl and in the kubelet's file.
    wait_for("the shell's log", || {
        crictl
            .run(&["logs", &shell_id])
            .contains("ready")
            .then_some(())
    });
    let file = std::fs::read_to_string(logs.join("shell.log")).unwrap();
    assert!(file.contains(" stdout F ready"), "{file}");

    // The pod's containers share its hostname.
    assert_eq!(crictl.run(&["exec", &shell_id, "hostname"]), "walk-pod");

    // exec -it on a real terminal (script(1) gives crictl a pty).
    let mut script = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!(
            "{} --runtime-endpoint {} --config /dev/null exec -it {shell_id} sh -c 'tty; test -t 0 && echo on-a-terminal'",
            crictl.binary.display(),
            crictl.endpoint
        ))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(script.stdin.take());
    let mut out = String::new();
    script
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = script.wait().unwrap();
    assert!(status.success(), "exec -it: {status}: {out}");
    assert!(
        out.contains("/dev/pts/") && out.contains("on-a-terminal"),
        "{out}"
    );

    // exec -i carries stdin.
    let mut exec = crictl
        .command(&["exec", "-i", &shell_id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    exec.stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let output = exec.wait_with_output().unwrap();
    check(&["exec", "-i"], &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "through stdin\n");

    // attach -i to a container made with stdin_once: the client's stdin
    // reaches the main process, its end closes the process's stdin, and
    // the attach ends with the process.
    let reader = write_json(
        &dir,
        "reader.json",
        serde_json::json!({
            "metadata": {"name": "reader"},
            "image": {"image": BUSYBOX},
            "command": ["sh", "-c", "read line; echo \"got $line\"; cat >&2"],
            "stdin": true,
            "stdin_once": true,
            "log_path": "reader.log",
        }),
    );
    let reader_id = crictl.run(&["create", &pod_id, &reader, &pod]);
    crictl.run(&["start", &reader_id]);
    let mut attach = crictl
        .command(&["attach", "-i", &reader_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    attach
        .stdin
        .take()
        .unwrap()
        .write_all(b"through attach\nto stderr\n")
        .unwrap();
    let output = attach.wait_with_output().unwrap();
    check(&["attach", "-i"], &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "got through attach\n"
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "to stderr\n");
    wait_for("the reader's exit", || {
        crictl
            .run(&["inspect", "-o", "json", &reader_id])
            .contains("CONTAINER_EXITED")
            .then_some(())
    });

    // Stats of the running containers.
    let stats = crictl.run(&["stats", "-o", "json", "--id", &shell_id]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["stats"][0]["attributes"]["id"], shell_id.as_str());
    assert!(stats["stats"][0]["memory"]["workingSetBytes"]["value"].is_string());

    // Port-forward to the web server in the pod.
    let mut forward = crictl
        .command(&["port-forward", &pod_id, "0:80"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut forward_out = forward.stdout.take().unwrap();
    let port = wait_for("port-forward's port", || {
        let mut buf = [0u8; 256];
        let n = forward_out.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        // "Forwarding from 127.0.0.1:PORT -> 80"
        text.split("127.0.0.1:")
            .nth(1)?
            .split(' ')
            .next()?
            .parse::<u16>()
            .ok()
    });
    let page = wait_for("the web server", || {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut page = String::new();
        tcp.read_to_string(&mut page).ok()?;
        page.starts_with("HTTP/1.").then_some(page)
    });
    assert!(page.contains(" 200 "), "{page}");
    let _ = forward.kill();
    let _ = forward.wait();

    // Stop and remove: the pod and its containers are gone, and so are
    // crun-shimd's containers.
    crictl.run(&["stopp", &pod_id]);
    let state = crictl.run(&["inspectp", "-o", "json", &pod_id]);
    assert!(state.contains("SANDBOX_NOTREADY"), "{state}");
    crictl.run(&["rmp", &pod_id]);
    assert!(crictl.run(&["pods", "-q"]).is_empty());
    assert!(crictl.run(&["ps", "-a", "-q"]).is_empty());
    let runtime =
        libcrun_shim::ContainerRuntime::connect(&stack.host.socket().display().to_string())
            .await
            .unwrap();
    assert!(runtime.list().await.unwrap().is_empty());
}
