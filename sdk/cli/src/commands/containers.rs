//! The container lifecycle: create, start, run, stop, kill, pause, resume,
//! rm, ps, inspect, wait.

use std::io::Write;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use libcrun_shim::{
    ContainerConfig, ContainerInfo, ContainerNetwork, ContainerRuntime, ContainerStatus, DnsConfig,
    HealthCheck, HealthStatus, ListFilter, NetworkMode, OutputStream, ResourceLimits, RootSource,
    RunEvent, RunOptions, SeccompProfile,
};

use super::{CliError, Result, key_value, key_values};
use crate::args::{
    ContainerArgs, CreateArgs, Format, Network, PsArgs, RunArgs, SecurityOpt, StopArgs,
};
use crate::output::{Table, ago, duration, print_json, truncate};

/// How many containers a command over several ids acts on at once.
/// Docker's CLI runs them all in parallel; a bound keeps `stop $(ps -q)`
/// of thousands from opening thousands of streams at once.
pub const PARALLEL: usize = 32;

/// Runs `action` on each id, [`PARALLEL`] at a time, and hands each
/// result to `report` in the order the ids were given, as soon as it and
/// those before it are done.
pub async fn concurrently<T, F, Fut>(
    ids: Vec<String>,
    action: F,
    mut report: impl FnMut(String, libcrun_shim::Result<T>),
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = libcrun_shim::Result<T>>,
{
    let mut results = futures::stream::iter(ids)
        .map(|id| {
            let done = action(id.clone());
            async move { (id, done.await) }
        })
        .buffered(PARALLEL);
    while let Some((id, result)) = results.next().await {
        report(id, result);
    }
}

/// Runs `action` on each id (see [`concurrently`]), printing the id when
/// it succeeds and one line per failure; fails when any did.
pub async fn each<F, Fut>(ids: Vec<String>, action: F) -> Result
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = libcrun_shim::Result<()>>,
{
    let mut code = 0;
    concurrently(ids, action, |id, result| match result {
        Ok(()) => println!("{id}"),
        Err(e) => code = super::report(&CliError::from(e)),
    })
    .await;
    Ok(code)
}

/// The configuration of a container from the command line.
fn config(
    id: String,
    root: RootSource,
    args: ContainerArgs,
    command: Vec<String>,
) -> Result<ContainerConfig> {
    let mut resources = ResourceLimits {
        memory: args.memory,
        pids: args.pids_limit,
        ..Default::default()
    };
    if let Some(cpus) = args.cpus {
        resources = resources.with_cpus(cpus);
    }
    let health_check = args.health_cmd.map(|cmd| HealthCheck {
        command: vec!["sh".into(), "-c".into(), cmd],
        interval: args.health_interval,
        timeout: args.health_timeout,
        retries: args.health_retries,
        start_period: args.health_start_period,
    });
    let (network, networks) = match args.network {
        None => (NetworkMode::Default, Vec::new()),
        Some(Network::Bridge) => (NetworkMode::Bridge, Vec::new()),
        Some(Network::None) => (NetworkMode::None, Vec::new()),
        Some(Network::Host) => (NetworkMode::Host, Vec::new()),
        Some(Network::Container(id)) => (NetworkMode::Container(id), Vec::new()),
        Some(Network::Named(name)) => (
            NetworkMode::Bridge,
            vec![ContainerNetwork {
                name,
                ip: args.ip,
                aliases: args.network_aliases.clone(),
            }],
        ),
    };
    if networks.is_empty() && (args.ip.is_some() || !args.network_aliases.is_empty()) {
        return Err(CliError::Usage(
            "--ip and --network-alias need --network NAME (a network made with `network create`)"
                .into(),
        ));
    }
    // The daemon resolves no relative path: make it absolute here.
    let root = match root {
        RootSource::Rootfs(path) => RootSource::Rootfs(std::path::absolute(path)?),
        image => image,
    };
    let mut seccomp = SeccompProfile::Default;
    let mut no_new_privileges = None;
    for option in args.security_opts {
        match option {
            SecurityOpt::Seccomp(profile) => seccomp = profile,
            SecurityOpt::NoNewPrivileges(on) => no_new_privileges = Some(on),
        }
    }
    Ok(ContainerConfig {
        id,
        root,
        command,
        env: args.env,
        working_dir: args.workdir.unwrap_or_default(),
        user: args.user,
        hostname: args.hostname,
        mounts: args.volumes,
        network,
        networks,
        ports: args.publish,
        dns: DnsConfig {
            servers: args.dns,
            searches: args.dns_search,
            options: args.dns_options,
        },
        extra_hosts: args.add_hosts,
        resources,
        labels: key_values(&args.labels),
        restart_policy: args.restart,
        health_check,
        terminal: args.tty,
        open_stdin: args.interactive,
        read_only_rootfs: args.read_only,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout.map(Duration::from_secs),
        cap_add: args.cap_add,
        cap_drop: args.cap_drop,
        seccomp,
        no_new_privileges,
        ..Default::default()
    })
}

/// `create`: prints the new container's id.
pub async fn create(rt: &ContainerRuntime, a: CreateArgs) -> Result {
    let root = match (a.rootfs, a.image) {
        (Some(path), None) => RootSource::Rootfs(path),
        (None, Some(image)) => RootSource::Image(image),
        _ => {
            return Err(CliError::Usage(
                "create needs one of --rootfs DIR and --image REF".into(),
            ));
        }
    };
    let config = config(a.id, root, a.container, a.command)?;
    println!("{}", rt.create(config).await?);
    Ok(0)
}

/// A fresh container id for `run` without `--name`.
fn generated_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("{mixed:016x}")[..12].to_string()
}

/// `run`: create, start, then print the output until the container exits
/// and exit with its exit code (or print its id with `-d`).
pub async fn run(rt: &ContainerRuntime, a: RunArgs) -> Result {
    let (root, command) = match a.rootfs {
        Some(rootfs) => (RootSource::Rootfs(rootfs), a.args),
        None => {
            let mut args = a.args.into_iter();
            let image = args
                .next()
                .ok_or_else(|| CliError::Usage("run needs an IMAGE or --rootfs DIR".into()))?;
            (RootSource::Image(image), args.collect())
        }
    };
    let id = a.name.unwrap_or_else(generated_id);
    let (interactive, terminal) = (a.container.interactive, a.container.tty);
    let mut config = config(id, root, a.container, command)?;
    // The agent removes it when it exits, even if this command is killed
    // (and with -d, where nobody waits).
    config.auto_remove = a.rm;
    if !(interactive || terminal || a.detach) {
        return run_to_end(rt, config, a.rm).await;
    }
    let id = rt.create(config).await?;
    // -i or -t: attached before the start, so nothing is missed.
    let attached = if !a.detach {
        match rt.attach(&id).await {
            Ok(session) => Some(session),
            Err(e) => {
                let _ = rt.delete_with(&id, true).await;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    if let Err(e) = rt.start(&id).await {
        if a.rm {
            let _ = rt.delete_with(&id, true).await;
        }
        return Err(e.into());
    }
    match attached {
        Some(session) => {
            let code = super::exec::follow_attached(session, terminal, interactive).await?;
            if a.rm {
                // Returns once it is gone (its own removal may have been
                // first), so the name is free when this command ends.
                match rt.delete(&id).await {
                    Ok(()) | Err(libcrun_shim::Error::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(code)
        }
        None => {
            println!("{id}");
            Ok(0)
        }
    }
}

/// `run` without a terminal or stdin: one Run call creates and starts the
/// container, brings its output as it is written and its exit status (and
/// with `--rm` the agent removes it, even if this process is killed).
async fn run_to_end(rt: &ContainerRuntime, config: ContainerConfig, remove: bool) -> Result {
    let id = config.id.clone();
    let mut run = rt.run(config, RunOptions { remove }).await?;
    loop {
        tokio::select! {
            event = run.next() => match event {
                Some(event) => match event? {
                    RunEvent::Output(chunk) => match chunk.stream {
                        OutputStream::Stdout => write_all(&mut std::io::stdout(), &chunk.data)?,
                        OutputStream::Stderr => write_all(&mut std::io::stderr(), &chunk.data)?,
                    },
                    RunEvent::Exit(exit) => return Ok(exit.exit_code),
                    RunEvent::Started(_) => {}
                },
                None => {
                    return Err(CliError::Io(std::io::Error::other(format!(
                        "the run of container {id} ended without its exit status"
                    ))));
                }
            },
            // Ctrl-C goes to the container, as if it ran here.
            _ = tokio::signal::ctrl_c() => {
                let _ = rt.kill(&id, "SIGINT").await;
            }
        }
    }
}

/// Writes and flushes.
pub fn write_all(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    out.flush()
}

/// `stop`.
pub async fn stop(rt: &ContainerRuntime, a: StopArgs) -> Result {
    let timeout = a.time.map(Duration::from_secs);
    each(a.ids.ids, |id| async move {
        match timeout {
            Some(t) => rt.stop_with_timeout(&id, t).await,
            None => rt.stop(&id).await,
        }
    })
    .await
}

/// The STATUS column: `Up 3 minutes (healthy)`, `Exited (0) 2 seconds ago`.
fn status_text(c: &ContainerInfo) -> String {
    let up = || {
        let since = c
            .started_at
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        format!("Up {}", duration(since))
    };
    let health = match c.health_status {
        HealthStatus::None => String::new(),
        h => format!(" ({h})"),
    };
    match c.status {
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running => format!("{}{health}", up()),
        ContainerStatus::Paused => format!("{} (Paused)", up()),
        ContainerStatus::Stopped => {
            let exit = c.last_exit.clone().unwrap_or_default();
            format!("Exited ({}) {}", exit.exit_code, ago(exit.finished_at))
        }
        ContainerStatus::Unknown => "Unknown".into(),
    }
}

/// `ps`.
pub async fn ps(rt: &ContainerRuntime, a: PsArgs) -> Result {
    let mut filter = ListFilter::default();
    let mut ids = Vec::new();
    for f in &a.filters {
        let (key, value) = key_value(f);
        match key.as_str() {
            "status" => filter.statuses.push(match value.as_str() {
                "created" => ContainerStatus::Created,
                "running" => ContainerStatus::Running,
                "paused" => ContainerStatus::Paused,
                "stopped" | "exited" => ContainerStatus::Stopped,
                _ => return Err(CliError::Usage(format!("--filter {f}: unknown status"))),
            }),
            "label" => {
                let (k, v) = key_value(&value);
                filter.labels.insert(k, v);
            }
            "agent" => filter.agent = Some(value),
            "id" | "name" => ids.push(value),
            _ => {
                return Err(CliError::Usage(format!(
                    "--filter {f}: expected status=, label=, agent= or id="
                )));
            }
        }
    }
    if !a.all && filter.statuses.is_empty() {
        filter.statuses = vec![ContainerStatus::Running, ContainerStatus::Paused];
    }
    let mut containers = rt.list_with(filter).await?;
    if !ids.is_empty() {
        containers.retain(|c| ids.iter().any(|id| c.id.starts_with(id.as_str())));
    }
    if a.quiet {
        for c in &containers {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    if a.format.format == Format::Json {
        print_json(&containers)?;
        return Ok(0);
    }
    let with_agent = containers.iter().any(|c| !c.agent.is_empty());
    let mut headers = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
    ];
    if with_agent {
        headers.push("AGENT");
    }
    let mut table = Table::new(&headers);
    for c in &containers {
        let image = c.config.root.to_string();
        let command: Vec<String> = c
            .config
            .command
            .iter()
            .chain(&c.config.args)
            .cloned()
            .collect();
        let mut row = vec![
            c.id.clone(),
            truncate(&image, 30),
            format!("\"{}\"", truncate(&command.join(" "), 30)),
            ago(c.created_at),
            status_text(c),
            c.ports
                .iter()
                .map(super::network::published)
                .collect::<Vec<_>>()
                .join(", "),
        ];
        if with_agent {
            row.push(c.agent.clone());
        }
        table.row(row);
    }
    table.print()?;
    Ok(0)
}

/// `inspect`: a JSON array, the OCI spec embedded as JSON.
pub async fn inspect(rt: &ContainerRuntime, ids: Vec<String>) -> Result {
    let mut found = Vec::new();
    let mut code = 0;
    concurrently(
        ids,
        |id| async move { rt.inspect(&id).await },
        |_, result| match result {
            Ok(info) => found.push(info),
            Err(e) => code = super::report(&e.into()),
        },
    )
    .await;
    let mut all = Vec::new();
    for mut info in found {
        let spec = info.oci_spec_json.take();
        let mut value = serde_json::to_value(&info)?;
        if let Some(spec) = spec {
            value["oci_spec"] = serde_json::from_str(&spec)?;
        }
        all.push(value);
    }
    print_json(&all)?;
    Ok(code)
}

/// `wait`: prints each exit code; exits with the last.
pub async fn wait(rt: &ContainerRuntime, ids: Vec<String>) -> Result {
    let mut code = 0;
    concurrently(
        ids,
        |id| async move { rt.wait(&id).await },
        |_, result| match result {
            Ok(exit) => {
                println!("{}", exit.exit_code);
                code = exit.exit_code;
            }
            Err(e) => code = super::report(&e.into()),
        },
    )
    .await;
    Ok(code)
}
