//! A subscriber's stream: the journal's files, then live events.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream, Stream, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

use super::segment::Reader;
use super::{Journal, Position};
use crate::error::{Error, Result};
use crate::model::{Event, EventFilter};

/// The events of a subscriber, in order, without gaps or duplicates (see
/// [`Journal::subscribe`]). It ends after an error: a subscriber that falls
/// behind what the journal keeps gets one [`Error::OutOfRange`].
pub struct Subscription {
    events: BoxStream<'static, Result<Event>>,
}

impl Subscription {
    /// The events from sequence `next` on that `filter` matches, `live`
    /// being subscribed before any of them was read from the journal.
    pub(super) fn new(
        journal: Arc<Journal>,
        next: u64,
        filter: EventFilter,
        live: broadcast::Receiver<Arc<Event>>,
    ) -> Subscription {
        let cursor = Cursor {
            journal,
            filter,
            live,
            next,
            source: Source::Journal,
        };
        let events = stream::unfold(Some(cursor), |cursor| async move {
            let mut cursor = cursor?;
            match cursor.next().await? {
                Ok(event) => Some((Ok(event), Some(cursor))),
                Err(e) => Some((Err(e), None)),
            }
        });
        Subscription {
            events: events.boxed(),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        self.events.poll_next_unpin(cx)
    }
}

/// Where a subscriber is.
struct Cursor {
    journal: Arc<Journal>,
    filter: EventFilter,
    live: broadcast::Receiver<Arc<Event>>,
    /// The sequence wanted next: every event before it was delivered or
    /// filtered out.
    next: u64,
    source: Source,
}

/// Where a subscriber takes its next event from.
enum Source {
    /// To be looked up in the journal.
    Journal,
    /// A segment being read; `successor` is the first sequence of the
    /// segment after it, `None` if it was the newest when opened.
    Segment {
        reader: Box<Reader>,
        successor: Option<u64>,
    },
    /// The live events.
    Live,
}

impl Cursor {
    /// The next event; `None` if the live channel closed, which cannot
    /// happen while the cursor holds the journal (and so its sender).
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            match &mut self.source {
                Source::Journal => match self.seek().await {
                    Ok(source) => self.source = source,
                    Err(e) => return Some(Err(e)),
                },
                Source::Segment { reader, successor } => match reader.next().await {
                    Ok(Some(event)) => {
                        if self.take(&event) {
                            return Some(Ok(event));
                        }
                    }
                    // The segment was read: go on with the next one (past
                    // any garbled end), or, if it was the newest when
                    // located, live: any later event was published after
                    // the cursor subscribed (or last lagged), so the
                    // channel has it or reports a lag.
                    Ok(None) => {
                        self.source = match *successor {
                            Some(first) => {
                                self.next = self.next.max(first);
                                Source::Journal
                            }
                            None => Source::Live,
                        }
                    }
                    Err(e) => return Some(Err(e)),
                },
                Source::Live => match self.live.recv().await {
                    Ok(event) => {
                        if self.take(&event) {
                            return Some(Ok(Event::clone(&event)));
                        }
                    }
                    // Fallen behind the channel: catch up from the files.
                    Err(RecvError::Lagged(_)) => self.source = Source::Journal,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Opens the segment holding the next event, or goes live if it was
    /// not published yet.
    async fn seek(&self) -> Result<Source> {
        let (path, successor) = match self.journal.locate(self.next)? {
            Position::Live => return Ok(Source::Live),
            Position::Segment { path, successor } => (path, successor),
        };
        match Reader::open(&path).await {
            Ok(reader) => Ok(Source::Segment {
                reader: Box::new(reader),
                successor,
            }),
            Err(e) => {
                // Deleted since it was located: fallen behind the journal.
                if e.kind() == io::ErrorKind::NotFound {
                    self.journal.locate(self.next)?;
                }
                Err(Error::io(format!("opening {}", path.display()), e))
            }
        }
    }

    /// Whether to deliver `event`: it was not delivered yet and matches the
    /// filter. Moves past it.
    fn take(&mut self, event: &Event) -> bool {
        if event.sequence < self.next {
            return false;
        }
        self.next = event.sequence + 1;
        self.filter.matches(event)
    }
}
