//! The scenarios, each measuring libcrun-shim beside its anchors on the
//! same work, in one run.

pub mod cri;
pub mod events;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod memory;
pub mod network;
pub mod shim;
pub mod throughput;
pub mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

use libcrun_shim::{ContainerConfig, ContainerRuntime, NetworkMode, RootSource};

use crate::report::Scenario;

/// What every scenario gets.
pub struct Setup<'a> {
    /// The busybox root filesystem every container runs on.
    pub rootfs: &'a Path,
    /// Repetitions of each timed run.
    pub runs: usize,
    /// The suite's options.
    pub options: &'a crate::Options,
}

/// The result of a scenario: its figures, or why it could not run.
pub type Outcome = Result<Scenario, Box<dyn std::error::Error>>;

/// A container of the rootfs running `command`, with no network (as
/// every anchor runs: `--network none`; the network scenario measures
/// bridges).
pub fn config(rootfs: &Path, id: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        id: id.to_string(),
        root: RootSource::Rootfs(rootfs.to_path_buf()),
        command: command.iter().map(|s| s.to_string()).collect(),
        network: NetworkMode::None,
        ..Default::default()
    }
}

/// create + start + wait + delete through the SDK; the exit code.
pub async fn lifecycle(
    runtime: &ContainerRuntime,
    config: ContainerConfig,
) -> libcrun_shim::Result<i32> {
    let id = config.id.clone();
    runtime.create(config).await?;
    runtime.start(&id).await?;
    let exit = runtime.wait(&id).await?;
    runtime.delete(&id).await?;
    Ok(exit.exit_code)
}

/// How long `f` takes.
pub fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<Duration, E> {
    let began = Instant::now();
    f()?;
    Ok(began.elapsed())
}
