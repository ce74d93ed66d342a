//! A SPDY/3.1 session over any byte stream: streams multiplexed on one
//! connection, each an `AsyncRead + AsyncWrite`, with per-stream and session
//! flow control.
//!
//! One task reads frames and one writes them; stream handles and the session
//! handle share one locked state with them. Every frame leaves through one
//! FIFO, so a SYN_REPLY always precedes the stream's data and stream ids
//! leave in the order they were taken.
//!
//! Flow control: this side grants windows (a SETTINGS frame with its initial
//! stream window, WINDOW_UPDATEs as the application reads) and enforces the
//! peer's windows once the peer shows it keeps them (by sending a SETTINGS
//! frame or a WINDOW_UPDATE). moby/spdystream, the SPDY of every
//! Kubernetes client, never sends either and ignores them: holding it to the
//! default 64 KiB window would stall every transfer past it. A peer that
//! does not keep windows and outruns a stream's buffer is slowed by no
//! longer reading from the connection until the application catches up.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::frame::{
    Frame, FrameCodec, FrameError, GoAwayStatus, RstStatus, SETTINGS_INITIAL_WINDOW_SIZE, Setting,
};
use super::headers::Headers;

/// The window every stream and the session start with (SPDY/3.1).
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// The largest DATA frame this side sends.
pub const MAX_DATA_FRAME: usize = 32 * 1024;
/// Bytes of DATA queued for the transport before writers wait.
const MAX_QUEUED: usize = 1024 * 1024;
const MAX_WINDOW: i64 = 0x7fff_ffff;

/// Which end of the connection this session is (it decides stream and
/// ping id parity: clients use odd ids, servers even ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd streams.
    Client,
    /// Opens even streams.
    Server,
}

/// Limits and windows of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The receive window of each stream this side grants (and the most it
    /// buffers for a stream the application does not read).
    pub stream_window: u32,
    /// The receive window of the whole session this side grants.
    pub session_window: u32,
    /// The most streams the peer may have open at once; more are refused.
    pub max_incoming_streams: usize,
    /// Ends the session when no frame went either way for this long.
    pub idle_timeout: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            stream_window: 256 * 1024,
            session_window: 1024 * 1024,
            max_incoming_streams: 1000,
            idle_timeout: None,
        }
    }
}

/// Why a session operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// The transport ended or failed.
    #[error("the SPDY session is closed: {0}")]
    Closed(String),
    /// The peer sent GOAWAY: it takes no new streams.
    #[error("the peer ended the SPDY session (GOAWAY)")]
    GoneAway,
    /// The peer reset the stream.
    #[error("the stream was reset: {0:?}")]
    Reset(RstStatus),
}

impl From<SessionError> for io::Error {
    fn from(e: SessionError) -> io::Error {
        let kind = match e {
            SessionError::Reset(_) => io::ErrorKind::ConnectionReset,
            _ => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, e)
    }
}

struct StreamState {
    recv: VecDeque<Bytes>,
    recv_len: usize,
    recv_fin: bool,
    /// The application dropped its reading half: data is discarded.
    recv_dropped: bool,
    recv_window: i64,
    recv_unacked: u32,
    read_waker: Option<Waker>,
    send_window: i64,
    send_fin: bool,
    write_waker: Option<Waker>,
    reset: Option<RstStatus>,
    /// For streams this side opened: the reply's receiver.
    reply: Option<oneshot::Sender<Result<Headers, SessionError>>>,
    /// Live halves held by the application.
    handles: u8,
}

impl StreamState {
    fn new(send_window: i64, recv_window: i64) -> StreamState {
        StreamState {
            recv: VecDeque::new(),
            recv_len: 0,
            recv_fin: false,
            recv_dropped: false,
            recv_window,
            recv_unacked: 0,
            read_waker: None,
            send_window,
            send_fin: false,
            write_waker: None,
            reset: None,
            reply: None,
            handles: 0,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

struct State {
    streams: HashMap<u32, StreamState>,
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    next_stream_id: u32,
    last_peer_stream_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    /// The send window new streams start with (the peer's SETTINGS).
    peer_initial_window: i64,
    peer_keeps_stream_windows: bool,
    peer_keeps_session_window: bool,
    send_session_window: i64,
    recv_session_window: i64,
    recv_session_unacked: u32,
    goaway_sent: bool,
    goaway_received: bool,
    /// Set once the transport ended (why).
    closed: Option<String>,
    /// The writer ends the transport once its queue is empty.
    finishing: bool,
    write_waiters: Vec<Waker>,
    last_activity: Instant,
}

impl State {
    fn push(&mut self, frame: Frame) {
        if let Frame::Data { data, .. } = &frame {
            self.queued_bytes += data.len();
        }
        self.queue.push_back(frame);
    }

    fn wake_writers(&mut self) {
        for w in self.write_waiters.drain(..) {
            w.wake();
        }
        for s in self.streams.values_mut() {
            if let Some(w) = s.write_waker.take() {
                w.wake();
            }
        }
    }

    fn close(&mut self, why: String) {
        if self.closed.is_none() {
            self.closed = Some(why.clone());
        }
        for s in self.streams.values_mut() {
            if let Some(reply) = s.reply.take() {
                let _ = reply.send(Err(SessionError::Closed(why.clone())));
            }
            s.wake();
        }
        self.pings.clear();
        self.write_waiters.drain(..).for_each(Waker::wake);
    }

    /// Gives `n` consumed (or discarded) bytes of session window back.
    fn credit_session(&mut self, n: usize, config: &SessionConfig) {
        self.recv_session_unacked += n as u32;
        if self.recv_session_unacked >= config.session_window / 2 {
            let delta = self.recv_session_unacked;
            self.recv_session_unacked = 0;
            self.recv_session_window += delta as i64;
            self.push(Frame::WindowUpdate {
                stream_id: 0,
                delta,
            });
        }
    }
}

struct Shared {
    role: Role,
    config: SessionConfig,
    state: Mutex<State>,
    /// Wakes the writer task (a stored permit covers a wake before it waits).
    writer: Notify,
    /// Wakes the reader task when a stream's buffer has room again.
    room: Notify,
    ended: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_peer_id(&self, id: u32) -> bool {
        // Clients use odd ids.
        (id % 2 == 1) == (self.role == Role::Server)
    }

    fn send(&self, state: &mut State, frame: Frame) {
        state.push(frame);
        self.writer.notify_one();
    }

    fn release(&self, id: u32) {
        let mut state = self.lock();
        if let Some(s) = state.streams.get_mut(&id) {
            s.handles = s.handles.saturating_sub(1);
            if s.handles == 0 {
                state.streams.remove(&id);
            }
        }
    }
}

/// A handle on a session; cheap to clone. The session's tasks end when the
/// transport ends, or when the last handle is dropped.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

struct Tasks {
    shared: Arc<Shared>,
    handles: Vec<tokio::task::AbortHandle>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
        self.shared.lock().close("session dropped".into());
        self.shared.ended.send_replace(true);
    }
}

/// The streams the peer opens, in order.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<IncomingStream>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the session ended.
    pub async fn next(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

/// A stream the peer opened, not yet answered: [`accept`](Self::accept) it
/// (SYN_REPLY) or [`refuse`](Self::refuse) it (RST_STREAM); dropping it
/// refuses it.
pub struct IncomingStream {
    shared: Arc<Shared>,
    id: u32,
    headers: Headers,
    answered: bool,
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl IncomingStream {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the peer opened it with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Accepts the stream: sends SYN_REPLY and returns it.
    pub fn accept(mut self) -> Stream {
        self.answered = true;
        let mut state = self.shared.lock();
        if let Some(s) = state.streams.get_mut(&self.id) {
            s.handles = 2;
        }
        self.shared.send(
            &mut state,
            Frame::SynReply {
                stream_id: self.id,
                fin: false,
                headers: Headers::new(),
            },
        );
        drop(state);
        Stream::new(
            self.shared.clone(),
            self.id,
            std::mem::take(&mut self.headers),
        )
    }

    /// Refuses the stream (RST_STREAM REFUSED_STREAM).
    pub fn refuse(mut self) {
        self.answered = true;
        self.reset(RstStatus::RefusedStream);
    }

    fn reset(&self, status: RstStatus) {
        let mut state = self.shared.lock();
        state.streams.remove(&self.id);
        self.shared.send(
            &mut state,
            Frame::RstStream {
                stream_id: self.id,
                status,
            },
        );
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if !self.answered {
            self.reset(RstStatus::RefusedStream);
        }
    }
}

impl Session {
    /// Starts a session on `io`: spawns its reader and writer tasks, and
    /// sends this side's windows. Returns the handle and the streams the
    /// peer opens.
    pub fn new<T>(io: T, role: Role, config: SessionConfig) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let mut state = State {
            streams: HashMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_stream_id: if role == Role::Client { 1 } else { 2 },
            last_peer_stream_id: 0,
            next_ping_id: if role == Role::Client { 1 } else { 2 },
            pings: HashMap::new(),
            peer_initial_window: DEFAULT_WINDOW as i64,
            peer_keeps_stream_windows: false,
            peer_keeps_session_window: false,
            send_session_window: DEFAULT_WINDOW as i64,
            recv_session_window: config.session_window.max(DEFAULT_WINDOW) as i64,
            recv_session_unacked: 0,
            goaway_sent: false,
            goaway_received: false,
            closed: None,
            finishing: false,
            write_waiters: Vec::new(),
            last_activity: Instant::now(),
        };
        if config.stream_window != DEFAULT_WINDOW {
            state.push(Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: config.stream_window,
                }],
            });
        }
        if config.session_window > DEFAULT_WINDOW {
            state.push(Frame::WindowUpdate {
                stream_id: 0,
                delta: config.session_window - DEFAULT_WINDOW,
            });
        }
        let shared = Arc::new(Shared {
            role,
            config,
            state: Mutex::new(state),
            writer: Notify::new(),
            room: Notify::new(),
            ended: watch::channel(false).0,
        });
        let mut handles = vec![
            tokio::spawn(read_loop(
                shared.clone(),
                FramedRead::new(read, FrameCodec::new()),
                incoming_tx,
            ))
            .abort_handle(),
            tokio::spawn(write_loop(
                shared.clone(),
                FramedWrite::new(write, FrameCodec::new()),
            ))
            .abort_handle(),
        ];
        if let Some(idle) = shared.config.idle_timeout {
            handles.push(tokio::spawn(idle_watch(shared.clone(), idle)).abort_handle());
        }
        shared.writer.notify_one();
        let tasks = Arc::new(Tasks {
            shared: shared.clone(),
            handles,
        });
        (
            Session {
                shared,
                _tasks: tasks,
            },
            Incoming { rx: incoming_rx },
        )
    }

    /// Opens a stream and waits for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers) -> Result<Stream, SessionError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.shared.lock();
            if let Some(why) = &state.closed {
                return Err(SessionError::Closed(why.clone()));
            }
            if state.goaway_received || state.goaway_sent {
                return Err(SessionError::GoneAway);
            }
            let id = state.next_stream_id;
            if id > MAX_WINDOW as u32 {
                return Err(SessionError::Closed("stream ids exhausted".into()));
            }
            state.next_stream_id += 2;
            let mut s = StreamState::new(
                state.peer_initial_window,
                self.shared.config.stream_window as i64,
            );
            s.reply = Some(tx);
            s.handles = 2;
            state.streams.insert(id, s);
            self.shared.send(
                &mut state,
                Frame::SynStream {
                    stream_id: id,
                    associated_to: 0,
                    priority: 0,
                    slot: 0,
                    fin: false,
                    unidirectional: false,
                    headers: headers.clone(),
                },
            );
            id
        };
        let stream = Stream::new(self.shared.clone(), id, headers);
        match rx.await {
            Ok(Ok(_reply_headers)) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SessionError::Closed("session dropped".into())),
        }
    }

    /// Sends a PING and waits for its echo; returns the round trip.
    pub async fn ping(&self) -> Result<Duration, SessionError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(why) = &state.closed {
                return Err(SessionError::Closed(why.clone()));
            }
            let id = state.next_ping_id;
            state.next_ping_id = state.next_ping_id.wrapping_add(2).max(1);
            state.pings.insert(id, tx);
            self.shared.send(&mut state, Frame::Ping { id });
        }
        let started = Instant::now();
        rx.await
            .map_err(|_| SessionError::Closed("no ping reply".into()))?;
        Ok(started.elapsed())
    }

    /// Ends the session gracefully: sends GOAWAY (no new streams), lets the
    /// writer send what is queued, then closes this side of the transport.
    /// Streams already open keep receiving until the peer closes.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        if !state.goaway_sent {
            state.goaway_sent = true;
            let last = state.last_peer_stream_id;
            state.push(Frame::GoAway {
                last_good_stream_id: last,
                status: GoAwayStatus::Ok,
            });
        }
        state.finishing = true;
        self.shared.writer.notify_one();
    }

    /// Waits until the transport ended (the peer closed it, it failed, or
    /// the idle timeout passed).
    pub async fn ended(&self) {
        let mut ended = self.shared.ended.subscribe();
        let _ = ended.wait_for(|e| *e).await;
    }

    /// [`close`](Self::close)s, then waits up to `grace` for the peer to
    /// close its side.
    pub async fn finish(&self, grace: Duration) {
        self.close();
        let _ = tokio::time::timeout(grace, self.ended()).await;
    }

    /// True once the transport ended.
    pub fn is_ended(&self) -> bool {
        self.shared.lock().closed.is_some()
    }
}

/// One stream of a session: read what the peer sends, write what this side
/// sends. `shutdown` sends FIN (the peer reads EOF); dropping the writing
/// side does the same.
pub struct Stream {
    recv: RecvStream,
    send: SendStream,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.recv.id)
            .field("headers", &self.recv.headers)
            .finish()
    }
}

impl Stream {
    fn new(shared: Arc<Shared>, id: u32, headers: Headers) -> Stream {
        Stream {
            recv: RecvStream {
                shared: shared.clone(),
                id,
                headers,
            },
            send: SendStream { shared, id },
        }
    }

    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.recv.id
    }

    /// The headers it was opened with.
    pub fn headers(&self) -> &Headers {
        &self.recv.headers
    }

    /// Splits the stream into its reading and writing halves.
    pub fn into_split(self) -> (RecvStream, SendStream) {
        (self.recv, self.send)
    }

    /// Resets the stream (RST_STREAM with `status`).
    pub fn reset(&self, status: RstStatus) {
        self.send.reset(status);
    }
}

/// The reading half of a [`Stream`].
pub struct RecvStream {
    shared: Arc<Shared>,
    id: u32,
    headers: Headers,
}

impl std::fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream").field("id", &self.id).finish()
    }
}

impl RecvStream {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers the stream was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// The writing half of a [`Stream`].
pub struct SendStream {
    shared: Arc<Shared>,
    id: u32,
}

impl std::fmt::Debug for SendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStream").field("id", &self.id).finish()
    }
}

impl SendStream {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Resets the stream (RST_STREAM with `status`).
    pub fn reset(&self, status: RstStatus) {
        let mut state = self.shared.lock();
        let Some(s) = state.streams.get_mut(&self.id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.reset = Some(status);
        s.wake();
        self.shared.send(
            &mut state,
            Frame::RstStream {
                stream_id: self.id,
                status,
            },
        );
    }

    /// Sends FIN unless already sent (or the stream was reset).
    fn finish(&self) {
        let mut state = self.shared.lock();
        let Some(s) = state.streams.get_mut(&self.id) else {
            return;
        };
        if s.send_fin || s.reset.is_some() {
            return;
        }
        s.send_fin = true;
        self.shared.send(
            &mut state,
            Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            },
        );
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        self.finish();
        self.shared.release(self.id);
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            let config = &self.shared.config;
            if let Some(s) = state.streams.get_mut(&self.id) {
                s.recv_dropped = true;
                let buffered = s.recv_len;
                s.recv.clear();
                s.recv_len = 0;
                state.credit_session(buffered, config);
            }
        }
        self.shared.room.notify_one();
        self.shared.release(self.id);
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut state = shared.lock();
        let state = &mut *state;
        let Some(s) = state.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if let Some(chunk) = s.recv.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk.split_to(n));
            if chunk.is_empty() {
                s.recv.pop_front();
            }
            s.recv_len -= n;
            s.recv_unacked += n as u32;
            let mut frames = Vec::new();
            if !s.recv_fin && s.recv_unacked >= config.stream_window / 2 {
                let delta = std::mem::take(&mut s.recv_unacked);
                s.recv_window += delta as i64;
                frames.push(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                });
            }
            for frame in frames {
                state.push(frame);
            }
            state.credit_session(n, config);
            shared.writer.notify_one();
            shared.room.notify_one();
            return Poll::Ready(Ok(()));
        }
        if s.recv_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(status) = s.reset {
            return Poll::Ready(Err(SessionError::Reset(status).into()));
        }
        if state.closed.is_some() {
            return Poll::Ready(Ok(()));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = self.shared.lock();
        let state = &mut *state;
        if let Some(why) = &state.closed {
            return Poll::Ready(Err(SessionError::Closed(why.clone()).into()));
        }
        let Some(s) = state.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        if let Some(status) = s.reset {
            return Poll::Ready(Err(SessionError::Reset(status).into()));
        }
        if s.send_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after the stream's FIN",
            )));
        }
        let mut n = buf.len().min(MAX_DATA_FRAME);
        if state.peer_keeps_stream_windows {
            if s.send_window <= 0 {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(s.send_window as usize);
        }
        if state.queued_bytes >= MAX_QUEUED
            || (state.peer_keeps_session_window && state.send_session_window <= 0)
        {
            state.write_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        if state.peer_keeps_session_window {
            n = n.min(state.send_session_window as usize);
        }
        s.send_window -= n as i64;
        state.send_session_window -= n as i64;
        state.push(Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        });
        self.shared.writer.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

async fn read_loop<R>(
    shared: Arc<Shared>,
    mut frames: FramedRead<R, FrameCodec>,
    incoming: mpsc::Sender<IncomingStream>,
) where
    R: AsyncRead + Unpin,
{
    let why = loop {
        let frame = match frames.next().await {
            None => break "the peer closed the connection".to_string(),
            Some(Err(FrameError::Io(e))) => break format!("reading: {e}"),
            Some(Err(e)) => {
                let mut state = shared.lock();
                state.goaway_sent = true;
                let last = state.last_peer_stream_id;
                state.push(Frame::GoAway {
                    last_good_stream_id: last,
                    status: GoAwayStatus::ProtocolError,
                });
                state.finishing = true;
                shared.writer.notify_one();
                break format!("protocol error: {e}");
            }
            Some(Ok(frame)) => frame,
        };
        shared.lock().last_activity = Instant::now();
        match on_frame(&shared, frame) {
            Action::None => {}
            Action::Incoming(stream) => {
                // Waits when the application is slow to take streams.
                if let Err(refused) = incoming.send(stream).await {
                    refused.0.refuse();
                }
            }
            Action::WaitForRoom(id) => {
                // A peer that keeps no windows outran the stream's buffer:
                // stop reading the connection until the application reads.
                loop {
                    let room = shared.room.notified();
                    {
                        let state = shared.lock();
                        let full = state.closed.is_none()
                            && state
                                .streams
                                .get(&id)
                                .is_some_and(|s| s.recv_len > shared.config.stream_window as usize);
                        if !full {
                            break;
                        }
                    }
                    room.await;
                }
            }
            Action::End(why) => break why,
        }
    };
    tracing::debug!(%why, "SPDY session read side ended");
    shared.lock().close(why);
    shared.writer.notify_one();
    shared.ended.send_replace(true);
}

enum Action {
    None,
    Incoming(IncomingStream),
    WaitForRoom(u32),
    End(String),
}

fn rst(shared: &Shared, state: &mut State, stream_id: u32, status: RstStatus) {
    shared.send(state, Frame::RstStream { stream_id, status });
}

fn on_frame(shared: &Arc<Shared>, frame: Frame) -> Action {
    let config = &shared.config;
    let mut guard = shared.lock();
    let state = &mut *guard;
    match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let len = data.len();
            state.recv_session_window -= len as i64;
            if state.peer_keeps_session_window && state.recv_session_window < 0 {
                return Action::End("the peer overran the session window".into());
            }
            let Some(s) = state.streams.get_mut(&stream_id) else {
                state.credit_session(len, config);
                shared.writer.notify_one();
                return Action::None;
            };
            if s.reset.is_some() || s.recv_dropped {
                state.credit_session(len, config);
                shared.writer.notify_one();
                return Action::None;
            }
            if s.recv_fin {
                s.reset = Some(RstStatus::StreamAlreadyClosed);
                s.wake();
                state.credit_session(len, config);
                rst(shared, state, stream_id, RstStatus::StreamAlreadyClosed);
                return Action::None;
            }
            s.recv_window -= len as i64;
            if state.peer_keeps_stream_windows && s.recv_window < 0 {
                s.reset = Some(RstStatus::FlowControlError);
                s.wake();
                state.credit_session(len, config);
                rst(shared, state, stream_id, RstStatus::FlowControlError);
                return Action::None;
            }
            if len > 0 {
                s.recv.push_back(data);
                s.recv_len += len;
            }
            s.recv_fin |= fin;
            if let Some(w) = s.read_waker.take() {
                w.wake();
            }
            if !state.peer_keeps_stream_windows && s.recv_len > config.stream_window as usize {
                return Action::WaitForRoom(stream_id);
            }
            Action::None
        }
        Frame::SynStream {
            stream_id,
            fin,
            unidirectional,
            headers,
            ..
        } => {
            if !shared.is_peer_id(stream_id) || stream_id <= state.last_peer_stream_id {
                rst(shared, state, stream_id, RstStatus::ProtocolError);
                return Action::None;
            }
            state.last_peer_stream_id = stream_id;
            let open = state
                .streams
                .keys()
                .filter(|id| shared.is_peer_id(**id))
                .count();
            if state.goaway_sent || open >= config.max_incoming_streams {
                rst(shared, state, stream_id, RstStatus::RefusedStream);
                return Action::None;
            }
            let mut s = StreamState::new(state.peer_initial_window, config.stream_window as i64);
            s.recv_fin = fin;
            s.send_fin = unidirectional;
            s.handles = 1;
            state.streams.insert(stream_id, s);
            Action::Incoming(IncomingStream {
                shared: shared.clone(),
                id: stream_id,
                headers,
                answered: false,
            })
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => {
            if let Some(s) = state.streams.get_mut(&stream_id) {
                match s.reply.take() {
                    Some(reply) => {
                        let _ = reply.send(Ok(headers));
                        s.recv_fin |= fin;
                        s.wake();
                    }
                    None => {
                        s.reset = Some(RstStatus::StreamInUse);
                        s.wake();
                        rst(shared, state, stream_id, RstStatus::StreamInUse);
                    }
                }
            }
            Action::None
        }
        Frame::Headers { stream_id, fin, .. } => {
            if let Some(s) = state.streams.get_mut(&stream_id) {
                s.recv_fin |= fin;
                s.wake();
            }
            Action::None
        }
        Frame::RstStream { stream_id, status } => {
            if let Some(s) = state.streams.get_mut(&stream_id) {
                s.reset.get_or_insert(status);
                if let Some(reply) = s.reply.take() {
                    let _ = reply.send(Err(SessionError::Reset(status)));
                }
                s.wake();
                if s.handles == 0 {
                    state.streams.remove(&stream_id);
                }
            }
            Action::None
        }
        Frame::Settings { entries, .. } => {
            // A peer that speaks SETTINGS keeps stream windows.
            state.peer_keeps_stream_windows = true;
            for entry in entries {
                if entry.id == SETTINGS_INITIAL_WINDOW_SIZE {
                    let new = (entry.value as i64).min(MAX_WINDOW);
                    let delta = new - state.peer_initial_window;
                    state.peer_initial_window = new;
                    for s in state.streams.values_mut() {
                        s.send_window += delta;
                    }
                }
            }
            state.wake_writers();
            Action::None
        }
        Frame::WindowUpdate { stream_id, delta } => {
            if stream_id == 0 {
                state.peer_keeps_session_window = true;
                state.send_session_window += delta as i64;
                if state.send_session_window > MAX_WINDOW {
                    return Action::End("the peer overflowed the session window".into());
                }
                state.wake_writers();
            } else {
                state.peer_keeps_stream_windows = true;
                if let Some(s) = state.streams.get_mut(&stream_id) {
                    s.send_window += delta as i64;
                    if s.send_window > MAX_WINDOW {
                        s.reset = Some(RstStatus::FlowControlError);
                        s.wake();
                        rst(shared, state, stream_id, RstStatus::FlowControlError);
                    } else if let Some(w) = s.write_waker.take() {
                        w.wake();
                    }
                }
            }
            Action::None
        }
        Frame::Ping { id } => {
            if shared.is_peer_id(id) {
                shared.send(state, Frame::Ping { id });
            } else if let Some(done) = state.pings.remove(&id) {
                let _ = done.send(());
            }
            Action::None
        }
        Frame::GoAway {
            last_good_stream_id,
            ..
        } => {
            state.goaway_received = true;
            // Streams this side opened after the last one the peer took
            // will never be served.
            for (id, s) in state.streams.iter_mut() {
                if !shared.is_peer_id(*id) && *id > last_good_stream_id {
                    s.reset.get_or_insert(RstStatus::RefusedStream);
                    if let Some(reply) = s.reply.take() {
                        let _ = reply.send(Err(SessionError::GoneAway));
                    }
                    s.wake();
                }
            }
            Action::None
        }
        Frame::Unknown { frame_type } => {
            tracing::debug!(frame_type, "ignoring an unknown SPDY control frame");
            Action::None
        }
    }
}

async fn write_loop<W>(shared: Arc<Shared>, mut frames: FramedWrite<W, FrameCodec>)
where
    W: AsyncWrite + Unpin,
{
    loop {
        let batch: Vec<Frame> = {
            let mut state = shared.lock();
            if state.queue.is_empty() && (state.finishing || state.closed.is_some()) {
                break;
            }
            state.queue.drain(..).collect()
        };
        if batch.is_empty() {
            shared.writer.notified().await;
            continue;
        }
        let mut written = 0;
        let mut failed = None;
        for frame in batch {
            if let Frame::Data { data, .. } = &frame {
                written += data.len();
            }
            if let Err(e) = frames.feed(frame).await {
                failed = Some(e);
                break;
            }
        }
        if failed.is_none()
            && let Err(e) = frames.flush().await
        {
            failed = Some(e);
        }
        let mut state = shared.lock();
        state.last_activity = Instant::now();
        state.queued_bytes = state.queued_bytes.saturating_sub(written);
        state.wake_writers();
        if let Some(e) = failed {
            state.close(format!("writing: {e}"));
            return;
        }
    }
    let _ = frames.get_mut().shutdown().await;
}

async fn idle_watch(shared: Arc<Shared>, idle: Duration) {
    loop {
        let last = shared.lock().last_activity;
        let deadline = last + idle;
        if Instant::now() >= deadline {
            tracing::debug!(?idle, "SPDY session idle: closing");
            shared.lock().close(format!("idle for {idle:?}"));
            shared.ended.send_replace(true);
            shared.writer.notify_one();
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}
