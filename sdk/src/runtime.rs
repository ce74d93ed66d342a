//! [`ContainerRuntime`]: the containers of `crun-shimd` (or of one agent).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use libcrun_shim_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::config::RuntimeConfig;
use crate::container::{
    ContainerConfig, ContainerInfo, ContainerStatus, ExitStatus, ResourceLimits,
};
use crate::convert::{self, wire_duration};
use crate::error::{Error, Result};
use crate::events::{ContainerEvent, EventFilter};
use crate::exec::{ExecOptions, ExecResult, ExecSession};
use crate::health::ContainerHealth;
use crate::images::ImageStore;
use crate::logs::{LogChunk, LogOptions, LogStream, Logs, OutputStream};
use crate::metrics::ContainerMetrics;
use crate::network::Networks;
use crate::run::{RunOptions, RunStream};
use crate::system::{Info, Orphan, RecoverReport, ShutdownOptions, Version};

/// Events buffered for a [`ContainerRuntime::subscribe_events`] receiver
/// that does not keep up (the server's journal keeps the rest).
const EVENT_BUFFER: usize = 1024;

/// A stream of events, as returned by [`ContainerRuntime::event_stream`].
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEvent>> + Send>>;

/// A stream of metrics snapshots, one list per tick, as returned by
/// [`ContainerRuntime::metrics_stream`].
pub type MetricsStream = Pin<Box<dyn Stream<Item = Result<Vec<ContainerMetrics>>> + Send>>;

/// Which containers [`ContainerRuntime::list_with`] returns. Filters combine
/// with AND; empty ones match all.
///
/// ```
/// use libcrun_shim::{ContainerStatus, ListFilter};
/// let running = ListFilter { statuses: vec![ContainerStatus::Running], ..Default::default() };
/// assert!(running.labels.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// Only containers in one of these states.
    pub statuses: Vec<ContainerStatus>,
    /// Only containers carrying these labels (an empty value matches any).
    pub labels: BTreeMap<String, String>,
    /// On `crun-shimd`: only this agent's containers.
    pub agent: Option<String>,
}

/// The containers of the runtime: a client of `crun-shimd` (or of one
/// `crun-shim-agent`, which serves the same API). Cheap to clone; clones
/// share one connection.
///
/// ```no_run
/// use libcrun_shim::*;
///
/// #[tokio::main]
/// async fn main() -> Result<()> {
///     let runtime = ContainerRuntime::new().await?;
///
///     let config = ContainerConfig {
///         id: "my-container".to_string(),
///         root: RootSource::Rootfs("/path/to/rootfs".into()),
///         command: vec!["sh".to_string(), "-c".to_string(), "echo hello; sleep 60".to_string()],
///         ..Default::default()
///     };
///     let id = runtime.create(config).await?;
///     runtime.start(&id).await?;
///
///     for container in runtime.list().await? {
///         println!("{}: {:?}", container.id, container.status);
///     }
///
///     runtime.stop(&id).await?;
///     runtime.delete(&id).await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    client: Client,
}

impl ContainerRuntime {
    /// Connects to the daemon at `CRUN_SHIM_HOST`, else at its default
    /// socket (`/run/libcrun-shim/crun-shimd.sock`). When nothing answers
    /// there the error is [`Error::Unavailable`], naming the endpoint.
    ///
    /// ```no_run
    /// # async fn demo() -> libcrun_shim::Result<()> {
    /// let runtime = libcrun_shim::ContainerRuntime::new().await?;
    /// # Ok(()) }
    /// ```
    pub async fn new() -> Result<ContainerRuntime> {
        ContainerRuntime::new_with_config(RuntimeConfig::from_env()).await
    }

    /// Checks `config` ([`RuntimeConfig::validate`]) and connects to its
    /// endpoint.
    ///
    /// ```no_run
    /// # async fn demo() -> libcrun_shim::Result<()> {
    /// use std::time::Duration;
    /// use libcrun_shim::{ContainerRuntime, RuntimeConfig};
    ///
    /// let runtime = ContainerRuntime::new_with_config(RuntimeConfig {
    ///     endpoint: "unix:///tmp/crun-shimd.sock".into(),
    ///     request_timeout: Some(Duration::from_secs(30)),
    ///     ..Default::default()
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn new_with_config(config: RuntimeConfig) -> Result<ContainerRuntime> {
        Ok(ContainerRuntime {
            client: Client::connect(&config).await?,
        })
    }

    /// Connects to `endpoint` (`unix:///PATH`, a socket path,
    /// `vsock://CID:PORT` or `http://HOST:PORT`) with default settings.
    ///
    /// ```no_run
    /// # async fn demo() -> libcrun_shim::Result<()> {
    /// let runtime = libcrun_shim::ContainerRuntime::connect("/tmp/crun-shimd.sock").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(endpoint: &str) -> Result<ContainerRuntime> {
        ContainerRuntime::new_with_config(RuntimeConfig {
            endpoint: endpoint.into(),
            ..Default::default()
        })
        .await
    }

    /// The endpoint this runtime is connected to.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// The image stores, over the same connection.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let images = runtime.images().list().await?;
    /// # Ok(()) }
    /// ```
    pub fn images(&self) -> ImageStore {
        ImageStore::from_client(self.client.clone())
    }

    /// The agents' networks, over the same connection.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// for network in runtime.networks().list().await? {
    ///     println!("{} {:?}", network.name, network.subnets);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn networks(&self) -> Networks {
        Networks::from_client(self.client.clone())
    }

    /// Creates a container (set up, not started) and returns its id. On a
    /// daemon with several agents it goes to [`RuntimeConfig::agent`], else
    /// to the least loaded agent.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::{ContainerConfig, RootSource};
    /// let id = runtime
    ///     .create(ContainerConfig {
    ///         id: "web".into(),
    ///         root: RootSource::Image("nginx:alpine".into()),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, config: ContainerConfig) -> Result<String> {
        Ok(self.create_container(config).await?.id)
    }

    /// [`ContainerRuntime::create`], returning the whole created container.
    pub async fn create_container(&self, config: ContainerConfig) -> Result<ContainerInfo> {
        let request = self.client.with_deadline(pb::CreateContainerRequest {
            config: Some(config.into()),
            agent: self.client.agent(),
        });
        let response = self.client.containers().create(request).await?;
        Ok(convert::required(
            response.into_inner().container,
            "container",
        )?)
    }

    /// Runs a container to its end in one call: creates and starts it,
    /// then streams its output as it is written and last its exit status
    /// (see [`RunEvent`](crate::RunEvent)). What [`create`](Self::create), [`start`](Self::start),
    /// [`logs_stream`](Self::logs_stream), [`wait`](Self::wait) and
    /// [`delete`](Self::delete) do, in one round trip. Errors of the create
    /// and the start are this call's; a dropped stream leaves the container
    /// running (and with [`RunOptions::remove`], removed once it exits).
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use futures::StreamExt;
    /// use libcrun_shim::{ContainerConfig, RootSource, RunEvent, RunOptions};
    /// let config = ContainerConfig {
    ///     id: "hello".into(),
    ///     root: RootSource::Rootfs("/srv/busybox".into()),
    ///     command: vec!["echo".into(), "hello".into()],
    ///     ..Default::default()
    /// };
    /// let mut run = runtime.run(config, RunOptions { remove: true }).await?;
    /// while let Some(event) = run.next().await {
    ///     match event? {
    ///         RunEvent::Output(chunk) => print!("{}", String::from_utf8_lossy(&chunk.data)),
    ///         RunEvent::Exit(exit) => println!("exited with {}", exit.exit_code),
    ///         RunEvent::Started(_) => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, config: ContainerConfig, options: RunOptions) -> Result<RunStream> {
        let request = pb::RunContainerRequest {
            config: Some(config.into()),
            agent: self.client.agent(),
            remove: options.remove,
        };
        let stream = self.client.containers().run(request).await?.into_inner();
        Ok(Box::pin(
            stream
                .map_err(Error::from)
                .map_ok(|message| futures::stream::iter(crate::run::events(message)))
                .try_flatten(),
        ))
    }

    /// Starts a created container.
    pub async fn start(&self, id: &str) -> Result<()> {
        let request = self
            .client
            .with_deadline(pb::StartContainerRequest { id: id.into() });
        self.client.containers().start(request).await?;
        Ok(())
    }

    /// Stops a container: its stop signal, then SIGKILL after its stop
    /// timeout. Returns once it has exited; stopping a stopped container
    /// does nothing.
    pub async fn stop(&self, id: &str) -> Result<()> {
        self.stop_request(id, None).await
    }

    /// [`ContainerRuntime::stop`], with SIGKILL after `timeout` (zero: at once).
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// runtime.stop_with_timeout("web", std::time::Duration::from_secs(2)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn stop_with_timeout(&self, id: &str, timeout: Duration) -> Result<()> {
        self.stop_request(id, Some(timeout)).await
    }

    async fn stop_request(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let request = pb::StopContainerRequest {
            id: id.into(),
            signal: String::new(),
            timeout: timeout.map(wire_duration),
        };
        self.client.containers().stop(request).await?;
        Ok(())
    }

    /// Sends `signal` (`"SIGTERM"`, `"TERM"` or `"15"`) to the container's
    /// init process.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// runtime.kill("web", "SIGHUP").await?;
    /// # Ok(()) }
    /// ```
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        self.kill_request(id, signal, false).await
    }

    /// Sends `signal` to every process of the container.
    pub async fn kill_all(&self, id: &str, signal: &str) -> Result<()> {
        self.kill_request(id, signal, true).await
    }

    async fn kill_request(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let request = self.client.with_deadline(pb::KillContainerRequest {
            id: id.into(),
            signal: signal.into(),
            all,
        });
        self.client.containers().kill(request).await?;
        Ok(())
    }

    /// Freezes the container's processes.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let request = self
            .client
            .with_deadline(pb::PauseContainerRequest { id: id.into() });
        self.client.containers().pause(request).await?;
        Ok(())
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let request = self
            .client
            .with_deadline(pb::ResumeContainerRequest { id: id.into() });
        self.client.containers().resume(request).await?;
        Ok(())
    }

    /// Deletes a container that is not running (else
    /// [`Error::FailedPrecondition`]), with its logs.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.delete_with(id, false).await
    }

    /// Deletes a container; with `force`, kills it first if it still runs.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// runtime.delete_with("web", true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_with(&self, id: &str, force: bool) -> Result<()> {
        let request = self.client.with_deadline(pb::DeleteContainerRequest {
            id: id.into(),
            force,
        });
        self.client.containers().delete(request).await?;
        Ok(())
    }

    /// Lists every container, oldest first.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.list_with(ListFilter::default()).await
    }

    /// Lists the containers `filter` selects, oldest first. The list comes
    /// in batches (`ListStream`), so it has no size limit.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::{ContainerStatus, ListFilter};
    /// let running = runtime
    ///     .list_with(ListFilter { statuses: vec![ContainerStatus::Running], ..Default::default() })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_with(&self, filter: ListFilter) -> Result<Vec<ContainerInfo>> {
        let request = self.client.with_deadline(pb::ListContainersRequest {
            statuses: filter
                .statuses
                .into_iter()
                .map(|s| pb::ContainerStatus::from(s) as i32)
                .collect(),
            labels: filter.labels.into_iter().collect(),
            agent: filter.agent.unwrap_or_default(),
        });
        // In batches: a list of any size, whatever the message limit.
        let mut batches = self
            .client
            .containers()
            .list_stream(request)
            .await?
            .into_inner();
        let mut containers = Vec::new();
        while let Some(batch) = batches.message().await? {
            containers.extend(batch.containers);
        }
        Ok(convert::all(containers)?)
    }

    /// Everything known about a container, with its OCI runtime spec
    /// ([`ContainerInfo::oci_spec_json`]).
    pub async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let request = self
            .client
            .with_deadline(pb::InspectContainerRequest { id: id.into() });
        let response = self
            .client
            .containers()
            .inspect(request)
            .await?
            .into_inner();
        let mut info: ContainerInfo = convert::required(response.container, "container")?;
        info.oci_spec_json = Some(response.oci_spec_json).filter(|s| !s.is_empty());
        Ok(info)
    }

    /// Waits until the container's current run has exited and returns how
    /// it ended (at once for an exited container).
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let exit = runtime.wait("job").await?;
    /// std::process::exit(exit.exit_code);
    /// # }
    /// ```
    pub async fn wait(&self, id: &str) -> Result<ExitStatus> {
        let request = pb::WaitContainerRequest { id: id.into() };
        let exit = self
            .client
            .containers()
            .wait(request)
            .await?
            .into_inner()
            .exit;
        Ok(convert::required(exit, "exit")?)
    }

    /// Changes a container's limits; `None` fields stay as they are.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::ResourceLimits;
    /// runtime.update("web", ResourceLimits { memory: Some(512 << 20), ..Default::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, id: &str, resources: ResourceLimits) -> Result<ContainerInfo> {
        let request = self.client.with_deadline(pb::UpdateContainerRequest {
            id: id.into(),
            resources: Some(resources.into()),
        });
        let response = self.client.containers().update(request).await?;
        Ok(convert::required(
            response.into_inner().container,
            "container",
        )?)
    }

    /// Runs `command` in a running container to completion and returns its
    /// exit code and output.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let result = runtime.exec("web", ["sh", "-c", "echo hi; exit 3"]).await?;
    /// assert_eq!((result.stdout.as_str(), result.exit_code), ("hi\n", 3));
    /// # Ok(()) }
    /// ```
    pub async fn exec<I, S>(&self, id: &str, command: I) -> Result<ExecResult>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exec_with(id, ExecOptions::new(command)).await
    }

    /// [`ContainerRuntime::exec`] with environment, user, working
    /// directory, stdin bytes or a timeout.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::ExecOptions;
    /// let result = runtime
    ///     .exec_with("web", ExecOptions { input: "data".into(), ..ExecOptions::new(["wc", "-c"]) })
    ///     .await?;
    /// assert_eq!(result.stdout.trim(), "4");
    /// # Ok(()) }
    /// ```
    pub async fn exec_with(&self, id: &str, options: ExecOptions) -> Result<ExecResult> {
        if options.tty {
            return Err(Error::InvalidArgument(
                "a tty needs an interactive exec (exec_interactive)".into(),
            ));
        }
        let request = pb::ExecSyncRequest {
            container_id: id.into(),
            process: Some((&options).into()),
            timeout: options.timeout.map(wire_duration),
            max_output_bytes: 0,
            stdin: options.input,
        };
        let response = self.client.exec().exec_sync(request).await?.into_inner();
        let exit = response.exit.unwrap_or_default();
        Ok(ExecResult {
            exit_code: exit.exit_code,
            signal: exit.signal,
            stdout: String::from_utf8_lossy(&response.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&response.stderr).into_owned(),
            timed_out: response.timed_out,
            truncated: response.stdout_truncated || response.stderr_truncated,
        })
    }

    /// Starts a process in a running container and returns a session to
    /// feed its stdin, resize its terminal and read its output as it
    /// comes (see [`ExecSession`]).
    pub async fn exec_interactive(&self, id: &str, options: ExecOptions) -> Result<ExecSession> {
        let (requests, receiver) = mpsc::channel(64);
        let start = pb::ExecRequest {
            request: Some(pb::exec_request::Request::Start(pb::ExecStart {
                container_id: id.into(),
                exec_id: options.exec_id.clone().unwrap_or_default(),
                process: Some((&options).into()),
                stdin: options.stdin,
                terminal_size: options.terminal_size.map(Into::into),
            })),
        };
        requests
            .send(start)
            .await
            .map_err(|_| Error::Internal("the exec request stream closed".into()))?;
        let mut output = self
            .client
            .exec()
            .exec(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await?
            .into_inner();
        match output.message().await?.and_then(|m| m.response) {
            Some(pb::exec_response::Response::Started(started)) => Ok(ExecSession::new(
                started.exec_id,
                started.pid,
                requests,
                output,
            )),
            _ => Err(Error::Internal(
                "the exec stream did not start with `started`".into(),
            )),
        }
    }

    /// Attaches to a container's main process: its output from now on
    /// (what came before is in [`ContainerRuntime::logs`]), its stdin when
    /// it was created with [`ContainerConfig::open_stdin`], its terminal's
    /// size. Attach before [`ContainerRuntime::start`] to miss nothing.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let mut session = runtime.attach("web").await?;
    /// session.input().write("hello\n").await?;
    /// while let Some(output) = session.next().await {
    ///     println!("{:?}", output?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn attach(&self, id: &str) -> Result<crate::AttachSession> {
        let (requests, receiver) = mpsc::channel(64);
        let start = pb::AttachRequest {
            request: Some(pb::attach_request::Request::Start(pb::AttachStart {
                container_id: id.into(),
                exec_id: String::new(),
                stdout: true,
                stderr: true,
            })),
        };
        requests
            .send(start)
            .await
            .map_err(|_| Error::Internal("the attach request stream closed".into()))?;
        let output = self
            .client
            .containers()
            .attach(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(crate::AttachSession::new(requests, output))
    }

    /// A container's health, as its health check last decided.
    pub async fn health(&self, id: &str) -> Result<ContainerHealth> {
        let request = self.client.with_deadline(pb::GetHealthRequest {
            container_id: id.into(),
        });
        let health = self.client.health().get_health(request).await?.into_inner();
        Ok(convert::required(health.health, "health")?)
    }

    /// A running or paused container's resource usage now.
    pub async fn metrics(&self, id: &str) -> Result<ContainerMetrics> {
        let request = self.client.with_deadline(pb::GetMetricsRequest {
            container_id: id.into(),
        });
        let metrics = self
            .client
            .metrics()
            .get_metrics(request)
            .await?
            .into_inner();
        Ok(convert::required(metrics.metrics, "metrics")?)
    }

    /// The resource usage of every running and paused container.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// for m in runtime.all_metrics().await? {
    ///     println!("{}: CPU {} ns, Memory {} bytes", m.container_id, m.cpu.usage_total, m.memory.usage);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn all_metrics(&self) -> Result<Vec<ContainerMetrics>> {
        let request = self.client.with_deadline(pb::ListMetricsRequest::default());
        let response = self.client.metrics().list_metrics(request).await?;
        Ok(convert::all(response.into_inner().metrics)?)
    }

    /// Snapshots of the given containers (all running and paused ones when
    /// `ids` is empty) every `interval` (at least 100 ms), until dropped.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use futures::StreamExt;
    /// let mut ticks = runtime.metrics_stream(&[], std::time::Duration::from_secs(1)).await?;
    /// while let Some(tick) = ticks.next().await {
    ///     println!("{} containers", tick?.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn metrics_stream(
        &self,
        ids: &[String],
        interval: Duration,
    ) -> Result<MetricsStream> {
        let request = pb::StreamMetricsRequest {
            container_ids: ids.to_vec(),
            labels: Default::default(),
            interval: Some(wire_duration(interval)),
        };
        let stream = self.client.metrics().stream_metrics(request).await?;
        Ok(Box::pin(stream.into_inner().map_err(Error::from).and_then(
            |tick| async move { Ok(convert::all(tick.metrics)?) },
        )))
    }

    /// A container's output, collected: all of it, or what `options`
    /// select. With `follow`, returns once the container has exited.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::LogOptions;
    /// let logs = runtime
    ///     .logs("my-container", LogOptions { follow: false, tail: Some(100), since: None, until: None, ..Default::default() })
    ///     .await?;
    /// println!("Stdout:\n{}", logs.stdout);
    /// println!("Stderr:\n{}", logs.stderr);
    /// # Ok(()) }
    /// ```
    pub async fn logs(&self, id: &str, options: LogOptions) -> Result<Logs> {
        let mut stream = self.logs_stream(id, options).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            match chunk.stream {
                OutputStream::Stdout => stdout.extend_from_slice(&chunk.data),
                OutputStream::Stderr => stderr.extend_from_slice(&chunk.data),
            }
        }
        Ok(Logs {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// A container's output as a stream of chunks, in the order written;
    /// with `follow` it goes on until the container exits.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use futures::StreamExt;
    /// use libcrun_shim::LogOptions;
    /// let mut chunks = runtime.logs_stream("web", LogOptions { follow: true, ..Default::default() }).await?;
    /// while let Some(chunk) = chunks.next().await {
    ///     print!("{}", String::from_utf8_lossy(&chunk?.data));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn logs_stream(&self, id: &str, options: LogOptions) -> Result<LogStream> {
        let merged = self.logs_stream_merged(id, options).await?;
        Ok(Box::pin(
            merged
                .map_ok(|chunk| futures::stream::iter(chunk.lines().map(Ok)))
                .try_flatten(),
        ))
    }

    /// Like [`logs_stream`](Self::logs_stream), but a chunk may hold several
    /// consecutive lines of one stream, as the agent read them: each complete
    /// line keeps its newline and only the last may be partial (then
    /// [`LogChunk::partial`] is set); they share the chunk's time. For
    /// callers that only copy the bytes (to a terminal, a file, a socket):
    /// it spares them one chunk per line, which costs more than the copy at
    /// a high rate. The bytes of a stream's chunks, concatenated, are the
    /// same.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::io::Write;
    /// use futures::StreamExt;
    /// use libcrun_shim::LogOptions;
    /// let mut chunks = runtime.logs_stream_merged("web", LogOptions { follow: true, ..Default::default() }).await?;
    /// while let Some(chunk) = chunks.next().await {
    ///     std::io::stdout().write_all(&chunk?.data)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn logs_stream_merged(&self, id: &str, options: LogOptions) -> Result<LogStream> {
        let request = pb::LogsRequest {
            container_id: id.into(),
            ..options.into()
        };
        let stream = self.client.logs().logs(request).await?.into_inner();
        Ok(Box::pin(
            stream
                .map_err(Error::from)
                .map_ok(|batch| {
                    futures::stream::iter(
                        batch
                            .entries
                            .into_iter()
                            .map(|entry| LogChunk::try_from(entry).map_err(Error::from)),
                    )
                })
                .try_flatten(),
        ))
    }

    /// Live events of every container, from now on, on a channel. The
    /// channel closes when the connection ends.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// let mut receiver = runtime.subscribe_events().await?;
    /// while let Some(event) = receiver.recv().await {
    ///     println!("#{} {} {}", event.sequence, event.event_type, event.container_id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_events(&self) -> Result<mpsc::Receiver<ContainerEvent>> {
        self.subscribe_events_with(EventFilter::default()).await
    }

    /// The events `filter` selects, on a channel: with
    /// [`EventFilter::since`], the journalled ones after that sequence
    /// first.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::{ContainerEventType, EventFilter};
    /// let mut exits = runtime
    ///     .subscribe_events_with(EventFilter { types: vec![ContainerEventType::Exit], ..Default::default() })
    ///     .await?;
    /// let first = exits.recv().await;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_events_with(
        &self,
        filter: EventFilter,
    ) -> Result<mpsc::Receiver<ContainerEvent>> {
        let mut stream = self.event_stream(filter).await?;
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                if sender.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(receiver)
    }

    /// The events `filter` selects as a stream, which, unlike the channel
    /// of [`ContainerRuntime::subscribe_events_with`], reports the error
    /// that ends it.
    pub async fn event_stream(&self, filter: EventFilter) -> Result<EventStream> {
        let stream = self
            .client
            .events()
            .subscribe(pb::SubscribeEventsRequest::from(filter))
            .await?
            .into_inner();
        Ok(Box::pin(stream.map_err(Error::from).and_then(
            |event| async move { Ok(ContainerEvent::try_from(event)?) },
        )))
    }

    /// Deletes every stopped container; returns their ids.
    pub async fn cleanup_stopped(&self) -> Result<Vec<String>> {
        let request = self.client.with_deadline(pb::CleanupStoppedRequest {
            agent: self.client.agent(),
        });
        let response = self.client.system().cleanup_stopped(request).await?;
        Ok(response.into_inner().removed_ids)
    }

    /// What is left over that no container owns: runtime state, cgroups,
    /// mounts, records whose processes are gone.
    pub async fn list_orphaned(&self) -> Result<Vec<Orphan>> {
        let request = self.client.with_deadline(pb::ListOrphanedRequest {
            agent: self.client.agent(),
        });
        let response = self.client.system().list_orphaned(request).await?;
        Ok(response
            .into_inner()
            .orphans
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Kills and removes whatever is left of a container; returns what was
    /// found. Succeeds when nothing is left.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// runtime.force_delete("stuck-container").await?;
    /// # Ok(()) }
    /// ```
    pub async fn force_delete(&self, id: &str) -> Result<Vec<Orphan>> {
        let request = pb::ForceDeleteRequest { id: id.into() };
        let response = self.client.system().force_delete(request).await?;
        Ok(response
            .into_inner()
            .removed
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Reconciles the agents' records with the runtime's state now.
    pub async fn recover(&self) -> Result<RecoverReport> {
        let request = pb::RecoverRequest {
            agent: self.client.agent(),
        };
        let response = self.client.system().recover(request).await?.into_inner();
        Ok(RecoverReport {
            adopted: response.adopted_ids,
            exited: response.exited_ids,
            undone: response.undone_ids,
            removed: response.removed_ids,
            orphans: response.orphans.into_iter().map(Into::into).collect(),
        })
    }

    /// Shuts the server down gracefully; containers keep running.
    pub async fn shutdown(&self) -> Result<()> {
        self.shutdown_with(ShutdownOptions::default()).await?;
        Ok(())
    }

    /// Shuts the server (or one of its agents) down, stopping containers
    /// first if asked; returns the ids of the containers stopped.
    ///
    /// ```no_run
    /// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
    /// use libcrun_shim::ShutdownOptions;
    /// let stopped = runtime
    ///     .shutdown_with(ShutdownOptions { stop_containers: true, ..Default::default() })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_with(&self, options: ShutdownOptions) -> Result<Vec<String>> {
        let request = pb::ShutdownRequest {
            stop_containers: options.stop_containers,
            timeout: options.timeout.map(wire_duration),
            agent: options.agent.unwrap_or_default(),
        };
        let response = self.client.system().shutdown(request).await?;
        Ok(response.into_inner().stopped_ids)
    }

    /// The version of the server answering.
    pub async fn version(&self) -> Result<Version> {
        let request = self.client.with_deadline(pb::VersionRequest {});
        Ok(self
            .client
            .system()
            .version(request)
            .await?
            .into_inner()
            .into())
    }

    /// The state of the runtime and its agents.
    pub async fn info(&self) -> Result<Info> {
        let request = self.client.with_deadline(pb::InfoRequest {});
        Ok(self
            .client
            .system()
            .info(request)
            .await?
            .into_inner()
            .try_into()?)
    }
}
