//! Container logs where the kubelet reads them: `log_directory/log_path`
//! of the pod and the container, in the CRI format
//! (`TIME STREAM P|F MESSAGE`).
//!
//! One writer task per started container follows the container's output
//! through crun-shimd's LogService and appends it to the file; it ends once
//! the container has exited and its output is written. The file is the
//! writer's alone; ReopenContainerLog makes it reopen the path (after the
//! kubelet rotated it). The output itself is held by crun-shimd's agent,
//! so a writer that died with the CRI server is resumed after the last
//! line in the file ([`Writers::resume`]) and nothing is lost or doubled.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::CriResult;
use crate::{ContainerRuntime, LogChunk, LogOptions, OutputStream};

/// A request to reopen the log file, answered when done.
type Reopen = oneshot::Sender<io::Result<()>>;

/// The log writers of the running containers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Writers {
    inner: Arc<Mutex<HashMap<String, Writer>>>,
}

/// The handle of one writer task.
#[derive(Debug)]
struct Writer {
    reopen: mpsc::Sender<Reopen>,
    done: watch::Receiver<bool>,
}

impl Writers {
    /// Starts writing the output of container `id` to `path`, from its
    /// start (or after `after`, the time of the last line already there).
    /// The file exists when this returns (the kubelet may open it at once).
    /// A writer already running for `id` is kept.
    pub(crate) async fn start(
        &self,
        runtime: ContainerRuntime,
        id: &str,
        path: PathBuf,
        after: Option<SystemTime>,
    ) -> io::Result<()> {
        let file = open(&path).await?;
        let mut writers = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if writers.get(id).is_some_and(|w| !*w.done.borrow()) {
            return Ok(());
        }
        let (reopen_tx, reopen_rx) = mpsc::channel(1);
        let (done_tx, done_rx) = watch::channel(false);
        writers.insert(
            id.to_string(),
            Writer {
                reopen: reopen_tx,
                done: done_rx,
            },
        );
        let id = id.to_string();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = copy(&runtime, &id, &path, file, after, reopen_rx).await {
                tracing::warn!(container = %id, path = %path.display(), "log writer: {e}");
            }
            let _ = done_tx.send(true);
            let mut writers = inner.lock().unwrap_or_else(|e| e.into_inner());
            if writers.get(&id).is_some_and(|w| *w.done.borrow()) {
                writers.remove(&id);
            }
        });
        Ok(())
    }

    /// Resumes the writer of a container that was started before this
    /// server (after a restart): from the last line in its file.
    pub(crate) async fn resume(
        &self,
        runtime: ContainerRuntime,
        id: &str,
        path: PathBuf,
    ) -> io::Result<()> {
        let after = last_time(&path);
        self.start(runtime, id, path, after).await
    }

    /// Waits until the writer of `id` (if any) has written everything, at
    /// most `limit`: a container that exited has its whole output in the
    /// file before its status says so.
    pub(crate) async fn flushed(&self, id: &str, limit: std::time::Duration) {
        let done = {
            let writers = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            writers.get(id).map(|w| w.done.clone())
        };
        if let Some(mut done) = done {
            let _ = tokio::time::timeout(limit, done.wait_for(|d| *d)).await;
        }
    }

    /// Reopens the log file of `id`. `None` when no writer runs for it.
    pub(crate) async fn reopen(&self, id: &str) -> Option<io::Result<()>> {
        let sender = {
            let writers = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            writers.get(id).map(|w| w.reopen.clone())?
        };
        let (tx, rx) = oneshot::channel();
        sender.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// Copies the output of `id` to `path` until it ends.
async fn copy(
    runtime: &ContainerRuntime,
    id: &str,
    path: &Path,
    mut file: tokio::fs::File,
    after: Option<SystemTime>,
    mut reopen: mpsc::Receiver<Reopen>,
) -> CriResult<()> {
    let mut chunks = runtime
        .logs_stream(
            id,
            LogOptions {
                follow: true,
                since: after,
                ..Default::default()
            },
        )
        .await?;
    loop {
        tokio::select! {
            chunk = chunks.next() => match chunk {
                Some(chunk) => {
                    let chunk = chunk?;
                    if after.is_some_and(|a| chunk.time.is_some_and(|t| t <= a)) {
                        continue;
                    }
                    file.write_all(&format_line(&chunk)).await?;
                }
                None => break,
            },
            Some(done) = reopen.recv() => {
                file.flush().await?;
                let reopened = open(path).await;
                let _ = done.send(match reopened {
                    Ok(f) => {
                        file = f;
                        Ok(())
                    }
                    Err(e) => Err(e),
                });
            }
        }
    }
    file.flush().await?;
    Ok(())
}

/// Opens `path` for appending, creating it (and its directory).
async fn open(path: &Path) -> io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// `chunk` as CRI log lines: one per line of its data, the last tagged `P`
/// when it does not end the line.
fn format_line(chunk: &LogChunk) -> Vec<u8> {
    let time = humantime::format_rfc3339_nanos(chunk.time.unwrap_or_else(SystemTime::now));
    let stream = match chunk.stream {
        OutputStream::Stderr => "stderr",
        _ => "stdout",
    };
    let mut out = Vec::with_capacity(chunk.data.len() + 40);
    let mut rest: &[u8] = &chunk.data;
    while !rest.is_empty() {
        let (line, full, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        let tag = if full { 'F' } else { 'P' };
        out.extend_from_slice(format!("{time} {stream} {tag} ").as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out
}

/// The time of the last line of the CRI log at `path`, if any.
fn last_time(path: &Path) -> Option<SystemTime> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(64 << 10);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().find(|l| !l.is_empty())?;
    humantime::parse_rfc3339_weak(line.split(' ').next()?).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn chunk(stream: OutputStream, data: &str, partial: bool) -> LogChunk {
        LogChunk {
            stream,
            data: data.to_string().into(),
            time: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
            partial,
        }
    }

    #[test]
    fn lines_are_in_the_cri_format() {
        let full = format_line(&chunk(OutputStream::Stdout, "hello\n", false));
        assert_eq!(
            String::from_utf8(full).unwrap(),
            "2023-11-14T22:13:20.000000005Z stdout F hello\n"
        );
        let partial = format_line(&chunk(OutputStream::Stderr, "no newline", true));
        assert_eq!(
            String::from_utf8(partial).unwrap(),
            "2023-11-14T22:13:20.000000005Z stderr P no newline\n"
        );
        let two = format_line(&chunk(OutputStream::Stdout, "a\nb\n", false));
        assert_eq!(String::from_utf8(two).unwrap().lines().count(), 2);
    }

    #[test]
    fn the_last_time_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        assert_eq!(last_time(&path), None);
        let mut text = format_line(&chunk(OutputStream::Stdout, "one\n", false));
        let later = LogChunk {
            time: Some(UNIX_EPOCH + Duration::new(1_700_000_001, 7)),
            ..chunk(OutputStream::Stdout, "two\n", false)
        };
        text.extend(format_line(&later));
        std::fs::write(&path, text).unwrap();
        assert_eq!(last_time(&path), later.time);
    }
}
