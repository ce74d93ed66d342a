//! The anchors, each on private state this suite makes and removes: the
//! crun CLI (the floor), podman and containerd 1.6 (with `ctr`), all from
//! Debian and all running crun underneath, as we do.

pub mod containerd;
pub mod crun;
pub mod podman;

use std::io;
use std::process::{Command, Output, Stdio};

/// Runs a command to completion; its output, or an error with its stderr.
pub fn run(command: &mut Command) -> io::Result<Output> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// The first line a tool prints of its version (`--version`), or why not.
pub fn version(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{tool}: not installed"))
}
