//! The libcrun context and the calls made through it.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::container::{Container, path_to_cstring};
use crate::error::{Error, Result};
use crate::ffi;

/// Serializes calls into libcrun, which keeps process-wide state.
static LIBCRUN: Mutex<()> = Mutex::new(());

/// libcrun's output handler and its argument, once [`log_to_file`] set them.
struct OutputHandler {
    handler: ffi::crun_output_handler,
    arg: usize,
}

static OUTPUT: OnceLock<OutputHandler> = OnceLock::new();

/// Sends libcrun's own warnings and errors to a file (appended) instead of
/// the process's stderr, which a container may share. Affects the whole
/// process; only the first call takes effect.
pub fn log_to_file(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut spec = b"file:".to_vec();
    spec.extend_from_slice(path.as_os_str().as_bytes());
    let spec = CString::new(spec).map_err(|_| Error::NulByte { what: "log path" })?;
    let mut handler: ffi::crun_output_handler = None;
    let mut arg: *mut std::ffi::c_void = std::ptr::null_mut();
    let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
    let _guard = lock();
    if OUTPUT.get().is_some() {
        return Ok(());
    }
    // SAFETY: libcrun opens the file and installs its handler globally; the
    // out pointers are valid.
    let ret = unsafe {
        ffi::libcrun_init_logging(
            &mut handler,
            &mut arg,
            std::ptr::null(),
            spec.as_ptr(),
            &mut err,
        )
    };
    check(ret, err)?;
    let _ = OUTPUT.set(OutputHandler {
        handler,
        arg: arg as usize,
    });
    Ok(())
}

/// Takes the libcrun lock (a poisoned lock is still usable: libcrun's state
/// is not left half-updated by a Rust panic).
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    LIBCRUN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options shared by every libcrun call, like `crun`'s global flags.
///
/// Built with [`Context::builder`]. The context owns its strings; each call
/// hands libcrun a fresh `libcrun_context_t` pointing at them, because
/// libcrun writes to the context during some calls.
#[derive(Debug, Clone)]
pub struct Context {
    state_root: CString,
    bundle: Option<CString>,
    console_socket: Option<CString>,
    pid_file: Option<CString>,
    notify_socket: Option<CString>,
    flags: Flags,
}

/// The options of a context that are not paths.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    preserve_fds: u32,
    systemd_cgroup: bool,
    force_no_cgroup: bool,
    no_new_keyring: bool,
    no_pivot: bool,
    no_subreaper: bool,
    detach: bool,
}

/// Builds a [`Context`].
#[derive(Debug, Clone, Default)]
pub struct ContextBuilder {
    state_root: PathBuf,
    bundle: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    notify_socket: Option<PathBuf>,
    flags: Flags,
}

impl ContextBuilder {
    /// The bundle directory, recorded in the container's state. Unlike the
    /// `crun` command, libcrun does not change to this directory: a relative
    /// `root.path` in the spec is resolved against the caller's working
    /// directory, so specs should use an absolute one.
    pub fn bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.bundle = Some(path.into());
        self
    }

    /// A Unix socket that receives the pseudo-terminal master of a
    /// container whose spec asks for a terminal.
    pub fn console_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.console_socket = Some(path.into());
        self
    }

    /// A file libcrun writes the container's pid to.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// An sd_notify socket path passed to the container.
    pub fn notify_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.notify_socket = Some(path.into());
        self
    }

    /// Passes file descriptors 3 .. 3+n to the container.
    pub fn preserve_fds(mut self, n: u32) -> Self {
        self.flags.preserve_fds = n;
        self
    }

    /// Manages cgroups through systemd instead of cgroupfs (only when
    /// libcrun was built with systemd support).
    pub fn systemd_cgroup(mut self, yes: bool) -> Self {
        self.flags.systemd_cgroup = yes;
        self
    }

    /// Creates no cgroup for the container.
    pub fn force_no_cgroup(mut self, yes: bool) -> Self {
        self.flags.force_no_cgroup = yes;
        self
    }

    /// Does not create a new session keyring for the container.
    pub fn no_new_keyring(mut self, yes: bool) -> Self {
        self.flags.no_new_keyring = yes;
        self
    }

    /// Uses chroot-like `MS_MOVE` instead of `pivot_root` (for a rootfs on
    /// a ramfs).
    pub fn no_pivot(mut self, yes: bool) -> Self {
        self.flags.no_pivot = yes;
        self
    }

    /// Does not make the caller a child subreaper.
    pub fn no_subreaper(mut self, yes: bool) -> Self {
        self.flags.no_subreaper = yes;
        self
    }

    /// For [`Context::run`]: return once the container runs instead of
    /// waiting for it.
    pub fn detach(mut self, yes: bool) -> Self {
        self.flags.detach = yes;
        self
    }

    /// Builds the context; fails if a path holds a NUL byte.
    pub fn build(self) -> Result<Context> {
        let opt =
            |p: &Option<PathBuf>, what| p.as_deref().map(|p| path_to_cstring(p, what)).transpose();
        Ok(Context {
            state_root: path_to_cstring(&self.state_root, "state root")?,
            bundle: opt(&self.bundle, "bundle")?,
            console_socket: opt(&self.console_socket, "console socket")?,
            pid_file: opt(&self.pid_file, "pid file")?,
            notify_socket: opt(&self.notify_socket, "notify socket")?,
            flags: self.flags,
        })
    }
}

/// What libcrun records about a container (`crun state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// "created", "running", "paused" or "stopped".
    pub status: String,
    /// The init process's pid (0 once it is gone).
    pub pid: i32,
    /// The bundle directory.
    pub bundle: Option<String>,
    /// The root filesystem path.
    pub rootfs: Option<String>,
    /// The container's cgroup path (relative to the cgroup mount).
    pub cgroup_path: Option<String>,
    /// When it was created (RFC 3339).
    pub created: Option<String>,
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn cstring(s: &str, what: &'static str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::NulByte { what })
}

/// Converts libcrun's return value and error into a result.
fn check(ret: i32, err: ffi::libcrun_error_t) -> Result<i32> {
    if ret < 0 {
        // SAFETY: libcrun set `err` (or left it null) for this failed call.
        Err(unsafe { Error::from_raw(err, ret) })
    } else {
        Ok(ret)
    }
}

/// Fails unless the calling process has a single thread.
fn ensure_single_threaded() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| Error::Io {
        what: "reading /proc/self/status",
        source,
    })?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if threads == 1 {
        Ok(())
    } else {
        Err(Error::MultiThreaded { threads })
    }
}

/// A `FILE *` backed by memory, whose contents are read back as a string.
struct MemStream {
    file: *mut libc::FILE,
    buf: *mut c_char,
    len: libc::size_t,
}

impl MemStream {
    fn new() -> Result<Box<MemStream>> {
        let mut stream = Box::new(MemStream {
            file: std::ptr::null_mut(),
            buf: std::ptr::null_mut(),
            len: 0,
        });
        // SAFETY: open_memstream stores into the boxed fields, which stay at
        // the same address until the stream is closed in `finish` or drop.
        stream.file = unsafe { libc::open_memstream(&mut stream.buf, &mut stream.len) };
        if stream.file.is_null() {
            return Err(Error::Io {
                what: "open_memstream",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(stream)
    }

    fn finish(&mut self) -> String {
        // SAFETY: closes the stream once; this flushes into `buf`/`len`.
        unsafe { libc::fclose(self.file) };
        self.file = std::ptr::null_mut();
        if self.buf.is_null() {
            return String::new();
        }
        // SAFETY: after fclose, `buf` holds `len` bytes written by libcrun.
        let bytes = unsafe { std::slice::from_raw_parts(self.buf.cast::<u8>(), self.len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        // SAFETY: the stream and its buffer are owned here and released once.
        unsafe {
            if !self.file.is_null() {
                libc::fclose(self.file);
            }
            libc::free(self.buf.cast());
        }
    }
}

impl Context {
    /// Starts building a context whose containers' state lives under
    /// `state_root` (crun's `--root`).
    pub fn builder(state_root: impl Into<PathBuf>) -> ContextBuilder {
        ContextBuilder {
            state_root: state_root.into(),
            ..Default::default()
        }
    }

    /// The state root.
    pub fn state_root(&self) -> &Path {
        use std::os::unix::ffi::OsStrExt;
        Path::new(std::ffi::OsStr::from_bytes(self.state_root.as_bytes()))
    }

    /// A fresh raw context for one call.
    fn raw(&self, id: Option<&CStr>) -> ffi::libcrun_context_t {
        ffi::libcrun_context_t {
            state_root: self.state_root.as_ptr(),
            id: id.map_or(std::ptr::null(), CStr::as_ptr),
            bundle: opt_ptr(&self.bundle),
            console_socket: opt_ptr(&self.console_socket),
            pid_file: opt_ptr(&self.pid_file),
            notify_socket: opt_ptr(&self.notify_socket),
            preserve_fds: i32::try_from(self.flags.preserve_fds).unwrap_or(i32::MAX),
            listen_fds: 0,
            fifo_exec_wait_fd: -1,
            systemd_cgroup: self.flags.systemd_cgroup,
            detach: self.flags.detach,
            no_subreaper: self.flags.no_subreaper,
            no_new_keyring: self.flags.no_new_keyring,
            force_no_cgroup: self.flags.force_no_cgroup,
            no_pivot: self.flags.no_pivot,
            output_handler: OUTPUT.get().and_then(|o| o.handler),
            output_handler_arg: OUTPUT
                .get()
                .map_or(std::ptr::null_mut(), |o| o.arg as *mut _),
            ..Default::default()
        }
    }

    /// Calls `f` with a raw context for container `id` and an error slot,
    /// under the libcrun lock.
    fn call(
        &self,
        id: &str,
        f: impl FnOnce(&mut ffi::libcrun_context_t, &CStr, &mut ffi::libcrun_error_t) -> i32,
    ) -> Result<i32> {
        let id = cstring(id, "container id")?;
        let mut raw = self.raw(Some(&id));
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        let _guard = lock();
        let ret = f(&mut raw, &id, &mut err);
        check(ret, err)
    }

    /// Creates and starts container `id` from `container` (`crun run`).
    /// Unless the context detaches, waits for the container and returns
    /// its exit status (128+N if killed by signal N). Forks: the calling
    /// process must be single-threaded.
    pub fn run(&self, id: &str, container: &mut Container) -> Result<i32> {
        ensure_single_threaded()?;
        let ptr = container.as_mut_ptr();
        // SAFETY: `raw` and `ptr` are valid for the call; libcrun stores the
        // context pointer in the container only for the call's duration.
        self.call(id, |raw, _, err| unsafe {
            ffi::libcrun_container_run(raw, ptr, 0, err)
        })
    }

    /// Creates container `id` (`crun create`): its init process is set up
    /// and waits for [`Context::start`]. The init process is a child of the
    /// caller. Forks: the calling process must be single-threaded.
    pub fn create(&self, id: &str, container: &mut Container) -> Result<()> {
        ensure_single_threaded()?;
        let ptr = container.as_mut_ptr();
        // SAFETY: as in `run`.
        self.call(id, |raw, _, err| unsafe {
            ffi::libcrun_container_create(raw, ptr, 0, err)
        })
        .map(drop)
    }

    /// Starts the user process of created container `id` (`crun start`).
    pub fn start(&self, id: &str) -> Result<()> {
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_start(raw, id.as_ptr(), err)
        })
        .map(drop)
    }

    /// Sends `signal` ("SIGTERM", "TERM" or "15") to the init process of
    /// container `id`.
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let signal = cstring(signal, "signal")?;
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_kill(raw, id.as_ptr(), signal.as_ptr(), err)
        })
        .map(drop)
    }

    /// Sends `signal` to every process of container `id`.
    pub fn kill_all(&self, id: &str, signal: &str) -> Result<()> {
        let signal = cstring(signal, "signal")?;
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_killall(raw, id.as_ptr(), signal.as_ptr(), err)
        })
        .map(drop)
    }

    /// Deletes container `id`'s state and cgroup (`crun delete`); with
    /// `force`, kills it first if it still runs.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        // SAFETY: all pointers are valid for the call; a null definition
        // makes libcrun read the container's config from its state.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_delete(raw, std::ptr::null_mut(), id.as_ptr(), force, err)
        })
        .map(drop)
    }

    /// Freezes container `id`.
    pub fn pause(&self, id: &str) -> Result<()> {
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_pause(raw, id.as_ptr(), err)
        })
        .map(drop)
    }

    /// Thaws container `id`.
    pub fn unpause(&self, id: &str) -> Result<()> {
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_unpause(raw, id.as_ptr(), err)
        })
        .map(drop)
    }

    /// Updates container `id`'s resources from a JSON `LinuxResources`
    /// object of the OCI runtime spec (`crun update --resources`).
    pub fn update(&self, id: &str, resources_json: &str) -> Result<()> {
        let len = resources_json.len();
        let json = cstring(resources_json, "resources JSON")?;
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_update(raw, id.as_ptr(), json.as_ptr(), len, err)
        })
        .map(drop)
    }

    /// Runs a process in container `id` (`crun exec --process FILE`): the
    /// file holds the OCI `process` object as JSON. Returns once the
    /// process runs unless the context does not detach, in which case it
    /// waits and returns its exit status. Forks: the calling process must
    /// be single-threaded.
    pub fn exec(&self, id: &str, process_file: &Path) -> Result<i32> {
        ensure_single_threaded()?;
        let path = path_to_cstring(process_file, "process file")?;
        let mut opts = ffi::libcrun_container_exec_options_s {
            struct_size: std::mem::size_of::<ffi::libcrun_container_exec_options_s>(),
            process: std::ptr::null_mut(),
            path: path.as_ptr(),
            cgroup: std::ptr::null(),
        };
        // SAFETY: all pointers are valid for the call.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_exec_with_options(raw, id.as_ptr(), &mut opts, err)
        })
    }

    /// Returns container `id`'s state as libcrun records it.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let c_id = cstring(id, "container id")?;
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        let mut status = ffi::libcrun_container_status_t::default();
        let _guard = lock();
        // SAFETY: `status` is zeroed and filled by libcrun; it is freed
        // below with libcrun's own function.
        let ret = unsafe {
            ffi::libcrun_read_container_status(
                &mut status,
                self.state_root.as_ptr(),
                c_id.as_ptr(),
                &mut err,
            )
        };
        check(ret, err)?;
        let mut name: *const c_char = std::ptr::null();
        let mut running: i32 = 0;
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        // SAFETY: `status` was filled above; `name` is set to a static string.
        let ret = unsafe {
            ffi::libcrun_get_container_state_string(
                c_id.as_ptr(),
                &mut status,
                self.state_root.as_ptr(),
                &mut name,
                &mut running,
                &mut err,
            )
        };
        let result = check(ret, err).map(|_| {
            let text = |p: *mut c_char| {
                // SAFETY: libcrun's status strings are NUL-terminated or null.
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            };
            ContainerState {
                // SAFETY: on success `name` points to a static C string.
                status: unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned(),
                pid: if running != 0 { status.pid } else { 0 },
                bundle: text(status.bundle),
                rootfs: text(status.rootfs),
                cgroup_path: text(status.cgroup_path),
                created: text(status.created),
            }
        });
        // SAFETY: frees the strings libcrun allocated into `status`.
        unsafe { ffi::libcrun_free_container_status(&mut status) };
        result
    }

    /// Returns the OCI state of container `id` as JSON (`crun state`).
    pub fn state_json(&self, id: &str) -> Result<String> {
        let mut stream = MemStream::new()?;
        let file = stream.file.cast();
        // SAFETY: `file` stays open until `finish`.
        self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_state(raw, id.as_ptr(), file, err)
        })?;
        Ok(stream.finish())
    }

    /// Returns the pids of container `id`'s processes (with `recurse`,
    /// those of its sub-cgroups too).
    pub fn pids(&self, id: &str, recurse: bool) -> Result<Vec<i32>> {
        let mut pids: *mut libc::pid_t = std::ptr::null_mut();
        // SAFETY: libcrun allocates a 0-terminated array into `pids`.
        let ret = self.call(id, |raw, id, err| unsafe {
            ffi::libcrun_container_read_pids(raw, id.as_ptr(), recurse, &mut pids, err)
        });
        let mut out = Vec::new();
        if !pids.is_null() {
            // SAFETY: the array is 0-terminated and freed once, with free().
            unsafe {
                let mut p = pids;
                while *p != 0 {
                    out.push(*p);
                    p = p.add(1);
                }
                libc::free(pids.cast());
            }
        }
        ret.map(|_| out)
    }

    /// Returns the ids of the containers under the state root.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut list: *mut ffi::libcrun_container_list_t = std::ptr::null_mut();
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        let _guard = lock();
        // SAFETY: libcrun allocates the list, freed below with its function.
        let ret = unsafe {
            ffi::libcrun_get_containers_list(&mut list, self.state_root.as_ptr(), &mut err)
        };
        check(ret, err)?;
        let mut ids = Vec::new();
        let mut it = list;
        while !it.is_null() {
            // SAFETY: each node and its name are valid until the list is freed.
            unsafe {
                ids.push(CStr::from_ptr((*it).name).to_string_lossy().into_owned());
                it = (*it).next;
            }
        }
        if !list.is_null() {
            // SAFETY: frees the list libcrun allocated.
            unsafe { ffi::libcrun_free_containers_list(list) };
        }
        Ok(ids)
    }
}

/// Returns the default runtime spec libcrun generates (`crun spec`; with
/// `rootless`, `crun spec --rootless`), as JSON: the base of the specs
/// built for containers.
pub fn default_spec(rootless: bool) -> Result<String> {
    let mut stream = MemStream::new()?;
    let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
    let _guard = lock();
    // SAFETY: the stream stays open until `finish`.
    let ret = unsafe { ffi::libcrun_container_spec(!rootless, stream.file.cast(), &mut err) };
    check(ret, err)?;
    Ok(stream.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test harness runs tests on their own threads: exactly the
    /// situation in which forking calls must refuse to run.
    #[test]
    fn forking_calls_refuse_a_multi_threaded_process() {
        let spec = default_spec(false).expect("libcrun's default spec");
        let mut container = Container::from_json(&spec).expect("default spec parses");
        let dir = std::env::temp_dir().join("libcrun-sys-unit");
        let context = Context::builder(&dir).build().unwrap();
        for result in [
            context.create("x", &mut container).map(|_| 0),
            context.run("x", &mut container),
            context.exec("x", Path::new("/nonexistent")),
        ] {
            match result {
                Err(Error::MultiThreaded { threads }) => assert!(threads > 1),
                other => panic!("expected MultiThreaded, got {other:?}"),
            }
        }
        assert!(!dir.join("x").exists(), "nothing was created");
    }

    #[test]
    fn nul_bytes_are_refused_not_truncated() {
        let context = Context::builder("/run/x").build().unwrap();
        assert!(matches!(
            context.kill("a\0b", "KILL"),
            Err(Error::NulByte { .. })
        ));
        assert!(matches!(
            Context::builder("/a\0b").build(),
            Err(Error::NulByte { .. })
        ));
    }

    #[test]
    fn version_comes_from_the_headers() {
        let v = crate::libcrun_version();
        assert!(
            v.split('.').count() >= 2 && v.chars().next().unwrap().is_ascii_digit(),
            "{v}"
        );
    }
}
