//! SPDY/3.1, as Kubernetes speaks it for exec, attach and port-forward
//! (moby/spdystream on the other end): frames, header compression with the
//! SPDY/3 dictionary, and sessions of flow-controlled streams.

mod frame;
mod headers;
mod session;

pub use frame::{
    Frame, FrameCodec, FrameError, GoAwayStatus, MAX_CONTROL_PAYLOAD, MAX_FRAME_PAYLOAD, RstStatus,
    SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, Setting, VERSION,
};
pub use headers::{DICTIONARY, HeaderCompressor, HeaderDecompressor, Headers, MAX_HEADER_BLOCK};
pub use session::{
    DEFAULT_WINDOW, Incoming, IncomingStream, MAX_DATA_FRAME, RecvStream, Role, SendStream,
    Session, SessionConfig, SessionError, Stream,
};

/// The token of the `Upgrade` header that asks for SPDY/3.1.
pub const UPGRADE_TOKEN: &str = "SPDY/3.1";
