//! Running a container to its end in one call
//! ([`ContainerRuntime::run`](crate::ContainerRuntime::run)).

use std::pin::Pin;

use futures::Stream;
use libcrun_shim_proto::v1 as pb;

use crate::container::{ContainerInfo, ExitStatus};
use crate::convert::ConversionError;
use crate::error::Result;
use crate::logs::LogChunk;

/// How [`ContainerRuntime::run`](crate::ContainerRuntime::run) runs a
/// container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// Delete the container once it has exited (or when it cannot be
    /// started), as `docker run --rm`. The agent does it, even when the
    /// client has gone away meanwhile. A container with a restart policy
    /// cannot be removed so (invalid argument).
    pub remove: bool,
}

/// What a run reports, in this order: [`RunEvent::Started`] once,
/// [`RunEvent::Output`] any number of times, [`RunEvent::Exit`] once.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The container, created and started.
    Started(Box<ContainerInfo>),
    /// A piece of its output, in the order it was written.
    Output(LogChunk),
    /// How it ended, after all its output (and after its removal with
    /// [`RunOptions::remove`]).
    Exit(ExitStatus),
}

/// The events of a run, as returned by
/// [`ContainerRuntime::run`](crate::ContainerRuntime::run).
pub type RunStream = Pin<Box<dyn Stream<Item = Result<RunEvent>> + Send>>;

/// A message of the wire's Run stream as events (an output batch is one
/// event per chunk).
pub(crate) fn events(message: pb::RunContainerResponse) -> Vec<Result<RunEvent>> {
    use pb::run_container_response::Event;
    let converted: std::result::Result<Vec<RunEvent>, ConversionError> = match message.event {
        Some(Event::Started(c)) => {
            ContainerInfo::try_from(c).map(|c| vec![RunEvent::Started(Box::new(c))])
        }
        Some(Event::Output(batch)) => batch
            .entries
            .into_iter()
            .map(|e| LogChunk::try_from(e).map(RunEvent::Output))
            .collect(),
        Some(Event::Exit(exit)) => ExitStatus::try_from(exit).map(|e| vec![RunEvent::Exit(e)]),
        None => Err(ConversionError::Missing("run event")),
    };
    match converted {
        Ok(events) => events.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e.into())],
    }
}
