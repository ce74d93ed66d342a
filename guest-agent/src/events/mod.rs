//! The event journal: everything that happens to containers, numbered,
//! persisted and streamed to subscribers.
//!
//! # Sequences
//!
//! Each event gets the next sequence number (1 for the first ever) and the
//! time when it is published. Sequences continue across agent restarts: on
//! open, the journal reads the last one back from its newest file.
//!
//! # On disk
//!
//! The journal is a directory of segments, `events-<first>.jsonl`, each
//! holding events from sequence `first` on, one JSON object per line. Only
//! the newest segment is appended to; a new one starts when it holds a
//! sixteenth of either limit, and the oldest segments are deleted whole
//! while the journal is over a limit. The newest segment is never deleted,
//! so the last sequence survives a restart. `publish` writes each event
//! with one write(2) before it returns, so events survive a crash of the
//! agent; [`Journal::flush`] makes them durable against a crash of the
//! machine (with `CRUN_SHIM_DURABLE_STATE=1`, a VM's state disk, each
//! event is synced as it is written). Events published after the last
//! flush may be lost if the machine crashes; their sequences are then
//! assigned again.
//!
//! # Damaged files
//!
//! Opening cuts whatever follows the last whole event of the newest segment
//! (a line torn by a crash), so publishing continues right after the last
//! event kept. A line that cannot be read anywhere else (a garbled file) is
//! skipped when replaying: its event is lost and subscribers see a gap in
//! the sequences. That is the only way a gap appears; since the sequence of
//! every event is written in its own line, a lost event's sequence is never
//! assigned again unless every event after it is lost too.
//!
//! # Subscribers
//!
//! Live events go through a broadcast channel, whose send never blocks: a
//! slow subscriber only falls behind the channel. A subscriber replays the
//! journal's files first, then takes live events, skipping any sequence it
//! already has. When it falls behind the channel it goes back to the files,
//! and when the files no longer hold what it missed it ends with
//! [`Error::OutOfRange`] naming the oldest sequence kept.

mod segment;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tracing::warn;

pub use subscription::Subscription;

use crate::error::{Error, IoContext, Result};
use crate::model::{Event, EventDetails, EventFilter, EventKind};
use segment::Segment;

/// Live events a subscriber may fall behind by before it goes back to the
/// journal's files.
const LIVE_CAPACITY: usize = 1024;

/// The fraction of the limits at which the newest segment is closed.
const SEGMENTS_PER_LIMIT: u64 = 16;

/// How much the journal keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// The most events kept.
    pub max_events: u64,
    /// The most bytes the journal's files take (the newest event is kept
    /// even if it alone is larger).
    pub max_bytes: u64,
}

impl Default for JournalLimits {
    /// 100,000 events, 64 MiB.
    fn default() -> Self {
        JournalLimits {
            max_events: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

/// An event to publish: the journal adds its sequence and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// What happened.
    pub kind: EventKind,
    /// The container.
    pub container_id: String,
    /// The exec process, for exec events and an exec's exit.
    pub exec_id: Option<String>,
    /// The container's labels at the time.
    pub labels: BTreeMap<String, String>,
    /// Details of some kinds.
    pub details: Option<EventDetails>,
}

/// The persisted, bounded event journal with its live subscribers. Share
/// it as `Arc<Journal>`.
pub struct Journal {
    writer: Mutex<Writer>,
    live: broadcast::Sender<Arc<Event>>,
}

/// Where a subscriber finds the event it wants next.
enum Position {
    /// In the segment at `path`; `successor` is the first sequence of the
    /// next segment, `None` if this one is the newest.
    Segment {
        path: PathBuf,
        successor: Option<u64>,
    },
    /// Not published yet: it will come live.
    Live,
}

impl Journal {
    /// Opens the journal in `dir`, creating it if needed. A torn last line
    /// (a crash in the middle of a write) is cut from the file.
    pub fn open(dir: &Path, limits: JournalLimits) -> Result<Journal> {
        Journal::open_with(dir, limits, LIVE_CAPACITY)
    }

    /// [`Journal::open`] with `live_capacity` live events buffered per
    /// subscriber.
    fn open_with(dir: &Path, limits: JournalLimits, live_capacity: usize) -> Result<Journal> {
        if limits.max_events == 0 || limits.max_bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "the event journal's limits must be at least 1: {limits:?}"
            )));
        }
        let writer = Writer::open(dir, limits)?;
        Ok(Journal {
            writer: Mutex::new(writer),
            live: broadcast::channel(live_capacity).0,
        })
    }

    /// Assigns the next sequence and the time, appends, then wakes
    /// subscribers. Returns the event.
    pub fn publish(&self, draft: EventDraft) -> Result<Event> {
        let mut writer = self.writer();
        let event = Event {
            sequence: writer.last + 1,
            time: SystemTime::now(),
            kind: draft.kind,
            container_id: draft.container_id,
            exec_id: draft.exec_id,
            labels: draft.labels,
            details: draft.details,
        };
        writer.append(&event)?;
        // Sent under the lock, so that subscribers get events in order. An
        // error only means that nobody listens.
        let _ = self.live.send(Arc::new(event.clone()));
        writer.trim();
        Ok(event)
    }

    /// The sequence of the last event, 0 if there was none.
    pub fn last_sequence(&self) -> u64 {
        self.writer().last
    }

    /// The sequence of the oldest event kept, 0 if none is. A subscriber
    /// can resume with any `since` from this minus one to the last.
    pub fn oldest_sequence(&self) -> u64 {
        self.writer().oldest()
    }

    /// Events with a sequence greater than `since`, replayed from the
    /// journal, then live events, in order, without gaps or duplicates,
    /// those `filter` matches. With `since` `None`: live events only.
    ///
    /// Fails with [`Error::OutOfRange`] if events after `since` are no
    /// longer kept, or if `since` is beyond the last event (a cursor from
    /// another journal); the message names the oldest sequence kept.
    pub fn subscribe(
        self: &Arc<Self>,
        since: Option<u64>,
        filter: EventFilter,
    ) -> Result<Subscription> {
        let writer = self.writer();
        let next = match since {
            None => writer.last + 1,
            Some(since) => {
                let first = writer.first();
                if since < first - 1 {
                    return Err(out_of_range(first));
                }
                if since > writer.last {
                    return Err(Error::OutOfRange(format!(
                        "since_sequence {since} is beyond the last event, {}; events from \
                         sequence {first} are kept, resume with since_sequence >= {}",
                        writer.last,
                        first - 1
                    )));
                }
                since + 1
            }
        };
        // Subscribed under the lock: every event after `next - 1` that the
        // files do not hold yet comes live.
        let live = self.live.subscribe();
        drop(writer);
        Ok(Subscription::new(self.clone(), next, filter, live))
    }

    /// Writes the journal to disk (fsync), for a graceful shutdown.
    pub fn flush(&self) -> Result<()> {
        self.writer().sync()
    }

    /// Where the event with sequence `next` is, if it is still kept.
    fn locate(&self, next: u64) -> Result<Position> {
        let writer = self.writer();
        if next > writer.last {
            return Ok(Position::Live);
        }
        let first = writer.first();
        if next < first {
            return Err(out_of_range(first));
        }
        let mut holder = first;
        let mut successor = None;
        for segment in writer.segments() {
            if segment.first <= next {
                holder = segment.first;
            } else {
                successor = Some(segment.first);
                break;
            }
        }
        Ok(Position::Segment {
            path: segment::path(&writer.dir, holder),
            successor,
        })
    }

    /// The writer; its state stays consistent even if a holder panicked.
    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let writer = self.writer();
        f.debug_struct("Journal")
            .field("dir", &writer.dir)
            .field("oldest_sequence", &writer.oldest())
            .field("last_sequence", &writer.last)
            .finish_non_exhaustive()
    }
}

/// The error of a subscriber wanting events before `first`, the oldest kept.
fn out_of_range(first: u64) -> Error {
    Error::OutOfRange(format!(
        "events before sequence {first} are no longer kept; resume with since_sequence >= {}",
        first - 1
    ))
}

/// The journal's files and the state of the newest one.
struct Writer {
    dir: PathBuf,
    limits: JournalLimits,
    /// When the newest segment is closed.
    segment_limits: JournalLimits,
    /// The segments before the newest, oldest first.
    older: VecDeque<Segment>,
    /// The newest segment, appended to.
    active: Segment,
    /// The newest segment's file, in append mode.
    file: File,
    /// The last sequence assigned.
    last: u64,
    /// The size of all segments.
    bytes: u64,
    /// The line being written (kept to reuse its allocation).
    line: Vec<u8>,
}

impl Writer {
    /// Opens the journal in `dir`: finds its segments and the last
    /// sequence, cutting a torn tail from the newest segment.
    fn open(dir: &Path, limits: JournalLimits) -> Result<Writer> {
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let mut older = segment::list(dir)?;
        let newest = older.pop_back().map_or(1, |s| s.first);
        let (file, active, last) = segment::recover(dir, newest)?;
        let bytes = older.iter().map(|s| s.bytes).sum::<u64>() + active.bytes;
        Ok(Writer {
            dir: dir.to_path_buf(),
            limits,
            segment_limits: JournalLimits {
                max_events: (limits.max_events / SEGMENTS_PER_LIMIT).max(1),
                max_bytes: (limits.max_bytes / SEGMENTS_PER_LIMIT).max(1),
            },
            older,
            active,
            file,
            last,
            bytes,
            line: Vec::new(),
        })
    }

    /// All segments, oldest first.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.older.iter().chain([&self.active])
    }

    /// The first sequence of the oldest segment: the oldest event kept, or
    /// the next one if none is.
    fn first(&self) -> u64 {
        self.older.front().unwrap_or(&self.active).first
    }

    /// The oldest sequence kept, 0 if none is.
    fn oldest(&self) -> u64 {
        let first = self.first();
        if first > self.last { 0 } else { first }
    }

    /// Appends `event`, whose sequence is `last + 1`, starting a new
    /// segment first if the newest is full. On error the sequence stays
    /// free: the next event takes it.
    fn append(&mut self, event: &Event) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)
            .map_err(|e| Error::Internal(format!("serializing event {}: {e}", event.sequence)))?;
        self.line.push(b'\n');
        let line_bytes = self.line.len() as u64;
        let held = event.sequence - self.active.first;
        if held > 0
            && (held >= self.segment_limits.max_events
                || self.active.bytes + line_bytes > self.segment_limits.max_bytes)
        {
            self.file = segment::create(&self.dir, event.sequence)?;
            let full = std::mem::replace(
                &mut self.active,
                Segment {
                    first: event.sequence,
                    bytes: 0,
                },
            );
            self.older.push_back(full);
        }
        if let Err(e) = self.file.write_all(&self.line) {
            // Cut whatever part of the line was written, so that the next
            // event starts a line of its own.
            let path = segment::path(&self.dir, self.active.first);
            let context = match self.file.set_len(self.active.bytes) {
                Ok(()) => format!("appending to {}", path.display()),
                Err(cut) => format!(
                    "appending to {} (and cutting the partial line: {cut})",
                    path.display()
                ),
            };
            return Err(Error::io(context, e));
        }
        if crate::store::durable() {
            let path = segment::path(&self.dir, self.active.first);
            self.file
                .sync_data()
                .context(|| format!("syncing {}", path.display()))?;
        }
        self.active.bytes += line_bytes;
        self.bytes += line_bytes;
        self.last = event.sequence;
        Ok(())
    }

    /// Deletes the oldest segments while the journal is over a limit. A
    /// segment that cannot be deleted is left for the next time.
    fn trim(&mut self) {
        while let Some(&oldest) = self.older.front() {
            if self.last + 1 - oldest.first <= self.limits.max_events
                && self.bytes <= self.limits.max_bytes
            {
                break;
            }
            let path = segment::path(&self.dir, oldest.first);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    warn!(path = %path.display(), error = %e, "cannot trim the event journal");
                    break;
                }
                _ => {
                    self.older.pop_front();
                    self.bytes -= oldest.bytes;
                }
            }
        }
    }

    /// Syncs every segment (those closed since the last sync may still
    /// have data in the page cache) and the directory.
    fn sync(&self) -> Result<()> {
        for segment in &self.older {
            let path = segment::path(&self.dir, segment.first);
            File::open(&path)
                .and_then(|f| f.sync_all())
                .context(|| format!("syncing {}", path.display()))?;
        }
        self.file.sync_all().context(|| {
            format!(
                "syncing {}",
                segment::path(&self.dir, self.active.first).display()
            )
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .context(|| format!("syncing {}", self.dir.display()))
    }
}
