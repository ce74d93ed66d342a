//! Which `crun-shimd` the shim speaks to, and the clean-up that works
//! without a running shim.
//!
//! The endpoint comes from, in order: the runtime options containerd
//! passes (`runtimeoptions.v1.Options`, as `ctr --runtime-config-path` and
//! the CRI plugin's `options` table give them: `config_path` names a TOML
//! file with `address = "unix:///..."`), `CRUN_SHIM_HOST` in containerd's
//! environment, the endpoint recorded in the bundle at `start`, and the
//! default socket.

use std::path::Path;
use std::time::{Duration, SystemTime};

use libcrun_shim_proto::v1 as pb;

use super::ENDPOINT_FILE;
use crate::client::Client;
use crate::config::{HOST_ENV, RuntimeConfig};

/// How long the `delete` action waits to reach the daemon.
const DELETE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The type of the generic runtime options of containerd.
const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";

/// The endpoint of the running shim's daemon (its environment carries what
/// `start` chose), else the one recorded in the bundle, else the default.
pub(super) fn endpoint(bundle: &Path) -> String {
    if let Ok(host) = std::env::var(HOST_ENV)
        && !host.is_empty()
    {
        return host;
    }
    std::fs::read_to_string(bundle.join(ENDPOINT_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| RuntimeConfig::from_env().endpoint)
}

/// The endpoint at `start`: from the runtime options on stdin, else as
/// [`endpoint`] finds it.
pub(super) fn endpoint_for_start(bundle: &Path) -> String {
    let mut options = Vec::new();
    if !stdin_is_terminal() {
        use std::io::Read;
        let _ = std::io::stdin().read_to_end(&mut options);
    }
    endpoint_from_options(&options).unwrap_or_else(|| endpoint(bundle))
}

/// Whether stdin is a terminal (then no options come on it).
pub(super) fn stdin_is_terminal() -> bool {
    // SAFETY: isatty only inspects descriptor 0.
    unsafe { libc::isatty(0) == 1 }
}

/// The daemon endpoint named by containerd runtime options (an encoded
/// `google.protobuf.Any` of `runtimeoptions.v1.Options` whose `config_path`
/// is a TOML file with `address`), if they name one.
///
/// ```
/// assert_eq!(libcrun_shim::shim::endpoint_from_options(b""), None);
/// ```
pub fn endpoint_from_options(any: &[u8]) -> Option<String> {
    let fields = decode(any)?;
    let type_url = fields.iter().find(|(n, _)| *n == 1)?.1;
    let value = fields
        .iter()
        .find(|(n, _)| *n == 2)
        .map_or(&[][..], |f| f.1);
    if !std::str::from_utf8(type_url)
        .ok()?
        .ends_with(RUNTIME_OPTIONS_TYPE)
    {
        return None;
    }
    let options = decode(value)?;
    let path = std::str::from_utf8(options.iter().find(|(n, _)| *n == 2)?.1).ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("address")
        .and_then(|a| a.as_str())
        .map(str::to_string)
}

/// The length-delimited fields of a protobuf message (field number and
/// bytes); other wire types are skipped. `None` when malformed.
fn decode(mut bytes: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        match key & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..)?,
            5 => bytes = bytes.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let (field, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                fields.push((key >> 3, field));
                bytes = rest;
            }
            _ => return None,
        }
    }
    Some(fields)
}

/// Removes a container whose shim is gone (killing it if it runs) and
/// returns how it ended, when the agent knew.
pub(super) async fn force_delete(endpoint: &str, id: &str) -> Option<(u32, SystemTime)> {
    let config = RuntimeConfig {
        endpoint: endpoint.to_string(),
        connect_timeout: DELETE_CONNECT_TIMEOUT,
        request_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let client = Client::connect(&config).await.ok()?;
    let container = client
        .containers()
        .inspect(client.with_deadline(pb::InspectContainerRequest { id: id.into() }))
        .await
        .ok()?
        .into_inner()
        .container?;
    let was_stopped = container.status == pb::ContainerStatus::Stopped as i32;
    client
        .containers()
        .delete(client.with_deadline(pb::DeleteContainerRequest {
            id: id.into(),
            force: true,
        }))
        .await
        .ok()?;
    let exit = container.last_exit.filter(|_| was_stopped)?;
    let at = exit
        .finished_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or_else(SystemTime::now);
    Some((u32::try_from(exit.exit_code).unwrap_or(255), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn the_endpoint_comes_from_runtime_options() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("crunshim.toml");
        std::fs::write(&config, "address = \"unix:///tmp/x.sock\"\n").unwrap();
        let options = len_field(2, config.to_str().unwrap().as_bytes());
        let mut any = len_field(1, b"runtimeoptions.v1.Options");
        any.extend(len_field(2, &options));
        assert_eq!(
            endpoint_from_options(&any).as_deref(),
            Some("unix:///tmp/x.sock")
        );
        let mut other = len_field(1, b"containerd.runc.v1.Options");
        other.extend(len_field(2, &options));
        assert_eq!(endpoint_from_options(&other), None);
        assert_eq!(endpoint_from_options(&[0xff]), None);
    }
}
