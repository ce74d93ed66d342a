//! The per-container monitor and the exec helper: the small,
//! single-threaded processes (binary `crun-shim-monitor`) that call the
//! libcrun functions which fork, so the multi-threaded agent never forks
//! without an exec.
//!
//! A monitor is started by the agent ahead of need and, once told which
//! container to run (a JSON line on its stdin), lives as long as the
//! container's init process:
//!
//! 1. it starts a new session (signals to the agent's process group do not
//!    reach it) and, on a hybrid cgroup host, a private mount namespace;
//! 2. it creates the container through libcrun with its own pipes (or a
//!    pseudo-terminal received on a console socket) as the container's
//!    stdout and stderr, /dev/null as stdin; the libcrun calls run in a
//!    short-lived child (module `setup`), so the monitor does not keep what they
//!    allocate;
//! 3. it reports the init pid, or libcrun's error, on its stdout (a pipe to
//!    the agent) as one JSON line, and closes it;
//! 4. it copies the container's output into the log files, reaps the init
//!    process when it exits, drains the output, and writes `exit.json`
//!    (exit code, signal, OOM kill) atomically before exiting.
//!
//! The agent may die and restart at any time: the monitor does not depend
//! on it after step 3, so the container, its log capture and its exit
//! status survive.

pub mod exec;
mod memory;
mod setup;
pub mod streams;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use serde::{Deserialize, Serialize};

use crate::logs::{LogWriter, Stream};
use crate::model::{ExitStatus, LogConfig};
use crate::stdio::StdioConfig;
use crate::store::{self, ExitRecord};
use streams::Hub;

/// What the monitor reports to the agent once the container is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateReport {
    /// The container was created; its init process has this host pid.
    Created {
        /// The init process's pid.
        pid: i32,
    },
    /// libcrun failed to create it.
    Failed {
        /// libcrun's errno (0 if none).
        errno: i32,
        /// libcrun's message.
        message: String,
    },
}

/// What a monitor is told to do, as one JSON line on its stdin.
///
/// The agent keeps one monitor started ahead of need (a spare, waiting on
/// its stdin), so that creating a container does not wait for a process
/// to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorArgs {
    /// The agent's state root.
    pub root: PathBuf,
    /// The container's id.
    pub id: String,
    /// The run number, written into `exit.json`.
    pub run: u32,
    /// Log rotation limits.
    pub log: LogConfig,
    /// Where the process's streams go besides the logs.
    #[serde(default)]
    pub stdio: StdioConfig,
    /// Give the process a stdin pipe kept open for Attach.
    #[serde(default)]
    pub open_stdin: bool,
    /// Set for a detached exec process (`StartProcess`) instead of the
    /// container's main process.
    #[serde(default)]
    pub exec: Option<ExecTarget>,
}

/// A detached exec process a monitor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecTarget {
    /// Its exec id.
    pub exec_id: String,
    /// Whether it runs on a terminal (its `process.json` says so too).
    pub terminal: bool,
}

impl MonitorArgs {
    /// The monitor's directory: the container's, or the exec process's
    /// inside it.
    pub fn dir(&self) -> PathBuf {
        let container = self.root.join("containers").join(&self.id);
        match &self.exec {
            Some(exec) => container
                .join(crate::store::PROCESSES_DIR)
                .join(&exec.exec_id),
            None => container,
        }
    }

    /// What the monitor runs, as errors name it ("container c1", "exec e1
    /// in container c1").
    pub fn what(&self) -> String {
        match &self.exec {
            Some(exec) => format!("exec {} in container {}", exec.exec_id, self.id),
            None => format!("container {}", self.id),
        }
    }
}

/// Name of the console socket inside the container directory (relative,
/// so the socket path stays short whatever the state root).
const CONSOLE_SOCKET: &str = "console.sock";
/// How long to wait for the container's output to close after its init
/// process exited (processes outside its pid namespace may hold it).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Size of the pipes carrying the container's output.
const PIPE_SIZE: i32 = 1 << 20;
/// A detached exec's OCI `process`, in its directory.
pub const PROCESS_FILE: &str = "process.json";
/// The pid file libcrun writes for a detached exec, in its directory.
const PID_FILE: &str = "pid";

fn errno_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Moves `fd` above the standard descriptors, close-on-exec.
fn move_high(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: duplicates a descriptor this process owns.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Points descriptor `target` (0, 1 or 2) at `fd`.
fn redirect(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 onto a standard descriptor.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe whose read end is close-on-exec and large.
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno_io)?;
    // SAFETY: F_SETPIPE_SZ on our own pipe; failure only leaves it smaller.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    Ok((r, w))
}

/// Runs a monitor: waits for its instructions on stdin, then creates and
/// monitors the container. Returns the process exit code.
pub fn run() -> i32 {
    memory::configure_allocator();
    // The agent gave us: stdin a pipe carrying our instructions, stdout the
    // report pipe, stderr its own. Keep the report pipe away from 0-2,
    // which the container inherits.
    let Ok(report) = move_high(1).map(File::from) else {
        return 1;
    };
    // Signals aimed at the agent's process group must not reach us.
    if nix::unistd::setsid().is_err() {
        return 1;
    }
    let mut line = String::new();
    match io::stdin().read_line(&mut line) {
        // The agent went away before it needed us.
        Ok(0) => return 0,
        Ok(_) => {}
        Err(e) => {
            eprintln!("crun-shim-monitor: reading instructions: {e}");
            return 1;
        }
    }
    let args: MonitorArgs = match serde_json::from_str(&line) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("crun-shim-monitor: bad instructions: {e}");
            return 1;
        }
    };
    let dir = args.dir();
    let diag = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(store::MONITOR_LOG))
    {
        Ok(diag) => diag,
        Err(e) => {
            eprintln!("crun-shim-monitor: {}: {e}", dir.display());
            return 1;
        }
    };
    let mut monitor = Monitor { args: &args, diag };
    let created = if args.exec.is_some() {
        monitor.exec(report)
    } else {
        monitor.create(report)
    };
    match created {
        Ok(Some(running)) => match monitor.supervise(running) {
            Ok(()) => 0,
            Err(e) => {
                monitor.note(&format!("monitoring failed: {e}"));
                1
            }
        },
        Ok(None) => 1,
        Err(e) => {
            monitor.note(&format!("setting up failed: {e}"));
            1
        }
    }
}

struct Monitor<'a> {
    args: &'a MonitorArgs,
    diag: File,
}

/// A created container (or started exec process) being watched.
struct Running {
    pid: i32,
    outputs: Vec<(OwnedFd, Stream)>,
    signals: SignalFd,
    cgroup_path: Option<String>,
    /// The log files (the main process only).
    writer: Option<LogWriter>,
    hub: Hub,
}

/// What the setup process sends back about a created container.
#[derive(Serialize, Deserialize)]
struct Created {
    pid: i32,
    cgroup_path: Option<String>,
}

/// Whether the spec asks for a terminal (`process.terminal`), read without
/// building a tree of the whole spec.
fn wants_terminal(spec: &str) -> bool {
    #[derive(Deserialize)]
    struct Spec {
        process: Option<Process>,
    }
    #[derive(Deserialize)]
    struct Process {
        #[serde(default)]
        terminal: bool,
    }
    serde_json::from_str::<Spec>(spec)
        .ok()
        .and_then(|s| s.process)
        .is_some_and(|p| p.terminal)
}

/// Reports a libcrun failure to the agent.
fn report_failure(report: &mut File, e: &libcrun_sys::Error) {
    let failed = CreateReport::Failed {
        errno: e.errno().unwrap_or(0),
        message: e.to_string(),
    };
    let _ = writeln!(
        report,
        "{}",
        serde_json::to_string(&failed).unwrap_or_default()
    );
}

/// Reports the process's pid to the agent.
fn report_created(mut report: File, pid: i32) -> io::Result<()> {
    let created = CreateReport::Created { pid };
    writeln!(
        report,
        "{}",
        serde_json::to_string(&created).map_err(io::Error::other)?
    )
}

/// Blocks SIGCHLD (the process's exit is read from a signalfd, set up
/// before the process exists so that it cannot be missed).
fn child_signals() -> io::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(errno_io)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(errno_io)
}

/// The process's output as libcrun will give it: a console socket to
/// receive a terminal's master on (fds 1 and 2 /dev/null), or two pipes made
/// fds 1 and 2, whose read ends the monitor keeps.
type ProcessOutput = (
    libcrun_sys::ContextBuilder,
    Option<std::os::unix::net::UnixListener>,
    Vec<(OwnedFd, Stream)>,
);

fn process_output(
    builder: libcrun_sys::ContextBuilder,
    terminal: bool,
    devnull: &File,
) -> io::Result<ProcessOutput> {
    if terminal {
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let listener = std::os::unix::net::UnixListener::bind(CONSOLE_SOCKET)?;
        redirect(devnull.as_raw_fd(), 1)?;
        redirect(devnull.as_raw_fd(), 2)?;
        Ok((
            builder.console_socket(CONSOLE_SOCKET),
            Some(listener),
            Vec::new(),
        ))
    } else {
        let (out_r, out_w) = output_pipe()?;
        let (err_r, err_w) = output_pipe()?;
        redirect(out_w.as_raw_fd(), 1)?;
        redirect(err_w.as_raw_fd(), 2)?;
        Ok((
            builder,
            None,
            vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
        ))
    }
}

/// Makes the output descriptors non-blocking.
fn nonblocking(outputs: &[(OwnedFd, Stream)]) -> io::Result<()> {
    for (fd, _) in outputs {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(errno_io)?;
    }
    Ok(())
}

impl Monitor<'_> {
    fn note(&mut self, message: &str) {
        let _ = writeln!(
            self.diag,
            "{} monitor[{}] {}: {message}",
            humantime_now(),
            std::process::id(),
            self.args.id
        );
    }

    fn dir(&self) -> PathBuf {
        self.args.dir()
    }

    /// Creates the container and reports to the agent. `Ok(None)` when
    /// libcrun failed (already reported).
    fn create(&mut self, mut report: File) -> io::Result<Option<Running>> {
        let dir = self.dir();
        std::env::set_current_dir(&dir)?;
        libcrun_sys::cgroup::prepare_process()?;

        let signals = child_signals()?;
        // A container joining another's PID namespace is forked by libcrun
        // from a process that then exits: as a subreaper this monitor
        // still becomes its parent (not the machine's init), so its exit
        // is seen and reaped here.
        nix::sys::prctl::set_child_subreaper(true).map_err(errno_io)?;

        let spec_path = dir.join(store::CONFIG_FILE);
        let spec = std::fs::read_to_string(&spec_path)?;
        let terminal = wants_terminal(&spec);

        let devnull = File::open("/dev/null")?;
        let (mut hub, stdin) = Hub::open(
            &self.args.stdio,
            self.args.open_stdin,
            terminal,
            &self.args.id,
        )?;
        match &stdin.read_end {
            Some(pipe) => redirect(pipe.as_raw_fd(), 0)?,
            None => redirect(devnull.as_raw_fd(), 0)?,
        }
        let builder = libcrun_sys::Context::builder(self.args.root.join("libcrun")).bundle(&dir);
        let (builder, console, mut outputs) = process_output(builder, terminal, &devnull)?;

        let id = &self.args.id;
        let created = setup::in_child(|| {
            let _ = libcrun_sys::log_to_file(&dir.join(store::MONITOR_LOG));
            let context = builder.build()?;
            let mut container = libcrun_sys::Container::from_json(&spec)?;
            context.create(id, &mut container)?;
            let state = context.state(id)?;
            Ok(Created {
                pid: state.pid,
                cgroup_path: state.cgroup_path,
            })
        });
        drop(spec);
        // The container holds its own copies of the output pipes; ours must
        // close so that its exit closes them.
        redirect(devnull.as_raw_fd(), 0)?;
        redirect(devnull.as_raw_fd(), 1)?;
        redirect(devnull.as_raw_fd(), 2)?;
        drop(stdin);

        let state = match created {
            Ok(state) => state,
            Err(e) => {
                self.note(&format!("create failed: {e}"));
                report_failure(&mut report, &e);
                return Ok(None);
            }
        };
        if let Some(listener) = console {
            let master = receive_fd(&listener)?;
            let _ = std::fs::remove_file(CONSOLE_SOCKET);
            hub.set_terminal(
                &master,
                self.args.open_stdin || self.args.stdio.stdin.is_some(),
            )?;
            outputs.push((master, Stream::Stdout));
        }
        report_created(report, state.pid)?;
        nonblocking(&outputs)?;
        let writer = LogWriter::open(&dir.join(store::LOGS_DIR), self.args.log)?;
        // Give back what libcrun's parsing and setup used: the monitor
        // lives as long as the container.
        memory::settle();
        Ok(Some(Running {
            pid: state.pid,
            outputs,
            signals,
            cgroup_path: state.cgroup_path,
            writer: Some(writer),
            hub,
        }))
    }

    /// Starts a detached exec process through libcrun and reports its pid
    /// to the agent. `Ok(None)` when libcrun failed (already reported).
    fn exec(&mut self, mut report: File) -> io::Result<Option<Running>> {
        let dir = self.dir();
        let terminal = self.args.exec.as_ref().is_some_and(|e| e.terminal);
        std::env::set_current_dir(&dir)?;
        libcrun_sys::cgroup::prepare_process()?;
        // libcrun's detached exec leaves the process to its parent's
        // reaper: be that reaper.
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let signals = child_signals()?;
        let devnull = File::open("/dev/null")?;
        let (mut hub, stdin) = Hub::open(&self.args.stdio, false, terminal, &self.args.id)?;
        match &stdin.read_end {
            Some(pipe) => redirect(pipe.as_raw_fd(), 0)?,
            None => redirect(devnull.as_raw_fd(), 0)?,
        }
        let pid_file = dir.join(PID_FILE);
        let builder = libcrun_sys::Context::builder(self.args.root.join("libcrun"))
            .detach(true)
            .pid_file(&pid_file);
        let (builder, console, mut outputs) = process_output(builder, terminal, &devnull)?;
        let id = &self.args.id;
        let started = setup::in_child(|| {
            let _ = libcrun_sys::log_to_file(&dir.join(store::MONITOR_LOG));
            builder.build()?.exec(id, &dir.join(PROCESS_FILE))?;
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .ok_or_else(|| libcrun_sys::Error::Libcrun {
                    errno: 0,
                    message: "libcrun wrote no pid".into(),
                })
        });
        redirect(devnull.as_raw_fd(), 0)?;
        redirect(devnull.as_raw_fd(), 1)?;
        redirect(devnull.as_raw_fd(), 2)?;
        drop(stdin);
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                self.note(&format!("exec failed: {e}"));
                report_failure(&mut report, &e);
                return Ok(None);
            }
        };
        if let Some(listener) = console {
            let master = receive_fd(&listener)?;
            let _ = std::fs::remove_file(CONSOLE_SOCKET);
            hub.set_terminal(&master, self.args.stdio.stdin.is_some())?;
            outputs.push((master, Stream::Stdout));
        }
        report_created(report, pid)?;
        nonblocking(&outputs)?;
        memory::settle();
        Ok(Some(Running {
            pid,
            outputs,
            signals,
            cgroup_path: None,
            writer: None,
            hub,
        }))
    }

    /// Copies output to the logs until the container has exited and its
    /// output is closed, then records the exit.
    fn supervise(&mut self, mut running: Running) -> io::Result<()> {
        let mut buf = vec![0u8; 128 * 1024];
        let mut exit: Option<(i32, Instant)> = None;
        loop {
            if running.outputs.is_empty() && exit.is_some() {
                break;
            }
            let timeout = match exit {
                Some((_, at)) => {
                    let left = DRAIN_GRACE.saturating_sub(at.elapsed());
                    if left.is_zero() {
                        self.note("output still open after the process exited; closing it");
                        break;
                    }
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            // The process's outputs (unless a target holds one back), the
            // signalfd, then the hub's descriptors.
            let (ready, signal_ready, hub_ready) = {
                let outputs: Vec<usize> = (0..running.outputs.len())
                    .filter(|&i| !running.hub.holds_back(running.outputs[i].1))
                    .collect();
                let interests = running.hub.interests();
                let mut fds: Vec<PollFd> = outputs
                    .iter()
                    .map(|&i| PollFd::new(running.outputs[i].0.as_fd(), PollFlags::POLLIN))
                    .collect();
                fds.push(PollFd::new(running.signals.as_fd(), PollFlags::POLLIN));
                fds.extend(
                    interests
                        .iter()
                        .map(|(fd, flags, _)| PollFd::new(*fd, *flags)),
                );
                // While held back, wake up now and then to look again.
                let timeout =
                    if outputs.len() < running.outputs.len() && timeout == PollTimeout::NONE {
                        PollTimeout::from(100u8)
                    } else {
                        timeout
                    };
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(errno_io(e)),
                }
                let any: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
                let ready: Vec<usize> = outputs
                    .iter()
                    .zip(&any)
                    .filter(|(_, r)| **r)
                    .map(|(i, _)| *i)
                    .collect();
                let signal_ready = any[outputs.len()];
                let hub_ready: Vec<streams::Token> = interests
                    .iter()
                    .zip(&any[outputs.len() + 1..])
                    .filter(|(_, r)| **r)
                    .map(|((_, _, token), _)| *token)
                    .collect();
                (ready, signal_ready, hub_ready)
            };
            running.hub.ready(&hub_ready);
            let now = SystemTime::now();
            let mut closed = Vec::new();
            for i in ready {
                let (fd, stream) = &running.outputs[i];
                // Read what is there (bounded, so one busy stream cannot
                // starve the other or the exit).
                for _ in 0..16 {
                    match nix::unistd::read(fd, &mut buf) {
                        Ok(0) => {
                            closed.push(i);
                            break;
                        }
                        Ok(n) => {
                            if let Some(writer) = &mut running.writer {
                                writer.write(*stream, &buf[..n], now)?;
                            }
                            running.hub.output(*stream, &buf[..n]);
                            if running.hub.holds_back(*stream) {
                                break;
                            }
                        }
                        Err(nix::Error::EAGAIN) => break,
                        Err(nix::Error::EINTR) => continue,
                        // A terminal's master reports EIO once the last
                        // slave is closed.
                        Err(_) => {
                            closed.push(i);
                            break;
                        }
                    }
                }
            }
            for i in closed.into_iter().rev() {
                running.outputs.remove(i);
            }
            if let Some(writer) = &mut running.writer {
                writer.flush()?;
            }
            if signal_ready {
                while let Ok(Some(_)) = running.signals.read_signal() {}
                if let Some(status) = reap(running.pid) {
                    exit = Some((status, Instant::now()));
                }
            }
        }
        if let Some(writer) = &mut running.writer {
            writer.flush()?;
        }
        running.hub.finish(Instant::now() + DRAIN_GRACE);
        let (status, _) = exit.unwrap_or((0, Instant::now()));
        let mut exit = ExitStatus::from_wait_status(status, SystemTime::now());
        exit.oom_killed = running
            .cgroup_path
            .as_deref()
            .is_some_and(|p| crate::cgroups::oom_kill_count(p).unwrap_or(0) > 0);
        let record = ExitRecord {
            run: self.args.run,
            exit,
        };
        store::write_json(&self.dir().join(store::EXIT_FILE), &record)?;
        self.note(&format!(
            "process exited with code {} (signal {}, oom killed: {})",
            exit.exit_code, exit.signal, exit.oom_killed
        ));
        Ok(())
    }
}

/// Reaps exited children; returns the raw wait status of `pid` if it was
/// among them.
fn reap(pid: i32) -> Option<i32> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) => {
                if p.as_raw() == pid {
                    found = Some(code << 8);
                }
            }
            Ok(WaitStatus::Signaled(p, sig, core)) => {
                if p.as_raw() == pid {
                    found = Some(sig as i32 | if core { 0x80 } else { 0 });
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}

/// Accepts one connection on the console socket and receives the
/// pseudo-terminal master libcrun sends over it.
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> io::Result<OwnedFd> {
    let (stream, _) = listener.accept()?;
    crate::fdpass::recv_fd(stream.as_raw_fd())?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no terminal received on the console socket",
        )
    })
}

/// The current time as RFC 3339, for diagnostics.
fn humantime_now() -> String {
    crate::logs::format_time(SystemTime::now())
}

/// Reads the single report line a monitor writes to its stdout.
pub fn parse_report(line: &str) -> Option<CreateReport> {
    serde_json::from_str(line.trim()).ok()
}
