//! Container logs, stored in the Kubernetes CRI log format.
//!
//! A container's monitor process writes its stdout and stderr with
//! [`LogWriter`], one line per entry:
//!
//! ```text
//! 2026-11-28T12:00:00.123456789Z stdout F content
//! ```
//!
//! an RFC 3339 UTC timestamp with nanoseconds, the stream, `F` for a full
//! line (its newline ended it) or `P` for a partial piece (no newline yet,
//! or a piece of a long line), the raw bytes, then `\n`. The current file is
//! [`CURRENT_FILE`]; it is rotated by size to `container.log.N`, N the
//! rotation's sequence number (the higher, the newer), and the oldest file
//! beyond the kept number is deleted: a rotation is one rename and at most
//! one deletion, whatever the number of files kept. The agent reads them
//! back with [`read`].

mod format;
mod reader;
mod writer;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

pub use format::format_time;
pub use reader::{LogQuery, read};
pub use writer::LogWriter;

/// The name of the file being written; rotated ones add `.N`, N their
/// rotation's sequence number.
pub const CURRENT_FILE: &str = "container.log";

/// An output stream of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One log entry: a line, or a piece of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the monitor read it.
    pub time: SystemTime,
    /// The stream it was written to.
    pub stream: Stream,
    /// Exactly the bytes the container wrote, the trailing `\n` of a full
    /// line included: one stream's entries concatenated reproduce its
    /// output.
    pub data: Bytes,
    /// Whether the line goes on in the next entry of the stream.
    pub partial: bool,
}

/// The existing log files of `dir`, oldest first (the current file last);
/// none when `dir` does not exist.
pub fn log_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(list(dir)?.into_iter().map(|f| f.path).collect())
}

/// A log file found in a directory.
#[derive(Debug, PartialEq, Eq)]
struct LogFile {
    path: PathBuf,
    ino: u64,
}

/// The log files of `dir` with their inodes, oldest first.
fn list(dir: &Path) -> io::Result<Vec<LogFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(rank) = rank(entry.file_name().as_bytes()) else {
            continue;
        };
        // A file rotated out meanwhile is not listed.
        match entry.metadata() {
            Ok(meta) if !meta.is_file() => {}
            Ok(meta) => files.push((
                rank,
                LogFile {
                    path: entry.path(),
                    ino: meta.ino(),
                },
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    files.sort_unstable_by_key(|&(rank, _)| rank);
    Ok(files.into_iter().map(|(_, file)| file).collect())
}

/// Where the log file `name` comes in time: the rotation sequence number of
/// a rotated file, `u64::MAX` for the current one; `None` for other files.
fn rank(name: &[u8]) -> Option<u64> {
    let suffix = name.strip_prefix(CURRENT_FILE.as_bytes())?;
    if suffix.is_empty() {
        return Some(u64::MAX);
    }
    let digits = suffix.strip_prefix(b".")?;
    // Plain numbers only: not "01" nor "+1".
    if digits.first() == Some(&b'0') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .filter(|n| *n != u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks() {
        assert_eq!(rank(b"container.log"), Some(u64::MAX));
        assert_eq!(rank(b"container.log.1"), Some(1));
        assert_eq!(rank(b"container.log.12"), Some(12));
        for name in [
            "container.log.",
            "container.log.0",
            "container.log.01",
            "container.log.+1",
            "container.log.1x",
            "container.logs",
            "container.log.99999999999999999999",
            "other",
        ] {
            assert_eq!(rank(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "container.log",
            "container.log.10",
            "container.log.2",
            "container.log.1",
            "junk",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<_> = log_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "container.log.1",
                "container.log.2",
                "container.log.10",
                "container.log"
            ]
        );
        assert!(log_files(&dir.path().join("missing")).unwrap().is_empty());
    }
}
