//! The CRI server's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the CRI server listens by default.
pub const DEFAULT_CRI_SOCKET: &str = "/run/libcrun-shim/cri.sock";

/// The image pod sandboxes run by default: the pause image the kubelet
/// expects (reached through [`CriConfig::mirrors`] on an air-gapped node).
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Settings of a [`CriServer`](super::CriServer).
///
/// ```
/// use libcrun_shim::cri::{CriConfig, Mirror};
/// let config = CriConfig {
///     mirrors: vec!["registry.k8s.io=127.0.0.1:5000".parse().unwrap()],
///     ..CriConfig::default()
/// };
/// assert_eq!(config.mirror_for("registry.k8s.io/pause:3.10"), Some("127.0.0.1:5000"));
/// assert_eq!(config.mirror_for("docker.io/library/busybox"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    /// The Unix socket the CRI is served on.
    pub socket: PathBuf,
    /// crun-shimd's endpoint; `None`: `CRUN_SHIM_HOST`, else its default
    /// socket.
    pub daemon: Option<String>,
    /// The image pod sandboxes run (its entrypoint waits and reaps).
    pub sandbox_image: String,
    /// Registries to fetch images from in place of others (images keep
    /// their original names).
    pub mirrors: Vec<Mirror>,
    /// The address of the streaming server (exec, attach, port-forward);
    /// port 0 picks one. Its URLs name the bound address.
    pub streaming_address: SocketAddr,
}

impl Default for CriConfig {
    fn default() -> CriConfig {
        CriConfig {
            socket: DEFAULT_CRI_SOCKET.into(),
            daemon: None,
            sandbox_image: DEFAULT_SANDBOX_IMAGE.into(),
            mirrors: Vec::new(),
            streaming_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl CriConfig {
    /// The mirror to pull `reference` from, if its registry has one.
    pub fn mirror_for(&self, reference: &str) -> Option<&str> {
        let registry = registry_of(reference);
        self.mirrors
            .iter()
            .find(|m| m.registry == registry)
            .map(|m| m.endpoint.as_str())
    }
}

/// The registry a reference names (`docker.io` when it names none), as
/// Docker reads references: the part before the first `/` when it has a
/// `.` or a `:` or is `localhost`.
fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// A registry served by another: `REGISTRY=HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry as references name it (`registry.k8s.io`).
    pub registry: String,
    /// The registry that serves its images under the same paths
    /// (`127.0.0.1:5000`; a loopback one is reached over plain HTTP).
    pub endpoint: String,
}

impl FromStr for Mirror {
    type Err = String;

    fn from_str(s: &str) -> Result<Mirror, String> {
        let (registry, endpoint) = s
            .split_once('=')
            .ok_or_else(|| format!("mirror {s:?}: expected REGISTRY=HOST[:PORT]"))?;
        let endpoint = endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if registry.is_empty() || endpoint.is_empty() || endpoint.contains('/') {
            return Err(format!("mirror {s:?}: expected REGISTRY=HOST[:PORT]"));
        }
        Ok(Mirror {
            registry: registry.into(),
            endpoint: endpoint.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_read_as_docker_reads_them() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("gcr.io/k8s/x:1"), "gcr.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("127.0.0.1:5000/x"), "127.0.0.1:5000");
    }

    #[test]
    fn mirrors_parse_and_refuse_nonsense() {
        let m: Mirror = "gcr.io=http://127.0.0.1:5000/".parse().unwrap();
        assert_eq!(
            (m.registry.as_str(), m.endpoint.as_str()),
            ("gcr.io", "127.0.0.1:5000")
        );
        assert!("gcr.io".parse::<Mirror>().is_err());
        assert!("=x".parse::<Mirror>().is_err());
        assert!("gcr.io=host/path".parse::<Mirror>().is_err());
    }
}
