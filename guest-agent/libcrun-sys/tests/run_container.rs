//! Real containers through libcrun-sys alone (no crun binary): a busybox
//! root filesystem built from Debian's busybox-static, run in the
//! foreground and through create/start, with stdout and stderr captured.
//!
//! libcrun forks the calling process, so these tests run on the main
//! thread of a single-threaded process (a custom harness, libtest-mimic,
//! forced to one thread). On a hybrid cgroup host the process first moves
//! to a private mount namespace without the cgroup2 mount, as the agent
//! does; on v1 and v2 hosts nothing changes.

use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use integration::BusyboxRootfs;
use libcrun_sys::{Container, Context, Error, cgroup};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

/// A bundle directory with a busybox rootfs, deleted on drop.
struct Bundle {
    rootfs: BusyboxRootfs,
}

impl Bundle {
    fn new() -> Result<Bundle, Failed> {
        Ok(Bundle {
            rootfs: BusyboxRootfs::new()?,
        })
    }

    fn path(&self) -> &Path {
        self.rootfs.bundle()
    }

    /// A runtime spec: libcrun's default (`crun spec`) with our command, no
    /// terminal and a fixed hostname.
    fn spec(&self, args: &[&str]) -> Result<String, Failed> {
        let mut spec: Value = serde_json::from_str(&libcrun_sys::default_spec(false)?)?;
        spec["process"]["args"] = json!(args);
        spec["process"]["terminal"] = json!(false);
        // libcrun (unlike crun) does not chdir to the bundle: absolute path.
        spec["root"] = json!({"path": self.rootfs.path(), "readonly": true});
        spec["hostname"] = json!("libcrun-sys-test");
        Ok(spec.to_string())
    }
}

/// A state root for libcrun, deleted on drop.
fn state_root() -> Result<tempfile::TempDir, Failed> {
    Ok(tempfile::Builder::new()
        .prefix("libcrun-sys-state")
        .tempdir()?)
}

/// Points fds 1 and 2 at files while `f` runs, then restores them, and
/// returns `f`'s result with what was written to each.
fn capture<T>(f: impl FnOnce() -> T) -> Result<(T, String, String), Failed> {
    let out = tempfile::tempfile()?;
    let err = tempfile::tempfile()?;
    // SAFETY: plain fd juggling on fds this function owns or restores.
    let saved: [RawFd; 2] = unsafe { [libc::dup(1), libc::dup(2)] };
    if saved.contains(&-1) {
        return Err("dup failed".into());
    }
    // SAFETY: as above.
    unsafe {
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(err.as_raw_fd(), 2);
    }
    let result = f();
    // SAFETY: restores the saved fds and closes the copies.
    unsafe {
        libc::dup2(saved[0], 1);
        libc::dup2(saved[1], 2);
        libc::close(saved[0]);
        libc::close(saved[1]);
    }
    let read = |mut f: fs::File| -> std::io::Result<String> {
        use std::io::{Read, Seek};
        f.rewind()?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
    };
    Ok((result, read(out)?, read(err)?))
}

fn check_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), Failed> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}").into())
    }
}

/// Runs `args` in the foreground; returns (exit status, stdout, stderr).
fn run(args: &[&str]) -> Result<(i32, String, String), Failed> {
    let bundle = Bundle::new()?;
    run_spec(&bundle, &bundle.spec(args)?)
}

/// Runs a spec in the foreground; returns (exit status, stdout, stderr).
fn run_spec(bundle: &Bundle, spec: &str) -> Result<(i32, String, String), Failed> {
    let root = state_root()?;
    let mut container = Container::from_json(spec)?;
    let context = Context::builder(root.path())
        .bundle(bundle.path())
        .build()?;
    let (status, out, err) = capture(|| context.run("fg", &mut container))?;
    let status = status.map_err(|e| format!("run failed: {e} (stderr: {err})"))?;
    // A foreground run leaves no state behind.
    check_eq("containers left", context.list()?, Vec::<String>::new())?;
    Ok((status, out, err))
}

fn echo_hello() -> Result<(), Failed> {
    let (status, out, _) = run(&["echo", "hello from busybox"])?;
    check_eq("exit status", status, 0)?;
    check_eq("stdout", out.as_str(), "hello from busybox\n")
}

fn stdout_stderr_and_exit_code() -> Result<(), Failed> {
    let (status, out, err) = run(&["sh", "-c", "echo out; echo err >&2; hostname; exit 3"])?;
    check_eq("exit status", status, 3)?;
    check_eq("stdout", out.as_str(), "out\nlibcrun-sys-test\n")?;
    check_eq("stderr", err.as_str(), "err\n")
}

fn killed_by_signal() -> Result<(), Failed> {
    // The container's init ignores signals sent from inside its pid
    // namespace, but not the kernel's: a CPU time limit of one second ends
    // a busy loop with SIGKILL.
    let bundle = Bundle::new()?;
    let mut spec: Value =
        serde_json::from_str(&bundle.spec(&["sh", "-c", "while :; do :; done"])?)?;
    spec["process"]["rlimits"] = json!([{"type": "RLIMIT_CPU", "soft": 1, "hard": 1}]);
    let (status, _, _) = run_spec(&bundle, &spec.to_string())?;
    check_eq("exit status", status, 128 + libc::SIGKILL)
}

fn create_start_kill_delete() -> Result<(), Failed> {
    let bundle = Bundle::new()?;
    let root = state_root()?;
    let context = Context::builder(root.path())
        .bundle(bundle.path())
        .build()?;
    let mut container =
        Container::from_json(&bundle.spec(&["sh", "-c", "echo started; exec sleep 60"])?)?;
    let (created, out, err) = capture(|| context.create("c1", &mut container))?;
    created.map_err(|e| format!("create failed: {e} (stderr: {err})"))?;
    let state = context.state("c1")?;
    check_eq("status after create", state.status.as_str(), "created")?;
    check_eq("listed", context.list()?, vec!["c1".to_string()])?;
    if state.pid <= 0 {
        return Err(format!("no pid after create: {state:?}").into());
    }
    check_eq("output before start", out.as_str(), "")?;

    context.start("c1")?;
    check_eq(
        "status after start",
        context.state("c1")?.status.as_str(),
        "running",
    )?;
    check_eq("pids", context.pids("c1", true)?, vec![state.pid])?;

    context.kill("c1", "SIGKILL")?;
    // The init process is our child: reap it and read its status.
    let mut wstatus = 0;
    // SAFETY: waits for our own child.
    let reaped = unsafe { libc::waitpid(state.pid, &mut wstatus, 0) };
    check_eq("reaped pid", reaped, state.pid)?;
    check_eq("killed by", libc::WTERMSIG(wstatus), libc::SIGKILL)?;
    check_eq(
        "status after kill",
        context.state("c1")?.status.as_str(),
        "stopped",
    )?;

    context.delete("c1", false)?;
    check_eq(
        "containers after delete",
        context.list()?,
        Vec::<String>::new(),
    )
}

fn errors_carry_libcrun_message() -> Result<(), Failed> {
    let root = state_root()?;
    let context = Context::builder(root.path()).build()?;
    match context.start("missing") {
        Err(Error::Libcrun { errno, message }) => {
            check_eq("errno", errno, libc::ENOENT)?;
            if !message.contains("missing") {
                return Err(format!("message does not name the container: {message}").into());
            }
        }
        other => return Err(format!("start of a missing container: {other:?}").into()),
    }
    match Container::from_json("{\"ociVersion\": 1") {
        Err(Error::Libcrun { message, .. }) if !message.is_empty() => Ok(()),
        other => Err(format!("bad JSON: {other:?}").into()),
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("these tests run real containers and need root");
        std::process::exit(1);
    }
    let prep = cgroup::prepare_process().expect("preparing cgroups for libcrun");
    eprintln!(
        "cgroups: host {:?}, libcrun sees {:?}{}",
        prep.host_mode,
        prep.effective_mode,
        if prep.private_mount_namespace {
            " (private mount namespace)"
        } else {
            ""
        }
    );
    let mut args = Arguments::from_args();
    // libcrun forks: every test runs on this (the only) thread.
    args.test_threads = Some(1);
    let tests = vec![
        Trial::test("echo_hello", echo_hello),
        Trial::test("stdout_stderr_and_exit_code", stdout_stderr_and_exit_code),
        Trial::test("killed_by_signal", killed_by_signal),
        Trial::test("create_start_kill_delete", create_start_kill_delete),
        Trial::test("errors_carry_libcrun_message", errors_carry_libcrun_message),
    ];
    libtest_mimic::run(&args, tests).exit();
}
