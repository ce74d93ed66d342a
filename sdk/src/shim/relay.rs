//! containerd's task events, relayed from the agent's numbered event
//! stream: the agent journals them in the order they happened (create,
//! start, exit, delete; exec-added, exec-started, exit), so containerd gets
//! them in that order too, whichever RPC caused them.
//!
//! The stream carries only this shim's containers (by label). If it breaks
//! (the daemon restarted), the relay resubscribes from the last sequence it
//! saw of each agent, missing nothing and repeating nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;
use futures::StreamExt;
use libcrun_shim_proto::v1 as pb;
use log::warn;

use super::convert;
use super::{LABEL_BUNDLE, LABEL_ID, LABEL_NAMESPACE, LABEL_SHIM};
use crate::client::Client;
use crate::error::Result;

/// Pause between resubscriptions while the daemon is away.
const RETRY: Duration = Duration::from_millis(500);

/// What the relay remembers of a container between its events.
#[derive(Default, Clone)]
struct Seen {
    pid: u32,
    exec_pids: HashMap<String, u32>,
    exit: Option<pb::ExitStatus>,
}

struct Relay {
    client: Client,
    publisher: Arc<RemotePublisher>,
    namespace: String,
    labels: HashMap<String, String>,
    cursors: HashMap<String, u64>,
    seen: HashMap<String, Seen>,
}

/// Subscribes to the events of this shim's containers and relays them to
/// containerd until the shim exits. Returns once subscribed.
pub(super) async fn start(
    client: Client,
    publisher: Arc<RemotePublisher>,
    namespace: &str,
    shim_id: &str,
) -> Result<()> {
    let labels: HashMap<String, String> = [
        (LABEL_NAMESPACE.to_string(), namespace.to_string()),
        (LABEL_SHIM.to_string(), shim_id.to_string()),
    ]
    .into_iter()
    .collect();
    let mut relay = Relay {
        client,
        publisher,
        namespace: namespace.to_string(),
        labels,
        cursors: HashMap::new(),
        seen: HashMap::new(),
    };
    let stream = relay.subscribe().await?;
    tokio::spawn(async move {
        let mut stream = Some(stream);
        loop {
            let mut events = match stream.take() {
                Some(s) => s,
                None => match relay.subscribe().await {
                    Ok(s) => s,
                    Err(_) => {
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                },
            };
            while let Some(Ok(event)) = events.next().await {
                relay.cursors.insert(event.agent.clone(), event.sequence);
                relay.handle(event).await;
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    Ok(())
}

impl Relay {
    async fn subscribe(&self) -> Result<tonic::Streaming<pb::Event>> {
        let request = pb::SubscribeEventsRequest {
            since_sequence: None,
            agent_cursors: self
                .cursors
                .iter()
                .map(|(agent, sequence)| pb::AgentCursor {
                    agent: agent.clone(),
                    sequence: *sequence,
                })
                .collect(),
            labels: self.labels.clone(),
            ..Default::default()
        };
        Ok(self.client.events().subscribe(request).await?.into_inner())
    }

    async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        if let Err(e) = self
            .publisher
            .publish(Context::default(), topic, &self.namespace, event)
            .await
        {
            warn!("publishing {topic}: {e}");
        }
    }

    async fn handle(&mut self, event: pb::Event) {
        use pb::EventType as T;
        let Some(id) = event.labels.get(LABEL_ID).cloned() else {
            return;
        };
        let exec_id = event.exec_id.clone();
        match T::try_from(event.r#type).unwrap_or(T::Unspecified) {
            T::Create => {
                let container = self
                    .client
                    .containers()
                    .inspect(pb::InspectContainerRequest {
                        id: event.container_id.clone(),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().container)
                    .unwrap_or_default();
                let config = container.config.unwrap_or_default();
                let stdio = config.stdio.unwrap_or_default();
                self.seen.entry(id.clone()).or_default().pid = container.pid;
                let create = TaskCreate {
                    container_id: id,
                    bundle: event.labels.get(LABEL_BUNDLE).cloned().unwrap_or_default(),
                    io: containerd_shim::protos::protobuf::MessageField::some(TaskIO {
                        stdin: stdio.stdin,
                        stdout: stdio.stdout,
                        stderr: stdio.stderr,
                        terminal: config.terminal,
                        ..Default::default()
                    }),
                    pid: container.pid,
                    ..Default::default()
                };
                self.publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(create))
                    .await;
            }
            T::Start => {
                let pid = self.seen.get(&id).map_or(0, |s| s.pid);
                let start = TaskStart {
                    container_id: id,
                    pid,
                    ..Default::default()
                };
                self.publish(topics::TASK_START_EVENT_TOPIC, Box::new(start))
                    .await;
            }
            T::ExecAdded => {
                let added = TaskExecAdded {
                    container_id: id,
                    exec_id,
                    ..Default::default()
                };
                self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(added))
                    .await;
            }
            T::ExecStarted => {
                let pid = self
                    .client
                    .exec()
                    .inspect_process(pb::InspectProcessRequest {
                        container_id: event.container_id.clone(),
                        exec_id: exec_id.clone(),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().process)
                    .map_or(0, |p| p.pid);
                self.seen
                    .entry(id.clone())
                    .or_default()
                    .exec_pids
                    .insert(exec_id.clone(), pid);
                let started = TaskExecStarted {
                    container_id: id,
                    exec_id,
                    pid,
                    ..Default::default()
                };
                self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(started))
                    .await;
            }
            T::Exit => {
                let exit = match event.details {
                    Some(pb::event::Details::Exit(exit)) => exit,
                    _ => pb::ExitStatus::default(),
                };
                let seen = self.seen.entry(id.clone()).or_default();
                let pid = if exec_id.is_empty() {
                    seen.exit = Some(exit);
                    seen.pid
                } else {
                    seen.exec_pids.get(&exec_id).copied().unwrap_or(0)
                };
                let exited = TaskExit {
                    container_id: id.clone(),
                    id: if exec_id.is_empty() { id } else { exec_id },
                    pid,
                    exit_status: convert::exit_code(&exit),
                    exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
                    ..Default::default()
                };
                self.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(exited))
                    .await;
            }
            T::Oom => {
                let oom = TaskOOM {
                    container_id: id,
                    ..Default::default()
                };
                self.publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(oom))
                    .await;
            }
            T::Pause => {
                let paused = TaskPaused {
                    container_id: id,
                    ..Default::default()
                };
                self.publish(topics::TASK_PAUSED_EVENT_TOPIC, Box::new(paused))
                    .await;
            }
            T::Resume => {
                let resumed = TaskResumed {
                    container_id: id,
                    ..Default::default()
                };
                self.publish(topics::TASK_RESUMED_EVENT_TOPIC, Box::new(resumed))
                    .await;
            }
            T::Delete => {
                let seen = self.seen.remove(&id).unwrap_or_default();
                let exit = seen.exit.unwrap_or_default();
                let deleted = TaskDelete {
                    container_id: id.clone(),
                    pid: seen.pid,
                    exit_status: convert::exit_code(&exit),
                    exited_at: convert::timestamp_of(exit.finished_at.as_ref()),
                    id,
                    ..Default::default()
                };
                self.publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(deleted))
                    .await;
            }
            _ => {}
        }
    }
}
