//! What the streaming server runs: exec and attach sessions over
//! crun-shimd's Exec and Attach streams, and port-forwarding into a pod's
//! network namespace.

use std::future::Future;
use std::os::fd::AsFd;
use std::path::PathBuf;

use crun_shim_streaming::{
    AttachRequest, ExecRequest, PortStream, ProcessIo, Runtime, RuntimeError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{ContainerRuntime, ExecOptions, ExecOutput, TerminalSize};

/// The [`Runtime`] behind the CRI server's streaming URLs.
#[derive(Debug, Clone)]
pub(crate) struct StreamRuntime {
    pub(crate) runtime: ContainerRuntime,
}

impl Runtime for StreamRuntime {
    async fn exec(&self, request: ExecRequest, mut io: ProcessIo) -> Result<i32, RuntimeError> {
        // The first size, when the client knows it, is the initial one.
        let terminal_size = match io.resize.as_mut() {
            Some(sizes) if io.tty => sizes.try_recv().ok().map(terminal_size),
            _ => None,
        };
        let session = self
            .runtime
            .exec_interactive(
                &request.container_id,
                ExecOptions {
                    tty: io.tty,
                    stdin: io.stdin.is_some(),
                    terminal_size,
                    ..ExecOptions::new(request.command.clone())
                },
            )
            .await
            .map_err(runtime_error)?;
        match relay(session, io, StdinEnd::Close).await? {
            Relayed::Exited(code) => Ok(code),
            Relayed::Detached => Err(RuntimeError::new(
                "the exec stream ended without an exit status",
            )),
        }
    }

    async fn attach(&self, request: AttachRequest, mut io: ProcessIo) -> Result<(), RuntimeError> {
        // A container made without `stdin` has /dev/null for stdin: the
        // client's is not wanted (as containerd, the request cannot add it).
        let stdin_end = match super::meta::decode::<super::proto::ContainerConfig>(
            &self
                .runtime
                .inspect(&request.container_id)
                .await
                .map_err(runtime_error)?,
        ) {
            Some(config) if config.stdin && config.stdin_once => StdinEnd::Close,
            Some(config) if config.stdin => StdinEnd::Detach,
            _ => {
                io.stdin = None;
                StdinEnd::Detach
            }
        };
        let session = self
            .runtime
            .attach(&request.container_id)
            .await
            .map_err(runtime_error)?;
        relay(session, io, stdin_end).await.map(|_| ())
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
        mut stream: PortStream,
    ) -> Result<(), RuntimeError> {
        let sandbox = self
            .runtime
            .inspect(&pod_sandbox_id)
            .await
            .map_err(|e| RuntimeError::new(e.to_string()))?;
        if sandbox.pid == 0 {
            return Err(RuntimeError::new(format!(
                "pod sandbox {pod_sandbox_id} is not running"
            )));
        }
        let netns = PathBuf::from(format!("/proc/{}/ns/net", sandbox.pid));
        let tcp = connect_in(netns, port).await?;
        let mut tcp = tokio::net::TcpStream::from_std(tcp)?;
        tokio::io::copy_bidirectional(&mut stream, &mut tcp).await?;
        Ok(())
    }
}

fn runtime_error(e: crate::Error) -> RuntimeError {
    RuntimeError::new(e.to_string())
}

fn terminal_size(size: crun_shim_streaming::TerminalSize) -> TerminalSize {
    TerminalSize {
        rows: size.height,
        cols: size.width,
    }
}

/// What the end of the client's stdin does to the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdinEnd {
    /// Its stdin is closed (an exec's; an attach to a `stdin_once`
    /// container's).
    Close,
    /// The client detaches; the process and its stdin go on (an attach to a
    /// container with `stdin` without `stdin_once`).
    Detach,
}

/// How a relayed session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relayed {
    /// The process exited with this code; its output was written.
    Exited(i32),
    /// The client's stdin ended and the client detached.
    Detached,
}

/// A process session of crun-shimd (Exec's, Attach's): its output, and a
/// handle for its input.
trait Session: Send {
    /// The input handle.
    type Input: SessionInput;
    /// A handle for its stdin and terminal.
    fn input(&self) -> Self::Input;
    /// Its next output; the exit last, then `None`.
    fn next(&mut self) -> impl Future<Output = Option<crate::Result<ExecOutput>>> + Send;
}

/// The input side of a [`Session`].
trait SessionInput: Send + Sync + 'static {
    /// Writes to the process's stdin.
    fn write(&self, data: Vec<u8>) -> impl Future<Output = crate::Result<()>> + Send;
    /// Closes the process's stdin.
    fn close_stdin(&self) -> impl Future<Output = crate::Result<()>> + Send;
    /// Resizes its terminal.
    fn resize(&self, size: TerminalSize) -> impl Future<Output = crate::Result<()>> + Send;
}

macro_rules! session {
    ($session:ty, $input:ty) => {
        impl Session for $session {
            type Input = $input;
            fn input(&self) -> $input {
                <$session>::input(self)
            }
            fn next(&mut self) -> impl Future<Output = Option<crate::Result<ExecOutput>>> + Send {
                <$session>::next(self)
            }
        }
        impl SessionInput for $input {
            fn write(&self, data: Vec<u8>) -> impl Future<Output = crate::Result<()>> + Send {
                <$input>::write(self, data)
            }
            fn close_stdin(&self) -> impl Future<Output = crate::Result<()>> + Send {
                <$input>::close_stdin(self)
            }
            fn resize(&self, size: TerminalSize) -> impl Future<Output = crate::Result<()>> + Send {
                <$input>::resize(self, size)
            }
        }
    };
}
session!(crate::ExecSession, crate::ExecInput);
session!(crate::AttachSession, crate::AttachInput);

/// Copies the client's stdin and terminal sizes to `session` and its output
/// to the client, until the process exited and its output was written (or,
/// with [`StdinEnd::Detach`], the client's stdin ended).
async fn relay<S: Session>(
    mut session: S,
    io: ProcessIo,
    stdin_end: StdinEnd,
) -> Result<Relayed, RuntimeError> {
    let ProcessIo {
        stdin,
        mut stdout,
        mut stderr,
        resize,
        ..
    } = io;
    let input = session.input();
    // Ready when the client's stdin ended and the session should end with
    // it; pending forever otherwise.
    let pump_stdin = async move {
        let Some(mut stdin) = stdin else {
            return std::future::pending().await;
        };
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input.write(buf[..n].to_vec()).await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
        match stdin_end {
            StdinEnd::Close => {
                let _ = input.close_stdin().await;
                std::future::pending().await
            }
            StdinEnd::Detach => (),
        }
    };
    let resizer = session.input();
    let follow_resizes = async move {
        if let Some(mut sizes) = resize {
            while let Some(size) = sizes.recv().await {
                if resizer.resize(terminal_size(size)).await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<std::convert::Infallible>().await
    };
    let output = async {
        while let Some(item) = session.next().await {
            match item.map_err(runtime_error)? {
                ExecOutput::Stdout(data) => {
                    if let Some(out) = stdout.as_mut() {
                        out.write_all(&data).await?;
                    }
                }
                ExecOutput::Stderr(data) => {
                    if let Some(out) = stderr.as_mut() {
                        out.write_all(&data).await?;
                    }
                }
                ExecOutput::Exit(exit) => {
                    for out in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
                        let _ = out.shutdown().await;
                    }
                    return Ok(Relayed::Exited(exit.exit_code));
                }
            }
        }
        Err(RuntimeError::new(
            "the process's stream ended without an exit status",
        ))
    };
    tokio::select! {
        result = output => result,
        () = pump_stdin => Ok(Relayed::Detached),
        never = follow_resizes => match never {},
    }
}

/// Connects to `127.0.0.1:port` from inside the network namespace at
/// `netns`: on a thread of its own that enters the namespace (a socket
/// stays in the namespace it was made in), so no other task is moved.
async fn connect_in(netns: PathBuf, port: u16) -> Result<std::net::TcpStream, RuntimeError> {
    tokio::task::spawn_blocking(move || -> Result<std::net::TcpStream, RuntimeError> {
        let ns = std::fs::File::open(&netns)
            .map_err(|e| RuntimeError::new(format!("{}: {e}", netns.display())))?;
        // The blocking pool's thread must not keep the pod's namespace:
        // the connection is made on a thread of its own that then ends.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| RuntimeError::new(format!("entering the pod's network: {e}")),
                    )?;
                    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
                        RuntimeError::new(format!("connecting to port {port} in the pod: {e}"))
                    })?;
                    tcp.set_nonblocking(true)?;
                    Ok(tcp)
                })
                .join()
                .map_err(|_| RuntimeError::new("the port-forward thread panicked"))?
        })
    })
    .await
    .map_err(|e| RuntimeError::new(e.to_string()))?
}
