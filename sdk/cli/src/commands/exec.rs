//! `exec`: a process in a running container, its output as it comes, and
//! with `-it` this terminal attached to its pseudo-terminal.

use libcrun_shim::{
    AttachInput, ContainerRuntime, ExecInput, ExecOptions, ExecOutput, TerminalSize,
};
use tokio::io::AsyncReadExt;

use super::containers::write_all;
use super::{CliError, ERROR_EXIT, Result};
use crate::args::ExecArgs;
use crate::tty;

/// Runs the process; returns its exit code.
pub async fn exec(rt: &ContainerRuntime, a: ExecArgs) -> Result {
    // Raw mode only when keystrokes go to the process: without -i, Ctrl-C
    // stays here and ends the exec.
    let raw = if a.tty && a.interactive {
        tty::RawMode::enable().map_err(|e| CliError::Io(e.into()))?
    } else {
        None
    };
    let options = ExecOptions {
        env: a.env,
        working_dir: a.workdir.unwrap_or_default(),
        user: a.user,
        tty: a.tty,
        stdin: a.interactive,
        terminal_size: if a.tty { tty::size() } else { None },
        ..ExecOptions::new(a.command)
    };
    let mut session = rt.exec_interactive(&a.id, options).await?;
    if a.interactive {
        tokio::spawn(pump_stdin(session.input()));
    }
    if a.tty {
        tokio::spawn(follow_resizes(session.input()));
    }
    let mut code = ERROR_EXIT;
    while let Some(output) = session.next().await {
        match output? {
            ExecOutput::Stdout(bytes) => write_all(&mut std::io::stdout(), &bytes)?,
            ExecOutput::Stderr(bytes) => write_all(&mut std::io::stderr(), &bytes)?,
            ExecOutput::Exit(exit) => code = exit.exit_code,
        }
    }
    drop(raw);
    Ok(code)
}

/// The input side of an exec or attach session.
trait ProcessInput: Clone + Send + 'static {
    fn write(&self, data: Vec<u8>) -> impl Future<Output = libcrun_shim::Result<()>> + Send;
    fn close_stdin(&self) -> impl Future<Output = libcrun_shim::Result<()>> + Send;
    fn resize(&self, size: TerminalSize) -> impl Future<Output = libcrun_shim::Result<()>> + Send;
}

impl ProcessInput for ExecInput {
    fn write(&self, data: Vec<u8>) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        ExecInput::write(self, data)
    }
    fn close_stdin(&self) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        ExecInput::close_stdin(self)
    }
    fn resize(&self, size: TerminalSize) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        ExecInput::resize(self, size)
    }
}

impl ProcessInput for AttachInput {
    fn write(&self, data: Vec<u8>) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        AttachInput::write(self, data)
    }
    fn close_stdin(&self) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        AttachInput::close_stdin(self)
    }
    fn resize(&self, size: TerminalSize) -> impl Future<Output = libcrun_shim::Result<()>> + Send {
        AttachInput::resize(self, size)
    }
}

/// Copies this process's stdin to the process's, then closes it.
async fn pump_stdin(input: impl ProcessInput) {
    let mut stdin = tokio::io::stdin();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if input.write(buffer[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = input.close_stdin().await;
}

/// Passes this terminal's size on at each SIGWINCH.
async fn follow_resizes(input: impl ProcessInput) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut resized) = signal(SignalKind::window_change()) else {
        return;
    };
    while resized.recv().await.is_some() {
        if let Some(size) = tty::size()
            && input.resize(size).await.is_err()
        {
            return;
        }
    }
}

/// Attaches to a container's main process: its output here, this
/// terminal's stdin there (when `stdin` and the container keeps one open;
/// raw mode on a terminal container), until it exits; returns its exit code.
pub async fn attach(rt: &ContainerRuntime, id: &str, stdin: bool) -> Result {
    let info = rt.inspect(id).await?;
    let session = rt.attach(id).await?;
    follow_attached(
        session,
        info.config.terminal,
        stdin && info.config.open_stdin,
    )
    .await
}

/// Prints an attached process's output, feeds it stdin and resizes while it
/// runs; returns its exit code.
pub async fn follow_attached(
    mut session: libcrun_shim::AttachSession,
    terminal: bool,
    stdin: bool,
) -> Result {
    let raw = if terminal && stdin {
        tty::RawMode::enable().map_err(|e| CliError::Io(e.into()))?
    } else {
        None
    };
    if stdin {
        tokio::spawn(pump_stdin(session.input()));
    }
    if terminal {
        let input: AttachInput = session.input();
        if let Some(size) = tty::size() {
            let _ = input.resize(size).await;
        }
        tokio::spawn(follow_resizes(input));
    }
    let mut code = ERROR_EXIT;
    while let Some(output) = session.next().await {
        match output? {
            ExecOutput::Stdout(bytes) => write_all(&mut std::io::stdout(), &bytes)?,
            ExecOutput::Stderr(bytes) => write_all(&mut std::io::stderr(), &bytes)?,
            ExecOutput::Exit(exit) => code = exit.exit_code,
        }
    }
    drop(raw);
    Ok(code)
}
