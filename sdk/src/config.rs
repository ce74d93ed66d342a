//! How the SDK reaches the runtime.
//!
//! The settings of a Linux VM (memory, CPUs, disks, network and port
//! forwards, virtio-fs shares, Rosetta) are not here: `crun-shimd` starts
//! and supervises VMs (its `[vms.NAME]` configuration sections), and the SDK
//! reaches the containers inside through the daemon, or one VM's agent
//! directly at its `hvsock://` endpoint.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transport;

/// The daemon's default socket (where `crun-shimd` listens by default).
pub use libcrun_shim_proto::DEFAULT_SOCKET;

/// The environment variable naming the endpoint [`RuntimeConfig::from_env`]
/// (and so [`ContainerRuntime::new`](crate::ContainerRuntime::new)) uses.
pub const HOST_ENV: &str = "CRUN_SHIM_HOST";

/// Everything [`ContainerRuntime::new_with_config`](crate::ContainerRuntime::new_with_config)
/// needs: where the daemon is, which agent new work goes to, and call
/// timeouts.
///
/// ```
/// use std::time::Duration;
/// use libcrun_shim::*;
///
/// let config = RuntimeConfig {
///     endpoint: "unix:///tmp/libcrun-shim.sock".into(),
///     agent: Some("vm".into()),
///     request_timeout: Some(Duration::from_secs(30)),
///     ..Default::default()
/// };
/// config.validate()?;
/// # Ok::<(), libcrun_shim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// The daemon (or agent) to talk to: `unix:///PATH`, a socket path,
    /// `vsock://CID:PORT`, `hvsock:///PATH:PORT` (a VM's agent through
    /// its hybrid-vsock socket) or `http://HOST:PORT`. Default:
    /// [`DEFAULT_SOCKET`].
    pub endpoint: String,
    /// On a daemon with several agents (the local one, VMs): the agent
    /// that new containers and pulled images go to. `None` lets the daemon
    /// pick the least loaded.
    pub agent: Option<String>,
    /// How long to wait for the first connection. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A deadline for each short call (not for `wait`, `stop`, `exec`,
    /// `shutdown`, pulls or streams). `None` (the default): no deadline.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            endpoint: format!("unix://{DEFAULT_SOCKET}"),
            agent: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
        }
    }
}

impl RuntimeConfig {
    /// The default configuration, with the endpoint taken from the
    /// environment variable `CRUN_SHIM_HOST` ([`HOST_ENV`]) when it is set.
    ///
    /// ```
    /// let config = libcrun_shim::RuntimeConfig::from_env();
    /// assert!(!config.endpoint.is_empty());
    /// ```
    pub fn from_env() -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        if let Some(host) = std::env::var(HOST_ENV).ok().filter(|h| !h.is_empty()) {
            config.endpoint = host;
        }
        config
    }

    /// Checks the configuration: the endpoint's form, the agent's name and
    /// the timeouts. The error is [`Error::InvalidArgument`] naming the
    /// field and what is wrong with it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use libcrun_shim::{Error, RuntimeConfig};
    ///
    /// let config = RuntimeConfig { connect_timeout: Duration::ZERO, ..Default::default() };
    /// match config.validate() {
    ///     Err(Error::InvalidArgument(message)) => assert_eq!(message, "connect_timeout: must be more than zero"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn validate(&self) -> Result<()> {
        transport::parse(&self.endpoint)?;
        let invalid = |message: &str| Err(Error::InvalidArgument(message.to_string()));
        if self.agent.as_deref() == Some("") {
            return invalid("agent: empty name (use None for any agent)");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout: must be more than zero");
        }
        if self.request_timeout.is_some_and(|t| t.is_zero()) {
            return invalid("request_timeout: must be more than zero (None for no deadline)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(config: RuntimeConfig) -> String {
        match config.validate() {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn the_default_is_valid() {
        RuntimeConfig::default().validate().unwrap();
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (
                RuntimeConfig {
                    agent: Some(String::new()),
                    ..Default::default()
                },
                "agent: empty name (use None for any agent)",
            ),
            (
                RuntimeConfig {
                    request_timeout: Some(Duration::ZERO),
                    ..Default::default()
                },
                "request_timeout: must be more than zero (None for no deadline)",
            ),
            (
                RuntimeConfig {
                    endpoint: "tcp://x:1".into(),
                    ..Default::default()
                },
                "endpoint \"tcp://x:1\": unsupported scheme (expected unix:///PATH, a socket path, vsock://CID:PORT, hvsock:///PATH:PORT or http://HOST:PORT)",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(message(config), expected);
        }
        assert!(
            RuntimeConfig {
                endpoint: "hvsock:///run/libcrun-shim/vms/dev/vsock.sock:1024".into(),
                ..Default::default()
            }
            .validate()
            .is_ok()
        );
    }
}
