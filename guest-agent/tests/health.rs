//! Health checks through a real agent: starting → healthy → unhealthy →
//! healthy, with events, bounded results, timeouts that kill the check, and
//! checks that resume after an agent restart.

mod common;

use std::time::Duration;

use common::{Harness, events_until};
use libcrun_shim_proto::v1 as pb;

// Each of these runs against a fresh local agent and against the VM's agent.
crate::on_local_and_vm!(
    transitions_with_events_and_recent_results,
    a_check_past_its_timeout_is_killed_and_fails,
);

fn check(command: &[&str], interval_ms: i32, timeout_ms: i32, retries: u32) -> pb::HealthCheck {
    let d = |ms: i32| prost_types::Duration {
        seconds: 0,
        nanos: ms * 1_000_000,
    };
    pb::HealthCheck {
        command: command.iter().map(|s| s.to_string()).collect(),
        interval: Some(d(interval_ms)),
        timeout: Some(d(timeout_ms)),
        retries,
        start_period: None,
    }
}

async fn health(h: &mut Harness, id: &str) -> pb::ContainerHealth {
    h.health
        .get_health(pb::GetHealthRequest {
            container_id: id.into(),
        })
        .await
        .expect("health")
        .into_inner()
        .health
        .expect("health")
}

fn transition(e: &pb::Event) -> Option<(pb::HealthStatus, pb::HealthStatus)> {
    match &e.details {
        Some(pb::event::Details::Health(c)) => Some((
            pb::HealthStatus::try_from(c.previous).ok()?,
            pb::HealthStatus::try_from(c.current).ok()?,
        )),
        _ => None,
    }
}

async fn transitions_with_events_and_recent_results(mut h: Harness) {
    use pb::HealthStatus::{Healthy, Starting, Unhealthy};
    let flag = h.rootfs.path().join("tmp/healthy");
    std::fs::write(&flag, "ok").unwrap();
    let mut stream = h
        .events
        .subscribe(pb::SubscribeEventsRequest {
            types: vec![pb::EventType::HealthStatus as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut config = h.sh("probed", "sleep 600");
    config.health_check = Some(check(&["cat", "/tmp/healthy"], 200, 2000, 2));
    h.create(config).await.unwrap();
    assert_eq!(
        health(&mut h, "probed").await.status,
        pb::HealthStatus::None as i32
    );
    h.start_container("probed").await;
    assert_eq!(health(&mut h, "probed").await.status, Starting as i32);

    let events = events_until(&mut stream, |e| e.len() == 1).await;
    assert_eq!(transition(&events[0]), Some((Starting, Healthy)));
    std::fs::remove_file(&flag).unwrap();
    let events = events_until(&mut stream, |e| e.len() == 1).await;
    assert_eq!(transition(&events[0]), Some((Healthy, Unhealthy)));
    let now = health(&mut h, "probed").await;
    assert!(now.failing_streak >= 2);
    let last = now.recent_results.last().unwrap();
    assert_ne!(last.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&last.output).contains("No such file"),
        "{last:?}"
    );
    assert_eq!(h.inspect("probed").await.health_status, Unhealthy as i32);

    std::fs::write(&flag, "ok").unwrap();
    let events = events_until(&mut stream, |e| e.len() == 1).await;
    assert_eq!(transition(&events[0]), Some((Unhealthy, Healthy)));
    // Results are bounded: once more than five checks ran, five are kept.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut finished = std::collections::HashSet::new();
    loop {
        let now = health(&mut h, "probed").await;
        assert!(now.recent_results.len() <= 5, "{now:?}");
        finished.extend(
            now.recent_results
                .iter()
                .filter_map(|r| r.finished_at.map(|t| (t.seconds, t.nanos))),
        );
        if finished.len() > 5 && now.recent_results.len() == 5 {
            assert_eq!(now.failing_streak, 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} checks in 30 s",
            finished.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Checks resume after an agent restart: a failure now is seen by the
    // new agent.
    h.restart_agent().await;
    std::fs::remove_file(&flag).unwrap();
    let mut stream = h
        .events
        .subscribe(pb::SubscribeEventsRequest {
            types: vec![pb::EventType::HealthStatus as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let events = events_until(&mut stream, |e| e.len() == 1).await;
    assert_eq!(transition(&events[0]), Some((Healthy, Unhealthy)));
}

async fn a_check_past_its_timeout_is_killed_and_fails(mut h: Harness) {
    let mut config = h.sh("slow", "sleep 600");
    config.health_check = Some(check(&["sleep", "30"], 200, 300, 1));
    h.create(config).await.unwrap();
    h.start_container("slow").await;
    let wait = async {
        loop {
            let now = health(&mut h, "slow").await;
            if let Some(r) = now.recent_results.first() {
                return (now.status, r.clone());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (status, result) = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("a result");
    assert!(result.timed_out);
    assert_eq!(status, pb::HealthStatus::Unhealthy as i32);
    let took = std::time::SystemTime::try_from(result.finished_at.unwrap())
        .unwrap()
        .duration_since(result.started_at.unwrap().try_into().unwrap())
        .unwrap();
    assert!(
        took < Duration::from_secs(5),
        "the check was not killed at its timeout: {took:?}"
    );
    // No check process lingers in the container.
    let ps = h
        .exec
        .exec_sync(pb::ExecSyncRequest {
            container_id: "slow".into(),
            process: Some(pb::ProcessSpec {
                command: vec!["ps".into(), "-o".into(), "args".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // At most the check running now: the timed-out ones were killed.
    let lines = String::from_utf8_lossy(&ps.stdout).to_string();
    assert!(lines.matches("sleep 30").count() <= 1, "{lines}");
}
