//! The CNI invoker: runs the plugins of a network configuration list as
//! the CNI specification (1.0) tells a runtime to.
//!
//! Each plugin is its own program, found by its `type` in the plugin
//! directories and run with the `CNI_*` variables and its configuration on
//! stdin: the list's `name` and `cniVersion`, the previous plugin's result
//! as `prevResult`, and, under `runtimeConfig`, the runtime's values of the
//! capabilities the plugin declares (`portMappings` for `portmap`, `ips`
//! for `host-local`). ADD runs the plugins in order, each getting the
//! result of the one before; DEL runs them in reverse order with the
//! cached ADD result; CHECK runs them in order with the cached result.
//! A plugin that fails reports a CNI error on stdout (`code`, `msg`,
//! `details`), which becomes [`Error::Plugin`].

pub mod conf;
pub mod result;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};

pub use conf::ConfList;
pub use result::CniResult;

use crate::error::{Error, Result};

/// Where Debian and upstream install the plugins, searched in this order.
pub const DEFAULT_PLUGIN_DIRS: [&str; 3] = ["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"];

/// How long one plugin may run before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The three operations of CNI 1.0 a runtime invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Attach the container to the network.
    Add,
    /// Detach it and release what ADD took.
    Del,
    /// Verify that the attachment is as ADD left it.
    Check,
}

impl Operation {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Add => "ADD",
            Operation::Del => "DEL",
            Operation::Check => "CHECK",
        }
    }
}

/// What a chain of plugins is run for.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// `CNI_CONTAINERID`: the attachment's unique id.
    pub container_id: &'a str,
    /// `CNI_NETNS`: the network namespace's path. On DEL it may be `None`
    /// when the namespace is gone (plugins then release what they can).
    pub netns: Option<&'a Path>,
    /// `CNI_IFNAME`: the interface to create inside the namespace.
    pub ifname: &'a str,
    /// `CNI_ARGS`: extra `KEY=VALUE` arguments (`IP=10.0.0.5`).
    pub args: &'a [(String, String)],
    /// The runtime's values of capabilities, by capability name
    /// (`portMappings`, `ips`): each plugin gets, as `runtimeConfig`, those
    /// its configuration declares under `capabilities`.
    pub runtime_config: &'a Map<String, Value>,
}

/// The installed plugins, and how to run them.
#[derive(Debug, Clone)]
pub struct Plugins {
    dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl Plugins {
    /// Plugins looked up in `dirs`, in order.
    pub fn new(dirs: Vec<PathBuf>) -> Plugins {
        Plugins {
            dirs,
            timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
    }

    /// Changes how long one plugin may run.
    pub fn with_timeout(mut self, timeout: Duration) -> Plugins {
        self.timeout = timeout;
        self
    }

    /// The plugin directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The path of the plugin binary `kind`.
    pub fn find(&self, kind: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        self.dirs
            .iter()
            .map(|dir| dir.join(kind))
            .find(|path| {
                std::fs::metadata(path)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| {
                Error::BadConfig(format!(
                    "CNI plugin {kind:?} is not installed in {}",
                    self.search_path()
                ))
            })
    }

    /// Checks that every plugin of `list` is installed.
    pub fn check_installed(&self, list: &ConfList) -> Result<()> {
        for kind in list.plugin_types() {
            self.find(kind)
                .map_err(|e| Error::BadConfig(format!("network {}: {e}", list.name)))?;
        }
        Ok(())
    }

    fn search_path(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs ADD through the whole chain and returns the last plugin's
    /// result. On failure the plugins that succeeded are left as they are:
    /// the caller runs [`Plugins::del`], as the specification asks.
    pub fn add(&self, list: &ConfList, inv: &Invocation) -> Result<CniResult> {
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let out = self.run(Operation::Add, list, plugin, inv, prev.as_ref())?;
            let result: Value = serde_json::from_slice(&out).map_err(|e| Error::Plugin {
                plugin: plugin_type(plugin).to_string(),
                command: "ADD",
                network: list.name.clone(),
                message: format!("its result is not JSON: {e}"),
            })?;
            prev = Some(result);
        }
        Ok(CniResult(prev.unwrap_or(Value::Null)))
    }

    /// Runs DEL through the chain in reverse order, with the cached ADD
    /// result when the version passes one. Every plugin is run even when
    /// one fails (so that one failure leaks nothing of the others); the
    /// first failure is returned.
    pub fn del(&self, list: &ConfList, inv: &Invocation, cached: Option<&CniResult>) -> Result<()> {
        let prev = cached.filter(|_| list.supports_check()).map(|r| &r.0);
        let mut first_error = None;
        for plugin in list.plugins.iter().rev() {
            if let Err(e) = self.run(Operation::Del, list, plugin, inv, prev) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs CHECK through the chain, with the cached ADD result. Lists
    /// older than 0.4.0, or with `disableCheck`, are not checked.
    pub fn check(&self, list: &ConfList, inv: &Invocation, cached: &CniResult) -> Result<()> {
        if !list.supports_check() || list.disable_check {
            return Ok(());
        }
        for plugin in &list.plugins {
            self.run(Operation::Check, list, plugin, inv, Some(&cached.0))?;
        }
        Ok(())
    }

    /// Runs one plugin; returns its stdout on success.
    fn run(
        &self,
        command: Operation,
        list: &ConfList,
        plugin: &Map<String, Value>,
        inv: &Invocation,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>> {
        let kind = plugin_type(plugin);
        let fail = |message: String| Error::Plugin {
            plugin: kind.to_string(),
            command: command.as_str(),
            network: list.name.clone(),
            message,
        };
        let binary = self.find(kind)?;
        let stdin = serde_json::to_vec(&plugin_config(list, plugin, prev, inv.runtime_config))
            .map_err(|e| fail(format!("encoding its configuration: {e}")))?;
        let args = inv
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", inv.container_id)
            .env("CNI_NETNS", inv.netns.unwrap_or(Path::new("")))
            .env("CNI_IFNAME", inv.ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", self.search_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", binary.display())))?;
        let (mut input, mut output, mut errors) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(fail("no pipes to the plugin".into())),
            };
        let (stdout, stderr, status) = std::thread::scope(|s| {
            s.spawn(move || {
                // A plugin that exits without reading gives EPIPE: its
                // exit status tells what happened.
                let _ = input.write_all(&stdin);
            });
            let err_reader = s.spawn(move || {
                let mut buf = Vec::new();
                let _ = errors.read_to_end(&mut buf);
                buf
            });
            let mut stdout = Vec::new();
            let read = output.read_to_end(&mut stdout);
            let status = wait_with_timeout(&mut child, self.timeout);
            (
                read.map(|_| stdout),
                err_reader.join().unwrap_or_default(),
                status,
            )
        });
        let status = status.map_err(|e| fail(format!("waiting for it: {e}")))?;
        let stdout = stdout.map_err(|e| fail(format!("reading its output: {e}")))?;
        match status {
            Some(s) if s.success() => Ok(stdout),
            Some(s) => Err(fail(plugin_error(&stdout, &stderr, s))),
            None => Err(fail(format!(
                "killed after {:?} without finishing",
                self.timeout
            ))),
        }
    }
}

/// A plugin's `type`.
fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The configuration one plugin gets on stdin.
fn plugin_config(
    list: &ConfList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    runtime_config: &Map<String, Value>,
) -> Map<String, Value> {
    let mut conf = plugin.clone();
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    conf.insert("name".into(), Value::String(list.name.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    if let Some(Value::Object(caps)) = plugin.get("capabilities") {
        let wanted: Map<String, Value> = caps
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .filter_map(|(cap, _)| Some((cap.clone(), runtime_config.get(cap)?.clone())))
            .collect();
        if !wanted.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(wanted));
        }
    }
    conf
}

/// The message of a failed plugin: its CNI error from stdout, else the end
/// of its stderr, else its exit status.
fn plugin_error(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    #[derive(serde::Deserialize)]
    struct CniError {
        #[serde(default)]
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if let Ok(e) = serde_json::from_slice::<CniError>(stdout)
        && !e.msg.is_empty()
    {
        let mut message = e.msg;
        if !e.details.is_empty() {
            message.push_str(&format!(" ({})", e.details));
        }
        return format!("{message} [CNI error {}]", e.code);
    }
    let text = String::from_utf8_lossy(if stdout.trim_ascii().is_empty() {
        stderr
    } else {
        stdout
    });
    let tail: Vec<&str> = text.trim().lines().rev().take(3).collect();
    if tail.is_empty() {
        format!("exited with {status}")
    } else {
        format!(
            "exited with {status}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    }
}

/// Waits for `child`, killing it at `timeout`. `None` when it was killed.
fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd; the
    // child is not reaped yet, so the pid is still ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // No pidfds (a kernel before 5.3): no timeout.
        return child.wait().map(Some);
    }
    // SAFETY: `fd` is a new pidfd nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: polls one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n == 0 {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        return child.wait().map(Some);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ConfList {
        ConfList::parse(
            br#"{"cniVersion":"1.0.0","name":"n1","plugins":[
                {"type":"bridge","bridge":"b0"},
                {"type":"portmap","capabilities":{"portMappings":true,"ips":false}}]}"#,
            "test",
        )
        .unwrap()
    }

    #[test]
    fn each_plugin_gets_name_version_prev_result_and_only_its_capabilities() {
        let list = list();
        let mut rc = Map::new();
        rc.insert("portMappings".into(), serde_json::json!([{"hostPort": 80}]));
        rc.insert("ips".into(), serde_json::json!(["10.0.0.2/24"]));
        let bridge = plugin_config(&list, &list.plugins[0], None, &rc);
        assert_eq!(bridge["name"], "n1");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(!bridge.contains_key("runtimeConfig"));
        assert!(!bridge.contains_key("prevResult"));
        let prev = serde_json::json!({"ips": []});
        let portmap = plugin_config(&list, &list.plugins[1], Some(&prev), &rc);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            serde_json::json!({"portMappings": [{"hostPort": 80}]}),
            "ips is declared false"
        );
    }

    #[test]
    fn plugin_errors_are_read_from_stdout_then_stderr() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(
            plugin_error(
                br#"{"code":11,"msg":"failed to allocate","details":"range full"}"#,
                b"",
                status
            ),
            "failed to allocate (range full) [CNI error 11]"
        );
        assert!(plugin_error(b"", b"panic: boom\n", status).ends_with(": panic: boom"));
        assert!(plugin_error(b"", b"", status).starts_with("exited with"));
    }

    #[test]
    fn a_missing_plugin_names_the_search_path() {
        let plugins = Plugins::new(vec!["/nonexistent/a".into(), "/nonexistent/b".into()]);
        let err = plugins.check_installed(&list()).unwrap_err();
        assert!(matches!(err, Error::BadConfig(_)));
        assert!(
            err.to_string()
                .contains("\"bridge\" is not installed in /nonexistent/a:/nonexistent/b"),
            "{err}"
        );
    }
}
