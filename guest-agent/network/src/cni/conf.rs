//! Network configuration lists (`.conflist`) and single plugin
//! configurations (`.conf`), as the CNI specification defines them.
//!
//! Each plugin's configuration is kept as the JSON object it was written
//! as: the runtime passes it on to the plugin with only `name`,
//! `cniVersion`, `prevResult` and `runtimeConfig` added, so keys this crate
//! does not know still reach the plugins that do.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A network configuration list: a network's name and the chain of
/// plugins that set it up, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfList {
    /// The CNI specification version of the configuration and of the
    /// results the plugins return ("1.0.0").
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name, unique on the host.
    pub name: String,
    /// Whether CHECK must not be run on this network.
    #[serde(
        rename = "disableCheck",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_check: bool,
    /// The plugins' configurations, in the order ADD runs them. Each has a
    /// string `type`: the plugin binary's name.
    pub plugins: Vec<Map<String, Value>>,
    /// Other top-level keys, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The oldest configuration version whose DEL gets `prevResult` and that
/// supports CHECK.
const CHECK_VERSION: (u32, u32, u32) = (0, 4, 0);

/// Parses a "1.0.0" version; missing parts are 0.
pub(crate) fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

impl ConfList {
    /// Parses a configuration list; `origin` names it in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<ConfList> {
        let list: ConfList = serde_json::from_slice(bytes).map_err(|e| {
            Error::BadConfig(format!("{origin}: not a CNI configuration list: {e}"))
        })?;
        list.validate(origin)?;
        Ok(list)
    }

    /// Parses a single plugin's configuration (a `.conf` file) as a list of
    /// one plugin.
    pub fn parse_single(bytes: &[u8], origin: &str) -> Result<ConfList> {
        let mut conf: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| {
            Error::BadConfig(format!("{origin}: not a CNI plugin configuration: {e}"))
        })?;
        let field = |conf: &mut Map<String, Value>, key: &str| match conf.remove(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(Error::BadConfig(format!("{origin}: no string {key:?}"))),
        };
        let name = field(&mut conf, "name")?;
        let cni_version = field(&mut conf, "cniVersion")?;
        let list = ConfList {
            cni_version,
            name,
            disable_check: false,
            plugins: vec![conf],
            extra: Map::new(),
        };
        list.validate(origin)?;
        Ok(list)
    }

    /// Reads a `.conflist` file, or a single plugin's `.conf`/`.json` file.
    pub fn load(path: &Path) -> Result<ConfList> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let origin = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("conflist") => ConfList::parse(&bytes, &origin),
            _ => ConfList::parse_single(&bytes, &origin),
        }
    }

    fn validate(&self, origin: &str) -> Result<()> {
        crate::validate_name("network", &self.name)
            .map_err(|e| Error::BadConfig(format!("{origin}: {e}")))?;
        if parse_version(&self.cni_version).is_none() {
            return Err(Error::BadConfig(format!(
                "{origin}: cniVersion {:?} is not a version",
                self.cni_version
            )));
        }
        if self.plugins.is_empty() {
            return Err(Error::BadConfig(format!("{origin}: no plugins")));
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            match plugin.get("type") {
                Some(Value::String(t))
                    if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {}
                _ => {
                    return Err(Error::BadConfig(format!(
                        "{origin}: plugin {i} has no valid \"type\""
                    )));
                }
            }
        }
        Ok(())
    }

    /// The plugin types, in chain order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }

    /// Whether DEL gets the cached result and CHECK is supported (version
    /// 0.4.0 and later).
    pub fn supports_check(&self) -> bool {
        parse_version(&self.cni_version).is_some_and(|v| v >= CHECK_VERSION)
    }

    /// The list as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // A map of JSON values always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_and_keeps_unknown_keys() {
        let list = ConfList::parse(
            br#"{"cniVersion":"1.0.0","name":"web","x-owner":"me",
                 "plugins":[{"type":"bridge","bridge":"br0","ipam":{"type":"host-local"}},
                            {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            "test",
        )
        .unwrap();
        assert_eq!(list.plugin_types(), ["bridge", "portmap"]);
        assert_eq!(list.extra["x-owner"], "me");
        assert!(list.supports_check());
        let again = ConfList::parse(&list.to_json(), "again").unwrap();
        assert_eq!(again, list);
    }

    #[test]
    fn a_single_plugin_file_is_a_list_of_one() {
        let list = ConfList::parse_single(
            br#"{"cniVersion":"0.3.1","name":"old","type":"bridge","bridge":"br1"}"#,
            "test",
        )
        .unwrap();
        assert_eq!(list.name, "old");
        assert_eq!(list.plugin_types(), ["bridge"]);
        assert!(!list.plugins[0].contains_key("name"));
        assert!(!list.supports_check(), "0.3.1 has no CHECK");
    }

    #[test]
    fn bad_lists_are_errors_naming_the_file() {
        for bad in [
            &br#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#[..],
            br#"{"cniVersion":"1.0.0","name":"x","plugins":[{"bridge":"b"}]}"#,
            br#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#,
            br#"{"cniVersion":"one","name":"x","plugins":[{"type":"bridge"}]}"#,
            br#"{"cniVersion":"1.0.0","name":"a b","plugins":[{"type":"bridge"}]}"#,
            br#"{"cniVersion":"1.0.0","name":"x","plugins":"#,
        ] {
            let err = ConfList::parse(bad, "/etc/net.d/x.conflist").unwrap_err();
            assert!(matches!(err, Error::BadConfig(_)), "{err:?}");
            assert!(
                err.to_string().starts_with("/etc/net.d/x.conflist: "),
                "{err}"
            );
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("0.4"), Some((0, 4, 0)));
        assert_eq!(parse_version("1.0.0.1"), None);
        assert_eq!(parse_version("v1"), None);
    }
}
