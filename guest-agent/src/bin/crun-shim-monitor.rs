//! `crun-shim-monitor`: the small single-threaded helper of
//! `crun-shim-agent` that calls the libcrun functions which fork.
//!
//! * `crun-shim-monitor run`: waits for its instructions (a JSON line on
//!   stdin), then creates the container and monitors it until it exits
//!   (see `crun_shim_agent::monitor`).
//! * `crun-shim-monitor exec --root DIR --id ID --process FILE [--console-socket PATH]`:
//!   runs one process in a running container (see
//!   `crun_shim_agent::monitor::exec`).
//!
//! Started by the agent only; not meant to be run by hand.

use std::collections::HashMap;
use std::path::PathBuf;

use crun_shim_agent::monitor::{self, exec::ExecArgs};

fn parse(args: &[String]) -> Result<HashMap<&str, &str>, String> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let key = key
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {key:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        map.insert(key, value.as_str());
    }
    Ok(map)
}

fn get<'a>(map: &HashMap<&str, &'a str>, key: &str) -> Result<&'a str, String> {
    map.get(key)
        .copied()
        .ok_or_else(|| format!("--{key} is required"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crun-shim-monitor: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn run(args: &[String]) -> Result<i32, String> {
    let (mode, rest) = args
        .split_first()
        .ok_or("usage: crun-shim-monitor run | exec --root DIR --id ID --process FILE")?;
    if mode == "run" && rest.is_empty() {
        return Ok(monitor::run());
    }
    if mode != "exec" {
        return Err(format!("unknown mode {mode:?}"));
    }
    let map = parse(rest)?;
    let id = get(&map, "id")?.to_string();
    crun_shim_agent::ids::validate("container", &id).map_err(|e| e.to_string())?;
    Ok(monitor::exec::run(&ExecArgs {
        root: PathBuf::from(get(&map, "root")?),
        id,
        process: PathBuf::from(get(&map, "process")?),
        console_socket: map.get("console-socket").map(PathBuf::from),
    }))
}
