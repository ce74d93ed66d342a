//! Registry credentials: from the request, else from a docker
//! `config.json`. Never logged: [`Credentials`] prints no secret.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

use crate::error::{Error, Result};

/// Credentials for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User name and password (or access token), for basic auth or to get a
    /// bearer token.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// A bearer token sent as is.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    pub(crate) fn to_registry_auth(&self) -> RegistryAuth {
        match self {
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// The docker client configuration file: `$DOCKER_CONFIG/config.json`,
/// else `$HOME/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(serde::Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// The credentials `config` (a docker `config.json`) holds for `registry`
/// (`host[:port]`; Docker Hub is also found under its historical keys).
/// A missing file means none; a malformed one is an error.
pub fn from_docker_config(config: &Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match std::fs::read(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", config.display()), e)),
    };
    let parsed: DockerConfig = serde_json::from_slice(&text).map_err(|e| {
        Error::Unauthenticated(format!(
            "{} is not a docker config file: {e}",
            config.display()
        ))
    })?;
    let hub = registry == "docker.io"
        || registry == "index.docker.io"
        || registry == "registry-1.docker.io";
    let entry = parsed.auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        host == registry
            || (hub
                && matches!(
                    host,
                    "docker.io" | "index.docker.io" | "registry-1.docker.io"
                ))
    });
    let Some((key, entry)) = entry else {
        return Ok(None);
    };
    if let Some(token) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::Bearer(token.clone())));
    }
    let (username, password) = match (&entry.username, &entry.password, &entry.auth) {
        (Some(u), Some(p), _) if !u.is_empty() => (u.clone(), p.clone()),
        (_, _, Some(auth)) if !auth.is_empty() => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| {
                    Error::Unauthenticated(format!(
                        "the auth of {key:?} in {} is not base64 of user:password",
                        config.display()
                    ))
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "the auth of {key:?} in {} is not user:password",
                    config.display()
                ))
            })?;
            (u.to_string(), p.to_string())
        }
        _ => return Ok(None),
    };
    // An identity token stands for the password (OAuth refresh token).
    let password = entry
        .identitytoken
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or(password);
    Ok(Some(Credentials::Basic { username, password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &config,
            format!(
                r#"{{"auths": {{
                    "127.0.0.1:5000": {{"auth": "{auth}"}},
                    "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}},
                    "tok.example": {{"registrytoken": "T"}}
                }}}}"#
            ),
        )
        .unwrap();
        let basic = |u: &str, p: &str| {
            Some(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(
            from_docker_config(&config, "127.0.0.1:5000").unwrap(),
            basic("alice", "s3cret")
        );
        assert_eq!(
            from_docker_config(&config, "docker.io").unwrap(),
            basic("bob", "pw")
        );
        assert_eq!(
            from_docker_config(&config, "tok.example").unwrap(),
            Some(Credentials::Bearer("T".into()))
        );
        assert_eq!(from_docker_config(&config, "quay.io").unwrap(), None);
        assert_eq!(
            from_docker_config(&dir.path().join("none.json"), "x").unwrap(),
            None
        );
        std::fs::write(&config, "not json").unwrap();
        assert!(from_docker_config(&config, "x").is_err());
        // Secrets never show in Debug.
        let shown = format!("{:?}", basic("alice", "s3cret").unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
