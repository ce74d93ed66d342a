//! Container networking for the guest agent: bridge networks through the
//! standard CNI plugins, published ports, and names.
//!
//! - [`cni`]: the CNI invoker (plugins found and run with the `CNI_*`
//!   variables, `prevResult` chained, `runtimeConfig` capabilities, DEL in
//!   reverse order, CHECK) and the configuration lists and results;
//! - [`networks`]: network definitions, the default `crun-shim` bridge
//!   network and user networks in a configuration directory;
//! - [`netns`]: network namespaces bind-mounted under a directory the
//!   agent owns, durable across agent restarts;
//! - [`ports`]: published ports, their syntax and their host ports held;
//! - [`dns`]: `/etc/hosts` and `/etc/resolv.conf`;
//! - [`attach`]: [`Networking`], which attaches containers to networks
//!   and detaches them, and each attachment's persisted state.
//!
//! It knows nothing of gRPC, libcrun or the agent's records: the agent
//! asks for an attachment before it creates a container (the namespace's
//! path goes into the OCI spec) and removes it when it deletes the
//! container. Every call blocks (plugins are programs): call it off async
//! threads.
//!
//! # State and who owns it
//!
//! | what | where | owner | after a SIGKILL of the agent |
//! |---|---|---|---|
//! | attachment record | `STATE/ID/attachment.json` | [`Networking`] | kept; [`Networking::recover`] finishes a half-made or half-removed one |
//! | hosts, resolv.conf | `STATE/ID/` | [`Networking`] | kept (the container's mounts of them too) |
//! | network namespace | a file in the netns directory, bind-mounted in the durable mount namespace | the attachment | kept; the next agent inherits its mount |
//! | veth pair, IPAM lease, iptables rules | kernel, `/var/lib/cni/networks`, netfilter | the CNI plugins, on behalf of the attachment | kept while the namespace is; released by DEL at detach |
//! | host port reservations | sockets of the agent | [`Networking`] | gone with the process; taken again by `recover` |
//! | network definitions | the configuration directory | [`networks::Definitions`] | files written atomically |

pub mod attach;
pub mod cni;
pub mod dns;
mod error;
pub mod netns;
pub mod networks;
pub mod ports;

pub use attach::{
    AttachRequest, Attachment, InterfaceInfo, NetworkRequest, Networking, NetworkingOptions, Phase,
    RecoverReport,
};
pub use error::{Error, Result};
pub use networks::{DefaultNetwork, Network, NetworkSpec};
pub use ports::{PortMapping, Protocol};

/// The longest name of a network (and of a namespace file).
const MAX_NAME_LEN: usize = 128;

/// Checks a name used as a file name and a CNI identifier: 1 to 128
/// characters of `[A-Za-z0-9_.-]`, starting with a letter or digit.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {what} name {name:?}: 1 to {MAX_NAME_LEN} characters of [A-Za-z0-9_.-], starting with a letter or digit"
        )))
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so
/// that a reader (or a crash) sees the old or the new content.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        drop(file);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["a", "web-1", "x.y_z", &"a".repeat(128)] {
            assert!(super::validate_name("network", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "é", &"a".repeat(129)] {
            assert!(super::validate_name("network", bad).is_err(), "{bad}");
        }
    }
}
