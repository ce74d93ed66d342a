//! Attaching to the standard streams of a container's main process, or of
//! a detached exec process, through its monitor's attach socket (see
//! `monitor::streams`), and listing a container's processes.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::Runtime;
use super::exec::ExecOutput;
use crate::error::{Error, Result};
use crate::model::{ExitStatus, Operation, Status};
use crate::monitor::streams::{
    ATTACH_SOCKET, FRAME_CLOSE_STDIN, FRAME_RESIZE, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT, frame,
};
use crate::store::PROCESSES_DIR;

/// Input for an attached process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachInput {
    /// Bytes for stdin.
    Stdin(Bytes),
    /// Close stdin (EOF; ^D on a terminal).
    CloseStdin,
    /// New terminal size (rows, cols).
    Resize(u16, u16),
}

/// An attached process.
#[derive(Debug)]
pub struct AttachSession {
    /// Its output from now on; ends when its output is closed.
    pub output: mpsc::Receiver<ExecOutput>,
    /// Send input here; dropping it detaches without closing stdin.
    pub input: mpsc::Sender<AttachInput>,
    /// Its exit status, once it exited (after `output` ended).
    pub exit: oneshot::Receiver<Result<ExitStatus>>,
}

impl Runtime {
    /// Attaches to the streams of a container's main process (`exec_id`
    /// `None`) or of a detached exec process.
    pub async fn attach(
        self: &Arc<Self>,
        container_id: &str,
        exec_id: Option<&str>,
    ) -> Result<AttachSession> {
        let entry = self.entry(container_id)?;
        let socket: PathBuf = match exec_id {
            None => {
                entry
                    .snapshot()
                    .status
                    .check(container_id, Operation::Attach)?;
                self.store.container_dir(container_id).join(ATTACH_SOCKET)
            }
            Some(exec_id) => {
                if self.inspect_process(container_id, exec_id)?.exit.is_some() {
                    return Err(Error::FailedPrecondition(format!(
                        "process {exec_id} in container {container_id} has exited"
                    )));
                }
                self.store
                    .container_dir(container_id)
                    .join(PROCESSES_DIR)
                    .join(exec_id)
                    .join(ATTACH_SOCKET)
            }
        };
        let stream = connect_unix(&socket).await.map_err(|e| {
            Error::FailedPrecondition(format!(
                "cannot attach to {container_id}{}: {e}",
                exec_id.map(|e| format!(" exec {e}")).unwrap_or_default()
            ))
        })?;
        let (mut reader, mut writer) = stream.into_split();
        let (out_tx, out_rx) = mpsc::channel(64);
        let (in_tx, mut in_rx) = mpsc::channel::<AttachInput>(16);
        let (exit_tx, exit_rx) = oneshot::channel();

        tokio::spawn(async move {
            while let Some(input) = in_rx.recv().await {
                let bytes = match input {
                    AttachInput::Stdin(data) => frame(FRAME_STDIN, &data),
                    AttachInput::CloseStdin => frame(FRAME_CLOSE_STDIN, b""),
                    AttachInput::Resize(rows, cols) => {
                        let mut size = rows.to_be_bytes().to_vec();
                        size.extend_from_slice(&cols.to_be_bytes());
                        frame(FRAME_RESIZE, &size)
                    }
                };
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });

        let runtime = Arc::clone(self);
        let container_id = container_id.to_string();
        let exec_id = exec_id.map(str::to_string);
        let run = entry.snapshot().run;
        tokio::spawn(async move {
            let mut header = [0u8; 5];
            loop {
                if reader.read_exact(&mut header).await.is_err() {
                    break;
                }
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                let mut payload = vec![0u8; len];
                if reader.read_exact(&mut payload).await.is_err() {
                    break;
                }
                let out = match header[0] {
                    FRAME_STDOUT => ExecOutput::Stdout(Bytes::from(payload)),
                    FRAME_STDERR => ExecOutput::Stderr(Bytes::from(payload)),
                    _ => continue,
                };
                if out_tx.send(out).await.is_err() {
                    // Detached: leave the process alone.
                    return;
                }
            }
            drop(out_tx);
            let exit = match exec_id {
                None => match runtime.entry(&container_id) {
                    Ok(entry) => entry.wait_exit(run, None).await.ok_or_else(|| {
                        Error::NotFound(format!("container {container_id} was deleted"))
                    }),
                    Err(e) => Err(e),
                },
                Some(exec_id) => runtime.wait_process(&container_id, &exec_id).await,
            };
            let _ = exit_tx.send(exit);
        });
        Ok(AttachSession {
            output: out_rx,
            input: in_tx,
            exit: exit_rx,
        })
    }

    /// The processes of a container (host pids, in order), with the
    /// detached exec process each is, if any.
    pub async fn list_processes(&self, id: &str) -> Result<Vec<(i32, Option<String>)>> {
        let entry = self.entry(id)?;
        if entry.snapshot().status == Status::Stopped {
            return Ok(Vec::new());
        }
        let cid = id.to_string();
        let mut pids = self
            .call(format!("listing the processes of {id}"), move |b| {
                b.pids(&cid)
            })
            .await?;
        pids.sort_unstable();
        let execs = self.process_pids(id);
        Ok(pids
            .into_iter()
            .map(|pid| {
                let exec = execs
                    .iter()
                    .find(|(p, _)| *p == pid)
                    .map(|(_, e)| e.clone());
                (pid, exec)
            })
            .collect())
    }
}

/// Room in `sockaddr_un.sun_path`, without its terminating NUL.
const SUN_PATH: usize = 107;

/// Connects to the Unix socket at `path`, however long it is: a socket
/// address holds 107 bytes, and the directory of a container named by a
/// 64-character id (Kubernetes') under a deep root does not fit, so a long
/// path is reached through an `O_PATH` descriptor of its directory
/// (`/proc/self/fd/N/NAME`), held until the connection is made.
async fn connect_unix(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    if path.as_os_str().len() <= SUN_PATH {
        return tokio::net::UnixStream::connect(path).await;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return tokio::net::UnixStream::connect(path).await;
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    let stream = tokio::net::UnixStream::connect(&short).await;
    drop(dir);
    stream
}

#[cfg(test)]
mod tests {
    use super::connect_unix;

    #[tokio::test]
    async fn sockets_under_long_directories_are_reached() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d".repeat(100)).join("e".repeat(64));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("attach.sock");
        assert!(path.as_os_str().len() > 107);
        let listener = {
            // Bound as the monitor binds it: relative to its directory.
            let dir = std::fs::File::open(&dir).unwrap();
            let short = std::path::Path::new("/proc/self/fd")
                .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
                .join("attach.sock");
            tokio::net::UnixListener::bind(short).unwrap()
        };
        let (accepted, connected) = tokio::join!(listener.accept(), connect_unix(&path));
        accepted.unwrap();
        connected.unwrap();
    }
}
