//! SPDY/3 header blocks: the name/value block format and its zlib
//! compression with the SPDY/3 dictionary (one compression context per
//! direction of a session, kept across frames).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::FrameError;

/// The most bytes a decompressed header block may have (a zlib bomb guard).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// The words the SPDY/3 dictionary starts with, each stored as a 4-byte
/// big-endian length and the word (draft-mbelshe-httpbis-spdy-00 §2.6.10.1).
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The rest of the SPDY/3 dictionary, stored as is.
const DICTIONARY_TAIL: &[u8] = b"100101201202205206300302303304305306307402405406407408409410411\
412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently\
400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error\
501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec \
00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,\
deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

const fn dictionary_len() -> usize {
    let mut len = DICTIONARY_TAIL.len();
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        len += 4 + DICTIONARY_WORDS[i].len();
        i += 1;
    }
    len
}

const fn build_dictionary() -> [u8; dictionary_len()] {
    let mut out = [0u8; dictionary_len()];
    let mut at = 0;
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        let word = DICTIONARY_WORDS[i].as_bytes();
        let len = (word.len() as u32).to_be_bytes();
        let mut j = 0;
        while j < 4 {
            out[at] = len[j];
            at += 1;
            j += 1;
        }
        j = 0;
        while j < word.len() {
            out[at] = word[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    let mut j = 0;
    while j < DICTIONARY_TAIL.len() {
        out[at] = DICTIONARY_TAIL[j];
        at += 1;
        j += 1;
    }
    out
}

/// The zlib dictionary of SPDY/3 header compression (1423 bytes).
pub const DICTIONARY: [u8; dictionary_len()] = build_dictionary();

/// The header block of a SYN_STREAM, SYN_REPLY or HEADERS frame: names
/// (lowercase, as SPDY/3 requires) and values, in order. A value holding
/// several values separates them with NUL bytes, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// Adds a header; the name is lowercased.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Headers {
        self.insert(name, value);
        self
    }

    /// Sets `name` (lowercased) to `value`, replacing an earlier value.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name` (any case), the first one when it holds several.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    /// All values of `name` (any case).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split('\0'))
            .collect()
    }

    /// The headers as (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many names the block has.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the block has no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The uncompressed name/value block: a 32-bit count, then each name and
    /// value with a 32-bit length.
    pub fn encode_block(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            4 + self
                .0
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>(),
        );
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed name/value block. Names must be non-empty,
    /// lowercase and unique; values must be UTF-8.
    pub fn decode_block(block: &[u8]) -> Result<Headers, FrameError> {
        let mut rest = block;
        let count = take_u32(&mut rest)? as usize;
        // Each pair takes at least 8 bytes: a bound before allocating.
        if count > rest.len() / 8 {
            return Err(FrameError::Invalid("header block count exceeds its size"));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            if name.is_empty() {
                return Err(FrameError::Invalid("empty header name"));
            }
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(FrameError::Invalid("uppercase header name"));
            }
            if headers.iter().any(|(n, _): &(String, String)| *n == name) {
                return Err(FrameError::Invalid("duplicate header name"));
            }
            let value = take_string(&mut rest)?;
            headers.push((name, value));
        }
        if !rest.is_empty() {
            return Err(FrameError::Invalid("trailing bytes after the header block"));
        }
        Ok(Headers(headers))
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, FrameError> {
    if rest.len() < 4 {
        return Err(FrameError::Invalid("truncated header block"));
    }
    let (head, tail) = rest.split_at(4);
    *rest = tail;
    Ok(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
}

fn take_string(rest: &mut &[u8]) -> Result<String, FrameError> {
    let len = take_u32(rest)? as usize;
    if rest.len() < len {
        return Err(FrameError::Invalid("truncated header block"));
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(head.to_vec()).map_err(|_| FrameError::Invalid("header is not UTF-8"))
}

/// Compresses header blocks of one direction of a session (one zlib stream
/// for the whole session, each block ending in a sync flush).
pub struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor").finish_non_exhaustive()
    }
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        HeaderCompressor::new()
    }
}

impl HeaderCompressor {
    /// A new compression context, primed with the SPDY/3 dictionary.
    pub fn new() -> HeaderCompressor {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(&DICTIONARY)
            .expect("a fresh zlib stream takes a dictionary");
        HeaderCompressor { zlib }
    }

    /// Appends the compressed form of `headers` to `out`.
    pub fn compress(&mut self, headers: &Headers, out: &mut Vec<u8>) {
        let block = headers.encode_block();
        let mut input = &block[..];
        loop {
            out.reserve(block.len() / 2 + 64);
            let before_in = self.zlib.total_in();
            let status = self
                .zlib
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer");
            input = &input[(self.zlib.total_in() - before_in) as usize..];
            // Done when all input is taken and deflate left spare room (so
            // the sync flush marker is complete).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            debug_assert_ne!(status, Status::StreamEnd);
        }
    }
}

/// Decompresses the header blocks of one direction of a session.
pub struct HeaderDecompressor {
    zlib: Decompress,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor").finish_non_exhaustive()
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        HeaderDecompressor::new()
    }
}

impl HeaderDecompressor {
    /// A new decompression context (it takes the SPDY/3 dictionary when the
    /// stream asks for it).
    pub fn new() -> HeaderDecompressor {
        HeaderDecompressor {
            zlib: Decompress::new(true),
        }
    }

    /// Decompresses one header block (all of `compressed`) and parses it.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            let before_in = self.zlib.total_in();
            let result = self
                .zlib
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.zlib.total_in() - before_in) as usize..];
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(FrameError::Invalid("header compression stream ended"));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(&DICTIONARY).map_err(|_| {
                        FrameError::Invalid("header compression wants another dictionary")
                    })?;
                    continue;
                }
                Err(_) => return Err(FrameError::Invalid("corrupt header compression")),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::TooLarge);
            }
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(1024));
        }
        Headers::decode_block(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(&DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(DICTIONARY.ends_with(b"enq=0."));
        // The Adler-32 that zlib streams using it name (FDICT DICTID):
        // e3c6a7c2, as in the bytes other SPDY/3 implementations write.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY {
            a = (a + byte as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_through_one_context() {
        let mut compressor = HeaderCompressor::new();
        let mut decompressor = HeaderDecompressor::new();
        let blocks = [
            Headers::new().with("streamType", "error"),
            Headers::new().with("streamtype", "stdout"),
            Headers::new(),
            Headers::new()
                .with("port", "8080")
                .with("requestid", "7")
                .with("x-multi", "a\0b"),
        ];
        for headers in &blocks {
            let mut wire = Vec::new();
            compressor.compress(headers, &mut wire);
            let back = decompressor.decompress(&wire).unwrap();
            assert_eq!(&back, headers);
        }
        assert_eq!(blocks[0].get("StreamType"), Some("error"));
        assert_eq!(blocks[3].get_all("x-multi"), ["a", "b"]);
    }

    #[test]
    fn bad_blocks_are_errors() {
        assert!(Headers::decode_block(&[0, 0, 0, 1]).is_err());
        assert!(Headers::decode_block(&[0, 0, 0, 9, 0, 0, 0, 0]).is_err());
        let upper = Headers(vec![("Name".into(), "v".into())]).encode_block();
        assert!(Headers::decode_block(&upper).is_err());
        let mut decompressor = HeaderDecompressor::new();
        assert!(decompressor.decompress(b"not zlib at all").is_err());
    }

    #[test]
    fn a_zlib_bomb_is_refused() {
        let big = "x".repeat(MAX_HEADER_BLOCK * 2);
        let headers = Headers::new().with("big", big);
        let mut wire = Vec::new();
        HeaderCompressor::new().compress(&headers, &mut wire);
        assert!(wire.len() < 8 * 1024, "compresses well: {}", wire.len());
        assert!(matches!(
            HeaderDecompressor::new().decompress(&wire),
            Err(FrameError::TooLarge)
        ));
    }
}
