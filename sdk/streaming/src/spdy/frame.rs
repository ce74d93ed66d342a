//! SPDY/3.1 frames and their wire format.
//!
//! Control frames: `|1|version:15|type:16|flags:8|length:24|payload`; data
//! frames: `|0|stream-id:31|flags:8|length:24|data`. The codec keeps the
//! header compression contexts of both directions, so one [`FrameCodec`]
//! serves one session.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

/// The protocol version every control frame carries.
pub const VERSION: u16 = 3;
/// The largest payload a frame can have (24-bit length).
pub const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;
/// The largest control frame payload this codec accepts.
pub const MAX_CONTROL_PAYLOAD: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

/// Why a byte sequence is not a valid frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The control frame names another SPDY version.
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    /// The frame is malformed.
    #[error("invalid frame: {0}")]
    Invalid(&'static str),
    /// The frame (or its decompressed headers) is larger than allowed.
    #[error("frame too large")]
    TooLarge,
    /// Reading or writing the transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The status of a RST_STREAM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstStatus {
    /// 1: the stream broke the protocol.
    ProtocolError,
    /// 2: a frame for a stream that is not active.
    InvalidStream,
    /// 3: the stream was refused before any processing.
    RefusedStream,
    /// 4: the SPDY version is not supported.
    UnsupportedVersion,
    /// 5: the stream is no longer needed.
    Cancel,
    /// 6: an internal error.
    InternalError,
    /// 7: the peer broke flow control.
    FlowControlError,
    /// 8: a SYN_STREAM for a stream already open.
    StreamInUse,
    /// 9: data or a SYN_REPLY for a half-closed stream.
    StreamAlreadyClosed,
    /// 11: a frame too large to process.
    FrameTooLarge,
    /// Any other code, kept as is.
    Other(u32),
}

impl RstStatus {
    fn code(self) -> u32 {
        match self {
            RstStatus::ProtocolError => 1,
            RstStatus::InvalidStream => 2,
            RstStatus::RefusedStream => 3,
            RstStatus::UnsupportedVersion => 4,
            RstStatus::Cancel => 5,
            RstStatus::InternalError => 6,
            RstStatus::FlowControlError => 7,
            RstStatus::StreamInUse => 8,
            RstStatus::StreamAlreadyClosed => 9,
            RstStatus::FrameTooLarge => 11,
            RstStatus::Other(code) => code,
        }
    }

    fn from_code(code: u32) -> RstStatus {
        match code {
            1 => RstStatus::ProtocolError,
            2 => RstStatus::InvalidStream,
            3 => RstStatus::RefusedStream,
            4 => RstStatus::UnsupportedVersion,
            5 => RstStatus::Cancel,
            6 => RstStatus::InternalError,
            7 => RstStatus::FlowControlError,
            8 => RstStatus::StreamInUse,
            9 => RstStatus::StreamAlreadyClosed,
            11 => RstStatus::FrameTooLarge,
            other => RstStatus::Other(other),
        }
    }
}

/// The status of a GOAWAY frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoAwayStatus {
    /// 0: a normal end of the session.
    Ok,
    /// 1: the peer broke the protocol.
    ProtocolError,
    /// 2: an internal error.
    InternalError,
    /// Any other code, kept as is.
    Other(u32),
}

impl GoAwayStatus {
    fn code(self) -> u32 {
        match self {
            GoAwayStatus::Ok => 0,
            GoAwayStatus::ProtocolError => 1,
            GoAwayStatus::InternalError => 2,
            GoAwayStatus::Other(code) => code,
        }
    }

    fn from_code(code: u32) -> GoAwayStatus {
        match code {
            0 => GoAwayStatus::Ok,
            1 => GoAwayStatus::ProtocolError,
            2 => GoAwayStatus::InternalError,
            other => GoAwayStatus::Other(other),
        }
    }
}

/// The id of SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// The id of SETTINGS_MAX_CONCURRENT_STREAMS.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;

/// One entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The entry's flags (1: persist value, 2: persisted).
    pub flags: u8,
    /// The setting's id (24 bits), e.g. [`SETTINGS_INITIAL_WINDOW_SIZE`].
    pub id: u32,
    /// Its value.
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream's id (odd from clients, even from servers).
        stream_id: u32,
        /// The stream this one is associated to (0: none).
        associated_to: u32,
        /// Priority 0 (highest) to 7.
        priority: u8,
        /// The credential slot (0: none).
        slot: u8,
        /// The sender sends nothing more on the stream.
        fin: bool,
        /// The receiver may not send on the stream.
        unidirectional: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on the stream.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why.
        status: RstStatus,
    },
    /// Session settings.
    Settings {
        /// The receiver clears settings it persisted.
        clear: bool,
        /// The settings.
        entries: Vec<Setting>,
    },
    /// A liveness check, echoed by the peer that did not send it.
    Ping {
        /// Odd from clients, even from servers.
        id: u32,
    },
    /// The sender takes no new streams.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: u32,
        /// Why.
        status: GoAwayStatus,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on the stream.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Lets the peer send `delta` more bytes on a stream (or on the session
    /// when `stream_id` is 0).
    WindowUpdate {
        /// The stream, or 0 for the whole session.
        stream_id: u32,
        /// How many more bytes (1 to 2^31-1).
        delta: u32,
    },
    /// Bytes of a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on the stream.
        fin: bool,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know (the
    /// protocol says to ignore it).
    Unknown {
        /// Its type.
        frame_type: u16,
    },
}

/// Encodes and decodes frames of one session, with its two header
/// compression contexts.
#[derive(Debug, Default)]
pub struct FrameCodec {
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
}

impl FrameCodec {
    /// A codec with fresh compression contexts.
    pub fn new() -> FrameCodec {
        FrameCodec::default()
    }
}

fn control_header(dst: &mut BytesMut, frame_type: u16, flags: u8, length: usize) {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    dst.put_u32(((flags as u32) << 24) | length as u32);
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let mut block = Vec::new();
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                fin,
                unidirectional,
                headers,
            } => {
                self.compressor.compress(&headers, &mut block);
                let flags = flag(fin, FLAG_FIN) | flag(unidirectional, FLAG_UNIDIRECTIONAL);
                control_header(dst, TYPE_SYN_STREAM, flags, 10 + block.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(associated_to & 0x7fff_ffff);
                dst.put_u8((priority & 0x7) << 5);
                dst.put_u8(slot);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                self.compressor.compress(&headers, &mut block);
                control_header(dst, TYPE_SYN_REPLY, flag(fin, FLAG_FIN), 4 + block.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                self.compressor.compress(&headers, &mut block);
                control_header(dst, TYPE_HEADERS, flag(fin, FLAG_FIN), 4 + block.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(dst, TYPE_RST_STREAM, 0, 8);
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(status.code());
            }
            Frame::Settings { clear, entries } => {
                control_header(
                    dst,
                    TYPE_SETTINGS,
                    flag(clear, FLAG_CLEAR_SETTINGS),
                    4 + 8 * entries.len(),
                );
                dst.put_u32(entries.len() as u32);
                for entry in entries {
                    dst.put_u32(((entry.flags as u32) << 24) | (entry.id & 0xff_ffff));
                    dst.put_u32(entry.value);
                }
            }
            Frame::Ping { id } => {
                control_header(dst, TYPE_PING, 0, 4);
                dst.put_u32(id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(dst, TYPE_GOAWAY, 0, 8);
                dst.put_u32(last_good_stream_id & 0x7fff_ffff);
                dst.put_u32(status.code());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(dst, TYPE_WINDOW_UPDATE, 0, 8);
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(FrameError::TooLarge);
                }
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(((flag(fin, FLAG_FIN) as u32) << 24) | data.len() as u32);
                dst.extend_from_slice(&data);
                return Ok(());
            }
            Frame::Unknown { .. } => {
                return Err(FrameError::Invalid("cannot encode an unknown frame"));
            }
        }
        if block.len() > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::TooLarge);
        }
        dst.extend_from_slice(&block);
        Ok(())
    }
}

fn stream_id(payload: &mut Bytes) -> u32 {
    payload.get_u32() & 0x7fff_ffff
}

fn need(payload: &Bytes, len: usize, what: &'static str) -> Result<(), FrameError> {
    if payload.len() < len {
        return Err(FrameError::Invalid(what));
    }
    Ok(())
}

fn exact(payload: &Bytes, len: usize, what: &'static str) -> Result<(), FrameError> {
    if payload.len() != len {
        return Err(FrameError::Invalid(what));
    }
    Ok(())
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 8 {
            return Ok(None);
        }
        let control = src[0] & 0x80 != 0;
        let flags = src[4];
        let length = u32::from_be_bytes([0, src[5], src[6], src[7]]) as usize;
        if control && length > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::TooLarge);
        }
        if src.len() < 8 + length {
            src.reserve(8 + length - src.len());
            return Ok(None);
        }
        let head = src.split_to(8);
        let mut payload = src.split_to(length).freeze();
        if !control {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::Invalid("data frame for stream 0"));
            }
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let fin = flags & FLAG_FIN != 0;
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                need(&payload, 10, "short SYN_STREAM")?;
                let stream_id = stream_id(&mut payload);
                let associated_to = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let slot = payload.get_u8();
                if stream_id == 0 {
                    return Err(FrameError::Invalid("SYN_STREAM for stream 0"));
                }
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.decompressor.decompress(&payload)?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(&payload, 4, "short SYN_REPLY or HEADERS")?;
                let stream_id = stream_id(&mut payload);
                let headers = self.decompressor.decompress(&payload)?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                exact(&payload, 8, "RST_STREAM of a wrong length")?;
                Frame::RstStream {
                    stream_id: stream_id(&mut payload),
                    status: RstStatus::from_code(payload.get_u32()),
                }
            }
            TYPE_SETTINGS => {
                need(&payload, 4, "short SETTINGS")?;
                let count = payload.get_u32() as usize;
                exact(
                    &payload,
                    count.saturating_mul(8),
                    "SETTINGS of a wrong length",
                )?;
                let entries = (0..count)
                    .map(|_| {
                        let id = payload.get_u32();
                        Setting {
                            flags: (id >> 24) as u8,
                            id: id & 0xff_ffff,
                            value: payload.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            TYPE_PING => {
                exact(&payload, 4, "PING of a wrong length")?;
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            TYPE_GOAWAY => {
                // SPDY/2 GOAWAYs had no status: accept both lengths.
                if payload.len() != 8 && payload.len() != 4 {
                    return Err(FrameError::Invalid("GOAWAY of a wrong length"));
                }
                let last_good_stream_id = stream_id(&mut payload);
                let status = if payload.has_remaining() {
                    GoAwayStatus::from_code(payload.get_u32())
                } else {
                    GoAwayStatus::Ok
                };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                exact(&payload, 8, "WINDOW_UPDATE of a wrong length")?;
                let stream_id = stream_id(&mut payload);
                let delta = payload.get_u32() & 0x7fff_ffff;
                if delta == 0 {
                    return Err(FrameError::Invalid("WINDOW_UPDATE of 0"));
                }
                Frame::WindowUpdate { stream_id, delta }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: Vec<Frame>) {
        let mut writer = FrameCodec::new();
        let mut reader = FrameCodec::new();
        let mut wire = BytesMut::new();
        for frame in &frames {
            writer.encode(frame.clone(), &mut wire).unwrap();
        }
        // Fed a byte at a time, the decoder waits for whole frames.
        let mut input = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in wire {
            input.put_u8(byte);
            while let Some(frame) = reader.decode(&mut input).unwrap() {
                decoded.push(frame);
            }
        }
        assert!(input.is_empty());
        assert_eq!(decoded, frames);
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: Headers::new().with("streamtype", "error"),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                slot: 2,
                fin: true,
                unidirectional: true,
                headers: Headers::new()
                    .with("streamtype", "stdout")
                    .with("port", "80"),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: Headers::new().with("x", "a\0b"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::FlowControlError,
            },
            Frame::RstStream {
                stream_id: 5,
                status: RstStatus::Other(99),
            },
            Frame::Settings {
                clear: true,
                entries: vec![
                    Setting {
                        flags: 1,
                        id: SETTINGS_INITIAL_WINDOW_SIZE,
                        value: 1 << 20,
                    },
                    Setting {
                        flags: 0,
                        id: SETTINGS_MAX_CONCURRENT_STREAMS,
                        value: 100,
                    },
                ],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: GoAwayStatus::ProtocolError,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 0x7fff_ffff,
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::new(),
            },
        ]);
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        FrameCodec::new().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn malformed_frames_are_errors() {
        // SPDY/2.
        assert!(matches!(
            decode_one(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::UnsupportedVersion(2))
        ));
        // PING with 3 bytes.
        assert!(decode_one(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1]).is_err());
        // WINDOW_UPDATE of 0.
        assert!(decode_one(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        // SETTINGS claiming 2 entries with room for 1.
        assert!(
            decode_one(&[
                0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 1, 0
            ])
            .is_err()
        );
        // Data for stream 0.
        assert!(decode_one(&[0, 0, 0, 0, 0, 0, 0, 1, b'x']).is_err());
        // A control frame over the limit is refused from its header alone.
        assert!(matches!(
            decode_one(&[0x80, 3, 0, 1, 0, 0x20, 0, 0]),
            Err(FrameError::TooLarge)
        ));
        // Unknown control types are skipped, not errors.
        assert_eq!(
            decode_one(&[0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2]).unwrap(),
            Some(Frame::Unknown { frame_type: 10 })
        );
        // Incomplete input waits.
        assert_eq!(decode_one(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0]).unwrap(), None);
    }
}
