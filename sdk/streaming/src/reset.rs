//! Kubernetes clients end streams they no longer need with RST_STREAM
//! (client-go resets a forwarded connection's data stream once the pod's
//! side is done, and every stream when a session ends), and the kubelet's
//! SPDY reads a reset stream as EOF. [`ResetAsEof`] gives the runtime the
//! same view, and remembers that the client gave up on the stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client stream whose reset reads as EOF (writes still fail).
pub(crate) struct ResetAsEof<T> {
    inner: T,
    reset: Arc<AtomicBool>,
}

impl<T> ResetAsEof<T> {
    /// Wraps `inner`; `reset` is set once the client reset it.
    pub(crate) fn new(inner: T, reset: Arc<AtomicBool>) -> ResetAsEof<T> {
        ResetAsEof { inner, reset }
    }

    fn note<R>(&self, result: io::Result<R>) -> io::Result<R> {
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::ConnectionReset
        {
            self.reset.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ResetAsEof<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        match self.note(result) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ResetAsEof<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        Poll::Ready(self.note(result))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(self.note(result))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        Poll::Ready(self.note(result))
    }
}
