//! Watching containers: stats, health, events.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use libcrun_shim::{ContainerEvent, ContainerMetrics, ContainerRuntime, EventFilter};
use serde::Serialize;

use super::{CliError, Result, key_value};
use crate::args::{EventsArgs, Format, HealthArgs, StatsArgs};
use crate::output::{Table, bytes, print_json, print_json_line, timestamp, truncate};

/// One container's line of `stats`.
#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    metrics: ContainerMetrics,
    /// CPU use since the previous snapshot, in percent of one CPU.
    cpu_percent: Option<f64>,
}

/// `stats`: a table redrawn at each snapshot, or one snapshot.
pub async fn stats(rt: &ContainerRuntime, a: StatsArgs) -> Result {
    // --no-stream takes two snapshots 0.5 s apart: CPU % needs two.
    let interval = Duration::from_millis(if a.no_stream { 500 } else { 1000 });
    let mut ticks = rt.metrics_stream(&a.ids, interval).await?;
    let redraw =
        !a.no_stream && a.format.format == Format::Table && std::io::stdout().is_terminal();
    let mut previous: HashMap<String, (u64, SystemTime)> = HashMap::new();
    let mut baseline = a.no_stream;
    while let Some(tick) = ticks.next().await {
        let stats: Vec<Stats> = tick?
            .into_iter()
            .map(|m| {
                let now = m.time.unwrap_or_else(SystemTime::now);
                let cpu_percent = previous.get(&m.container_id).and_then(|(cpu, then)| {
                    let wall = now.duration_since(*then).ok()?.as_nanos() as f64;
                    (wall > 0.0)
                        .then(|| m.cpu.usage_total.saturating_sub(*cpu) as f64 * 100.0 / wall)
                });
                previous.insert(m.container_id.clone(), (m.cpu.usage_total, now));
                Stats {
                    metrics: m,
                    cpu_percent,
                }
            })
            .collect();
        if std::mem::take(&mut baseline) {
            continue;
        }
        if a.format.format == Format::Json {
            print_json_line(&stats)?;
        } else {
            let mut out = String::new();
            if redraw {
                // Clear the screen and go home.
                out.push_str("\x1b[2J\x1b[H");
            }
            out.push_str(&stats_table(&stats).render());
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(out.as_bytes())?;
            stdout.flush()?;
        }
        if a.no_stream {
            break;
        }
    }
    Ok(0)
}

fn stats_table(stats: &[Stats]) -> Table {
    let mut table = Table::new(&[
        "CONTAINER",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for s in stats {
        let m = &s.metrics;
        let limit = if m.memory.limit > 0 {
            bytes(m.memory.limit)
        } else {
            "-".into()
        };
        let percent = |p: Option<f64>| p.map_or("-".into(), |p| format!("{p:.2}%"));
        table.row(vec![
            m.container_id.clone(),
            percent(s.cpu_percent),
            format!("{} / {limit}", bytes(m.memory.usage)),
            percent(m.memory.percent()),
            format!(
                "{} / {}",
                bytes(m.network.rx_bytes),
                bytes(m.network.tx_bytes)
            ),
            format!(
                "{} / {}",
                bytes(m.blkio.read_bytes),
                bytes(m.blkio.write_bytes)
            ),
            m.pids.current.to_string(),
        ]);
    }
    table
}

/// `health`.
pub async fn health(rt: &ContainerRuntime, a: HealthArgs) -> Result {
    let health = rt.health(&a.id).await?;
    if a.format.format == Format::Json {
        print_json(&health)?;
        return Ok(0);
    }
    println!(
        "{}: {} (failing streak {})",
        health.container_id, health.status, health.failing_streak
    );
    if !health.recent_results.is_empty() {
        let mut table = Table::new(&["STARTED", "EXIT", "DURATION", "OUTPUT"]);
        for r in &health.recent_results {
            let took = match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
                _ => Duration::ZERO,
            };
            let exit = if r.timed_out {
                format!("{} (timed out)", r.exit_code)
            } else {
                r.exit_code.to_string()
            };
            table.row(vec![
                r.started_at.map_or("-".into(), timestamp),
                exit,
                format!("{took:.1?}"),
                truncate(r.output.trim(), 60),
            ]);
        }
        table.print()?;
    }
    Ok(0)
}

/// An event on one line.
fn event_line(e: &ContainerEvent) -> String {
    let mut line = format!(
        "{} #{} {} {}",
        e.time.map_or("-".into(), timestamp),
        e.sequence,
        e.event_type,
        e.container_id
    );
    if let Some(exec) = &e.exec_id {
        let _ = write!(line, " exec={exec}");
    }
    if let Some(exit) = &e.exit {
        let _ = write!(line, " exit={}", exit.exit_code);
        if exit.oom_killed {
            line.push_str(" oom");
        }
    }
    if let Some(h) = &e.health {
        let _ = write!(line, " health={}->{}", h.previous, h.current);
    }
    if let Some(r) = &e.restart {
        let _ = write!(line, " restart={}", r.restart_count);
    }
    if !e.agent.is_empty() {
        let _ = write!(line, " agent={}", e.agent);
    }
    line
}

/// `events`: until interrupted.
pub async fn events(rt: &ContainerRuntime, a: EventsArgs) -> Result {
    let mut filter = EventFilter {
        since: a.since,
        ..Default::default()
    };
    for f in &a.filters {
        let (key, value) = key_value(f);
        match key.as_str() {
            "container" | "id" => filter.container_ids.push(value),
            "type" | "event" => filter.types.push(
                value
                    .parse()
                    .map_err(|e| CliError::Usage(format!("--filter {f}: {e}")))?,
            ),
            "label" => {
                let (k, v) = key_value(&value);
                filter.labels.insert(k, v);
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "--filter {f}: expected container=, type= or label="
                )));
            }
        }
    }
    let mut events = rt.event_stream(filter).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        if a.format.format == Format::Json {
            print_json_line(&event)?;
        } else {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", event_line(&event))?;
            stdout.flush()?;
        }
    }
    Ok(0)
}
