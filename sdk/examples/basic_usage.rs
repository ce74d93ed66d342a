//! The container lifecycle: create, start, list, exec, logs, stop, delete.
//!
//! ```sh
//! CRUN_SHIM_HOST=unix:///run/libcrun-shim/crun-shimd.sock \
//! CRUN_SHIM_ROOTFS=/path/to/rootfs cargo run -p libcrun-shim --example basic_usage
//! ```
//!
//! The root filesystem needs `sh`, `echo` and `sleep` (busybox will do).

use std::time::Duration;

use libcrun_shim::*;

#[tokio::main]
async fn main() -> Result<()> {
    let rootfs = std::env::var("CRUN_SHIM_ROOTFS").map_err(|_| {
        Error::InvalidArgument("set CRUN_SHIM_ROOTFS to a root filesystem directory".into())
    })?;
    // The daemon at CRUN_SHIM_HOST, else at its default socket.
    let runtime = ContainerRuntime::new().await?;
    println!("connected to {}", runtime.endpoint());

    let config = ContainerConfig {
        id: "basic-usage".to_string(),
        root: RootSource::Rootfs(rootfs.into()),
        command: vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo hello from $(hostname); exec sleep 600".to_string(),
        ],
        env: vec!["PATH=/usr/bin:/bin".to_string()],
        working_dir: "/".to_string(),
        ..Default::default()
    };
    let id = runtime.create(config).await?;
    println!("created {id}");
    runtime.start(&id).await?;
    println!("started {id}");

    for container in runtime.list().await? {
        println!("{}: {}", container.id, container.status);
    }

    let result = runtime
        .exec(&id, ["sh", "-c", "echo 6 times 7 is $((6*7))"])
        .await?;
    print!("exec: {}", result.stdout);
    println!("exec exit code: {}", result.exit_code);

    let logs = runtime
        .logs(
            &id,
            LogOptions {
                tail: Some(10),
                ..Default::default()
            },
        )
        .await?;
    print!("logs: {}", logs.stdout);

    runtime
        .stop_with_timeout(&id, Duration::from_secs(1))
        .await?;
    let exit = runtime.wait(&id).await?;
    println!("stopped {id} (exit code {})", exit.exit_code);
    runtime.delete(&id).await?;
    println!("deleted {id}");
    Ok(())
}
