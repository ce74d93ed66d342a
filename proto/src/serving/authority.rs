//! Every gRPC client welcome on a Unix socket: the HTTP/2 `:authority` of
//! each request is made one that our HTTP/2 server (h2) accepts.
//!
//! # Why
//!
//! Over a Unix socket there is no host, and clients fill `:authority` as
//! they see fit: grpc-go and tonic send `localhost`, but gRPC core (Python's
//! `grpcio` since 1.57, and so Ruby, C++, PHP …), grpc-java and grpcurl 1.8
//! send the socket path (`/run/libcrun-shim/crun-shimd.sock`). That is no
//! valid URI authority, and h2 resets such a stream with PROTOCOL_ERROR
//! before any of our code sees it, which clients report as a bare
//! `INTERNAL`. h2 offers no way to relax the check (hyperium/h2#487 has been
//! open since 2020), and we will not ship a fork of it. Each client can be
//! told to send `localhost`, but users of generated clients would have to
//! know that, which they will not.
//!
//! # How
//!
//! Each accepted connection is wrapped in [`AuthorityFix`], which reads the
//! client's side of the HTTP/2 stream frame by frame before h2 does. Every
//! frame passes unchanged except header blocks (HEADERS and their
//! CONTINUATIONs): those are decoded (HPACK, with the client's dynamic
//! table kept here), an `:authority` that is not a valid authority is
//! replaced by `localhost` (a Unix socket's only host; a valid one is kept),
//! and the block is written again with every field a literal that is not
//! indexed. h2's decoder thus never indexes anything, and the client's
//! dynamic table lives here alone, so the two can never disagree. A block
//! grown by the rewrite is split into CONTINUATION frames of at most 16 KiB,
//! the size every HTTP/2 peer accepts; padding is dropped. The server's
//! answers are not touched.
//!
//! A header block larger than [`MAX_HEADER_BLOCK`], a frame larger than
//! 16 KiB or a stream that is not HTTP/2 ends the connection with an I/O
//! error, as h2 would end it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113, 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's size.
const FRAME_HEADER: usize = 9;
/// The largest frame payload every HTTP/2 peer accepts (the initial
/// SETTINGS_MAX_FRAME_SIZE, which our servers keep): rewritten header
/// blocks are cut to it, and a client frame larger than it, which h2 would
/// refuse anyway, ends the connection before it is buffered.
const MAX_FRAME: usize = 16 * 1024;
/// The largest header block (HEADERS and CONTINUATIONs, encoded) accepted.
pub const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The dynamic table size clients may use: the protocol's default, as our
/// server advertises no other SETTINGS_HEADER_TABLE_SIZE.
const HEADER_TABLE_SIZE: usize = 4096;
/// What replaces an authority that is not one.
const LOCALHOST: &[u8] = b"localhost";

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A server-side connection whose client header blocks are rewritten so
/// that h2 accepts their `:authority` (see the module's documentation).
pub struct AuthorityFix<S> {
    inner: S,
    /// Read from the client, not yet handled.
    raw: Vec<u8>,
    /// Handled, for the server to read.
    out: Vec<u8>,
    /// How much of `out` the server has read.
    out_read: usize,
    /// The preface bytes still to pass.
    preface_left: usize,
    /// A header block being gathered: its HEADERS frame's stream, flags
    /// (END_STREAM, PRIORITY), priority fields and fragments so far.
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    eof: bool,
}

struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
}

impl<S> AuthorityFix<S> {
    /// Wraps a connection just accepted.
    pub fn new(inner: S) -> AuthorityFix<S> {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        AuthorityFix {
            inner,
            raw: Vec::new(),
            out: Vec::new(),
            out_read: 0,
            preface_left: PREFACE.len(),
            block: None,
            decoder,
            eof: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves what can be handled from `raw` to `out`.
    fn handle(&mut self) -> io::Result<()> {
        let mut at = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.raw.len());
            let start = PREFACE.len() - self.preface_left;
            if self.raw[..n] != PREFACE[start..start + n] {
                return Err(invalid("not an HTTP/2 connection preface"));
            }
            self.out.extend_from_slice(&self.raw[..n]);
            self.preface_left -= n;
            at = n;
        }
        while self.preface_left == 0 && self.raw.len() - at >= FRAME_HEADER {
            let header = &self.raw[at..at + FRAME_HEADER];
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            if len > MAX_FRAME {
                return Err(invalid("a frame larger than 16 KiB"));
            }
            if self.raw.len() - at < FRAME_HEADER + len {
                break;
            }
            let (kind, flags) = (header[3], header[4]);
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let payload = at + FRAME_HEADER..at + FRAME_HEADER + len;
            match kind {
                HEADERS => {
                    if self.block.is_some() {
                        return Err(invalid("a HEADERS frame inside a header block"));
                    }
                    let block = start_block(stream, flags, &self.raw[payload.clone()])?;
                    self.block = Some(block);
                    self.continue_block(flags)?;
                }
                CONTINUATION if self.block.is_some() => {
                    let block = self.block.as_mut().expect("checked");
                    if block.stream != stream {
                        return Err(invalid("a CONTINUATION of another stream"));
                    }
                    block
                        .fragments
                        .extend_from_slice(&self.raw[payload.clone()]);
                    self.continue_block(flags)?;
                }
                _ if self.block.is_some() => {
                    return Err(invalid("a frame inside a header block"));
                }
                _ => self.out.extend_from_slice(&self.raw[at..payload.end]),
            }
            at = payload.end;
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// After a fragment: when the block is whole (END_HEADERS), rewrites it
    /// into `out`.
    fn continue_block(&mut self, flags: u8) -> io::Result<()> {
        let Some(block) = &self.block else {
            return Ok(());
        };
        if block.fragments.len() > MAX_HEADER_BLOCK {
            return Err(invalid("a header block larger than 1 MiB"));
        }
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let block = self.block.take().expect("checked");
        let mut fields = Vec::new();
        self.decoder
            .decode_with_cb(&block.fragments, |name, value| {
                let value = if &*name == b":authority" && !is_authority(&value) {
                    LOCALHOST.to_vec()
                } else {
                    value.into_owned()
                };
                literal(&mut fields, &name, &value);
            })
            .map_err(|e| invalid(&format!("a header block HPACK cannot decode: {e:?}")))?;
        write_block(&mut self.out, &block, &fields);
        Ok(())
    }
}

/// The first fragment of a block, from a HEADERS frame's payload.
fn start_block(stream: u32, flags: u8, payload: &[u8]) -> io::Result<Block> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, tail) = rest
            .split_first()
            .ok_or_else(|| invalid("a HEADERS frame too short"))?;
        pad = usize::from(n);
        rest = tail;
    }
    let priority = if flags & PRIORITY != 0 {
        if rest.len() < 5 {
            return Err(invalid("a HEADERS frame too short"));
        }
        let (fields, tail) = rest.split_at(5);
        rest = tail;
        Some(fields.try_into().expect("five bytes"))
    } else {
        None
    };
    if pad > rest.len() {
        return Err(invalid("a HEADERS frame with more padding than payload"));
    }
    Ok(Block {
        stream,
        end_stream: flags & END_STREAM != 0,
        priority,
        fragments: rest[..rest.len() - pad].to_vec(),
    })
}

/// Writes a header block as a HEADERS frame and as many CONTINUATIONs as
/// it needs.
fn write_block(out: &mut Vec<u8>, block: &Block, fields: &[u8]) {
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    let first = fields.len().min(MAX_FRAME - priority.len());
    let mut flags = 0;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    let (head, mut rest) = fields.split_at(first);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(
        out,
        priority.len() + head.len(),
        HEADERS,
        flags,
        block.stream,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, block.stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// Appends a "literal header field without indexing, new name" (RFC 7541,
/// 6.2.2), name and value not Huffman-coded.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    use loona_hpack::encoder::encode_integer_into;
    out.push(0);
    for text in [name, value] {
        // Writing to a Vec cannot fail.
        let _ = encode_integer_into(text.len(), 7, 0, out);
        out.extend_from_slice(text);
    }
}

/// Whether h2 takes `value` as an authority.
fn is_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("HTTP/2 from the client: {what}"),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_read < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_read);
                buf.put_slice(&this.out[this.out_read..this.out_read + n]);
                this.out_read += n;
                if this.out_read == this.out.len() {
                    this.out.clear();
                    this.out_read = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // What is left is no whole frame: h2 sees it and ends.
                this.out = std::mem::take(&mut this.raw);
                if this.out.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.handle()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFix<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the server reads after the client wrote `client`.
    async fn through(client: &[u8]) -> io::Result<Vec<u8>> {
        let (mut near, far) = tokio::io::duplex(1 << 20);
        near.write_all(client).await.unwrap();
        drop(near);
        let mut fixed = AuthorityFix::new(far);
        let mut seen = Vec::new();
        fixed.read_to_end(&mut seen).await?;
        Ok(seen)
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// The frames after the preface: (kind, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert!(bytes.starts_with(PREFACE));
        bytes = &bytes[PREFACE.len()..];
        let mut all = Vec::new();
        while !bytes.is_empty() {
            let len =
                usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap());
            all.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        all
    }

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        loona_hpack::Decoder::new()
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    fn request(authority: &str) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (b":method".as_slice(), b"POST".to_vec()),
            (b":scheme", b"http".to_vec()),
            (b":path", b"/grpc.health.v1.Health/Check".to_vec()),
            (b":authority", authority.as_bytes().to_vec()),
            (b"te", b"trailers".to_vec()),
        ]
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'_>, fields: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
        encoder.encode(fields.iter().map(|(n, v)| (*n, v.as_slice())))
    }

    #[tokio::test]
    async fn a_socket_path_authority_becomes_localhost_and_the_rest_passes() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut client = PREFACE.to_vec();
        client.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        // Fields indexed as they are first sent: the second request is
        // mostly references to the dynamic table the first one filled.
        let first = encode(&mut encoder, &request("/run/libcrun-shim/crun-shimd.sock"));
        client.extend(frame(HEADERS, END_HEADERS, 1, &first));
        client.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")); // DATA
        let second = encode(&mut encoder, &request("/run/libcrun-shim/crun-shimd.sock"));
        let (a, b) = second.split_at(second.len() / 2);
        let mut padded = vec![3];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0, 0]);
        client.extend(frame(HEADERS, PADDED | END_STREAM, 3, &padded));
        client.extend(frame(CONTINUATION, END_HEADERS, 3, b));
        let valid = encode(&mut encoder, &request("localhost:50051"));
        client.extend(frame(HEADERS, END_HEADERS, 5, &valid));

        let seen = frames(&through(&client).await.unwrap());
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!((seen[0].0, seen[0].3.len()), (0x4, 0), "SETTINGS as it was");
        assert_eq!(
            seen[2],
            (0x0, END_STREAM, 1, b"\0\0\0\0\0".to_vec()),
            "DATA as it was"
        );
        let authority = |fields: Vec<(String, String)>| {
            assert_eq!(fields.len(), 5, "{fields:?}");
            fields
                .into_iter()
                .find(|(n, _)| n == ":authority")
                .unwrap()
                .1
        };
        // h2 decodes each block with a fresh table: nothing is indexed.
        assert_eq!((seen[1].0, seen[1].1, seen[1].2), (HEADERS, END_HEADERS, 1));
        assert_eq!(authority(decode(&seen[1].3)), "localhost");
        assert_eq!(
            (seen[3].0, seen[3].1, seen[3].2),
            (HEADERS, END_HEADERS | END_STREAM, 3)
        );
        assert_eq!(authority(decode(&seen[3].3)), "localhost");
        assert_eq!(
            authority(decode(&seen[4].3)),
            "localhost:50051",
            "a valid one is kept"
        );
    }

    #[tokio::test]
    async fn a_block_grown_past_a_frame_is_split_into_continuations() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut fields = request("/s.sock");
        let big = vec![b'x'; 40_000];
        fields.push((b"x-big", big.clone()));
        let block = encode(&mut encoder, &fields);
        let mut client = PREFACE.to_vec();
        for (i, chunk) in block.chunks(MAX_FRAME).enumerate() {
            let last = (i + 1) * MAX_FRAME >= block.len();
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            client.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, chunk));
        }
        let seen = frames(&through(&client).await.unwrap());
        assert!(seen.len() >= 3, "{}", seen.len());
        assert!(seen.iter().all(|f| f.3.len() <= MAX_FRAME && f.2 == 1));
        assert_eq!(seen[0].0, HEADERS);
        assert!(seen[1..].iter().all(|f| f.0 == CONTINUATION));
        assert!(
            seen[..seen.len() - 1]
                .iter()
                .all(|f| f.1 & END_HEADERS == 0)
        );
        assert_eq!(seen.last().unwrap().1, END_HEADERS);
        let whole: Vec<u8> = seen.iter().flat_map(|f| f.3.clone()).collect();
        let decoded = decode(&whole);
        assert_eq!(decoded[3].1, "localhost");
        assert_eq!(decoded[5].1.len(), big.len());
    }

    #[tokio::test]
    async fn what_is_not_http2_ends_the_connection() {
        assert_eq!(
            through(b"GET / HTTP/1.1\r\n\r\n").await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut client = PREFACE.to_vec();
        client.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]));
        assert!(through(&client).await.is_err(), "undecodable HPACK");
        let mut client = PREFACE.to_vec();
        client.extend(frame(HEADERS, 0, 1, &[0x82]));
        client.extend(frame(0x0, 0, 1, b"data"));
        assert!(through(&client).await.is_err(), "a frame inside a block");
        let mut client = PREFACE.to_vec();
        client.extend([0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1]);
        assert!(
            through(&client).await.is_err(),
            "a 16 MiB frame, not buffered"
        );
    }
}
