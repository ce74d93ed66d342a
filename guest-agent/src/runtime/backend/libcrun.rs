//! The real backend: libcrun in this process for the calls that do not
//! fork, `crun-shim-monitor` processes for those that do.

use std::io;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use oci_spec::runtime::LinuxResources;

use super::{Backend, Created, ExecLaunch, ExecProcess};
use crate::error::{Error, IoContext, Result};
use crate::monitor::MonitorArgs;
use crate::process::ProcessRef;
use crate::runtime::exec::helper;
use crate::runtime::launch::Launcher;
use crate::store::Store;

/// libcrun and the monitors.
#[derive(Debug)]
pub struct Libcrun {
    context: libcrun_sys::Context,
    monitors: Launcher,
    store: Store,
    monitor_binary: PathBuf,
}

impl Libcrun {
    /// A backend on the state root of `store`, starting `monitor_binary`
    /// for runs and execs. Starts a spare monitor in the background.
    pub fn new(store: Store, monitor_binary: PathBuf) -> Result<Libcrun> {
        drop_seccomp_cache(&store.libcrun_root())?;
        let context = libcrun_sys::Context::builder(store.libcrun_root())
            .build()
            .map_err(|e| Error::libcrun("libcrun context", e))?;
        let monitors = Launcher::new(monitor_binary.clone());
        monitors.refill();
        Ok(Libcrun {
            context,
            monitors,
            store,
            monitor_binary,
        })
    }
}

/// Where libcrun keeps the seccomp filters it compiled, under its state
/// root, one file per profile checksum.
const SECCOMP_CACHE: &str = ".cache/seccomp";

/// Empties libcrun's seccomp cache. libcrun writes an entry without fsync
/// and hard-links it into the cache, so a power loss (a VM killed, a host
/// that crashed) can leave the link with an empty or cut-short file; from
/// then on every container with that profile fails with `seccomp
/// (SECCOMP_SET_MODE_FILTER): Invalid argument`. A clean stop cannot be told
/// from a crash, so each agent starts with an empty cache and libcrun
/// compiles each profile once again. Running containers keep their own
/// copy (`ID/seccomp.bpf`). A SIGKILL halfway leaves fewer entries, removed
/// by the next start.
fn drop_seccomp_cache(libcrun_root: &Path) -> Result<()> {
    let cache = libcrun_root.join(SECCOMP_CACHE);
    match std::fs::remove_dir_all(&cache) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).context(|| format!("emptying libcrun's seccomp cache {}", cache.display()))
        }
        _ => Ok(()),
    }
}

impl Backend for Libcrun {
    fn start(&self, id: &str) -> libcrun_sys::Result<()> {
        self.context.start(id)
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> libcrun_sys::Result<()> {
        let signal = signal.to_string();
        if all {
            self.context.kill_all(id, &signal)
        } else {
            self.context.kill(id, &signal)
        }
    }

    fn pause(&self, id: &str) -> libcrun_sys::Result<()> {
        self.context.pause(id)
    }

    fn resume(&self, id: &str) -> libcrun_sys::Result<()> {
        self.context.unpause(id)
    }

    fn delete(&self, id: &str, force: bool) -> libcrun_sys::Result<()> {
        self.context.delete(id, force)
    }

    fn update(&self, id: &str, resources: &LinuxResources) -> libcrun_sys::Result<()> {
        let json = serde_json::to_string(resources).map_err(|e| libcrun_sys::Error::Io {
            what: "encoding the resources",
            source: io::Error::other(e),
        })?;
        self.context.update(id, &json)
    }

    fn pids(&self, id: &str) -> libcrun_sys::Result<Vec<i32>> {
        self.context.pids(id, true)
    }

    fn create(&self, args: MonitorArgs) -> BoxFuture<'static, Result<Created>> {
        let monitors = self.monitors.clone();
        Box::pin(async move { monitors.create(&args).await })
    }

    fn exec(&self, launch: ExecLaunch) -> BoxFuture<'static, Result<ExecProcess>> {
        Box::pin(helper::start(
            self.store.clone(),
            self.monitor_binary.clone(),
            launch,
        ))
    }

    fn root_of(&self, pid: i32) -> PathBuf {
        PathBuf::from(format!("/proc/{pid}/root"))
    }

    fn is_alive(&self, process: ProcessRef) -> bool {
        process.is_alive()
    }

    fn exited(&self, process: ProcessRef) -> BoxFuture<'static, io::Result<()>> {
        Box::pin(async move { process.exited().await })
    }

    fn signal_process(&self, pid: i32, signal: i32) -> io::Result<()> {
        // SAFETY: sends a signal to a process; no memory is involved.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_cache_is_emptied_and_its_absence_is_fine() {
        let root = tempfile::tempdir().unwrap();
        drop_seccomp_cache(root.path()).unwrap();
        let cache = root.path().join(SECCOMP_CACHE);
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("e04742c4"), b"").unwrap();
        std::fs::create_dir(root.path().join("a-container")).unwrap();
        drop_seccomp_cache(root.path()).unwrap();
        assert!(!cache.exists());
        assert!(
            root.path().join("a-container").exists(),
            "only the cache goes"
        );
    }
}
