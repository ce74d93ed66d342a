//! What the streaming server runs: exec sessions over crun-shimd's Exec
//! stream, and port-forwarding into a pod's network namespace.

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
    async fn exec(&self, request: ExecRequest, io: ProcessIo) -> Result<i32, RuntimeError> {
        let ProcessIo {
            stdin,
            mut stdout,
            mut stderr,
            resize,
            tty,
        } = io;
        let mut resize = resize;
        // The first size, when the client knows it, is the initial one.
        let terminal_size = match resize.as_mut() {
            Some(sizes) if tty => sizes.try_recv().ok().map(|s| TerminalSize {
                rows: s.height,
                cols: s.width,
            }),
            _ => None,
        };
        let mut session = self
            .runtime
            .exec_interactive(
                &request.container_id,
                ExecOptions {
                    tty,
                    stdin: stdin.is_some(),
                    terminal_size,
                    ..ExecOptions::new(request.command.clone())
                },
            )
            .await
            .map_err(|e| RuntimeError::new(e.to_string()))?;

        let input = session.input();
        let pump_stdin = async move {
            if let Some(mut stdin) = stdin {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if input.write(buf[..n].to_vec()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = input.close_stdin().await;
            }
        };
        let resizer = session.input();
        let follow_resizes = async move {
            if let Some(mut sizes) = resize {
                while let Some(size) = sizes.recv().await {
                    let size = TerminalSize {
                        rows: size.height,
                        cols: size.width,
                    };
                    if resizer.resize(size).await.is_err() {
                        break;
                    }
                }
            }
        };
        let output = async {
            while let Some(item) = session.next().await {
                match item.map_err(|e| RuntimeError::new(e.to_string()))? {
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
                        return Ok(exit.exit_code);
                    }
                }
            }
            Err(RuntimeError::new(
                "the exec stream ended without an exit status",
            ))
        };
        tokio::pin!(pump_stdin, follow_resizes, output);
        let (mut stdin_done, mut resizes_done) = (false, false);
        loop {
            tokio::select! {
                result = &mut output => return result,
                () = &mut pump_stdin, if !stdin_done => stdin_done = true,
                () = &mut follow_resizes, if !resizes_done => resizes_done = true,
            }
        }
    }

    async fn attach(&self, request: AttachRequest, _io: ProcessIo) -> Result<(), RuntimeError> {
        Err(RuntimeError::new(format!(
            "attaching to {} is not supported by this CRI server yet",
            request.container_id
        )))
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
