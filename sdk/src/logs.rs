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

/// A piece of a container's output: a line, or part of a long line.
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
    /// The bytes, with the trailing newline of a complete line.
    pub data: Bytes,
    /// When the agent read it (with [`LogOptions::timestamps`]).
    #[serde(with = "humantime_serde")]
    pub time: Option<SystemTime>,
    /// The line goes on in the next chunk of the same stream.
    pub partial: bool,
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
