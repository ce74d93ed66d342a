//! A service set up for production: a validated configuration with call
//! deadlines, a restart policy and limits, an event watcher, recovery and
//! cleanup at start, and a graceful stop on Ctrl-C.
//!
//! ```sh
//! CRUN_SHIM_ROOTFS=/path/to/rootfs cargo run -p libcrun-shim --example production_setup
//! ```

use std::time::Duration;

use libcrun_shim::*;

#[tokio::main]
async fn main() -> Result<()> {
    let rootfs = std::env::var("CRUN_SHIM_ROOTFS").map_err(|_| {
        Error::InvalidArgument("set CRUN_SHIM_ROOTFS to a root filesystem directory".into())
    })?;
    let config = RuntimeConfig {
        request_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Duration::from_secs(2),
        ..RuntimeConfig::from_env()
    };
    config.validate()?;
    // Retry while the daemon starts (Unavailable is transient).
    let mut attempt = 0;
    let runtime = loop {
        match ContainerRuntime::new_with_config(config.clone()).await {
            Ok(runtime) => break runtime,
            Err(e) if e.is_transient() && attempt < 5 => {
                attempt += 1;
                eprintln!("waiting for the daemon: {e}");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let version = runtime.version().await?;
    println!("connected to {} {}", version.component, version.version);

    // Reconcile and tidy up what an earlier run may have left.
    let report = runtime.recover().await?;
    println!(
        "recovered: {} adopted, {} exited, {} orphans",
        report.adopted.len(),
        report.exited.len(),
        report.orphans.len()
    );
    for orphan in runtime.list_orphaned().await? {
        if !orphan.container_id.is_empty() {
            runtime.force_delete(&orphan.container_id).await?;
        }
    }
    let _ = runtime.force_delete("production-worker").await?;
    println!(
        "cleaned up {} stopped containers",
        runtime.cleanup_stopped().await?.len()
    );

    // Watch this service's events.
    let mut events = runtime
        .subscribe_events_with(EventFilter {
            container_ids: vec!["production-worker".to_string()],
            ..Default::default()
        })
        .await?;

    // A worker that fails twice, restarted by its policy, then succeeds; it
    // counts its attempts in a host directory mounted at /state.
    let state = std::env::temp_dir().join(format!("production-worker-{}", std::process::id()));
    std::fs::create_dir_all(&state)
        .map_err(|e| Error::Internal(format!("{}: {e}", state.display())))?;
    let worker = ContainerConfig {
        id: "production-worker".to_string(),
        root: RootSource::Rootfs(rootfs.into()),
        command: vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo attempt >> /state/attempts; echo attempt; [ $(wc -l < /state/attempts) -ge 3 ]"
                .to_string(),
        ],
        mounts: vec![Mount::bind(state.display().to_string(), "/state", false)],
        labels: [("service".to_string(), "worker".to_string())].into(),
        restart_policy: RestartPolicy::OnFailure { max_retries: 5 },
        resources: ResourceLimits {
            memory: Some(64 << 20),
            pids: Some(16),
            ..Default::default()
        }
        .with_cpus(0.5),
        stop_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let id = runtime.create(worker).await?;
    runtime.start(&id).await?;

    let watch = async {
        while let Some(event) = events.recv().await {
            match event.event_type {
                ContainerEventType::Exit => {
                    println!(
                        "event: {} exited with {:?}",
                        event.container_id, event.exit_code
                    );
                    if event.exit_code == Some(0) {
                        break;
                    }
                }
                other => println!("event: {} {other}", event.container_id),
            }
        }
    };
    tokio::select! {
        () = watch => {}
        _ = tokio::signal::ctrl_c() => println!("interrupted: stopping"),
        () = tokio::time::sleep(Duration::from_secs(60)) => println!("timed out: stopping"),
    }

    let info = runtime.inspect(&id).await?;
    println!("restarts: {}", info.restart_count);
    let logs = runtime.logs(&id, LogOptions::default()).await?;
    println!("attempts logged: {}", logs.stdout.lines().count());

    // Graceful stop of what this service started.
    let mine = runtime
        .list_with(ListFilter {
            labels: [("service".to_string(), "worker".to_string())].into(),
            ..Default::default()
        })
        .await?;
    for container in mine {
        runtime.stop(&container.id).await?;
        runtime.delete(&container.id).await?;
        println!("removed {}", container.id);
    }
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
