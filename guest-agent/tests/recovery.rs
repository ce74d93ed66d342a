//! The agent killed with SIGKILL and restarted: containers and their log
//! capture go on, exits that happened meanwhile are reported exactly.

mod common;

use std::time::Duration;

use common::{Harness, alive, eventually};
use libcrun_shim_proto::v1 as pb;

fn log_size(h: &Harness, id: &str) -> u64 {
    std::fs::read_dir(h.agent.root().join(format!("containers/{id}/logs")))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn containers_and_logs_survive_an_agent_sigkill() {
    let mut h = Harness::start().await;
    let running = h
        .run(
            "ticker",
            "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done",
        )
        .await;
    let exits_later = h.run("later", "sleep 1; exit 7").await;
    assert!(eventually(Duration::from_secs(5), || log_size(&h, "ticker") > 0).await);

    h.agent.kill();
    let before = log_size(&h, "ticker");
    // While no agent runs: the container lives, its log grows, and the
    // other container exits.
    assert!(
        eventually(Duration::from_secs(5), || log_size(&h, "ticker")
            > before + 100)
        .await,
        "log capture stopped with the agent"
    );
    assert!(alive(running.pid as i32), "container died with the agent");
    let later_pid = exits_later.pid as i32;
    assert!(eventually(Duration::from_secs(10), || !alive(later_pid)).await);

    h.agent.restart().expect("restart");
    h.reconnect().await;
    let ticker = h.inspect("ticker").await;
    assert_eq!(Harness::status(&ticker), pb::ContainerStatus::Running);
    assert_eq!(ticker.pid, running.pid);
    let later = h.inspect("later").await;
    assert_eq!(Harness::status(&later), pb::ContainerStatus::Stopped);
    let exit = later
        .last_exit
        .expect("exit recorded while the agent was down");
    assert_eq!((exit.exit_code, exit.signal), (7, 0));
    assert_eq!(h.wait("later").await.exit_code, 7);

    // The log has no gap: every tick from 1 on, in order.
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "ticker".into(),
            ..Default::default()
        })
        .await;
    let text = String::from_utf8(out).unwrap();
    for (n, line) in text.lines().enumerate() {
        assert_eq!(line, format!("tick {}", n + 1));
    }

    // The adopted container is fully controllable: its exit is seen.
    h.containers
        .kill(pb::KillContainerRequest {
            id: "ticker".into(),
            signal: "9".into(),
            all: false,
        })
        .await
        .expect("kill");
    let exit = h.wait("ticker").await;
    assert_eq!((exit.exit_code, exit.signal), (137, 9));
    h.delete("ticker", false).await.expect("delete");
}

#[tokio::test]
async fn a_created_container_survives_a_restart_and_starts() {
    let mut h = Harness::start().await;
    let config = h.sh("waiting", "echo started; exit 0");
    h.create(config).await.unwrap();
    h.agent.restart().expect("restart");
    h.reconnect().await;
    assert_eq!(
        Harness::status(&h.inspect("waiting").await),
        pb::ContainerStatus::Created
    );
    h.start_container("waiting").await;
    assert_eq!(h.wait("waiting").await.exit_code, 0);
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "waiting".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"started\n");
}
