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

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::empty::Empty;
use containerd_shim::protos::protobuf::{Message, UnknownValueRef};
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

/// The daemon endpoint named by containerd's runtime options, if they name
/// one: a `google.protobuf.Any` of `runtimeoptions.v1.Options` whose
/// `config_path` is a TOML file with `address`. containerd 1.x writes that
/// `Any` on the shim's stdin; 2.x writes its bootstrap parameters, with the
/// `Any` nested in them.
///
/// ```
/// assert_eq!(libcrun_shim::shim::endpoint_from_options(b""), None);
/// ```
pub fn endpoint_from_options(stdin: &[u8]) -> Option<String> {
    let any = runtime_options(stdin, 3)?;
    let options = Empty::parse_from_bytes(&any.value).ok()?;
    let path = match options
        .special_fields
        .unknown_fields()
        .get(CONFIG_PATH_FIELD)?
    {
        UnknownValueRef::LengthDelimited(bytes) => String::from_utf8(bytes.to_vec()).ok()?,
        _ => return None,
    };
    let table: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
    table
        .get("address")
        .and_then(|a| a.as_str())
        .map(str::to_string)
}

/// The field `config_path` of `runtimeoptions.v1.Options`.
const CONFIG_PATH_FIELD: u32 = 2;

/// The `Any` of the runtime options: `message` itself, or one in its
/// length-delimited fields, at most `depth` levels down.
fn runtime_options(message: &[u8], depth: u32) -> Option<Any> {
    if let Ok(any) = Any::parse_from_bytes(message)
        && any.type_url.ends_with(RUNTIME_OPTIONS_TYPE)
    {
        return Some(any);
    }
    let depth = depth.checked_sub(1)?;
    let message = Empty::parse_from_bytes(message).ok()?;
    message
        .special_fields
        .unknown_fields()
        .iter()
        .find_map(|(_, value)| match value {
            UnknownValueRef::LengthDelimited(bytes) => runtime_options(bytes, depth),
            _ => None,
        })
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

    /// A message with one length-delimited field.
    fn len_field(n: u32, bytes: &[u8]) -> Vec<u8> {
        let mut message = Empty::new();
        message
            .special_fields
            .mut_unknown_fields()
            .add_length_delimited(n, bytes.to_vec());
        message.write_to_bytes().unwrap()
    }

    fn any(type_url: &str, value: Vec<u8>) -> Vec<u8> {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap()
    }

    #[test]
    fn the_endpoint_comes_from_runtime_options() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("crunshim.toml");
        std::fs::write(&config, "address = \"unix:///tmp/x.sock\"\n").unwrap();
        let options = len_field(CONFIG_PATH_FIELD, config.to_str().unwrap().as_bytes());
        // containerd 1.x: the Any itself.
        let runtime_options = any("runtimeoptions.v1.Options", options.clone());
        assert_eq!(
            endpoint_from_options(&runtime_options).as_deref(),
            Some("unix:///tmp/x.sock")
        );
        // containerd 2.x: inside its bootstrap parameters (2.4 puts it in
        // field 1 of field 8), after the id and namespace.
        let mut bootstrap = len_field(1, b"o1");
        bootstrap.extend(len_field(2, b"default"));
        bootstrap.extend(len_field(8, &len_field(1, &runtime_options)));
        assert_eq!(
            endpoint_from_options(&bootstrap).as_deref(),
            Some("unix:///tmp/x.sock")
        );
        let other = any("containerd.runc.v1.Options", options);
        assert_eq!(endpoint_from_options(&other), None);
        assert_eq!(endpoint_from_options(&[0xff]), None);
    }
}
