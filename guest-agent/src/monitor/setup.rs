//! Running libcrun's part of the setup in a short-lived child process.
//!
//! A monitor lives as long as its container, but libcrun is needed only
//! for the few milliseconds of the create (or detached exec). Parsing the
//! spec and creating the container scatter allocations over the monitor's
//! heap and dirty libcrun's and its libraries' static data; freed, those
//! pages stay fragmented and resident for the container's whole life
//! (112 KiB of live heap pages after `malloc_trim`, measured). So the
//! monitor forks, the child makes the libcrun calls and sends back what the
//! monitor needs (the pid, the cgroup path, or libcrun's error) as one JSON
//! value over a pipe, and exits: its memory goes with it.
//!
//! The processes libcrun starts are the child's children. When the child
//! exits they are reparented to the monitor, which is a child subreaper, so
//! the monitor still reaps the container's process and reads its exit
//! status, as it would if it had forked it itself (a process that exits
//! before then is handed over as a zombie, with a SIGCHLD).
//!
//! If the monitor is killed during the setup the child is killed too
//! (`PR_SET_PDEATHSIG`), so a dead monitor never leaves a create running
//! behind the agent's back.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getppid};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Exit status of the child when the setup function panicked.
const PANICKED: i32 = 101;
/// The longest error message sent back (a pipe holds 64 KiB at least).
const MAX_MESSAGE: usize = 16 * 1024;

/// Runs `setup` in a forked child and returns its result. libcrun's
/// failures keep their errno and message; a child that could not be
/// started or died without answering is an [`libcrun_sys::Error::Io`].
///
/// Must be called while the process is single-threaded (a monitor always
/// is): the child runs on without an exec.
pub(super) fn in_child<T>(setup: impl FnOnce() -> libcrun_sys::Result<T>) -> libcrun_sys::Result<T>
where
    T: Serialize + DeserializeOwned,
{
    fork_and_wait(setup).unwrap_or_else(|source| {
        Err(libcrun_sys::Error::Io {
            what: "the setup process",
            source,
        })
    })
}

fn fork_and_wait<T>(
    setup: impl FnOnce() -> libcrun_sys::Result<T>,
) -> io::Result<libcrun_sys::Result<T>>
where
    T: Serialize + DeserializeOwned,
{
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(super::errno_io)?;
    let parent = nix::unistd::getpid();
    // SAFETY: the monitor is single-threaded, so no lock is held by a
    // thread that would not exist in the child; the child only runs
    // `setup` and exits with `_exit`, never returning into the caller.
    match unsafe { fork() }.map_err(super::errno_io)? {
        ForkResult::Child => {
            drop(read_end);
            child(parent, write_end, setup)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            // Not read to the end: the container's process, forked by the
            // child, holds a copy of the write end until it executes the
            // container's program. The child writes its answer (far less
            // than a pipe holds) before it exits, so once it has exited the
            // answer is all in the pipe.
            let status = wait_for(child);
            nix::fcntl::fcntl(
                &read_end,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(super::errno_io)?;
            let mut answer = Vec::new();
            match File::from(read_end).read_to_end(&mut answer) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let answer: Result<T, (i32, String)> =
                serde_json::from_slice(&answer).map_err(|_| {
                    io::Error::other(format!(
                        "the setup process died without answering ({status})"
                    ))
                })?;
            Ok(answer.map_err(|(errno, message)| libcrun_sys::Error::Libcrun { errno, message }))
        }
    }
}

/// The child's side: runs `setup`, writes its result, exits.
fn child<T: Serialize>(
    parent: Pid,
    write_end: OwnedFd,
    setup: impl FnOnce() -> libcrun_sys::Result<T>,
) -> ! {
    // Die with the monitor; if it is already gone, stop here.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if getppid() != parent {
        // SAFETY: ends this child without running the parent's destructors.
        unsafe { libc::_exit(1) };
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(setup));
    let code = match outcome {
        Ok(result) => {
            let result = result.map_err(|e| (e.errno().unwrap_or(0), bounded(e.to_string())));
            let sent = serde_json::to_vec(&result)
                .map_err(io::Error::other)
                .and_then(|json| File::from(write_end).write_all(&json));
            if sent.is_ok() { 0 } else { 1 }
        }
        Err(_) => PANICKED,
    };
    // SAFETY: ends this child without running the parent's destructors or
    // atexit handlers (the parent's buffers and files are its own).
    unsafe { libc::_exit(code) }
}

/// `message` cut to [`MAX_MESSAGE`] bytes: the whole answer must fit in the
/// pipe, which is read only once the child has exited.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Reaps the child; says how it ended.
fn wait_for(child: Pid) -> String {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, signal, _)) => return format!("killed by {signal}"),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return format!("not waited for: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_answer_comes_from_the_child() {
        let pid = in_child(|| Ok(std::process::id())).unwrap();
        assert_ne!(pid, std::process::id());
    }

    #[test]
    fn libcrun_errors_keep_their_errno_and_message() {
        let e = in_child::<()>(|| {
            Err(libcrun_sys::Error::Libcrun {
                errno: libc::ENOENT,
                message: "no such thing".into(),
            })
        })
        .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert_eq!(e.to_string(), "no such thing");
    }

    #[test]
    fn a_child_dying_without_an_answer_is_an_error() {
        // SAFETY: ends the child at once, as a crash in libcrun would.
        let e = in_child::<()>(|| unsafe { libc::_exit(3) }).unwrap_err();
        assert!(e.to_string().contains("exit status 3"), "{e}");
    }

    /// The container's process, forked by the child, holds the pipe's
    /// write end until it executes: the answer must not wait for it.
    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hold_the_answer_back() {
        let began = Instant::now();
        let grandchild = in_child(|| {
            // SAFETY: the grandchild only sleeps and exits.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => {
                    std::thread::sleep(Duration::from_secs(30));
                    // SAFETY: ends the grandchild.
                    unsafe { libc::_exit(0) }
                }
                ForkResult::Parent { child } => Ok(child.as_raw()),
            }
        })
        .unwrap();
        assert!(began.elapsed() < Duration::from_secs(10));
        let _ = nix::sys::signal::kill(Pid::from_raw(grandchild), nix::sys::signal::SIGKILL);
    }

    /// A killed monitor leaves no setup running behind the agent's back.
    #[test]
    fn the_child_dies_with_the_monitor() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        // SAFETY: the forked "monitor" only calls in_child and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(read_end);
                let mut write_end = File::from(write_end);
                let _ = in_child(|| {
                    let _ = writeln!(write_end, "{}", std::process::id());
                    std::thread::sleep(Duration::from_secs(60));
                    Ok(())
                });
                // SAFETY: ends the forked monitor.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child: monitor } => {
                drop(write_end);
                let mut line = String::new();
                io::BufRead::read_line(&mut io::BufReader::new(File::from(read_end)), &mut line)
                    .unwrap();
                let setup: i32 = line.trim().parse().unwrap();
                nix::sys::signal::kill(monitor, nix::sys::signal::SIGKILL).unwrap();
                waitpid(monitor, None).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                // Gone, or a zombie waiting for whoever adopted it.
                let alive = || {
                    std::fs::read_to_string(format!("/proc/{setup}/stat")).is_ok_and(|s| {
                        !s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                };
                while alive() {
                    assert!(
                        Instant::now() < deadline,
                        "setup process {setup} outlived its monitor"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}
