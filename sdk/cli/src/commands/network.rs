//! Networks: network ls, create, rm, inspect; and port.

use libcrun_shim::{ContainerRuntime, NetworkOptions, PortMapping, Protocol};

use super::{CliError, Result, key_values};
use crate::args::{Format, NetworkCommand, PortArgs};
use crate::output::{Table, print_json};

/// A published port as `ps` shows it: `127.0.0.1:8080->80/tcp`.
pub fn published(p: &PortMapping) -> String {
    format!("{}->{}/{}", host_side(p), p.container_port, p.protocol)
}

/// The host side of a published port: `127.0.0.1:8080`, `0.0.0.0:8080`,
/// `[::1]:8080`.
fn host_side(p: &PortMapping) -> String {
    let ip = p
        .host_ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    std::net::SocketAddr::new(ip, p.host_port).to_string()
}

/// `port`: `80/tcp -> 127.0.0.1:8080` per published port; with a port,
/// only its host side.
pub async fn port(rt: &ContainerRuntime, a: PortArgs) -> Result {
    let info = rt.inspect(&a.id).await?;
    let Some(wanted) = a.port else {
        for p in &info.ports {
            println!("{}/{} -> {}", p.container_port, p.protocol, host_side(p));
        }
        return Ok(0);
    };
    let (number, protocol) = match wanted.split_once('/') {
        Some((n, "tcp")) => (n, Protocol::Tcp),
        Some((n, "udp")) => (n, Protocol::Udp),
        Some(_) => {
            return Err(CliError::Usage(format!(
                "{wanted}: expected PORT[/tcp|udp]"
            )));
        }
        None => (wanted.as_str(), Protocol::Tcp),
    };
    let number: u16 = number
        .parse()
        .map_err(|_| CliError::Usage(format!("{wanted}: expected PORT[/tcp|udp]")))?;
    let found: Vec<&PortMapping> = info
        .ports
        .iter()
        .filter(|p| p.container_port == number && p.protocol == protocol)
        .collect();
    if found.is_empty() {
        return Err(CliError::Usage(format!(
            "no published port {number}/{protocol} on container {}",
            a.id
        )));
    }
    for p in found {
        println!("{}", host_side(p));
    }
    Ok(0)
}

/// `network ...`.
pub async fn network(rt: &ContainerRuntime, command: NetworkCommand) -> Result {
    let networks = rt.networks();
    match command {
        NetworkCommand::Ls(a) => {
            let list = networks.list().await?;
            if a.quiet {
                for n in &list {
                    println!("{}", n.name);
                }
                return Ok(0);
            }
            if a.format.format == Format::Json {
                print_json(&list)?;
                return Ok(0);
            }
            let with_agent = list.iter().any(|n| !n.agent.is_empty());
            let mut headers = vec!["NAME", "DRIVER", "BRIDGE", "SUBNET", "CONTAINERS"];
            if with_agent {
                headers.push("AGENT");
            }
            let mut table = Table::new(&headers);
            for n in &list {
                let name = if n.is_default {
                    format!("{} (default)", n.name)
                } else {
                    n.name.clone()
                };
                let subnets: Vec<&str> = n.subnets.iter().map(|s| s.subnet.as_str()).collect();
                let mut row = vec![
                    name,
                    n.driver.clone(),
                    n.bridge.clone().unwrap_or_default(),
                    subnets.join(", "),
                    n.members.len().to_string(),
                ];
                if with_agent {
                    row.push(n.agent.clone());
                }
                table.row(row);
            }
            table.print()?;
            Ok(0)
        }
        NetworkCommand::Create(a) => {
            let options = NetworkOptions {
                subnet: a.subnet,
                gateway: a.gateway,
                bridge: a.bridge,
                internal: a.internal,
                labels: key_values(&a.labels),
            };
            let created = networks.create(&a.name, options).await?;
            println!("{}", created.name);
            Ok(0)
        }
        NetworkCommand::Rm(a) => {
            let mut code = 0;
            for name in a.names {
                match networks.remove(&name).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => code = super::report(&e.into()),
                }
            }
            Ok(code)
        }
        NetworkCommand::Inspect(a) => {
            let mut all = Vec::new();
            let mut code = 0;
            for name in a.names {
                match networks.inspect(&name).await {
                    Ok(n) => {
                        let mut value = serde_json::to_value(&n)?;
                        // The configuration list as JSON, not as a string.
                        if let Ok(conf) = serde_json::from_str::<serde_json::Value>(&n.config_json)
                        {
                            value["config_json"] = conf;
                        }
                        all.push(value);
                    }
                    Err(e) => code = super::report(&e.into()),
                }
            }
            print_json(&all)?;
            Ok(code)
        }
    }
}
