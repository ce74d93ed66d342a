//! Reading log files back, and following them as they grow and rotate.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use inotify::{EventStream, Inotify, WatchMask};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::format::{self, HEADER_LEN, TAG_AT};
use super::{CURRENT_FILE, LogEntry, LogFile, Stream, list};

/// Data in one batch of entries, at most (plus one entry).
const BATCH_BYTES: usize = 256 * 1024;
/// Entries in one batch, at most.
const BATCH_ENTRIES: usize = 1024;
/// Batches sent and not yet received, at most.
const CHANNEL_BATCHES: usize = 4;
/// Bytes read from a file at once.
const READ_CHUNK: usize = 256 * 1024;
/// The longest line kept while looking for its end; the writer's lines are
/// far shorter, so a longer one is garbage and skipped.
const MAX_LINE: usize = 64 * 1024;
/// Bytes read at once when scanning a file backwards.
const SCAN_BLOCK: usize = 64 * 1024;
/// The data of one entry made of merged lines, at most (plus one line).
const MERGED_BYTES: usize = 64 * 1024;
/// How often a follower looks for new data without being told.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A follower's inotify events.
type Events = EventStream<[u8; 4096]>;

/// What to read of a container's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// Go on with new entries as they are written, until the container has
    /// exited.
    pub follow: bool,
    /// Start with the last lines of the selected streams only: a line is the
    /// entries of a stream up to one that is not partial (and a stream's
    /// unfinished last line counts). `since` and `until` apply after.
    pub tail: Option<u64>,
    /// Only entries written at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries written before this time; the stream ends at the first
    /// entry that is not, and when following, at this time.
    pub until: Option<SystemTime>,
    /// Read standard output.
    pub stdout: bool,
    /// Read standard error.
    pub stderr: bool,
    /// Merge consecutive lines of a stream read at the same time into one
    /// entry (each complete line keeps its newline; only the last may be
    /// partial).
    pub merge_lines: bool,
}

impl LogQuery {
    /// Both streams from the first entry, one entry per line, not followed.
    pub fn everything() -> LogQuery {
        LogQuery {
            follow: false,
            tail: None,
            since: None,
            until: None,
            stdout: true,
            stderr: true,
            merge_lines: false,
        }
    }

    fn selects(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// Reads the logs in `dir`, oldest first, in batches. `finished` turns true
/// once the container has exited and all its output is written: a follower
/// then reads what is left and ends. Reading stops when the receiver is
/// dropped, and after an error (sent last). Must be called within a tokio
/// runtime.
pub fn read(
    dir: PathBuf,
    query: LogQuery,
    finished: watch::Receiver<bool>,
) -> mpsc::Receiver<io::Result<Vec<LogEntry>>> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    // The error goes out this way even when the reader was lost (a panic
    // on its blocking thread).
    let errors = tx.clone();
    tokio::spawn(async move {
        let mut reader = Some(Reader {
            dir,
            query,
            tx,
            batch: Vec::new(),
            batch_bytes: 0,
            merging: None,
            source: None,
        });
        if let Err(Stop::Io(e)) = run(&mut reader, finished).await {
            // Nobody to tell if the receiver is gone.
            let _ = errors.send(Err(e)).await;
        }
    });
    rx
}

/// Reads (and with `follow`, follows) the logs, then sends what is left.
/// The file work runs on a blocking thread, one hand-off per wake-up
/// (see [`on_blocking_thread`]).
async fn run(reader: &mut Option<Reader>, mut finished: watch::Receiver<bool>) -> Result<(), Stop> {
    let end = follow(reader, &mut finished).await;
    if matches!(end, Err(Stop::Closed)) || reader.is_none() {
        return end;
    }
    on_blocking_thread(reader, Reader::send).await?;
    end
}

/// Reads the logs up to their end, or with `follow` until the container
/// has exited, sending full batches as it goes.
async fn follow(
    reader: &mut Option<Reader>,
    finished: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    on_blocking_thread(reader, Reader::start).await?;
    let Some(Reader { query, dir, .. }) = reader.as_ref() else {
        return Err(Stop::Closed);
    };
    let query = *query;
    if !query.follow {
        return on_blocking_thread(reader, Reader::catch_up).await;
    }
    // Without a watch (inotify's limits reached...), the timer does.
    let mut events = Watch(watch(dir).ok());
    // None when too far off to matter.
    let deadline = query.until.and_then(|until| {
        Instant::now().checked_add(until.duration_since(SystemTime::now()).unwrap_or_default())
    });
    let mut last = false;
    loop {
        last |= *finished.borrow_and_update();
        on_blocking_thread(reader, |r| {
            r.catch_up()?;
            r.send()
        })
        .await?;
        if last {
            return Ok(());
        }
        let Some(Reader { tx, .. }) = reader.as_ref() else {
            return Err(Stop::Closed);
        };
        tokio::select! {
            () = tx.closed() => return Err(Stop::Closed),
            changed = finished.changed() => {
                // The sender is gone: nothing more will be written.
                last = changed.is_err();
            }
            () = changes(&mut events.0) => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = sleep_until(deadline) => last = true,
        }
    }
}

/// Runs `work` on the reader on a blocking thread: reading files blocks,
/// and a follower's whole catch-up (reads to the end of the file, the
/// rotation check, sending the batches) in one hand-off costs one thread
/// switch per wake-up instead of a few per read. `reader` is `None`
/// afterwards only when `work` panicked (the error says so).
async fn on_blocking_thread(
    reader: &mut Option<Reader>,
    work: impl FnOnce(&mut Reader) -> Result<(), Stop> + Send + 'static,
) -> Result<(), Stop> {
    let Some(mut taken) = reader.take() else {
        return Err(Stop::Closed);
    };
    let (back, result) = tokio::task::spawn_blocking(move || {
        let result = work(&mut taken);
        (taken, result)
    })
    .await
    .map_err(|e| Stop::Io(io::Error::other(e)))?;
    *reader = Some(back);
    result
}

/// Why reading ends before the end of the logs.
enum Stop {
    /// Reading failed.
    Io(io::Error),
    /// An entry reached the query's `until`.
    Until,
    /// The receiver is gone.
    Closed,
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// A log reading in progress.
struct Reader {
    dir: PathBuf,
    query: LogQuery,
    tx: mpsc::Sender<io::Result<Vec<LogEntry>>>,
    /// Entries not sent yet.
    batch: Vec<LogEntry>,
    /// Their data's size.
    batch_bytes: usize,
    /// The entry lines are being merged into, not in the batch yet.
    merging: Option<Merging>,
    /// The file being read.
    source: Option<Source>,
}

impl Reader {
    /// Opens the file to start with: the oldest, or where the tail starts.
    fn start(&mut self) -> Result<(), Stop> {
        let start = match self.query.tail {
            Some(lines) => tail_start(&self.dir, lines, self.query)?,
            None => open_next(&self.dir, None)?,
        };
        self.source = start.map(Source::new);
        Ok(())
    }

    /// Reads up to the end of the current file, through the files rotated
    /// since the last call.
    fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            if self.source.is_none() {
                self.source = open_next(&self.dir, None)?.map(Source::new);
            }
            let Some(ino) = self.source.as_ref().map(|s| s.ino) else {
                return Ok(());
            };
            self.read_to_end()?;
            if self.is_current(ino)? {
                return Ok(());
            }
            // Rotated: what was written before that, then the newer file.
            self.read_to_end()?;
            match open_next(&self.dir, Some(ino))?.map(Source::new) {
                Some(next) => self.source = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn read_to_end(&mut self) -> Result<(), Stop> {
        loop {
            let Some(source) = self.source.as_mut() else {
                return Ok(());
            };
            let Some(lines) = source.read_lines()? else {
                return Ok(());
            };
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &lines) {
                if !self.merge(&lines[start..=end]) {
                    if let Some(entry) = format::parse_line(lines.slice(start..=end)) {
                        self.emit(entry, &lines[start..])?;
                    }
                }
                start = end + 1;
            }
        }
    }

    /// Takes `entry`, parsed from `line` (its header first).
    fn emit(&mut self, entry: LogEntry, line: &[u8]) -> Result<(), Stop> {
        if self.query.until.is_some_and(|until| entry.time >= until) {
            return Err(Stop::Until);
        }
        if !self.query.selects(entry.stream)
            || self.query.since.is_some_and(|since| entry.time < since)
        {
            return Ok(());
        }
        self.close_merged();
        if self.batch_full() {
            self.send()?;
        }
        if self.query.merge_lines && !entry.partial {
            // The lines after it with the same header join it.
            let mut key = [0; TAG_AT];
            key.copy_from_slice(&line[..TAG_AT]);
            let mut data = BytesMut::with_capacity(entry.data.len().max(4096));
            data.extend_from_slice(&entry.data);
            self.merging = Some(Merging {
                key,
                time: entry.time,
                stream: entry.stream,
                data,
                partial: false,
            });
        } else {
            self.batch_bytes += entry.data.len();
            self.batch.push(entry);
            if self.batch_full() {
                self.send()?;
            }
        }
        Ok(())
    }

    fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH_ENTRIES || self.batch_bytes >= BATCH_BYTES
    }

    /// Adds `line` (a complete line of the file) to the entry being merged
    /// when it has the same time and stream; whether it did. The filters
    /// gave the entry's first line the same answer they would give it.
    fn merge(&mut self, line: &[u8]) -> bool {
        let Some(merging) = self.merging.as_mut() else {
            return false;
        };
        if line.len() <= HEADER_LEN || line[..TAG_AT] != merging.key {
            return false;
        }
        let partial = match &line[TAG_AT..HEADER_LEN] {
            b"F " => false,
            b"P " => true,
            _ => return false,
        };
        // A full line keeps its newline, a partial piece had none.
        let end = line.len() - usize::from(partial);
        merging.data.extend_from_slice(&line[HEADER_LEN..end]);
        if partial || merging.data.len() >= MERGED_BYTES {
            merging.partial = partial;
            self.close_merged();
        }
        true
    }

    /// Moves the entry being merged, if any, into the batch.
    fn close_merged(&mut self) {
        if let Some(merged) = self.merging.take() {
            self.batch_bytes += merged.data.len();
            self.batch.push(LogEntry {
                time: merged.time,
                stream: merged.stream,
                data: merged.data.freeze(),
                partial: merged.partial,
            });
        }
    }

    /// Sends the batch, if any; waits while the receiver is behind (on a
    /// blocking thread).
    fn send(&mut self) -> Result<(), Stop> {
        self.close_merged();
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.tx.blocking_send(Ok(batch)).map_err(|_| Stop::Closed)
    }

    /// Whether the file with inode `ino` is the one being written.
    fn is_current(&self, ino: u64) -> io::Result<bool> {
        match std::fs::symlink_metadata(self.dir.join(CURRENT_FILE)) {
            Ok(meta) => Ok(meta.ino() == ino),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Lines of one stream read at one time, merged into one entry.
struct Merging {
    /// The header of its lines up to the tag: the time and the stream.
    key: [u8; TAG_AT],
    time: SystemTime,
    stream: Stream,
    data: BytesMut,
    /// Whether its last line goes on (nothing more joins it then).
    partial: bool,
}

/// An open log file being read forwards.
struct Source {
    file: File,
    ino: u64,
    /// Bytes read after the last complete line.
    pending: BytesMut,
    /// Whether bytes are dropped up to the next newline (the rest of a line
    /// longer than [`MAX_LINE`]).
    skipping: bool,
}

impl Source {
    fn new((file, ino): (File, u64)) -> Source {
        Source {
            file,
            ino,
            pending: BytesMut::new(),
            skipping: false,
        }
    }

    /// Reads on: the next complete lines, or `None` at the end of the file
    /// (keeping an unfinished line, which may be finished later).
    fn read_lines(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.read_more()? == 0 {
                return Ok(None);
            }
            if self.skipping {
                let Some(newline) = memchr::memchr(b'\n', &self.pending) else {
                    self.pending.clear();
                    continue;
                };
                self.pending.advance(newline + 1);
                self.skipping = false;
            }
            if let Some(newline) = memchr::memrchr(b'\n', &self.pending) {
                return Ok(Some(self.pending.split_to(newline + 1).freeze()));
            }
            if self.pending.len() > MAX_LINE {
                self.pending.clear();
                self.skipping = true;
            }
        }
    }

    /// Reads up to [`READ_CHUNK`] more bytes after the pending ones; how
    /// many.
    fn read_more(&mut self) -> io::Result<usize> {
        self.pending.reserve(READ_CHUNK);
        let spare = self.pending.spare_capacity_mut();
        let want = spare.len().min(READ_CHUNK);
        loop {
            // SAFETY: read(2) writes at most `want` bytes, all within the
            // spare capacity the pointer points to.
            let n = unsafe { libc::read(self.file.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
            let Ok(n) = usize::try_from(n) else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            };
            // SAFETY: the `n` bytes after the pending ones were just written
            // by read(2), and are within the capacity.
            unsafe { self.pending.set_len(self.pending.len() + n) };
            return Ok(n);
        }
    }
}

/// The log files of `dir`, listed until two listings agree: a listing made
/// while a rotation renames files may miss one.
fn snapshot(dir: &Path) -> io::Result<Vec<LogFile>> {
    let mut files = list(dir)?;
    loop {
        let again = list(dir)?;
        if again == files {
            return Ok(files);
        }
        files = again;
    }
}

/// Opens `file` if it still is the listed one.
fn open_exact(file: &LogFile) -> io::Result<Option<File>> {
    match File::open(&file.path) {
        Ok(opened) if opened.metadata()?.ino() == file.ino => Ok(Some(opened)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the log file newer than the one with inode `after` (which the
/// caller holds open, so the number is not reused), or the oldest one when
/// `after` is `None` or was deleted (only older files are), with its inode.
fn open_next(dir: &Path, after: Option<u64>) -> io::Result<Option<(File, u64)>> {
    loop {
        let files = snapshot(dir)?;
        let next = after
            .and_then(|ino| files.iter().position(|f| f.ino == ino))
            .map_or(0, |i| i + 1);
        let Some(file) = files.get(next) else {
            return Ok(None);
        };
        if let Some(opened) = open_exact(file)? {
            return Ok(Some((opened, file.ino)));
        }
    }
}

/// Opens the log file where the last `lines` lines of the query's streams
/// start, positioned there, with its inode; `None` without files.
fn tail_start(dir: &Path, lines: u64, query: LogQuery) -> io::Result<Option<(File, u64)>> {
    let files = 'listing: loop {
        let mut files = Vec::new();
        for file in snapshot(dir)? {
            let Some(opened) = open_exact(&file)? else {
                continue 'listing;
            };
            files.push((opened, file.ino));
        }
        break files;
    };
    let mut counter = TailCounter {
        left: lines,
        seen: [false; 2],
        query,
    };
    let mut oldest = None;
    for (mut file, ino) in files.into_iter().rev() {
        if let Some(offset) = scan_back(&file, |header| counter.precedes(header))? {
            file.seek(SeekFrom::Start(offset))?;
            return Ok(Some((file, ino)));
        }
        oldest = Some((file, ino));
    }
    Ok(oldest)
}

/// Counts lines backwards from the end of the logs.
struct TailCounter {
    /// Lines still to count.
    left: u64,
    /// Whether an entry of each stream was seen.
    seen: [bool; 2],
    query: LogQuery,
}

impl TailCounter {
    /// Takes the line with `header`, the one before those taken; whether it
    /// is before the lines wanted.
    fn precedes(&mut self, header: &[u8]) -> bool {
        let Some(fields) = format::parse_header(header) else {
            return false;
        };
        if !self.query.selects(fields.stream) {
            return false;
        }
        let seen = std::mem::replace(&mut self.seen[fields.stream as usize], true);
        // A line ends with a full entry, or with its stream's last entry.
        if fields.partial && seen {
            return false;
        }
        if self.left == 0 {
            return true;
        }
        self.left -= 1;
        false
    }
}

/// Goes through the complete lines of `file` from the last one back, giving
/// `precedes` the start of each (its header, when it has one) until it
/// returns true; returns the offset after that line.
fn scan_back(file: &File, mut precedes: impl FnMut(&[u8]) -> bool) -> io::Result<Option<u64>> {
    let mut window = vec![0; SCAN_BLOCK + HEADER_LEN];
    // Bytes from `pos` on are done with, but `carry` bytes at the start of
    // `window`: the start of the part of a line they held.
    let mut pos = file.metadata()?.len();
    let mut carry = 0;
    // The end of the line whose start is looked for.
    let mut line_end = None;
    while pos > 0 {
        let len = pos.min(SCAN_BLOCK as u64) as usize;
        pos -= len as u64;
        window.copy_within(..carry, len);
        file.read_exact_at(&mut window[..len], pos)?;
        let bytes = &window[..len + carry];
        let mut line_stop = bytes.len();
        for newline in memchr::memrchr_iter(b'\n', bytes) {
            if let Some(end) = line_end {
                if precedes(&bytes[newline + 1..line_stop]) {
                    return Ok(Some(end));
                }
            }
            line_end = Some(pos + newline as u64 + 1);
            line_stop = newline;
        }
        carry = line_stop.min(HEADER_LEN);
    }
    // The first line of the file.
    Ok(line_end.filter(|_| precedes(&window[..carry])))
}

/// Watches `dir` for written, created and renamed files.
fn watch(dir: &Path) -> io::Result<Events> {
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO,
    )?;
    inotify.into_event_stream([0; 4096])
}

/// A follower's watch, closed on a blocking thread. Closing an inotify
/// descriptor waits for the kernel's fsnotify mark reaper (an SRCU grace
/// period): 10–15 ms under `strace` here, on a loaded machine. Closed where
/// the follower ends, it delayed the end of every followed stream (and so
/// `crun-shim run`) by that much.
struct Watch(Option<Events>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(events) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(events))),
                Err(_) => drop(events),
            }
        }
    }
}

/// Waits for changes, if watched (else forever), taking all that happened.
async fn changes(events: &mut Option<Events>) {
    let Some(stream) = events else {
        return std::future::pending().await;
    };
    let event = stream.next().await;
    if let Some(Ok(_)) = event {
        while let Some(Some(Ok(_))) = stream.next().now_or_never() {}
    } else {
        // The watch failed: the timer goes on alone.
        *events = None;
    }
}

/// Waits until `deadline`, if any (else forever).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::super::{LogWriter, log_files};
    use super::*;
    use crate::model::LogConfig;

    fn config(max_size_bytes: u64, max_files: u32) -> LogConfig {
        LogConfig {
            max_size_bytes,
            max_files,
        }
    }

    /// xorshift64*: reproducible test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }

        /// Random bytes: binary, '\r', empty lines, now and then a line
        /// longer than the writer's limit.
        fn chunk(&mut self, max: u64) -> Vec<u8> {
            let len = self.below(max);
            let newline_every = [3, 40, 200, 100_000][self.below(4)] as u64;
            (0..len)
                .map(|_| match self.below(newline_every) {
                    0 => b'\n',
                    _ => self.next() as u8,
                })
                .collect()
        }
    }

    /// All entries of a reading, checking the batch limits.
    async fn collect(mut rx: mpsc::Receiver<io::Result<Vec<LogEntry>>>) -> Vec<LogEntry> {
        let mut entries = Vec::new();
        while let Some(batch) = rx.recv().await {
            let batch = batch.expect("no read error");
            assert!(!batch.is_empty() && batch.len() <= BATCH_ENTRIES);
            let bytes: usize = batch.iter().map(|e| e.data.len()).sum();
            assert!(bytes - batch.last().unwrap().data.len() < BATCH_BYTES);
            entries.extend(batch);
        }
        entries
    }

    async fn read_all(dir: &Path, query: LogQuery) -> Vec<LogEntry> {
        let (_finished, finished_rx) = watch::channel(false);
        collect(read(dir.to_owned(), query, finished_rx)).await
    }

    fn stream_bytes(entries: &[LogEntry], stream: Stream) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in entries.iter().filter(|e| e.stream == stream) {
            bytes.extend_from_slice(&entry.data);
        }
        bytes
    }

    fn text(entries: &[LogEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(256 * 1024, 1000)).unwrap();
        let mut rng = Rng(7);
        let mut written = [Vec::new(), Vec::new()];
        for _ in 0..300 {
            let stream = [Stream::Stdout, Stream::Stderr][rng.below(2)];
            let chunk = rng.chunk(40_000);
            writer.write(stream, &chunk, SystemTime::now()).unwrap();
            written[stream as usize].extend_from_slice(&chunk);
        }
        writer
            .write(Stream::Stdout, b"\nno newline", SystemTime::now())
            .unwrap();
        written[0].extend_from_slice(b"\nno newline");
        writer.flush().unwrap();
        assert!(log_files(dir.path()).unwrap().len() > 10, "rotated");

        let entries = read_all(dir.path(), LogQuery::everything()).await;
        assert_eq!(stream_bytes(&entries, Stream::Stdout), written[0]);
        assert_eq!(stream_bytes(&entries, Stream::Stderr), written[1]);
        let last = entries.last().unwrap();
        assert!(last.partial && &last.data[..] == b"no newline");
        for entry in &entries {
            assert_eq!(entry.partial, entry.data.last() != Some(&b'\n'));
        }

        // Merged, the same bytes in far fewer entries; each is the lines
        // of one stream at one time, only the last of them partial.
        let merged = read_all(
            dir.path(),
            LogQuery {
                merge_lines: true,
                ..LogQuery::everything()
            },
        )
        .await;
        assert_eq!(stream_bytes(&merged, Stream::Stdout), written[0]);
        assert_eq!(stream_bytes(&merged, Stream::Stderr), written[1]);
        assert!(
            merged.len() * 4 < entries.len(),
            "{} merged entries",
            merged.len()
        );
        for entry in &merged {
            assert_eq!(entry.partial, entry.data.last() != Some(&b'\n'));
        }
        let mut lines = entries.iter();
        for entry in &merged {
            let mut joined = Vec::new();
            while joined.len() < entry.data.len() {
                let line = lines.next().expect("as many lines");
                assert_eq!((line.time, line.stream), (entry.time, entry.stream));
                joined.extend_from_slice(&line.data);
            }
            assert_eq!(joined, entry.data);
        }
        assert!(lines.next().is_none());

        let stderr = read_all(
            dir.path(),
            LogQuery {
                stdout: false,
                ..LogQuery::everything()
            },
        )
        .await;
        assert!(stderr.iter().all(|e| e.stream == Stream::Stderr));
        assert_eq!(stream_bytes(&stderr, Stream::Stderr), written[1]);
    }

    #[tokio::test]
    async fn skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1 << 20, 2)).unwrap();
        writer
            .write(Stream::Stdout, b"one\n", SystemTime::now())
            .unwrap();
        writer.flush().unwrap();
        let current = dir.path().join(CURRENT_FILE);
        let mut junk = std::fs::read(&current).unwrap();
        junk.extend_from_slice(b"garbage\n\n\xff\xfe\n");
        junk.extend(std::iter::repeat_n(b'z', 3 * MAX_LINE));
        junk.push(b'\n');
        std::fs::write(&current, &junk).unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1 << 20, 2)).unwrap();
        writer
            .write(Stream::Stdout, b"two\n", SystemTime::now())
            .unwrap();
        writer.flush().unwrap();
        // A line cut short, as by a crash.
        let mut cut = std::fs::read(&current).unwrap();
        cut.extend_from_slice(b"2026-11-28T12:00:00.123456789Z stdout F thr");
        std::fs::write(&current, &cut).unwrap();

        assert_eq!(
            text(&read_all(dir.path(), LogQuery::everything()).await),
            ["one\n", "two\n"]
        );
        let last = LogQuery {
            tail: Some(1),
            ..LogQuery::everything()
        };
        assert_eq!(text(&read_all(dir.path(), last).await), ["two\n"]);
    }

    #[tokio::test]
    async fn tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(300, 100)).unwrap();
        let now = SystemTime::now();
        for i in 0..50 {
            writer
                .write(Stream::Stdout, format!("out {i}\n").as_bytes(), now)
                .unwrap();
            writer
                .write(Stream::Stderr, format!("err {i}\n").as_bytes(), now)
                .unwrap();
        }
        writer.flush().unwrap();
        // 300-byte files hold 7 lines at most: the tails span files.
        assert!(log_files(dir.path()).unwrap().len() > 10);
        let tail = |n, stdout, stderr| LogQuery {
            tail: Some(n),
            stdout,
            stderr,
            ..LogQuery::everything()
        };
        let out = text(&read_all(dir.path(), tail(20, true, false)).await);
        assert_eq!(
            out,
            (30..50).map(|i| format!("out {i}\n")).collect::<Vec<_>>()
        );
        let err = text(&read_all(dir.path(), tail(3, false, true)).await);
        assert_eq!(err, ["err 47\n", "err 48\n", "err 49\n"]);
        let both = text(&read_all(dir.path(), tail(3, true, true)).await);
        assert_eq!(both, ["err 48\n", "out 49\n", "err 49\n"]);
        assert!(read_all(dir.path(), tail(0, true, true)).await.is_empty());
        assert_eq!(
            read_all(dir.path(), tail(1000, true, true)).await,
            read_all(dir.path(), LogQuery::everything()).await
        );

        // A long line is one line, and so is an unfinished last one.
        let long = vec![b'x'; 40_000];
        writer.write(Stream::Stdout, &long, now).unwrap();
        writer.write(Stream::Stdout, b"\n", now).unwrap();
        writer.write(Stream::Stderr, b"prompt> ", now).unwrap();
        writer.flush().unwrap();
        let out = read_all(dir.path(), tail(2, true, false)).await;
        let mut expected = b"out 49\n".to_vec();
        expected.extend_from_slice(&long);
        expected.push(b'\n');
        assert_eq!(stream_bytes(&out, Stream::Stdout), expected);
        assert_eq!(out.len(), 5, "one entry, then the long line in 4");
        let both = text(&read_all(dir.path(), tail(2, true, true)).await);
        assert_eq!(both.len(), 5);
        assert_eq!(both[4], "prompt> ");
        assert_eq!(both[0].len(), 16 * 1024);
    }

    /// Tails of a file read backwards in several blocks, one of them
    /// starting inside a line's header.
    #[tokio::test]
    async fn tail_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1 << 30, 2)).unwrap();
        // 100-byte lines, 200 kB: the second block back starts 28 bytes
        // into the 1312th line from the end.
        let lines = 2000;
        for i in 0..lines {
            let stream = [Stream::Stdout, Stream::Stderr][i % 2];
            writer
                .write(stream, format!("{i:059}\n").as_bytes(), SystemTime::now())
                .unwrap();
        }
        writer.flush().unwrap();
        let len = std::fs::metadata(dir.path().join(CURRENT_FILE))
            .unwrap()
            .len();
        assert_eq!(len, 100 * lines as u64);
        assert_eq!((len - 2 * SCAN_BLOCK as u64) % 100, 28);

        let everything = read_all(dir.path(), LogQuery::everything()).await;
        let stdout = read_all(
            dir.path(),
            LogQuery {
                stderr: false,
                ..LogQuery::everything()
            },
        )
        .await;
        for n in [1, 1000, 1311, 1312, 1313, 1999, 2000, 2001] {
            let tail = LogQuery {
                tail: Some(n),
                ..LogQuery::everything()
            };
            let expected = &everything[everything.len().saturating_sub(n as usize)..];
            assert_eq!(read_all(dir.path(), tail).await, expected, "tail {n}");
            let tail = LogQuery {
                stderr: false,
                ..tail
            };
            let expected = &stdout[stdout.len().saturating_sub(n as usize)..];
            assert_eq!(
                read_all(dir.path(), tail).await,
                expected,
                "stdout tail {n}"
            );
        }
    }

    #[tokio::test]
    async fn since_until() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::open(dir.path(), config(1 << 20, 2)).unwrap();
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        for i in 0..10 {
            writer
                .write(Stream::Stdout, format!("{i}\n").as_bytes(), at(i))
                .unwrap();
        }
        writer.flush().unwrap();
        let query = LogQuery {
            since: Some(at(3)),
            until: Some(at(6)),
            ..LogQuery::everything()
        };
        assert_eq!(
            text(&read_all(dir.path(), query).await),
            ["3\n", "4\n", "5\n"]
        );
        let since = LogQuery {
            since: Some(at(8)),
            ..LogQuery::everything()
        };
        assert_eq!(text(&read_all(dir.path(), since).await), ["8\n", "9\n"]);
        // Following ends at the first entry at `until`, the container still
        // running.
        let follow = LogQuery {
            follow: true,
            until: Some(at(2)),
            ..LogQuery::everything()
        };
        assert_eq!(text(&read_all(dir.path(), follow).await), ["0\n", "1\n"]);
        // ...or when `until` passes.
        let soon = LogQuery {
            follow: true,
            until: Some(SystemTime::now() + Duration::from_millis(300)),
            ..LogQuery::everything()
        };
        assert_eq!(read_all(dir.path(), soon).await.len(), 10);
    }

    /// Follows while a thread writes ~20 MB with rotations; the reading ends
    /// once `finished` is set, with every byte.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        // Created before the reader starts, as the monitor does.
        let mut writer = LogWriter::open(&path, config(1 << 20, 1000)).unwrap();
        let (finished, finished_rx) = watch::channel(false);
        let query = LogQuery {
            follow: true,
            ..LogQuery::everything()
        };
        let rx = read(path.clone(), query, finished_rx);
        let thread = std::thread::spawn(move || {
            let mut rng = Rng(42);
            let mut written = [Vec::new(), Vec::new()];
            let mut total = 0;
            while total < 20 << 20 {
                let stream = if rng.below(4) == 0 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                let chunk = rng.chunk(64 * 1024);
                writer.write(stream, &chunk, SystemTime::now()).unwrap();
                if rng.below(4) == 0 {
                    writer.flush().unwrap();
                }
                total += chunk.len();
                written[stream as usize].extend_from_slice(&chunk);
            }
            writer.flush().unwrap();
            written
        });
        let entries = tokio::spawn(collect(rx));
        let written = tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        finished.send_replace(true);
        let entries = entries.await.unwrap();
        assert!(log_files(&path).unwrap().len() > 20, "rotated");
        assert!(
            stream_bytes(&entries, Stream::Stdout) == written[0],
            "stdout differs"
        );
        assert!(
            stream_bytes(&entries, Stream::Stderr) == written[1],
            "stderr differs"
        );
    }

    /// A reader that is not read from holds the writer back in no way; it
    /// goes on with what is left once read again.
    #[tokio::test]
    async fn slow_reader() {
        for max_files in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let mut writer = LogWriter::open(dir.path(), config(256 * 1024, max_files)).unwrap();
            let line = |i: u32| format!("line {i:08}\n");
            writer
                .write(Stream::Stdout, line(0).as_bytes(), SystemTime::now())
                .unwrap();
            writer.flush().unwrap();
            let (finished, finished_rx) = watch::channel(false);
            let query = LogQuery {
                follow: true,
                ..LogQuery::everything()
            };
            let mut rx = read(dir.path().to_owned(), query, finished_rx);
            let first = rx.recv().await.unwrap().unwrap();
            assert_eq!(text(&first), [line(0)]);

            let count = 200_000;
            std::thread::spawn(move || {
                for i in 1..count {
                    writer
                        .write(Stream::Stdout, line(i).as_bytes(), SystemTime::now())
                        .unwrap();
                    writer.flush().unwrap();
                }
            })
            .join()
            .unwrap();
            finished.send_replace(true);

            let numbers: Vec<u32> = text(&collect(rx).await)
                .iter()
                .map(|l| l.strip_prefix("line ").unwrap().trim_end().parse().unwrap())
                .collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "in order, no repeats"
            );
            assert_eq!(numbers.last(), Some(&(count - 1)));
            assert!(numbers.len() < count as usize, "rotated out while not read");
        }
    }

    #[tokio::test]
    async fn stops() {
        let dir = tempfile::tempdir().unwrap();
        let query = LogQuery {
            follow: true,
            ..LogQuery::everything()
        };
        // No files yet: a follower waits, and ends when the container has.
        let (finished, finished_rx) = watch::channel(false);
        let rx = read(dir.path().to_owned(), query, finished_rx);
        let entries = tokio::spawn(collect(rx));
        let mut writer = LogWriter::open(dir.path(), config(1 << 20, 2)).unwrap();
        writer
            .write(Stream::Stdout, b"hi\n", SystemTime::now())
            .unwrap();
        writer.flush().unwrap();
        finished.send_replace(true);
        assert_eq!(text(&entries.await.unwrap()), ["hi\n"]);

        // A follower whose receiver is dropped stops.
        let (finished, finished_rx) = watch::channel(false);
        drop(read(dir.path().to_owned(), query, finished_rx));
        let stopped = async {
            while finished.receiver_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("the reader stops");
    }
}
