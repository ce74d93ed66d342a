//! Network namespaces that outlive the processes in them: each one is
//! bind-mounted on a file of a directory the agent owns, as `ip netns`
//! does under `/run/netns`.
//!
//! The agent runs in a private mount namespace (see
//! `libcrun_sys::namespace`), which dies with it. A namespace mounted only
//! there would vanish at a SIGKILL of the agent while a stopped container
//! still needs it, and a CNI DEL without the namespace leaks what the
//! plugins can only find inside it (the bridge plugin's masquerading
//! rules). So each namespace is mounted twice: in the *durable* mount
//! namespace the agent was started in (the host's; it outlives the agent,
//! and an agent started later inherits the mount when it unshares), and in
//! the agent's own, where the monitors and the CNI plugins it starts look.
//!
//! The namespace is made by a short-lived child process (a fork that only
//! makes system calls, so it is safe in a multi-threaded agent): it enters
//! the durable mount namespace, unshares its network namespace, sets the
//! loopback interface up, and bind-mounts `/proc/self/ns/net` on the file;
//! the agent then mounts the child's namespace on the same file in its own
//! mount namespace and lets the child exit. Removal unmounts both and
//! unlinks the file from the durable namespace, which also detaches the
//! copies of the mount that other mount namespaces (monitors') inherited.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

/// The directory of persistent network namespaces.
#[derive(Debug)]
pub struct NetnsDir {
    dir: PathBuf,
    durable: Option<Arc<OwnedFd>>,
}

/// Opens this process's mount namespace, to be passed later to
/// [`NetnsDir::new`] as the durable one: the agent calls it before it
/// moves to its private mount namespace.
pub fn current_mount_namespace() -> io::Result<OwnedFd> {
    std::fs::File::open("/proc/self/ns/mnt").map(OwnedFd::from)
}

/// Whether `path` is a network namespace (an nsfs file).
pub fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {} has a NUL byte", path.display())))
}

/// What a namespace child reports: the step that failed (0 for none) and
/// its errno.
const STEP_NAMES: [&str; 7] = [
    "",
    "entering the durable mount namespace",
    "unsharing the network namespace",
    "setting the loopback interface up",
    "creating the mount point",
    "bind-mounting the namespace",
    "unmounting the namespace",
];

impl NetnsDir {
    /// The namespaces kept in `dir` (created, mode 0700, if missing),
    /// mounted in the mount namespace `durable` as well as in this
    /// process's (`None`: only in this process's, when it is the durable
    /// one already).
    pub fn new(dir: PathBuf, durable: Option<Arc<OwnedFd>>) -> Result<NetnsDir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .context(|| format!("creating {}", dir.display()))?;
        Ok(NetnsDir { dir, durable })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of namespace `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether namespace `name` exists (is mounted, in this process's
    /// mount namespace).
    pub fn exists(&self, name: &str) -> bool {
        is_netns(&self.path(name))
    }

    /// The names of the files in the directory (namespaces, and files a
    /// crash left without a namespace).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(&self.dir).context(|| format!("listing {}", self.dir.display()))?
        {
            let entry = entry.context(|| format!("listing {}", self.dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Creates namespace `name`, its loopback interface up, and returns its
    /// path. Whatever is there under that name (a namespace or a file a
    /// crash or a reboot left) is removed first: the directory is the
    /// caller's, who knows the name is not in use. On failure nothing is
    /// left.
    pub fn create(&self, name: &str) -> Result<PathBuf> {
        let path = self.path(name);
        self.remove(name)?;
        let result = self.create_mounts(&path);
        if result.is_err() {
            let _ = self.remove(name);
        }
        result.map(|()| path)
    }

    fn create_mounts(&self, path: &Path) -> Result<()> {
        let target = cstring(path)?;
        let own_ns = CString::new("/proc/self/ns/net").expect("static path");
        let mut status = Pipe::new()?;
        let mut go = Pipe::new()?;
        let (status_write, go_read, go_write) = (
            Pipe::raw(&status.write),
            Pipe::raw(&go.read),
            Pipe::raw(&go.write),
        );
        let durable = self.durable.as_ref().map(|fd| fd.as_raw_fd());
        let mut lo: libc::ifreq = zeroed_ifreq(b"lo");
        // SAFETY: getpid has no preconditions.
        let agent = unsafe { libc::getpid() };
        // SAFETY: the child only makes async-signal-safe system calls on
        // memory prepared before the fork, then `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io("forking", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; every pointer is valid in the child's copy
            // of the address space.
            unsafe {
                let report = |step: i32| -> ! {
                    let errno = *libc::__errno_location();
                    let msg = [step, errno];
                    libc::write(status_write, msg.as_ptr().cast(), 8);
                    libc::_exit(1);
                };
                // Never outlive the agent: a child of a SIGKILLed agent
                // would hold the agent's files (its lock among them). The
                // forking thread waits for this child, so only the
                // process's death fires this.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                    || libc::getppid() != agent
                {
                    libc::_exit(1);
                }
                if let Some(fd) = durable
                    && libc::setns(fd, libc::CLONE_NEWNS) != 0
                {
                    report(1);
                }
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    report(2);
                }
                let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if sock < 0 || libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut lo) != 0 {
                    report(3);
                }
                lo.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                if libc::ioctl(sock, libc::SIOCSIFFLAGS, &lo) != 0 {
                    report(3);
                }
                let fd = libc::open(
                    target.as_ptr(),
                    libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o444,
                );
                if fd < 0 {
                    report(4);
                }
                libc::close(fd);
                if libc::mount(
                    own_ns.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
                {
                    report(5);
                }
                let ok = [0i32, 0];
                libc::write(status_write, ok.as_ptr().cast(), 8);
                // Wait until the agent has mounted this process's namespace
                // in its own mount namespace: it writes a byte then. Not EOF
                // alone, which never comes while a sibling forked for a
                // concurrent create holds a copy of the write end.
                libc::close(go_write);
                let mut byte = 0u8;
                libc::read(go_read, (&raw mut byte).cast(), 1);
                libc::_exit(0);
            }
        }
        status.write = None;
        go.read = None;
        let child = Child(pid);
        let (step, errno) = status.read_report();
        if step != 0 {
            return Err(step_error("creating", path, step, errno));
        }
        let mounted = match &self.durable {
            Some(_) => mount_bind(&format!("/proc/{pid}/ns/net"), &target),
            None => Ok(()),
        };
        // Lets the child exit, then reaps it.
        if let Some(write) = go.write.take() {
            let _ = nix::unistd::write(&write, &[1]);
        }
        drop(child);
        mounted.map_err(|e| Error::io(format!("mounting network namespace {}", path.display()), e))
    }

    /// Removes namespace `name`: unmounts it from this process's mount
    /// namespace and from the durable one, and unlinks its file. Succeeds
    /// when nothing is there. The namespace itself goes when the last
    /// process in it exits.
    pub fn remove(&self, name: &str) -> Result<()> {
        crate::validate_name("network namespace", name)?;
        let path = self.path(name);
        let target = cstring(&path)?;
        unmount_all(&target);
        let Some(durable) = &self.durable else {
            return unlink(&path);
        };
        let mut status = Pipe::new()?;
        let status_write = Pipe::raw(&status.write);
        let fd = durable.as_raw_fd();
        // SAFETY: as in `create_mounts`, the child only makes system calls
        // on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io("forking", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                let mut msg = [0i32, 0];
                if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                    msg = [1, *libc::__errno_location()];
                } else {
                    unmount_all(&target);
                    if libc::unlink(target.as_ptr()) != 0
                        && *libc::__errno_location() != libc::ENOENT
                    {
                        msg = [6, *libc::__errno_location()];
                    }
                }
                libc::write(status_write, msg.as_ptr().cast(), 8);
                libc::_exit(0);
            }
        }
        status.write = None;
        let child = Child(pid);
        let (step, errno) = status.read_report();
        drop(child);
        if step != 0 {
            return Err(step_error("removing", &path, step, errno));
        }
        // The durable namespace's unlink detached this namespace's mount;
        // a file left here (no durable mount was made) goes too.
        unlink(&path)
    }
}

fn unlink(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// The error of a namespace child that failed at `step`.
fn step_error(verb: &str, path: &Path, step: i32, errno: i32) -> Error {
    let step = usize::try_from(step)
        .ok()
        .and_then(|s| STEP_NAMES.get(s))
        .unwrap_or(&"an unknown step");
    Error::io(
        format!("{verb} network namespace {}: {step}", path.display()),
        io::Error::from_raw_os_error(errno),
    )
}

/// Bind-mounts `source` on `target`.
fn mount_bind(source: &str, target: &CString) -> io::Result<()> {
    let source = CString::new(source).map_err(io::Error::other)?;
    // SAFETY: mount with valid C strings and no data.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lazily unmounts every mount stacked on `target`. Only system calls: it
/// also runs in forked children.
fn unmount_all(target: &CString) {
    for _ in 0..16 {
        // SAFETY: umount2 of a valid C string path.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            break;
        }
    }
}

/// An `ifreq` naming interface `name`.
fn zeroed_ifreq(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    req
}

/// A pipe whose raw fds a forked child can use.
struct Pipe {
    read: Option<OwnedFd>,
    write: Option<OwnedFd>,
}

impl Pipe {
    fn new() -> Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("creating a pipe", e.into()))?;
        Ok(Pipe {
            read: Some(read),
            write: Some(write),
        })
    }

    fn raw(fd: &Option<OwnedFd>) -> libc::c_int {
        fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// Reads a child's `[step, errno]`; EOF (the child died) reads as a
    /// failure of an unknown step.
    fn read_report(&self) -> (i32, i32) {
        let mut msg = [0u8; 8];
        let mut read = 0usize;
        let fd = Pipe::raw(&self.read);
        while read < msg.len() {
            match nix::unistd::read(
                // SAFETY: the fd stays open for the duration of the call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                &mut msg[read..],
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(0) | Err(_) => return (99, libc::EPIPE),
                Ok(n) => read += n,
            }
        }
        let word = |i: usize| i32::from_ne_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        (word(0), word(4))
    }
}

/// A forked child, reaped on drop.
struct Child(libc::pid_t);

impl Drop for Child {
    fn drop(&mut self) {
        let mut status = 0;
        // SAFETY: reaps our own child.
        while unsafe { libc::waitpid(self.0, &mut status, 0) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}
