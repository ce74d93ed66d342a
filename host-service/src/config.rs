//! The daemon's configuration: command-line flags, then environment
//! variables, then a TOML file, then defaults, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::vm::{VmConfig, VmTools};

pub use libcrun_shim_proto::DEFAULT_SOCKET;
/// The default configuration file (read when it exists).
pub const DEFAULT_CONFIG: &str = "/etc/libcrun-shim/crun-shimd.toml";

/// What `--help` says of logs and traces.
const TELEMETRY_HELP: &str = "Logs and traces:
  Logs go to stderr, filtered by RUST_LOG (default: info).
  Each RPC is a span. Spans are exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
  (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, configured by the standard
  OTEL_EXPORTER_OTLP_* variables (PROTOCOL grpc or http/protobuf, HEADERS, TIMEOUT),
  OTEL_SERVICE_NAME (default: crun-shimd) and OTEL_RESOURCE_ATTRIBUTES. The W3C trace
  context (traceparent) of a call goes on to the agent, whose span joins the trace;
  the local agent inherits these variables.";

/// `crun-shimd`: the libcrun-shim host service. Serves the v1 gRPC API
/// (with grpc.health.v1 and server reflection) and proxies it to guest
/// agents. With no agent configured on Linux, starts and supervises a
/// local `crun-shim-agent` found next to this binary.
///
/// Every option can also be set by its environment variable or in the
/// TOML file (`--config`), with the same name in snake case; flags win
/// over the environment, which wins over the file.
#[derive(Debug, Parser, Default)]
#[command(name = "crun-shimd", version, after_long_help = TELEMETRY_HELP)]
pub struct Args {
    /// TOML configuration file [default: /etc/libcrun-shim/crun-shimd.toml when present].
    #[arg(long, env = "CRUN_SHIMD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Unix socket to serve on, mode 0660; its directory is created 0750 when
    /// missing, and refused when others may write to it without the sticky bit
    /// [default: /run/libcrun-shim/crun-shimd.sock].
    #[arg(long, env = "CRUN_SHIMD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Also serve on TCP at this address. Needs TLS (--tls-cert and
    /// --tls-key) unless the address is loopback or --insecure-tcp is given.
    #[arg(long, env = "CRUN_SHIMD_TCP")]
    pub tcp: Option<SocketAddr>,
    /// TLS certificate chain (PEM) for the TCP listener.
    #[arg(long, env = "CRUN_SHIMD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the TCP listener.
    #[arg(long, env = "CRUN_SHIMD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM): when set, TCP clients must present a certificate it signed.
    #[arg(long, env = "CRUN_SHIMD_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plain TCP on a non-loopback address (anyone who reaches it controls containers).
    #[arg(long, env = "CRUN_SHIMD_INSECURE_TCP")]
    pub insecure_tcp: Option<bool>,
    /// An agent, as NAME=ENDPOINT with ENDPOINT unix:///PATH, vsock://CID:PORT or
    /// hvsock:///PATH:PORT (hybrid vsock).
    /// Repeat for several; comma-separated in the environment.
    #[arg(long = "agent", env = "CRUN_SHIMD_AGENTS", value_delimiter = ',')]
    pub agents: Vec<String>,
    /// The crun-shim-agent binary for the local agent [default: next to this binary].
    #[arg(long, env = "CRUN_SHIMD_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// State root of the local agent [default: /var/lib/libcrun-shim/agent].
    #[arg(long, env = "CRUN_SHIMD_AGENT_ROOT")]
    pub agent_root: Option<PathBuf>,
    /// Largest message accepted or sent, in bytes, to clients and to agents
    /// (keep agents' --max-message-bytes at least as large) [default: 64 MiB].
    #[arg(long, env = "CRUN_SHIMD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Concurrent streams per client connection [default: 256].
    #[arg(long, env = "CRUN_SHIMD_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// Deadline of calls that set none, in seconds; 0 for none
    /// (streams such as logs -f and events run until cancelled) [default: 0].
    #[arg(long, env = "CRUN_SHIMD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Run only these of the VMs the TOML file defines (`[vms.NAME]`
    /// sections); each is an agent of that name. Repeat for several;
    /// comma-separated in the environment [default: every VM defined].
    #[arg(long = "vm", env = "CRUN_SHIMD_VMS", value_delimiter = ',')]
    pub vms: Vec<String>,
    /// Start the local agent [default: true on Linux when no --agent is given].
    #[arg(long, env = "CRUN_SHIMD_LOCAL_AGENT")]
    pub local_agent: Option<bool>,
    /// QEMU for VMs on Linux [default: qemu-system-x86_64 on the PATH].
    #[arg(long, env = "CRUN_SHIMD_QEMU")]
    pub qemu: Option<PathBuf>,
    /// vhost-device-vsock for VMs on Linux [default: on the PATH].
    #[arg(long, env = "CRUN_SHIMD_VHOST_DEVICE_VSOCK")]
    pub vhost_device_vsock: Option<PathBuf>,
    /// virtiofsd for VM shares on Linux [default: on the PATH].
    #[arg(long, env = "CRUN_SHIMD_VIRTIOFSD")]
    pub virtiofsd: Option<PathBuf>,
}

/// The TOML file: the same options as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    insecure_tcp: Option<bool>,
    #[serde(default)]
    agents: Vec<AgentConfig>,
    agent_binary: Option<PathBuf>,
    agent_root: Option<PathBuf>,
    max_message_bytes: Option<usize>,
    max_concurrent_streams: Option<u32>,
    request_timeout: Option<u64>,
    #[serde(default)]
    vms: std::collections::BTreeMap<String, VmConfig>,
    local_agent: Option<bool>,
    qemu: Option<PathBuf>,
    vhost_device_vsock: Option<PathBuf>,
    virtiofsd: Option<PathBuf>,
}

/// An agent the daemon proxies to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Its name, shown in every answer that concerns it.
    pub name: String,
    /// `unix:///PATH`, `vsock://CID:PORT` or `hvsock:///PATH:PORT`.
    pub endpoint: String,
}

/// TLS for the TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Client CA (PEM): requires client certificates when set.
    pub client_ca: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Unix socket served on.
    pub socket: PathBuf,
    /// The TCP address served on, if any.
    pub tcp: Option<SocketAddr>,
    /// TLS of the TCP listener.
    pub tls: Option<Tls>,
    /// The configured agents; empty means a local agent.
    pub agents: Vec<AgentConfig>,
    /// The local agent's binary (when no agent is configured).
    pub agent_binary: Option<PathBuf>,
    /// The local agent's state root.
    pub agent_root: PathBuf,
    /// Largest message in bytes.
    pub max_message_bytes: usize,
    /// Concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Default deadline of calls.
    pub request_timeout: Option<Duration>,
    /// Whether the daemon starts and supervises a local agent.
    pub local_agent: bool,
    /// The VMs to run, by name; each is an agent of that name.
    pub vms: Vec<(String, VmConfig)>,
    /// The programs VMs run on the host.
    pub vm_tools: VmTools,
}

fn parse_agent(spec: &str) -> Result<AgentConfig> {
    let (name, endpoint) = spec
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("agent {spec:?}: expected NAME=ENDPOINT")))?;
    Ok(AgentConfig {
        name: name.trim().to_string(),
        endpoint: endpoint.trim().to_string(),
    })
}

impl Config {
    /// Merges flags (and their environment variables), the TOML file and
    /// the defaults, and checks the result.
    pub fn load(args: Args) -> Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => File::default(),
        };
        let agents = if args.agents.is_empty() {
            file.agents
        } else {
            args.agents
                .iter()
                .map(|a| parse_agent(a))
                .collect::<Result<_>>()?
        };
        let local_agent = args
            .local_agent
            .or(file.local_agent)
            .unwrap_or(agents.is_empty() && cfg!(target_os = "linux"));
        let mut defined = file.vms;
        let vms = if args.vms.is_empty() {
            defined.into_iter().collect()
        } else {
            args.vms
                .iter()
                .map(|name| {
                    defined.remove_entry(name).ok_or_else(|| {
                        Error::Config(format!("--vm {name}: no [vms.{name}] section"))
                    })
                })
                .collect::<Result<_>>()?
        };
        let tool = |flag: Option<PathBuf>, file: Option<PathBuf>, name: &str| {
            flag.or(file).unwrap_or_else(|| name.into())
        };
        let vm_tools = VmTools {
            qemu: tool(args.qemu, file.qemu, "qemu-system-x86_64"),
            vhost_device_vsock: tool(
                args.vhost_device_vsock,
                file.vhost_device_vsock,
                "vhost-device-vsock",
            ),
            virtiofsd: tool(args.virtiofsd, file.virtiofsd, "virtiofsd"),
        };
        let tcp = args.tcp.or(file.tcp);
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(Tls {
                cert,
                key,
                client_ca: args.tls_client_ca.or(file.tls_client_ca),
            }),
            (None, None) => None,
            _ => return Err(Error::Config("TLS needs both tls_cert and tls_key".into())),
        };
        let insecure = args.insecure_tcp.or(file.insecure_tcp).unwrap_or(false);
        if let Some(addr) = tcp
            && tls.is_none()
            && !addr.ip().is_loopback()
            && !insecure
        {
            return Err(Error::Config(format!(
                "refusing plain TCP on the non-loopback address {addr}: configure TLS or force it with --insecure-tcp"
            )));
        }
        let config = Config {
            socket: args
                .socket
                .or(file.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            tcp,
            tls,
            agents,
            agent_binary: args.agent_binary.or(file.agent_binary),
            agent_root: args
                .agent_root
                .or(file.agent_root)
                .unwrap_or_else(|| "/var/lib/libcrun-shim/agent".into()),
            max_message_bytes: args
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(libcrun_shim_proto::MAX_MESSAGE_BYTES),
            max_concurrent_streams: args
                .max_concurrent_streams
                .or(file.max_concurrent_streams)
                .unwrap_or(256),
            request_timeout: args
                .request_timeout
                .or(file.request_timeout)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            local_agent,
            vms,
            vm_tools,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        for agent in &self.agents {
            if agent.name.is_empty() || !names.insert(agent.name.as_str()) {
                return Err(Error::Config(format!(
                    "agent names must be unique and non-empty: {:?}",
                    agent.name
                )));
            }
            crate::agents::parse_endpoint(&agent.endpoint)?;
        }
        for (name, vm) in &self.vms {
            if (self.local_agent && name == crate::LOCAL_AGENT) || !names.insert(name.as_str()) {
                return Err(Error::Config(format!(
                    "vms.{name}: an agent is already named {name:?}"
                )));
            }
            vm.check(name)?;
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("crun-shimd").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "socket = \"/tmp/file.sock\"\nmax_message_bytes = 1000\n[[agents]]\nname = \"vm\"\nendpoint = \"vsock://3:1024\"\n",
        )
        .unwrap();
        let c = Config::load(args(&[
            "--config",
            path.to_str().unwrap(),
            "--socket",
            "/tmp/flag.sock",
        ]))
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/flag.sock"));
        assert_eq!(c.max_message_bytes, 1000);
        assert_eq!(c.max_concurrent_streams, 256);
        assert_eq!(
            c.agents,
            vec![AgentConfig {
                name: "vm".into(),
                endpoint: "vsock://3:1024".into()
            }]
        );
        let c = Config::load(args(&[
            "--config",
            path.to_str().unwrap(),
            "--agent",
            "a=unix:///tmp/a.sock",
        ]))
        .unwrap();
        assert_eq!(c.agents[0].name, "a", "flag agents replace the file's");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "sockett = \"/x\"\n").unwrap();
        assert!(
            Config::load(args(&["--config", path.to_str().unwrap()])).is_err(),
            "unknown key"
        );
        assert!(Config::load(args(&["--agent", "noequals"])).is_err());
        assert!(Config::load(args(&["--agent", "a=http://x"])).is_err());
        assert!(Config::load(args(&["--agent", "a=unix:///x", "--agent", "a=unix:///y"])).is_err());
        assert!(
            Config::load(args(&["--tcp", "0.0.0.0:7000"])).is_err(),
            "plain TCP off loopback"
        );
        assert!(Config::load(args(&["--tcp", "0.0.0.0:7000", "--insecure-tcp", "true"])).is_ok());
        assert!(Config::load(args(&["--tcp", "127.0.0.1:7000"])).is_ok());
        assert!(
            Config::load(args(&["--tls-cert", "/c"])).is_err(),
            "half a TLS pair"
        );
    }
}
