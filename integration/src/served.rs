//! A test's server process (an agent, a daemon): started, waited for until
//! its Unix socket accepts, and stopped.

use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A server process the test started.
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
}

impl Served {
    /// Spawns `command` (stdin and stdout null, stderr appended to `log`,
    /// `RUST_LOG=info` unless the command sets it: tests read the log) and
    /// waits until `socket` accepts. `what` names the server in errors,
    /// which carry its log.
    pub fn start(command: Command, socket: &Path, log: &Path, what: &str) -> io::Result<Served> {
        Served::start_until(command, log, what, || {
            std::os::unix::net::UnixStream::connect(socket).is_ok()
        })
    }

    /// [`Served::start`], waiting until `ready` holds.
    pub fn start_until(
        mut command: Command,
        log: &Path,
        what: &str,
        ready: impl Fn() -> bool,
    ) -> io::Result<Served> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        let mut served = Served { child: Some(child) };
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if ready() {
                return Ok(served);
            }
            if let Some(status) = served.wait_exit(Duration::ZERO) {
                return Err(io::Error::other(format!(
                    "{what} exited with {status}: {}",
                    log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} did not serve within {START_TIMEOUT:?}: {}", log()),
        ))
    }

    /// The process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the process to exit on its own, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM), and kills it after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(pid) = self.pid() {
            // SAFETY: signals the process this test started, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            if self.wait_exit(grace).is_none() {
                self.kill();
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
