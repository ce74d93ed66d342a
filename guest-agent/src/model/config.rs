//! What a container is created from, and the rules a configuration
//! follows whatever the entry point (gRPC today; the shim, CRI and VM
//! paths through the same API): [`ContainerConfig::validate`] checks it
//! and fills in the defaults before the runtime acts on it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crun_shim_network::PortMapping;
use crun_shim_network::dns::{DnsConfig, HostEntry};
use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::error::{Error, Result};
use crate::ids;
use crate::spec;
use crate::stdio::StdioConfig;

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// An existing directory, used in place.
    Rootfs(PathBuf),
    /// An image reference in the agent's image store.
    Image(String),
    /// Mounts made in order on a directory of the agent's.
    Mounts(Vec<RootfsMount>),
}

/// One mount of a root filesystem given as mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    /// Filesystem type ("overlay", "bind").
    pub kind: String,
    /// Source.
    pub source: String,
    /// Flags and filesystem data, as mount(8) takes them.
    pub options: Vec<String>,
}

impl RootSource {
    /// Checks the form of the source: an absolute rootfs path, a
    /// non-empty image reference, or at least one mount, each with a type.
    /// Whether the directory, the image or the mount sources exist is the
    /// runtime's to find out.
    pub fn validate(&self) -> Result<()> {
        match self {
            RootSource::Rootfs(path) if path.as_os_str().is_empty() => Err(Error::InvalidArgument(
                "a rootfs path or an image is required".into(),
            )),
            RootSource::Rootfs(path) if !path.is_absolute() => Err(Error::InvalidArgument(
                format!("rootfs {} is not an absolute path", path.display()),
            )),
            RootSource::Image(reference) if reference.is_empty() => Err(Error::InvalidArgument(
                "a rootfs path or an image is required".into(),
            )),
            RootSource::Mounts(mounts) if mounts.is_empty() => Err(Error::InvalidArgument(
                "root filesystem mounts: at least one is required".into(),
            )),
            RootSource::Mounts(mounts) if mounts.iter().any(|m| m.kind.is_empty()) => Err(
                Error::InvalidArgument("root filesystem mounts: each needs a type".into()),
            ),
            _ => Ok(()),
        }
    }
}

impl Default for RootSource {
    fn default() -> Self {
        RootSource::Rootfs(PathBuf::new())
    }
}

/// The network a container joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The agent's default mode ([`NetworkMode::Bridge`] unless configured
    /// otherwise), which Create puts in its place.
    #[default]
    Default,
    /// A private network namespace with only loopback, up.
    None,
    /// The agent's network namespace.
    Host,
    /// A namespace of its own attached to the networks of
    /// [`ContainerConfig::networks`] (the default network when empty).
    Bridge,
    /// The namespace of another container, by id.
    Container(String),
}

/// A network a container joins, in bridge mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// The network's name.
    pub name: String,
    /// A fixed address in its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// More names the network's other containers know it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A mount added to a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Host path (bind mounts) or device/name.
    pub source: String,
    /// Filesystem type; "bind" when empty and `source` is absolute.
    pub kind: String,
    /// Mount options as in mount(8).
    pub options: Vec<String>,
    /// Mount read-only.
    pub read_only: bool,
}

/// The mount flags libcrun knows (its `mount_flags.perf`); any other
/// option is filesystem data, which the kernel ignores for bind mounts.
#[rustfmt::skip]
const MOUNT_FLAGS: &[&str] = &[
    "defaults", "bind", "rbind", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
    "sync", "async", "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime",
    "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "shared", "rshared",
    "slave", "rslave", "private", "rprivate", "unbindable", "runbindable", "rro", "rrw",
    "rsuid", "rnosuid", "rdev", "rnodev", "rexec", "rnoexec", "rsync", "rasync", "rdirsync",
    "rmand", "rnomand", "ratime", "rnoatime", "rdiratime", "rnodiratime", "rrelatime",
    "rnorelatime", "rstrictatime", "rnostrictatime", "tmpcopyup", "idmap",
];

impl Mount {
    /// Whether it is a bind mount.
    pub fn is_bind(&self) -> bool {
        self.kind.is_empty() || self.kind == "bind"
    }

    /// Checks the options of a bind mount: mount flags only, since the
    /// kernel would silently ignore anything else. Other filesystems check
    /// their own options when mounted.
    pub fn validate(&self) -> Result<()> {
        if !self.is_bind() {
            return Ok(());
        }
        match self
            .options
            .iter()
            .find(|o| !MOUNT_FLAGS.contains(&o.as_str()))
        {
            Some(option) => Err(Error::InvalidArgument(format!(
                "mount on {:?}: unknown bind mount option {:?}",
                self.destination.chars().take(256).collect::<String>(),
                option.chars().take(64).collect::<String>()
            ))),
            None => Ok(()),
        }
    }
}

/// What to do when a container's command exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart on a non-zero exit code, at most `max_retries` times (0: no
    /// limit).
    OnFailure {
        /// The most restarts.
        max_retries: u32,
    },
    /// Always restart, unless stopped through the API.
    Always,
}

/// A health check run inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The command (argv).
    pub command: Vec<String>,
    /// Time between checks; zero is [`HealthCheck::DEFAULT_INTERVAL`].
    pub interval: Duration,
    /// How long one check may run; zero is [`HealthCheck::DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy; zero is
    /// [`HealthCheck::DEFAULT_RETRIES`].
    pub retries: u32,
    /// Grace period after start.
    pub start_period: Duration,
}

impl HealthCheck {
    /// The time between checks when none is given (Docker's).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
    /// How long a check may run when no timeout is given (Docker's).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Failures in a row that make a container unhealthy when not given
    /// (Docker's).
    pub const DEFAULT_RETRIES: u32 = 3;

    /// Checks the command and fills in the defaults of unset (zero) values.
    fn validate(&mut self) -> Result<()> {
        if self.command.is_empty() {
            return Err(Error::InvalidArgument(
                "health check command is empty".into(),
            ));
        }
        if self.interval.is_zero() {
            self.interval = Self::DEFAULT_INTERVAL;
        }
        if self.timeout.is_zero() {
            self.timeout = Self::DEFAULT_TIMEOUT;
        }
        if self.retries == 0 {
            self.retries = Self::DEFAULT_RETRIES;
        }
        Ok(())
    }
}

/// Size-based rotation of a container's log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Size at which the current file is rotated.
    pub max_size_bytes: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_size_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// The most log files a container keeps (the current one included).
pub const MAX_LOG_FILES: u32 = 100;
/// The smallest size at which a log file is rotated (one long entry is
/// 16 KiB).
pub const MIN_LOG_FILE_BYTES: u64 = 64 << 10;
/// The largest size at which a log file is rotated.
pub const MAX_LOG_FILE_BYTES: u64 = 1 << 40;

impl LogConfig {
    /// Fills in the defaults of unset (zero) values and checks the bounds:
    /// 1 to [`MAX_LOG_FILES`] files of [`MIN_LOG_FILE_BYTES`] to
    /// [`MAX_LOG_FILE_BYTES`].
    fn validate(&mut self) -> Result<()> {
        let defaults = LogConfig::default();
        if self.max_size_bytes == 0 {
            self.max_size_bytes = defaults.max_size_bytes;
        }
        if self.max_files == 0 {
            self.max_files = defaults.max_files;
        }
        if self.max_files > MAX_LOG_FILES {
            return Err(Error::InvalidArgument(format!(
                "log max files {}: at most {MAX_LOG_FILES}",
                self.max_files
            )));
        }
        if !(MIN_LOG_FILE_BYTES..=MAX_LOG_FILE_BYTES).contains(&self.max_size_bytes) {
            return Err(Error::InvalidArgument(format!(
                "log max size {} bytes: {MIN_LOG_FILE_BYTES} (64 KiB) to {MAX_LOG_FILE_BYTES} (1 TiB)",
                self.max_size_bytes
            )));
        }
        Ok(())
    }
}

/// A process resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The limit's name, normalised to "RLIMIT_NOFILE" form.
    pub kind: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Changes to the default capability set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityChanges {
    /// Capabilities to add ("CAP_X" form, or "ALL").
    pub add: Vec<String>,
    /// Capabilities to drop ("CAP_X" form, or "ALL").
    pub drop: Vec<String>,
}

/// Everything a container is created from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's id.
    pub id: String,
    /// Where the root filesystem comes from.
    pub root: RootSource,
    /// The program and its leading arguments.
    pub command: Vec<String>,
    /// Arguments appended to `command`.
    pub args: Vec<String>,
    /// Environment as KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// User spec ("uid[:gid]" or "name[:group]").
    pub user: Option<String>,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: NetworkMode,
    /// Bridge mode: the networks to join, in order (the default network
    /// when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<ContainerNetwork>,
    /// Bridge mode: ports published through the first network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// DNS settings of its resolv.conf.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Static entries of its hosts file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
    /// Resource limits.
    pub resources: Resources,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Health check.
    pub health_check: Option<HealthCheck>,
    /// Run on a pseudo-terminal.
    pub terminal: bool,
    /// Log rotation limits.
    pub log: LogConfig,
    /// Read-only root filesystem.
    pub read_only_rootfs: bool,
    /// Process resource limits.
    pub rlimits: Vec<Rlimit>,
    /// Capability changes.
    pub capabilities: CapabilityChanges,
    /// The signal Stop sends first.
    pub stop_signal: Option<String>,
    /// Grace period of Stop before SIGKILL.
    pub stop_timeout: Option<Duration>,
    /// OCI annotations.
    pub annotations: BTreeMap<String, String>,
    /// The seccomp filter of its processes.
    #[serde(default)]
    pub seccomp: Seccomp,
    /// `no_new_privileges` of its processes; `None`: set (crun's default).
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
    /// A complete OCI runtime spec (JSON) to run as given; the fields above
    /// that shape a spec are then unset (see [`ContainerConfig::validate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_spec: Option<String>,
    /// Where the main process's streams go besides the logs.
    #[serde(default, skip_serializing_if = "StdioConfig::is_empty")]
    pub stdio: StdioConfig,
    /// Keep a stdin pipe open for Attach.
    #[serde(default)]
    pub open_stdin: bool,
    /// Where its IPC namespace comes from.
    #[serde(default)]
    pub ipc: NamespaceSource,
    /// Where its UTS namespace comes from.
    #[serde(default)]
    pub uts: NamespaceSource,
    /// Where its PID namespace comes from.
    #[serde(default)]
    pub pid: NamespaceSource,
    /// Namespaced kernel parameters.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Paths hidden from it; `None`: the base spec's.
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only; `None`: the base spec's.
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// Deleted by the agent once it has exited (Docker's `--rm`); never
    /// with a restart policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_remove: bool,
}

/// Where one of a container's namespaces comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceSource {
    /// A namespace of its own.
    #[default]
    Private,
    /// The agent's.
    Host,
    /// Another container's, by id (it must run when this one is made).
    Container(String),
}

impl NamespaceSource {
    /// The id of the container whose namespace is joined, if any.
    pub fn container(&self) -> Option<&str> {
        match self {
            NamespaceSource::Container(id) => Some(id),
            _ => None,
        }
    }
}

/// The seccomp filter of a container's processes (see `spec::seccomp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// The default profile, as Docker's.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile as JSON: OCI's `linux.seccomp` object or a Docker
    /// `seccomp.json`.
    Custom(String),
}

impl ContainerConfig {
    /// Checks that the network settings fit the network mode (part of
    /// [`ContainerConfig::validate`], and again once the runtime has put
    /// its default in place of [`NetworkMode::Default`]): networks and
    /// ports only in bridge mode, DNS settings and host entries in any mode
    /// but joining another container's namespace (which shares its files),
    /// published ports with a container port, host entries with names.
    pub fn validate_network(&self) -> Result<()> {
        let mode = match &self.network {
            NetworkMode::Container(target) => {
                ids::validate("container", target)?;
                if *target == self.id {
                    return Err(Error::InvalidArgument(format!(
                        "container {} cannot join its own network namespace",
                        self.id
                    )));
                }
                if !self.dns.is_empty() || !self.extra_hosts.is_empty() {
                    return Err(Error::InvalidArgument(
                        "DNS settings and host entries come from the container joined, not from a container joining it".into(),
                    ));
                }
                "container"
            }
            NetworkMode::Bridge | NetworkMode::Default => "bridge",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        };
        if mode != "bridge" && (!self.networks.is_empty() || !self.ports.is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "networks and published ports need the bridge network mode, not {mode}"
            )));
        }
        if let Some(p) = self.ports.iter().find(|p| p.container_port == 0) {
            return Err(Error::InvalidArgument(format!(
                "published port {}: the container port must be 1-65535",
                p.host_side()
            )));
        }
        for net in &self.networks {
            crun_shim_network::validate_name("network", &net.name)?;
        }
        self.dns.validate()?;
        for entry in &self.extra_hosts {
            entry.validate()?;
        }
        Ok(())
    }
}

/// The longest label or annotation key, in bytes.
pub const MAX_METADATA_KEY: usize = 1024;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 4096;
/// The most bytes all of a container's label keys and values take.
pub const MAX_LABELS_TOTAL: usize = 64 << 10;
/// The most bytes all of a container's annotation keys and values take
/// (Kubernetes' own bound on a pod's annotations, which CRI passes on).
pub const MAX_ANNOTATIONS_TOTAL: usize = 256 << 10;

impl ContainerConfig {
    /// Stop's grace period when neither the request nor the container sets
    /// one.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

    /// Checks the configuration against the rules every container follows,
    /// and brings it to the form the runtime runs with: defaults filled in
    /// (health check, log rotation), rlimit and capability names
    /// normalised. Idempotent. What depends on the machine (the rootfs or
    /// image existing, users, mount sources) is checked when the container
    /// is made.
    pub fn validate(&mut self) -> Result<()> {
        ids::validate("container", &self.id)?;
        self.check_metadata()?;
        self.root.validate()?;
        self.check_strings()?;
        refuse_empty_program(self.command.iter().chain(&self.args))?;
        self.resources.validate()?;
        for mount in &self.mounts {
            mount.validate()?;
        }
        if self.additional_gids.contains(&u32::MAX) {
            return Err(Error::InvalidArgument(
                "group id 4294967295 is not a group ((gid_t) -1)".into(),
            ));
        }
        if let Some(json) = &self.oci_spec {
            self.check_given_spec()?;
            spec::given::parse(json)?;
        }
        for rlimit in &mut self.rlimits {
            rlimit.kind = spec::normalize_rlimit(&rlimit.kind)?;
        }
        for name in self
            .capabilities
            .add
            .iter_mut()
            .chain(&mut self.capabilities.drop)
        {
            *name = spec::normalize_capability(name)?;
        }
        if let Some(name) = &self.stop_signal {
            spec::signal::parse(name)?;
        }
        if let Some(check) = &mut self.health_check {
            check.validate()?;
        }
        self.check_namespaces()?;
        if self.auto_remove && self.restart_policy != RestartPolicy::No {
            // Removed at its first exit, it could never restart.
            return Err(Error::InvalidArgument(
                "a container removed when it exits cannot have a restart policy".into(),
            ));
        }
        self.log.validate()?;
        self.validate_network()
    }

    /// Refuses NUL bytes in the strings that become paths, arguments or
    /// environment: the C side would cut them there.
    fn check_strings(&self) -> Result<()> {
        let root = match &self.root {
            RootSource::Rootfs(path) => path.as_os_str().to_str().unwrap_or_default(),
            RootSource::Image(reference) => reference,
            RootSource::Mounts(_) => "",
        };
        let singles = [
            ("rootfs or image", Some(root)),
            ("working directory", self.working_dir.as_deref()),
            ("user", self.user.as_deref()),
            ("hostname", self.hostname.as_deref()),
        ];
        let lists = [
            ("command", &self.command),
            ("args", &self.args),
            ("env", &self.env),
        ];
        let mounts = self.mounts.iter().flat_map(|m| {
            [
                ("mount destination", m.destination.as_str()),
                ("mount source", m.source.as_str()),
                ("mount type", m.kind.as_str()),
            ]
            .into_iter()
            .chain(m.options.iter().map(|o| ("mount option", o.as_str())))
        });
        let root_mounts = match &self.root {
            RootSource::Mounts(mounts) => mounts.as_slice(),
            _ => &[],
        };
        let root_mounts = root_mounts.iter().flat_map(|m| {
            [
                ("root mount source", m.source.as_str()),
                ("root mount type", m.kind.as_str()),
            ]
            .into_iter()
            .chain(m.options.iter().map(|o| ("root mount option", o.as_str())))
        });
        let all = singles
            .into_iter()
            .filter_map(|(what, s)| s.map(|s| (what, s)))
            .chain(
                lists
                    .into_iter()
                    .flat_map(|(what, list)| list.iter().map(move |s| (what, s.as_str()))),
            )
            .chain(mounts)
            .chain(root_mounts);
        refuse_nul(all)
    }

    /// With a given OCI spec, the fields that would shape a spec must be
    /// unset: the spec is run as given. `InvalidArgument` naming the first
    /// one set.
    fn check_given_spec(&self) -> Result<()> {
        let set = [
            ("command", !self.command.is_empty()),
            ("args", !self.args.is_empty()),
            ("env", !self.env.is_empty()),
            ("working_dir", self.working_dir.is_some()),
            ("user", self.user.is_some()),
            ("additional_gids", !self.additional_gids.is_empty()),
            ("hostname", self.hostname.is_some()),
            ("mounts", !self.mounts.is_empty()),
            ("network_mode", self.network != NetworkMode::default()),
            ("networks", !self.networks.is_empty()),
            ("ports", !self.ports.is_empty()),
            ("dns", !self.dns.is_empty()),
            ("extra_hosts", !self.extra_hosts.is_empty()),
            ("resources", self.resources != Resources::default()),
            ("terminal", self.terminal),
            ("read_only_rootfs", self.read_only_rootfs),
            ("rlimits", !self.rlimits.is_empty()),
            (
                "capabilities",
                self.capabilities != CapabilityChanges::default(),
            ),
            ("annotations", !self.annotations.is_empty()),
            ("seccomp", self.seccomp != Seccomp::default()),
            ("no_new_privileges", self.no_new_privileges.is_some()),
            ("ipc", self.ipc != NamespaceSource::Private),
            ("uts", self.uts != NamespaceSource::Private),
            ("pid", self.pid != NamespaceSource::Private),
            ("sysctls", !self.sysctls.is_empty()),
            ("masked_paths", self.masked_paths.is_some()),
            ("readonly_paths", self.readonly_paths.is_some()),
            ("image", matches!(self.root, RootSource::Image(_))),
        ];
        match set.iter().find(|(_, is_set)| *is_set) {
            Some((name, _)) => Err(Error::InvalidArgument(format!(
                "{name} cannot be set with an OCI spec: the spec is run as given"
            ))),
            None => Ok(()),
        }
    }

    /// Checks the shared namespaces, sysctls and path lists: joined
    /// containers are valid ids other than this one, a hostname needs the
    /// container's own UTS namespace, sysctl names are dotted words, paths
    /// are absolute.
    fn check_namespaces(&self) -> Result<()> {
        for (what, source) in [("ipc", &self.ipc), ("uts", &self.uts), ("pid", &self.pid)] {
            if let Some(other) = source.container() {
                ids::validate("container", other)?;
                if other == self.id {
                    return Err(Error::InvalidArgument(format!(
                        "{what}: a container cannot join its own namespace"
                    )));
                }
            }
        }
        if self.uts != NamespaceSource::Private && self.hostname.is_some() {
            return Err(Error::InvalidArgument(
                "a hostname needs the container's own UTS namespace".into(),
            ));
        }
        for (name, value) in &self.sysctls {
            let word = |w: &str| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !name.contains('.') || !name.split(['.', '/']).all(word) {
                return Err(Error::InvalidArgument(format!("sysctl name {name:?}")));
            }
            if value.contains('\n') {
                return Err(Error::InvalidArgument(format!(
                    "sysctl {name}: the value has a newline"
                )));
            }
        }
        for path in self
            .masked_paths
            .iter()
            .chain(&self.readonly_paths)
            .flatten()
        {
            if !path.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "masked or read-only path {path:?} is not absolute"
                )));
            }
        }
        Ok(())
    }

    /// Checks the bounds of the labels and annotations: every container is
    /// in every List answer and its labels in each of its events, so they
    /// must stay small (see the constants above). `InvalidArgument` beyond.
    pub fn check_metadata(&self) -> Result<()> {
        check_map(
            "label",
            &self.labels,
            Some(MAX_LABEL_VALUE),
            MAX_LABELS_TOTAL,
        )?;
        check_map("annotation", &self.annotations, None, MAX_ANNOTATIONS_TOTAL)
    }

    /// The signal Stop sends first: the container's stop signal, else
    /// SIGTERM.
    pub fn stop_signal(&self) -> Result<i32> {
        self.stop_signal
            .as_deref()
            .map_or(Ok(libc::SIGTERM), spec::signal::parse)
    }

    /// Stop's grace period: `requested`, else the container's, else
    /// [`ContainerConfig::DEFAULT_STOP_TIMEOUT`].
    pub fn stop_timeout(&self, requested: Option<Duration>) -> Duration {
        requested
            .or(self.stop_timeout)
            .unwrap_or(Self::DEFAULT_STOP_TIMEOUT)
    }
}

/// Refuses NUL bytes in (what, string) pairs: the C side would cut the
/// strings there.
fn refuse_nul<'a>(strings: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
    match strings.into_iter().find(|(_, s)| s.contains('\0')) {
        Some((what, s)) => Err(Error::InvalidArgument(format!(
            "{what} {:?} contains a NUL byte",
            s.chars().take(64).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// Refuses an empty program name (the first of `argv`).
fn refuse_empty_program<'a>(mut argv: impl Iterator<Item = &'a String>) -> Result<()> {
    match argv.next() {
        Some(program) if program.is_empty() => {
            Err(Error::InvalidArgument("the program name is empty".into()))
        }
        _ => Ok(()),
    }
}

/// Checks the keys, values and total size of a label or annotation map.
fn check_map(
    what: &str,
    map: &BTreeMap<String, String>,
    max_value: Option<usize>,
    max_total: usize,
) -> Result<()> {
    let mut total = 0;
    for (key, value) in map {
        let shown: String = key.chars().take(64).collect();
        if key.is_empty() || key.len() > MAX_METADATA_KEY {
            return Err(Error::InvalidArgument(format!(
                "{what} key {shown:?}: 1 to {MAX_METADATA_KEY} bytes ({} given)",
                key.len()
            )));
        }
        if let Some(max) = max_value
            && value.len() > max
        {
            return Err(Error::InvalidArgument(format!(
                "{what} {shown:?}: the value is {} bytes, at most {max}",
                value.len()
            )));
        }
        total += key.len() + value.len();
    }
    if total > max_total {
        return Err(Error::InvalidArgument(format!(
            "{what}s take {total} bytes, at most {max_total}"
        )));
    }
    Ok(())
}

/// What to run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Extra environment as KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory; the container's when `None`.
    pub working_dir: Option<String>,
    /// User ("uid[:gid]" or "name[:group]"); the container's when `None`.
    pub user: Option<String>,
    /// Run on a pseudo-terminal.
    pub tty: bool,
}

impl ProcessSpec {
    /// Checks what can be checked without the container: a command with a
    /// program name, no NUL bytes.
    pub fn validate(&self) -> Result<()> {
        if self.command.is_empty() {
            return Err(Error::InvalidArgument("exec command is empty".into()));
        }
        refuse_empty_program(self.command.iter())?;
        let singles = [
            ("working directory", self.working_dir.as_deref()),
            ("user", self.user.as_deref()),
        ];
        refuse_nul(
            singles
                .into_iter()
                .filter_map(|(what, s)| s.map(|s| (what, s)))
                .chain(self.command.iter().map(|s| ("command", s.as_str())))
                .chain(self.env.iter().map(|s| ("env", s.as_str()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerConfig {
        ContainerConfig {
            id: "web".into(),
            root: RootSource::Rootfs("/srv/rootfs".into()),
            command: vec!["httpd".into()],
            ..Default::default()
        }
    }

    fn invalid(mut c: ContainerConfig, naming: &str) {
        match c.validate() {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(naming), "{naming}: {m}"),
            other => panic!("{naming}: expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_filled_in_and_names_normalised_once() {
        let mut c = config();
        c.health_check = Some(HealthCheck {
            command: vec!["true".into()],
            interval: Duration::ZERO,
            timeout: Duration::from_secs(2),
            retries: 0,
            start_period: Duration::ZERO,
        });
        c.log = LogConfig {
            max_size_bytes: 0,
            max_files: 2,
        };
        c.rlimits = vec![Rlimit {
            kind: "nofile".into(),
            soft: 10,
            hard: 10,
        }];
        c.capabilities.add = vec!["net_admin".into(), "all".into()];
        c.validate().unwrap();
        let check = c.health_check.clone().unwrap();
        assert_eq!(
            (check.interval, check.timeout, check.retries),
            (HealthCheck::DEFAULT_INTERVAL, Duration::from_secs(2), 3)
        );
        assert_eq!(
            (c.log.max_size_bytes, c.log.max_files),
            (LogConfig::default().max_size_bytes, 2)
        );
        assert_eq!(c.rlimits[0].kind, "RLIMIT_NOFILE");
        assert_eq!(c.capabilities.add, ["CAP_NET_ADMIN", "ALL"]);
        let once = c.clone();
        c.validate().unwrap();
        assert_eq!(c, once, "idempotent");
    }

    #[test]
    fn each_rule_names_what_is_wrong() {
        invalid(
            ContainerConfig {
                id: "a/b".into(),
                ..config()
            },
            "a/b",
        );
        invalid(
            ContainerConfig {
                root: RootSource::Rootfs(PathBuf::new()),
                ..config()
            },
            "rootfs path or an image is required",
        );
        invalid(
            ContainerConfig {
                root: RootSource::Rootfs("relative".into()),
                ..config()
            },
            "not an absolute path",
        );
        invalid(
            ContainerConfig {
                stop_signal: Some("SIGNOPE".into()),
                ..config()
            },
            "SIGNOPE",
        );
        let mut c = config();
        c.rlimits = vec![Rlimit {
            kind: "bogus".into(),
            soft: 1,
            hard: 1,
        }];
        invalid(c, "bogus");
        let mut c = config();
        c.capabilities.drop = vec!["CAP_NOPE".into()];
        invalid(c, "CAP_NOPE");
        let mut c = config();
        c.health_check = Some(HealthCheck {
            command: vec![],
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            retries: 0,
            start_period: Duration::ZERO,
        });
        invalid(c, "health check command");
        let mut c = config();
        c.env = vec!["A=b\0c".into()];
        invalid(c, "NUL");
        invalid(
            ContainerConfig {
                command: vec!["".into()],
                ..config()
            },
            "program name is empty",
        );
        let mut c = config();
        c.mounts = vec![Mount {
            destination: "/d".into(),
            source: "/s".into(),
            options: vec!["ro".into(), "bogus".into()],
            ..Default::default()
        }];
        invalid(c, "bogus");
        let mut c = config();
        c.log.max_files = 4_000_000_000;
        invalid(c, "at most 100");
        let mut c = config();
        c.log.max_size_bytes = 100;
        invalid(c, "log max size 100");
        let mut c = config();
        c.resources.pids_limit = Some(0);
        invalid(c, "pids limit 0");
    }

    #[test]
    fn network_settings_must_fit_the_network_mode() {
        let port = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: crun_shim_network::Protocol::Tcp,
        };
        let mut c = config();
        c.ports = vec![port];
        c.clone().validate().unwrap();
        c.network = NetworkMode::Host;
        invalid(c, "need the bridge network mode, not host");
        let mut c = config();
        c.ports = vec![PortMapping {
            container_port: 0,
            ..port
        }];
        invalid(c, "container port must be 1-65535");
        let mut c = config();
        c.network = NetworkMode::Container("web".into());
        invalid(c, "cannot join its own network namespace");
        let mut c = config();
        c.network = NetworkMode::Container("pod".into());
        c.extra_hosts = vec![HostEntry {
            name: "db".into(),
            ip: "10.0.0.2".parse().unwrap(),
        }];
        invalid(c, "come from the container joined");
        let mut c = config();
        c.networks = vec![ContainerNetwork {
            name: "bad/name".into(),
            ..Default::default()
        }];
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Network(crun_shim_network::Error::InvalidArgument(m)) if m.contains("bad/name")
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_given_spec_excludes_what_shapes_a_spec() {
        let given = || {
            ContainerConfig {
            command: vec![],
            oci_spec: Some(
                r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{}}"#
                    .into(),
            ),
            ..config()
        }
        };
        given().validate().unwrap();
        invalid(
            ContainerConfig {
                command: vec!["sh".into()],
                ..given()
            },
            "command cannot be set with an OCI spec",
        );
        invalid(
            ContainerConfig {
                seccomp: Seccomp::Unconfined,
                ..given()
            },
            "seccomp cannot be set",
        );
        invalid(
            ContainerConfig {
                oci_spec: Some("{".into()),
                ..given()
            },
            "does not parse",
        );
        invalid(
            ContainerConfig {
                ports: vec![PortMapping {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    protocol: crun_shim_network::Protocol::Tcp,
                }],
                ..given()
            },
            "ports cannot be set",
        );
    }

    #[test]
    fn shared_namespaces_sysctls_and_paths_follow_the_rules() {
        let mut pod = ContainerConfig {
            ipc: NamespaceSource::Container("sandbox".into()),
            uts: NamespaceSource::Container("sandbox".into()),
            pid: NamespaceSource::Host,
            sysctls: [(
                "net.ipv4.ip_unprivileged_port_start".to_string(),
                "0".to_string(),
            )]
            .into_iter()
            .collect(),
            masked_paths: Some(vec!["/proc/kcore".into()]),
            ..config()
        };
        pod.validate().unwrap();
        invalid(
            ContainerConfig {
                ipc: NamespaceSource::Container("web".into()),
                ..config()
            },
            "its own namespace",
        );
        invalid(
            ContainerConfig {
                pid: NamespaceSource::Container("a/b".into()),
                ..config()
            },
            "a/b",
        );
        invalid(
            ContainerConfig {
                uts: NamespaceSource::Host,
                hostname: Some("web".into()),
                ..config()
            },
            "own UTS namespace",
        );
        for name in ["kernel", "net..x", "net.ipv4 x", ""] {
            invalid(
                ContainerConfig {
                    sysctls: [(name.to_string(), "1".to_string())].into_iter().collect(),
                    ..config()
                },
                "sysctl name",
            );
        }
        invalid(
            ContainerConfig {
                readonly_paths: Some(vec!["proc/sys".into()]),
                ..config()
            },
            "not absolute",
        );
    }

    #[test]
    fn stop_settings_fall_back_to_the_defaults() {
        let mut c = config();
        assert_eq!(c.stop_signal().unwrap(), libc::SIGTERM);
        assert_eq!(c.stop_timeout(None), ContainerConfig::DEFAULT_STOP_TIMEOUT);
        c.stop_signal = Some("QUIT".into());
        c.stop_timeout = Some(Duration::from_secs(3));
        assert_eq!(c.stop_signal().unwrap(), libc::SIGQUIT);
        assert_eq!(c.stop_timeout(None), Duration::from_secs(3));
        assert_eq!(c.stop_timeout(Some(Duration::ZERO)), Duration::ZERO);
    }
}

#[cfg(test)]
mod metadata_tests {
    use super::*;

    fn with(labels: &[(&str, usize)], annotations: &[(&str, usize)]) -> ContainerConfig {
        let map = |pairs: &[(&str, usize)]| {
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), "v".repeat(*n)))
                .collect()
        };
        ContainerConfig {
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn labels_and_annotations_are_bounded() {
        let ok = |c: ContainerConfig| c.check_metadata().unwrap();
        let bad = |c: ContainerConfig| {
            assert!(matches!(c.check_metadata(), Err(Error::InvalidArgument(_))));
        };
        ok(with(&[("app", MAX_LABEL_VALUE)], &[("big", 200 << 10)]));
        bad(with(&[("app", MAX_LABEL_VALUE + 1)], &[]));
        bad(with(&[("", 1)], &[]));
        bad(with(&[], &[(&"k".repeat(MAX_METADATA_KEY + 1), 1)]));
        let many: Vec<(String, usize)> = (0..20).map(|i| (format!("l{i}"), 4000)).collect();
        let many: Vec<(&str, usize)> = many.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        bad(with(&many, &[]));
        bad(with(&[], &[("a", 200 << 10), ("b", 100 << 10)]));
    }
}
