//! The Kubernetes streaming server of libcrun-shim's CRI runtime.
//!
//! A CRI runtime answers `Exec`, `Attach` and `PortForward` with a URL; the
//! client (the kubelet's proxy, `kubectl`, `crictl`, `critest`) upgrades an
//! HTTP request on it and runs the session over it. This crate is that
//! server, with no tie to any protocol buffer: the CRI server registers a
//! request ([`StreamingServer::exec_url`] ...) and implements [`Runtime`]
//! over its own exec, attach and network calls.
//!
//! - Routes `/exec/{token}`, `/attach/{token}`, `/portforward/{token}`;
//!   tokens are random, single-use, bound to one request and expire
//!   ([`Config::token_ttl`]).
//! - SPDY/3.1 ([`spdy`]) with the remotecommand protocols
//!   `v5`/`v4`/`v3`/`v2.channel.k8s.io` and `channel.k8s.io`, and
//!   `portforward.k8s.io`.
//! - WebSocket with the channel protocols `v5.channel.k8s.io`,
//!   `v4.channel.k8s.io`, `channel.k8s.io` and their base64 forms, and for
//!   port-forward channels or SPDY tunnelled in WebSocket
//!   (`SPDY/3.1+portforward.k8s.io`).
#![deny(unsafe_code)]

mod portforward;
mod remotecommand;
mod reset;
mod runtime;
mod server;
pub mod spdy;
mod tokens;
mod websocket;

pub use runtime::{
    AttachRequest, ExecRequest, Input, Output, PortForwardRequest, PortStream, ProcessIo,
    RequestError, Runtime, RuntimeError, TerminalSize,
};
pub use server::{Config, StreamingServer};
pub use websocket::ByteStream as WebSocketBytes;
