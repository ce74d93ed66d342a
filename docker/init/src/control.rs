//! The init's control port on vsock: the host writes `poweroff` and the
//! guest shuts down cleanly (the agent stopped, disks unmounted). Only the
//! host can reach a guest's vsock port; the line protocol is one command,
//! one answer (`ok` or `error: ...`).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, VsockAddr, accept, bind, socket,
};
use nix::unistd::Pid;

use crate::log;

/// Listens on `port` in a thread of its own. A failure is logged: the
/// guest still runs, and the host falls back to stopping QEMU.
pub fn listen(port: u32) {
    let listener = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .and_then(|fd| {
        bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))?;
        nix::sys::socket::listen(&fd, Backlog::new(4)?)?;
        Ok(fd)
    });
    let listener = match listener {
        Ok(fd) => fd,
        Err(e) => {
            log(&format!("control port {port}: {e}"));
            return;
        }
    };
    std::thread::spawn(move || {
        loop {
            let Ok(fd) = accept(listener.as_raw_fd()) else {
                continue;
            };
            // SAFETY: accept returned a new descriptor owned by nobody else.
            let conn = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            serve(conn);
        }
    });
}

fn serve(conn: std::fs::File) {
    let mut line = String::new();
    let mut reader = BufReader::new(&conn);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut writer = &conn;
    match line.trim() {
        "poweroff" => {
            let _ = writer.write_all(b"ok\n");
            // Handled by the main loop like any other request to stop.
            let _ = kill(Pid::from_raw(1), Signal::SIGPWR);
        }
        other => {
            let _ = writer.write_all(format!("error: unknown command {other:?}\n").as_bytes());
        }
    }
}
