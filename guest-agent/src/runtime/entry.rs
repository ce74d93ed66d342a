//! One container as the runtime holds it in memory.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, watch};

use crate::model::{ExitStatus, Status};
use crate::store::Record;

/// A container as readers see it, from memory: its record and the exec
/// processes running in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    /// Its record as last published.
    pub record: Record,
    /// The ids of the exec processes running in it.
    pub exec_ids: Vec<String>,
}

/// Everything Inspect shows of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The container.
    pub container: ContainerView,
    /// Its OCI bundle directory.
    pub bundle: PathBuf,
    /// The OCI runtime spec it runs with, as JSON.
    pub oci_spec_json: String,
}

/// A container known to the runtime.
///
/// Operations that change the container take `record` (an async lock, held
/// while libcrun acts but never while waiting for the container to exit).
/// Readers use `snapshot`, updated with every saved change, so listing and
/// inspecting never wait for an operation in progress.
#[derive(Debug)]
pub struct Entry {
    record: Mutex<Record>,
    snapshot: watch::Sender<Record>,
    /// Ids of the exec processes running in the container.
    execs: std::sync::Mutex<BTreeSet<String>>,
    /// Whether someone took on deleting the container after its exit
    /// (`auto_remove`): a Run that reads its output to the end first, or
    /// the exit's own handling.
    removal_claimed: AtomicBool,
}

impl Entry {
    /// An entry for a record.
    pub fn new(record: Record) -> Entry {
        let (snapshot, _) = watch::channel(record.clone());
        Entry {
            record: Mutex::new(record),
            snapshot,
            execs: std::sync::Mutex::new(BTreeSet::new()),
            removal_claimed: AtomicBool::new(false),
        }
    }

    /// Takes the record for a change.
    pub async fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().await
    }

    /// Shows a changed record to readers and waiters.
    pub fn set(&self, record: &Record) {
        self.snapshot.send_replace(record.clone());
    }

    /// The latest published record.
    pub fn snapshot(&self) -> Record {
        self.snapshot.borrow().clone()
    }

    /// The latest published record and the exec processes running now.
    pub fn view(&self) -> ContainerView {
        self.view_of(self.snapshot())
    }

    /// `record` (the locked one, say) with the exec processes running now.
    pub fn view_of(&self, record: Record) -> ContainerView {
        ContainerView {
            record,
            exec_ids: self.execs().iter().cloned().collect(),
        }
    }

    fn execs(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.execs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers exec `exec_id`; false if one of that id runs already.
    pub fn add_exec(&self, exec_id: &str) -> bool {
        self.execs().insert(exec_id.to_string())
    }

    /// Forgets exec `exec_id`, which has ended.
    pub fn remove_exec(&self, exec_id: &str) {
        self.execs().remove(exec_id);
    }

    /// Takes on the deletion of the container after its exit; false if
    /// someone else has.
    pub fn claim_removal(&self) -> bool {
        !self.removal_claimed.swap(true, Ordering::SeqCst)
    }

    /// Follows the published record.
    pub fn subscribe(&self) -> watch::Receiver<Record> {
        self.snapshot.subscribe()
    }

    /// A watch that is true while the container is stopped (its current
    /// run has exited and its output is fully logged).
    pub fn stopped_watch(&self) -> watch::Receiver<bool> {
        let mut records = self.snapshot.subscribe();
        let (tx, rx) = watch::channel(records.borrow().status == Status::Stopped);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = records.changed() => {
                        if changed.is_err() {
                            // The container was deleted: nothing more will come.
                            tx.send_replace(true);
                            return;
                        }
                        let stopped = records.borrow().status == Status::Stopped;
                        tx.send_if_modified(|v| std::mem::replace(v, stopped) != stopped);
                    }
                    () = tx.closed() => return,
                }
            }
        });
        rx
    }

    /// Waits until run `run` of the container has exited, at most
    /// `timeout` (`None`: no limit). Returns its exit status, or `None` at
    /// the timeout.
    pub async fn wait_exit(&self, run: u32, timeout: Option<Duration>) -> Option<ExitStatus> {
        let mut records = self.snapshot.subscribe();
        let wait = async {
            loop {
                {
                    let r = records.borrow_and_update();
                    if r.run != run || r.status == Status::Stopped {
                        if let Some(exit) = r.last_exit {
                            return Some(exit);
                        }
                    }
                }
                if records.changed().await.is_err() {
                    return None;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.ok().flatten(),
            None => wait.await,
        }
    }
}
