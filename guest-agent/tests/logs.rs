//! Logs through a real agent: follow ending with the container, tail,
//! since/until, stream selection, and 200 MB without loss or reordering.

mod common;

use std::time::{Duration, SystemTime};

use common::Harness;
use libcrun_shim_proto::v1 as pb;
use sha2::{Digest, Sha256};

// Each of these runs against a fresh local agent and against the VM's agent.
crate::on_local_and_vm!(
    follow_streams_until_the_container_exits,
    since_and_until_select_by_time,
);

async fn follow_streams_until_the_container_exits(mut h: Harness) {
    h.run(
        "talker",
        "for i in 1 2 3 4 5; do echo line $i; echo err $i >&2; sleep 0.2; done; printf tail",
    )
    .await;
    let (out, err, entries) = tokio::time::timeout(
        Duration::from_secs(30),
        h.logs(pb::LogsRequest {
            container_id: "talker".into(),
            follow: true,
            timestamps: true,
            ..Default::default()
        }),
    )
    .await
    .expect("follow ends when the container exits");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "line 1\nline 2\nline 3\nline 4\nline 5\ntail"
    );
    assert_eq!(
        String::from_utf8_lossy(&err),
        "err 1\nerr 2\nerr 3\nerr 4\nerr 5\n"
    );
    assert!(entries.iter().all(|e| e.time.is_some()));
    assert!(
        entries.last().unwrap().partial,
        "the last piece has no newline"
    );

    // Stream selection, tail, no timestamps.
    let (out, err, entries) = h
        .logs(pb::LogsRequest {
            container_id: "talker".into(),
            tail: Some(2),
            streams: vec![pb::LogStream::Stderr as i32],
            ..Default::default()
        })
        .await;
    assert!(out.is_empty());
    assert_eq!(String::from_utf8_lossy(&err), "err 4\nerr 5\n");
    assert!(entries.iter().all(|e| e.time.is_none()));
}

async fn since_and_until_select_by_time(mut h: Harness) {
    h.run("clock", "echo early; sleep 1; echo late").await;
    h.wait("clock").await;
    let (_, _, entries) = h
        .logs(pb::LogsRequest {
            container_id: "clock".into(),
            timestamps: true,
            ..Default::default()
        })
        .await;
    assert_eq!(entries.len(), 2);
    let late: SystemTime = entries[1].time.unwrap().try_into().unwrap();
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "clock".into(),
            since: Some(late.into()),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"late\n");
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "clock".into(),
            until: Some(late.into()),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"early\n");
}

#[tokio::test]
async fn two_hundred_megabytes_arrive_intact() {
    const SIZE: u64 = 200_000_000;
    let mut h = Harness::start().await;
    let mut config = h.sh(
        "flood",
        &format!("head -c {SIZE} /dev/urandom > /tmp/data && cat /tmp/data"),
    );
    config.log_config = Some(pb::LogConfig {
        max_size_bytes: 64 << 20,
        max_files: 16,
    });
    h.create(config).await.unwrap();
    h.start_container("flood").await;
    let mut stream = h
        .logs
        .logs(pb::LogsRequest {
            container_id: "flood".into(),
            follow: true,
            streams: vec![pb::LogStream::Stdout as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let read = async {
        while let Some(batch) = stream.message().await.expect("batch") {
            for e in batch.entries {
                total += e.data.len() as u64;
                hasher.update(&e.data);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), read)
        .await
        .expect("the log drains");
    assert_eq!(h.wait("flood").await.exit_code, 0);
    assert_eq!(total, SIZE);
    let expected = Sha256::digest(std::fs::read(h.rootfs.path().join("tmp/data")).unwrap());
    assert_eq!(
        hasher.finalize(),
        expected,
        "streamed log differs from what the container wrote"
    );
}

#[tokio::test]
async fn an_absent_reader_never_blocks_the_container() {
    let mut h = Harness::start().await;
    // 30 MB with small log files: rotation drops old data, the container
    // never waits for anyone.
    let mut config = h.sh(
        "noisy",
        "head -c 30000000 /dev/zero | tr '\\0' x; echo; echo end",
    );
    config.log_config = Some(pb::LogConfig {
        max_size_bytes: 1 << 20,
        max_files: 2,
    });
    h.create(config).await.unwrap();
    h.start_container("noisy").await;
    let exit = tokio::time::timeout(Duration::from_secs(60), h.wait("noisy"))
        .await
        .expect("finished");
    assert_eq!(exit.exit_code, 0);
    let (out, _, _) = h
        .logs(pb::LogsRequest {
            container_id: "noisy".into(),
            tail: Some(1),
            ..Default::default()
        })
        .await;
    assert_eq!(out, b"end\n");
    let files = std::fs::read_dir(h.local().root().join("containers/noisy/logs"))
        .unwrap()
        .count();
    assert!(files <= 2, "{files} log files kept");
}
