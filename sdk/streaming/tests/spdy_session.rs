//! A session against a peer written frame by frame: flow control both
//! ways, pings, resets, and the peers that keep no windows.

use std::time::Duration;

use bytes::Bytes;
use crun_shim_streaming::spdy::{
    Frame, FrameCodec, Headers, Incoming, Role, RstStatus, SETTINGS_INITIAL_WINDOW_SIZE, Session,
    SessionConfig, Setting, Stream,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

/// The client end, speaking raw frames.
struct Peer {
    rx: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
    tx: FramedWrite<WriteHalf<DuplexStream>, FrameCodec>,
}

impl Peer {
    async fn send(&mut self, frame: Frame) {
        self.tx.send(frame).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        tokio::time::timeout(Duration::from_secs(10), self.rx.next())
            .await
            .expect("a frame in time")
            .expect("the session is open")
            .unwrap()
    }

    /// Frames up to the echo of a PING sent now: what the server had queued
    /// before it (frames leave the server in order).
    async fn drain(&mut self, ping: u32) -> Vec<Frame> {
        self.send(Frame::Ping { id: ping }).await;
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Frame::Ping { id } if id == ping => return frames,
                other => frames.push(other),
            }
        }
    }

    /// Opens stream `id`; returns the server's end of it.
    async fn open(&mut self, incoming: &mut Incoming, id: u32) -> Stream {
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new().with("streamtype", "stdout"),
        })
        .await;
        let stream = incoming.next().await.unwrap().accept();
        loop {
            if let Frame::SynReply { stream_id, .. } = self.next().await {
                assert_eq!(stream_id, id);
                return stream;
            }
        }
    }
}

fn start(config: SessionConfig) -> (Session, Incoming, Peer) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (session, incoming) = Session::new(ours, Role::Server, config);
    let (r, w) = tokio::io::split(theirs);
    let peer = Peer {
        rx: FramedRead::new(r, FrameCodec::new()),
        tx: FramedWrite::new(w, FrameCodec::new()),
    };
    (session, incoming, peer)
}

fn data_len(frames: &[Frame], id: u32) -> usize {
    frames
        .iter()
        .map(|f| match f {
            Frame::Data {
                stream_id, data, ..
            } if *stream_id == id => data.len(),
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn the_server_announces_its_windows() {
    let (_session, _incoming, mut peer) = start(SessionConfig::default());
    let frames = peer.drain(1).await;
    assert_eq!(
        frames,
        vec![
            Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 256 * 1024,
                }],
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1024 * 1024 - 64 * 1024,
            },
        ]
    );
}

#[tokio::test]
async fn a_peers_stream_window_holds_the_server_back() {
    let (_session, mut incoming, mut peer) = start(SessionConfig::default());
    peer.send(Frame::Settings {
        clear: false,
        entries: vec![Setting {
            flags: 0,
            id: SETTINGS_INITIAL_WINDOW_SIZE,
            value: 1000,
        }],
    })
    .await;
    let mut stream = peer.open(&mut incoming, 1).await;
    let writer = tokio::spawn(async move {
        stream.write_all(&[7u8; 5000]).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    });
    let mut got = 0;
    while got < 1000 {
        got += data_len(&[peer.next().await], 1);
    }
    assert_eq!(got, 1000);
    // Nothing more until the window grows.
    assert_eq!(data_len(&peer.drain(3).await, 1), 0);
    peer.send(Frame::WindowUpdate {
        stream_id: 1,
        delta: 4000,
    })
    .await;
    let mut fin = false;
    while !fin {
        let frame = peer.next().await;
        got += data_len(std::slice::from_ref(&frame), 1);
        fin = matches!(frame, Frame::Data { fin: true, .. });
    }
    assert_eq!(got, 5000);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_peers_session_window_holds_every_stream_back() {
    let (_session, mut incoming, mut peer) = start(SessionConfig::default());
    // A session WINDOW_UPDATE says the peer keeps the session window
    // (64 KiB + 1 now); its stream windows stay unlimited.
    peer.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 1,
    })
    .await;
    let mut a = peer.open(&mut incoming, 1).await;
    let mut b = peer.open(&mut incoming, 3).await;
    tokio::spawn(async move { a.write_all(&[1u8; 50_000]).await });
    tokio::spawn(async move { b.write_all(&[2u8; 50_000]).await });
    let mut got = 0;
    while got < 65_537 {
        let frame = peer.next().await;
        got +=
            data_len(std::slice::from_ref(&frame), 1) + data_len(std::slice::from_ref(&frame), 3);
    }
    assert_eq!(got, 65_537);
    let frames = peer.drain(5).await;
    assert_eq!(data_len(&frames, 1) + data_len(&frames, 3), 0);
    peer.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 100_000,
    })
    .await;
    while got < 100_000 {
        let frame = peer.next().await;
        got +=
            data_len(std::slice::from_ref(&frame), 1) + data_len(std::slice::from_ref(&frame), 3);
    }
    assert_eq!(got, 100_000);
}

#[tokio::test]
async fn a_peer_that_keeps_no_windows_is_not_held_back() {
    // moby/spdystream: no SETTINGS, no WINDOW_UPDATE ever.
    let (_session, mut incoming, mut peer) = start(SessionConfig::default());
    let mut stream = peer.open(&mut incoming, 1).await;
    tokio::spawn(async move {
        stream.write_all(&vec![9u8; 1 << 20]).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let mut got = 0;
    loop {
        let frame = peer.next().await;
        got += data_len(std::slice::from_ref(&frame), 1);
        if matches!(frame, Frame::Data { fin: true, .. }) {
            break;
        }
    }
    assert_eq!(got, 1 << 20);
}

#[tokio::test]
async fn the_server_grants_window_as_the_application_reads() {
    let config = SessionConfig {
        stream_window: 64 * 1024,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut peer) = start(config);
    peer.send(Frame::Settings {
        clear: false,
        entries: vec![],
    })
    .await;
    let mut stream = peer.open(&mut incoming, 1).await;
    // The whole window, then read by the application.
    for _ in 0..2 {
        peer.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![1u8; 32 * 1024]),
        })
        .await;
    }
    let mut buf = vec![0u8; 64 * 1024];
    stream.read_exact(&mut buf).await.unwrap();
    let granted: u32 = peer
        .drain(1)
        .await
        .iter()
        .map(|f| match f {
            Frame::WindowUpdate {
                stream_id: 1,
                delta,
            } => *delta,
            _ => 0,
        })
        .sum();
    assert_eq!(granted, 64 * 1024);
}

#[tokio::test]
async fn overrunning_a_granted_window_resets_the_stream() {
    let config = SessionConfig {
        stream_window: 1000,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut peer) = start(config);
    // The peer keeps windows (it said so with a SETTINGS frame)...
    peer.send(Frame::Settings {
        clear: false,
        entries: vec![],
    })
    .await;
    let mut stream = peer.open(&mut incoming, 1).await;
    // ... yet sends more than the 1000 bytes granted.
    peer.send(Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0u8; 1500]),
    })
    .await;
    let frames = peer.drain(1).await;
    assert!(frames.contains(&Frame::RstStream {
        stream_id: 1,
        status: RstStatus::FlowControlError,
    }));
    let mut buf = Vec::new();
    let err = stream.read_to_end(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn pings_are_echoed_and_answered() {
    let (session, _incoming, mut peer) = start(SessionConfig::default());
    // The peer's ping (odd: a client's) comes back.
    assert!(
        peer.drain(7)
            .await
            .iter()
            .all(|f| !matches!(f, Frame::Ping { .. }))
    );
    // The server's own ping (even) waits for the peer's echo.
    let ping = tokio::spawn(async move { session.ping().await });
    let id = loop {
        if let Frame::Ping { id } = peer.next().await {
            break id;
        }
    };
    assert_eq!(id % 2, 0);
    peer.send(Frame::Ping { id }).await;
    ping.await.unwrap().unwrap();
}

#[tokio::test]
async fn streams_out_of_order_or_of_the_wrong_parity_are_refused() {
    let (_session, mut incoming, mut peer) = start(SessionConfig::default());
    let _first = peer.open(&mut incoming, 5).await;
    for id in [3, 4] {
        peer.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new(),
        })
        .await;
        assert!(peer.drain(1).await.contains(&Frame::RstStream {
            stream_id: id,
            status: RstStatus::ProtocolError,
        }));
    }
}

#[tokio::test]
async fn a_reset_reaches_the_writer_and_the_reader() {
    let (_session, mut incoming, mut peer) = start(SessionConfig::default());
    let mut stream = peer.open(&mut incoming, 1).await;
    peer.send(Frame::RstStream {
        stream_id: 1,
        status: RstStatus::Cancel,
    })
    .await;
    peer.drain(1).await;
    assert!(stream.write_all(b"x").await.is_err());
    assert!(stream.read_u8().await.is_err());
}

#[tokio::test]
async fn closing_sends_goaway_and_ends_the_transport() {
    let (session, mut incoming, mut peer) = start(SessionConfig::default());
    let stream = peer.open(&mut incoming, 1).await;
    drop(stream);
    session.close();
    let mut seen = Vec::new();
    while let Some(frame) = peer.rx.next().await {
        seen.push(frame.unwrap());
    }
    assert!(seen.contains(&Frame::Data {
        stream_id: 1,
        fin: true,
        data: Bytes::new(),
    }));
    assert!(matches!(
        seen.last(),
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            ..
        })
    ));
}

#[tokio::test]
async fn garbage_ends_the_session_with_a_protocol_error() {
    let (session, _incoming, mut peer) = start(SessionConfig::default());
    peer.tx
        .get_mut()
        .write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    let mut last = None;
    while let Some(Ok(frame)) = peer.rx.next().await {
        last = Some(frame);
    }
    assert!(matches!(
        last,
        Some(Frame::GoAway {
            status: crun_shim_streaming::spdy::GoAwayStatus::ProtocolError,
            ..
        })
    ));
    tokio::time::timeout(Duration::from_secs(5), session.ended())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_idle_session_ends() {
    let (session, _incoming, _peer) = start(SessionConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..SessionConfig::default()
    });
    tokio::time::timeout(Duration::from_secs(5), session.ended())
        .await
        .expect("ended by the idle timeout");
}
