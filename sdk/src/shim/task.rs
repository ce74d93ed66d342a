//! containerd's task API (v2), each RPC translated into `libcrun_shim.v1`
//! calls on `crun-shimd`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim::TtrpcResult;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::api;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext};
use containerd_shim::publisher::RemotePublisher;
use libcrun_shim_proto::v1 as pb;
use tokio::sync::{OnceCell, watch};

use super::convert::{self, status_error, ttrpc_error};
use super::relay;
use super::{LABEL_BUNDLE, LABEL_ID, LABEL_NAMESPACE, LABEL_SHIM, container_id};
use crate::client::Client;
use crate::config::RuntimeConfig;

/// How long a call other than Wait may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An exec containerd registered and has not started yet: the only state
/// the shim keeps that the agent does not (nothing runs under it).
struct PendingExec {
    spec_json: String,
    terminal: bool,
    stdio: pb::StdioConfig,
    /// Set once started (or deleted): waiters then ask the agent.
    started: watch::Sender<bool>,
}

/// The task service of one shim process.
#[derive(Clone)]
pub(crate) struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: String,
    namespace: String,
    shim_id: String,
    client: OnceCell<Client>,
    publisher: Option<Arc<RemotePublisher>>,
    exit: Arc<ExitSignal>,
    pending: Mutex<HashMap<(String, String), PendingExec>>,
}

impl Service {
    /// A service for containerd namespace `namespace`, speaking to the
    /// daemon at `endpoint`; `shim_id` labels the containers it creates so
    /// that it relays their events only.
    pub(crate) fn new(
        endpoint: &str,
        namespace: &str,
        shim_id: &str,
        publisher: Option<RemotePublisher>,
        exit: Arc<ExitSignal>,
    ) -> Service {
        Service {
            inner: Arc::new(Inner {
                endpoint: endpoint.to_string(),
                namespace: namespace.to_string(),
                shim_id: shim_id.to_string(),
                client: OnceCell::new(),
                publisher: publisher.map(Arc::new),
                exit,
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The connection to the daemon, made on first use; the event relay
    /// subscribes at the same moment, before any container of this shim
    /// exists, so that it misses none of their events.
    async fn client(&self) -> TtrpcResult<&Client> {
        self.inner
            .client
            .get_or_try_init(|| async {
                let config = RuntimeConfig {
                    endpoint: self.inner.endpoint.clone(),
                    request_timeout: Some(CALL_TIMEOUT),
                    ..Default::default()
                };
                let client = Client::connect(&config).await.map_err(convert::error)?;
                if let Some(publisher) = &self.inner.publisher {
                    relay::start(
                        client.clone(),
                        publisher.clone(),
                        &self.inner.namespace,
                        &self.inner.shim_id,
                    )
                    .await
                    .map_err(convert::error)?;
                }
                Ok(client)
            })
            .await
    }

    fn id(&self, id: &str) -> String {
        container_id(&self.inner.namespace, id)
    }

    async fn inspect(&self, id: &str) -> TtrpcResult<pb::Container> {
        let client = self.client().await?;
        client
            .containers()
            .inspect(client.with_deadline(pb::InspectContainerRequest { id: self.id(id) }))
            .await
            .map_err(status_error)?
            .into_inner()
            .container
            .ok_or_else(|| ttrpc_error(ttrpc::Code::INTERNAL, "no container in the answer"))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PendingExec>> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the bundle's spec and returns it with the absolute root path.
fn read_bundle(bundle: &Path) -> TtrpcResult<(String, PathBuf)> {
    let path = bundle.join("config.json");
    let json = std::fs::read_to_string(&path)
        .map_err(|e| ttrpc_error(ttrpc::Code::NOT_FOUND, format!("{}: {e}", path.display())))?;
    let spec: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        ttrpc_error(
            ttrpc::Code::INVALID_ARGUMENT,
            format!("{}: {e}", path.display()),
        )
    })?;
    let root = spec["root"]["path"].as_str().unwrap_or("rootfs");
    let root = if Path::new(root).is_absolute() {
        PathBuf::from(root)
    } else {
        bundle.join(root)
    };
    Ok((json, root))
}

/// Unmounts whatever is mounted on the bundle's `rootfs` (the agent mounts
/// snapshots in a directory of its own; something else may have mounted
/// one here).
pub(crate) fn unmount_rootfs(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    if let Some(path) = rootfs.to_str() {
        let _ = containerd_shim::mount::umount_recursive(Some(path), libc::MNT_DETACH);
    }
}

/// A signal number as our API takes it.
fn signal(n: u32) -> String {
    n.to_string()
}

/// NOT_FOUND "process already finished" for a process that is not running,
/// as containerd's runc shim says it.
fn finished(e: tonic::Status) -> ttrpc::Error {
    if e.code() == tonic::Code::FailedPrecondition {
        ttrpc_error(ttrpc::Code::NOT_FOUND, "process already finished")
    } else {
        status_error(e)
    }
}

#[async_trait]
impl Task for Service {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(ttrpc_error(
                ttrpc::Code::UNIMPLEMENTED,
                "restoring from a checkpoint is not supported by libcrun-shim",
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let (spec_json, root) = read_bundle(&bundle)?;
        let labels: BTreeMap<String, String> = [
            (LABEL_NAMESPACE, self.inner.namespace.as_str()),
            (LABEL_ID, req.id.as_str()),
            (LABEL_SHIM, self.inner.shim_id.as_str()),
            (LABEL_BUNDLE, req.bundle.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = pb::ContainerConfig {
            id: self.id(&req.id),
            // The snapshotter's mounts are made by the agent, in its own
            // mount namespace; a `--rootfs` directory is used in place.
            root: Some(if req.rootfs.is_empty() {
                pb::container_config::Root::Rootfs(root.display().to_string())
            } else {
                pb::container_config::Root::RootfsMounts(pb::RootfsMounts {
                    mounts: req
                        .rootfs
                        .iter()
                        .map(|m| pb::RootfsMount {
                            r#type: m.type_.clone(),
                            source: m.source.clone(),
                            options: m.options.clone(),
                        })
                        .collect(),
                })
            }),
            labels: labels.into_iter().collect(),
            oci_spec_json: spec_json,
            stdio: Some(pb::StdioConfig {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                logger_env: [
                    ("CONTAINER_ID".to_string(), req.id.clone()),
                    (
                        "CONTAINER_NAMESPACE".to_string(),
                        self.inner.namespace.clone(),
                    ),
                ]
                .into_iter()
                .collect(),
            }),
            ..Default::default()
        };
        let created = async {
            let client = self.client().await?;
            client
                .containers()
                .create(client.with_deadline(pb::CreateContainerRequest {
                    config: Some(config),
                    agent: String::new(),
                }))
                .await
                .map_err(status_error)
        }
        .await;
        let container = created?.into_inner().container.unwrap_or_default();
        Ok(api::CreateTaskResponse {
            pid: container.pid,
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let client = self.client().await?;
        if req.exec_id.is_empty() {
            let container = client
                .containers()
                .start(client.with_deadline(pb::StartContainerRequest {
                    id: self.id(&req.id),
                }))
                .await
                .map_err(status_error)?
                .into_inner()
                .container
                .unwrap_or_default();
            return Ok(api::StartResponse {
                pid: container.pid,
                ..Default::default()
            });
        }
        let key = (req.id.clone(), req.exec_id.clone());
        let (spec_json, terminal, stdio) = {
            let pending = self.pending();
            let exec = pending.get(&key).ok_or_else(|| {
                ttrpc_error(
                    ttrpc::Code::NOT_FOUND,
                    format!("exec {} of task {} not found", req.exec_id, req.id),
                )
            })?;
            (exec.spec_json.clone(), exec.terminal, exec.stdio.clone())
        };
        let started = client
            .exec()
            .start_process(client.with_deadline(pb::StartProcessRequest {
                container_id: self.id(&req.id),
                exec_id: req.exec_id.clone(),
                process: Some(pb::start_process_request::Process::OciProcessJson(
                    spec_json,
                )),
                stdio: Some(stdio),
                terminal_size: terminal.then_some(pb::TerminalSize { rows: 24, cols: 80 }),
            }))
            .await
            .map_err(status_error)?
            .into_inner()
            .process
            .unwrap_or_default();
        if let Some(exec) = self.pending().remove(&key) {
            exec.started.send_replace(true);
        }
        Ok(api::StartResponse {
            pid: started.pid,
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let client = self.client().await?;
        if !req.exec_id.is_empty() {
            if let Some(exec) = self
                .pending()
                .remove(&(req.id.clone(), req.exec_id.clone()))
            {
                exec.started.send_replace(true);
                return Ok(api::DeleteResponse {
                    exited_at: convert::timestamp(SystemTime::now()),
                    ..Default::default()
                });
            }
            let state = client
                .exec()
                .inspect_process(client.with_deadline(pb::InspectProcessRequest {
                    container_id: self.id(&req.id),
                    exec_id: req.exec_id.clone(),
                }))
                .await
                .map_err(status_error)?
                .into_inner()
                .process
                .unwrap_or_default();
            let exit = client
                .exec()
                .delete_process(client.with_deadline(pb::DeleteProcessRequest {
                    container_id: self.id(&req.id),
                    exec_id: req.exec_id.clone(),
                    force: false,
                }))
                .await
                .map_err(status_error)?
                .into_inner()
                .exit
                .unwrap_or_default();
            return Ok(api::DeleteResponse {
                pid: state.pid,
                exit_status: convert::exit_code(&exit),
                exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
                ..Default::default()
            });
        }
        let container = self.inspect(&req.id).await?;
        client
            .containers()
            .delete(client.with_deadline(pb::DeleteContainerRequest {
                id: self.id(&req.id),
                force: false,
            }))
            .await
            .map_err(status_error)?;
        let exit = container.last_exit.unwrap_or_default();
        Ok(api::DeleteResponse {
            pid: container.pid,
            exit_status: convert::exit_code(&exit),
            exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
            ..Default::default()
        })
    }

    async fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        if !req.exec_id.is_empty() {
            if let Some(exec) = self.pending().get(&(req.id.clone(), req.exec_id.clone())) {
                return Ok(api::StateResponse {
                    id: req.exec_id.clone(),
                    status: api::Status::CREATED.into(),
                    stdin: exec.stdio.stdin.clone(),
                    stdout: exec.stdio.stdout.clone(),
                    stderr: exec.stdio.stderr.clone(),
                    terminal: exec.terminal,
                    exec_id: req.exec_id.clone(),
                    ..Default::default()
                });
            }
            let client = self.client().await?;
            let p = client
                .exec()
                .inspect_process(client.with_deadline(pb::InspectProcessRequest {
                    container_id: self.id(&req.id),
                    exec_id: req.exec_id.clone(),
                }))
                .await
                .map_err(status_error)?
                .into_inner()
                .process
                .unwrap_or_default();
            let stdio = p.stdio.unwrap_or_default();
            let exit = p.exit.unwrap_or_default();
            return Ok(api::StateResponse {
                id: req.exec_id.clone(),
                pid: p.pid,
                status: if p.running {
                    api::Status::RUNNING
                } else {
                    api::Status::STOPPED
                }
                .into(),
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: p.terminal,
                exit_status: convert::exit_code(&exit),
                exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            });
        }
        let c = self.inspect(&req.id).await?;
        let config = c.config.clone().unwrap_or_default();
        let stdio = config.stdio.unwrap_or_default();
        let exit = c.last_exit.unwrap_or_default();
        Ok(api::StateResponse {
            id: req.id.clone(),
            bundle: config.labels.get(LABEL_BUNDLE).cloned().unwrap_or_default(),
            pid: c.pid,
            status: convert::status(c.status).into(),
            stdin: stdio.stdin,
            stdout: stdio.stdout,
            stderr: stdio.stderr,
            terminal: config.terminal,
            exit_status: convert::exit_code(&exit),
            exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
            ..Default::default()
        })
    }

    async fn pids(
        &self,
        _ctx: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        let client = self.client().await?;
        let processes = client
            .containers()
            .list_processes(client.with_deadline(pb::ListProcessesRequest {
                id: self.id(&req.id),
            }))
            .await
            .map_err(status_error)?
            .into_inner()
            .processes;
        Ok(api::PidsResponse {
            processes: processes
                .into_iter()
                .map(|p| api::ProcessInfo {
                    pid: p.pid,
                    // Which exec a process is, as containerd's runc shim says it.
                    info: if p.exec_id.is_empty() {
                        MessageField::none()
                    } else {
                        convert::process_details(&p.exec_id)
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let client = self.client().await?;
        client
            .containers()
            .pause(client.with_deadline(pb::PauseContainerRequest {
                id: self.id(&req.id),
            }))
            .await
            .map_err(status_error)?;
        Ok(api::Empty::default())
    }

    async fn resume(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResumeRequest,
    ) -> TtrpcResult<api::Empty> {
        let client = self.client().await?;
        client
            .containers()
            .resume(client.with_deadline(pb::ResumeContainerRequest {
                id: self.id(&req.id),
            }))
            .await
            .map_err(status_error)?;
        Ok(api::Empty::default())
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(ttrpc_error(
            ttrpc::Code::UNIMPLEMENTED,
            "checkpoint is not supported by libcrun-shim (built without CRIU)",
        ))
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let client = self.client().await?;
        if req.exec_id.is_empty() {
            let killed = client
                .containers()
                .kill(client.with_deadline(pb::KillContainerRequest {
                    id: self.id(&req.id),
                    signal: signal(req.signal),
                    all: req.all,
                }))
                .await;
            match killed {
                // A created task has no user process to signal (the agent
                // refuses Kill): it is stopped, its init killed, as runc
                // kills a created container.
                Err(e)
                    if e.code() == tonic::Code::FailedPrecondition
                        && self.inspect(&req.id).await?.status
                            == pb::ContainerStatus::Created as i32 =>
                {
                    client
                        .containers()
                        .stop(client.with_deadline(pb::StopContainerRequest {
                            id: self.id(&req.id),
                            signal: String::new(),
                            timeout: Some(prost_types::Duration::default()),
                        }))
                        .await
                        .map_err(status_error)?;
                }
                other => {
                    other.map_err(finished)?;
                }
            }
        } else {
            if self
                .pending()
                .contains_key(&(req.id.clone(), req.exec_id.clone()))
            {
                return Err(ttrpc_error(
                    ttrpc::Code::FAILED_PRECONDITION,
                    format!("exec {} is not started", req.exec_id),
                ));
            }
            client
                .exec()
                .signal_process(client.with_deadline(pb::SignalProcessRequest {
                    container_id: self.id(&req.id),
                    exec_id: req.exec_id.clone(),
                    signal: signal(req.signal),
                }))
                .await
                .map_err(finished)?;
        }
        Ok(api::Empty::default())
    }

    async fn exec(
        &self,
        _ctx: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> TtrpcResult<api::Empty> {
        let spec = req.spec.as_ref().ok_or_else(|| {
            ttrpc_error(ttrpc::Code::INVALID_ARGUMENT, "exec without a process spec")
        })?;
        let spec_json = String::from_utf8(spec.value.clone()).map_err(|_| {
            ttrpc_error(
                ttrpc::Code::INVALID_ARGUMENT,
                "the process spec is not JSON",
            )
        })?;
        // Checked now, so a bad spec fails Exec rather than Start.
        let container = self.inspect(&req.id).await?;
        if container.status != pb::ContainerStatus::Running as i32 {
            return Err(ttrpc_error(
                ttrpc::Code::FAILED_PRECONDITION,
                format!("task {} is not running", req.id),
            ));
        }
        let key = (req.id.clone(), req.exec_id.clone());
        let mut pending = self.pending();
        if pending.contains_key(&key) || container.exec_ids.contains(&req.exec_id) {
            return Err(ttrpc_error(
                ttrpc::Code::ALREADY_EXISTS,
                format!("exec {} already exists", req.exec_id),
            ));
        }
        pending.insert(
            key,
            PendingExec {
                spec_json,
                terminal: req.terminal,
                stdio: pb::StdioConfig {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    logger_env: Default::default(),
                },
                started: watch::channel(false).0,
            },
        );
        Ok(api::Empty::default())
    }

    async fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        let size = pb::TerminalSize {
            rows: req.height,
            cols: req.width,
        };
        self.control(
            &req.id,
            &req.exec_id,
            pb::attach_request::Request::Resize(size),
        )
        .await?;
        Ok(api::Empty::default())
    }

    async fn close_io(
        &self,
        _ctx: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> TtrpcResult<api::Empty> {
        if req.stdin {
            self.control(
                &req.id,
                &req.exec_id,
                pb::attach_request::Request::CloseStdin(pb::CloseStdin {}),
            )
            .await?;
        }
        Ok(api::Empty::default())
    }

    async fn update(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        let resources = req
            .resources
            .as_ref()
            .map(convert::resources)
            .transpose()
            .map_err(convert::error)?;
        let client = self.client().await?;
        client
            .containers()
            .update(client.with_deadline(pb::UpdateContainerRequest {
                id: self.id(&req.id),
                resources: Some(resources.unwrap_or_default()),
            }))
            .await
            .map_err(status_error)?;
        Ok(api::Empty::default())
    }

    async fn wait(
        &self,
        _ctx: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        let client = self.client().await?;
        let exit = if req.exec_id.is_empty() {
            client
                .containers()
                .wait(pb::WaitContainerRequest {
                    id: self.id(&req.id),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .exit
        } else {
            let started = self
                .pending()
                .get(&(req.id.clone(), req.exec_id.clone()))
                .map(|e| e.started.subscribe());
            if let Some(mut started) = started {
                let _ = started.wait_for(|s| *s).await;
            }
            client
                .exec()
                .wait_process(pb::WaitProcessRequest {
                    container_id: self.id(&req.id),
                    exec_id: req.exec_id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .exit
        }
        .unwrap_or_default();
        Ok(api::WaitResponse {
            exit_status: convert::exit_code(&exit),
            exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
            ..Default::default()
        })
    }

    async fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let client = self.client().await?;
        let metrics = client
            .metrics()
            .get_metrics(client.with_deadline(pb::GetMetricsRequest {
                container_id: self.id(&req.id),
            }))
            .await
            .map_err(status_error)?
            .into_inner()
            .metrics
            .unwrap_or_default();
        Ok(api::StatsResponse {
            stats: MessageField::some(convert::metrics(&metrics)),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.inspect(&req.id).await.map(|c| c.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: crate::VERSION.to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ShutdownRequest,
    ) -> TtrpcResult<api::Empty> {
        // Exits once none of its containers is left (containerd asks after
        // each task's delete; a pod's shim serves several). A daemon that
        // cannot be reached holds none it could serve: containerd's
        // `delete` cleans up after it.
        let listed = async {
            let client = self.client().await?;
            client
                .containers()
                .list(
                    client.with_deadline(pb::ListContainersRequest {
                        labels: [(LABEL_SHIM.to_string(), self.inner.shim_id.clone())]
                            .into_iter()
                            .collect(),
                        ..Default::default()
                    }),
                )
                .await
                .map_err(status_error)
        }
        .await;
        let namespace = self.inner.namespace.clone();
        let left = listed.is_ok_and(|r| {
            r.into_inner()
                .containers
                .iter()
                .filter_map(|c| c.config.as_ref())
                .any(|c| c.labels.get(LABEL_NAMESPACE) == Some(&namespace))
        });
        if !left && self.pending().is_empty() {
            self.inner.exit.signal();
        }
        Ok(api::Empty::default())
    }
}

impl Service {
    /// Sends one control message (resize, close stdin) to a process through
    /// a short Attach stream.
    async fn control(
        &self,
        id: &str,
        exec_id: &str,
        message: pb::attach_request::Request,
    ) -> TtrpcResult<()> {
        let client = self.client().await?;
        let start = pb::AttachRequest {
            request: Some(pb::attach_request::Request::Start(pb::AttachStart {
                container_id: self.id(id),
                exec_id: exec_id.to_string(),
                stdout: false,
                stderr: false,
            })),
        };
        let messages = vec![
            start,
            pb::AttachRequest {
                request: Some(message),
            },
        ];
        let mut request = tonic::Request::new(futures::stream::iter(messages));
        request.set_timeout(CALL_TIMEOUT);
        // The answer comes once the server has taken the stream: the
        // messages are on their way to the process's monitor.
        client
            .containers()
            .attach(request)
            .await
            .map_err(status_error)?;
        Ok(())
    }
}
