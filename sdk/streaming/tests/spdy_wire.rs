//! Frames as moby/spdystream v0.5.1 (the SPDY of kubectl, client-go and
//! critest) writes them, byte for byte, decoded by our codec; and our
//! frames decoded by a fresh codec the way that peer reads them.

use bytes::{Bytes, BytesMut};
use crun_shim_streaming::spdy::{Frame, FrameCodec, GoAwayStatus, Headers, RstStatus, Setting};
use tokio_util::codec::{Decoder, Encoder};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Client-to-server frames in the order spdystream wrote them (the header
/// blocks share one zlib context: the second block leans on the first).
const CLIENT_FRAMES: &[&str] = &[
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff",
    "800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff",
    "80030008010000190000000182cab157e8e696e69464820b53862400000000ffff",
    "000000010100000568656c6c6f",
    "80030003000000080000000300000005",
    "800300060000000400000001",
    "80030007000000080000000500000000",
    "80030009000000080000000100001000",
    "800300040000000c000000010000000700000400",
];

/// Server-to-client SYN_REPLYs from spdystream (their own zlib context).
const SERVER_FRAMES: &[&str] = &[
    "80030002000000140000000178f9e3c6a7c26260606000000000ffff",
    "800300020000000c00000003026100000000ffff",
];

fn decode_all(codec: &mut FrameCodec, frames: &[&str]) -> Vec<Frame> {
    let mut wire = BytesMut::new();
    for f in frames {
        wire.extend_from_slice(&hex(f));
    }
    let mut out = Vec::new();
    while let Some(frame) = codec.decode(&mut wire).unwrap() {
        out.push(frame);
    }
    assert!(wire.is_empty(), "all bytes are frames");
    out
}

#[test]
fn spdystream_client_frames_decode() {
    let frames = decode_all(&mut FrameCodec::new(), CLIENT_FRAMES);
    let syn = |stream_id, kind: &str| Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: Headers::new().with("streamtype", kind),
    };
    assert_eq!(
        frames,
        vec![
            syn(1, "error"),
            syn(3, "stdout"),
            Frame::Headers {
                stream_id: 1,
                fin: true,
                headers: Headers::new().with("x-multi", "a\0b"),
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::Cancel,
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: GoAwayStatus::Ok,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 4096,
            },
            Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: 1024,
                }],
            },
        ]
    );
}

#[test]
fn spdystream_server_replies_decode() {
    let frames = decode_all(&mut FrameCodec::new(), SERVER_FRAMES);
    for (frame, id) in frames.iter().zip([1, 3]) {
        assert_eq!(
            frame,
            &Frame::SynReply {
                stream_id: id,
                fin: false,
                headers: Headers::new(),
            }
        );
    }
}

#[test]
fn uncompressed_frames_match_spdystream_bytes() {
    // Frames without header blocks must be byte-identical.
    let mut codec = FrameCodec::new();
    let cases = [
        (
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            CLIENT_FRAMES[3],
        ),
        (
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::Cancel,
            },
            CLIENT_FRAMES[4],
        ),
        (Frame::Ping { id: 1 }, CLIENT_FRAMES[5]),
        (
            Frame::GoAway {
                last_good_stream_id: 5,
                status: GoAwayStatus::Ok,
            },
            CLIENT_FRAMES[6],
        ),
        (
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 4096,
            },
            CLIENT_FRAMES[7],
        ),
        (
            Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: 1024,
                }],
            },
            CLIENT_FRAMES[8],
        ),
    ];
    for (frame, expected) in cases {
        let mut out = BytesMut::new();
        codec.encode(frame.clone(), &mut out).unwrap();
        assert_eq!(out.to_vec(), hex(expected), "{frame:?}");
    }
}

#[test]
fn our_header_blocks_name_the_spdy3_dictionary() {
    // Like spdystream's, our first block starts a zlib stream whose header
    // names the SPDY/3 dictionary by its Adler-32 (FDICT, DICTID e3c6a7c2).
    let mut out = BytesMut::new();
    FrameCodec::new()
        .encode(
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            &mut out,
        )
        .unwrap();
    let zlib = &out[12..];
    assert_eq!(zlib[0] & 0x0f, 8, "deflate");
    assert_ne!(zlib[1] & 0x20, 0, "FDICT");
    assert_eq!(&zlib[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    assert_eq!(((zlib[0] as u16) << 8 | zlib[1] as u16) % 31, 0, "FCHECK");
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "ends in a sync flush");
}
