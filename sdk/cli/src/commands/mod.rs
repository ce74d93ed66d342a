//! What each command does, on the SDK.

mod containers;
mod exec;
mod images;
mod logs;
mod monitor;
mod network;
mod system;

use std::collections::BTreeMap;

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
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// Local input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<clap::Error> for CliError {
    /// A usage error, as one line: what is wrong, without clap's usage
    /// summary (`--help` has it).
    fn from(e: clap::Error) -> CliError {
        let text = e.render().to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text);
        let what = text
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        CliError::Usage(format!("{what} (see --help)"))
    }
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
        Command::Attach(a) => exec::attach(rt, &a.id, !a.no_stdin).await,
        Command::Logs(a) => logs::logs(rt, a).await,
        Command::Stats(a) => monitor::stats(rt, a).await,
        Command::Health(a) => monitor::health(rt, a).await,
        Command::Events(a) => monitor::events(rt, a).await,
        Command::Pull(a) => images::pull(rt, a).await,
        Command::Images(a) => images::images(rt, a).await,
        Command::Rmi(a) => images::rmi(rt, a).await,
        Command::Network(c) => network::network(rt, c).await,
        Command::Port(a) => network::port(rt, a).await,
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
