//! Container networking through a real agent and the real CNI plugins:
//! containers of one network talking by address and by name, published
//! ports, a port taken twice, a hundred cycles leaving nothing, an agent
//! killed and restarted, container:ID mode, metrics, restarts, DNS
//! settings, orphans and the NetworkService. Each test works on a network
//! of its own (name, bridge and subnet).

mod common;

use std::time::Duration;

use common::{Harness, eventually};
use integration::net::{TestNetwork, free_port, http_get};
use integration::until;
use libcrun_shim_proto::v1 as pb;
use libcrun_shim_proto::v1::network_service_client::NetworkServiceClient;
use tonic::Code;

/// Creates `net` through the agent's NetworkService.
async fn create_network(h: &Harness, net: &TestNetwork) -> pb::Network {
    NetworkServiceClient::new(h.local().channel().await)
        .create_network(pb::CreateNetworkRequest {
            name: net.name.clone(),
            subnet: net.subnet.clone(),
            bridge: net.bridge.clone(),
            ..Default::default()
        })
        .await
        .expect("create network")
        .into_inner()
        .network
        .expect("network")
}

/// A container on `net` (the default network when `None`) serving
/// `/tmp/www` on port 80 with busybox httpd: `index.html` says `body`.
fn web(h: &Harness, id: &str, net: Option<&TestNetwork>, body: &str) -> pb::ContainerConfig {
    let script = format!(
        "mkdir -p /tmp/www-{id} && echo {body} > /tmp/www-{id}/index.html && exec httpd -f -p 80 -h /tmp/www-{id}"
    );
    pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: net
            .map(|n| pb::ContainerNetwork {
                name: n.name.clone(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..h.sh(id, &script)
    }
}

/// A TCP port mapping.
fn port(host_ip: &str, host_port: u16, container_port: u16) -> pb::PortMapping {
    pb::PortMapping {
        host_ip: host_ip.into(),
        host_port: host_port.into(),
        container_port: container_port.into(),
        protocol: pb::PortProtocol::Tcp as i32,
    }
}

/// The container's first address, without its prefix length.
fn ip_of(container: &pb::Container) -> String {
    let address = &container
        .networks
        .first()
        .expect("an interface")
        .ip_addresses[0];
    address.split('/').next().unwrap().to_string()
}

/// GETs `path` from `addr` until it answers (the server may be starting).
async fn fetch(addr: &str, path: &str) -> String {
    let mut body = String::new();
    until(&format!("http://{addr}{path}"), || {
        let found = http_get(addr, path);
        if let Ok(b) = &found {
            body = b.clone();
        }
        async move { found.is_ok() }
    })
    .await;
    body
}

/// The stdout a container wrote.
async fn stdout(h: &mut Harness, id: &str) -> String {
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: id.into(),
            ..Default::default()
        })
        .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn two_containers_on_one_network_talk_by_address_and_by_name() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(0);
    let created = create_network(&h, &net).await;
    assert_eq!(created.subnets[0].subnet, net.subnet);
    let before = net.footprint();

    h.create(web(&h, "web", Some(&net), "hello-from-web"))
        .await
        .unwrap();
    let web = h.start_container("web").await;
    let eth0 = &web.networks[0];
    assert_eq!(
        (eth0.network.as_str(), eth0.interface.as_str()),
        (net.name.as_str(), "eth0")
    );
    assert_eq!(eth0.gateway, net.address(1));
    assert_eq!(eth0.mac_address.len(), 17, "{eth0:?}");
    let ip = ip_of(&web);
    assert!(
        ip.starts_with(net.subnet.trim_end_matches("0/24")),
        "{ip} in {}",
        net.subnet
    );
    assert!(web.netns_path.ends_with("/netns/web"), "{}", web.netns_path);

    let script = format!(
        "for i in $(seq 100); do wget -q -O- http://{ip}/ && break; sleep 0.1; done; \
         wget -q -O- http://web/; grep -w web /etc/hosts"
    );
    let client = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: vec![pb::ContainerNetwork {
            name: net.name.clone(),
            ..Default::default()
        }],
        ..h.sh("client", &script)
    };
    h.create(client).await.unwrap();
    h.start_container("client").await;
    assert_eq!(h.wait("client").await.exit_code, 0);
    let out = stdout(&mut h, "client").await;
    assert_eq!(out, format!("hello-from-web\nhello-from-web\n{ip}\tweb\n"));

    for id in ["client", "web"] {
        h.delete(id, true).await.unwrap();
    }
    assert_eq!(net.footprint(), before, "no veth, lease or rule left");
    assert!(
        std::fs::read_dir(h.local().root().join("netns"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn a_published_port_answers_on_loopback_and_a_free_one_is_picked() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(1);
    create_network(&h, &net).await;
    let before = net.footprint();

    let fixed = free_port();
    let mut config = web(&h, "fixed", Some(&net), "fixed-port");
    config.ports = vec![port("127.0.0.1", fixed, 80)];
    h.create(config).await.unwrap();
    h.start_container("fixed").await;
    assert_eq!(
        fetch(&format!("127.0.0.1:{fixed}"), "/").await,
        "fixed-port\n"
    );

    let mut config = web(&h, "any", Some(&net), "any-port");
    config.ports = vec![port("", 0, 80)];
    let any = h.create(config).await.unwrap();
    let picked = any.ports[0].host_port;
    assert_ne!(picked, 0, "{:?}", any.ports);
    assert_eq!(any.ports[0].container_port, 80);
    h.start_container("any").await;
    assert_eq!(
        h.inspect("any").await.ports,
        any.ports,
        "Inspect shows the port"
    );
    assert_eq!(
        fetch(&format!("127.0.0.1:{picked}"), "/").await,
        "any-port\n"
    );

    // The same host port again: refused up front, naming the port, and
    // the first container still answers.
    let during = net.footprint();
    let mut twice = web(&h, "twice", Some(&net), "never");
    twice.ports = vec![port("", fixed, 8080)];
    let err = h.create(twice).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(
        err.message().contains(&format!("0.0.0.0:{fixed}/tcp")),
        "{}",
        err.message()
    );
    assert_eq!(
        h.containers
            .inspect(pb::InspectContainerRequest { id: "twice".into() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(net.footprint(), during, "nothing half-made");
    assert_eq!(
        http_get(&format!("127.0.0.1:{fixed}"), "/").unwrap(),
        "fixed-port\n"
    );

    for id in ["fixed", "any"] {
        h.delete(id, true).await.unwrap();
    }
    assert_eq!(net.footprint(), before);
    std::net::TcpListener::bind(("127.0.0.1", fixed)).expect("the port is free again");
}

#[tokio::test]
async fn a_hundred_cycles_leave_nothing_behind() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(2);
    create_network(&h, &net).await;
    // One cycle first: the plugins make their shared chains once.
    let cycle = |h: &mut Harness, n: usize| {
        let mut config = web(h, &format!("cycle{n}"), Some(&net), "x");
        config.ports = vec![port("127.0.0.1", 0, 80)];
        config
    };
    let config = cycle(&mut h, 0);
    h.create(config).await.unwrap();
    h.delete("cycle0", true).await.unwrap();
    let before = net.footprint();
    let veths = count_veths();
    for n in 1..=100 {
        let config = cycle(&mut h, n);
        h.create(config).await.unwrap();
        h.start_container(&format!("cycle{n}")).await;
        h.delete(&format!("cycle{n}"), true).await.unwrap();
    }
    assert_eq!(net.footprint(), before);
    assert!(
        count_veths() <= veths,
        "veths: {veths} before, {} after",
        count_veths()
    );
    assert!(
        std::fs::read_dir(h.local().root().join("netns"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        std::fs::read_dir(h.local().root().join("network"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// veth interfaces on the machine.
fn count_veths() -> usize {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| {
                l.to_string_lossy().contains("/virtual/")
                    && e.file_name().to_string_lossy().starts_with("veth")
            })
        })
        .count()
}

#[tokio::test]
async fn a_killed_agent_leaves_the_network_up_and_its_successor_cleans_it() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(3);
    create_network(&h, &net).await;
    let before = net.footprint();
    let mut config = web(&h, "survivor", Some(&net), "still-here");
    config.ports = vec![port("127.0.0.1", 0, 80)];
    let created = h.create(config).await.unwrap();
    let host_port = created.ports[0].host_port as u16;
    h.start_container("survivor").await;
    let ip = ip_of(&created);
    assert_eq!(
        fetch(&format!("127.0.0.1:{host_port}"), "/").await,
        "still-here\n"
    );

    h.local_mut().kill();
    // Nobody minds the container now: it still answers.
    assert_eq!(http_get(&format!("{ip}:80"), "/").unwrap(), "still-here\n");
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let adopted = h.inspect("survivor").await;
    assert_eq!(ip_of(&adopted), ip);
    assert_eq!(adopted.ports, created.ports);
    assert_eq!(http_get(&format!("{ip}:80"), "/").unwrap(), "still-here\n");
    assert_eq!(
        http_get(&format!("127.0.0.1:{host_port}"), "/").unwrap(),
        "still-here\n"
    );
    // The restarted agent holds the port again.
    let mut thief = web(&h, "thief", Some(&net), "never");
    thief.ports = vec![port("127.0.0.1", host_port, 80)];
    assert_eq!(
        h.create(thief).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    h.delete("survivor", true).await.unwrap();
    assert_eq!(net.footprint(), before);
}

/// Whether a create is half-way with its network attached: an attachment
/// record and no container record yet.
fn attached_before_its_record(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join("network"))
        .map(|d| {
            d.flatten().any(|e| {
                e.path().join("attachment.json").exists()
                    && !root
                        .join("containers")
                        .join(e.file_name())
                        .join("record.json")
                        .exists()
            })
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn bridged_creates_cut_by_an_agent_sigkill_leave_no_network_behind() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(9);
    create_network(&h, &net).await;
    let config = |h: &Harness, id: &str| {
        let mut config = web(h, id, Some(&net), "x");
        config.ports = vec![port("127.0.0.1", 0, 80)];
        config
    };
    // One cycle first: the plugins make their shared chains once.
    h.create(config(&h, "warm")).await.unwrap();
    h.delete("warm", true).await.unwrap();
    let before = net.footprint();
    let root = h.local().root();
    let ids: Vec<String> = (0..10).map(|i| format!("netcut{i}")).collect();
    let creates = h.create_concurrently(ids.iter().map(|id| config(&h, id)).collect());
    // SIGKILL while a create has its network and no record.
    assert!(
        eventually(Duration::from_secs(30), || attached_before_its_record(
            &root
        ))
        .await,
        "no create seen attached before its record"
    );
    h.local_mut().kill();
    for create in creates {
        let _ = create.await;
    }

    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let listed: Vec<String> = h
        .containers
        .list(pb::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect();
    for id in ids.iter().filter(|id| !listed.contains(id)) {
        assert!(
            !root.join("network").join(id).exists(),
            "{id}: attachment left"
        );
        assert!(
            !root.join("netns").join(id).exists(),
            "{id}: namespace left"
        );
    }
    eprintln!("{} of {} creates completed", listed.len(), ids.len());
    for id in &listed {
        h.delete(id, true).await.unwrap();
    }
    assert_eq!(net.footprint(), before);
}

#[tokio::test]
async fn a_container_joins_another_ones_namespace() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(4);
    create_network(&h, &net).await;
    h.create(web(&h, "pod", Some(&net), "from-the-pod"))
        .await
        .unwrap();
    let pod = h.start_container("pod").await;
    let script = "ip -o -4 addr show eth0; \
                  for i in $(seq 100); do wget -q -O- http://127.0.0.1/ && break; sleep 0.1; done";
    let member = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Container as i32,
        network_container: "pod".into(),
        ..h.sh("member", script)
    };
    let joined = h.create(member).await.unwrap();
    assert_eq!(joined.networks, pod.networks);
    assert_eq!(joined.netns_path, pod.netns_path);
    h.start_container("member").await;
    assert_eq!(h.wait("member").await.exit_code, 0);
    let out = stdout(&mut h, "member").await;
    assert!(out.contains(&format!("inet {}/24", ip_of(&pod))), "{out}");
    assert!(out.ends_with("from-the-pod\n"), "{out}");

    // The pod cannot go while a member runs in it.
    let member = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Container as i32,
        network_container: "pod".into(),
        ..h.sh("sleeper", "sleep 600")
    };
    h.create(member).await.unwrap();
    h.start_container("sleeper").await;
    let err = h.delete("pod", true).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("sleeper"), "{}", err.message());
    for id in ["sleeper", "member", "pod"] {
        h.delete(id, true).await.unwrap();
    }
    // Joining a container that does not exist, or settings that belong to
    // the joined container.
    let lost = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Container as i32,
        network_container: "nobody".into(),
        ..h.sh("lost", "true")
    };
    assert_eq!(h.create(lost).await.unwrap_err().code(), Code::NotFound);
    let confused = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Container as i32,
        network_container: "nobody".into(),
        ports: vec![port("", 0, 80)],
        ..h.sh("confused", "true")
    };
    assert_eq!(
        h.create(confused).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn metrics_count_the_traffic_of_the_containers_interface() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(5);
    create_network(&h, &net).await;
    let script = "mkdir -p /tmp/www-m && head -c 2000000 /dev/zero > /tmp/www-m/big && \
                  exec httpd -f -p 80 -h /tmp/www-m";
    let config = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: vec![pb::ContainerNetwork {
            name: net.name.clone(),
            ..Default::default()
        }],
        ..h.sh("talker", script)
    };
    h.create(config).await.unwrap();
    let talker = h.start_container("talker").await;
    let eth0 = |m: &pb::ContainerMetrics| {
        m.network
            .as_ref()
            .and_then(|n| n.interfaces.iter().find(|i| i.interface == "eth0").cloned())
            .expect("eth0 counters")
    };
    let get = |h: &mut Harness| {
        let mut metrics = h.metrics.clone();
        async move {
            metrics
                .get_metrics(pb::GetMetricsRequest {
                    container_id: "talker".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .metrics
                .unwrap()
        }
    };
    let before = get(&mut h).await;
    let body = fetch(&format!("{}:80", ip_of(&talker)), "/big").await;
    assert_eq!(body.len(), 2_000_000);
    let after = get(&mut h).await;
    let (e0, e1) = (eth0(&before), eth0(&after));
    assert!(e1.tx_bytes >= e0.tx_bytes + 2_000_000, "{e0:?} -> {e1:?}");
    assert!(
        e1.tx_packets > e0.tx_packets && e1.rx_packets > e0.rx_packets,
        "{e0:?} -> {e1:?}"
    );
    let (n0, n1) = (before.network.unwrap(), after.network.unwrap());
    assert!(n1.tx_bytes >= n0.tx_bytes + 2_000_000 && n1.rx_bytes > n0.rx_bytes);
    h.delete("talker", true).await.unwrap();
}

#[tokio::test]
async fn a_restarted_container_keeps_its_address() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(6);
    create_network(&h, &net).await;
    let config = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: vec![pb::ContainerNetwork {
            name: net.name.clone(),
            ..Default::default()
        }],
        restart_policy: Some(pb::RestartPolicy {
            kind: pb::restart_policy::Kind::OnFailure as i32,
            max_retries: 2,
        }),
        ..h.sh(
            "flaky",
            "ip -o -4 addr show eth0 | awk '{print $4}'; exit 1",
        )
    };
    let created = h.create(config).await.unwrap();
    h.start_container("flaky").await;
    until("two restarts", || {
        let mut containers = h.containers.clone();
        async move {
            let c = containers
                .inspect(pb::InspectContainerRequest { id: "flaky".into() })
                .await
                .unwrap()
                .into_inner()
                .container
                .unwrap();
            c.restart_count == 2 && c.status == pb::ContainerStatus::Stopped as i32
        }
    })
    .await;
    let address = &created.networks[0].ip_addresses[0];
    assert_eq!(
        stdout(&mut h, "flaky").await,
        format!("{address}\n").repeat(3)
    );
    h.delete("flaky", false).await.unwrap();
}

#[tokio::test]
async fn dns_settings_and_host_entries_in_every_mode() {
    let mut h = Harness::start().await;
    let dns = pb::DnsConfig {
        servers: vec!["192.0.2.53".into()],
        searches: vec!["example.test".into()],
        options: vec!["ndots:2".into()],
    };
    let hosts = vec![pb::HostEntry {
        hostname: "db".into(),
        ip: "192.0.2.10".into(),
    }];
    for (id, mode) in [
        ("dns-bridge", pb::NetworkMode::Bridge),
        ("dns-none", pb::NetworkMode::None),
        ("dns-host", pb::NetworkMode::Host),
    ] {
        let config = pb::ContainerConfig {
            network_mode: mode as i32,
            dns: Some(dns.clone()),
            extra_hosts: hosts.clone(),
            ..h.sh(id, "cat /etc/resolv.conf /etc/hosts")
        };
        h.create(config).await.unwrap();
        h.start_container(id).await;
        assert_eq!(h.wait(id).await.exit_code, 0);
        let out = stdout(&mut h, id).await;
        for line in [
            "search example.test\n",
            "nameserver 192.0.2.53\n",
            "options ndots:2\n",
            "192.0.2.10\tdb\n",
        ] {
            assert!(out.contains(line), "{id}: {line:?} not in {out}");
        }
        h.delete(id, false).await.unwrap();
    }
    let bad = pb::ContainerConfig {
        dns: Some(pb::DnsConfig {
            servers: vec!["not-an-ip".into()],
            ..Default::default()
        }),
        ..h.sh("bad-dns", "true")
    };
    assert_eq!(
        h.create(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn an_attachment_without_its_container_is_an_orphan_force_delete_removes() {
    let mut h = Harness::start().await;
    let net = TestNetwork::new(7);
    create_network(&h, &net).await;
    let before = net.footprint();
    h.create(web(&h, "lost", Some(&net), "x")).await.unwrap();
    h.start_container("lost").await;
    h.local_mut().kill();
    // A damaged record: the container is no longer known (a missing one
    // would be a create in flight, undone at start).
    std::fs::write(h.local().root().join("containers/lost/record.json"), "{").unwrap();
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let orphans = h
        .system
        .list_orphaned(pb::ListOrphanedRequest::default())
        .await
        .unwrap()
        .into_inner()
        .orphans;
    assert!(
        orphans
            .iter()
            .any(|o| o.kind == pb::OrphanKind::Network as i32 && o.container_id == "lost"),
        "{orphans:?}"
    );
    let removed = h
        .system
        .force_delete(pb::ForceDeleteRequest { id: "lost".into() })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert!(
        removed
            .iter()
            .any(|o| o.kind == pb::OrphanKind::Network as i32),
        "{removed:?}"
    );
    assert_eq!(net.footprint(), before);
}

#[tokio::test]
async fn networks_are_created_listed_inspected_and_removed() {
    let mut h = Harness::start().await;
    let mut networks = NetworkServiceClient::new(h.local().channel().await);
    let net = TestNetwork::new(8);
    create_network(&h, &net).await;
    let list = networks
        .list_networks(pb::ListNetworksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .networks;
    let names: Vec<(&str, bool)> = list
        .iter()
        .map(|n| (n.name.as_str(), n.is_default))
        .collect();
    assert!(names.contains(&("crun-shim", true)), "{names:?}");
    assert!(names.contains(&(net.name.as_str(), false)), "{names:?}");
    let mine = list.iter().find(|n| n.name == net.name).unwrap();
    assert_eq!(mine.plugins[..2], ["bridge", "portmap"]);
    assert_eq!(mine.bridge, net.bridge);
    assert!(mine.ip_masquerade && !mine.internal);

    let duplicate = networks
        .create_network(pb::CreateNetworkRequest {
            name: net.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let unknown = pb::ContainerConfig {
        network_mode: pb::NetworkMode::Bridge as i32,
        networks: vec![pb::ContainerNetwork {
            name: "no-such-network".into(),
            ..Default::default()
        }],
        ..h.sh("stray", "true")
    };
    assert_eq!(h.create(unknown).await.unwrap_err().code(), Code::NotFound);

    h.create(web(&h, "member", Some(&net), "x")).await.unwrap();
    let inspected = networks
        .inspect_network(pb::InspectNetworkRequest {
            name: net.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(inspected.members.len(), 1);
    assert_eq!(inspected.members[0].container_id, "member");
    let in_use = networks
        .remove_network(pb::RemoveNetworkRequest {
            name: net.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(in_use.code(), Code::FailedPrecondition);
    assert!(in_use.message().contains("member"), "{}", in_use.message());
    let default = networks
        .remove_network(pb::RemoveNetworkRequest {
            name: "crun-shim".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(default.code(), Code::FailedPrecondition);

    h.delete("member", true).await.unwrap();
    networks
        .remove_network(pb::RemoveNetworkRequest {
            name: net.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&net.bridge)
            .exists()
    );
    let gone = networks
        .inspect_network(pb::InspectNetworkRequest {
            name: net.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // A subnet picked by the agent.
    let picked = networks
        .create_network(pb::CreateNetworkRequest {
            name: format!("{}-auto", net.name),
            internal: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(picked.subnets[0].subnet.starts_with("10.78."), "{picked:?}");
    assert!(picked.internal && !picked.ip_masquerade);
    networks
        .remove_network(pb::RemoveNetworkRequest {
            name: picked.name,
            ..Default::default()
        })
        .await
        .unwrap();
}
