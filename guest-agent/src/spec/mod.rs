//! The OCI runtime spec a container runs with, built from its
//! [`ContainerConfig`] over libcrun's default spec.
//!
//! Starting from libcrun's defaults keeps its capability set, masked and
//! read-only paths, default mounts and namespaces; the config only changes
//! what it sets.

pub mod executable;
pub mod given;
pub mod image;
pub mod seccomp;
pub mod signal;
pub mod user;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, getrlimit};
use oci_spec::runtime::{
    BoxBuilder, Capabilities, Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec,
};

use crate::error::{Error, Result};
use crate::model::{self, CapabilityChanges, ContainerConfig};
use user::ResolvedUser;

/// PATH when neither the base spec nor the config sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The console size of containers run on a terminal, until resized.
const CONSOLE_ROWS: u64 = 24;
/// See [`CONSOLE_ROWS`].
const CONSOLE_COLUMNS: u64 = 80;

/// The longest hostname Linux accepts (`HOST_NAME_MAX`).
const MAX_HOSTNAME_LEN: usize = 64;
/// The longest label of a hostname.
const MAX_LABEL_LEN: usize = 63;

/// Every capability oci-spec knows, in kernel order: what "ALL" adds.
const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The network namespace a container runs in, as the runtime decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// A new one, made by libcrun at each run: loopback only.
    New,
    /// The agent's own.
    Host,
    /// An existing one, by path (a bridge container's own, or the one it
    /// joins).
    Join(PathBuf),
}

/// What "ALL" adds: every capability the agent itself holds in its bounding
/// set (as Docker and containerd do), since a container cannot be given
/// one the runtime lacks (`capset` fails). Every one oci-spec knows when
/// the set cannot be read.
fn held_capabilities() -> Vec<Capability> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        });
    ALL_CAPABILITIES
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|set| set & (1 << bit) != 0))
        .map(|(_, cap)| cap)
        .collect()
}

/// Inputs the runtime supplies beyond the config.
#[derive(Debug, Clone)]
pub struct SpecContext<'a> {
    /// libcrun's default spec, parsed once by the agent ([`parse_base`]).
    pub base: &'a Spec,
    /// Absolute path of the container's root filesystem.
    pub rootfs: &'a Path,
    /// The `linux.cgroupsPath` to set, chosen by the runtime.
    pub cgroup_path: String,
    /// The network namespace.
    pub netns: Netns,
    /// Files bind-mounted over the container's own: (destination, source)
    /// such as the generated `/etc/hosts` and `/etc/resolv.conf`. A mount of
    /// the config on the same destination wins.
    pub network_files: Vec<(String, PathBuf)>,
    /// The IPC, UTS and PID namespaces, as the runtime resolved the
    /// config's sources.
    pub shared: SharedNamespaces,
}

/// Where a container's IPC, UTS and PID namespaces come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedNamespaces {
    /// The IPC namespace.
    pub ipc: Shared,
    /// The UTS namespace.
    pub uts: Shared,
    /// The PID namespace.
    pub pid: Shared,
}

/// One namespace, as the runtime resolved it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shared {
    /// A new one (libcrun's default spec has one of each).
    #[default]
    Own,
    /// The agent's.
    Host,
    /// An existing one, by path (`/proc/PID/ns/ipc` of another container).
    Join(PathBuf),
}

/// Parses libcrun's default spec (`libcrun_sys::default_spec`).
pub fn parse_base(json: &str) -> Result<Spec> {
    serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("libcrun's default spec does not parse: {e}")))
}

/// Builds the spec `config` runs with, over `ctx.base`.
///
/// Invalid values in the config are `InvalidArgument`; a bind mount source,
/// user or group that does not exist is `NotFound`.
pub fn build(config: &ContainerConfig, ctx: &SpecContext) -> Result<Spec> {
    if !ctx.rootfs.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {} is not an absolute path",
            ctx.rootfs.display()
        )));
    }
    let user = match &config.user {
        Some(spec) => user::resolve(ctx.rootfs, spec)?,
        None => ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: None,
        },
    };

    let mut spec = ctx.base.clone();
    configure_process(
        spec.process_mut().get_or_insert_with(Process::default),
        config,
        &user,
    )?;

    let mut root = Root::default();
    root.set_path(ctx.rootfs.to_path_buf());
    root.set_readonly(Some(config.read_only_rootfs));
    spec.set_root(Some(root));

    // A joined or the host's UTS namespace keeps its hostname.
    spec.set_hostname(match ctx.shared.uts {
        Shared::Own => Some(hostname(config)?),
        Shared::Host | Shared::Join(_) => None,
    });

    let mut mounts = merge_mounts(spec.mounts().as_deref().unwrap_or_default(), &config.mounts)?;
    for (destination, source) in &ctx.network_files {
        if !mounts
            .iter()
            .any(|m| m.destination() == Path::new(destination))
        {
            let mut mount = Mount::default();
            mount.set_destination(PathBuf::from(destination));
            mount.set_typ(Some("bind".into()));
            mount.set_source(Some(source.clone()));
            mount.set_options(Some(vec!["rbind".into(), "rprivate".into()]));
            mounts.push(mount);
        }
    }
    spec.set_mounts(Some(mounts));

    // Filtered as the capabilities the container ends up with allow.
    let bounding: Vec<Capability> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .map(|set| set.into_iter().collect())
        .unwrap_or_default();
    let filter = seccomp::filter(&config.seccomp, &bounding)?;

    let linux = spec.linux_mut().get_or_insert_with(Linux::default);
    linux.set_seccomp(filter);
    if let Some(propagation) = rootfs_propagation(&config.mounts) {
        linux.set_rootfs_propagation(Some(propagation.into()));
    }
    let namespaces = linux.namespaces_mut().get_or_insert_with(Vec::new);
    // In place of the base's network namespace, if it has one.
    let base_network = namespaces
        .iter()
        .position(|ns| ns.typ() == LinuxNamespaceType::Network);
    let path = match &ctx.netns {
        Netns::Join(path) => Some(path.clone()),
        Netns::New | Netns::Host => None,
    };
    match (&ctx.netns, base_network) {
        (Netns::Host, Some(i)) => {
            namespaces.remove(i);
        }
        (Netns::Host, None) => {}
        (_, Some(i)) => {
            namespaces[i].set_path(path);
        }
        (_, None) => {
            let mut network = LinuxNamespace::default();
            network.set_typ(LinuxNamespaceType::Network);
            network.set_path(path);
            namespaces.push(network);
        }
    }
    for (typ, shared) in [
        (LinuxNamespaceType::Ipc, &ctx.shared.ipc),
        (LinuxNamespaceType::Uts, &ctx.shared.uts),
        (LinuxNamespaceType::Pid, &ctx.shared.pid),
    ] {
        // In place of the base's namespace of the kind, if it has one.
        let path = match shared {
            Shared::Join(path) => Some(path.clone()),
            Shared::Own | Shared::Host => None,
        };
        match namespaces.iter().position(|ns| ns.typ() == typ) {
            Some(i) if *shared == Shared::Host => {
                namespaces.remove(i);
            }
            Some(i) => {
                namespaces[i].set_path(path);
            }
            None if *shared == Shared::Host => {}
            None => {
                let mut namespace = LinuxNamespace::default();
                namespace.set_typ(typ);
                namespace.set_path(path);
                namespaces.push(namespace);
            }
        }
    }
    if !config.sysctls.is_empty() {
        linux.set_sysctl(Some(config.sysctls.clone().into_iter().collect()));
    }
    if let Some(paths) = &config.masked_paths {
        linux.set_masked_paths(Some(paths.clone()));
    }
    if let Some(paths) = &config.readonly_paths {
        linux.set_readonly_paths(Some(paths.clone()));
    }
    // The base's other resources (its device rules) stay.
    let limits = resources(&config.resources);
    let linux_resources = linux
        .resources_mut()
        .get_or_insert_with(LinuxResources::default);
    linux_resources.set_memory(*limits.memory());
    linux_resources.set_cpu(limits.cpu().clone());
    linux_resources.set_pids(*limits.pids());
    linux.set_cgroups_path(Some(PathBuf::from(&ctx.cgroup_path)));

    if !config.annotations.is_empty() {
        spec.annotations_mut()
            .get_or_insert_with(HashMap::new)
            .extend(config.annotations.clone());
    }
    Ok(spec)
}

/// The propagation the root filesystem needs for the mounts' own: a mount
/// receiving the host's mounts (`rslave`) or sharing them both ways
/// (`rshared`) only does so if the container's root is not private
/// (libcrun makes it `rprivate` by default, which cuts them off), as runc
/// and containerd set it.
fn rootfs_propagation(mounts: &[model::Mount]) -> Option<&'static str> {
    let has = |flags: &[&str]| {
        mounts
            .iter()
            .any(|m| m.options.iter().any(|o| flags.contains(&o.as_str())))
    };
    if has(&["rshared", "shared"]) {
        Some("rshared")
    } else if has(&["rslave", "slave"]) {
        Some("rslave")
    } else {
        None
    }
}

/// The cgroup limits set in `r`; unset ones stay unset. Also the JSON
/// libcrun's update takes.
pub fn resources(r: &model::Resources) -> LinuxResources {
    // Limits beyond i64 are no limit at all.
    let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut out = LinuxResources::default();
    if r.memory_limit_bytes.is_some()
        || r.memory_reservation_bytes.is_some()
        || r.memory_swap_limit_bytes.is_some()
    {
        let mut memory = LinuxMemory::default();
        memory.set_limit(r.memory_limit_bytes.map(bytes));
        memory.set_reservation(r.memory_reservation_bytes.map(bytes));
        memory.set_swap(r.memory_swap_limit_bytes);
        out.set_memory(Some(memory));
    }
    if r.cpu_shares.is_some()
        || r.cpu_quota_us.is_some()
        || r.cpu_period_us.is_some()
        || r.cpuset_cpus.is_some()
    {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(r.cpu_shares);
        cpu.set_quota(r.cpu_quota_us);
        cpu.set_period(r.cpu_period_us);
        cpu.set_cpus(r.cpuset_cpus.clone());
        out.set_cpu(Some(cpu));
    }
    if let Some(limit) = r.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        out.set_pids(Some(pids));
    }
    out
}

/// Normalises an rlimit name: "nofile", "NOFILE" and "RLIMIT_NOFILE" are
/// "RLIMIT_NOFILE".
pub fn normalize_rlimit(name: &str) -> Result<String> {
    rlimit_type(name).map(|typ| typ.to_string())
}

/// Normalises a capability name: "net_admin", "NET_ADMIN" and
/// "CAP_NET_ADMIN" are "CAP_NET_ADMIN"; "ALL" (any case) stays "ALL".
pub fn normalize_capability(name: &str) -> Result<String> {
    Ok(match capability(name)? {
        CapabilityName::All => "ALL".to_string(),
        CapabilityName::One(cap) => format!("CAP_{cap}"),
    })
}

/// Sets the process: command, terminal, environment, working directory,
/// user, rlimits and capabilities.
fn configure_process(
    process: &mut Process,
    config: &ContainerConfig,
    user: &ResolvedUser,
) -> Result<()> {
    let args: Vec<String> = config.command.iter().chain(&config.args).cloned().collect();
    if args.is_empty() {
        return Err(Error::InvalidArgument("command is empty".into()));
    }
    process.set_args(Some(args));

    process.set_terminal(Some(config.terminal));
    let console_size = if config.terminal {
        let size = BoxBuilder::default()
            .height(CONSOLE_ROWS)
            .width(CONSOLE_COLUMNS)
            .build()
            .map_err(|e| Error::Internal(format!("console size: {e}")))?;
        Some(size)
    } else {
        None
    };
    process.set_console_size(console_size);

    let home = match &user.home {
        Some(home) => home.as_str(),
        None if user.uid == 0 => "/root",
        None => "/",
    };
    let env = environment(process.env().as_deref().unwrap_or_default(), config, home)?;
    process.set_env(Some(env));

    let cwd = config.working_dir.as_deref().unwrap_or("/");
    if !Path::new(cwd).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "working directory {cwd:?} is not an absolute path"
        )));
    }
    process.set_cwd(PathBuf::from(cwd));

    let mut gids = user.additional_gids.clone();
    for gid in &config.additional_gids {
        if !gids.contains(gid) {
            gids.push(*gid);
        }
    }
    let process_user = process.user_mut();
    process_user.set_uid(user.uid);
    process_user.set_gid(user.gid);
    process_user.set_additional_gids((!gids.is_empty()).then_some(gids));

    let rlimits = merge_rlimits(
        process.rlimits().as_deref().unwrap_or_default(),
        &config.rlimits,
    )?;
    process.set_rlimits(Some(rlimits));

    let capabilities = change_capabilities(
        process.capabilities().clone().unwrap_or_default(),
        &config.capabilities,
    )?;
    process.set_capabilities(Some(capabilities));
    if let Some(no_new_privileges) = config.no_new_privileges {
        process.set_no_new_privileges(Some(no_new_privileges));
    }
    Ok(())
}

/// The name of an environment entry ("PATH" of "PATH=/bin").
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(key, _)| key)
}

/// Sets `entry` in `env`, replacing the entry of the same name.
fn set_env(env: &mut Vec<String>, entry: String) {
    match env.iter_mut().find(|e| env_key(e) == env_key(&entry)) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// The base's environment overridden by the config's, with PATH, TERM (on
/// a terminal only) and HOME defaults.
fn environment(base: &[String], config: &ContainerConfig, home: &str) -> Result<Vec<String>> {
    let mut env: Vec<String> = base
        .iter()
        .filter(|e| config.terminal || env_key(e) != "TERM")
        .cloned()
        .collect();
    for entry in &config.env {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() => set_env(&mut env, entry.clone()),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "environment variable {entry:?} is not KEY=VALUE"
                )));
            }
        }
    }
    let mut defaults = vec![format!("PATH={DEFAULT_PATH}"), format!("HOME={home}")];
    if config.terminal {
        defaults.push("TERM=xterm".into());
    }
    for default in defaults {
        if !env.iter().any(|e| env_key(e) == env_key(&default)) {
            env.push(default);
        }
    }
    Ok(env)
}

/// The container's hostname: the config's, or its id made into one.
pub fn hostname(config: &ContainerConfig) -> Result<String> {
    let name = match &config.hostname {
        Some(name) => name.clone(),
        None => config
            .id
            .chars()
            .take(MAX_LABEL_LEN)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect(),
    };
    let invalid = |why: String| {
        Err(Error::InvalidArgument(format!(
            "invalid hostname {name:?}: {why}"
        )))
    };
    if name.len() > MAX_HOSTNAME_LEN {
        return invalid(format!("longer than {MAX_HOSTNAME_LEN} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return invalid("empty label".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return invalid(format!("label longer than {MAX_LABEL_LEN} characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return invalid(format!(
                "character {c:?} not allowed (only A-Z a-z 0-9 - .)"
            ));
        }
    }
    Ok(name)
}

/// The base's mounts plus the config's; a config mount on the destination
/// of a base mount takes its place.
fn merge_mounts(base: &[Mount], extra: &[model::Mount]) -> Result<Vec<Mount>> {
    let mut mounts = base.to_vec();
    for m in extra {
        let mount = oci_mount(m)?;
        match mounts[..base.len()]
            .iter_mut()
            .find(|b| b.destination() == mount.destination())
        {
            Some(slot) => *slot = mount,
            None => mounts.push(mount),
        }
    }
    Ok(mounts)
}

/// Whether `option` sets mount propagation.
fn is_propagation(option: &str) -> bool {
    matches!(
        option,
        "private"
            | "rprivate"
            | "shared"
            | "rshared"
            | "slave"
            | "rslave"
            | "unbindable"
            | "runbindable"
    )
}

/// The OCI mount of a config mount. An empty type with an absolute source
/// is a recursive, private bind mount, whose source must exist.
fn oci_mount(m: &model::Mount) -> Result<Mount> {
    if !Path::new(&m.destination).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "mount destination {:?} is not an absolute path",
            m.destination
        )));
    }
    let source = Path::new(&m.source);
    let bind = m.is_bind();
    let mut options = m.options.clone();
    if bind {
        if !source.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "mount on {}: bind source {:?} is not an absolute path",
                m.destination, m.source
            )));
        }
        match std::fs::metadata(source) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "bind mount source {} does not exist",
                    source.display()
                )));
            }
            Err(e) => {
                return Err(Error::io(
                    format!("bind mount source {}", source.display()),
                    e,
                ));
            }
        }
        if !options.iter().any(|o| o == "bind" || o == "rbind") {
            options.insert(0, "rbind".into());
        }
        if !options.iter().any(|o| is_propagation(o)) {
            options.push("rprivate".into());
        }
    }
    if m.read_only && !options.iter().any(|o| o == "ro") {
        options.push("ro".into());
    }

    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from(&m.destination));
    mount.set_typ(Some(if bind { "bind".into() } else { m.kind.clone() }));
    mount.set_source((!m.source.is_empty()).then(|| PathBuf::from(&m.source)));
    mount.set_options((!options.is_empty()).then_some(options));
    Ok(mount)
}

/// The rlimit type named `name` in any of the accepted forms.
fn rlimit_type(name: &str) -> Result<PosixRlimitType> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    full.parse()
        .map_err(|_| Error::InvalidArgument(format!("unknown rlimit {name:?}")))
}

/// The resource `getrlimit` knows `typ` as.
fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// An rlimit of the spec.
fn posix_rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> Result<PosixRlimit> {
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()
        .map_err(|e| Error::Internal(format!("rlimit {typ}: {e}")))
}

/// The base's rlimits, clamped to this process's hard limits (which the
/// container cannot exceed), with the config's over them.
fn merge_rlimits(base: &[PosixRlimit], extra: &[model::Rlimit]) -> Result<Vec<PosixRlimit>> {
    let mut rlimits = Vec::with_capacity(base.len() + extra.len());
    for r in base {
        let (_, max) = getrlimit(resource(r.typ()))
            .map_err(|e| Error::io(format!("getrlimit {}", r.typ()), e.into()))?;
        let hard = r.hard().min(max);
        rlimits.push(posix_rlimit(r.typ(), r.soft().min(hard), hard)?);
    }
    for r in extra {
        let typ = rlimit_type(&r.kind)?;
        if r.soft > r.hard {
            return Err(Error::InvalidArgument(format!(
                "rlimit {}: soft limit {} is above hard limit {}",
                r.kind, r.soft, r.hard
            )));
        }
        let rlimit = posix_rlimit(typ, r.soft, r.hard)?;
        match rlimits.iter_mut().find(|b| b.typ() == typ) {
            Some(slot) => *slot = rlimit,
            None => rlimits.push(rlimit),
        }
    }
    Ok(rlimits)
}

/// A capability name of the config.
enum CapabilityName {
    /// "ALL": every capability.
    All,
    /// One capability.
    One(Capability),
}

/// Parses a capability name in any of the accepted forms.
fn capability(name: &str) -> Result<CapabilityName> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(CapabilityName::All);
    }
    upper
        .strip_prefix("CAP_")
        .unwrap_or(&upper)
        .parse()
        .map(CapabilityName::One)
        .map_err(|_| Error::InvalidArgument(format!("unknown capability {name:?}")))
}

/// Applies `changes` to the bounding, effective and permitted sets of
/// `caps` as Docker does: "ALL" in `add` gives every capability but those
/// dropped; "ALL" in `drop` keeps only those added; otherwise the dropped
/// ones go and the added ones come. The ambient and inheritable sets are
/// never extended, only cut down to the new permitted set.
fn change_capabilities(
    mut caps: LinuxCapabilities,
    changes: &CapabilityChanges,
) -> Result<LinuxCapabilities> {
    let parse = |names: &[String]| -> Result<(bool, Capabilities)> {
        let mut all = false;
        let mut set = Capabilities::new();
        for name in names {
            match capability(name)? {
                CapabilityName::All => all = true,
                CapabilityName::One(cap) => {
                    set.insert(cap);
                }
            }
        }
        Ok((all, set))
    };
    let (add_all, add) = parse(&changes.add)?;
    let (drop_all, drop) = parse(&changes.drop)?;
    let change = |set: &Option<Capabilities>| -> Capabilities {
        if add_all {
            held_capabilities()
                .into_iter()
                .filter(|c| !drop.contains(c))
                .collect()
        } else if drop_all {
            add.clone()
        } else {
            set.iter()
                .flatten()
                .filter(|c| !drop.contains(c))
                .chain(&add)
                .copied()
                .collect()
        }
    };
    let bounding = change(caps.bounding());
    let effective = change(caps.effective());
    let permitted = change(caps.permitted());
    let cut = |set: &Option<Capabilities>| {
        set.as_ref().map(|s| {
            s.intersection(&permitted)
                .copied()
                .collect::<Capabilities>()
        })
    };
    let ambient = cut(caps.ambient());
    let inheritable = cut(caps.inheritable());
    caps.set_bounding(Some(bounding));
    caps.set_effective(Some(effective));
    caps.set_ambient(ambient);
    caps.set_inheritable(inheritable);
    caps.set_permitted(Some(permitted));
    Ok(caps)
}

#[cfg(test)]
mod tests;

/// The process of an exec: the container's own process (capabilities,
/// rlimits, security settings) with the exec's command, environment,
/// working directory, user and terminal. `root` is the container's root as
/// the agent sees it (for user names). `p` is valid
/// ([`model::ProcessSpec::validate`]).
pub fn exec_process(
    container: &Spec,
    root: &Path,
    p: &model::ProcessSpec,
    terminal_size: Option<(u16, u16)>,
) -> Result<Process> {
    let mut process = container.process().clone().unwrap_or_default();
    process.set_args(Some(p.command.clone()));
    let mut env: Vec<String> = process
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| p.tty || env_key(e) != "TERM")
        .collect();
    for entry in &p.env {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() => set_env(&mut env, entry.clone()),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "environment variable {entry:?} is not KEY=VALUE"
                )));
            }
        }
    }
    if p.tty && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &p.working_dir {
        if !Path::new(cwd).is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "working directory {cwd:?} is not an absolute path"
            )));
        }
        process.set_cwd(PathBuf::from(cwd));
    }
    if let Some(spec) = &p.user {
        let user = user::resolve(root, spec)?;
        let process_user = process.user_mut();
        process_user.set_uid(user.uid);
        process_user.set_gid(user.gid);
        process_user.set_additional_gids(
            (!user.additional_gids.is_empty()).then_some(user.additional_gids),
        );
    }
    process.set_terminal(Some(p.tty));
    let console_size = if p.tty {
        let (rows, cols) = terminal_size.unwrap_or((CONSOLE_ROWS as u16, CONSOLE_COLUMNS as u16));
        Some(
            BoxBuilder::default()
                .height(u64::from(rows))
                .width(u64::from(cols))
                .build()
                .map_err(|e| Error::Internal(format!("console size: {e}")))?,
        )
    } else {
        None
    };
    process.set_console_size(console_size);
    Ok(process)
}

/// Sets the limits of `update` (memory, CPU, pids) in a spec's resources,
/// leaving the rest (such as device rules) as they are.
pub fn apply_resources(spec: &mut Spec, update: &model::Resources) {
    let wanted = resources(update);
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut current = linux.resources().clone().unwrap_or_default();
    current.set_memory(*wanted.memory());
    current.set_cpu(wanted.cpu().clone());
    current.set_pids(*wanted.pids());
    linux.set_resources(Some(current));
}
