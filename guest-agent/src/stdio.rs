//! Where a process's standard streams go when no client streams them:
//! named FIFOs, files, or a logging program (containerd's forms), and the
//! rules that make a [`StdioConfig`] valid.
//!
//! The process's monitor opens and holds them (see `monitor::io`), so they
//! outlive the client that asked for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputTarget {
    /// A FIFO or file, opened for writing (a FIFO is held open for reading
    /// too, so that its reader going away never breaks the process).
    Path(PathBuf),
    /// A file appended to (`file:///PATH`), created if missing.
    File(PathBuf),
    /// A logging program (`binary:///PATH?KEY=VALUE`): stdout on its
    /// descriptor 3, stderr on 4, readiness by closing 5.
    Binary {
        /// The program.
        path: PathBuf,
        /// Its arguments, `KEY VALUE` for each query pair.
        args: Vec<String>,
    },
}

impl OutputTarget {
    /// Parses a path, `file://` or `binary://` URI.
    pub fn parse(text: &str) -> Result<OutputTarget> {
        let bad = |why: &str| Error::InvalidArgument(format!("stdio target {text:?}: {why}"));
        let absolute = |path: &str| -> Result<PathBuf> {
            let path = percent_decode(path).map_err(|why| bad(&why))?;
            if Path::new(&path).is_absolute() {
                Ok(PathBuf::from(path))
            } else {
                Err(bad("the path must be absolute"))
            }
        };
        if let Some(rest) = text.strip_prefix("file://") {
            return Ok(OutputTarget::File(absolute(rest)?));
        }
        if let Some(rest) = text.strip_prefix("binary://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut args = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                args.push(percent_decode(key).map_err(|why| bad(&why))?);
                if !value.is_empty() {
                    args.push(percent_decode(value).map_err(|why| bad(&why))?);
                }
            }
            return Ok(OutputTarget::Binary {
                path: absolute(path)?,
                args,
            });
        }
        if text.contains("://") {
            return Err(bad("unsupported scheme (a path, file:// or binary://)"));
        }
        Ok(OutputTarget::Path(absolute(text)?))
    }

    /// Whether the target takes both streams (a program or a file URI).
    pub fn is_shared(&self) -> bool {
        !matches!(self, OutputTarget::Path(_))
    }
}

/// Decodes `%XX` escapes of a URI part.
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_string())
}

/// Where a process's standard streams go besides the log files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StdioConfig {
    /// A FIFO or file stdin is read from.
    pub stdin: Option<PathBuf>,
    /// Where stdout goes.
    pub stdout: Option<OutputTarget>,
    /// Where stderr goes (the same target as stdout for a program or a
    /// file URI).
    pub stderr: Option<OutputTarget>,
    /// Environment of a logging program, over `CONTAINER_ID`.
    pub logger_env: BTreeMap<String, String>,
}

impl StdioConfig {
    /// Builds and checks a configuration from its wire form: absolute
    /// paths, known schemes, and a program or file URI shared by stdout and
    /// stderr (an empty stderr then means the same).
    pub fn parse(
        stdin: &str,
        stdout: &str,
        stderr: &str,
        logger_env: BTreeMap<String, String>,
    ) -> Result<StdioConfig> {
        let stdin = match stdin {
            "" => None,
            path if Path::new(path).is_absolute() => Some(PathBuf::from(path)),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "stdin {other:?} is not an absolute path"
                )));
            }
        };
        let target = |t: &str| (!t.is_empty()).then(|| OutputTarget::parse(t)).transpose();
        let stdout = target(stdout)?;
        let mut stderr = target(stderr)?;
        match (&stdout, &stderr) {
            (Some(out), None) if out.is_shared() => stderr = stdout.clone(),
            (Some(out), Some(err)) if (out.is_shared() || err.is_shared()) && out != err => {
                return Err(Error::InvalidArgument(
                    "a binary:// or file:// stdio target takes both stdout and stderr: give the same URI for both".into(),
                ));
            }
            (None, Some(err)) if err.is_shared() => {
                return Err(Error::InvalidArgument(
                    "a binary:// or file:// target must be given for stdout".into(),
                ));
            }
            _ => {}
        }
        Ok(StdioConfig {
            stdin,
            stdout,
            stderr,
            logger_env,
        })
    }

    /// Checks that what must exist does: the stdin source, FIFO and file
    /// targets (a `file://` file is created), a logging program.
    pub fn check_exists(&self) -> Result<()> {
        let missing = |what: &str, path: &Path| {
            Err(Error::NotFound(format!(
                "{what} {} does not exist",
                path.display()
            )))
        };
        if let Some(path) = &self.stdin
            && !path.exists()
        {
            return missing("stdin", path);
        }
        for target in [&self.stdout, &self.stderr].into_iter().flatten() {
            match target {
                OutputTarget::Path(path) if !path.exists() => return missing("output", path),
                OutputTarget::Binary { path, .. } if !path.is_file() => {
                    return missing("logging program", path);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.stdin.is_none() && self.stdout.is_none() && self.stderr.is_none()
    }
}

/// The wire form of a target.
impl std::fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputTarget::Path(p) => write!(f, "{}", p.display()),
            OutputTarget::File(p) => write!(f, "file://{}", p.display()),
            OutputTarget::Binary { path, args } => {
                write!(f, "binary://{}", path.display())?;
                for (i, pair) in args.chunks(2).enumerate() {
                    let sep = if i == 0 { '?' } else { '&' };
                    match pair {
                        [k, v] => write!(f, "{sep}{k}={v}")?,
                        [k] => write!(f, "{sep}{k}")?,
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            OutputTarget::parse("/run/x/stdout").unwrap(),
            OutputTarget::Path("/run/x/stdout".into())
        );
        assert_eq!(
            OutputTarget::parse("file:///var/log/a%20b.log").unwrap(),
            OutputTarget::File("/var/log/a b.log".into())
        );
        assert_eq!(
            OutputTarget::parse("binary:///usr/bin/logger?-t=app&-v").unwrap(),
            OutputTarget::Binary {
                path: "/usr/bin/logger".into(),
                args: vec!["-t".into(), "app".into(), "-v".into()],
            }
        );
        for bad in ["relative", "file://rel", "http://x/y", "binary://", "/a%zz"] {
            assert!(
                matches!(OutputTarget::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn shared_targets_take_both_streams() {
        let c = StdioConfig::parse("", "file:///tmp/l", "", BTreeMap::new()).unwrap();
        assert_eq!(c.stderr, c.stdout);
        assert!(StdioConfig::parse("", "file:///tmp/l", "/tmp/e", BTreeMap::new()).is_err());
        assert!(StdioConfig::parse("", "", "binary:///bin/x", BTreeMap::new()).is_err());
        assert!(StdioConfig::parse("rel", "", "", BTreeMap::new()).is_err());
        let fifos = StdioConfig::parse("/f/0", "/f/1", "/f/2", BTreeMap::new()).unwrap();
        assert_eq!(fifos.stdin, Some("/f/0".into()));
        assert!(!fifos.is_empty());
        assert!(StdioConfig::default().is_empty());
    }
}
