//! A pod's network: the sandbox's network namespace, which its containers
//! join.

use super::pods::Sandbox;
use super::proto;
use crate::{ContainerConfig, NetworkMode};

/// The network of a pod's sandbox container.
pub(crate) fn sandbox_network(
    _config: &proto::PodSandboxConfig,
    host_network: bool,
) -> NetworkMode {
    if host_network {
        NetworkMode::Host
    } else {
        NetworkMode::None
    }
}

/// Sets the pod's DNS settings and published ports on its sandbox.
pub(crate) fn apply_sandbox_settings(
    _config: &proto::PodSandboxConfig,
    _sandbox: &mut ContainerConfig,
) {
}

/// The network of a container of `sandbox`.
pub(crate) fn container_network(sandbox: &Sandbox) -> NetworkMode {
    if sandbox.host_network() {
        NetworkMode::Host
    } else {
        NetworkMode::None
    }
}

/// The pod's addresses, for PodSandboxStatus.
pub(crate) fn pod_network_status(_sandbox: &Sandbox) -> Option<proto::PodSandboxNetworkStatus> {
    None
}

/// Whether pods get a network: `Err` says why not.
pub(crate) async fn network_ready(_cri: &super::Cri) -> Result<(), String> {
    Err("pod networks need crun-shimd's NetworkService".into())
}
