//! Crash-safety of the CRI server: it keeps no state of its own, so a
//! SIGKILL loses nothing. Pods and containers are crun-shimd's, and a
//! container's log file, written by the server from crun-shimd's logs,
//! resumes after the last line it holds: no line is lost or doubled.

use std::time::{Duration, Instant};

use integration::agent::unix_channel;
use integration::cri::CriStack;
use libcrun_shim::cri::proto;
use proto::image_service_client::ImageServiceClient;
use proto::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

const BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.29-2";

/// The numbers of the `line N` entries of a CRI log file, in order.
fn numbers(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" stdout F line ")?.1.parse().ok())
        .collect()
}

async fn wait_for_lines(path: &std::path::Path, at_least: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = numbers(path);
        if lines.len() >= at_least {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} lines in {}, waiting for {at_least}",
            lines.len(),
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn client(stack: &CriStack) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(unix_channel(&stack.socket()).await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_cri_server_loses_no_pod_and_no_log_line() {
    let mut stack = CriStack::start().await.unwrap();
    let mut images = ImageServiceClient::new(unix_channel(&stack.socket()).await.unwrap());
    images
        .pull_image(proto::PullImageRequest {
            image: Some(proto::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut cri = client(&stack).await;
    let logs = stack.dir().join("logs");
    let pod_config = proto::PodSandboxConfig {
        metadata: Some(proto::PodSandboxMetadata {
            name: "restart".into(),
            namespace: "default".into(),
            uid: "restart-uid".into(),
            attempt: 0,
        }),
        log_directory: logs.display().to_string(),
        ..Default::default()
    };
    let pod = cri
        .run_pod_sandbox(proto::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let container = cri
        .create_container(proto::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(proto::ContainerConfig {
                metadata: Some(proto::ContainerMetadata {
                    name: "counter".into(),
                    attempt: 0,
                }),
                image: Some(proto::ImageSpec {
                    image: BUSYBOX.into(),
                    ..Default::default()
                }),
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo line $i; usleep 20000; done"
                        .into(),
                ],
                log_path: "counter.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(pod_config),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    cri.start_container(proto::StartContainerRequest {
        container_id: container.clone(),
    })
    .await
    .unwrap();
    let log = logs.join("counter.log");
    let before = wait_for_lines(&log, 10).await.len();

    // SIGKILL, a moment of output without the server, and a new server.
    stack.restart_cri().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cri = client(&stack).await;
    let pods = cri
        .list_pod_sandbox(proto::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].id, pod);
    assert_eq!(pods[0].state, proto::PodSandboxState::SandboxReady as i32);

    wait_for_lines(&log, before + 60).await;
    cri.stop_container(proto::StopContainerRequest {
        container_id: container.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    let status = cri
        .container_status(proto::ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, proto::ContainerState::ContainerExited as i32);
    let lines = numbers(&log);
    let expected: Vec<u64> = (1..=lines.len() as u64).collect();
    assert_eq!(lines, expected, "every line once, in order");

    cri.remove_pod_sandbox(proto::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .unwrap();
    assert!(
        cri.list_containers(proto::ListContainersRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .containers
            .is_empty()
    );
}
