//! A backend that runs nothing, for the runtime's unit tests: containers
//! and processes are entries in memory that the test moves (a container
//! exits, a monitor vanishes), and every libcrun call is recorded. What a
//! real monitor writes (the exit record) it writes the same way, so the
//! runtime reads its state root as it does in production.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use futures::future::BoxFuture;
use oci_spec::runtime::LinuxResources;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};

use super::{Backend, Created, ExecLaunch, ExecProcess, ExecStdio};
use crate::error::{Error, Result};
use crate::model::ExitStatus;
use crate::monitor::MonitorArgs;
use crate::process::ProcessRef;
use crate::store::{self, ExitRecord};

/// Pids of this backend's processes: above Linux's `pid_max`, so never
/// those of real processes.
const FIRST_PID: i32 = 1 << 23;

/// A libcrun call, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    Create { id: String, run: u32 },
    Start(String),
    Kill { id: String, signal: i32, all: bool },
    Pause(String),
    Resume(String),
    Delete { id: String, force: bool },
    Update(String, Box<LinuxResources>),
    Exec { id: String, args: Vec<String> },
}

/// What the next exec process does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecScript {
    /// Writes this output and exits with this code.
    Exit {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        code: i32,
    },
    /// Runs until signalled; exits with 128 + the signal.
    Hang,
    /// Fails to set itself up in the container, saying this.
    NotStarted(String),
}

/// A container made by [`TestBackend::create`].
#[derive(Debug)]
struct Container {
    /// The agent's state root.
    state_root: PathBuf,
    run: u32,
    monitor: ProcessRef,
    pid: i32,
    rootfs: PathBuf,
    alive: bool,
}

#[derive(Debug, Default)]
struct State {
    next_pid: i32,
    calls: Vec<Call>,
    containers: HashMap<String, Container>,
    /// Monitors and other processes, alive or not.
    processes: HashMap<i32, watch::Sender<bool>>,
    /// Signals each container's init ignores.
    ignored: HashMap<String, HashSet<i32>>,
    fail_create: Option<(i32, String)>,
    execs: VecDeque<ExecScript>,
    /// Exec processes that run until signalled.
    hanging: HashMap<i32, oneshot::Sender<i32>>,
}

impl State {
    fn pid(&mut self) -> i32 {
        self.next_pid += 1;
        FIRST_PID + self.next_pid
    }

    /// The init process of `id` ends as `exit` says: the monitor records
    /// it and exits.
    fn end(&mut self, id: &str, exit: ExitStatus) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if !c.alive {
            return;
        }
        c.alive = false;
        let record = ExitRecord { run: c.run, exit };
        let path = c
            .state_root
            .join("containers")
            .join(id)
            .join(store::EXIT_FILE);
        store::write_json(&path, &record).expect("writing the exit record");
        let monitor = c.monitor.pid;
        self.stop_process(monitor);
    }

    /// A new running process (a monitor).
    fn spawn(&mut self) -> ProcessRef {
        let pid = self.pid();
        self.processes.insert(pid, watch::channel(true).0);
        ProcessRef { pid, start_time: 1 }
    }

    fn stop_process(&mut self, pid: i32) {
        if let Some(alive) = self.processes.get(&pid) {
            alive.send_replace(false);
        }
    }
}

/// The test backend.
#[derive(Debug, Default)]
pub(crate) struct TestBackend {
    state: Mutex<State>,
}

impl TestBackend {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The libcrun calls made so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Container `id`'s init process exits with `code` (killed by signal
    /// `code - 128` above 128).
    pub(crate) fn exit(&self, id: &str, code: i32) {
        self.state()
            .end(id, ExitStatus::from_code(code, SystemTime::now()));
    }

    /// Container `id`'s monitor is killed: no exit record is written.
    pub(crate) fn kill_monitor(&self, id: &str) {
        let mut state = self.state();
        let monitor = state.containers.get(id).map(|c| c.monitor.pid);
        if let Some(pid) = monitor {
            state.stop_process(pid);
        }
    }

    /// Container `id`'s init process ignores `signal`.
    pub(crate) fn ignore(&self, id: &str, signal: i32) {
        self.state()
            .ignored
            .entry(id.to_string())
            .or_default()
            .insert(signal);
    }

    /// The next create fails as libcrun would, with `errno`.
    pub(crate) fn fail_next_create(&self, errno: i32, message: &str) {
        self.state().fail_create = Some((errno, message.to_string()));
    }

    /// What the next exec process does (by default it exits 0 silently).
    pub(crate) fn next_exec(&self, script: ExecScript) {
        self.state().execs.push_back(script);
    }

    /// A running process (a monitor from an agent's earlier life, say).
    pub(crate) fn spawn_process(&self) -> ProcessRef {
        self.state().spawn()
    }

    /// The rootfs of a container, from the spec its monitor reads.
    fn rootfs(state_root: &Path, id: &str) -> PathBuf {
        let path = state_root
            .join("containers")
            .join(id)
            .join(store::CONFIG_FILE);
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&std::fs::read(path).expect("the container's spec"))
                .expect("a valid spec");
        spec.root().as_ref().expect("a root").path().clone()
    }
}

impl Backend for TestBackend {
    fn start(&self, id: &str) -> libcrun_sys::Result<()> {
        self.state().calls.push(Call::Start(id.to_string()));
        Ok(())
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> libcrun_sys::Result<()> {
        let mut state = self.state();
        state.calls.push(Call::Kill {
            id: id.to_string(),
            signal,
            all,
        });
        let ignored = state
            .ignored
            .get(id)
            .is_some_and(|s| s.contains(&signal) && signal != libc::SIGKILL);
        if !ignored {
            state.end(id, ExitStatus::from_code(128 + signal, SystemTime::now()));
        }
        Ok(())
    }

    fn pause(&self, id: &str) -> libcrun_sys::Result<()> {
        self.state().calls.push(Call::Pause(id.to_string()));
        Ok(())
    }

    fn resume(&self, id: &str) -> libcrun_sys::Result<()> {
        self.state().calls.push(Call::Resume(id.to_string()));
        Ok(())
    }

    fn delete(&self, id: &str, force: bool) -> libcrun_sys::Result<()> {
        let mut state = self.state();
        state.calls.push(Call::Delete {
            id: id.to_string(),
            force,
        });
        if force {
            state.end(id, ExitStatus::from_code(137, SystemTime::now()));
        }
        match state.containers.remove(id) {
            Some(_) => Ok(()),
            None => Err(libcrun_sys::Error::Libcrun {
                errno: libc::ENOENT,
                message: format!("container `{id}` does not exist"),
            }),
        }
    }

    fn update(&self, id: &str, resources: &LinuxResources) -> libcrun_sys::Result<()> {
        self.state()
            .calls
            .push(Call::Update(id.to_string(), Box::new(resources.clone())));
        Ok(())
    }

    fn pids(&self, id: &str) -> libcrun_sys::Result<Vec<i32>> {
        Ok(self
            .state()
            .containers
            .get(id)
            .filter(|c| c.alive)
            .map(|c| vec![c.pid])
            .unwrap_or_default())
    }

    fn create(&self, args: MonitorArgs) -> BoxFuture<'static, Result<Created>> {
        let mut state = self.state();
        if args.exec.is_some() {
            // A detached exec process: a monitor that runs until signalled.
            let pid = state.pid();
            let monitor = state.spawn();
            return Box::pin(async move { Ok(Created { pid, monitor }) });
        }
        state.calls.push(Call::Create {
            id: args.id.clone(),
            run: args.run,
        });
        let result = match state.fail_create.take() {
            Some((errno, message)) => Err(Error::libcrun(
                format!("creating container {}", args.id),
                libcrun_sys::Error::Libcrun { errno, message },
            )),
            None => {
                let pid = state.pid();
                let monitor = state.spawn();
                state.containers.insert(
                    args.id.clone(),
                    Container {
                        rootfs: Self::rootfs(&args.root, &args.id),
                        state_root: args.root,
                        run: args.run,
                        monitor,
                        pid,
                        alive: true,
                    },
                );
                Ok(Created { pid, monitor })
            }
        };
        Box::pin(async move { result })
    }

    fn exec(&self, launch: ExecLaunch) -> BoxFuture<'static, Result<ExecProcess>> {
        let mut state = self.state();
        state.calls.push(Call::Exec {
            id: launch.container_id.clone(),
            args: launch.process.args().clone().unwrap_or_default(),
        });
        let script = state.execs.pop_front().unwrap_or(ExecScript::Exit {
            stdout: Vec::new(),
            stderr: Vec::new(),
            code: 0,
        });
        let pid = state.pid();
        let (stdin, _) = tokio::io::duplex(64 * 1024);
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let (mut err_w, err_r) = tokio::io::duplex(64 * 1024);
        let exit: BoxFuture<'static, Result<ExitStatus>> = match script {
            ExecScript::NotStarted(why) => {
                return Box::pin(async move {
                    Err(Error::FailedPrecondition(format!(
                        "exec in container {}: the process did not start: {why}",
                        launch.container_id
                    )))
                });
            }
            ExecScript::Exit {
                stdout,
                stderr,
                code,
            } => Box::pin(async move {
                let (a, b) = tokio::join!(out_w.write_all(&stdout), err_w.write_all(&stderr));
                a.and(b).map_err(|e| Error::io("test exec output", e))?;
                Ok(ExitStatus::from_code(code, SystemTime::now()))
            }),
            ExecScript::Hang => {
                let (killed_tx, killed) = oneshot::channel();
                state.hanging.insert(pid, killed_tx);
                Box::pin(async move {
                    let signal = killed.await.unwrap_or(libc::SIGKILL);
                    drop((out_w, err_w));
                    Ok(ExitStatus::from_code(128 + signal, SystemTime::now()))
                })
            }
        };
        let process = ExecProcess {
            pid,
            stdio: ExecStdio::Pipes {
                stdin: launch.stdin.then(|| Box::pin(stdin) as _),
                stdout: Box::pin(out_r),
                stderr: Box::pin(err_r),
            },
            exit,
        };
        Box::pin(async move { Ok(process) })
    }

    fn root_of(&self, pid: i32) -> PathBuf {
        self.state()
            .containers
            .values()
            .find(|c| c.pid == pid)
            .map_or_else(|| PathBuf::from("/nonexistent"), |c| c.rootfs.clone())
    }

    fn is_alive(&self, process: ProcessRef) -> bool {
        self.state()
            .processes
            .get(&process.pid)
            .is_some_and(|alive| *alive.borrow())
    }

    fn exited(&self, process: ProcessRef) -> BoxFuture<'static, io::Result<()>> {
        let alive = self
            .state()
            .processes
            .get(&process.pid)
            .map(|alive| alive.subscribe());
        Box::pin(async move {
            if let Some(mut alive) = alive {
                let _ = alive.wait_for(|alive| !alive).await;
            }
            Ok(())
        })
    }

    fn signal_process(&self, pid: i32, signal: i32) -> io::Result<()> {
        let mut state = self.state();
        if let Some(killed) = state.hanging.remove(&pid) {
            let _ = killed.send(signal);
        } else {
            state.stop_process(pid);
        }
        Ok(())
    }
}
