//! Running a container to its end in one call: create, start, its output
//! as it is written, its exit, and with `remove` its deletion — what a
//! client would otherwise do in five calls.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use super::{ContainerView, Runtime};
use crate::error::{Error, Result};
use crate::logs::{self, LogEntry, LogQuery};
use crate::model::{ContainerConfig, ExitStatus};

/// What a run reports, in this order: `Started` once, `Output` any number
/// of times, `Exit` once.
#[derive(Debug)]
pub enum RunEvent {
    /// The container, created and started.
    Started(Box<ContainerView>),
    /// Output, in the order it was written.
    Output(Vec<LogEntry>),
    /// How the run ended (after the deletion with `remove`).
    Exit(ExitStatus),
}

/// Events buffered between the run and its reader.
const RUN_EVENTS: usize = 16;

impl Runtime {
    /// Creates and starts a container, then streams its output until it has
    /// exited and all of it was read, and its exit. With `remove` the
    /// container is made with `auto_remove`, and the exit is reported once
    /// it is deleted; it is deleted too when it cannot be started.
    ///
    /// The run goes on without a reader: a receiver dropped early stops the
    /// output, not the container. The deletion is the container's own
    /// (`auto_remove`), so it happens even when this agent is killed before
    /// the exit: the next one deletes it (see [`Runtime::recover`]). Errors
    /// of Create and Start are returned here; those after the start
    /// (reading the logs, deleting) end the stream.
    pub async fn run(
        self: &Arc<Self>,
        mut config: ContainerConfig,
        remove: bool,
    ) -> Result<mpsc::Receiver<Result<RunEvent>>> {
        config.auto_remove |= remove;
        let remove = config.auto_remove;
        let created = self.create(config).await?;
        let id = created.record.config.id.clone();
        if remove {
            // This run deletes the container after reading all its output:
            // removed by its exit's handling, the logs could go unread.
            self.entry(&id)?.claim_removal();
        }
        let started = match self.start(&id).await {
            Ok(view) => view,
            Err(e) => {
                if remove && let Err(removing) = self.delete(&id, true).await {
                    warn!(container = %id, error = %removing, "cannot remove a container that did not start");
                }
                return Err(e);
            }
        };
        let finished = self.entry(&id)?.stopped_watch();
        let (tx, rx) = mpsc::channel(RUN_EVENTS);
        let runtime = Arc::clone(self);
        tokio::spawn(async move {
            let mut failed = None;
            if tx
                .send(Ok(RunEvent::Started(Box::new(started))))
                .await
                .is_ok()
            {
                let query = LogQuery {
                    follow: true,
                    ..LogQuery::everything()
                };
                let mut batches = logs::read(runtime.store.logs_dir(&id), query, finished);
                while let Some(batch) = batches.recv().await {
                    match batch {
                        Ok(entries) => {
                            if tx.send(Ok(RunEvent::Output(entries))).await.is_err() {
                                // Nobody reads: the run goes on unwatched.
                                break;
                            }
                        }
                        Err(e) => {
                            failed = Some(Error::io(format!("reading the logs of {id}"), e));
                            break;
                        }
                    }
                }
            }
            let end = runtime.finish_run(&id, remove).await;
            let last = match (failed, end) {
                (Some(e), _) | (None, Err(e)) => Err(e),
                (None, Ok(exit)) => Ok(RunEvent::Exit(exit)),
            };
            if let Err(unsent) = tx.send(last).await
                && let Err(e) = unsent.0
            {
                warn!(container = %id, error = %e, "a run nobody follows any more failed");
            }
        });
        Ok(rx)
    }

    /// Waits for the run of `id` to exit and, with `remove`, for its
    /// deletion, and returns how it ended.
    async fn finish_run(&self, id: &str, remove: bool) -> Result<ExitStatus> {
        let exit = self.wait(id).await?;
        if remove {
            // The exit's own removal (`auto_remove`) may be under way or
            // done: this returns when the container is gone either way, and
            // deletes it if that removal failed.
            match self.delete(id, false).await {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(exit)
    }
}
