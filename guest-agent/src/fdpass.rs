//! File descriptors: receiving one over a Unix socket (SCM_RIGHTS), as
//! libcrun sends a terminal master to a console socket, and registering one
//! with tokio.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// Receives one message on `socket` and returns the descriptor it carried
/// (close-on-exec), `None` if it carried none.
pub fn recv_fd(socket: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut buf = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just gave us these descriptors; we own
                // them and keep the first.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                received.get_or_insert(fd);
            }
        }
    }
    Ok(received)
}

/// Registers an owned descriptor with tokio's reactor.
pub fn register(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` stays open and keeps its number for as long as
    // it is owned, which is the lifetime of the `AsyncFd`.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(io::Error::from)
}
