//! Where the daemon is and how a gRPC channel reaches it: the dialer shared
//! with `crun-shimd` (`libcrun-shim-transport`): a Unix socket, vsock,
//! hybrid vsock into a VM, or HTTP/2 over TCP.

use std::time::Duration;

use libcrun_shim_transport::Endpoint;
use tonic::transport::Channel;

use crate::error::{Error, Result, with_source};

/// Parses an endpoint; a bad one is [`Error::InvalidArgument`].
pub(crate) fn parse(s: &str) -> Result<Endpoint> {
    Endpoint::parse(s).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Connects a channel, waiting at most `timeout` for the first
/// connection. The channel reconnects by itself afterwards.
pub(crate) async fn connect(original: &str, timeout: Duration) -> Result<Channel> {
    let endpoint = parse(original)?;
    let builder = endpoint
        .builder()
        .connect_timeout(timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    endpoint.connect(builder).await.map_err(|e| {
        Error::Unavailable(with_source(
            format!("cannot connect to crun-shimd at {original} (is it running?)"),
            &e,
        ))
    })
}
