//! The real backend: libcrun in this process for the calls that do not
//! fork, `crun-shim-monitor` processes for those that do.

use std::io;
use std::path::PathBuf;

use futures::future::BoxFuture;
use oci_spec::runtime::LinuxResources;

use super::{Backend, Created, ExecLaunch, ExecProcess};
use crate::error::{Error, Result};
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
