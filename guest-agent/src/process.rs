//! Processes the agent watches but may not be the parent of: identified by
//! pid and start time (so a reused pid is never mistaken for the original),
//! awaited through a pidfd.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// A process: its pid and its start time in clock ticks since boot (field
/// 22 of `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    /// The pid.
    pub pid: i32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// The state letter and start time of `pid`, from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; the start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

impl ProcessRef {
    /// The running process `pid`, if it exists.
    pub fn of(pid: i32) -> Option<ProcessRef> {
        stat(pid).map(|(_, start_time)| ProcessRef { pid, start_time })
    }

    /// Whether this very process still runs (a zombie does not count).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Waits until the process has exited. Returns at once if it is gone.
    pub async fn exited(&self) -> io::Result<()> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, libc::O_NONBLOCK) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(()),
                _ => Err(err),
            };
        }
        // SAFETY: `fd` is a new pidfd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // The pid may have been reused between our check and pidfd_open.
        if !self.is_alive() {
            return Ok(());
        }
        let fd = crate::fdpass::register(fd, tokio::io::Interest::READABLE)?;
        // A pidfd becomes readable when its process exits.
        let _ready = fd.readable().await?;
        reap(self.pid);
        Ok(())
    }
}

/// The live processes whose working directory is `dir`: the monitors of a
/// container work in its directory.
pub fn working_in(dir: &std::path::Path) -> Vec<ProcessRef> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .filter_map(ProcessRef::of)
        .filter(ProcessRef::is_alive)
        .collect()
}

/// Reaps `pid` if it is an exited child of this process (so it does not
/// linger as a zombie); does nothing otherwise.
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking wait for one specific pid.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bad_start_time_is_not() {
        let me = ProcessRef::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessRef {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[tokio::test]
    async fn exited_returns_when_the_process_ends() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let p = ProcessRef::of(child.id() as i32).unwrap();
        assert!(p.is_alive());
        tokio::time::timeout(std::time::Duration::from_secs(5), p.exited())
            .await
            .expect("exit seen")
            .unwrap();
        assert!(!p.is_alive());
        // `exited` reaped it already.
        assert!(child.try_wait().is_err() || child.try_wait().unwrap().is_some());
    }
}
