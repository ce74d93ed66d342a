//! The standard streams of an exec process: its output copied into a
//! channel, its input (bytes, end of input, terminal size, signals)
//! applied from one.

use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::warn;

use super::{ExecInput, ExecOutput};
use crate::monitor::streams::resize;
use crate::runtime::Backend;

/// Where the process's stdin goes.
pub(super) enum StdinSink {
    /// A pipe.
    Pipe(Pin<Box<dyn AsyncWrite + Send>>),
    /// A terminal's master.
    Terminal(Arc<AsyncFd<OwnedFd>>),
}

/// Copies a pipe into the output channel.
pub(super) async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    tx: mpsc::Sender<ExecOutput>,
    wrap: fn(Bytes) -> ExecOutput,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    // Nobody listens: keep draining so the process never
                    // blocks on a full pipe.
                    while matches!(pipe.read(&mut buf).await, Ok(n) if n > 0) {}
                    return;
                }
            }
        }
    }
}

/// Copies a terminal master into the output channel until the terminal
/// closes (EIO once the last process holding it has exited).
pub(super) async fn pump_terminal(master: Arc<AsyncFd<OwnedFd>>, tx: mpsc::Sender<ExecOutput>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = master
            .async_io(tokio::io::Interest::READABLE, |fd| {
                nix::unistd::read(fd, &mut buf).map_err(std::io::Error::from)
            })
            .await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ = tx
                    .send(ExecOutput::Stdout(Bytes::copy_from_slice(&buf[..n])))
                    .await;
            }
        }
    }
}

/// Applies input to process `pid` until the sender is dropped; signals go
/// through `backend`.
pub(super) async fn feed_input(
    mut rx: mpsc::Receiver<ExecInput>,
    mut sink: Option<StdinSink>,
    pid: i32,
    backend: Arc<dyn Backend>,
) {
    while let Some(input) = rx.recv().await {
        match input {
            ExecInput::Stdin(data) => {
                let written = match &mut sink {
                    Some(StdinSink::Pipe(pipe)) => pipe.write_all(&data).await,
                    Some(StdinSink::Terminal(master)) => write_terminal(master, &data).await,
                    None => Ok(()),
                };
                // The process closed its stdin: drop what comes after.
                if written.is_err() {
                    sink = None;
                }
            }
            ExecInput::CloseStdin => match &sink {
                // End of input on a terminal is ^D at the start of a line.
                Some(StdinSink::Terminal(master)) => {
                    let _ = write_terminal(master, b"\x04").await;
                }
                _ => sink = None,
            },
            ExecInput::Resize(rows, cols) => {
                if let Some(StdinSink::Terminal(master)) = &sink {
                    resize(master.get_ref().as_raw_fd(), rows, cols);
                }
            }
            ExecInput::Signal(sig) => {
                if let Err(e) = backend.signal_process(pid, sig) {
                    warn!(pid, sig, error = %e, "cannot signal exec process");
                }
            }
        }
    }
}

async fn write_terminal(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = master
            .async_io(tokio::io::Interest::WRITABLE, |fd| {
                nix::unistd::write(fd, data).map_err(std::io::Error::from)
            })
            .await?;
        data = &data[n..];
    }
    Ok(())
}
