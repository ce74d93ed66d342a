//! Shared helpers of the agent's integration tests: a real agent (a fresh
//! one on the host, or the one in the VM the test binary boots), a busybox
//! root filesystem and typed clients.
//!
//! Behaviour tests are written once, as `async fn NAME(h: Harness)`, and
//! [`on_local_and_vm!`] runs each against both agents.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration::BusyboxRootfs;
use integration::agent::AgentProcess;
use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::container_service_client::ContainerServiceClient;
use libcrun_shim_proto::v1::event_service_client::EventServiceClient;
use libcrun_shim_proto::v1::exec_service_client::ExecServiceClient;
use libcrun_shim_proto::v1::health_check_service_client::HealthCheckServiceClient;
use libcrun_shim_proto::v1::image_service_client::ImageServiceClient;
use libcrun_shim_proto::v1::log_service_client::LogServiceClient;
use libcrun_shim_proto::v1::metrics_service_client::MetricsServiceClient;
use libcrun_shim_proto::v1::system_service_client::SystemServiceClient;
use tonic::transport::Channel;

/// Runs each test body named (an `async fn NAME(h: Harness)` of the test
/// file) twice: `NAME::local` against a fresh local agent, `NAME::vm`
/// against the agent in the Linux VM this test binary boots once.
#[macro_export]
macro_rules! on_local_and_vm {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$name(super::common::Harness::start().await).await
            }
            #[tokio::test]
            async fn vm() {
                super::$name(super::common::Harness::vm().await).await
            }
        }
    )+};
}

/// The agent a harness talks to.
pub enum Agent {
    /// A fresh agent process on the host, this test's alone.
    Local(AgentProcess),
    /// The agent in this test binary's VM, this test's while it runs.
    Vm(integration::vm::Lease),
}

/// An agent with a rootfs and clients.
pub struct Harness {
    pub agent: Agent,
    pub rootfs: BusyboxRootfs,
    pub containers: ContainerServiceClient<Channel>,
    pub exec: ExecServiceClient<Channel>,
    pub logs: LogServiceClient<Channel>,
    pub system: SystemServiceClient<Channel>,
    pub events: EventServiceClient<Channel>,
    pub metrics: MetricsServiceClient<Channel>,
    pub health: HealthCheckServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    /// The agent's last event sequence when the test began: the test's
    /// own events come after it (0 on a fresh agent).
    pub base: u64,
}

/// The VM the behaviour tests share: no network, one share holding their
/// root filesystems (mounted at the same path in the guest).
fn vm() -> &'static integration::vm::VmHost {
    integration::vm::shared(|| integration::vm::VmOptions {
        shares: vec![integration::vm::share_dir().to_path_buf()],
        ..Default::default()
    })
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(&[]).await
    }

    /// An agent started with extra command-line arguments.
    pub async fn start_with(args: &[&str]) -> Harness {
        let agent = AgentProcess::start_with(
            env!("CARGO_BIN_EXE_crun-shim-agent").as_ref(),
            env!("CARGO_BIN_EXE_crun-shim-monitor").as_ref(),
            args,
        )
        .expect("starting the agent");
        let rootfs = BusyboxRootfs::new().expect("busybox rootfs");
        let channel = agent.channel().await;
        Harness::connect(Agent::Local(agent), rootfs, channel)
    }

    /// The agent in this test binary's VM (booted by the first test that
    /// asks), once the tests before this one are done with it, cleared of
    /// their containers.
    pub async fn vm() -> Harness {
        let lease = integration::vm::lease().await;
        let vm = vm();
        let rootfs = BusyboxRootfs::new_in(integration::vm::share_dir()).expect("busybox rootfs");
        let channel = vm.channel().await;
        let mut h = Harness::connect(Agent::Vm(lease), rootfs, channel);
        let list = h
            .containers
            .list(pb::ListContainersRequest::default())
            .await
            .expect("list")
            .into_inner();
        for c in list.containers {
            h.delete(&c.id, true)
                .await
                .expect("removing an earlier test's container");
        }
        h.base = h.last_event_sequence().await;
        h
    }

    fn connect(agent: Agent, rootfs: BusyboxRootfs, channel: Channel) -> Harness {
        Harness {
            containers: ContainerServiceClient::new(channel.clone()),
            exec: ExecServiceClient::new(channel.clone()),
            logs: LogServiceClient::new(channel.clone()),
            system: SystemServiceClient::new(channel.clone()),
            events: EventServiceClient::new(channel.clone()),
            metrics: MetricsServiceClient::new(channel.clone()),
            health: HealthCheckServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            agent,
            rootfs,
            base: 0,
        }
    }

    /// The local agent process (for tests that only run on the host).
    pub fn local(&self) -> &AgentProcess {
        match &self.agent {
            Agent::Local(agent) => agent,
            Agent::Vm(_) => panic!("this test needs the local agent"),
        }
    }

    /// [`Harness::local`], to stop or restart it.
    pub fn local_mut(&mut self) -> &mut AgentProcess {
        match &mut self.agent {
            Agent::Local(agent) => agent,
            Agent::Vm(_) => panic!("this test needs the local agent"),
        }
    }

    /// Reconnects the clients (after an agent restart).
    pub async fn reconnect(&mut self) {
        let channel = match &self.agent {
            Agent::Local(agent) => agent.channel().await,
            Agent::Vm(_) => vm().channel().await,
        };
        self.containers = ContainerServiceClient::new(channel.clone());
        self.exec = ExecServiceClient::new(channel.clone());
        self.logs = LogServiceClient::new(channel.clone());
        self.system = SystemServiceClient::new(channel.clone());
        self.events = EventServiceClient::new(channel.clone());
        self.metrics = MetricsServiceClient::new(channel.clone());
        self.health = HealthCheckServiceClient::new(channel.clone());
        self.images = ImageServiceClient::new(channel);
    }

    /// Stops the agent abruptly and starts it again on the same state
    /// root, then reconnects: the local agent is SIGKILLed and restarted;
    /// the VM's agent is shut down (leaving its containers) and its init
    /// starts it again.
    pub async fn restart_agent(&mut self) {
        match &mut self.agent {
            Agent::Local(agent) => {
                agent.kill();
                agent.restart().expect("restart");
            }
            Agent::Vm(_) => {
                let before = self.started_at().await;
                let _ = self.system.shutdown(pb::ShutdownRequest::default()).await;
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "the VM's agent did not come back"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let Ok(channel) = vm().try_channel().await else {
                        continue;
                    };
                    let mut system = SystemServiceClient::new(channel);
                    if let Ok(info) = system.info(pb::InfoRequest {}).await {
                        let started = info.into_inner().agents[0].started_at;
                        if started != before {
                            break;
                        }
                    }
                }
            }
        }
        self.reconnect().await;
    }

    async fn info(&mut self) -> pb::AgentInfo {
        self.system
            .info(pb::InfoRequest {})
            .await
            .expect("info")
            .into_inner()
            .agents
            .remove(0)
    }

    async fn started_at(&mut self) -> Option<prost_types::Timestamp> {
        self.info().await.started_at
    }

    /// The sequence of the agent's last event.
    pub async fn last_event_sequence(&mut self) -> u64 {
        self.info().await.last_event_sequence
    }

    /// Subscribes to events after `since` (live only when `None`).
    pub async fn subscribe(&mut self, since: Option<u64>) -> tonic::Streaming<pb::Event> {
        self.events
            .subscribe(pb::SubscribeEventsRequest {
                since_sequence: since,
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner()
    }

    /// A config running `sh -c script` on the busybox rootfs.
    pub fn sh(&self, id: &str, script: &str) -> pb::ContainerConfig {
        pb::ContainerConfig {
            id: id.into(),
            root: Some(pb::container_config::Root::Rootfs(
                self.rootfs.path().display().to_string(),
            )),
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    pub async fn create(
        &mut self,
        config: pb::ContainerConfig,
    ) -> Result<pb::Container, tonic::Status> {
        self.containers
            .create(pb::CreateContainerRequest {
                config: Some(config),
                agent: String::new(),
            })
            .await
            .map(|r| r.into_inner().container.expect("container"))
    }

    /// Sends every create at once, each from its own task (for a SIGKILL
    /// to cut some half-way); the tasks give the answers.
    pub fn create_concurrently(
        &self,
        configs: Vec<pb::ContainerConfig>,
    ) -> Vec<tokio::task::JoinHandle<Result<(), tonic::Status>>> {
        configs
            .into_iter()
            .map(|config| {
                let mut client = self.containers.clone();
                tokio::spawn(async move {
                    client
                        .create(pb::CreateContainerRequest {
                            config: Some(config),
                            agent: String::new(),
                        })
                        .await
                        .map(drop)
                })
            })
            .collect()
    }

    pub async fn start_container(&mut self, id: &str) -> pb::Container {
        self.containers
            .start(pb::StartContainerRequest { id: id.into() })
            .await
            .expect("start")
            .into_inner()
            .container
            .expect("container")
    }

    /// Creates and starts `sh -c script`.
    pub async fn run(&mut self, id: &str, script: &str) -> pb::Container {
        let config = self.sh(id, script);
        self.create(config).await.expect("create");
        self.start_container(id).await
    }

    pub async fn inspect(&mut self, id: &str) -> pb::Container {
        self.containers
            .inspect(pb::InspectContainerRequest { id: id.into() })
            .await
            .expect("inspect")
            .into_inner()
            .container
            .expect("container")
    }

    /// Asserts that the agent does not know container `id` (any more).
    pub async fn assert_gone(&mut self, id: &str, why: &str) {
        let status = self
            .containers
            .inspect(pb::InspectContainerRequest { id: id.into() })
            .await
            .expect_err(why);
        assert_eq!(status.code(), tonic::Code::NotFound, "{why}: {status:?}");
    }

    pub async fn wait(&mut self, id: &str) -> pb::ExitStatus {
        let mut request = tonic::Request::new(pb::WaitContainerRequest { id: id.into() });
        // Generous: a VM agent under TCG on a loaded 2-core machine is
        // tens of times slower (an OOM there took over a minute once).
        request.set_timeout(Duration::from_secs(240));
        self.containers
            .wait(request)
            .await
            .expect("wait")
            .into_inner()
            .exit
            .expect("exit")
    }

    pub async fn delete(&mut self, id: &str, force: bool) -> Result<(), tonic::Status> {
        self.containers
            .delete(pb::DeleteContainerRequest {
                id: id.into(),
                force,
            })
            .await
            .map(drop)
    }

    /// All log entries of a container (stdout bytes, stderr bytes).
    pub async fn logs(
        &mut self,
        request: pb::LogsRequest,
    ) -> (Vec<u8>, Vec<u8>, Vec<pb::LogEntry>) {
        let mut stream = self.logs.logs(request).await.expect("logs").into_inner();
        let (mut out, mut err, mut entries) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(batch) = stream.message().await.expect("log batch") {
            for e in batch.entries {
                if e.stream == pb::LogStream::Stderr as i32 {
                    err.extend_from_slice(&e.data);
                } else {
                    out.extend_from_slice(&e.data);
                }
                entries.push(e);
            }
        }
        (out, err, entries)
    }

    /// Waits until a container's stdout so far is `expected` (a shell has
    /// installed its traps, say: before that, a shell that is PID 1 of its
    /// namespace does not even see SIGTERM).
    pub async fn until_stdout(&mut self, id: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let request = pb::LogsRequest {
                container_id: id.into(),
                ..Default::default()
            };
            let (out, _, _) = self.logs(request).await;
            if out == expected.as_bytes() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} wrote {:?}, not {expected:?}",
                String::from_utf8_lossy(&out)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn status(container: &pb::Container) -> pb::ContainerStatus {
        pb::ContainerStatus::try_from(container.status).expect("known status")
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Whether process `pid` runs (a zombie, killed but not reaped by its
/// parent, does not count).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with(['Z', 'X']).then_some(()).is_none())
        })
        .unwrap_or(false)
}

/// Reads events from `stream` until `done` says so (or 30 s pass).
pub async fn events_until(
    stream: &mut tonic::Streaming<pb::Event>,
    mut done: impl FnMut(&[pb::Event]) -> bool,
) -> Vec<pb::Event> {
    let mut events = Vec::new();
    let read = async {
        while let Some(event) = stream.message().await.expect("event stream") {
            events.push(event);
            if done(&events) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    events
}

/// The (type, container) pairs of events, for order checks.
pub fn kinds(events: &[pb::Event]) -> Vec<(pb::EventType, String)> {
    events
        .iter()
        .map(|e| {
            (
                pb::EventType::try_from(e.r#type).expect("event type"),
                e.container_id.clone(),
            )
        })
        .collect()
}

/// Where this agent puts its containers' cgroups, found with a probe.
pub async fn cgroup_parent(h: &mut Harness) -> String {
    h.create(h.sh("probe", "true")).await.unwrap();
    let spec = h
        .containers
        .inspect(pb::InspectContainerRequest { id: "probe".into() })
        .await
        .unwrap()
        .into_inner()
        .oci_spec_json;
    h.delete("probe", true).await.unwrap();
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let path = spec["linux"]["cgroupsPath"].as_str().unwrap();
    path.trim_end_matches("probe").trim_matches('/').to_string()
}

/// The existing cgroup directories of a cgroup path (one per v1
/// controller, or the v2 one).
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(path)];
    if let Ok(controllers) = std::fs::read_dir(root) {
        candidates.extend(controllers.flatten().map(|c| c.path().join(path)));
    }
    candidates.into_iter().filter(|p| p.is_dir()).collect()
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Processes working in the agent's container directories (monitors), with
/// that directory.
pub fn monitors_under(root: &Path) -> Vec<(i32, PathBuf)> {
    let base = root.join("containers");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            (cwd.starts_with(&base) && alive(pid)).then_some((pid, cwd))
        })
        .collect()
}
