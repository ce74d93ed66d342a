//! OCI runtime specs given whole by the client (containerd's `config.json`,
//! a CRI server's), and exec processes given as OCI `process` objects: run
//! as given once checked, with only what the agent must set.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};

/// Parses a given spec and checks its form: a 1.x `ociVersion`, a process
/// with arguments and an absolute working directory, a `linux` section.
/// `InvalidArgument` otherwise.
pub fn parse(json: &str) -> Result<Spec> {
    let spec: Spec = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("the OCI spec does not parse: {e}")))?;
    if !spec.version().starts_with("1.") {
        return Err(Error::InvalidArgument(format!(
            "OCI spec version {:?} is not supported (1.x only)",
            spec.version()
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("the OCI spec has no process".into()))?;
    check_process(process)?;
    if spec.linux().is_none() {
        return Err(Error::InvalidArgument(
            "the OCI spec has no linux section".into(),
        ));
    }
    Ok(spec)
}

/// [`parse`]s a given spec, then sets `root.path` to `rootfs` and, when the
/// spec has none, `linux.cgroupsPath` to `default_cgroup`. A 1.x
/// `ociVersion` becomes `runtime_version`, the one libcrun knows (it refuses
/// newer ones, such as containerd 2's 1.2; the 1.x specs only add fields).
pub fn container(
    json: &str,
    rootfs: &Path,
    default_cgroup: &str,
    runtime_version: &str,
) -> Result<Spec> {
    let mut spec = parse(json)?;
    spec.set_version(runtime_version.to_string());
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    if let Some(linux) = spec.linux_mut()
        && linux.cgroups_path().is_none()
    {
        linux.set_cgroups_path(Some(PathBuf::from(default_cgroup)));
    }
    Ok(spec)
}

/// Parses and checks a given exec process.
pub fn process(json: &str) -> Result<Process> {
    let process: Process = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("the OCI process does not parse: {e}")))?;
    check_process(&process)?;
    Ok(process)
}

fn check_process(process: &Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::InvalidArgument(
            "the OCI process has no arguments".into(),
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "the OCI process's working directory {} is not absolute",
            process.cwd().display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}"#;

    #[test]
    fn a_given_spec_gets_its_root_and_a_cgroup_only() {
        let spec = container(SPEC, Path::new("/b/rootfs"), "/x/c1", "1.0.0").unwrap();
        assert_eq!(spec.version(), "1.0.0");
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("/b/rootfs"));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/x/c1")));
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 1);
        let with_cgroup = SPEC.replace(r#""linux":{"#, r#""linux":{"cgroupsPath":"/default/t","#);
        let spec = container(&with_cgroup, Path::new("/r"), "/x/c1", "1.0.0").unwrap();
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/default/t"))
        );
    }

    #[test]
    fn bad_specs_are_invalid_arguments() {
        for bad in [
            "{",
            r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{}}"#,
            &SPEC.replace(r#"["sh"]"#, "[]"),
            &SPEC.replace(r#""cwd":"/""#, r#""cwd":"rel""#),
            &SPEC.replace(r#","linux":{"namespaces":[{"type":"pid"}]}"#, ""),
            &SPEC.replace("1.0.2", "2.0.0"),
        ] {
            assert!(
                matches!(
                    container(bad, Path::new("/r"), "/c", "1.0.0"),
                    Err(Error::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        assert!(process(r#"{"args":[],"cwd":"/","user":{"uid":0,"gid":0}}"#).is_err());
        assert!(process(r#"{"args":["ls"],"cwd":"/","user":{"uid":0,"gid":0}}"#).is_ok());
    }
}
