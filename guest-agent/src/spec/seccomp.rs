//! The seccomp filter of a container, as the OCI `linux.seccomp` object
//! libcrun loads (libseccomp compiles it to BPF in the container's setup).
//!
//! * [`Seccomp::Default`]: the profile Docker and Podman users know. Every
//!   system call not listed fails with EPERM; the listed ones are what
//!   ordinary programs use. Calls that only a capability makes safe
//!   (`mount`, `reboot`, `ptrace` of other processes, kernel modules, the
//!   clock …) are allowed only to a container that has that capability in
//!   its bounding set (so `--cap-add SYS_ADMIN` brings `mount` back, as in
//!   Docker); namespaces cannot be made by `clone` without CAP_SYS_ADMIN,
//!   `clone3` then fails with ENOSYS so that libc falls back to `clone`;
//!   `personality` takes only the harmless personas.
//! * [`Seccomp::Unconfined`]: no filter.
//! * [`Seccomp::Custom`]: a profile as JSON, either OCI's `linux.seccomp`
//!   object or a Docker/Podman `seccomp.json` (whose `archMap` and
//!   per-call `includes`/`excludes` of capabilities, architectures and
//!   kernel versions are resolved here for this container, as Docker does).
//!
//! Names libseccomp does not know on this host are skipped by libcrun (with
//! a warning in the monitor's log), so one profile serves old and new
//! kernels alike.

use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::Seccomp;

/// EPERM: what a call the default profile does not allow returns.
const EPERM: u32 = 1;
/// ENOSYS: what `clone3` returns without CAP_SYS_ADMIN (libc then uses
/// `clone`, whose flags the filter can see).
const ENOSYS: u32 = 38;
/// The namespace flags of `clone` (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
/// NEWUSER, NEWPID, NEWNET) a container without CAP_SYS_ADMIN cannot use.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// The filter of a container whose bounding capability set is `caps`;
/// `None` for no filter. A custom profile that is not valid JSON of
/// either form is `InvalidArgument`.
pub fn filter(profile: &Seccomp, caps: &[Capability]) -> Result<Option<LinuxSeccomp>> {
    let host = Host::this();
    match profile {
        Seccomp::Unconfined => Ok(None),
        Seccomp::Default => default_filter(caps, &host).map(Some),
        Seccomp::Custom(json) => {
            let profile: Profile = serde_json::from_str(json).map_err(|e| {
                Error::InvalidArgument(format!(
                    "seccomp profile: not a profile in OCI or Docker form: {e}"
                ))
            })?;
            resolve(profile, caps, &host).map(Some)
        }
    }
}

/// The default profile's filter for bounding set `caps`. Building it (the
/// profile's rules and their 360-odd syscall names turned into JSON and
/// back) was a few percent of the agent's CPU per create; it depends only on the capabilities and the
/// host, so the filters made are kept, one per capability set seen (a
/// handful in practice: each set a client asks for).
fn default_filter(caps: &[Capability], host: &Host) -> Result<LinuxSeccomp> {
    type Made = Vec<(Vec<Capability>, LinuxSeccomp)>;
    static MADE: std::sync::Mutex<Made> = std::sync::Mutex::new(Vec::new());
    /// More sets than any real use has: beyond it, filters are built each time.
    const KEPT: usize = 64;
    let mut key = caps.to_vec();
    key.sort_unstable_by_key(|c| c.to_string());
    key.dedup();
    let made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, filter)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(filter.clone());
    }
    drop(made);
    let filter = resolve(default_profile(), caps, host)?;
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if made.len() < KEPT && !made.iter().any(|(k, _)| *k == key) {
        made.push((key, filter.clone()));
    }
    Ok(filter)
}

/// A seccomp profile in Docker's form, of which OCI's `linux.seccomp` is
/// a subset.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    /// Docker: the native architecture and the ones it also runs.
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<String>,
    listener_path: Option<String>,
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

/// One rule: the calls it names, what they do, and (Docker) when it
/// applies.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older one-name form.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

/// Docker's conditions on a rule: capabilities (all of `caps` for
/// `includes`, any for `excludes`), architectures (Go's names: amd64,
/// arm64 …) and, in `includes`, the lowest kernel version.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What the rules are resolved against.
#[derive(Debug, Clone)]
struct Host {
    /// libseccomp's name of the native architecture.
    native: &'static str,
    /// Go's name of it, as Docker profiles use.
    go_arch: &'static str,
    /// (major, minor) of the running kernel.
    kernel: (u32, u32),
}

impl Host {
    fn this() -> Host {
        let (native, go_arch) = match std::env::consts::ARCH {
            "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
            "x86" => ("SCMP_ARCH_X86", "386"),
            "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
            "arm" => ("SCMP_ARCH_ARM", "arm"),
            "riscv64" => ("SCMP_ARCH_RISCV64", "riscv64"),
            "s390x" => ("SCMP_ARCH_S390X", "s390x"),
            "powerpc64" => ("SCMP_ARCH_PPC64LE", "ppc64le"),
            _ => ("SCMP_ARCH_NATIVE", std::env::consts::ARCH),
        };
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Host {
            native,
            go_arch,
            kernel: version(&release).unwrap_or((0, 0)),
        }
    }
}

/// (major, minor) of "6.1.0-18-cloud-amd64" or "4.8".
fn version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The OCI filter of `profile` for a container with capabilities `caps`
/// on `host`.
fn resolve(profile: Profile, caps: &[Capability], host: &Host) -> Result<LinuxSeccomp> {
    let has = |name: &str| {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        bare.parse::<Capability>().is_ok_and(|c| caps.contains(&c))
    };
    let architectures = match profile
        .arch_map
        .iter()
        .find(|m| m.architecture == host.native)
    {
        Some(map) => std::iter::once(map.architecture.clone())
            .chain(map.sub_architectures.iter().cloned())
            .collect(),
        None => profile.architectures,
    };
    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let (inc, exc) = (&rule.includes, &rule.excludes);
        let applies = inc.caps.iter().all(|c| has(c))
            && !exc.caps.iter().any(|c| has(c))
            && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == host.go_arch))
            && !exc.arches.iter().any(|a| a == host.go_arch)
            && inc
                .min_kernel
                .as_deref()
                .is_none_or(|min| version(min).is_some_and(|min| host.kernel >= min));
        if !applies {
            continue;
        }
        let names: Vec<String> = rule.names.into_iter().chain(rule.name).collect();
        if names.is_empty() {
            continue;
        }
        let mut call = json!({ "names": names, "action": rule.action });
        if let Some(errno) = rule.errno_ret {
            call["errnoRet"] = errno.into();
        }
        if !rule.args.is_empty() {
            call["args"] = rule.args.into();
        }
        syscalls.push(call);
    }
    let mut seccomp = json!({
        "defaultAction": profile.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.default_errno_ret {
        seccomp["defaultErrnoRet"] = errno.into();
    }
    if !profile.flags.is_empty() {
        seccomp["flags"] = profile.flags.into();
    }
    if let Some(path) = profile.listener_path {
        seccomp["listenerPath"] = path.into();
    }
    if let Some(metadata) = profile.listener_metadata {
        seccomp["listenerMetadata"] = metadata.into();
    }
    serde_json::from_value(seccomp)
        .map_err(|e| Error::InvalidArgument(format!("seccomp profile: {e}")))
}

/// Calls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Tracing and reading one's own children (allowed since kernel 4.8
    // checks these against the ptrace access mode).
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
];

/// Calls a capability makes safe, allowed when the container has it.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("SYS_BOOT", &["reboot"]),
    ("SYS_CHROOT", &["chroot"]),
    (
        "SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("SYS_PACCT", &["acct"]),
    ("SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise"]),
    ("SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("SYS_TTY_CONFIG", &["vhangup"]),
    (
        "SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("SYSLOG", &["syslog"]),
    ("DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("BPF", &["bpf"]),
    ("PERFMON", &["perf_event_open"]),
];

/// Calls of one architecture family (Go's names).
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "386"], &["arch_prctl", "modify_ldt"]),
    (
        &["arm64", "arm"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (
        &["s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// The architectures a native one also runs, as libseccomp names them.
const ARCH_MAP: &[(&str, &[&str])] = &[
    ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", &[]),
    ("SCMP_ARCH_PPC64LE", &[]),
];

/// The harmless `personality(2)` personas: PER_LINUX, PER_LINUX32,
/// UNAME26, their combination, and the query (0xffffffff).
const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The default profile, in Docker's form (resolved like any profile).
fn default_profile() -> Profile {
    let allow = |names: &[&str]| Rule {
        names: names.iter().map(|n| n.to_string()).collect(),
        action: "SCMP_ACT_ALLOW".into(),
        ..Default::default()
    };
    let with_caps = |caps: &[&str], mut rule: Rule| {
        rule.includes.caps = caps.iter().map(|c| format!("CAP_{c}")).collect();
        rule
    };
    let without_caps = |caps: &[&str], mut rule: Rule| {
        rule.excludes.caps = caps.iter().map(|c| format!("CAP_{c}")).collect();
        rule
    };
    let mut rules = vec![allow(ALLOWED)];
    rules.extend(PERSONAS.iter().map(|persona| Rule {
        args: vec![json!({ "index": 0, "value": persona, "op": "SCMP_CMP_EQ" })],
        ..allow(&["personality"])
    }));
    for (arches, names) in BY_ARCH {
        let mut rule = allow(names);
        rule.includes.arches = arches.iter().map(|a| a.to_string()).collect();
        rules.push(rule);
    }
    for (cap, names) in BY_CAPABILITY {
        rules.push(with_caps(&[cap], allow(names)));
    }
    // Without CAP_SYS_ADMIN: threads and processes, no namespaces (the
    // flags are clone's second argument on s390).
    let index = if std::env::consts::ARCH.starts_with("s390") {
        1
    } else {
        0
    };
    rules.push(without_caps(
        &["SYS_ADMIN"],
        Rule {
            args: vec![json!({
                "index": index, "value": CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"
            })],
            ..allow(&["clone"])
        },
    ));
    rules.push(without_caps(
        &["SYS_ADMIN"],
        Rule {
            names: vec!["clone3".into()],
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: Some(ENOSYS),
            ..Default::default()
        },
    ));
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        architectures: Vec::new(),
        arch_map: ARCH_MAP
            .iter()
            .map(|(native, subs)| ArchMap {
                architecture: native.to_string(),
                sub_architectures: subs.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
        flags: Vec::new(),
        listener_path: None,
        listener_metadata: None,
        syscalls: rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompAction;

    fn host() -> Host {
        Host {
            native: "SCMP_ARCH_X86_64",
            go_arch: "amd64",
            kernel: (6, 1),
        }
    }

    /// The calls a filter allows (unconditionally or not).
    fn allowed(filter: &LinuxSeccomp) -> Vec<String> {
        filter
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow)
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn each_capability_set_keeps_its_own_default_filter() {
        let host = Host::this();
        let plain = [Capability::Chown, Capability::Kill];
        let admin = [Capability::Kill, Capability::SysAdmin, Capability::Chown];
        for caps in [&plain[..], &admin[..], &plain[..], &admin[..]] {
            let kept = filter(&Seccomp::Default, caps).unwrap().unwrap();
            assert_eq!(kept, resolve(default_profile(), caps, &host).unwrap());
        }
        // The same set in another order is the same filter.
        let reordered = [Capability::Kill, Capability::Chown];
        assert_eq!(
            filter(&Seccomp::Default, &reordered).unwrap(),
            filter(&Seccomp::Default, &plain).unwrap()
        );
        assert!(
            allowed(&filter(&Seccomp::Default, &admin).unwrap().unwrap())
                .iter()
                .any(|c| c == "mount")
        );
        assert!(
            !allowed(&filter(&Seccomp::Default, &plain).unwrap().unwrap())
                .iter()
                .any(|c| c == "mount")
        );
    }

    #[test]
    fn the_default_profile_denies_what_only_capabilities_make_safe() {
        let caps = [Capability::Chown, Capability::SysChroot, Capability::Kill];
        let filter = resolve(default_profile(), &caps, &host()).unwrap();
        assert_eq!(filter.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(filter.default_errno_ret(), Some(EPERM));
        let value = serde_json::to_value(&filter).unwrap();
        assert_eq!(
            value["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let allowed = allowed(&filter);
        for call in [
            "read",
            "execve",
            "chroot",
            "arch_prctl",
            "personality",
            "clone",
        ] {
            assert!(allowed.iter().any(|a| a == call), "{call} allowed");
        }
        for call in [
            "mount",
            "unshare",
            "reboot",
            "init_module",
            "clock_settime",
            "set_tls",
            "keyctl",
        ] {
            assert!(!allowed.iter().any(|a| a == call), "{call} denied");
        }
        // clone only without namespace flags; clone3 answers ENOSYS.
        let clone = filter
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone".to_string()])
            .unwrap();
        assert_eq!(clone.args().as_ref().unwrap()[0].value(), CLONE_NAMESPACES);
        let clone3 = filter
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone3".to_string()])
            .unwrap();
        assert_eq!(
            (clone3.action(), clone3.errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(ENOSYS))
        );
    }

    #[test]
    fn capabilities_bring_their_calls_back() {
        let caps = [Capability::SysAdmin, Capability::SysTime];
        let filter = resolve(default_profile(), &caps, &host()).unwrap();
        let allowed = allowed(&filter);
        for call in ["mount", "unshare", "setns", "clone3", "clock_settime"] {
            assert!(allowed.iter().any(|a| a == call), "{call}");
        }
        assert!(
            !filter
                .syscalls()
                .iter()
                .flatten()
                .any(|s| s.errno_ret() == Some(ENOSYS)),
            "no clone3 refusal with CAP_SYS_ADMIN"
        );
    }

    #[test]
    fn custom_profiles_in_oci_and_docker_form() {
        let oci = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
        let filter = filter_on(oci, &[]);
        assert_eq!(filter.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(filter.syscalls().as_ref().unwrap()[0].errno_ret(), Some(13));

        let docker = r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
              {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
              {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
              {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
              {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
              {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
              {"names": ["futex_waitv"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}},
              {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]}"#;
        let filter = filter_on(docker, &[]);
        let value = serde_json::to_value(&filter).unwrap();
        assert_eq!(
            value["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(
            allowed(&filter),
            ["read", "write", "arch_prctl", "ptrace", "kcmp"]
        );
        let filter = filter_on(docker, &[Capability::SysAdmin]);
        assert_eq!(
            allowed(&filter),
            ["read", "write", "mount", "arch_prctl", "ptrace"]
        );

        for bad in ["{", "{}", r#"{"defaultAction": "SCMP_ACT_NOPE"}"#] {
            let parsed: std::result::Result<Profile, _> = serde_json::from_str(bad);
            let err = parsed
                .map_err(|e| Error::InvalidArgument(e.to_string()))
                .and_then(|p| resolve(p, &[], &host()));
            assert!(matches!(err, Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    fn filter_on(json: &str, caps: &[Capability]) -> LinuxSeccomp {
        resolve(serde_json::from_str(json).unwrap(), caps, &host()).unwrap()
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(version("6.1.0-18-cloud-amd64"), Some((6, 1)));
        assert_eq!(version("4.8"), Some((4, 8)));
        assert_eq!(version("x"), None);
    }
}
