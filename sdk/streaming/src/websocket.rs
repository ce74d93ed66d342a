//! Kubernetes' channel protocol over WebSocket: each message carries one
//! channel's bytes behind a channel number (binary protocols) or behind an
//! ASCII digit with the bytes in base64 (the `base64.` protocols). From
//! `v5.channel.k8s.io` on, a client closes one channel with the message
//! `[255, channel]`. Also: WebSocket as a plain byte stream, for SPDY
//! tunnelled in WebSocket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::io::StreamReader;
use tokio_util::sync::PollSender;

use crate::runtime::{Input, Output};

/// The message a v5 client sends to close one of its channels.
const STREAM_CLOSE: u8 = 255;

/// How channel bytes travel in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Binary messages: the channel byte, then the bytes.
    Binary,
    /// Text messages: `'0' + channel`, then the bytes in base64.
    Base64,
}

enum Out {
    Data(u8, Bytes),
    Close,
}

/// The channels of one WebSocket session.
pub(crate) struct Channels {
    inputs: Vec<Option<Input>>,
    out: mpsc::Sender<Out>,
    gone: watch::Receiver<bool>,
    writer: JoinHandle<()>,
    reader: ReaderTask,
}

/// The reading task, stopped when the channels are dropped.
struct ReaderTask(JoinHandle<()>);

impl Drop for ReaderTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Channels {
    /// Starts serving `ws`: `readable[n]` says whether the client may send
    /// on channel n (what it sends elsewhere is dropped). `stream_close`:
    /// the protocol has the v5 close message.
    pub(crate) fn open<T>(
        ws: WebSocketStream<T>,
        codec: Codec,
        readable: &[bool],
        stream_close: bool,
    ) -> Channels
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, stream) = ws.split();
        let (out_tx, out_rx) = mpsc::channel(16);
        let mut senders = Vec::new();
        let mut inputs = Vec::new();
        for &r in readable {
            if r {
                let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
                senders.push(Some(tx));
                inputs.push(Some(
                    Box::new(StreamReader::new(ReceiverStream::new(rx))) as Input
                ));
            } else {
                senders.push(None);
                inputs.push(None);
            }
        }
        let (gone_tx, gone) = watch::channel(false);
        let writer = tokio::spawn(write_loop(sink, out_rx, codec));
        let reader = tokio::spawn(async move {
            read_loop(stream, senders, codec, stream_close).await;
            gone_tx.send_replace(true);
        });
        Channels {
            inputs,
            out: out_tx,
            gone,
            writer,
            reader: ReaderTask(reader),
        }
    }

    /// The client's bytes on `channel` (once).
    pub(crate) fn take_input(&mut self, channel: u8) -> Option<Input> {
        self.inputs.get_mut(channel as usize)?.take()
    }

    /// A writer of `channel`.
    pub(crate) fn output(&self, channel: u8) -> Output {
        Box::new(ChannelWriter {
            channel,
            tx: PollSender::new(self.out.clone()),
        })
    }

    /// Sends `data` on `channel` as one message.
    pub(crate) async fn send(&mut self, channel: u8, data: impl Into<Bytes>) {
        let _ = self.out.send(Out::Data(channel, data.into())).await;
    }

    /// Resolves once the client closed the WebSocket (or it failed).
    pub(crate) async fn client_gone(&mut self) {
        let mut gone = self.gone.clone();
        let _ = gone.wait_for(|g| *g).await;
    }

    /// Sends what is queued and a normal close, then waits up to `grace`
    /// for the client's close.
    pub(crate) async fn close(self, grace: Duration) {
        let Channels {
            out,
            writer,
            mut reader,
            ..
        } = self;
        let _ = out.send(Out::Close).await;
        drop(out);
        let _ = writer.await;
        // The reader is stopped when it is dropped, at the latest here.
        let _ = tokio::time::timeout(grace, &mut reader.0).await;
    }
}

async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Out>, codec: Codec)
where
    S: Sink<Message> + Unpin,
{
    while let Some(out) = rx.recv().await {
        let message = match out {
            Out::Data(channel, data) => match codec {
                Codec::Binary => {
                    let mut frame = Vec::with_capacity(1 + data.len());
                    frame.push(channel);
                    frame.extend_from_slice(&data);
                    Message::Binary(frame.into())
                }
                Codec::Base64 => {
                    let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
                    text.push((b'0' + channel) as char);
                    base64::engine::general_purpose::STANDARD.encode_string(&data, &mut text);
                    Message::Text(text.into())
                }
            },
            Out::Close => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    })))
                    .await;
                break;
            }
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

async fn read_loop<S>(
    mut stream: S,
    mut senders: Vec<Option<mpsc::Sender<io::Result<Bytes>>>>,
    codec: Codec,
    stream_close: bool,
) where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(message)) = stream.next().await {
        let (channel, data) = match (message, codec) {
            (Message::Binary(b), _) if b.is_empty() => continue,
            (Message::Binary(b), _) if stream_close && b[0] == STREAM_CLOSE => {
                if b.len() == 2
                    && let Some(slot) = senders.get_mut(b[1] as usize)
                {
                    // Dropping the sender is the channel's EOF.
                    slot.take();
                    continue;
                }
                tracing::debug!("malformed WebSocket channel close");
                break;
            }
            (Message::Binary(b), Codec::Binary) => (b[0], b.slice(1..)),
            (Message::Text(t), Codec::Base64) if !t.is_empty() => {
                let t = t.as_str();
                let Some(channel) = t.as_bytes()[0].checked_sub(b'0') else {
                    continue;
                };
                match base64::engine::general_purpose::STANDARD.decode(&t[1..]) {
                    Ok(bytes) => (channel, Bytes::from(bytes)),
                    Err(_) => {
                        tracing::debug!("malformed base64 WebSocket message");
                        continue;
                    }
                }
            }
            (Message::Close(_), _) => break,
            _ => continue,
        };
        if let Some(Some(tx)) = senders.get(channel as usize)
            && tx.send(Ok(data)).await.is_err()
        {
            senders[channel as usize] = None;
        }
    }
}

/// An `AsyncWrite` of one channel.
struct ChannelWriter {
    channel: u8,
    tx: PollSender<Out>,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let n = buf.len().min(32 * 1024);
        let channel = self.channel;
        self.tx
            .send_item(Out::Data(channel, Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The channel protocol has no way for a server to close one channel.
        Poll::Ready(Ok(()))
    }
}

/// A WebSocket as a byte stream: each write is one binary message, reads
/// concatenate binary messages (how client-go tunnels SPDY in WebSocket
/// for port-forwarding; either end may use it).
pub struct ByteStream<T> {
    ws: WebSocketStream<T>,
    pending: Bytes,
}

impl<T> ByteStream<T> {
    /// The byte stream of `ws`.
    pub fn new(ws: WebSocketStream<T>) -> ByteStream<T> {
        ByteStream {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message in a byte stream",
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(ws_error)?;
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_close_unpin(cx).map_err(ws_error)
    }
}
