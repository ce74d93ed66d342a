//! The runtime itself: cleanup, recover, shutdown, version, info.

use std::time::Duration;

use libcrun_shim::{ContainerRuntime, Orphan, ShutdownOptions};

use super::Result;
use crate::args::{CleanupArgs, Format, ShutdownArgs};
use crate::output::{Table, ago, bytes, print_json};

fn print_orphans(orphans: &[Orphan]) -> std::io::Result<()> {
    let mut table = Table::new(&["KIND", "CONTAINER", "PATH", "DETAIL", "AGENT"]);
    for o in orphans {
        table.row(vec![
            o.kind.to_string(),
            o.container_id.clone(),
            o.path.clone(),
            o.detail.clone(),
            o.agent.clone(),
        ]);
    }
    table.print()
}

/// `cleanup`: deletes stopped containers; with `--orphaned`, lists
/// leftovers, and with `--force` removes those of each container named.
pub async fn cleanup(rt: &ContainerRuntime, a: CleanupArgs) -> Result {
    if !a.orphaned {
        let removed = rt.cleanup_stopped().await?;
        for id in &removed {
            println!("{id}");
        }
        eprintln!("removed {} stopped containers", removed.len());
        return Ok(0);
    }
    let orphans = rt.list_orphaned().await?;
    if orphans.is_empty() {
        eprintln!("no leftovers");
        return Ok(0);
    }
    print_orphans(&orphans)?;
    if a.force {
        let mut ids: Vec<&str> = orphans
            .iter()
            .map(|o| o.container_id.as_str())
            .filter(|id| !id.is_empty())
            .collect();
        ids.dedup();
        for id in &ids {
            rt.force_delete(id).await?;
            println!("removed what was left of {id}");
        }
        let left = orphans.len()
            - orphans
                .iter()
                .filter(|o| !o.container_id.is_empty())
                .count();
        if left > 0 {
            eprintln!("{left} leftovers belong to no container: see `crun-shim recover`");
        }
    }
    Ok(0)
}

/// `recover`.
pub async fn recover(rt: &ContainerRuntime) -> Result {
    let report = rt.recover().await?;
    println!("adopted: {}", report.adopted.join(" "));
    println!("exited:  {}", report.exited.join(" "));
    println!("undone:  {}", report.undone.join(" "));
    if report.orphans.is_empty() {
        println!("orphans: none");
    } else {
        print_orphans(&report.orphans)?;
    }
    Ok(0)
}

/// `shutdown`.
pub async fn shutdown(rt: &ContainerRuntime, a: ShutdownArgs) -> Result {
    let stopped = rt
        .shutdown_with(ShutdownOptions {
            stop_containers: a.stop_containers,
            timeout: a.time.map(Duration::from_secs),
            agent: a.only_agent,
        })
        .await?;
    for id in stopped {
        println!("{id}");
    }
    Ok(0)
}

/// `version`: this client's, then the server's.
pub async fn version(rt: &ContainerRuntime, format: Format) -> Result {
    let server = rt.version().await?;
    if format == Format::Json {
        print_json(&serde_json::json!({
            "client": { "component": "crun-shim", "version": libcrun_shim::VERSION },
            "server": server,
        }))?;
        return Ok(0);
    }
    println!("Client: crun-shim {}", libcrun_shim::VERSION);
    println!(
        "Server: {} {} (API {}{}{})",
        server.component,
        server.version,
        server.api_version,
        if server.libcrun_version.is_empty() {
            ""
        } else {
            ", libcrun "
        },
        server.libcrun_version
    );
    Ok(0)
}

/// `info`.
pub async fn info(rt: &ContainerRuntime, format: Format) -> Result {
    let info = rt.info().await?;
    if format == Format::Json {
        print_json(&info)?;
        return Ok(0);
    }
    println!("{} {} at {}", info.component, info.version, rt.endpoint());
    let mut table = Table::new(&[
        "AGENT",
        "STATE",
        "ENDPOINT",
        "CONTAINERS",
        "RUNNING",
        "IMAGES",
        "CPUS",
        "MEMORY",
        "CGROUP",
        "LIBCRUN",
        "KERNEL",
        "STARTED",
    ]);
    for a in &info.agents {
        table.row(vec![
            if a.name.is_empty() {
                "-".into()
            } else {
                a.name.clone()
            },
            a.state.to_string(),
            a.endpoint.clone(),
            a.containers.to_string(),
            a.containers_running.to_string(),
            a.images.to_string(),
            a.cpus.to_string(),
            bytes(a.memory_bytes),
            a.cgroup_mode.to_string(),
            a.libcrun_version.clone(),
            a.kernel_version.clone(),
            ago(a.started_at),
        ]);
    }
    table.print()?;
    Ok(0)
}
