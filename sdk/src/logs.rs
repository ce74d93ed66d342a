//! Containers' captured output.

use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which part of a container's log to read.
///
/// ```
/// use libcrun_shim::LogOptions;
///
/// let last_100 = LogOptions { tail: Some(100), ..Default::default() };
/// assert!(!last_100.follow);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogOptions {
    /// Keep reading new output until the container exits.
    pub follow: bool,
    /// Start with only the last `tail` lines.
    pub tail: Option<u64>,
    /// Only output written at or after this time.
    #[serde(with = "humantime_serde")]
    pub since: Option<SystemTime>,
    /// Only output written before this time (with `follow`, stop there).
    #[serde(with = "humantime_serde")]
    pub until: Option<SystemTime>,
    /// Fill in [`LogChunk::time`].
    pub timestamps: bool,
    /// Only this stream; both when `None`.
    pub stream: Option<OutputStream>,
}

/// A container's output stream.
///
/// ```
/// assert_eq!(libcrun_shim::OutputStream::Stderr.to_string(), "stderr");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output (and a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl std::fmt::Display for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        })
    }
}

/// A piece of a container's output: a line, or part of a long line (from
/// [`logs_stream_merged`](crate::ContainerRuntime::logs_stream_merged),
/// possibly several consecutive lines of one stream).
///
/// ```
/// use libcrun_shim::{LogChunk, OutputStream};
/// let chunk = LogChunk { stream: OutputStream::Stdout, data: "hi\n".into(), time: None, partial: false };
/// assert_eq!(&chunk.data[..], b"hi\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The stream it was written to.
    pub stream: OutputStream,
    /// The bytes, with the trailing newline of each complete line.
    pub data: Bytes,
    /// When the agent read it (with [`LogOptions::timestamps`]).
    #[serde(with = "humantime_serde")]
    pub time: Option<SystemTime>,
    /// The (last) line goes on in the next chunk of the same stream.
    pub partial: bool,
}

impl LogChunk {
    /// The lines of a chunk that may hold several (the agent merges the
    /// lines it read at the same time): one chunk per line, each complete
    /// one with its newline, the last one partial if this one is.
    pub(crate) fn lines(self) -> Lines {
        Lines { chunk: self, at: 0 }
    }
}

/// The lines of a [`LogChunk`], as chunks.
pub(crate) struct Lines {
    chunk: LogChunk,
    /// Where the next line starts.
    at: usize,
}

impl Iterator for Lines {
    type Item = LogChunk;

    fn next(&mut self) -> Option<LogChunk> {
        let data = &self.chunk.data;
        let rest = data.get(self.at..).filter(|r| !r.is_empty())?;
        let (end, partial) = match memchr::memchr(b'\n', rest) {
            Some(newline) => (self.at + newline + 1, false),
            None => (data.len(), self.chunk.partial),
        };
        let line = if self.at == 0 && end == data.len() {
            data.clone()
        } else {
            data.slice(self.at..end)
        };
        self.at = end;
        Some(LogChunk {
            stream: self.chunk.stream,
            data: line,
            time: self.chunk.time,
            partial,
        })
    }
}

/// A container's collected output, as returned by
/// [`ContainerRuntime::logs`](crate::ContainerRuntime::logs) (decoded
/// lossily as UTF-8).
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// use libcrun_shim::LogOptions;
/// let logs = runtime.logs("my-container", LogOptions { tail: Some(100), ..Default::default() }).await?;
/// println!("Stdout:\n{}", logs.stdout);
/// println!("Stderr:\n{}", logs.stderr);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Logs {
    /// Everything read from stdout.
    pub stdout: String,
    /// Everything read from stderr.
    pub stderr: String,
}

/// A stream of log chunks, as returned by
/// [`ContainerRuntime::logs_stream`](crate::ContainerRuntime::logs_stream).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &'static [u8], partial: bool) -> LogChunk {
        LogChunk {
            stream: OutputStream::Stderr,
            data: Bytes::from_static(data),
            time: Some(SystemTime::UNIX_EPOCH),
            partial,
        }
    }

    fn lines(data: &'static [u8], partial: bool) -> Vec<(Vec<u8>, bool)> {
        chunk(data, partial)
            .lines()
            .inspect(|c| {
                assert_eq!(
                    (c.stream, c.time),
                    (OutputStream::Stderr, Some(SystemTime::UNIX_EPOCH))
                )
            })
            .map(|c| (c.data.to_vec(), c.partial))
            .collect()
    }

    #[test]
    fn a_merged_chunk_splits_into_its_lines() {
        assert_eq!(lines(b"one\n", false), [(b"one\n".to_vec(), false)]);
        assert_eq!(lines(b"par", true), [(b"par".to_vec(), true)]);
        assert_eq!(
            lines(b"a\n\nb\n", false),
            [
                (b"a\n".to_vec(), false),
                (b"\n".to_vec(), false),
                (b"b\n".to_vec(), false)
            ]
        );
        assert_eq!(
            lines(b"a\nrest", true),
            [(b"a\n".to_vec(), false), (b"rest".to_vec(), true)]
        );
        assert!(lines(b"", false).is_empty());
    }
}
