//! The daemon against real agents: two agents behind one host (placement,
//! merged List and Events, one agent down and back), and the local agent
//! the daemon starts and supervises itself.

use std::time::Duration;

use integration::agent::AgentProcess;
use integration::host::HostProcess;
use integration::{BusyboxRootfs, binary, until};
use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;
use libcrun_shim_proto::v1::event_service_client::EventServiceClient;
use libcrun_shim_proto::v1::image_service_client::ImageServiceClient;
use libcrun_shim_proto::v1::system_service_client::SystemServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn agent() -> AgentProcess {
    AgentProcess::start(&binary("crun-shim-agent"), &binary("crun-shim-monitor")).expect("agent")
}

fn config(rootfs: &BusyboxRootfs, id: &str, script: &str) -> pb::ContainerConfig {
    pb::ContainerConfig {
        id: id.into(),
        root: Some(pb::container_config::Root::Rootfs(
            rootfs.path().display().to_string(),
        )),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

async fn create(
    c: &mut ContainerServiceClient<Channel>,
    config: pb::ContainerConfig,
    agent: &str,
) -> Result<pb::Container, tonic::Status> {
    let r = c
        .create(pb::CreateContainerRequest {
            config: Some(config),
            agent: agent.into(),
        })
        .await?;
    Ok(r.into_inner().container.expect("container"))
}

async fn run(
    c: &mut ContainerServiceClient<Channel>,
    config: pb::ContainerConfig,
    agent: &str,
) -> pb::Container {
    let id = config.id.clone();
    create(c, config, agent).await.expect("create");
    c.start(pb::StartContainerRequest { id })
        .await
        .expect("start")
        .into_inner()
        .container
        .expect("container")
}

/// A daemon with no agent configured: it starts a local agent on `root`.
fn local_host(root: &std::path::Path, env: &[(&str, &str)]) -> HostProcess {
    HostProcess::start_with_env(
        &binary("crun-shimd"),
        &[
            "--agent-binary".into(),
            binary("crun-shim-agent").display().to_string(),
            "--agent-root".into(),
            root.display().to_string(),
        ],
        env,
    )
    .expect("host")
}

/// The pids of the `crun-shim-agent` processes serving state root `root`.
fn agent_pids(root: &std::path::Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let argv0 = cmd.split('\0').next().unwrap_or_default();
            argv0.ends_with("crun-shim-agent") && cmd.contains(&*root.to_string_lossy())
        })
        .collect()
}

/// A daemon over agent `a` (named "a"), with more arguments.
fn host_of(a: &AgentProcess, args: &[&str]) -> HostProcess {
    let mut all = vec![
        "--agent".to_string(),
        format!("a=unix://{}", a.socket().display()),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    HostProcess::start(&binary("crun-shimd"), &all).expect("host")
}

/// A daemon over agents `a` and `b`, once both are ready.
async fn host_of_two(a: &AgentProcess, b: &AgentProcess) -> HostProcess {
    let host = HostProcess::start(
        &binary("crun-shimd"),
        &[
            "--agent".into(),
            format!("a=unix://{}", a.socket().display()),
            "--agent".into(),
            format!("b=unix://{}", b.socket().display()),
        ],
    )
    .expect("host");
    let system = SystemServiceClient::new(host.channel().await);
    until("both agents ready", || {
        let mut system = system.clone();
        async move {
            agent_state(&mut system, "a").await == pb::AgentState::Ready
                && agent_state(&mut system, "b").await == pb::AgentState::Ready
        }
    })
    .await;
    host
}

async fn agent_state(system: &mut SystemServiceClient<Channel>, name: &str) -> pb::AgentState {
    let info = system.info(pb::InfoRequest {}).await.unwrap().into_inner();
    let a = info
        .agents
        .iter()
        .find(|a| a.name == name)
        .expect("agent in Info");
    pb::AgentState::try_from(a.state).unwrap()
}

#[tokio::test]
async fn two_agents_behind_one_host() {
    let mut a = agent();
    let b = agent();
    let rootfs = BusyboxRootfs::new().unwrap();
    let host = host_of_two(&a, &b).await;
    let channel = host.channel().await;
    let mut containers = ContainerServiceClient::new(channel.clone());
    let mut system = SystemServiceClient::new(channel.clone());
    let mut events = EventServiceClient::new(channel);
    let version = system
        .version(pb::VersionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.component, "crun-shimd");

    let mut stream = events
        .subscribe(pb::SubscribeEventsRequest {
            since_sequence: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let on_a = run(&mut containers, config(&rootfs, "on-a", "sleep 600"), "a").await;
    let on_b = run(&mut containers, config(&rootfs, "on-b", "sleep 600"), "b").await;
    assert_eq!((on_a.agent.as_str(), on_b.agent.as_str()), ("a", "b"));
    // Placement without a selector, and ids unique across agents.
    let placed = run(&mut containers, config(&rootfs, "placed", "sleep 600"), "").await;
    assert!(["a", "b"].contains(&placed.agent.as_str()));
    let err = create(&mut containers, config(&rootfs, "on-a", "true"), "b")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = create(&mut containers, config(&rootfs, "x", "true"), "nope")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Merged List names each container's agent.
    let list = containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut seen: Vec<(String, String)> = list
        .containers
        .iter()
        .map(|c| (c.id.clone(), c.agent.clone()))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.contains(&("on-a".into(), "a".into())) && seen.contains(&("on-b".into(), "b".into()))
    );

    // Merged events, each naming its agent, numbered per agent.
    let mut got = Vec::new();
    while got.len() < 6 {
        let e = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(e);
    }
    for name in ["a", "b"] {
        let seq: Vec<u64> = got
            .iter()
            .filter(|e| e.agent == name)
            .map(|e| e.sequence)
            .collect();
        assert!(
            !seq.is_empty() && seq.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: {seq:?}"
        );
    }

    // Agent a goes down: its containers are UNAVAILABLE naming it, b goes on.
    a.kill();
    let err = containers
        .inspect(pb::InspectContainerRequest { id: "on-a".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("agent a"), "{err:?}");
    let alive = containers
        .inspect(pb::InspectContainerRequest { id: "on-b".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alive.container.unwrap().agent, "b");
    until("a reported unavailable", || {
        let mut system = system.clone();
        async move { agent_state(&mut system, "a").await == pb::AgentState::Unavailable }
    })
    .await;
    let list = containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap();
    assert_eq!(list.metadata().get("x-unavailable-agents").unwrap(), "a");

    // Agent a comes back: reconnected, its container still there, and the
    // event stream goes on from where it was for a.
    a.restart().expect("agent a back");
    until("a ready again", || {
        let mut system = system.clone();
        async move { agent_state(&mut system, "a").await == pb::AgentState::Ready }
    })
    .await;
    let back = containers
        .inspect(pb::InspectContainerRequest { id: "on-a".into() })
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    assert_eq!(
        (back.status, back.agent.as_str()),
        (pb::ContainerStatus::Running as i32, "a")
    );
    containers
        .delete(pb::DeleteContainerRequest {
            id: "on-a".into(),
            force: true,
        })
        .await
        .unwrap();
    let last_a = got
        .iter()
        .filter(|e| e.agent == "a")
        .map(|e| e.sequence)
        .max()
        .unwrap();
    let resumed = loop {
        let e = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if e.agent == "a" {
            break e;
        }
    };
    assert_eq!(
        resumed.sequence,
        last_a + 1,
        "no gap for agent a across its restart"
    );
}

#[tokio::test]
async fn a_local_agent_started_and_supervised() {
    let rootfs = BusyboxRootfs::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let host = local_host(root.path(), &[]);
    let channel = host.channel().await;
    let mut containers = ContainerServiceClient::new(channel.clone());
    let mut system = SystemServiceClient::new(channel);
    until("the local agent ready", || {
        let mut system = system.clone();
        async move { agent_state(&mut system, "local").await == pb::AgentState::Ready }
    })
    .await;
    let c = run(&mut containers, config(&rootfs, "kept", "sleep 600"), "").await;
    assert_eq!(c.agent, "local");

    // Kill the local agent: the daemon brings it back, the container lives.
    let info = system.info(pb::InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.agents.len(), 1);
    let agent_pid = *agent_pids(root.path())
        .first()
        .expect("local agent process");
    // SAFETY: kills the agent this test's daemon started.
    unsafe { libc::kill(agent_pid, libc::SIGKILL) };
    until("the local agent back", || {
        let mut containers = containers.clone();
        async move {
            containers
                .inspect(pb::InspectContainerRequest { id: "kept".into() })
                .await
                .is_ok_and(|r| {
                    r.into_inner()
                        .container
                        .is_some_and(|c| c.status == pb::ContainerStatus::Running as i32)
                })
        }
    })
    .await;
    containers
        .delete(pb::DeleteContainerRequest {
            id: "kept".into(),
            force: true,
        })
        .await
        .unwrap();
    assert!(host.log().contains("local agent exited"), "{}", host.log());
}

/// crun-shimd SIGKILLed and started again: the agent it left running is
/// adopted, never doubled, so the root keeps one journal sequence and
/// one owner of its containers.
#[tokio::test]
async fn a_restarted_daemon_adopts_the_agent_it_left_running() {
    let rootfs = BusyboxRootfs::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut host = local_host(root.path(), &[]);
    local_ready(&host).await;
    let mut containers = ContainerServiceClient::new(host.channel().await);
    // Keeps exiting and being restarted: the work two agents would both do.
    let mut c = config(&rootfs, "again", "sleep 0.5; exit 3");
    c.restart_policy = Some(pb::RestartPolicy {
        kind: pb::restart_policy::Kind::Always as i32,
        max_retries: 0,
    });
    run(&mut containers, c, "").await;
    let before = agent_pids(root.path());
    assert_eq!(before.len(), 1, "{before:?}");

    host.kill();
    host.restart().expect("the daemon back");
    local_ready(&host).await;
    let channel = host.channel().await;
    let mut containers = ContainerServiceClient::new(channel.clone());
    // Let restarts happen under the new daemon.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(agent_pids(root.path()), before, "{}", host.log());
    assert!(host.log().contains("adopting"), "{}", host.log());

    // One journal: every sequence once, in order.
    let mut events = EventServiceClient::new(channel)
        .subscribe(pb::SubscribeEventsRequest {
            since_sequence: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    while let Ok(Ok(Some(e))) =
        tokio::time::timeout(Duration::from_millis(500), events.message()).await
    {
        sequences.push(e.sequence);
    }
    assert!(sequences.len() > 4, "{sequences:?}");
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "one sequence: {sequences:?}"
    );

    // Still visible and removable, and gone once removed.
    let listed = containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["again"]
    );
    containers
        .delete(pb::DeleteContainerRequest {
            id: "again".into(),
            force: true,
        })
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = containers
        .inspect(pb::InspectContainerRequest { id: "again".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "not brought back: {err:?}");
    let left: Vec<_> = std::fs::read_dir(root.path().join("libcrun"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        // libcrun's cache of compiled seccomp filters is shared, not the
        // container's.
        .filter(|n| n != ".cache")
        .collect();
    assert!(left.is_empty(), "left in libcrun's state: {left:?}");
}

/// Waits until the daemon reports its local agent ready.
async fn local_ready(host: &HostProcess) {
    let system = SystemServiceClient::new(host.channel().await);
    until("the local agent ready", || {
        let mut system = system.clone();
        async move { agent_state(&mut system, "local").await == pb::AgentState::Ready }
    })
    .await;
}

#[tokio::test]
async fn oversized_and_bad_requests_get_errors_not_crashes() {
    let a = agent();
    let host = host_of(&a, &["--max-message-bytes", "4096"]);
    let mut containers = ContainerServiceClient::new(host.channel().await);
    let mut big = pb::ContainerConfig {
        id: "big".into(),
        ..Default::default()
    };
    big.env = vec!["X=".to_string() + &"y".repeat(10_000)];
    let err = create(&mut containers, big, "").await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    for id in ["", "../etc", "a/b"] {
        let err = containers
            .inspect(pb::InspectContainerRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}: {err:?}");
    }
    let err = containers
        .inspect(pb::InspectContainerRequest { id: "ghost".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Still serving.
    containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap();
}

/// An OTLP trace collector on loopback: what the daemon and its agent
/// export.
mod collector {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    /// A received span: the service that sent it, and the span.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub service: String,
        pub span: opentelemetry_proto::tonic::trace::v1::Span,
    }

    #[derive(Debug, Clone, Default)]
    pub struct Collector(pub Arc<Mutex<Vec<Received>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut received = self.0.lock().unwrap();
            for resource_spans in request.into_inner().resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        received.push(Received {
                            service: service.clone(),
                            span,
                        });
                    }
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Serves a collector on 127.0.0.1; returns it and its endpoint.
    pub async fn start() -> (Collector, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let server = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, endpoint)
    }
}

#[tokio::test]
async fn one_trace_covers_the_daemon_and_its_agent() {
    let (collector, endpoint) = collector::start().await;
    let root = tempfile::tempdir().unwrap();
    let host = local_host(
        root.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let channel = host.channel().await;
    let system = SystemServiceClient::new(channel.clone());
    until("the local agent ready", || {
        let mut system = system.clone();
        async move { agent_state(&mut system, "local").await == pb::AgentState::Ready }
    })
    .await;

    // The caller's own span: a W3C traceparent, as any instrumented client sends.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let trace_id = format!(
        "{:016x}{:016x}",
        nanos as u64,
        u64::from(std::process::id()) | 1 << 40
    );
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(pb::ListContainersRequest::default());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    ContainerServiceClient::new(channel)
        .list(request)
        .await
        .expect("list");

    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The daemon's List gathers the agent's list through its ListStream.
    let method = "/libcrun_shim.v1.ContainerService/List";
    let mut spans = Vec::new();
    until("the daemon's and the agent's spans of the call", || {
        spans = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| hex(&r.span.trace_id) == trace_id && r.span.name.starts_with(method))
            .cloned()
            .collect::<Vec<_>>();
        std::future::ready(spans.len() >= 2)
    })
    .await;
    let daemon = spans
        .iter()
        .find(|r| r.service == "crun-shimd")
        .expect("a span of crun-shimd");
    let agent = spans
        .iter()
        .find(|r| r.service == "crun-shim-agent")
        .expect("a span of the agent");
    assert_eq!(
        hex(&daemon.span.parent_span_id),
        caller_span,
        "the daemon's span is the caller's child"
    );
    assert_eq!(
        agent.span.parent_span_id, daemon.span.span_id,
        "the agent's span is the daemon's child"
    );
    let server_kind = opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32;
    assert_eq!(daemon.span.kind, server_kind);
    assert_eq!(agent.span.kind, server_kind);
}

#[tokio::test]
async fn images_through_the_host() {
    let registry = integration::registry::Registry::start().unwrap();
    let rootfs = BusyboxRootfs::new().unwrap();
    let image = integration::registry::TestImage::new(
        vec![(
            integration::registry::tar_of_dir(&rootfs.path()).unwrap(),
            integration::registry::Compression::Gzip,
        )],
        serde_json::json!({"Cmd": ["echo", "from the image"]}),
        "amd64",
    );
    registry.push("test/app", "v1", &image).await.unwrap();
    let reference = format!("{}/test/app:v1", registry.host());
    let (a, b) = (agent(), agent());
    let host = host_of_two(&a, &b).await;
    let channel = host.channel().await;
    let mut images = ImageServiceClient::new(channel.clone());
    let mut progress = images
        .pull(pb::PullImageRequest {
            reference: reference.clone(),
            agent: "b".into(),
            ..Default::default()
        })
        .await
        .expect("pull")
        .into_inner();
    let mut last = None;
    while let Some(m) = progress.message().await.expect("progress") {
        last = Some(m);
    }
    let pulled = last.and_then(|m| m.image).expect("the pulled image");
    assert_eq!(pulled.agent, "b");
    let listed = images
        .list(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(
        listed.iter().map(|i| i.agent.as_str()).collect::<Vec<_>>(),
        ["b"]
    );

    // Created with no agent named: it goes where the image is.
    let mut containers = ContainerServiceClient::new(channel);
    let c = containers
        .create(pb::CreateContainerRequest {
            config: Some(pb::ContainerConfig {
                id: "of-image".into(),
                root: Some(pb::container_config::Root::Image(reference.clone())),
                ..Default::default()
            }),
            agent: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .container
        .unwrap();
    assert_eq!(c.agent, "b");
    containers
        .start(pb::StartContainerRequest {
            id: "of-image".into(),
        })
        .await
        .unwrap();
    let exit = containers
        .wait(pb::WaitContainerRequest {
            id: "of-image".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exit.exit.map(|e| e.exit_code), Some(0));
    let rootfs = images
        .get_rootfs(pb::GetRootfsRequest {
            reference,
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(std::path::Path::new(&rootfs.path).starts_with(b.root()));
}

/// The daemon's socket directory: an existing one keeps its mode (a 1777
/// directory stays 1777), an unsafe one (0777, no sticky bit) is refused.
#[test]
fn an_existing_socket_directory_is_left_alone_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let daemon = |dir: &std::path::Path| {
        let mut child = std::process::Command::new(binary("crun-shimd"))
            .arg("--socket")
            .arg(dir.join("d.sock"))
            .args(["--agent", "a=unix:///nonexistent/agent.sock"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if dir.join("d.sock").exists() || std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        (exited, String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let mode = |dir: &std::path::Path| {
        std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(dir).unwrap()) & 0o7777
    };

    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (exited, log) = daemon(&shared);
    assert_eq!(exited, None, "serves in a sticky shared directory: {log}");
    assert_eq!(mode(&shared), 0o1777, "left alone");

    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (exited, log) = daemon(&open);
    assert!(exited.is_some_and(|s| !s.success()), "refused: {log}");
    assert!(log.contains("writable by others"), "{log}");
    assert_eq!(mode(&open), 0o777, "refused, not changed");
}

/// An agent killed while a call waits on it: the caller gets UNAVAILABLE
/// naming the agent, not a bare INTERNAL "transport error".
#[tokio::test]
async fn an_agent_dying_mid_call_is_unavailable_naming_it() {
    let mut a = agent();
    let rootfs = BusyboxRootfs::new().unwrap();
    let host = host_of(&a, &[]);
    let mut containers = ContainerServiceClient::new(host.channel().await);
    run(&mut containers, config(&rootfs, "waited", "sleep 600"), "a").await;
    let mut waiter = containers.clone();
    let waiting = tokio::spawn(async move {
        waiter
            .wait(pb::WaitContainerRequest {
                id: "waited".into(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let err = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the wait ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("agent a"), "{err:?}");
}

/// One message limit end to end, and lists of any size: an 8 MB Create
/// passes the daemon and the agent alike; with a 4 MiB limit, seven
/// containers of 700 KB each are too many for one List message, and
/// ListStream returns them all, in order, in messages under the limit.
#[tokio::test]
async fn one_message_limit_and_lists_of_any_size() {
    let a = agent();
    let rootfs = BusyboxRootfs::new().unwrap();
    let host = host_of(&a, &[]);
    let mut containers = ContainerServiceClient::new(host.channel().await)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let mut big = config(&rootfs, "big", "true");
    big.env = vec![format!("X={}", "y".repeat(8_000_000))];
    create(&mut containers, big, "")
        .await
        .expect("what the daemon accepts, the agent accepts");
    containers
        .delete(pb::DeleteContainerRequest {
            id: "big".into(),
            force: true,
        })
        .await
        .unwrap();
    drop(host);

    let host = host_of(&a, &["--max-message-bytes", &(4 << 20).to_string()]);
    let mut containers =
        ContainerServiceClient::new(host.channel().await).max_decoding_message_size(usize::MAX);
    let ids: Vec<String> = (0..7).map(|i| format!("wide{i}")).collect();
    for id in &ids {
        let mut c = config(&rootfs, id, "true");
        c.env = vec![format!("X={}", "y".repeat(700_000))];
        create(&mut containers, c, "").await.expect("create");
    }
    let err = containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let mut stream = containers
        .list_stream(pb::ListContainersRequest::default())
        .await
        .expect("ListStream")
        .into_inner();
    let mut listed = Vec::new();
    while let Some(batch) = stream.message().await.expect("a batch") {
        use prost::Message;
        assert!(batch.encoded_len() < 4 << 20);
        listed.extend(batch.containers.into_iter().map(|c| (c.id, c.agent)));
    }
    let expected: Vec<(String, String)> = ids.iter().map(|id| (id.clone(), "a".into())).collect();
    assert_eq!(listed, expected);
    for id in ids {
        containers
            .delete(pb::DeleteContainerRequest { id, force: true })
            .await
            .unwrap();
    }
}

/// Hostile input through the daemon, one row each: INVALID_ARGUMENT, and
/// nothing left on the agent (no record, bundle or libcrun state).
#[tokio::test]
async fn hostile_input_table() {
    let a = agent();
    let rootfs = BusyboxRootfs::new().unwrap();
    let host = host_of(&a, &[]);
    let mut containers = ContainerServiceClient::new(host.channel().await);
    type Change = Box<dyn Fn(&mut pb::ContainerConfig)>;
    let map = |n: usize, len: usize| -> std::collections::HashMap<String, String> {
        (0..n).map(|i| (format!("k{i}"), "v".repeat(len))).collect()
    };
    let labels = move |n, len| -> Change { Box::new(move |c| c.labels = map(n, len)) };
    let annotations = move |n, len| -> Change { Box::new(move |c| c.annotations = map(n, len)) };
    let seccomp = |kind: pb::seccomp_profile::Kind, json: &'static str| -> Change {
        Box::new(move |c| {
            c.seccomp = Some(pb::SeccompProfile {
                kind: kind as i32,
                custom_json: json.into(),
            })
        })
    };
    use pb::seccomp_profile::Kind::Custom;
    let rows: Vec<(&str, Change)> = vec![
        (
            "a 10,000-character id",
            Box::new(|c| c.id = "a".repeat(10_000)),
        ),
        ("a label value over 4 KiB", labels(1, 4097)),
        ("labels over 64 KiB in all", labels(20, 4000)),
        ("annotations over 256 KiB in all", annotations(3, 100_000)),
        (
            "an empty label key",
            Box::new(|c| {
                c.labels.insert(String::new(), "v".into());
            }),
        ),
        (
            "an unknown seccomp kind",
            Box::new(|c| {
                c.seccomp = Some(pb::SeccompProfile {
                    kind: 99,
                    custom_json: String::new(),
                })
            }),
        ),
        (
            "a custom seccomp kind without a profile",
            seccomp(Custom, ""),
        ),
        (
            "a seccomp profile that is no JSON",
            seccomp(Custom, "{not json"),
        ),
        (
            "a seccomp profile with an unknown action",
            seccomp(Custom, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
        ),
        (
            "a seccomp profile with an unknown architecture",
            seccomp(
                Custom,
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#,
            ),
        ),
        ("an unknown network mode", Box::new(|c| c.network_mode = 77)),
    ];
    for (what, change) in rows {
        let mut c = config(&rootfs, "hostile", "true");
        change(&mut c);
        let err = create(&mut containers, c, "").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        for dir in ["containers", "libcrun"] {
            let left: Vec<_> = std::fs::read_dir(a.root().join(dir))
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "{what}: left in {dir}: {left:?}");
        }
    }
    let err = containers
        .list_stream(pb::ListContainersRequest {
            statuses: vec![42],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "an unknown status filter"
    );
    let all = containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn networks_through_the_host() {
    use libcrun_shim_proto::v1::network_service_client::NetworkServiceClient;
    let rootfs = BusyboxRootfs::new().unwrap();
    let (a, b) = (agent(), agent());
    let host = host_of_two(&a, &b).await;
    let channel = host.channel().await;
    let mut networks = NetworkServiceClient::new(channel.clone());
    let net = integration::net::TestNetwork::new(0);
    let created = networks
        .create_network(pb::CreateNetworkRequest {
            name: net.name.clone(),
            subnet: net.subnet.clone(),
            bridge: net.bridge.clone(),
            agent: "b".into(),
            ..Default::default()
        })
        .await
        .expect("create network")
        .into_inner()
        .network
        .unwrap();
    assert_eq!(created.agent, "b");
    let listed: Vec<(String, String)> = networks
        .list_networks(pb::ListNetworksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .networks
        .into_iter()
        .map(|n| (n.name, n.agent))
        .collect();
    for expected in [
        ("crun-shim", "a"),
        ("crun-shim", "b"),
        (net.name.as_str(), "b"),
    ] {
        assert!(
            listed.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not in {listed:?}"
        );
    }

    // Placed where its network is, and a member of its namespace with it.
    let mut containers = ContainerServiceClient::new(channel);
    let on_net = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: vec![pb::ContainerNetwork {
            name: net.name.clone(),
            ..Default::default()
        }],
        ..config(&rootfs, "on-net", "sleep 600")
    };
    let c = run(&mut containers, on_net, "").await;
    assert_eq!(c.agent, "b");
    assert_eq!(c.networks[0].network, net.name);
    let member = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Container as i32,
        network_container: "on-net".into(),
        ..config(&rootfs, "member", "sleep 600")
    };
    let m = create(&mut containers, member, "").await.expect("member");
    assert_eq!(m.agent, "b");
    assert_eq!(m.networks, c.networks);

    let inspected = networks
        .inspect_network(pb::InspectNetworkRequest {
            name: net.name.clone(),
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(inspected.agent, "b");
    assert_eq!(inspected.members[0].container_id, "on-net");
    for id in ["member", "on-net"] {
        containers
            .delete(pb::DeleteContainerRequest {
                id: id.into(),
                force: true,
            })
            .await
            .unwrap();
    }
    networks
        .remove_network(pb::RemoveNetworkRequest {
            name: net.name.clone(),
            agent: String::new(),
        })
        .await
        .unwrap();
    let gone = networks
        .remove_network(pb::RemoveNetworkRequest {
            name: net.name.clone(),
            agent: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}
