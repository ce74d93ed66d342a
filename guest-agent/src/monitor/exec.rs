//! The exec helper: runs one process inside a running container through
//! libcrun (which forks, hence a separate single-threaded process) and
//! reports on descriptor 3.
//!
//! Its stdin, stdout and stderr are the exec process's (pipes to the agent,
//! or /dev/null with a terminal, whose master goes to the console socket).
//! Descriptor 3 is the status pipe: libcrun writes the process's pid to it
//! (as its pid file), then the helper appends `\nexit CODE\n` when the
//! process exits (128+N when killed by signal N) or `\nerror MESSAGE\n`
//! when libcrun fails. Signals sent to the helper are forwarded to the
//! process by libcrun.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

/// The status descriptor the agent passes.
pub const STATUS_FD: i32 = 3;

/// The exec helper's command line.
#[derive(Debug, Clone)]
pub struct ExecArgs {
    /// The agent's state root.
    pub root: PathBuf,
    /// The container's id.
    pub id: String,
    /// The OCI `process` JSON file.
    pub process: PathBuf,
    /// The console socket (relative to the working directory) for a
    /// terminal process.
    pub console_socket: Option<PathBuf>,
}

impl ExecArgs {
    /// The arguments that start the helper with these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "exec".into(),
            "--root".into(),
            self.root.display().to_string(),
            "--id".into(),
            self.id.clone(),
            "--process".into(),
            self.process.display().to_string(),
        ];
        if let Some(socket) = &self.console_socket {
            args.push("--console-socket".into());
            args.push(socket.display().to_string());
        }
        args
    }
}

/// What the status pipe said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// The process ran and exited with this code.
    Exited {
        /// The process's pid, when libcrun reported it.
        pid: Option<i32>,
        /// Its exit code (128+N when killed by signal N).
        code: i32,
    },
    /// libcrun failed (the process may not have started).
    Failed {
        /// The process's pid, when it had started.
        pid: Option<i32>,
        /// libcrun's errno (0 if none).
        errno: i32,
        /// libcrun's message.
        message: String,
    },
}

/// Parses the pid at the start of the status stream. libcrun writes it
/// with one `write` (atomic on a pipe), so the first chunk read holds all
/// of it.
pub fn parse_pid(first_chunk: &str) -> Option<i32> {
    let digits: String = first_chunk
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Parses the whole status stream.
pub fn parse_status(status: &str) -> Option<ExecStatus> {
    let pid = status
        .split('\n')
        .next()
        .and_then(|l| l.trim().parse().ok());
    let last = status.lines().rev().find(|l| !l.trim().is_empty())?;
    if let Some(code) = last.strip_prefix("exit ") {
        return code
            .trim()
            .parse()
            .ok()
            .map(|code| ExecStatus::Exited { pid, code });
    }
    let rest = last.strip_prefix("error ")?;
    let (errno, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(ExecStatus::Failed {
        pid,
        errno: errno.parse().unwrap_or(0),
        message: message.to_string(),
    })
}

/// Runs the helper; returns the process exit code.
pub fn run(args: &ExecArgs) -> i32 {
    // SAFETY: descriptor 3 was set up by the agent for us; it must not leak
    // into the exec process.
    let mut status = unsafe {
        libc::fcntl(STATUS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        std::fs::File::from_raw_fd(STATUS_FD)
    };
    let result = (|| -> Result<i32, (i32, String)> {
        libcrun_sys::cgroup::prepare_process().map_err(|e| {
            (
                e.raw_os_error().unwrap_or(0),
                format!("preparing cgroups: {e}"),
            )
        })?;
        let _ = libcrun_sys::log_to_file(&args.root.join("exec").join("libcrun.log"));
        let mut builder = libcrun_sys::Context::builder(args.root.join("libcrun"))
            .pid_file(format!("/proc/self/fd/{STATUS_FD}"));
        if let Some(socket) = &args.console_socket {
            builder = builder.console_socket(socket);
        }
        let libcrun_error = |e: libcrun_sys::Error| (e.errno().unwrap_or(0), e.to_string());
        let context = builder.build().map_err(libcrun_error)?;
        context.exec(&args.id, &args.process).map_err(libcrun_error)
    })();
    let line = match result {
        Ok(code) => format!("\nexit {code}\n"),
        Err((errno, message)) => format!("\nerror {errno} {}\n", message.replace('\n', " ")),
    };
    match status.write_all(line.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_stream_parsing() {
        assert_eq!(parse_pid("12"), Some(12));
        assert_eq!(parse_pid("12\nexit 0\n"), Some(12));
        assert_eq!(parse_pid("\nerror 2 x\n"), None);
        assert_eq!(
            parse_status("12\nexit 3\n"),
            Some(ExecStatus::Exited {
                pid: Some(12),
                code: 3
            })
        );
        assert_eq!(
            parse_status("\nerror 2 exec failed: no such file\n"),
            Some(ExecStatus::Failed {
                pid: None,
                errno: 2,
                message: "exec failed: no such file".into()
            })
        );
        assert_eq!(parse_status("12"), None);
        assert_eq!(parse_status(""), None);
    }
}
