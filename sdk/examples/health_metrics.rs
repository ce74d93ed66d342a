//! Health checks and metrics: a container that turns healthy, and its
//! resource usage.
//!
//! ```sh
//! CRUN_SHIM_ROOTFS=/path/to/rootfs cargo run -p libcrun-shim --example health_metrics
//! ```

use std::time::Duration;

use libcrun_shim::*;

#[tokio::main]
async fn main() -> Result<()> {
    let rootfs = std::env::var("CRUN_SHIM_ROOTFS").map_err(|_| {
        Error::InvalidArgument("set CRUN_SHIM_ROOTFS to a root filesystem directory".into())
    })?;
    let runtime = ContainerRuntime::new().await?;

    let config = ContainerConfig {
        id: "health-metrics".to_string(),
        root: RootSource::Rootfs(rootfs.into()),
        command: vec![
            "sh".to_string(),
            "-c".to_string(),
            "sleep 1; touch /tmp/ready; exec sleep 600".to_string(),
        ],
        // A private /tmp: the root filesystem is used in place, and stays clean.
        mounts: vec![Mount {
            destination: "/tmp".to_string(),
            source: "tmpfs".to_string(),
            kind: "tmpfs".to_string(),
            options: vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "size=1m".to_string(),
            ],
            read_only: false,
        }],
        resources: ResourceLimits {
            memory: Some(128 << 20),
            pids: Some(32),
            ..Default::default()
        },
        health_check: Some(HealthCheck {
            command: vec![
                "test".to_string(),
                "-e".to_string(),
                "/tmp/ready".to_string(),
            ],
            interval: Some(Duration::from_millis(300)),
            timeout: Some(Duration::from_secs(5)),
            retries: Some(3),
            start_period: Some(Duration::from_secs(10)),
        }),
        ..Default::default()
    };
    let id = runtime.create(config).await?;
    runtime.start(&id).await?;

    // The check fails until /tmp/ready exists; the start period forgives that.
    let mut last = None;
    for _ in 0..100 {
        let health = runtime.health(&id).await?;
        if last != Some(health.status) {
            println!("Health status: {:?}", health.status);
            last = Some(health.status);
        }
        if health.status == HealthStatus::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let metrics = runtime.metrics(&id).await?;
    println!("CPU: {} ns total", metrics.cpu.usage_total);
    println!(
        "Memory: {} / {} bytes",
        metrics.memory.usage, metrics.memory.limit
    );
    println!(
        "Network: RX {} TX {} bytes",
        metrics.network.rx_bytes, metrics.network.tx_bytes
    );
    println!(
        "Block I/O: Read {} Write {} bytes",
        metrics.blkio.read_bytes, metrics.blkio.write_bytes
    );
    println!("PIDs: {} / {}", metrics.pids.current, metrics.pids.limit);

    for m in runtime.all_metrics().await? {
        println!(
            "{}: CPU {} ns, Memory {} bytes",
            m.container_id, m.cpu.usage_total, m.memory.usage
        );
    }

    runtime.delete_with(&id, true).await?;
    Ok(())
}
