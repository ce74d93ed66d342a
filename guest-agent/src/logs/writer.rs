//! Writing log files, with size-based rotation. Synchronous: it runs in the
//! single-threaded monitor process.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::format::{HEADER_LEN, Header};
use super::{CURRENT_FILE, Stream};
use crate::model::LogConfig;

/// The longest entry content; longer lines are split into partial entries.
const MAX_CONTENT: usize = 16 * 1024;
/// Buffer size of the current file.
const BUFFER: usize = 64 * 1024;

/// Writes a container's output to its log directory.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    config: LogConfig,
    out: BufWriter<File>,
    /// Size of the current file, buffered bytes included.
    size: u64,
    /// The sequence numbers of the rotated files there are, oldest first;
    /// at most `max_files - 1`.
    rotated: VecDeque<u64>,
    /// The sequence number of the next rotated file.
    next: u64,
}

impl LogWriter {
    /// Opens the current log file of `dir`, appending to it if it exists.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<LogWriter> {
        let file = open_current(dir)?;
        let size = file.metadata()?.len();
        let rotated: VecDeque<u64> = super::list(dir)?
            .iter()
            .filter_map(|f| super::rank(f.path.file_name()?.as_bytes()))
            .filter(|rank| *rank != u64::MAX)
            .collect();
        let mut writer = LogWriter {
            dir: dir.to_owned(),
            config,
            out: BufWriter::with_capacity(BUFFER, file),
            size,
            next: rotated.back().map_or(1, |last| last + 1),
            rotated,
        };
        writer.delete_beyond_kept()?;
        Ok(writer)
    }

    /// Logs a chunk of `stream`'s output read at `now`: one entry per line,
    /// lines longer than 16 KiB split into pieces, and the bytes after the
    /// last newline as a partial entry right away.
    pub fn write(&mut self, stream: Stream, data: &[u8], now: SystemTime) -> io::Result<()> {
        let mut header = Header::new(now, stream);
        let mut rest = data;
        while !rest.is_empty() {
            let window = &rest[..rest.len().min(MAX_CONTENT + 1)];
            let (content, partial, taken) = match memchr::memchr(b'\n', window) {
                Some(newline) => (&rest[..newline], false, newline + 1),
                None => {
                    let len = window.len().min(MAX_CONTENT);
                    (&rest[..len], true, len)
                }
            };
            self.entry(header.tagged(partial), content)?;
            rest = &rest[taken..];
        }
        Ok(())
    }

    /// Writes out the buffered entries.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn entry(&mut self, header: &[u8], content: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size >= self.config.max_size_bytes {
            self.rotate()?;
        }
        self.out.write_all(header)?;
        self.out.write_all(content)?;
        self.out.write_all(b"\n")?;
        self.size += (HEADER_LEN + content.len() + 1) as u64;
        Ok(())
    }

    /// Renames the current file to the next sequence number, deletes the
    /// oldest rotated file beyond the kept number, and starts a new current
    /// file: one rename and at most one deletion.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let current = self.dir.join(CURRENT_FILE);
        if self.kept() == 0 {
            fs::remove_file(&current)?;
        } else {
            fs::rename(&current, self.rotated_path(self.next))?;
            self.rotated.push_back(self.next);
            self.next += 1;
            self.delete_beyond_kept()?;
        }
        // The buffer is empty: only the file changes.
        *self.out.get_mut() = open_current(&self.dir)?;
        self.size = 0;
        Ok(())
    }

    /// Deletes the oldest rotated files beyond the kept number.
    fn delete_beyond_kept(&mut self) -> io::Result<()> {
        while self.rotated.len() > self.kept() {
            if let Some(oldest) = self.rotated.pop_front() {
                ignore_missing(fs::remove_file(self.rotated_path(oldest)))?;
            }
        }
        Ok(())
    }

    /// Rotated files kept, at most.
    fn kept(&self) -> usize {
        self.config.max_files.saturating_sub(1) as usize
    }

    fn rotated_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{CURRENT_FILE}.{n}"))
    }
}

fn open_current(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CURRENT_FILE))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::format::parse_line;
    use super::super::{LogEntry, log_files};
    use super::*;

    fn entries(path: &Path) -> Vec<LogEntry> {
        let text = bytes::Bytes::from(fs::read(path).unwrap());
        let mut entries = Vec::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &text) {
            entries.push(parse_line(text.slice(start..=end)).expect("a valid line"));
            start = end + 1;
        }
        assert_eq!(start, text.len(), "ends with a newline");
        entries
    }

    fn config(max_size_bytes: u64, max_files: u32) -> LogConfig {
        LogConfig {
            max_size_bytes,
            max_files,
        }
    }

    #[test]
    fn splits_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1 << 30, 2)).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let long = vec![b'x'; 2 * MAX_CONTENT + 5];
        let mut chunk = b"one\n\ntwo\r\n".to_vec();
        chunk.extend_from_slice(&long);
        chunk.extend_from_slice(b"\nprompt> ");
        writer.write(Stream::Stdout, &chunk, now).unwrap();
        writer.write(Stream::Stderr, b"", now).unwrap();
        writer.write(Stream::Stderr, b"err", now).unwrap();
        writer.flush().unwrap();

        let got = entries(&dir.path().join(CURRENT_FILE));
        let pieces: Vec<(Stream, &[u8], bool)> = got
            .iter()
            .map(|e| (e.stream, &e.data[..], e.partial))
            .collect();
        let mut long_end = long[2 * MAX_CONTENT..].to_vec();
        long_end.push(b'\n');
        assert_eq!(
            pieces,
            [
                (Stream::Stdout, &b"one\n"[..], false),
                (Stream::Stdout, b"\n", false),
                (Stream::Stdout, b"two\r\n", false),
                (Stream::Stdout, &long[..MAX_CONTENT], true),
                (Stream::Stdout, &long[MAX_CONTENT..2 * MAX_CONTENT], true),
                (Stream::Stdout, &long_end, false),
                (Stream::Stdout, b"prompt> ", true),
                (Stream::Stderr, b"err", true),
            ]
        );
        assert!(got.iter().all(|e| e.time == now));

        // A line of exactly the limit is one entry.
        let mut exact = vec![b'y'; MAX_CONTENT];
        exact.push(b'\n');
        writer.write(Stream::Stdout, &exact, now).unwrap();
        drop(writer);
        let got = entries(&dir.path().join(CURRENT_FILE));
        assert_eq!(got.last().unwrap().data, exact);
        assert!(!got.last().unwrap().partial);
    }

    #[test]
    fn appends_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for text in ["a\n", "b\n"] {
            let mut writer = LogWriter::open(dir.path(), config(1 << 30, 2)).unwrap();
            writer.write(Stream::Stdout, text.as_bytes(), now).unwrap();
            writer.flush().unwrap();
        }
        let data: Vec<_> = entries(&dir.path().join(CURRENT_FILE))
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert_eq!(data, ["a\n", "b\n"]);
    }

    #[test]
    fn rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1010, 3)).unwrap();
        let now = SystemTime::now();
        // 50-byte lines: a file reaches 1010 bytes with its 21st line, and
        // is rotated before the 22nd. 90 lines make 4 full files and 6 lines
        // in the current one, and only the 2 newest full files are kept.
        for i in 0..90 {
            writer
                .write(Stream::Stdout, format!("line {i:04}\n").as_bytes(), now)
                .unwrap();
        }
        writer.flush().unwrap();
        let files = log_files(dir.path()).unwrap();
        assert_eq!(
            files,
            ["container.log.3", "container.log.4", "container.log"].map(|n| dir.path().join(n))
        );
        let sizes: Vec<_> = files
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .collect();
        assert_eq!(sizes, [21 * 50, 21 * 50, 6 * 50]);
        let data: Vec<_> = files
            .iter()
            .flat_map(|f| entries(f))
            .map(|e| e.data)
            .collect();
        let expected: Vec<_> = (42..90).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(data, expected);

        // Reopened, it goes on with the files there: lines 84..105 fill the
        // current file, rotated before line 105 to `.5`, and `.3` goes.
        drop(writer);
        let mut writer = LogWriter::open(dir.path(), config(1010, 3)).unwrap();
        for i in 90..106 {
            writer
                .write(Stream::Stdout, format!("line {i:04}\n").as_bytes(), now)
                .unwrap();
        }
        writer.flush().unwrap();
        let files = log_files(dir.path()).unwrap();
        assert_eq!(
            files,
            ["container.log.4", "container.log.5", "container.log"].map(|n| dir.path().join(n))
        );
        let data: Vec<_> = files
            .iter()
            .flat_map(|f| entries(f))
            .map(|e| e.data)
            .collect();
        let expected: Vec<_> = (63..106).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(data, expected);
    }

    #[test]
    fn a_rotation_leaves_the_kept_files_where_they_are() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(100, 100)).unwrap();
        let now = SystemTime::now();
        let ino = |name: &str| fs::metadata(dir.path().join(name)).unwrap().ino();
        // 47-byte entries: the fourth goes to a new file.
        for _ in 0..4 {
            writer.write(Stream::Stdout, b"first\n", now).unwrap();
        }
        writer.flush().unwrap();
        let first = ino("container.log.1");
        for i in 0..100 {
            writer
                .write(Stream::Stdout, format!("{i}\n").as_bytes(), now)
                .unwrap();
        }
        writer.flush().unwrap();
        // Each rotation renamed the current file only: the first rotated
        // file kept its name.
        assert_eq!(ino("container.log.1"), first);
        assert!(log_files(dir.path()).unwrap().len() > 20);
    }

    #[test]
    fn one_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(100, 1)).unwrap();
        let now = SystemTime::now();
        for i in 0..10 {
            writer
                .write(Stream::Stdout, format!("{i}\n").as_bytes(), now)
                .unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(
            log_files(dir.path()).unwrap(),
            [dir.path().join(CURRENT_FILE)]
        );
        let data: Vec<_> = entries(&dir.path().join(CURRENT_FILE))
            .into_iter()
            .map(|e| e.data)
            .collect();
        // 42-byte lines: a file holds three before it reaches 100 bytes.
        assert_eq!(data, ["9\n"]);
    }
}
