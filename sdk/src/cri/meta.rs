//! What the CRI server keeps about pods and containers, and where: on the
//! crun-shimd containers themselves, so the server holds no state of its
//! own and a restart (or a SIGKILL) of it loses nothing.
//!
//! - Labels (what `crun-shim ps --filter` and List filters see): the CRI
//!   labels as given, plus `io.crun-shim.cri.*` keys: the kind (`sandbox` or
//!   `container`), the pod a container belongs to, and the names.
//! - One annotation, [`CONFIG_ANNOTATION`]: the CRI config the object was
//!   made from, protobuf-encoded in base64 (annotations may be large;
//!   labels may not).

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use prost::Message;

use super::error::{CriError, CriResult};
use crate::ContainerInfo;

/// Label: `sandbox` or `container`.
pub(crate) const KIND_LABEL: &str = "io.crun-shim.cri.kind";
/// Label of a container: the id of its pod sandbox.
pub(crate) const SANDBOX_LABEL: &str = "io.crun-shim.cri.sandbox";
/// Label: the CRI name (of the pod or the container).
pub(crate) const NAME_LABEL: &str = "io.crun-shim.cri.name";
/// Label of a pod: its Kubernetes namespace.
pub(crate) const NAMESPACE_LABEL: &str = "io.crun-shim.cri.namespace";
/// Annotation: the CRI config, protobuf in base64.
pub(crate) const CONFIG_ANNOTATION: &str = "io.crun-shim.cri.config";

/// [`KIND_LABEL`] of pod sandboxes.
pub(crate) const KIND_SANDBOX: &str = "sandbox";
/// [`KIND_LABEL`] of containers.
pub(crate) const KIND_CONTAINER: &str = "container";

/// A new id: 64 hex digits, as the kubelet expects of CRI ids.
pub(crate) fn new_id() -> CriResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| CriError::Io(std::io::Error::other(format!("getrandom: {e}"))))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `message` encoded for [`CONFIG_ANNOTATION`].
pub(crate) fn encode<M: Message>(message: &M) -> String {
    base64::engine::general_purpose::STANDARD.encode(message.encode_to_vec())
}

/// The CRI config kept on `info`, if it is a CRI object.
pub(crate) fn decode<M: Message + Default>(info: &ContainerInfo) -> Option<M> {
    let text = info.config.annotations.get(CONFIG_ANNOTATION)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    M::decode(bytes.as_slice()).ok()
}

/// The CRI kind of `info` ([`KIND_SANDBOX`], [`KIND_CONTAINER`]), if any.
pub(crate) fn kind(info: &ContainerInfo) -> Option<&str> {
    info.config.labels.get(KIND_LABEL).map(String::as_str)
}

/// True when every pair of `selector` is in `labels` (CRI label selectors).
pub(crate) fn selects(
    selector: &HashMap<String, String>,
    labels: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// True when `id` names `full`: the same, or a prefix of it (crictl and
/// people use short ids).
pub(crate) fn id_matches(id: &str, full: &str) -> bool {
    !id.is_empty() && full.starts_with(id)
}

/// A time as CRI timestamps are: nanoseconds since the epoch (0: none).
pub(crate) fn nanos(time: Option<SystemTime>) -> i64 {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The labels to put on a crun-shimd container: the CRI labels and ours.
pub(crate) fn labels(
    cri: &HashMap<String, String>,
    ours: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> =
        cri.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in ours {
        labels.insert((*k).to_string(), (*v).to_string());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::proto::{PodSandboxConfig, PodSandboxMetadata};

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_config_survives_the_annotation() {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            ..Default::default()
        };
        let mut info = ContainerInfo {
            id: "x".into(),
            agent: String::new(),
            status: crate::ContainerStatus::Created,
            config: crate::ContainerConfig::default(),
            pid: 0,
            created_at: None,
            started_at: None,
            last_exit: None,
            restart_count: 0,
            health_status: Default::default(),
            bundle: String::new(),
            rootfs_path: String::new(),
            image_digest: String::new(),
            exec_ids: Vec::new(),
            networks: Vec::new(),
            ports: Vec::new(),
            netns_path: String::new(),
            oci_spec_json: None,
        };
        info.config
            .annotations
            .insert(CONFIG_ANNOTATION.into(), encode(&config));
        assert_eq!(decode::<PodSandboxConfig>(&info), Some(config));
        info.config
            .annotations
            .insert(CONFIG_ANNOTATION.into(), "not base64!".into());
        assert_eq!(decode::<PodSandboxConfig>(&info), None);
    }

    #[test]
    fn selectors_and_short_ids() {
        let labels: HashMap<String, String> = [("app".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        assert!(selects(&HashMap::new(), &labels));
        assert!(selects(&labels, &labels));
        let other: HashMap<String, String> = [("app".to_string(), "db".to_string())]
            .into_iter()
            .collect();
        assert!(!selects(&other, &labels));
        assert!(id_matches("ab", "abcdef"));
        assert!(!id_matches("", "abcdef"));
        assert!(!id_matches("b", "abcdef"));
    }
}
