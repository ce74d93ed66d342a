//! Talking to the guest's init on its vsock control port (see
//! `docker/init/src/control.rs`): `poweroff`, and `forward PORT`, which
//! turns the connection into one to the guest's 127.0.0.1:PORT.
//!
//! Forwarding host ports this way works with any hypervisor that gives the
//! host a hybrid-vsock socket: the macOS backend uses it (Virtualization
//! framework's NAT forwards nothing); QEMU forwards ports itself.

use std::io;
use std::path::{Path, PathBuf};

use crun_shim_init::params::CONTROL_PORT;
use libcrun_shim_transport::connect_hybrid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tracing::debug;

/// Sends `command` to the init through the VM's hybrid-vsock socket
/// `vsock`; on `ok` the stream is returned (a forward's connection).
pub async fn command(vsock: &Path, command: &str) -> io::Result<UnixStream> {
    let mut stream = connect_hybrid(vsock, CONTROL_PORT).await?;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 || byte[0] == b'\n' || answer.len() > 512 {
            break;
        }
        answer.push(byte[0]);
    }
    let answer = String::from_utf8_lossy(&answer);
    if answer == "ok" {
        Ok(stream)
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("the guest's init answered {command:?} with {answer:?}"),
        ))
    }
}

/// Asks the guest to power off (its init stops the agent, unmounts the
/// disks and stops the machine).
pub async fn poweroff(vsock: &Path) -> io::Result<()> {
    command(vsock, "poweroff").await.map(drop)
}

/// A connection to the guest's 127.0.0.1:`port`.
pub async fn forward(vsock: &Path, port: u16) -> io::Result<UnixStream> {
    command(vsock, &format!("forward {port}")).await
}

/// Serves `listener`: each connection is carried to the guest's `port`.
pub async fn serve_forward(listener: TcpListener, vsock: PathBuf, port: u16) {
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            continue;
        };
        let vsock = vsock.clone();
        tokio::spawn(async move {
            let carried = async {
                let mut guest = forward(&vsock, port).await?;
                tokio::io::copy_bidirectional(&mut tcp, &mut guest).await
            };
            if let Err(e) = carried.await {
                debug!(%peer, port, error = %e, "forwarded connection ended");
            }
        });
    }
}
