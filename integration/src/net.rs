//! Networks of a test's own, and what the CNI plugins leave on them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A network name, bridge and /24 subnet no other test process uses at
/// the same time (they derive from the process id and an index), on
/// 10.192.0.0/10. On drop, the bridge and the address store the plugins
/// made for it go, whatever the test left.
#[derive(Debug)]
pub struct TestNetwork {
    /// The network's name.
    pub name: String,
    /// Its bridge interface.
    pub bridge: String,
    /// Its subnet (`10.X.Y.0/24`).
    pub subnet: String,
}

/// What the plugins made for a network: interfaces on its bridge, address
/// leases, iptables rules naming it or its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Interfaces (veth ends) on the bridge.
    pub bridge_ports: usize,
    /// host-local leases.
    pub leases: usize,
    /// iptables and ip6tables rules.
    pub rules: usize,
}

impl TestNetwork {
    /// The network numbered `index` of this process (0-15).
    pub fn new(index: u32) -> TestNetwork {
        let unique = std::process::id().wrapping_mul(16).wrapping_add(index) % (64 * 256);
        TestNetwork {
            name: format!("test-{}-{index}", std::process::id()),
            bridge: format!("ct{:x}", std::process::id() * 16 + index),
            subnet: format!("10.{}.{}.0/24", 192 + unique / 256, unique % 256),
        }
    }

    /// The subnet's address `host` (`.1` is the gateway).
    pub fn address(&self, host: u8) -> String {
        format!("{}{host}", self.subnet.trim_end_matches("0/24"))
    }

    /// What the plugins made for it now.
    pub fn footprint(&self) -> Footprint {
        let bridge_ports =
            std::fs::read_dir(Path::new("/sys/class/net").join(&self.bridge).join("brif"))
                .map(|d| d.count())
                .unwrap_or(0);
        let leases = std::fs::read_dir(Path::new("/var/lib/cni/networks").join(&self.name))
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n != "lock" && !n.starts_with("last_reserved_ip")
                    })
                    .count()
            })
            .unwrap_or(0);
        let prefix = self.subnet.trim_end_matches("0/24");
        let quoted = format!("\"{}\"", self.name);
        let rules = ["iptables-save", "ip6tables-save"]
            .iter()
            .filter_map(|tool| Command::new(tool).output().ok())
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.contains(&quoted) || l.contains(prefix))
                    .count()
            })
            .sum();
        Footprint {
            bridge_ports,
            leases,
            rules,
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(&self.name));
    }
}

/// `GET path` over HTTP/1.0 to `addr` (`IP:PORT`); the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.into())
        }
        _ => Err(std::io::Error::other(format!(
            "unexpected answer {response:?}"
        ))),
    }
}

/// A free TCP port of 127.0.0.1 (bound to port 0 and read back, then
/// freed: someone may take it in between, which no test here does).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
