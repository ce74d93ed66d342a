//! Segment files: `events-<first>.jsonl`, one event per line, as JSON.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;
use tracing::warn;

use crate::error::{IoContext, Result};
use crate::model::Event;

/// Read buffer of a subscriber replaying a segment.
const READ_BUFFER: usize = 64 << 10;

/// One segment file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    /// The sequence of its first event, in its name.
    pub(super) first: u64,
    /// Its size.
    pub(super) bytes: u64,
}

/// The path of the segment starting at `first`.
pub(super) fn path(dir: &Path, first: u64) -> PathBuf {
    dir.join(name(first))
}

fn name(first: u64) -> String {
    format!("events-{first}.jsonl")
}

/// The first sequence of a segment named `file_name`; `None` for other
/// files.
fn parse_name(file_name: &str) -> Option<u64> {
    let first = file_name
        .strip_prefix("events-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()?;
    (first > 0 && name(first) == file_name).then_some(first)
}

/// The segments in `dir`, oldest first.
pub(super) fn list(dir: &Path) -> Result<VecDeque<Segment>> {
    let context = || format!("listing {}", dir.display());
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).context(context)? {
        let entry = entry.context(context)?;
        let Some(first) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        let bytes = entry.metadata().context(context)?.len();
        segments.push(Segment { first, bytes });
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments.into())
}

/// Creates the segment starting at `first`, for appending.
pub(super) fn create(dir: &Path, first: u64) -> Result<File> {
    let path = path(dir, first);
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .context(|| format!("creating {}", path.display()))
}

/// Opens (creating it if needed) the newest segment, starting at `first`,
/// for appending, and cuts what follows its last whole event. Returns the
/// file, the segment and the last sequence (`first - 1` if it holds no
/// event).
pub(super) fn recover(dir: &Path, first: u64) -> Result<(File, Segment, u64)> {
    let path = path(dir, first);
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    let (last, whole) =
        last_whole_event(&file, first).context(|| format!("reading {}", path.display()))?;
    let len = file
        .metadata()
        .context(|| format!("reading {}", path.display()))?
        .len();
    if len > whole {
        warn!(path = %path.display(), bytes = len - whole, "cutting a torn end from the event journal");
        file.set_len(whole)
            .context(|| format!("cutting the torn end of {}", path.display()))?;
    }
    let segment = Segment {
        first,
        bytes: whole,
    };
    Ok((file, segment, last))
}

/// The highest sequence in the segment `file` starting at `first` (at
/// least `first - 1`) and the offset just after its last whole event.
fn last_whole_event(file: &File, first: u64) -> io::Result<(u64, u64)> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut last, mut whole, mut offset) = (first - 1, 0, 0);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok((last, whole));
        }
        offset += n as u64;
        if let Some(event) = parse_line(&line) {
            last = last.max(event.sequence);
            whole = offset;
        }
    }
}

/// The event of a whole line (ending with a newline), `None` for a torn or
/// garbled one.
fn parse_line(line: &[u8]) -> Option<Event> {
    if line.ends_with(b"\n") {
        serde_json::from_slice(line).ok()
    } else {
        None
    }
}

/// Reads a segment's events, for a subscriber.
pub(super) struct Reader {
    path: PathBuf,
    lines: tokio::io::BufReader<tokio::fs::File>,
    line: Vec<u8>,
}

impl Reader {
    /// Opens the segment at `path`.
    pub(super) async fn open(path: &Path) -> io::Result<Reader> {
        let file = tokio::fs::File::open(path).await?;
        Ok(Reader {
            path: path.to_path_buf(),
            lines: tokio::io::BufReader::with_capacity(READ_BUFFER, file),
            line: Vec::new(),
        })
    }

    /// The next event, skipping garbled lines; `None` at the end, or at a
    /// line still being written.
    pub(super) async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            self.line.clear();
            self.lines
                .read_until(b'\n', &mut self.line)
                .await
                .context(|| format!("reading {}", self.path.display()))?;
            if !self.line.ends_with(b"\n") {
                return Ok(None);
            }
            if let Some(event) = parse_line(&self.line) {
                return Ok(Some(event));
            }
        }
    }
}
