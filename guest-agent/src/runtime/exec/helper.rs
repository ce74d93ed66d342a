//! Starting exec processes through the exec helper
//! (`crun-shim-monitor exec`, see `monitor::exec`), and reading how they
//! end from its structured status: the real backend's exec, as
//! `runtime::launch` is for runs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;

use crate::error::{Error, IoContext, Result};
use crate::model::ExitStatus;
use crate::monitor::exec::{ExecArgs, ExecStatus, STATUS_FD, parse_pid, parse_status};
use crate::runtime::backend::{ExecLaunch, ExecProcess, ExecStdio};
use crate::store::{self, Store};

/// How long to wait for the helper to report the process's pid.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a process's stderr is read when it did not start.
const MAX_STARTUP_STDERR: u64 = 64 * 1024;

/// Files of one exec (its process spec, its console socket), removed when
/// the exec ends or fails to start.
struct ExecFiles(Vec<PathBuf>);

impl Drop for ExecFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Starts the helper for `launch` and waits until the process runs (its
/// pid reported) or failed to start.
pub(crate) async fn start(
    store: Store,
    monitor_binary: PathBuf,
    launch: ExecLaunch,
) -> Result<ExecProcess> {
    let ExecLaunch {
        container_id,
        exec_id,
        process,
        stdin,
    } = launch;
    let tty = process.terminal().unwrap_or(false);
    let exec_dir = store.exec_dir();
    let base = format!("{container_id}.{exec_id}");
    let mut files = ExecFiles(Vec::new());
    let process_file = exec_dir.join(format!("{base}.json"));
    let json =
        serde_json::to_vec(&process).map_err(|e| Error::Internal(format!("process JSON: {e}")))?;
    files.0.push(process_file.clone());
    store::write_atomic(&process_file, &json)
        .context(|| format!("writing {}", process_file.display()))?;

    let console = if tty {
        let name = console_socket_name(&exec_dir, &base);
        let path = exec_dir.join(&name);
        files.0.push(path.clone());
        let listener = tokio::net::UnixListener::bind(&path)
            .context(|| format!("binding {}", path.display()))?;
        Some((name, listener))
    } else {
        None
    };

    let args = ExecArgs {
        root: store.root().to_path_buf(),
        id: container_id.clone(),
        process: process_file,
        console_socket: console.as_ref().map(|(name, _)| PathBuf::from(name)),
    };
    let (status_r, status_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("creating the status pipe", e.into()))?;
    let mut child = spawn(
        &monitor_binary,
        &args,
        &exec_dir,
        status_w,
        stdin && !tty,
        tty,
    )?;

    let mut status = tokio::fs::File::from(std::fs::File::from(status_r));
    let mut status_text = String::new();
    let mut chunk = [0u8; 256];
    let n = tokio::time::timeout(START_TIMEOUT, status.read(&mut chunk))
        .await
        .map_err(|_| {
            Error::DeadlineExceeded(format!("exec {exec_id}: no pid within {START_TIMEOUT:?}"))
        })?
        .context(|| "reading the exec status".into())?;
    status_text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    let Some(pid) = parse_pid(&status_text) else {
        status
            .read_to_string(&mut status_text)
            .await
            .context(|| "reading the exec status".into())?;
        let stderr = match child.stderr.take() {
            Some(stderr) => read_bounded(stderr).await,
            None => String::new(),
        };
        let _ = child.wait().await;
        return Err(not_started(
            &container_id,
            &exec_id,
            parse_status(&status_text),
            &stderr,
            &status_text,
        ));
    };

    let stdio = match console {
        Some((_, listener)) => ExecStdio::Terminal(Arc::new(receive_terminal(&listener).await?)),
        None => ExecStdio::Pipes {
            stdin: child
                .stdin
                .take()
                .map(|s| Box::pin(s) as std::pin::Pin<Box<_>>),
            stdout: Box::pin(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| Error::Internal("exec helper stdout".into()))?,
            ),
            stderr: Box::pin(
                child
                    .stderr
                    .take()
                    .ok_or_else(|| Error::Internal("exec helper stderr".into()))?,
            ),
        },
    };
    let exit = Box::pin(async move {
        let _files = files;
        let mut rest = String::new();
        let read = status.read_to_string(&mut rest).await;
        status_text.push_str(&rest);
        let _ = child.wait().await;
        match (read, parse_status(&status_text)) {
            (Ok(_), Some(ExecStatus::Exited { code })) => {
                Ok(ExitStatus::from_code(code, SystemTime::now()))
            }
            (Ok(_), Some(ExecStatus::Failed { errno, message })) => Err(Error::libcrun(
                format!("exec {exec_id}"),
                libcrun_sys::Error::Libcrun { errno, message },
            )),
            (Err(e), _) => Err(Error::io("reading the exec status", e)),
            (Ok(_), _) => Err(Error::Internal(format!(
                "exec {exec_id}: the helper ended without an exit status ({status_text:?})"
            ))),
        }
    });
    Ok(ExecProcess { pid, stdio, exit })
}

/// Starts the helper with the status pipe as its descriptor 3.
fn spawn(
    binary: &Path,
    args: &ExecArgs,
    dir: &Path,
    status: OwnedFd,
    stdin: bool,
    tty: bool,
) -> Result<Child> {
    let status_raw = status.as_raw_fd();
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args.to_args())
        .current_dir(dir)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if tty { Stdio::null() } else { Stdio::piped() })
        .stderr(if tty { Stdio::null() } else { Stdio::piped() })
        .kill_on_drop(false);
    // SAFETY: dup2 is async-signal-safe; it gives the helper the status
    // pipe as descriptor 3 (without close-on-exec).
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(status_raw, STATUS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .context(|| format!("starting {}", binary.display()))?;
    // Our copy of the write end closes, so that the helper's exit ends
    // the stream.
    drop(status);
    Ok(child)
}

/// The error of an exec whose process never ran, from the helper's
/// status: libcrun's own error, or (when the process failed to set itself
/// up in the container) what the process wrote on its stderr, which is
/// the caller's to fix.
fn not_started(
    container_id: &str,
    exec_id: &str,
    status: Option<ExecStatus>,
    stderr: &str,
    raw: &str,
) -> Error {
    match status {
        Some(ExecStatus::Failed { errno, message }) => Error::libcrun(
            format!("exec in container {container_id}"),
            libcrun_sys::Error::Libcrun { errno, message },
        ),
        Some(ExecStatus::NotStarted) => Error::FailedPrecondition(format!(
            "exec in container {container_id}: the process did not start: {}",
            stderr.trim()
        )),
        _ => Error::Internal(format!("exec {exec_id}: the helper said {raw:?}")),
    }
}

/// The start of a stream, as text.
async fn read_bounded(stream: impl AsyncRead + Unpin) -> String {
    let mut text = String::new();
    let _ = stream
        .take(MAX_STARTUP_STDERR)
        .read_to_string(&mut text)
        .await;
    text
}

/// Accepts libcrun's connection on the console socket and receives the
/// terminal master, non-blocking.
async fn receive_terminal(listener: &tokio::net::UnixListener) -> Result<AsyncFd<OwnedFd>> {
    let (stream, _) = tokio::time::timeout(START_TIMEOUT, listener.accept())
        .await
        .map_err(|_| Error::DeadlineExceeded("no terminal from libcrun".into()))?
        .context(|| "accepting on the console socket".into())?;
    let fd = loop {
        stream
            .readable()
            .await
            .context(|| "console socket".into())?;
        match stream.try_io(tokio::io::Interest::READABLE, || {
            crate::fdpass::recv_fd(stream.as_raw_fd())
        }) {
            Ok(Some(fd)) => break fd,
            Ok(None) => {
                return Err(Error::Internal(
                    "no terminal received on the console socket".into(),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Error::io("receiving the terminal", e)),
        }
    };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::io("terminal", e.into()))?;
    crate::fdpass::register(
        fd,
        tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
    )
    .context(|| "registering the terminal".into())
}

/// The name of an exec's console socket in `exec_dir`: `BASE.sock`, or,
/// when that path would not fit a socket address (108 bytes: 64-character
/// container ids such as Kubernetes' do not), a hash of it.
fn console_socket_name(exec_dir: &std::path::Path, base: &str) -> String {
    use std::hash::{Hash, Hasher};
    /// Room in `sockaddr_un.sun_path`, with its terminating NUL.
    const SUN_PATH: usize = 107;
    let name = format!("{base}.sock");
    if exec_dir.join(&name).as_os_str().len() <= SUN_PATH {
        return name;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    base.hash(&mut hasher);
    format!("{:016x}.sock", hasher.finish())
}

#[cfg(test)]
mod socket_name_tests {
    use super::console_socket_name;

    #[test]
    fn long_console_socket_names_are_hashed_to_fit() {
        let dir = std::path::Path::new("/var/lib/libcrun-shim/agent/exec");
        assert_eq!(console_socket_name(dir, "web.e1"), "web.e1.sock");
        let long = format!("{}.{}", "a".repeat(64), "b".repeat(24));
        let name = console_socket_name(dir, &long);
        assert!(dir.join(&name).as_os_str().len() <= 107, "{name}");
        assert_ne!(
            name,
            console_socket_name(dir, &format!("{}.c", "a".repeat(64)))
        );
    }
}
