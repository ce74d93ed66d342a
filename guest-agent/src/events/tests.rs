use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{FutureExt, StreamExt};

use super::*;
use crate::model::{ExitStatus, HealthStatus};

/// Big enough never to trim in these tests.
const ROOMY: JournalLimits = JournalLimits {
    max_events: 1_000_000,
    max_bytes: 1 << 30,
};

fn draft(container: &str, kind: EventKind) -> EventDraft {
    EventDraft {
        kind,
        container_id: container.to_string(),
        exec_id: None,
        labels: BTreeMap::new(),
        details: None,
    }
}

fn labelled(container: &str, kind: EventKind, labels: &[(&str, &str)]) -> EventDraft {
    EventDraft {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..draft(container, kind)
    }
}

fn open(dir: &Path, limits: JournalLimits) -> Arc<Journal> {
    Arc::new(Journal::open(dir, limits).unwrap())
}

fn publish(journal: &Journal, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            journal
                .publish(draft(&format!("c{i}"), EventKind::Create))
                .unwrap()
        })
        .collect()
}

fn sequences(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

/// The next `n` events; fails on an error, an end, or a stall (so that a
/// bug fails the test rather than hanging it).
async fn take(subscription: &mut Subscription, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(60), subscription.next())
            .await
            .expect("stalled");
        events.push(next.expect("ended").expect("event"));
    }
    events
}

/// Events until the one with sequence `last`, included.
async fn take_through(subscription: &mut Subscription, last: u64) -> Vec<Event> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &Event| e.sequence < last) {
        events.extend(take(subscription, 1).await);
    }
    events
}

/// The first sequences of the segment files in `dir`, in order.
fn segment_files(dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("events-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        })
        .collect();
    firsts.sort();
    firsts
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn out_of_range_message(result: Result<impl Sized>) -> String {
    match result {
        Err(Error::OutOfRange(message)) => message,
        Err(e) => panic!("expected OutOfRange, got {e:?}"),
        Ok(_) => panic!("expected OutOfRange, got a success"),
    }
}

#[test]
fn sequences_start_at_one_and_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    assert_eq!((journal.last_sequence(), journal.oldest_sequence()), (0, 0));
    let before = SystemTime::now();
    let first = journal
        .publish(labelled("a", EventKind::Start, &[("k", "v")]))
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert!(first.time >= before);
    assert_eq!(
        (first.kind, first.container_id.as_str()),
        (EventKind::Start, "a")
    );
    assert_eq!(first.labels["k"], "v");
    assert_eq!(sequences(&publish(&journal, 2)), vec![2, 3]);
    drop(journal);

    let journal = open(dir.path(), ROOMY);
    assert_eq!((journal.last_sequence(), journal.oldest_sequence()), (3, 1));
    assert_eq!(sequences(&publish(&journal, 1)), vec![4]);
}

#[tokio::test]
async fn replay_after_reopen_is_exact_then_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    let mut published = publish(&journal, 8);
    let exit = ExitStatus {
        exit_code: 137,
        signal: 9,
        oom_killed: true,
        finished_at: SystemTime::now(),
        unknown: false,
    };
    published.push(
        journal
            .publish(EventDraft {
                exec_id: Some("e1".into()),
                details: Some(EventDetails::Exit(exit)),
                ..draft("a", EventKind::Exit)
            })
            .unwrap(),
    );
    published.push(
        journal
            .publish(EventDraft {
                details: Some(EventDetails::Health {
                    previous: HealthStatus::Starting,
                    current: HealthStatus::Unhealthy,
                    failing_streak: 3,
                }),
                ..draft("a", EventKind::HealthStatus)
            })
            .unwrap(),
    );
    drop(journal);

    let journal = open(dir.path(), ROOMY);
    let mut resumed = journal.subscribe(Some(4), EventFilter::default()).unwrap();
    // The replayed events are the published ones, details and time included.
    assert_eq!(take(&mut resumed, 6).await, published[4..]);
    let live = publish(&journal, 2);
    assert_eq!(take(&mut resumed, 2).await, live);

    // From the last sequence, or without one: only what comes next.
    let mut at_end = journal.subscribe(Some(12), EventFilter::default()).unwrap();
    let mut live_only = journal.subscribe(None, EventFilter::default()).unwrap();
    // Both wait for it.
    assert!(at_end.next().now_or_never().is_none());
    assert!(live_only.next().now_or_never().is_none());
    let next = publish(&journal, 1);
    assert_eq!(take(&mut at_end, 1).await, next);
    assert_eq!(take(&mut live_only, 1).await, next);
}

#[tokio::test]
async fn from_zero_on_an_empty_journal_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    let mut all = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    publish(&journal, 3);
    assert_eq!(sequences(&take(&mut all, 3).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_slow_subscriber_misses_nothing_the_journal_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 1,000 events, and live delivery falls behind after 4.
    let limits = JournalLimits {
        max_events: 16_000,
        max_bytes: 1 << 30,
    };
    let journal = Arc::new(Journal::open_with(dir.path(), limits, 4).unwrap());
    publish(&journal, 10);
    let mut replaying = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    let mut live = journal.subscribe(None, EventFilter::default()).unwrap();
    let first_live = publish(&journal, 1);
    assert_eq!(take(&mut live, 1).await, first_live);

    // Floods while neither polls: the live one falls behind the channel,
    // twice, and catches up from the files each time.
    publish(&journal, 5_000);
    let events = take(&mut live, 5_000).await;
    assert_eq!(sequences(&events), (12..=5_011).collect::<Vec<_>>());
    publish(&journal, 3_000);
    let events = take(&mut live, 3_000).await;
    assert_eq!(sequences(&events), (5_012..=8_011).collect::<Vec<_>>());

    let events = take(&mut replaying, 8_011).await;
    assert_eq!(sequences(&events), (1..=8_011).collect::<Vec<_>>());
    assert_eq!(journal.oldest_sequence(), 1, "nothing was trimmed");
}

#[tokio::test]
async fn trimming_by_count_deletes_the_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 2 events.
    let limits = JournalLimits {
        max_events: 32,
        max_bytes: 1 << 30,
    };
    let journal = open(dir.path(), limits);
    publish(&journal, 100);
    assert_eq!(journal.last_sequence(), 100);
    let oldest = journal.oldest_sequence();
    let kept = 100 - oldest + 1;
    assert!((31..=32).contains(&kept), "kept {kept}");
    let files = segment_files(dir.path());
    assert_eq!(files.first(), Some(&oldest), "{files:?}");
    assert_eq!(files.len() as u64, kept.div_ceil(2));

    let message = out_of_range_message(journal.subscribe(Some(oldest - 2), EventFilter::default()));
    assert!(
        message.contains(&format!("sequence {oldest} ")),
        "{message}"
    );
    assert!(message.contains(&format!(">= {}", oldest - 1)), "{message}");

    let mut resumed = journal
        .subscribe(Some(oldest - 1), EventFilter::default())
        .unwrap();
    let events = take(&mut resumed, kept as usize).await;
    assert_eq!(sequences(&events), (oldest..=100).collect::<Vec<_>>());

    drop(resumed);
    drop(journal);
    let journal = open(dir.path(), limits);
    assert_eq!(
        (journal.oldest_sequence(), journal.last_sequence()),
        (oldest, 100)
    );
}

#[tokio::test]
async fn trimming_by_bytes_keeps_the_files_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // A few events per segment.
    let limits = JournalLimits {
        max_events: 1_000_000,
        max_bytes: 8 << 10,
    };
    let journal = open(dir.path(), limits);
    publish(&journal, 500);
    assert!(dir_bytes(dir.path()) <= limits.max_bytes);
    let oldest = journal.oldest_sequence();
    assert!(oldest > 1);
    assert_eq!(segment_files(dir.path()).first(), Some(&oldest));
    assert!(!dir.path().join("events-1.jsonl").exists());

    out_of_range_message(journal.subscribe(Some(0), EventFilter::default()));
    let mut resumed = journal
        .subscribe(Some(oldest - 1), EventFilter::default())
        .unwrap();
    let events = take(&mut resumed, (500 - oldest + 1) as usize).await;
    assert_eq!(sequences(&events), (oldest..=500).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_subscriber_behind_what_was_trimmed_gets_out_of_range_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let limits = JournalLimits {
        max_events: 16,
        max_bytes: 1 << 30,
    };
    let journal = Arc::new(Journal::open_with(dir.path(), limits, 4).unwrap());
    publish(&journal, 10);
    // One subscriber still to replay, one live.
    let mut replaying = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    let mut live = journal.subscribe(None, EventFilter::default()).unwrap();
    let first_live = publish(&journal, 1);
    assert_eq!(take(&mut live, 1).await, first_live);
    // Neither polls while what they miss is trimmed.
    publish(&journal, 100);
    let oldest = journal.oldest_sequence();
    assert!(oldest > 12);

    for subscription in [&mut replaying, &mut live] {
        let message = out_of_range_message(subscription.next().await.unwrap());
        assert!(
            message.contains(&format!("sequence {oldest} ")),
            "{message}"
        );
        assert!(subscription.next().await.is_none(), "ends after the error");
    }
}

#[tokio::test]
async fn a_since_beyond_the_last_event_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    publish(&journal, 3);
    let message = out_of_range_message(journal.subscribe(Some(4), EventFilter::default()));
    assert!(message.contains("beyond the last event, 3"), "{message}");
}

#[test]
fn zero_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for limits in [
        JournalLimits {
            max_events: 0,
            ..JournalLimits::default()
        },
        JournalLimits {
            max_bytes: 0,
            ..JournalLimits::default()
        },
    ] {
        assert!(matches!(
            Journal::open(dir.path(), limits),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[tokio::test]
async fn filters_select_containers_kinds_and_labels() {
    use EventKind::{Create, Exit, Start};
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    let filters: Vec<(EventFilter, Vec<u64>)> = vec![
        (EventFilter::default(), vec![1, 2, 3, 4, 5, 6]),
        (
            EventFilter {
                container_ids: vec!["a".into()],
                ..Default::default()
            },
            vec![1, 5, 6],
        ),
        (
            EventFilter {
                container_ids: vec!["a".into(), "c".into()],
                ..Default::default()
            },
            vec![1, 4, 5, 6],
        ),
        (
            EventFilter {
                kinds: vec![Exit],
                ..Default::default()
            },
            vec![3, 4, 6],
        ),
        (
            EventFilter {
                kinds: vec![Create, Exit],
                ..Default::default()
            },
            vec![1, 2, 3, 4, 6],
        ),
        (
            EventFilter {
                labels: [("tier".to_string(), "db".to_string())].into(),
                ..Default::default()
            },
            vec![1, 5, 6],
        ),
        (
            // Any value of the key.
            EventFilter {
                labels: [("zone".to_string(), String::new())].into(),
                ..Default::default()
            },
            vec![5, 6],
        ),
        (
            EventFilter {
                container_ids: vec!["a".into()],
                kinds: vec![Exit],
                labels: [("tier".to_string(), "db".to_string())].into(),
            },
            vec![6],
        ),
    ];
    // Live subscribers, before the events.
    let mut live: Vec<Subscription> = filters
        .iter()
        .map(|(filter, _)| journal.subscribe(None, filter.clone()).unwrap())
        .collect();
    for d in [
        labelled("a", Create, &[("tier", "db")]),
        labelled("b", Create, &[("tier", "web")]),
        labelled("b", Exit, &[("tier", "web")]),
        labelled("c", Exit, &[]),
        labelled("a", Start, &[("tier", "db"), ("zone", "x")]),
        // Matches every filter: the last event each subscriber gets.
        labelled("a", Exit, &[("tier", "db"), ("zone", "x")]),
    ] {
        journal.publish(d).unwrap();
    }
    for ((filter, expected), live) in filters.iter().zip(&mut live) {
        let mut replayed = journal.subscribe(Some(0), filter.clone()).unwrap();
        for subscription in [live, &mut replayed] {
            let events = take_through(subscription, 6).await;
            assert_eq!(&sequences(&events), expected, "{filter:?}");
        }
    }
}

#[tokio::test]
async fn a_torn_end_is_cut_on_reopen_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), ROOMY);
    publish(&journal, 5);
    journal.flush().unwrap();
    drop(journal);
    let segment = dir.path().join("events-1.jsonl");
    let len = fs::metadata(&segment).unwrap().len();

    // A line torn by a crash, then a block of zeros (a machine crash).
    for tail in [&b"{\"sequence\":6,\"ti"[..], &[0; 512]] {
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(tail)
            .unwrap();
        let journal = open(dir.path(), ROOMY);
        assert_eq!(journal.last_sequence(), 5);
        assert_eq!(fs::metadata(&segment).unwrap().len(), len, "repaired");
    }

    let journal = open(dir.path(), ROOMY);
    assert_eq!(sequences(&publish(&journal, 1)), vec![6]);
    let mut all = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    assert_eq!(sequences(&take(&mut all, 6).await), vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn garbled_lines_and_files_are_skipped_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 2 events: 1-2, 3-4, 5-6.
    let limits = JournalLimits {
        max_events: 32,
        max_bytes: 1 << 30,
    };
    let journal = open(dir.path(), limits);
    publish(&journal, 6);
    drop(journal);
    assert_eq!(segment_files(dir.path()), vec![1, 3, 5]);
    // A garbled segment, a garbled first line in the newest one, and
    // files that are not segments.
    fs::write(dir.path().join("events-3.jsonl"), b"not json\n\x00\xff{\n").unwrap();
    let newest = dir.path().join("events-5.jsonl");
    let text = fs::read_to_string(&newest).unwrap();
    let (line5, line6) = text.split_once('\n').unwrap();
    fs::write(&newest, format!("{}\n{line6}", "#".repeat(line5.len()))).unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    fs::write(dir.path().join("events-x.jsonl"), b"{}\n").unwrap();

    let journal = open(dir.path(), limits);
    // The lost event's sequence is not assigned again.
    assert_eq!((journal.oldest_sequence(), journal.last_sequence()), (1, 6));
    assert_eq!(sequences(&publish(&journal, 1)), vec![7]);
    let mut all = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    assert_eq!(
        sequences(&take_through(&mut all, 7).await),
        vec![1, 2, 6, 7]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_increasing_sequences_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 1,000 events, and a small channel: the subscriber, reading
    // while the threads publish, goes between files and live events.
    let limits = JournalLimits {
        max_events: 16_000,
        max_bytes: 1 << 30,
    };
    let journal = Arc::new(Journal::open_with(dir.path(), limits, 8).unwrap());
    let mut all = journal.subscribe(Some(0), EventFilter::default()).unwrap();
    let reader = tokio::spawn(async move { sequences(&take(&mut all, 4_000).await) });
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| sequences(&publish(&journal, 500))))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for seqs in &per_thread {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    let mut every: Vec<u64> = per_thread.concat();
    every.sort();
    assert_eq!(every, (1..=4_000).collect::<Vec<_>>());
    assert_eq!(reader.await.unwrap(), (1..=4_000).collect::<Vec<_>>());
}
