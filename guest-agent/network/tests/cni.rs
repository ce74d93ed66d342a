//! The networking against the real CNI plugins (Debian's
//! containernetworking-plugins), in network namespaces the tests create,
//! on a bridge and subnet of each test's own. Needs root.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crun_shim_network::{
    AttachRequest, DefaultNetwork, Error, NetworkRequest, NetworkSpec, Networking,
    NetworkingOptions, Phase, PortMapping, Protocol,
};

/// A test's own networking: state, namespaces and definitions in a
/// temporary directory, and one network with a unique name, bridge and
/// subnet, removed at the end with whatever the test left.
struct Fixture {
    dir: tempfile::TempDir,
    net: Option<Networking>,
    network: String,
    bridge: String,
    subnet: String,
}

impl Fixture {
    fn new(index: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let unique = (std::process::id() * 8 + index) % (56 * 256);
        let subnet = format!("10.{}.{}.0/24", 200 + unique / 256, unique % 256);
        let bridge = format!("cst{:x}", std::process::id() * 8 + index);
        let network = format!("t{}-{index}", std::process::id());
        let mut fixture = Fixture {
            dir,
            net: None,
            network,
            bridge,
            subnet,
        };
        fixture.reopen();
        fixture
            .net()
            .create_network(&NetworkSpec {
                name: fixture.network.clone(),
                subnet: Some(fixture.subnet.parse().unwrap()),
                bridge: Some(fixture.bridge.clone()),
                ..Default::default()
            })
            .unwrap();
        fixture
    }

    fn options(&self) -> NetworkingOptions {
        let mut options = NetworkingOptions::new(
            self.dir.path().join("state"),
            self.dir.path().join("netns"),
            self.dir.path().join("net.d"),
        );
        // Never used: keeps the host's default network out of the test.
        options.default_network = DefaultNetwork {
            name: format!("{}-default", self.network_name_base()),
            bridge: "cstunused0".into(),
            subnet: "10.199.255.0/24".parse().unwrap(),
        };
        options
    }

    fn network_name_base(&self) -> String {
        self.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
            .to_string()
    }

    /// Opens the networking again on the same directories, as an agent
    /// restarted after a SIGKILL does (the old one is dropped without any
    /// teardown).
    fn reopen(&mut self) {
        drop(self.net.take());
        self.net = Some(Networking::open(self.options()).unwrap());
    }

    fn net(&self) -> &Networking {
        self.net.as_ref().unwrap()
    }

    fn request(&self, id: &str) -> AttachRequest {
        AttachRequest {
            container_id: id.into(),
            names: vec![id.into()],
            networks: vec![NetworkRequest {
                name: self.network.clone(),
                ip: None,
                aliases: Vec::new(),
            }],
            ..Default::default()
        }
    }

    /// What the plugins made for this test's network: interfaces on its
    /// bridge, IPAM leases, iptables rules naming it or its subnet.
    fn footprint(&self) -> (usize, usize, usize) {
        let brif = std::fs::read_dir(Path::new("/sys/class/net").join(&self.bridge).join("brif"))
            .map(|d| d.count())
            .unwrap_or(0);
        let leases = std::fs::read_dir(Path::new("/var/lib/cni/networks").join(&self.network))
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n != "lock" && !n.starts_with("last_reserved_ip")
                    })
                    .count()
            })
            .unwrap_or(0);
        let prefix = self.subnet.trim_end_matches("0/24");
        let rules = run("iptables-save", &[])
            .lines()
            .chain(run("ip6tables-save", &[]).lines())
            .filter(|l| l.contains(&format!("\"{}\"", self.network)) || l.contains(prefix))
            .count();
        (brif, leases, rules)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(net) = &self.net {
            for a in net.attachments() {
                let _ = net.detach(&a.container_id);
            }
            let _ = net.remove_network(&self.network);
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(&self.network));
    }
}

/// A mapping of `container_port` from `host_port` (0: any).
fn port(
    host_ip: Option<&str>,
    host_port: u16,
    container_port: u16,
    protocol: Protocol,
) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(|ip| ip.parse().unwrap()),
        host_port,
        container_port,
        protocol,
    }
}

/// A mapping of TCP port 80 from `host_port`.
fn port_of(host_ip: Option<&str>, host_port: u16) -> PortMapping {
    port(host_ip, host_port, 80, Protocol::Tcp)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in network namespace `netns`.
fn in_netns(netns: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).args(args);
    cmd
}

/// busybox httpd serving `body` on port 80 of `netns`, stopped on drop
/// (with its document root).
struct Httpd(Child, #[allow(dead_code)] tempfile::TempDir);

impl Httpd {
    fn start(netns: &Path, body: &str) -> Httpd {
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), body).unwrap();
        let child = in_netns(netns, &["busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(www.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Httpd(child, www)
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET / over plain TCP; the body, or an error.
fn http_get(addr: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// GET / from inside network namespace `netns` (a thread that enters it).
fn http_get_from(netns: &Path, addr: &str) -> std::io::Result<String> {
    let file = std::fs::File::open(netns)?;
    let addr = addr.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
        http_get(&addr)
    })
    .join()
    .unwrap()
}

/// Retries `f` until it gives `Some`, for at most `limit`.
fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ipv4(addrs: &[IpAddr]) -> IpAddr {
    *addrs.iter().find(|a| a.is_ipv4()).expect("an IPv4 address")
}

#[test]
fn two_namespaces_on_one_network_reach_each_other_and_know_each_others_names() {
    let f = Fixture::new(0);
    let before = f.footprint();
    let mut web = f.request("web");
    web.networks[0].aliases = vec!["www".into()];
    let a = f.net().attach(&web).unwrap();
    let b = f.net().attach(&f.request("client")).unwrap();
    assert_eq!(a.phase, Phase::Ready);
    let (ia, ib) = (a.interfaces(), b.interfaces());
    assert_eq!(ia[0].ifname, "eth0");
    assert_eq!(ia[0].network, f.network);
    assert!(ia[0].mac.len() == 17, "a MAC address: {:?}", ia[0].mac);
    let subnet: ipnet::IpNet = f.subnet.parse().unwrap();
    assert!(subnet.contains(&ia[0].addresses[0].addr()));
    assert_eq!(ia[0].gateway, subnet.hosts().next());
    assert_ne!(ia[0].addresses, ib[0].addresses);
    let (ip_a, ip_b) = (ipv4(&a.addresses()), ipv4(&b.addresses()));

    // The interface really is in the namespace, loopback up.
    let addr = String::from_utf8(
        in_netns(&a.netns, &["ip", "-o", "addr"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(addr.contains(&format!("eth0    inet {ip_a}/24")), "{addr}");
    assert!(addr.contains("lo    inet 127.0.0.1/8"), "{addr}");

    let _httpd = Httpd::start(&a.netns, "hello from web");
    let fetched = until(Duration::from_secs(10), || {
        http_get_from(&b.netns, &format!("{ip_a}:80")).ok()
    });
    assert_eq!(fetched.as_deref(), Some("hello from web"));

    // Each knows the other by name, and a leaver is forgotten.
    let hosts = |id: &str| std::fs::read_to_string(f.net().hosts_path(id)).unwrap();
    assert!(
        hosts("client").contains(&format!("{ip_a}\tweb www\n")),
        "{}",
        hosts("client")
    );
    assert!(
        hosts("web").contains(&format!("{ip_b}\tclient\n")),
        "{}",
        hosts("web")
    );
    assert!(hosts("web").contains(&format!("{ip_a}\tweb\n")));
    let resolv = std::fs::read_to_string(f.net().resolv_conf_path("web")).unwrap();
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    assert!(f.net().detach("client").unwrap());
    assert!(!hosts("web").contains("client"), "{}", hosts("web"));
    assert!(!f.net().detach("client").unwrap(), "nothing left to detach");
    f.net().detach("web").unwrap();
    assert_eq!(
        f.footprint(),
        before,
        "veths, leases and rules all released"
    );
    assert!(!a.netns.exists() && !b.netns.exists());
}

#[test]
fn a_published_port_answers_on_loopback_and_a_taken_one_fails_up_front() {
    let f = Fixture::new(1);
    let before = f.footprint();
    let mut request = f.request("pub");
    request.ports = vec![
        port(Some("127.0.0.1"), 0, 80, Protocol::Tcp),
        port(None, 0, 8080, Protocol::Udp),
    ];
    let a = f.net().attach(&request).unwrap();
    let port = a.ports[0].host_port;
    assert_ne!(port, 0, "a free port was picked");
    assert_ne!(a.ports[1].host_port, 0);
    let _httpd = Httpd::start(&a.netns, "published");
    let body = until(Duration::from_secs(10), || {
        http_get(&format!("127.0.0.1:{port}")).ok()
    });
    assert_eq!(body.as_deref(), Some("published"));

    // The same host port again: refused before anything is made.
    let mut twice = f.request("twice");
    twice.ports = vec![port_of(None, port)];
    let during = f.footprint();
    let err = f.net().attach(&twice).unwrap_err();
    assert!(
        matches!(&err, Error::PortInUse { port: p, .. } if p == &format!("0.0.0.0:{port}/tcp")),
        "{err}"
    );
    assert!(f.net().attachment("twice").is_none());
    assert!(!f.net().hosts_path("twice").exists());
    assert!(!f.net().netns_dir().path("twice").exists());
    assert_eq!(f.footprint(), during);
    // And the first one still answers.
    assert_eq!(http_get(&format!("127.0.0.1:{port}")).unwrap(), "published");

    f.net().detach("pub").unwrap();
    assert_eq!(f.footprint(), before);
    // The port is free again.
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn a_fixed_address_a_bad_request_and_check() {
    let f = Fixture::new(2);
    let subnet: ipnet::Ipv4Net = f.subnet.parse().unwrap();
    let wanted = IpAddr::V4(subnet.hosts().nth(41).unwrap());
    let mut request = f.request("fixed");
    request.networks[0].ip = Some(wanted);
    let a = f.net().attach(&request).unwrap();
    assert_eq!(a.addresses(), [wanted]);
    f.net().check("fixed").unwrap();

    let mut outside = f.request("outside");
    outside.networks[0].ip = Some("192.0.2.7".parse().unwrap());
    assert!(matches!(
        f.net().attach(&outside),
        Err(Error::InvalidArgument(_))
    ));
    let mut unknown = f.request("unknown");
    unknown.networks[0].name = "no-such-network".into();
    assert!(matches!(
        f.net().attach(&unknown),
        Err(Error::NetworkNotFound(_))
    ));
    // The address is taken: host-local refuses, and nothing is left.
    let before = f.footprint();
    let mut taken = f.request("taken");
    taken.networks[0].ip = Some(wanted);
    let err = f.net().attach(&taken).unwrap_err();
    assert!(matches!(err, Error::Plugin { .. }), "{err}");
    assert!(f.net().attachment("taken").is_none());
    assert_eq!(f.footprint(), before);

    assert!(matches!(
        f.net().remove_network(&f.network),
        Err(Error::NetworkInUse(_))
    ));
    f.net().detach("fixed").unwrap();
    f.net().remove_network(&f.network).unwrap();
    assert!(
        !Path::new("/sys/class/net").join(&f.bridge).exists(),
        "the idle bridge is removed"
    );
    assert!(!Path::new("/var/lib/cni/networks").join(&f.network).exists());
}

#[test]
fn a_restarted_runtime_adopts_finishes_or_remakes_attachments() {
    let mut f = Fixture::new(3);
    let before = f.footprint();
    let mut request = f.request("kept");
    request.ports = vec![port(Some("127.0.0.1"), 0, 80, Protocol::Tcp)];
    let kept = f.net().attach(&request).unwrap();
    let half = f.net().attach(&f.request("half")).unwrap();
    let gone = f.net().attach(&f.request("gone")).unwrap();
    let port = kept.ports[0].host_port;
    let _httpd = Httpd::start(&kept.netns, "still here");
    assert!(
        until(Duration::from_secs(10), || http_get(&format!(
            "127.0.0.1:{port}"
        ))
        .ok())
        .is_some()
    );

    // A crash in the middle of making "half" (its record says creating),
    // and "gone" lost its namespace (as after a reboot).
    let record = f.dir.path().join("state/half/attachment.json");
    let text = std::fs::read_to_string(&record)
        .unwrap()
        .replace("\"ready\"", "\"creating\"");
    std::fs::write(&record, text).unwrap();
    f.net().netns_dir().remove("gone").unwrap();
    f.reopen();
    let report = f.net().recover();
    assert_eq!(report.ready, ["kept"]);
    assert_eq!(report.torn_down, ["half"]);
    assert_eq!(report.remade, ["gone"]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(f.net().attachment("half").is_none());
    assert!(!half.netns.exists());
    let remade = f.net().attachment("gone").unwrap();
    assert_eq!(
        remade.addresses(),
        gone.addresses(),
        "the same address again"
    );
    assert!(remade.netns.exists());

    // The adopted one still answers, and its port is held again.
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}")).unwrap(),
        "still here"
    );
    let mut thief = f.request("thief");
    thief.ports = vec![port_of(Some("127.0.0.1"), port)];
    assert!(matches!(
        f.net().attach(&thief),
        Err(Error::PortInUse { .. })
    ));

    f.net().detach("kept").unwrap();
    f.net().detach("gone").unwrap();
    assert_eq!(f.footprint(), before);
}

#[test]
fn namespaces_outlive_a_private_mount_namespace() {
    // The helper below runs in a private mount namespace (as the agent
    // does) with this process's as the durable one, attaches, and dies
    // without detaching.
    let f = Fixture::new(4);
    let before = f.footprint();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "slave"])
        .arg(&exe)
        .args([
            "--exact",
            "attach_from_a_private_mount_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "CST_HOST_MNT",
            format!("/proc/{}/ns/mnt", std::process::id()),
        )
        .env("CST_DIR", f.dir.path())
        .env("CST_NETWORK", &f.network)
        .env("CST_DEFAULT", f.options().default_network.name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let netns = f.net().netns_dir().path("crashed");
    assert!(
        crun_shim_network::netns::is_netns(&netns),
        "the namespace is mounted here too"
    );
    let mut f = f;
    f.reopen();
    let report = f.net().recover();
    assert_eq!(report.ready, ["crashed"]);
    f.net().detach("crashed").unwrap();
    assert!(!netns.exists());
    assert_eq!(f.footprint(), before);
}

#[test]
#[ignore = "run by namespaces_outlive_a_private_mount_namespace"]
fn attach_from_a_private_mount_namespace() {
    let (Ok(mnt), Ok(dir), Ok(network), Ok(default)) = (
        std::env::var("CST_HOST_MNT"),
        std::env::var("CST_DIR"),
        std::env::var("CST_NETWORK"),
        std::env::var("CST_DEFAULT"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut options =
        NetworkingOptions::new(dir.join("state"), dir.join("netns"), dir.join("net.d"));
    options.default_network.name = default;
    options.durable_mount_namespace = Some(std::sync::Arc::new(
        std::fs::File::open(mnt).unwrap().into(),
    ));
    let net = Networking::open(options).unwrap();
    let a = net
        .attach(&AttachRequest {
            container_id: "crashed".into(),
            names: vec!["crashed".into()],
            networks: vec![NetworkRequest {
                name: network,
                ip: None,
                aliases: Vec::new(),
            }],
            ..Default::default()
        })
        .unwrap();
    // Visible here, where the plugins ran.
    assert!(crun_shim_network::netns::is_netns(&a.netns));
    std::process::exit(0);
}

#[test]
fn the_firewall_plugin_where_a_network_asks_for_it() {
    // Networks made here have it only where FORWARD drops by default; a
    // hand-written one asks for it.
    let mut f = Fixture::new(5);
    let walled = format!("{}-fw", f.network);
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": walled,
        "plugins": [
            {"type": "bridge", "bridge": f.bridge, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": f.subnet}]]}},
            {"type": "firewall"}
        ]
    });
    f.net().remove_network(&f.network).unwrap();
    std::fs::write(
        f.dir.path().join(format!("net.d/{walled}.conflist")),
        list.to_string(),
    )
    .unwrap();
    let mut request = f.request("walled");
    request.networks[0].name = walled.clone();
    let a = f.net().attach(&request).unwrap();
    let ip = ipv4(&a.addresses()).to_string();
    let rules = || {
        run("iptables", &["-S", "CNI-FORWARD"])
            .lines()
            .filter(|l| l.contains(&format!("{ip}/32")))
            .count()
    };
    assert_eq!(rules(), 2, "{}", run("iptables", &["-S", "CNI-FORWARD"]));
    f.net().check("walled").unwrap();
    f.net().detach("walled").unwrap();
    assert_eq!(rules(), 0);
    f.network = walled;
}
