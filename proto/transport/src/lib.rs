//! How a client reaches a libcrun-shim gRPC server (`crun-shimd`, or a
//! `crun-shim-agent` on the host or in a VM): the endpoint forms, and the
//! one dialer both `crun-shimd` and the SDK use.
//!
//! | form | transport |
//! | --- | --- |
//! | `unix:///PATH`, or a plain socket path | a Unix socket |
//! | `vsock://CID:PORT` | AF_VSOCK, where the host kernel has vsock (vhost-vsock) |
//! | `hvsock:///PATH:PORT` | *hybrid vsock*: a Unix socket at `PATH` that forwards to the guest's vsock `PORT` after a `CONNECT PORT\n` / `OK ...\n` handshake |
//! | `http://HOST:PORT` | HTTP/2 over TCP |
//!
//! Hybrid vsock is how a host without host-side vsock reaches a guest:
//! Firecracker, Cloud Hypervisor and `vhost-device-vsock` (QEMU on Linux
//! here) expose the guest's vsock as a Unix socket speaking that handshake,
//! and on macOS the Swift side of `bridge-swift` relays the same protocol to
//! `VZVirtioSocketDevice.connect(toPort:)`. The path is everything between
//! `hvsock://` and the last `:`, so it must be absolute.
//!
//! ```
//! use libcrun_shim_transport::Endpoint;
//!
//! let vm: Endpoint = "hvsock:///run/libcrun-shim/vms/dev/vsock.sock:1024".parse()?;
//! assert_eq!(vm, Endpoint::HybridVsock { path: "/run/libcrun-shim/vms/dev/vsock.sock".into(), port: 1024 });
//! assert_eq!(vm.to_string(), "hvsock:///run/libcrun-shim/vms/dev/vsock.sock:1024");
//! # Ok::<(), libcrun_shim_transport::EndpointError>(())
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Uri};

/// What every form error lists as the accepted forms.
const FORMS: &str =
    "unix:///PATH, a socket path, vsock://CID:PORT, hvsock:///PATH:PORT or http://HOST:PORT";

/// Where a gRPC server is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A vsock port through the host kernel's AF_VSOCK.
    Vsock {
        /// The context id of the VM.
        cid: u32,
        /// The port.
        port: u32,
    },
    /// A guest's vsock port through a hybrid-vsock Unix socket.
    HybridVsock {
        /// The Unix socket of the VM's vsock device (or relay).
        path: PathBuf,
        /// The guest port to connect to.
        port: u32,
    },
    /// HTTP/2 over TCP: the whole `http://HOST:PORT` URI.
    Http(String),
}

/// An endpoint that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {endpoint:?}: {why} (expected {FORMS})")]
pub struct EndpointError {
    /// The endpoint as given.
    pub endpoint: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(s)
    }
}

impl Endpoint {
    /// Parses one of the forms in the [crate] documentation.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let bad = |why: &str| EndpointError {
            endpoint: s.to_string(),
            why: why.to_string(),
        };
        let port = |p: &str| {
            p.parse::<u32>()
                .map_err(|_| bad("the port is not a number"))
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
            let (cid, p) = rest.split_once(':').ok_or_else(|| bad("no port"))?;
            let cid = cid.parse().map_err(|_| bad("the CID is not a number"))?;
            return Ok(Endpoint::Vsock {
                cid,
                port: port(p)?,
            });
        }
        if let Some(rest) = s.strip_prefix("hvsock://") {
            let (path, p) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if !path.starts_with('/') {
                return Err(bad("the socket path must be absolute"));
            }
            return Ok(Endpoint::HybridVsock {
                path: path.into(),
                port: port(p)?,
            });
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

    /// The tonic endpoint to configure (timeouts, keep-alive) before
    /// [`Endpoint::connect`] or [`Endpoint::connect_lazy`]. Over local
    /// transports the HTTP/2 authority is `localhost`, which servers expect.
    pub fn builder(&self) -> TonicEndpoint {
        match self {
            Endpoint::Http(uri) => TonicEndpoint::from_shared(uri.clone())
                .unwrap_or_else(|_| TonicEndpoint::from_static("http://localhost")),
            _ => TonicEndpoint::from_static("http://localhost"),
        }
    }

    /// Connects a channel through `builder` (from [`Endpoint::builder`]),
    /// waiting for the first connection; it reconnects by itself later.
    pub async fn connect(
        &self,
        builder: TonicEndpoint,
    ) -> Result<Channel, tonic::transport::Error> {
        match self.clone() {
            Endpoint::Http(_) => builder.connect().await,
            local => {
                builder
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let local = local.clone();
                        async move { local.dial().await.map(TokioIo::new) }
                    }))
                    .await
            }
        }
    }

    /// A channel through `builder` that connects on first use (and
    /// reconnects as needed).
    pub fn connect_lazy(&self, builder: TonicEndpoint) -> Channel {
        match self.clone() {
            Endpoint::Http(_) => builder.connect_lazy(),
            local => builder.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let local = local.clone();
                async move { local.dial().await.map(TokioIo::new) }
            })),
        }
    }

    /// A raw byte stream to the server (not for [`Endpoint::Http`]).
    pub async fn dial(&self) -> io::Result<Stream> {
        match self {
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            Endpoint::Vsock { cid, port } => Ok(Stream::Vsock(
                tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port)).await?,
            )),
            Endpoint::HybridVsock { path, port } => {
                Ok(Stream::Unix(connect_hybrid(path, *port).await?))
            }
            Endpoint::Http(uri) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{uri}: dial it with a channel"),
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) if path.is_absolute() => write!(f, "unix://{}", path.display()),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Endpoint::HybridVsock { path, port } => {
                write!(f, "hvsock://{}:{port}", path.display())
            }
            Endpoint::Http(uri) => f.write_str(uri),
        }
    }
}

/// Connects to guest `port` through the hybrid-vsock socket at `path`: on
/// success the stream carries the guest connection's bytes.
///
/// A guest with nothing listening on the port closes the connection (the
/// error is then `ConnectionRefused`); an answer other than `OK` is
/// `ConnectionRefused` too, naming it.
pub async fn connect_hybrid(path: &Path, port: u32) -> io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path).await?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await?;
    // One byte at a time: what follows the line is the guest's.
    let mut line = Vec::with_capacity(16);
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "{}: the guest closed the connection to vsock port {port} (nothing listening yet?)",
                    path.display()
                ),
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > 128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no hybrid-vsock answer", path.display()),
            ));
        }
    }
    let line = String::from_utf8_lossy(&line);
    if line == "OK" || line.starts_with("OK ") {
        Ok(stream)
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "{}: CONNECT {port} answered {:?}",
                path.display(),
                line.trim()
            ),
        ))
    }
}

/// A byte stream to a server over one of the local transports.
#[derive(Debug)]
pub enum Stream {
    /// A Unix socket (plain, or after a hybrid-vsock handshake).
    Unix(UnixStream),
    /// AF_VSOCK.
    Vsock(tokio_vsock::VsockStream),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Vsock(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Vsock(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Vsock(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Vsock(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, endpoint) in [
            ("unix:///run/x.sock", Endpoint::Unix("/run/x.sock".into())),
            ("vsock://3:1024", Endpoint::Vsock { cid: 3, port: 1024 }),
            (
                "hvsock:///run/vm:a/vsock.sock:1024",
                Endpoint::HybridVsock {
                    path: "/run/vm:a/vsock.sock".into(),
                    port: 1024,
                },
            ),
            (
                "http://127.0.0.1:7000",
                Endpoint::Http("http://127.0.0.1:7000".into()),
            ),
        ] {
            assert_eq!(Endpoint::parse(text).unwrap(), endpoint);
            assert_eq!(endpoint.to_string(), text);
        }
        assert_eq!(
            Endpoint::parse("/run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("x.sock").unwrap(),
            Endpoint::Unix("x.sock".into())
        );
    }

    #[test]
    fn bad_forms_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("unix://rel", "the socket path must be absolute"),
            ("vsock://3", "no port"),
            ("vsock://x:1", "the CID is not a number"),
            ("vsock://3:p", "the port is not a number"),
            ("hvsock://rel.sock:1024", "the socket path must be absolute"),
            ("hvsock:///x.sock", "no port"),
            ("tcp://h:1", "unsupported scheme"),
            ("http://", "no host"),
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert_eq!(err.why, why, "{bad}");
            assert!(err.to_string().contains(FORMS));
        }
    }

    /// A peer speaking the device side of hybrid vsock: answers `reply` to
    /// the CONNECT line, then echoes.
    async fn device(reply: &'static str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vsock.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            assert_eq!(line, "CONNECT 1024\n");
            if reply.is_empty() {
                return;
            }
            stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).await.unwrap();
            stream.get_mut().write_all(&buf).await.unwrap();
        });
        (dir, path)
    }

    #[tokio::test]
    async fn the_handshake_hands_over_the_guests_bytes() {
        // The device's answer and the guest's first bytes may arrive together.
        let (_dir, path) = device("OK 1073741824\n").await;
        let endpoint = Endpoint::HybridVsock { path, port: 1024 };
        let mut stream = endpoint.dial().await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_refused() {
        let (_dir, path) = device("").await;
        let err = connect_hybrid(&path, 1024).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("vsock port 1024"), "{err}");
        let (_dir, path) = device("NO such port\n").await;
        let err = connect_hybrid(&path, 1024).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("NO such port"), "{err}");
    }
}
