//! The exec helper: runs one process inside a running container through
//! libcrun (which forks, hence a separate single-threaded process) and
//! reports on descriptor 3.
//!
//! Its stdin, stdout and stderr are the exec process's (pipes to the agent,
//! or /dev/null with a terminal, whose master goes to the console socket).
//! Descriptor 3 is the status pipe: libcrun writes the process's pid to it
//! (as its pid file), then the helper appends a newline and how the exec
//! ended as one JSON line ([`ExecStatus`]). Signals sent to the helper are
//! forwarded to the process by libcrun.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

/// How an exec ended, as the helper reports it on the status pipe (one
/// JSON line after the pid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    /// The process ran and exited with this code (128+N when killed by
    /// signal N).
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// libcrun failed, with its errno (0 if none) and message.
    Failed {
        /// libcrun's errno (0 if none).
        errno: i32,
        /// libcrun's message.
        message: String,
    },
    /// The process failed to set itself up in the container (its
    /// executable or working directory missing, say) and said why on its
    /// own stderr; libcrun only saw it exit.
    NotStarted,
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

/// Parses the whole status stream: the pid, then the status line.
pub fn parse_status(stream: &str) -> Option<ExecStatus> {
    let last = stream.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str(last).ok()
}

/// Runs the helper; returns the process exit code.
pub fn run(args: &ExecArgs) -> i32 {
    // SAFETY: descriptor 3 was set up by the agent for us; it must not leak
    // into the exec process.
    let mut status = unsafe {
        libc::fcntl(STATUS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        std::fs::File::from_raw_fd(STATUS_FD)
    };
    let libcrun_failed = |e: libcrun_sys::Error| match e {
        libcrun_sys::Error::Unreported { .. } => ExecStatus::NotStarted,
        e => ExecStatus::Failed {
            errno: e.errno().unwrap_or(0),
            message: e.to_string(),
        },
    };
    let result = (|| -> Result<i32, ExecStatus> {
        libcrun_sys::cgroup::prepare_process().map_err(|e| ExecStatus::Failed {
            errno: e.raw_os_error().unwrap_or(0),
            message: format!("preparing cgroups: {e}"),
        })?;
        let _ = libcrun_sys::log_to_file(&args.root.join("exec").join("libcrun.log"));
        let mut builder = libcrun_sys::Context::builder(args.root.join("libcrun"))
            .pid_file(format!("/proc/self/fd/{STATUS_FD}"));
        if let Some(socket) = &args.console_socket {
            builder = builder.console_socket(socket);
        }
        let context = builder.build().map_err(libcrun_failed)?;
        context
            .exec(&args.id, &args.process)
            .map_err(libcrun_failed)
    })();
    let report = match result {
        Ok(code) => ExecStatus::Exited { code },
        Err(status) => status,
    };
    let line = match serde_json::to_string(&report) {
        Ok(json) => format!("\n{json}\n"),
        Err(_) => return 1,
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
        assert_eq!(parse_pid("12\n{}\n"), Some(12));
        assert_eq!(parse_pid("\n{\"not_started\":null}\n"), None);
        for status in [
            ExecStatus::Exited { code: 3 },
            ExecStatus::Failed {
                errno: 2,
                message: "exec failed:\nno such file".into(),
            },
            ExecStatus::NotStarted,
        ] {
            let stream = format!("12\n{}\n", serde_json::to_string(&status).unwrap());
            assert_eq!(parse_status(&stream), Some(status));
        }
        assert_eq!(parse_status("12"), None);
        assert_eq!(parse_status(""), None);
    }
}
