//! The init's control port on vsock. Only the host can reach a guest's
//! vsock port; the protocol is one command line, one answer line (`ok` or
//! `error: ...`):
//!
//! * `poweroff`: the guest shuts down cleanly (the agent stopped, disks
//!   unmounted);
//! * `forward PORT`: the connection is spliced to 127.0.0.1:PORT in the
//!   guest after the `ok` (how crun-shimd forwards host ports where the
//!   hypervisor has no forwarding of its own: Virtualization.framework).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
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
            // A forward lasts as long as its connection.
            std::thread::spawn(move || serve(conn));
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
        command => match command.strip_prefix("forward ").map(str::parse::<u16>) {
            Some(Ok(port)) => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(tcp) => {
                    if writer.write_all(b"ok\n").is_ok() {
                        // What the reader buffered past the line is the
                        // client's first bytes.
                        let early = reader.buffer().to_vec();
                        splice(conn.try_clone(), tcp, early);
                    }
                }
                Err(e) => {
                    let _ = writer.write_all(format!("error: 127.0.0.1:{port}: {e}\n").as_bytes());
                }
            },
            _ => {
                let _ =
                    writer.write_all(format!("error: unknown command {command:?}\n").as_bytes());
            }
        },
    }
}

/// Copies both ways between the vsock connection and the TCP one until
/// either side closes.
fn splice(vsock: std::io::Result<std::fs::File>, mut tcp: TcpStream, early: Vec<u8>) {
    let (Ok(mut from_host), Ok(mut to_guest)) = (vsock, tcp.try_clone()) else {
        return;
    };
    let Ok(mut to_host) = from_host.try_clone() else {
        return;
    };
    if to_guest.write_all(&early).is_err() {
        return;
    }
    let inbound = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_host, &mut to_guest);
        let _ = to_guest.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut tcp, &mut to_host);
    // SAFETY: shuts down the write side of a socket this thread owns.
    unsafe { libc::shutdown(to_host.as_raw_fd(), libc::SHUT_WR) };
    let _ = inbound.join();
}
