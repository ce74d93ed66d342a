//! What both servers (`crun-shim-agent`, `crun-shimd`) serve and handle
//! alike: the standard gRPC services, the Version answer, their Unix
//! sockets, and the signals and requests that stop them.

use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::v1;

mod authority;

pub use authority::{AuthorityFix, MAX_HEADER_BLOCK};

/// Starts a router with what every libcrun-shim server serves beside the
/// v1 API: grpc.health.v1 (reporting SERVING) and server reflection over
/// the v1 API and health, in both reflection protocols (`v1`, and
/// `v1alpha`, which older clients such as grpcurl 1.8 use).
pub async fn router_with_standard_services<L: Clone>(
    builder: &mut tonic::transport::Server<L>,
) -> Result<tonic::transport::server::Router<L>, tonic_reflection::server::Error> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    Ok(builder
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?))
}

/// The Version answer of a server of this workspace: `component` (such as
/// `crun-shimd`) at this build's version, and the libcrun it runs, if any.
pub fn version(component: &str, libcrun_version: &str) -> v1::VersionResponse {
    v1::VersionResponse {
        component: component.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: "v1".into(),
        git_commit: option_env!("LIBCRUN_SHIM_GIT_COMMIT")
            .unwrap_or_default()
            .into(),
        libcrun_version: libcrun_version.into(),
    }
}

/// A generated server (`$server::new($service)`) that sends and accepts
/// messages of at most `$max` bytes.
#[macro_export]
macro_rules! limited {
    ($server:ident, $service:expr, $max:expr) => {
        $server::new($service)
            .max_decoding_message_size($max)
            .max_encoding_message_size($max)
    };
}

/// Binds a server's Unix socket at `path`, mode 0660 (a stale socket file
/// there is replaced).
///
/// Its directory is created 0750 when missing (with any missing parent);
/// an existing directory is left as it is, but refused when it is unsafe:
/// writable by others without the sticky bit (anyone could replace the
/// socket), or owned by a user other than root or this process's (who
/// could). `PermissionDenied` then, naming the directory and its mode.
pub fn bind_unix(path: &Path) -> io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        socket_dir(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                e.kind(),
                format!("removing {}: {e}", path.display()),
            ));
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// The connections accepted on `listener`, each in an [`AuthorityFix`], so
/// that clients sending the socket path as `:authority` (gRPC core,
/// grpc-java, grpcurl) are served like the others.
pub fn unix_incoming(
    listener: tokio::net::UnixListener,
) -> impl tokio_stream::Stream<Item = io::Result<AuthorityFix<tokio::net::UnixStream>>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::UnixListenerStream::new(listener).map(|c| c.map(AuthorityFix::new))
}

/// Makes `dir` 0750 if it is missing; else checks that it is safe for a
/// socket (see [`bind_unix`]).
fn socket_dir(dir: &Path) -> io::Result<()> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
                })?;
            // Exactly 0750, whatever the umask.
            return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
        }
        Err(e) => return Err(e),
    };
    let unsafe_dir = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to serve in {} (mode {:04o}, owner {}): {why}",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ),
        ))
    };
    if !meta.is_dir() {
        return unsafe_dir("not a directory");
    }
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return unsafe_dir("writable by others without the sticky bit");
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return unsafe_dir("owned by another user");
    }
    Ok(())
}

/// The most containers in one ListStream message.
pub const BATCH_CONTAINERS: usize = 256;
/// The encoded size past which a ListStream message takes no more
/// containers (one container alone may be larger).
pub const BATCH_BYTES: usize = 512 << 10;

/// The answers of `ContainerService/ListStream`.
pub type ListStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<v1::ListContainersResponse, tonic::Status>> + Send>,
>;

/// A ListStream answer: `containers` in [`list_batches`].
pub fn list_stream(containers: Vec<v1::Container>) -> ListStream {
    let batches = list_batches(containers)
        .into_iter()
        .map(|containers| Ok(v1::ListContainersResponse { containers }));
    Box::pin(tokio_stream::iter(batches))
}

/// Cuts a container list into ListStream's messages, in order (none for an empty list).
pub fn list_batches(containers: Vec<v1::Container>) -> Vec<Vec<v1::Container>> {
    use prost::Message;
    let mut all = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for c in containers {
        let size = c.encoded_len();
        if !batch.is_empty() && (batch.len() == BATCH_CONTAINERS || bytes + size > BATCH_BYTES) {
            all.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(c);
    }
    if !batch.is_empty() {
        all.push(batch);
    }
    all
}

/// Why a server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// A Shutdown call (a message on the server's shutdown channel).
    Requested,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
            StopReason::Requested => "Shutdown requested",
        })
    }
}

/// Waits for SIGINT, SIGTERM or a message on `requests`, whichever comes
/// first. A closed `requests` channel stops nothing.
pub async fn stop_requested(mut requests: tokio::sync::mpsc::Receiver<()>) -> StopReason {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let requested = async {
        if requests.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => StopReason::Interrupt,
        () = term => StopReason::Terminate,
        () = requested => StopReason::Requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn lists_are_cut_into_bounded_batches_in_order() {
        let container = |id: usize, label: usize| v1::Container {
            id: id.to_string(),
            config: Some(v1::ContainerConfig {
                labels: [("l".to_string(), "x".repeat(label))].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(list_batches(Vec::new()).is_empty());
        let small: Vec<_> = (0..600).map(|i| container(i, 1)).collect();
        let sizes: Vec<usize> = list_batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let big: Vec<_> = (0..5).map(|i| container(i, 300 << 10)).collect();
        let batches = list_batches(big);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
        let ids: Vec<String> = batches.into_iter().flatten().map(|c| c.id).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"]);
    }

    #[tokio::test]
    async fn only_a_socket_directory_made_here_gets_0750() {
        let tmp = tempfile::tempdir().unwrap();
        let made = tmp.path().join("new/run");
        drop(bind_unix(&made.join("s.sock")).unwrap());
        assert_eq!(mode(&made), 0o750);
        assert_eq!(mode(&made.join("s.sock")) & 0o777, 0o660);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        drop(bind_unix(&shared.join("s.sock")).unwrap());
        assert_eq!(mode(&shared), 0o1777, "an existing directory is left alone");
    }

    #[tokio::test]
    async fn an_unsafe_socket_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = bind_unix(&open.join("s.sock")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("0777"), "{err}");
        assert!(!open.join("s.sock").exists());
        assert_eq!(mode(&open), 0o777, "refused, not changed");
    }
}
