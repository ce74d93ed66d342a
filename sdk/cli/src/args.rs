//! The command line: every command, its options and their help, and the
//! parsers of typed values, so that a bad value is a usage error before
//! anything runs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use libcrun_shim::{HostEntry, Mount, PortMapping, RestartPolicy};

/// crun-shim: run and manage OCI containers through crun-shimd.
///
/// Every command talks to the daemon at --host (or CRUN_SHIM_HOST), by
/// default its Unix socket /run/libcrun-shim/crun-shimd.sock. Errors are
/// one line on stderr and exit status 125; `run`, `exec` and `wait` exit
/// with the container's own exit code.
#[derive(Debug, Parser)]
#[command(name = "crun-shim", version, propagate_version = true)]
pub struct Cli {
    /// The daemon: unix:///PATH, a socket path, vsock://CID:PORT, hvsock:///PATH:PORT or http://HOST:PORT.
    #[arg(
        long,
        short = 'H',
        global = true,
        env = "CRUN_SHIM_HOST",
        default_value = libcrun_shim::DEFAULT_SOCKET
    )]
    pub host: String,
    /// On a daemon with several agents: the agent new containers and pulls go to
    /// (and cleanup/recover act on).
    #[arg(long, global = true, env = "CRUN_SHIM_AGENT")]
    pub agent: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (set up, not started).
    Create(CreateArgs),
    /// Start created containers.
    Start(Ids),
    /// Create and start a container, print its output and exit with its exit code.
    Run(RunArgs),
    /// Stop containers: their stop signal, then SIGKILL after the timeout.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Freeze the processes of containers.
    Pause(Ids),
    /// Thaw paused containers.
    Resume(Ids),
    /// Delete containers (and their logs).
    #[command(visible_alias = "delete")]
    Rm(RmArgs),
    /// List containers.
    #[command(visible_alias = "list")]
    Ps(PsArgs),
    /// Everything known about containers, as JSON.
    Inspect(Ids),
    /// Wait for containers to exit; print their exit codes and exit with the last.
    Wait(Ids),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Attach this terminal to a container's main process (its output, and
    /// its stdin when created with -i); leaving does not stop it.
    Attach(AttachArgs),
    /// Print a container's output.
    Logs(LogsArgs),
    /// Live resource usage of running containers.
    Stats(StatsArgs),
    /// The health-check status of a container.
    Health(HealthArgs),
    /// Print container events as they happen.
    Events(EventsArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// A container's published ports: all, or where one container port is.
    Port(PortArgs),
    /// Delete stopped containers; with --orphaned, list (and with --force remove) leftovers.
    Cleanup(CleanupArgs),
    /// Reconcile the runtime's records with what is running now.
    Recover,
    /// Shut the daemon (or one agent) down.
    Shutdown(ShutdownArgs),
    /// The versions of this client and of the daemon.
    Version(FormatArg),
    /// The state of the daemon and its agents.
    Info(FormatArg),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// One or more container ids.
#[derive(Debug, Args)]
pub struct Ids {
    /// Container ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

/// Output formats of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// `--format`.
#[derive(Debug, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How a container is set up, for `create` and `run`.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// Set an environment variable (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: uid, uid:gid, name or name:group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The container's hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// A label (KEY=VALUE).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Bind mount SRC:DST[:ro].
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]", value_parser = parse_volume)]
    pub volumes: Vec<Mount>,
    /// Network: bridge (the default network), none (loopback only), host,
    /// a network's name, or container:ID (another container's namespace)
    /// [default: the daemon's, bridge].
    #[arg(long, value_name = "MODE|NAME")]
    pub network: Option<Network>,
    /// Publish a container port: [HOSTIP:][HOSTPORT:]PORT[/tcp|udp]; without
    /// HOSTPORT a free port is picked (`crun-shim port` shows it).
    #[arg(short = 'p', long = "publish", value_name = "[IP:][HOSTPORT:]PORT")]
    pub publish: Vec<PortMapping>,
    /// A fixed address on the network named by --network.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Another name the other containers of the --network know it by.
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_aliases: Vec<String>,
    /// A name server for /etc/resolv.conf (repeat for several).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<IpAddr>,
    /// A DNS search domain ("." for none).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option (ndots:2).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_options: Vec<String>,
    /// An /etc/hosts entry.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<HostEntry>,
    /// Memory limit (512m, 1g, 1048576).
    #[arg(short, long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPUs' worth of time (1.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Most processes (-1: no limit).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy: no, on-failure[:MAX] or always.
    #[arg(long, value_name = "POLICY", default_value = "no", value_parser = parse_restart)]
    pub restart: RestartPolicy,
    /// Run the command on a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Keep the command's stdin open (for `attach`; `run -i` connects this
    /// terminal's stdin).
    #[arg(short, long)]
    pub interactive: bool,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// The signal `stop` sends first.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<u64>,
    /// Health check command, run with `sh -c`.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between health checks (30s, 500ms) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_interval: Option<Duration>,
    /// Time one health check may take [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_timeout: Option<Duration>,
    /// Consecutive failures that make the container unhealthy [default: 3].
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Grace period after start during which failures do not count.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_start_period: Option<Duration>,
    /// A security option: seccomp=unconfined, seccomp=PROFILE.json (an OCI
    /// or Docker seccomp profile), no-new-privileges[=true|false].
    #[arg(long = "security-opt", value_name = "OPT", value_parser = security_opt)]
    pub security_opts: Vec<SecurityOpt>,
    /// Add a capability to the default set (NET_ADMIN, CAP_SYS_TIME, ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from the default set (ALL drops every one).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
}

/// A `--security-opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined` or `seccomp=FILE` (the file's JSON).
    Seccomp(libcrun_shim::SeccompProfile),
    /// `no-new-privileges[=BOOL]`.
    NoNewPrivileges(bool),
}

/// Parses a `--security-opt` (`=` or Docker's older `:` between the key
/// and its value); a seccomp profile file is read here.
fn security_opt(text: &str) -> Result<SecurityOpt, String> {
    let (key, value) = match text.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (text, None),
    };
    match (key, value) {
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::Seccomp(
            libcrun_shim::SeccompProfile::Unconfined,
        )),
        ("seccomp", Some(path)) if !path.is_empty() => std::fs::read_to_string(path)
            .map(|json| SecurityOpt::Seccomp(libcrun_shim::SeccompProfile::Custom(json)))
            .map_err(|e| format!("reading the seccomp profile {path}: {e}")),
        ("no-new-privileges", None) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some(v)) => v
            .parse()
            .map(SecurityOpt::NoNewPrivileges)
            .map_err(|_| format!("no-new-privileges={v}: expected true or false")),
        _ => Err(
            "expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges[=true|false]"
                .to_string(),
        ),
    }
}

/// `--network`: the network a container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `bridge`: the default network.
    Bridge,
    /// `none`.
    None,
    /// `host`.
    Host,
    /// A network, by name.
    Named(String),
    /// `container:ID`.
    Container(String),
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Network, String> {
        Ok(match s {
            "" => return Err("expected bridge, none, host, a network or container:ID".into()),
            "bridge" => Network::Bridge,
            "none" => Network::None,
            "host" => Network::Host,
            _ => match s.strip_prefix("container:") {
                Some("") => return Err("container: needs a container id".into()),
                Some(id) => Network::Container(id.into()),
                None => Network::Named(s.into()),
            },
        })
    }
}

/// `create`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["rootfs", "image"]))]
pub struct CreateArgs {
    /// The container's id.
    pub id: String,
    /// Root filesystem directory (used in place).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Image reference (already pulled).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Container settings.
    #[command(flatten)]
    pub container: ContainerArgs,
    /// The command and its arguments (default: the image's).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Delete the container when it exits (the agent does it, even if this
    /// command is killed meanwhile, and with -d); not with a --restart
    /// policy.
    #[arg(long)]
    pub rm: bool,
    /// Print the container's id and return at once.
    #[arg(short, long)]
    pub detach: bool,
    /// The container's id [default: generated].
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
    /// Root filesystem directory (instead of an image).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Container settings.
    #[command(flatten)]
    pub container: ContainerArgs,
    /// IMAGE (unless --rootfs is given), then the command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|CMD"
    )]
    pub args: Vec<String>,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL [default: the container's stop timeout].
    #[arg(short = 't', long = "time", value_name = "SECS")]
    pub time: Option<u64>,
    /// Container ids.
    #[command(flatten)]
    pub ids: Ids,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal: name (TERM, SIGTERM) or number.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Container ids.
    #[command(flatten)]
    pub ids: Ids,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill running containers first.
    #[arg(short, long)]
    pub force: bool,
    /// Container ids.
    #[command(flatten)]
    pub ids: Ids,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running and paused ones).
    #[arg(short, long)]
    pub all: bool,
    /// Filter: status=STATUS, label=KEY[=VALUE], agent=NAME, id=ID.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[command(flatten)]
    pub format: FormatArg,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Connect stdin.
    #[arg(short, long)]
    pub interactive: bool,
    /// Run on a pseudo-terminal (raw mode here, resized with this terminal).
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The container's id.
    pub id: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only output since TIME (RFC 3339) or for the last DURATION (10m).
    #[arg(long, value_name = "TIME|DURATION", value_parser = parse_time)]
    pub since: Option<SystemTime>,
    /// Only output before TIME (RFC 3339) or DURATION ago.
    #[arg(long, value_name = "TIME|DURATION", value_parser = parse_time)]
    pub until: Option<SystemTime>,
    /// Prefix each line with the time it was written.
    #[arg(short, long)]
    pub timestamps: bool,
    /// The container's id.
    pub id: String,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one snapshot and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Containers [default: all running].
    pub ids: Vec<String>,
    /// Output format.
    #[command(flatten)]
    pub format: FormatArg,
}

/// `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The container's id.
    pub id: String,
    /// Output format.
    #[command(flatten)]
    pub format: FormatArg,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Replay journalled events after this sequence number first (0: all kept).
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
    /// Filter: container=ID, type=TYPE, label=KEY[=VALUE].
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Output format (json: one object per line).
    #[command(flatten)]
    pub format: FormatArg,
}

/// `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image reference (alpine, alpine:3.20, registry:5000/app:v1).
    pub reference: String,
    /// The platform to pick (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print image ids only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[command(flatten)]
    pub format: FormatArg,
}

/// `rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove even if containers use it.
    #[arg(short, long)]
    pub force: bool,
    /// References, ids or digests.
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// `network`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(NetworkLsArgs),
    /// Create a bridge network.
    Create(NetworkCreateArgs),
    /// Remove networks (none may be in use).
    #[command(visible_alias = "remove")]
    Rm(NetworkNames),
    /// Everything about networks, their containers included, as JSON.
    Inspect(NetworkNames),
}

/// `network ls`.
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Print names only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[command(flatten)]
    pub format: FormatArg,
}

/// `network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The network's name.
    pub name: String,
    /// Its IPv4 subnet [default: a free /24 of 10.78.0.0/16].
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Its gateway [default: the subnet's first address].
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Its bridge interface [default: crun-shimN].
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// No route out and no masquerading.
    #[arg(long)]
    pub internal: bool,
    /// A label (KEY=VALUE).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// Network names.
#[derive(Debug, Args)]
pub struct NetworkNames {
    /// Network names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container's id.
    pub id: String,
    /// Only where this container port is published: PORT[/tcp|udp].
    pub port: Option<String>,
}

/// `cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// List leftovers that no container owns (instead of deleting stopped containers).
    #[arg(long)]
    pub orphaned: bool,
    /// With --orphaned: remove the leftovers of each container found.
    #[arg(long, requires = "orphaned")]
    pub force: bool,
}

/// `shutdown`.
#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Stop every running container first.
    #[arg(long)]
    pub stop_containers: bool,
    /// Seconds to wait for containers to stop.
    #[arg(short = 't', long = "time", value_name = "SECS")]
    pub time: Option<u64>,
    /// Shut down this agent instead of the daemon.
    #[arg(long = "only-agent", value_name = "NAME")]
    pub only_agent: Option<String>,
}

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not connect this terminal's stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// The container's id.
    pub id: String,
}

/// A size: a number of bytes with an optional binary unit (`512m`,
/// `1.5g`, `64MiB`, `1048576`).
pub fn parse_size(text: &str) -> Result<u64, String> {
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
        _ => return Err(format!("{text:?}: unknown size unit")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a size (512m, 1g, 1048576)"))?;
    Ok((number * (1u64 << shift) as f64).round() as u64)
}

/// A duration: `500ms`, `30s`, `1m30s`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?}: not a duration (500ms, 30s): {e}"))
}

/// A point in time: RFC 3339 (`2024-05-01T10:00:00Z`), or a duration
/// meaning that long ago (`10m`).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = parse_duration(text)
        .map_err(|_| format!("{text:?}: not a time (2024-05-01T10:00:00Z) or a duration (10m)"))?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("{text:?}: too long ago"))
}

/// A restart policy: `no`, `on-failure[:MAX]` or `always`.
pub fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    match text.split_once(':') {
        None if text == "no" => Ok(RestartPolicy::No),
        None if text == "always" => Ok(RestartPolicy::Always),
        None if text == "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: 0 }),
        Some(("on-failure", n)) => n
            .parse()
            .map(|max_retries| RestartPolicy::OnFailure { max_retries })
            .map_err(|_| format!("{text:?}: the count is not a number")),
        _ => Err(format!("{text:?}: expected no, on-failure[:MAX] or always")),
    }
}

/// A bind mount: `SRC:DST`, `SRC:DST:ro` or `SRC:DST:rw`.
pub fn parse_volume(text: &str) -> Result<Mount, String> {
    match text.split(':').collect::<Vec<_>>()[..] {
        [src, dst] | [src, dst, "rw"] => Ok(Mount::bind(src, dst, false)),
        [src, dst, "ro"] => Ok(Mount::bind(src, dst, true)),
        _ => Err(format!("{text:?}: expected SRC:DST[:ro]")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn sizes_durations_times_and_policies_parse() {
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
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert_eq!(parse_restart("always").unwrap(), RestartPolicy::Always);
        for bad in ["sometimes", "on-failure:x", "always:2", ""] {
            assert!(parse_restart(bad).is_err(), "{bad}");
        }
        assert!(parse_volume("/a:/b:ro").unwrap().read_only);
        assert!(parse_volume("/a").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors_at_parse_time() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["crun-shim", "run", "--rootfs", "/r"].iter().chain(args))
        };
        for bad in [
            &["--memory", "lots", "true"][..],
            &["--network", "container:", "true"],
            &["--restart", "sometimes", "true"],
            &["--health-interval", "soon", "true"],
            &["-v", "/only-one", "true"],
        ] {
            let err = parse(bad).unwrap_err();
            use clap::error::ErrorKind;
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                ),
                "{bad:?}: {err}"
            );
        }
        let ok = parse(&[
            "--memory",
            "64m",
            "--network",
            "host",
            "--restart",
            "on-failure:2",
            "true",
        ])
        .unwrap();
        let Command::Run(run) = ok.command else {
            panic!("run");
        };
        assert_eq!(run.container.memory, Some(64 << 20));
        assert_eq!(run.container.network, Some(Network::Host));
        assert_eq!(
            run.container.restart,
            RestartPolicy::OnFailure { max_retries: 2 }
        );
        assert!(Cli::try_parse_from(["crun-shim", "logs", "--since", "yesterday", "web"]).is_err());
        assert_eq!(
            Cli::try_parse_from(["crun-shim", "ps"]).unwrap().host,
            libcrun_shim::DEFAULT_SOCKET
        );
    }
}
