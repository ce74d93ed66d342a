//! Running a container to its end in one call: create, start, its output
//! as it is written, its exit, and with `remove` its deletion — what a
//! client would otherwise do in five calls.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use super::{ContainerView, Runtime};
use crate::error::{Error, Result};
use crate::logs::{self, LogEntry, LogQuery};
use crate::model::{ContainerConfig, ExitStatus, RestartPolicy};

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
    /// exited and all of it was read, and its exit. With `remove` it is
    /// deleted before the exit is reported, and when it cannot be started.
    ///
    /// The run goes on without a reader: a receiver dropped early stops the
    /// output, not the container, and `remove` still deletes it once it has
    /// exited. Errors of Create and Start are returned here; those after the
    /// start (reading the logs, deleting) end the stream.
    pub async fn run(
        self: &Arc<Self>,
        config: ContainerConfig,
        remove: bool,
    ) -> Result<mpsc::Receiver<Result<RunEvent>>> {
        if remove && config.restart_policy != RestartPolicy::No {
            // Removed at its first exit, it could never restart.
            return Err(Error::InvalidArgument(
                "a run that removes its container cannot have a restart policy".into(),
            ));
        }
        let created = self.create(config).await?;
        let id = created.record.config.id.clone();
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
                    tail: None,
                    since: None,
                    until: None,
                    stdout: true,
                    stderr: true,
                    merge_lines: false,
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

    /// Waits for the run of `id` to exit, deletes it with `remove`, and
    /// returns how it ended.
    async fn finish_run(&self, id: &str, remove: bool) -> Result<ExitStatus> {
        let exit = self.wait(id).await?;
        if remove {
            self.delete(id, false).await?;
        }
        Ok(exit)
    }
}
