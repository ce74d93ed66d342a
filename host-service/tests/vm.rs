//! crun-shimd with a VM agent: a Linux guest under QEMU (TCG), built from
//! docker/, its agent reached over hybrid vsock (vhost-device-vsock), next
//! to the local agent. Through the CLI: a container in the VM runs the
//! guest's kernel and passes exit codes through; a pull inside the VM from
//! the registry on the host's loopback (through a guest forward of the
//! restricted user network); a port of the VM forwarded to the host; QEMU
//! killed, reported UNAVAILABLE, restarted, and its containers still known
//! from the state disk. One boot for the whole binary (the kill test waits
//! until the VM serves again).

use std::io::Read;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use integration::registry::{Compression, Registry, TestImage, free_port, tar_of_dir};
use integration::vm::{VmHost, VmOptions, lease, lease_blocking, scratch_dir, share_dir, shared};
use integration::{BusyboxRootfs, binary};
use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;

/// The guest port the published-port test listens on.
const WEB_PORT: u16 = 8080;
/// Where the guest reaches the host's registry.
const REGISTRY_IN_GUEST: &str = "10.0.2.100:5000";

struct Fixture {
    vm: &'static VmHost,
    /// The host port forwarded to the guest's WEB_PORT.
    web: u16,
    /// The host port the guest's registry forward goes to.
    registry: u16,
}

fn fixture() -> Fixture {
    static PORTS: std::sync::OnceLock<(u16, u16)> = std::sync::OnceLock::new();
    let (web, registry) =
        *PORTS.get_or_init(|| (free_port().expect("a port"), free_port().expect("a port")));
    let vm = shared(|| VmOptions {
        shares: vec![share_dir().to_path_buf()],
        state_disk: Some(scratch_dir().join("state.img")),
        network: "restricted".into(),
        port_forwards: vec![(web, WEB_PORT)],
        guest_forwards: vec![(5000, format!("127.0.0.1:{registry}").parse().unwrap())],
        insecure_registries: vec![REGISTRY_IN_GUEST.into()],
        local_agent: true,
        ..Default::default()
    });
    Fixture { vm, web, registry }
}

/// Runs the CLI against the fixture's daemon.
fn cli(vm: &VmHost, args: &[&str]) -> Output {
    Command::new(binary("crun-shim"))
        .arg("--host")
        .arg(format!("unix://{}", vm.host().socket().display()))
        .args(args)
        .output()
        .expect("running crun-shim")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_container_in_the_vm_runs_the_guests_kernel_and_passes_exit_codes() {
    let _turn = lease_blocking();
    let f = fixture();
    let rootfs = BusyboxRootfs::new_in(share_dir()).unwrap();
    let rootfs = rootfs.path().display().to_string();
    let began = Instant::now();
    let out = cli(
        f.vm,
        &[
            "--agent", "vm", "run", "--rm", "--rootfs", &rootfs, "--", "uname", "-r",
        ],
    );
    assert!(out.status.success(), "{out:?}\n{}", f.vm.host().log());
    assert_eq!(stdout(&out).trim(), f.vm.image().kernel_release);
    eprintln!("run --rm uname -r through the VM: {:?}", began.elapsed());
    let host = cli(
        f.vm,
        &[
            "--agent", "local", "run", "--rm", "--rootfs", &rootfs, "--", "uname", "-r",
        ],
    );
    assert!(host.status.success(), "{host:?}");
    assert_ne!(
        stdout(&host),
        stdout(&out),
        "the local agent runs the host's kernel"
    );

    let out = cli(
        f.vm,
        &[
            "--agent",
            "vm",
            "run",
            "--rm",
            "--rootfs",
            &rootfs,
            "--",
            "sh",
            "-c",
            "echo to-stderr >&2; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
}

#[tokio::test]
async fn a_pull_inside_the_vm_reaches_the_hosts_registry() {
    let _turn = lease().await;
    let f = fixture();
    let registry = Registry::start_on(f.registry).expect("the registry");
    let rootfs = BusyboxRootfs::new().unwrap();
    let image = TestImage::new(
        vec![(tar_of_dir(&rootfs.path()).unwrap(), Compression::Gzip)],
        serde_json::json!({
            "Cmd": ["sh", "-c", "echo hello from the image in $(uname -r)"],
            "Env": ["PATH=/bin"],
        }),
        "amd64",
    );
    registry.push("busybox", "v1", &image).await.unwrap();
    let reference = format!("{REGISTRY_IN_GUEST}/busybox:v1");
    let out = cli(f.vm, &["--agent", "vm", "pull", &reference]);
    assert!(out.status.success(), "{out:?}\n{}", f.vm.host().log());
    let out = cli(f.vm, &["images", "--format", "json"]);
    let images = stdout(&out);
    assert!(
        images.contains(&reference) && images.contains("\"vm\""),
        "{images}"
    );
    let out = cli(f.vm, &["--agent", "vm", "run", "--rm", &reference]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!("hello from the image in {}\n", f.vm.image().kernel_release)
    );
    let out = cli(f.vm, &["rmi", &reference]);
    assert!(out.status.success(), "{out:?}");
}

/// What a server on 127.0.0.1:`port` says first, retried for a minute
/// (until the listener is up, a forward accepts, then closes at once).
fn greeting(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut answer = String::new();
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = conn.read_to_string(&mut answer);
        }
        if !answer.is_empty() || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_of_the_vm_answers_on_the_host() {
    let _turn = lease().await;
    let f = fixture();
    let rootfs = BusyboxRootfs::new_in(share_dir()).unwrap();
    let rootfs = rootfs.path().display().to_string();
    // In the guest's own network namespace: QEMU forwards 127.0.0.1:web on
    // the host to the guest's WEB_PORT.
    let script = format!("while true; do echo hello from the VM | nc -l -p {WEB_PORT}; done");
    let out = cli(
        f.vm,
        &[
            "--agent",
            "vm",
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "host",
            "--rootfs",
            &rootfs,
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let web = f.web;
    let answer = tokio::task::spawn_blocking(move || greeting(web))
        .await
        .unwrap();
    assert_eq!(answer, "hello from the VM\n");

    // The same port through the guest init's vsock forwarder, as the macOS
    // backend forwards ports (Virtualization.framework's NAT has none).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let vsock = f.vm.vm_dir().join("vsock.sock");
    let forward = tokio::spawn(crun_shimd::vm::control::serve_forward(
        listener, vsock, WEB_PORT,
    ));
    let answer = tokio::task::spawn_blocking(move || greeting(port))
        .await
        .unwrap();
    assert_eq!(answer, "hello from the VM\n");
    forward.abort();
    let refused = crun_shimd::vm::control::forward(&f.vm.vm_dir().join("vsock.sock"), 1)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("127.0.0.1:1"), "{refused}");

    let out = cli(f.vm, &["rm", "-f", "web"]);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_killed_vm_is_unavailable_then_restarted_with_its_containers() {
    let _turn = lease().await;
    let f = fixture();
    let rootfs = BusyboxRootfs::new_in(share_dir()).unwrap();
    let rootfs = rootfs.path().display().to_string();
    let out = cli(
        f.vm,
        &[
            "--agent", "vm", "run", "-d", "--name", "survivor", "--rootfs", &rootfs, "--", "sleep",
            "600",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let mut containers = ContainerServiceClient::new(f.vm.host().channel().await);
    let inspect = |id: &str| pb::InspectContainerRequest { id: id.into() };

    let qemu = f.vm.qemu_pid().expect("QEMU runs");
    // SAFETY: kills the QEMU process of this test's VM.
    unsafe { libc::kill(qemu, libc::SIGKILL) };
    let killed = Instant::now();

    // While the VM is down: UNAVAILABLE, naming the agent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match containers.inspect(inspect("survivor")).await {
            Err(s) if s.code() == tonic::Code::Unavailable => break s,
            other => {
                assert!(Instant::now() < deadline, "still answering: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(status.message().contains("agent vm"), "{status:?}");

    // The daemon boots it again; the container is still known from the
    // state disk, its run ended with the VM.
    let deadline = Instant::now() + Duration::from_secs(300);
    let container = loop {
        match containers.inspect(inspect("survivor")).await {
            Ok(r) => break r.into_inner().container.expect("container"),
            Err(s) => {
                assert!(
                    Instant::now() < deadline,
                    "the VM did not come back: {s:?}\n{}\n{}",
                    f.vm.host().log(),
                    f.vm.console()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!("VM back after {:?}", killed.elapsed());
    assert_ne!(f.vm.qemu_pid(), Some(qemu), "a new QEMU");
    assert_eq!(
        container.status,
        pb::ContainerStatus::Stopped as i32,
        "{container:?}"
    );
    assert_eq!(container.agent, "vm");
    let out = cli(f.vm, &["rm", "survivor"]);
    assert!(out.status.success(), "{out:?}");
    // And it runs containers again.
    let out = cli(
        f.vm,
        &[
            "--agent", "vm", "run", "--rm", "--rootfs", &rootfs, "--", "true",
        ],
    );
    assert!(out.status.success(), "{out:?}");
}
