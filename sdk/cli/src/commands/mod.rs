//! What each command does, on the SDK.

mod containers;
mod exec;
mod images;
mod logs;
mod monitor;
mod system;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use libcrun_shim::{ContainerRuntime, RuntimeConfig};

use crate::args::{Cli, Command};

/// The exit status of a failure of the CLI or the daemon (as Docker's),
/// distinct from a container's own exit codes.
pub const ERROR_EXIT: i32 = 125;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The SDK's error.
    #[error(transparent)]
    Sdk(#[from] libcrun_shim::Error),
    /// A value on the command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// Local input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> CliError {
        CliError::Io(e.into())
    }
}

/// The result of a command: its exit status.
pub type Result<T = i32> = std::result::Result<T, CliError>;

/// Prints `error` as one line on stderr; returns the exit status of
/// errors.
pub fn report(error: &CliError) -> i32 {
    if let CliError::Io(e) = error
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        // The reader went away (`crun-shim ps | head`): not an error.
        return 0;
    }
    let message = error.to_string().replace(['\n', '\r'], " ");
    eprintln!("crun-shim: {}", message.trim());
    ERROR_EXIT
}

/// Connects to the daemon and runs the command; returns the exit status.
pub async fn run(cli: Cli) -> Result {
    let runtime = ContainerRuntime::new_with_config(RuntimeConfig {
        endpoint: cli.host,
        agent: cli.agent,
        ..Default::default()
    })
    .await?;
    let rt = &runtime;
    match cli.command {
        Command::Create(a) => containers::create(rt, a).await,
        Command::Start(a) => containers::each(a.ids, |id| async move { rt.start(&id).await }).await,
        Command::Run(a) => containers::run(rt, a).await,
        Command::Stop(a) => containers::stop(rt, a).await,
        Command::Kill(a) => {
            let signal = a.signal;
            let signal = &signal;
            containers::each(a.ids.ids, |id| async move { rt.kill(&id, signal).await }).await
        }
        Command::Pause(a) => containers::each(a.ids, |id| async move { rt.pause(&id).await }).await,
        Command::Resume(a) => {
            containers::each(a.ids, |id| async move { rt.resume(&id).await }).await
        }
        Command::Rm(a) => {
            let force = a.force;
            containers::each(
                a.ids.ids,
                |id| async move { rt.delete_with(&id, force).await },
            )
            .await
        }
        Command::Ps(a) => containers::ps(rt, a).await,
        Command::Inspect(a) => containers::inspect(rt, a.ids).await,
        Command::Wait(a) => containers::wait(rt, a.ids).await,
        Command::Exec(a) => exec::exec(rt, a).await,
        Command::Logs(a) => logs::logs(rt, a).await,
        Command::Stats(a) => monitor::stats(rt, a).await,
        Command::Health(a) => monitor::health(rt, a).await,
        Command::Events(a) => monitor::events(rt, a).await,
        Command::Pull(a) => images::pull(rt, a).await,
        Command::Images(a) => images::images(rt, a).await,
        Command::Rmi(a) => images::rmi(rt, a).await,
        Command::Cleanup(a) => system::cleanup(rt, a).await,
        Command::Recover => system::recover(rt).await,
        Command::Shutdown(a) => system::shutdown(rt, a).await,
        Command::Version(a) => system::version(rt, a.format).await,
        Command::Info(a) => system::info(rt, a.format).await,
        Command::Completions { .. } | Command::Man => Ok(0),
    }
}

/// `KEY=VALUE` (or `KEY`, with an empty value) into a pair.
pub fn key_value(text: &str) -> (String, String) {
    match text.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (text.to_string(), String::new()),
    }
}

/// `KEY=VALUE` arguments into a map.
pub fn key_values(texts: &[String]) -> BTreeMap<String, String> {
    texts.iter().map(|t| key_value(t)).collect()
}

/// A size: a number of bytes with an optional binary unit (`512m`,
/// `1.5g`, `64MiB`, `1048576`).
pub fn parse_size(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(CliError::Usage(format!("{text:?}: unknown size unit"))),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| CliError::Usage(format!("{text:?}: not a size (512m, 1g, 1048576)")))?;
    Ok((number * (1u64 << shift) as f64).round() as u64)
}

/// A duration: `500ms`, `30s`, `1m30s`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|e| CliError::Usage(format!("{text:?}: {e}")));
    }
    humantime::parse_duration(text)
        .map_err(|e| CliError::Usage(format!("{text:?}: not a duration (500ms, 30s): {e}")))
}

/// A point in time: RFC 3339 (`2024-05-01T10:00:00Z`), or a duration
/// meaning that long ago (`10m`).
pub fn parse_time(text: &str) -> Result<SystemTime> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = parse_duration(text).map_err(|_| {
        CliError::Usage(format!(
            "{text:?}: not a time (2024-05-01T10:00:00Z) or a duration (10m)"
        ))
    })?;
    Ok(SystemTime::now() - ago)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_times_parse() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        let ten_minutes_ago = parse_time("10m").unwrap();
        let elapsed = SystemTime::now().duration_since(ten_minutes_ago).unwrap();
        assert!(elapsed >= Duration::from_secs(600) && elapsed < Duration::from_secs(660));
        assert_eq!(
            parse_time("1970-01-01T00:01:00Z").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(60)
        );
        assert_eq!(key_value("a=b=c"), ("a".into(), "b=c".into()));
    }
}
