//! The standard streams a monitor holds for its process besides the log
//! files: the targets of its [`StdioConfig`] (FIFOs, files, a logging
//! program), the source of its stdin, and the clients attached through
//! the monitor's attach socket.
//!
//! Everything here is non-blocking and driven by the monitor's single
//! `poll` loop: [`Hub::interests`] says which descriptors to watch and
//! [`Hub::ready`] acts on what `poll` reported. A target that does not keep
//! up holds its stream back ([`Hub::holds_back`]): the monitor stops reading
//! the process's pipe, which then blocks, as writing to a FIFO would. An
//! attached client that does not keep up is dropped instead.
//!
//! # The attach socket
//!
//! `attach.sock` in the monitor's directory; the agent connects to it for
//! each Attach stream. Frames are one kind byte, a big-endian `u32` length
//! and the payload. From the client: [`FRAME_STDIN`] (bytes),
//! [`FRAME_CLOSE_STDIN`] (empty), [`FRAME_RESIZE`] (rows and columns, two
//! big-endian `u16`). From the monitor: [`FRAME_STDOUT`], [`FRAME_STDERR`].
//! The monitor closes the connection once the process's output has ended.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::logs::Stream;
use crate::stdio::{OutputTarget, StdioConfig};

/// The attach socket's name in the monitor's directory.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// Client → monitor: bytes for stdin.
pub const FRAME_STDIN: u8 = 1;
/// Client → monitor: close stdin.
pub const FRAME_CLOSE_STDIN: u8 = 2;
/// Client → monitor: resize the terminal (rows, cols as big-endian u16).
pub const FRAME_RESIZE: u8 = 3;
/// Monitor → client: stdout bytes.
pub const FRAME_STDOUT: u8 = 1;
/// Monitor → client: stderr bytes.
pub const FRAME_STDERR: u8 = 2;
/// Bytes a target may have unwritten before its stream is held back.
const TARGET_BACKLOG: usize = 1 << 20;
/// Bytes an attached client may have unread before it is dropped.
const CLIENT_BACKLOG: usize = 4 << 20;
/// Bytes of stdin waiting for the process before the sources are no longer
/// read.
const STDIN_BACKLOG: usize = 1 << 20;
/// The largest frame a client may send.
const MAX_FRAME: usize = 1 << 20;
/// How long a logging program has to signal readiness.
const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a logging program has to exit once its input closed.
const LOGGER_EXIT_TIMEOUT: Duration = Duration::from_secs(12);

fn errno_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL).map_err(errno_io)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(errno_io)?;
    Ok(())
}

/// Writes as much of `pending` as `fd` takes now; `Err` when it is broken.
fn write_some(fd: BorrowedFd<'_>, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match nix::unistd::write(fd, pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(nix::Error::EAGAIN) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(errno_io(e)),
        }
    }
    Ok(())
}

/// One output target.
struct Target {
    fd: OwnedFd,
    pending: Vec<u8>,
    /// The streams it takes.
    stdout: bool,
    stderr: bool,
}

/// A client attached through the socket.
struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// The process's stdin as the monitor feeds it.
struct StdinSink {
    /// The pipe's write end, or a duplicate of the terminal's master.
    fd: OwnedFd,
    terminal: bool,
    pending: Vec<u8>,
    /// Close once `pending` is written.
    closing: bool,
}

/// What a descriptor of [`Hub::interests`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The stdin source (FIFO or file).
    Source,
    /// The process's stdin.
    Stdin,
    /// An output target.
    Target(usize),
    /// The attach socket.
    Listener,
    /// An attached client.
    Client(usize),
}

/// The streams of one process (see the module documentation).
pub struct Hub {
    source: Option<File>,
    stdin: Option<StdinSink>,
    terminal: Option<OwnedFd>,
    targets: Vec<Target>,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    logger: Option<Child>,
    /// Where reads from the stdin source and the clients land: allocated
    /// on first use and kept, never on the stack (a 64 KiB frame is
    /// probed, so dirtied, at every call, even when nothing is read).
    read_buf: Vec<u8>,
}

/// The size of [`Hub`]'s read buffer.
const READ_BUF: usize = 64 * 1024;

/// `buf`, grown to [`READ_BUF`] on first use.
fn read_buf(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.is_empty() {
        buf.resize(READ_BUF, 0);
    }
    buf
}

/// What [`Hub::open`] gives the process.
pub struct ProcessStdin {
    /// The read end of the stdin pipe, to become the process's fd 0; `None`
    /// for /dev/null (or a terminal).
    pub read_end: Option<OwnedFd>,
}

impl Hub {
    /// Opens the targets and the stdin source of `stdio`, binds the attach
    /// socket in the current directory, and makes the stdin pipe when the
    /// process takes input (`open_stdin` or a stdin source) and is not on a
    /// terminal (then input goes to the terminal, see [`Hub::set_terminal`]).
    pub fn open(
        stdio: &StdioConfig,
        open_stdin: bool,
        terminal: bool,
        container_id: &str,
    ) -> io::Result<(Hub, ProcessStdin)> {
        let mut hub = Hub {
            source: None,
            stdin: None,
            terminal: None,
            targets: Vec::new(),
            listener: None,
            clients: Vec::new(),
            logger: None,
            read_buf: Vec::new(),
        };
        if let Some(path) = &stdio.stdin {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("stdin {}: {e}", path.display())))?;
            hub.source = Some(file);
        }
        let mut read_end = None;
        if (open_stdin || stdio.stdin.is_some()) && !terminal {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno_io)?;
            set_nonblocking(&w)?;
            hub.stdin = Some(StdinSink {
                fd: w,
                terminal: false,
                pending: Vec::new(),
                closing: false,
            });
            read_end = Some(r);
        }
        hub.open_targets(stdio, container_id)?;
        let _ = std::fs::remove_file(ATTACH_SOCKET);
        let listener = UnixListener::bind(ATTACH_SOCKET)?;
        listener.set_nonblocking(true)?;
        hub.listener = Some(listener);
        Ok((hub, ProcessStdin { read_end }))
    }

    fn open_targets(&mut self, stdio: &StdioConfig, container_id: &str) -> io::Result<()> {
        let shared = stdio.stdout.as_ref().filter(|t| t.is_shared());
        match shared {
            Some(OutputTarget::File(path)) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                self.targets.push(Target {
                    fd: file.into(),
                    pending: Vec::new(),
                    stdout: true,
                    stderr: true,
                });
            }
            Some(OutputTarget::Binary { path, args }) => {
                self.start_logger(path, args, stdio, container_id)?;
            }
            _ => {
                for (target, is_stdout) in [(&stdio.stdout, true), (&stdio.stderr, false)] {
                    if let Some(OutputTarget::Path(path)) = target {
                        self.targets.push(Target {
                            fd: open_output_path(path)?,
                            pending: Vec::new(),
                            stdout: is_stdout,
                            stderr: !is_stdout,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a logging program (containerd's protocol) and waits for it to
    /// be ready.
    fn start_logger(
        &mut self,
        path: &std::path::Path,
        args: &[String],
        stdio: &StdioConfig,
        container_id: &str,
    ) -> io::Result<()> {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno_io);
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
        let mut command = Command::new(path);
        command
            .args(args)
            .env("CONTAINER_ID", container_id)
            .envs(&stdio.logger_env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: dup2 is async-signal-safe; it gives the program its three
        // descriptors (3, 4, 5) without close-on-exec. The sources are above
        // 5 or already in place, so none is overwritten before it is copied.
        unsafe {
            command.pre_exec(move || {
                let mut moved = fds;
                for fd in &mut moved {
                    let high = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                    if high < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    *fd = high;
                }
                for (i, fd) in moved.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as i32) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("logger {}: {e}", path.display())))?;
        drop((out_r, err_r, ready_w));
        self.logger = Some(child);
        // Ready once it closes (or writes to) descriptor 5.
        let mut ready = File::from(ready_r);
        set_nonblocking(&ready)?;
        let deadline = Instant::now() + LOGGER_READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("logger {} did not become ready", path.display()),
                ));
            }
            let mut fds = [nix::poll::PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
            let timeout =
                nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Ok(_) => {
                    let mut byte = [0u8; 1];
                    match ready.read(&mut byte) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        _ => break,
                    }
                }
                Err(e) => return Err(errno_io(e)),
            }
        }
        for (fd, stdout) in [(out_w, true), (err_w, false)] {
            set_nonblocking(&fd)?;
            self.targets.push(Target {
                fd,
                pending: Vec::new(),
                stdout,
                stderr: !stdout,
            });
        }
        Ok(())
    }

    /// Gives the hub the process's terminal (a duplicate of its master):
    /// stdin goes there, and resizes apply to it.
    pub fn set_terminal(&mut self, master: &OwnedFd, takes_input: bool) -> io::Result<()> {
        let dup = master.try_clone()?;
        if takes_input {
            self.stdin = Some(StdinSink {
                fd: dup.try_clone()?,
                terminal: true,
                pending: Vec::new(),
                closing: false,
            });
        }
        self.terminal = Some(dup);
        Ok(())
    }

    /// Whether `stream` must not be read now: one of its targets is behind.
    pub fn holds_back(&self, stream: Stream) -> bool {
        self.targets
            .iter()
            .any(|t| t.takes(stream) && t.pending.len() >= TARGET_BACKLOG)
    }

    /// Passes output of the process on to its targets and attached clients.
    pub fn output(&mut self, stream: Stream, data: &[u8]) {
        for target in self.targets.iter_mut().filter(|t| t.takes(stream)) {
            target.pending.extend_from_slice(data);
            if write_some(target.fd.as_fd(), &mut target.pending).is_err() {
                // A broken target (a logging program that died) no longer
                // holds the process back.
                target.pending.clear();
                target.stdout = false;
                target.stderr = false;
            }
        }
        let kind = match stream {
            Stream::Stdout => FRAME_STDOUT,
            Stream::Stderr => FRAME_STDERR,
        };
        self.clients.retain_mut(|c| {
            c.output.push(kind);
            c.output
                .extend_from_slice(&(data.len() as u32).to_be_bytes());
            c.output.extend_from_slice(data);
            write_some(c.stream.as_fd(), &mut c.output).is_ok() && c.output.len() <= CLIENT_BACKLOG
        });
    }

    /// The descriptors to poll and for what.
    pub fn interests(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Token)> {
        let mut out = Vec::new();
        let stdin_room = self
            .stdin
            .as_ref()
            .is_some_and(|s| !s.closing && s.pending.len() < STDIN_BACKLOG);
        if let Some(source) = &self.source
            && stdin_room
        {
            out.push((source.as_fd(), PollFlags::POLLIN, Token::Source));
        }
        if let Some(stdin) = &self.stdin
            && !stdin.pending.is_empty()
        {
            out.push((stdin.fd.as_fd(), PollFlags::POLLOUT, Token::Stdin));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !t.pending.is_empty() {
                out.push((t.fd.as_fd(), PollFlags::POLLOUT, Token::Target(i)));
            }
        }
        if let Some(listener) = &self.listener {
            out.push((listener.as_fd(), PollFlags::POLLIN, Token::Listener));
        }
        for (i, c) in self.clients.iter().enumerate() {
            let mut flags = PollFlags::POLLIN;
            if !c.output.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            out.push((c.stream.as_fd(), flags, Token::Client(i)));
        }
        out
    }

    /// Acts on the descriptors `poll` reported ready, given in the order of
    /// [`Hub::interests`].
    pub fn ready(&mut self, ready: &[Token]) {
        let mut dropped = Vec::new();
        for token in ready {
            match *token {
                Token::Source => self.read_source(),
                Token::Stdin => self.flush_stdin(),
                Token::Target(i) => {
                    let t = &mut self.targets[i];
                    if write_some(t.fd.as_fd(), &mut t.pending).is_err() {
                        t.pending.clear();
                        t.stdout = false;
                        t.stderr = false;
                    }
                }
                Token::Listener => self.accept(),
                Token::Client(i) => {
                    if !self.serve_client(i) {
                        dropped.push(i);
                    }
                }
            }
        }
        dropped.sort_unstable();
        for i in dropped.into_iter().rev() {
            self.clients.remove(i);
        }
    }

    fn read_source(&mut self) {
        let (Some(source), Some(stdin)) = (&mut self.source, &mut self.stdin) else {
            return;
        };
        let buf = read_buf(&mut self.read_buf);
        match source.read(buf) {
            // The last writer closed the FIFO (or the file ended): EOF for
            // the process once what was read is written.
            Ok(0) => {
                self.source = None;
                stdin.closing = true;
                self.flush_stdin();
            }
            Ok(n) => {
                stdin.pending.extend_from_slice(&buf[..n]);
                self.flush_stdin();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.source = None,
        }
    }

    fn flush_stdin(&mut self) {
        let Some(stdin) = &mut self.stdin else { return };
        if write_some(stdin.fd.as_fd(), &mut stdin.pending).is_err() {
            // The process closed its stdin: what comes after is dropped.
            self.stdin = None;
            self.source = None;
            return;
        }
        if stdin.closing && stdin.pending.is_empty() {
            if stdin.terminal {
                // End of input on a terminal is ^D at the start of a line.
                let _ = nix::unistd::write(stdin.fd.as_fd(), b"\x04");
            }
            self.stdin = None;
            self.source = None;
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                });
            }
        }
    }

    /// Reads and applies a client's frames and writes what it is owed;
    /// false when it is gone.
    fn serve_client(&mut self, i: usize) -> bool {
        let buf = read_buf(&mut self.read_buf);
        let mut detached = false;
        loop {
            match (&self.clients[i].stream).read(buf) {
                // The client detached (the agent closes its connection when
                // its Attach stream ends): what it sent before still counts.
                Ok(0) => {
                    detached = true;
                    break;
                }
                Ok(n) => self.clients[i].input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
            if self.clients[i].input.len() > MAX_FRAME + 5 {
                break;
            }
        }
        while let Some((kind, payload)) = take_frame(&mut self.clients[i].input) {
            match kind {
                FRAME_STDIN => {
                    if let Some(stdin) = &mut self.stdin
                        && !stdin.closing
                    {
                        stdin.pending.extend_from_slice(&payload);
                    }
                }
                FRAME_CLOSE_STDIN => {
                    if let Some(stdin) = &mut self.stdin {
                        stdin.closing = true;
                    }
                }
                FRAME_RESIZE if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    if let Some(master) = &self.terminal {
                        resize(master.as_raw_fd(), rows, cols);
                    }
                }
                _ => {}
            }
        }
        self.flush_stdin();
        if detached || self.clients[i].input.len() > MAX_FRAME + 5 {
            return false;
        }
        let client = &mut self.clients[i];
        write_some(client.stream.as_fd(), &mut client.output).is_ok()
    }

    /// Ends the streams once the process's output is over: writes what the
    /// targets and clients are owed until `deadline`, closes everything and
    /// waits for a logging program to finish.
    pub fn finish(&mut self, deadline: Instant) {
        self.source = None;
        self.stdin = None;
        self.listener = None;
        loop {
            let fds: Vec<(BorrowedFd<'_>, Token)> = self
                .interests()
                .into_iter()
                .filter(|(_, flags, _)| flags.contains(PollFlags::POLLOUT))
                .map(|(fd, _, token)| (fd, token))
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if fds.is_empty() || left.is_zero() {
                break;
            }
            let mut polled: Vec<nix::poll::PollFd> = fds
                .iter()
                .map(|(fd, _)| nix::poll::PollFd::new(*fd, PollFlags::POLLOUT))
                .collect();
            let timeout =
                nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
            if matches!(nix::poll::poll(&mut polled, timeout), Err(e) if e != nix::Error::EINTR) {
                break;
            }
            let ready: Vec<Token> = polled
                .iter()
                .zip(&fds)
                .filter(|(p, _)| p.any().unwrap_or(false))
                .map(|(_, (_, token))| *token)
                .collect();
            drop(polled);
            drop(fds);
            let mut dropped = Vec::new();
            for token in ready {
                match token {
                    Token::Target(i) => {
                        let t = &mut self.targets[i];
                        if write_some(t.fd.as_fd(), &mut t.pending).is_err() {
                            t.pending.clear();
                        }
                    }
                    Token::Client(i) => {
                        let c = &mut self.clients[i];
                        if write_some(c.stream.as_fd(), &mut c.output).is_err() {
                            dropped.push(i);
                        }
                    }
                    _ => {}
                }
            }
            for i in dropped.into_iter().rev() {
                self.clients.remove(i);
            }
        }
        self.targets.clear();
        self.clients.clear();
        let _ = std::fs::remove_file(ATTACH_SOCKET);
        if let Some(mut logger) = self.logger.take() {
            let deadline = Instant::now() + LOGGER_EXIT_TIMEOUT;
            loop {
                match logger.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = logger.kill();
                        let _ = logger.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Target {
    fn takes(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// Opens a FIFO for writing without waiting for a reader (read-write, so
/// that a reader going away never makes writes fail), or a file for
/// appending.
fn open_output_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    let file = if fifo {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
    } else {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
    }
    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(file.into())
}

/// Takes one whole frame off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME || buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some((kind, payload))
}

/// Encodes a frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sets a terminal's size.
pub fn resize(fd: RawFd, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_payloads() {
        let mut buf = frame(FRAME_STDIN, b"hello");
        buf.extend(frame(FRAME_CLOSE_STDIN, b""));
        let partial = frame(FRAME_RESIZE, &[0, 24, 0, 80]);
        buf.extend_from_slice(&partial[..6]);
        assert_eq!(take_frame(&mut buf), Some((FRAME_STDIN, b"hello".to_vec())));
        assert_eq!(take_frame(&mut buf), Some((FRAME_CLOSE_STDIN, vec![])));
        assert_eq!(take_frame(&mut buf), None);
        buf.extend_from_slice(&partial[6..]);
        assert_eq!(
            take_frame(&mut buf),
            Some((FRAME_RESIZE, vec![0, 24, 0, 80]))
        );
        assert!(buf.is_empty());
    }
}
