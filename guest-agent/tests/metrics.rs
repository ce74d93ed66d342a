//! Metrics through a real agent, moving the right way: CPU time under a
//! busy loop, memory under allocation, I/O or cache under file writes,
//! packets under TCP traffic on loopback in the container's own namespace.

mod common;

use std::time::Duration;

use common::Harness;
use libcrun_shim_proto::v1 as pb;

// Each of these runs against a fresh local agent and against the VM's agent.
crate::on_local_and_vm!(
    cpu_time_grows_under_a_busy_loop,
    memory_grows_with_allocation_and_shows_the_limit,
    writing_a_file_shows_as_io_or_cache,
    loopback_traffic_counts_in_the_containers_own_namespace,
    all_containers_at_once_and_as_a_stream,
);

async fn metrics(h: &mut Harness, id: &str) -> pb::ContainerMetrics {
    h.metrics
        .get_metrics(pb::GetMetricsRequest {
            container_id: id.into(),
        })
        .await
        .expect("metrics")
        .into_inner()
        .metrics
        .expect("metrics")
}

async fn wait_for_log(h: &mut Harness, id: &str, text: &str) {
    let wait = async {
        loop {
            let (out, _, _) = h
                .logs(pb::LogsRequest {
                    container_id: id.into(),
                    ..Default::default()
                })
                .await;
            if String::from_utf8_lossy(&out).contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The VM runs under QEMU TCG: on a loaded machine its 64 MiB write with
    // fsync took over 30 s (as the 240 s of the agent tests' Wait).
    tokio::time::timeout(Duration::from_secs(180), wait)
        .await
        .expect(text);
}

async fn cpu_time_grows_under_a_busy_loop(mut h: Harness) {
    h.run("burner", "while :; do :; done").await;
    let before = metrics(&mut h, "burner").await.cpu.unwrap();
    // On a loaded machine the loop gets less than a core: wait for the
    // counter to pass 300 ms of CPU rather than for a fixed wall time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = metrics(&mut h, "burner").await.cpu.unwrap();
        let used = now.usage_total_ns - before.usage_total_ns;
        // The user/system split is sampled at ticks (coarse in a TCG
        // guest): wait for it to show the loop as well.
        if used > 300_000_000 && now.usage_user_ns > before.usage_user_ns {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {used} ns of CPU ({} ns user) in 30 s of busy loop",
            now.usage_user_ns - before.usage_user_ns
        );
    };
    assert!(after.usage_total_ns > before.usage_total_ns);
}

async fn memory_grows_with_allocation_and_shows_the_limit(mut h: Harness) {
    let mut config = h.sh(
        "alloc",
        "echo start; sleep 1; awk 'BEGIN { s = sprintf(\"%40000000s\", \"\"); print \"ready\"; fflush(); system(\"sleep 60\") }'",
    );
    config.resources = Some(pb::Resources {
        memory_limit_bytes: Some(512 << 20),
        pids_limit: Some(64),
        ..Default::default()
    });
    h.create(config).await.unwrap();
    h.start_container("alloc").await;
    wait_for_log(&mut h, "alloc", "start").await;
    let before = metrics(&mut h, "alloc").await;
    wait_for_log(&mut h, "alloc", "ready").await;
    let after = metrics(&mut h, "alloc").await;
    let (m0, m1) = (before.memory.unwrap(), after.memory.unwrap());
    assert!(
        m1.usage_bytes > m0.usage_bytes + (30 << 20),
        "{m0:?} -> {m1:?}"
    );
    assert!(m1.rss_bytes > m0.rss_bytes + (30 << 20), "{m0:?} -> {m1:?}");
    assert!(m1.max_usage_bytes >= m1.usage_bytes);
    assert_eq!(m1.limit_bytes, 512 << 20);
    let pids = after.pids.unwrap();
    assert_eq!(pids.limit, 64);
    assert!(pids.current >= 1);
}

async fn writing_a_file_shows_as_io_or_cache(mut h: Harness) {
    h.run("writer", "sleep 1; dd if=/dev/zero of=/tmp/f bs=1M count=64 conv=fsync 2>/dev/null; echo written; sleep 60")
        .await;
    let before = metrics(&mut h, "writer").await;
    wait_for_log(&mut h, "writer", "written").await;
    let after = metrics(&mut h, "writer").await;
    let (b0, b1) = (before.blkio.unwrap(), after.blkio.unwrap());
    let (c0, c1) = (
        before.memory.unwrap().cache_bytes,
        after.memory.unwrap().cache_bytes,
    );
    assert!(
        b1.write_bytes >= b0.write_bytes + (32 << 20) || c1 >= c0 + (32 << 20),
        "neither block I/O ({b0:?} -> {b1:?}) nor file cache ({c0} -> {c1}) moved"
    );
}

async fn loopback_traffic_counts_in_the_containers_own_namespace(mut h: Harness) {
    // The listener reads from a pipe held open: a container's stdin is
    // /dev/null, whose EOF would close the connection at once.
    let script = "sleep 1; sleep 5 | nc -l -p 5000 > /dev/null & sleep 0.3; \
                  head -c 1000000 /dev/zero | nc 127.0.0.1 5000; echo sent; sleep 60";
    let config = pb::ContainerConfig {
        network_mode: pb::NetworkMode::None as i32,
        ..h.sh("talker", script)
    };
    h.create(config).await.expect("create");
    h.start_container("talker").await;
    let before = metrics(&mut h, "talker").await.network.unwrap();
    wait_for_log(&mut h, "talker", "sent").await;
    let after = metrics(&mut h, "talker").await.network.unwrap();
    let lo = |n: &pb::NetworkMetrics| {
        n.interfaces
            .iter()
            .find(|i| i.interface == "lo")
            .cloned()
            .expect("lo")
    };
    let (l0, l1) = (lo(&before), lo(&after));
    assert!(l1.rx_packets >= l0.rx_packets + 10, "{l0:?} -> {l1:?}");
    assert!(l1.rx_bytes >= l0.rx_bytes + 1_000_000, "{l0:?} -> {l1:?}");
    // A private namespace: only loopback.
    assert_eq!(after.interfaces.len(), 1, "{:?}", after.interfaces);
}

async fn all_containers_at_once_and_as_a_stream(mut h: Harness) {
    h.run("one", "sleep 60").await;
    h.run("two", "sleep 60").await;
    h.run("gone", "exit 0").await;
    h.wait("gone").await;
    let all = h
        .metrics
        .list_metrics(pb::ListMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<String> = all.metrics.iter().map(|m| m.container_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec!["one", "two"]);
    let err = h
        .metrics
        .get_metrics(pb::GetMetricsRequest {
            container_id: "gone".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    let mut stream = h
        .metrics
        .stream_metrics(pb::StreamMetricsRequest {
            container_ids: vec!["two".into()],
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 200_000_000,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        let tick = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a tick")
            .unwrap()
            .unwrap();
        assert_eq!(tick.metrics.len(), 1);
        assert_eq!(tick.metrics[0].container_id, "two");
    }
}
