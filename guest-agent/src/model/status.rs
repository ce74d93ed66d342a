//! The state of a container and the operations each state allows, how a
//! process ends, and the network a container was given.

use std::path::PathBuf;
use std::time::SystemTime;

use crun_shim_network::{InterfaceInfo, PortMapping};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, waiting for Start.
    Created,
    /// Its init process runs.
    Running,
    /// Frozen.
    Paused,
    /// Its init process has exited.
    Stopped,
}

impl Status {
    /// The lower-case name ("running").
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Start: only a created container starts.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    /// Kill: a running or paused container, as the API promises (and
    /// Docker does). A created one has no user process yet: Stop or Delete
    /// end it.
    pub fn can_kill(self) -> bool {
        self.is_active()
    }

    /// Pause: only a running container.
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }

    /// Resume: only a paused container.
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }

    /// Delete without force: a stopped container, or a created one (whose
    /// init process never ran the user's command and is killed first).
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped)
    }

    /// Exec: only in a running container.
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }

    /// Attach to the main process's streams: while it exists (created,
    /// running or paused), so that a client attached before Start misses
    /// nothing.
    pub fn can_attach(self) -> bool {
        self != Status::Stopped
    }

    /// Whether its user processes are up (running or paused): it has
    /// metrics, and deleting it needs force.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// Whether the state allows `operation`.
    pub fn allows(self, operation: Operation) -> bool {
        match operation {
            Operation::Start => self.can_start(),
            Operation::Kill => self.can_kill(),
            Operation::Pause => self.can_pause(),
            Operation::Resume => self.can_resume(),
            Operation::Delete => self.can_delete(),
            Operation::Exec => self.can_exec(),
            Operation::Attach => self.can_attach(),
            Operation::Metrics => self.is_active(),
        }
    }

    /// `Ok` when the state allows `operation` on container `id`, else
    /// [`Error::InvalidState`] carrying the state.
    pub fn check(self, id: &str, operation: Operation) -> Result<()> {
        if self.allows(operation) {
            Ok(())
        } else {
            Err(Error::InvalidState {
                id: id.to_string(),
                status: self,
                operation,
            })
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operations a container's state decides (see [`Status::allows`]).
/// Stop and Update are allowed in every state: stopping a stopped
/// container does nothing, and the limits of a stopped one apply to its
/// next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Start a created container.
    Start,
    /// Send a signal to its processes.
    Kill,
    /// Freeze it.
    Pause,
    /// Thaw it.
    Resume,
    /// Delete it without force.
    Delete,
    /// Run a process in it.
    Exec,
    /// Attach to its main process's streams.
    Attach,
    /// Read its resource usage.
    Metrics,
}

impl Operation {
    /// What the operation needs, as said to the caller refused it.
    pub fn requirement(self) -> &'static str {
        match self {
            Operation::Start => "only a created container can be started",
            Operation::Kill => "only a running or paused container can be signalled",
            Operation::Pause => "only a running container can be paused",
            Operation::Resume => "only a paused container can be resumed",
            Operation::Delete => "stop it first, or delete it with force",
            Operation::Exec => "processes run only in a running container",
            Operation::Attach => "its main process has exited",
            Operation::Metrics => "only a running or paused container has metrics",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Start => "start it",
            Operation::Kill => "signal it",
            Operation::Pause => "pause it",
            Operation::Resume => "resume it",
            Operation::Delete => "delete it without force",
            Operation::Exec => "run a process in it",
            Operation::Attach => "attach to it",
            Operation::Metrics => "read its metrics",
        })
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code; 128+N when killed by signal N.
    pub exit_code: i32,
    /// The killing signal, 0 if it exited on its own.
    pub signal: i32,
    /// Whether the OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it ended.
    pub finished_at: SystemTime,
    /// The end was not observed (the agent or the monitor was killed
    /// meanwhile): `exit_code` and `signal` say what the agent knows, 255
    /// and 0 when nothing, or SIGKILL when it killed what was left.
    #[serde(default)]
    pub unknown: bool,
}

impl ExitStatus {
    /// The status of a process from its exit code, where 128+N (N a
    /// signal, 1 to 64) means killed by signal N, as shells report it.
    pub fn from_code(exit_code: i32, finished_at: SystemTime) -> ExitStatus {
        let signal = if (129..=128 + 64).contains(&exit_code) {
            exit_code - 128
        } else {
            0
        };
        ExitStatus {
            exit_code,
            signal,
            oom_killed: false,
            finished_at,
            unknown: false,
        }
    }

    /// The status of a process whose end was not observed: exit code 255,
    /// or 137 when the agent killed what was left of it.
    pub fn unknown(killed: bool, finished_at: SystemTime) -> ExitStatus {
        ExitStatus {
            unknown: true,
            ..ExitStatus::from_code(if killed { 128 + libc::SIGKILL } else { 255 }, finished_at)
        }
    }

    /// The status of a process from its raw `waitpid` status.
    pub fn from_wait_status(status: i32, finished_at: SystemTime) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            ExitStatus {
                exit_code: 128 + signal,
                signal,
                oom_killed: false,
                finished_at,
                unknown: false,
            }
        } else {
            ExitStatus {
                exit_code: libc::WEXITSTATUS(status),
                signal: 0,
                oom_killed: false,
                finished_at,
                unknown: false,
            }
        }
    }
}

/// A container's network as it was made at Create: a snapshot of its
/// attachment (or of the one it joined), which does not change while the
/// container exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Its interfaces, one per network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
    /// Its published ports, host ports resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// The persistent network namespace it runs in (bridge mode, or the
    /// bridge container it joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Operation; 8] = [
        Operation::Start,
        Operation::Kill,
        Operation::Pause,
        Operation::Resume,
        Operation::Delete,
        Operation::Exec,
        Operation::Attach,
        Operation::Metrics,
    ];

    /// The operations `status` allows, in the order of [`ALL`].
    fn allowed(status: Status) -> Vec<Operation> {
        ALL.into_iter().filter(|op| status.allows(*op)).collect()
    }

    /// Every refused operation is the one error carrying the state.
    fn refusals_carry_the_state(status: Status) {
        for op in ALL.into_iter().filter(|op| !status.allows(*op)) {
            match status.check("c1", op) {
                Err(Error::InvalidState {
                    id,
                    status: carried,
                    operation,
                }) => {
                    assert_eq!((id.as_str(), carried, operation), ("c1", status, op));
                }
                other => panic!("{status:?} {op:?}: {other:?}"),
            }
            let message = status.check("c1", op).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("container c1 is {status}: cannot {op}")),
                "{message}"
            );
        }
    }

    #[test]
    fn created_starts_and_is_deleted_but_not_signalled_paused_or_entered() {
        use Operation::*;
        assert_eq!(allowed(Status::Created), [Start, Delete, Attach]);
        refusals_carry_the_state(Status::Created);
    }

    #[test]
    fn running_is_signalled_paused_entered_and_measured() {
        use Operation::*;
        assert_eq!(
            allowed(Status::Running),
            [Kill, Pause, Exec, Attach, Metrics]
        );
        refusals_carry_the_state(Status::Running);
    }

    #[test]
    fn paused_is_signalled_resumed_and_measured_only() {
        use Operation::*;
        assert_eq!(allowed(Status::Paused), [Kill, Resume, Attach, Metrics]);
        refusals_carry_the_state(Status::Paused);
    }

    #[test]
    fn stopped_is_only_deleted() {
        use Operation::*;
        assert_eq!(allowed(Status::Stopped), [Delete]);
        refusals_carry_the_state(Status::Stopped);
    }
}
