//! Image references, normalised the way Docker does (`alpine` is
//! `docker.io/library/alpine:latest`), and platforms (`linux/arm64/v8`).

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

use crate::error::{Error, Result};

/// Parses and normalises an image reference: a missing registry is
/// `docker.io`, a one-part Docker Hub repository is under `library/`, a
/// missing tag is `latest` (unless a digest is given).
pub fn parse(reference: &str) -> Result<Reference> {
    let invalid = |why: String| {
        Error::InvalidReference(format!("invalid image reference {reference:?}: {why}"))
    };
    if reference.is_empty() {
        return Err(invalid("empty".into()));
    }
    if reference.trim() != reference || reference.chars().any(char::is_whitespace) {
        return Err(invalid("contains white space".into()));
    }
    let parsed = Reference::from_str(reference).map_err(|e| invalid(e.to_string()))?;
    if !parsed.repository().split('/').all(is_path_component) {
        return Err(invalid(format!(
            "repository {:?} must be lowercase letters, digits and separators",
            parsed.repository()
        )));
    }
    if let Some(digest) = parsed.digest() {
        check_digest(digest).map_err(|_| invalid(format!("bad digest {digest:?}")))?;
    }
    Ok(parsed)
}

/// Docker's grammar of a repository path component:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[separator..i] {
            "." | "_" | "__" => {}
            dashes if dashes.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

/// The canonical text of a reference: `registry/repository[:tag][@digest]`.
pub fn canonical(reference: &Reference) -> String {
    reference.whole()
}

/// Checks a `sha256:<64 hex>` digest; returns its hex part.
pub fn check_digest(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Error::InvalidReference(format!("unsupported digest {digest:?} (sha256 only)"))
    })?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(Error::InvalidReference(format!(
            "malformed digest {digest:?}"
        )))
    }
}

/// Checks a registry address given alone (a mirror): `host[:port]`, with
/// no scheme, path or white space.
pub fn check_registry(registry: &str) -> Result<&str> {
    let invalid = |why: &str| {
        Err(Error::InvalidReference(format!(
            "invalid registry {registry:?}: {why} (expected host[:port])"
        )))
    };
    if registry.is_empty() {
        return invalid("empty");
    }
    if registry.contains("://") || registry.contains('/') {
        return invalid("a scheme or a path");
    }
    if registry
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return invalid("white space");
    }
    if let Some((_, port)) = registry.rsplit_once(':')
        && !registry.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return invalid("a port that is not a number");
    }
    Ok(registry)
}

/// Whether a registry (`host[:port]`) is on the loopback interface, where
/// plain HTTP is allowed without configuration, as Docker does.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An image platform: `os/architecture[/variant]`, in the OCI (Go) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, `v7`, ... when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn current() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: (architecture == "arm64").then(|| "v8".to_string()),
        }
    }

    /// Whether an index entry's platform (`os`, `architecture`,
    /// `variant`) is this one. A missing variant matches: arm64 images
    /// often leave `v8` out.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && match (&self.variant, variant) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(Error::InvalidReference(format!(
                "invalid platform {s:?}: expected os/architecture[/variant]"
            ))),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.20", "docker.io/library/alpine:3.20"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v1"),
            ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
            ("quay.io/x/y", "quay.io/x/y:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(&parse(input).unwrap()), want, "{input}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("alpine@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert_eq!(canonical(&r), format!("docker.io/library/alpine@{digest}"));
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            " alpine",
            "Alpine",
            "UPPER/case",
            "a//b",
            "a/-b",
            "alpine:",
            "alpine@sha256:abc",
            "a b",
            "alpine:tag:tag",
            "///",
            "alpine@md5:0123",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::InvalidReference(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn mirrors_are_registries_alone() {
        for good in [
            "127.0.0.1:5000",
            "mirror.example",
            "[::1]:5000",
            "localhost",
        ] {
            assert_eq!(check_registry(good).unwrap(), good);
        }
        for bad in ["", "http://127.0.0.1:5000", "host/path", "host:port", "a b"] {
            assert!(check_registry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_registries() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("localhost"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("docker.io"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
        assert!(!is_loopback_registry("localhost.example.com:5000"));
    }

    #[test]
    fn platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "arm64", None));
        assert!(!p.matches("linux", "arm64", Some("v7")));
        assert!(!p.matches("linux", "amd64", None));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert!("linux//v1".parse::<Platform>().is_err());
    }
}
