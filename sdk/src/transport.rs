//! Where the daemon is and how a gRPC channel reaches it: a Unix socket, a
//! vsock port or plain HTTP/2 over TCP.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Uri};

use crate::error::{Error, Result, with_source};

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A vsock port (a guest agent inside a VM).
    Vsock { cid: u32, port: u32 },
    /// HTTP/2 over TCP (`http://host:port`).
    Http(String),
}

impl Endpoint {
    /// Parses `unix:///PATH`, a plain absolute or relative socket path,
    /// `vsock://CID:PORT` or `http://HOST:PORT`.
    pub(crate) fn parse(s: &str) -> Result<Endpoint> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "endpoint {s:?}: {why} (expected unix:///PATH, a socket path, vsock://CID:PORT or http://HOST:PORT)"
            ))
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("the socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest.split_once(':').ok_or_else(|| bad("no port"))?;
            let cid = cid.parse().map_err(|_| bad("the CID is not a number"))?;
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            return Ok(Endpoint::Vsock { cid, port });
        }
        if let Some(rest) = s.strip_prefix("http://") {
            if rest.is_empty() {
                return Err(bad("no host"));
            }
            s.parse::<Uri>().map_err(|e| bad(&e.to_string()))?;
            return Ok(Endpoint::Http(s.to_string()));
        }
        if s.contains("://") {
            return Err(bad("unsupported scheme"));
        }
        Ok(Endpoint::Unix(s.into()))
    }

    /// Connects a channel, waiting at most `timeout` for the first
    /// connection. The channel reconnects by itself afterwards.
    pub(crate) async fn connect(&self, original: &str, timeout: Duration) -> Result<Channel> {
        let endpoint = match self {
            // Over a Unix socket or vsock there is no host: `localhost`, a
            // valid HTTP/2 authority for any server (ours take others too).
            Endpoint::Unix(_) | Endpoint::Vsock { .. } => {
                TonicEndpoint::from_static("http://localhost")
            }
            Endpoint::Http(uri) => TonicEndpoint::from_shared(uri.clone())
                .map_err(|e| Error::InvalidArgument(format!("endpoint {original:?}: {e}")))?,
        }
        .connect_timeout(timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
        let connected = match self.clone() {
            Endpoint::Unix(path) => {
                endpoint
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            tokio::net::UnixStream::connect(path)
                                .await
                                .map(TokioIo::new)
                        }
                    }))
                    .await
            }
            Endpoint::Vsock { cid, port } => {
                endpoint
                    .connect_with_connector(tower::service_fn(move |_: Uri| async move {
                        tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port))
                            .await
                            .map(TokioIo::new)
                    }))
                    .await
            }
            Endpoint::Http(_) => endpoint.connect().await,
        };
        connected.map_err(|e| {
            Error::Unavailable(with_source(
                format!("cannot connect to crun-shimd at {original} (is it running?)"),
                &e,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("vsock://3:1024").unwrap(),
            Endpoint::Vsock { cid: 3, port: 1024 }
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:7000").unwrap(),
            Endpoint::Http("http://127.0.0.1:7000".into())
        );
        for bad in [
            "",
            "unix://rel",
            "vsock://3",
            "vsock://x:1",
            "tcp://h:1",
            "http://",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
