//! Images through a real agent and a real registry (Debian's
//! docker-registry on loopback): pull with progress, gzip/zstd/plain
//! layers, a multi-arch index, auth, corrupt blobs, missing tags, bad
//! references, hostile layers, an interrupted pull, containers on overlays,
//! Remove with garbage collection, and GetRootfs.

mod common;

use common::Harness;
use integration::registry::{Compression, Registry, TestImage, tar_of_dir, tar_of_files};
use libcrun_shim_proto::v1 as pb;
use tonic::Code;

/// A busybox image: the busybox rootfs as a gzip layer, and a zstd layer
/// that adds /etc/motd, removes /etc/group (whiteout) and replaces /srv
/// (opaque directory).
fn busybox_image(h: &Harness) -> TestImage {
    let base = tar_of_dir(&h.rootfs.path()).unwrap();
    let top = tar_of_files(&[
        ("etc/motd", 0o644, b"layer two\n"),
        ("etc/.wh.group", 0o644, b""),
        ("srv/", 0o755, b""),
        ("srv/.wh..wh..opq", 0o644, b""),
        ("srv/new", 0o644, b"new\n"),
    ])
    .unwrap();
    let lower_srv = tar_of_files(&[("srv/", 0o755, b""), ("srv/old", 0o644, b"old\n")]).unwrap();
    TestImage::new(
        vec![
            (base, Compression::Gzip),
            (lower_srv, Compression::None),
            (top, Compression::Zstd),
        ],
        serde_json::json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo $GREETING from $(pwd); cat /etc/motd; ls /srv; test -e /etc/group || echo no-group"],
            "Env": ["PATH=/bin:/usr/bin", "GREETING=hello"],
            "WorkingDir": "/tmp",
            "Labels": {"org.example": "test"},
            "ExposedPorts": {"80/tcp": {}}
        }),
        "amd64",
    )
}

/// Pulls, collecting every progress message; the last carries the image.
async fn pull(
    h: &mut Harness,
    request: pb::PullImageRequest,
) -> Result<Vec<pb::PullImageProgress>, tonic::Status> {
    let mut stream = h.images.pull(request).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(m) = stream.message().await? {
        messages.push(m);
    }
    Ok(messages)
}

/// Pulls, and returns the image the last progress message carries.
async fn pull_image(h: &mut Harness, request: pb::PullImageRequest) -> pb::Image {
    let mut messages = pull(h, request).await.expect("pull");
    messages
        .pop()
        .and_then(|last| last.image)
        .expect("the last progress message carries the image")
}

fn pull_request(reference: String) -> pb::PullImageRequest {
    pb::PullImageRequest {
        reference,
        ..Default::default()
    }
}

async fn run_image(h: &mut Harness, id: &str, image: &str) -> pb::Container {
    h.create(pb::ContainerConfig {
        id: id.into(),
        root: Some(pb::container_config::Root::Image(image.into())),
        ..Default::default()
    })
    .await
    .expect("create from image");
    h.start_container(id).await
}

/// Waits for a container to exit 0; its stdout and stderr.
async fn exited_output(h: &mut Harness, id: &str) -> (String, String) {
    assert_eq!(h.wait(id).await.exit_code, 0, "{id} exit code");
    let (out, err, _) = h
        .logs(pb::LogsRequest {
            container_id: id.into(),
            ..Default::default()
        })
        .await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Whether the agent's mount namespace has a mount under `dir`.
fn agent_mounts_under(h: &Harness, dir: &std::path::Path) -> bool {
    let pid = h.local().pid().expect("agent running");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    mountinfo.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|p| p.starts_with(&*dir.to_string_lossy()))
    })
}

#[tokio::test]
async fn pull_run_and_remove() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let image = busybox_image(&h);
    registry.push("test/busybox", "v1", &image).await.unwrap();
    let reference = format!("{}/test/busybox:v1", registry.host());

    let messages = pull(&mut h, pull_request(reference.clone()))
        .await
        .expect("pull");
    let last = messages.last().expect("progress");
    let pulled = last
        .image
        .clone()
        .expect("the last message carries the image");
    assert_eq!(pulled.id, image.id());
    assert_eq!(pulled.digest, image.manifest_digest());
    assert_eq!(pulled.references, vec![reference.clone()]);
    assert_eq!(pulled.layers, image.layer_digests());
    assert_eq!(last.layers.len(), 3);
    assert!(
        last.total_bytes > 0 && last.downloaded_bytes == last.total_bytes,
        "{last:?}"
    );
    assert!(
        last.layers
            .iter()
            .all(|l| l.state == pb::LayerPullState::Done as i32),
        "{last:?}"
    );
    let config = pulled.config.clone().unwrap();
    assert_eq!(config.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(config.working_dir, "/tmp");
    assert_eq!(config.exposed_ports, ["80/tcp"]);
    assert_eq!(config.labels["org.example"], "test");
    assert!(pulled.created.is_some());

    // List and Inspect, by reference, id and digest.
    let listed = h
        .images
        .list(pb::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(listed.len(), 1);
    for name in [
        reference.clone(),
        image.id(),
        image.manifest_digest(),
        image.id()[7..19].to_string(),
    ] {
        let found = h
            .images
            .inspect(pb::InspectImageRequest {
                reference: name.clone(),
                agent: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
            .into_inner();
        assert_eq!(found.image.unwrap().id, image.id());
    }

    // Pulled again: every layer is already there.
    let again = pull(&mut h, pull_request(reference.clone())).await.unwrap();
    let last = again.last().unwrap();
    assert!(
        last.layers
            .iter()
            .all(|l| l.state == pb::LayerPullState::AlreadyExists as i32),
        "{last:?}"
    );

    // A container of the image: the image's entrypoint, cmd, env and
    // working directory; whiteouts and opaque directories applied.
    let c = run_image(&mut h, "from-image", &reference).await;
    assert_eq!(c.image_digest, image.manifest_digest());
    let (out, err) = exited_output(&mut h, "from-image").await;
    assert_eq!(
        out, "hello from /tmp\nlayer two\nnew\nno-group\n",
        "stderr: {err}"
    );

    // Each container writes to its own layer.
    h.create(pb::ContainerConfig {
        id: "writer".into(),
        root: Some(pb::container_config::Root::Image(reference.clone())),
        args: vec!["echo mine > /etc/motd && cat /etc/motd".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    h.start_container("writer").await;
    assert_eq!(h.wait("writer").await.exit_code, 0);
    run_image(&mut h, "reader", &reference).await;
    let (out, _) = exited_output(&mut h, "reader").await;
    assert!(out.contains("layer two"), "{out}");

    // In use: Remove refuses.
    let refused = h
        .images
        .remove(pb::RemoveImageRequest {
            reference: reference.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    let used_by = h
        .images
        .inspect(pb::InspectImageRequest {
            reference: reference.clone(),
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap()
        .used_by;
    assert_eq!(used_by.len(), 3, "{used_by:?}");

    // Delete: the overlay goes with the container.
    let dir = h.local().root().join("containers/from-image");
    assert!(agent_mounts_under(&h, &dir));
    h.delete("from-image", false).await.unwrap();
    assert!(!agent_mounts_under(&h, &dir));
    assert!(!dir.exists());

    // Forced removal while "writer" and "reader" still use it: out of the
    // list, but their layers stay until they are deleted.
    let removed = h
        .images
        .remove(pb::RemoveImageRequest {
            reference: reference.clone(),
            force: true,
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.untagged, vec![reference.clone()]);
    assert!(
        h.images
            .list(pb::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images
            .is_empty()
    );
    let layers = h.local().root().join("images/layers/sha256");
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 3);
    h.delete("writer", false).await.unwrap();
    h.delete("reader", false).await.unwrap();
    assert_eq!(
        std::fs::read_dir(&layers).unwrap().count(),
        0,
        "layers collected"
    );
    let blobs = h.local().root().join("images/blobs/sha256");
    assert_eq!(
        std::fs::read_dir(&blobs).unwrap().count(),
        0,
        "blobs collected"
    );
}

#[tokio::test]
async fn multi_arch_index_picks_the_platform() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let per_arch = |arch: &str| {
        TestImage::new(
            vec![(
                tar_of_files(&[("arch", 0o644, arch.as_bytes())]).unwrap(),
                Compression::Gzip,
            )],
            serde_json::json!({"Cmd": ["/bin/true"]}),
            arch,
        )
    };
    let (amd64, arm64) = (per_arch("amd64"), per_arch("arm64"));
    registry
        .push_index(
            "test/multi",
            "latest",
            &[("linux", "amd64", &amd64), ("linux", "arm64", &arm64)],
        )
        .await
        .unwrap();
    let reference = format!("{}/test/multi", registry.host());
    let image = pull_image(&mut h, pull_request(reference.clone())).await;
    assert_eq!(
        (image.id.as_str(), image.architecture.as_str()),
        (amd64.id().as_str(), "amd64")
    );
    assert_eq!(image.references, vec![format!("{reference}:latest")]);
    let image = pull_image(
        &mut h,
        pb::PullImageRequest {
            reference: reference.clone(),
            platform: "linux/arm64".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (image.id.as_str(), image.architecture.as_str()),
        (arm64.id().as_str(), "arm64")
    );
    let missing = pull(
        &mut h,
        pb::PullImageRequest {
            reference,
            platform: "linux/s390x".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing}");
}

#[tokio::test]
async fn registry_with_authentication() {
    let registry = Registry::start_with_auth("alice", "s3cret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let docker_config = dir.path().join("config.json");
    let mut h = Harness::start_with(&["--docker-config", docker_config.to_str().unwrap()]).await;
    let image = TestImage::new(
        vec![(
            tar_of_files(&[("hello", 0o644, b"hi")]).unwrap(),
            Compression::Gzip,
        )],
        serde_json::json!({"Cmd": ["/bin/true"]}),
        "amd64",
    );
    registry.push("private/app", "v1", &image).await.unwrap();
    let reference = format!("{}/private/app:v1", registry.host());
    let with = |username: &str, password: &str| pb::PullImageRequest {
        reference: reference.clone(),
        auth: Some(pb::RegistryAuth {
            username: username.into(),
            password: password.into(),
            registry_token: String::new(),
        }),
        ..Default::default()
    };
    let anonymous = pull(&mut h, pull_request(reference.clone()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous}");
    let wrong = pull(&mut h, with("alice", "wrong")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong}");
    assert!(
        !wrong.message().contains("wrong"),
        "a secret in an error: {wrong}"
    );
    pull(&mut h, with("alice", "s3cret"))
        .await
        .expect("pull with credentials");

    // From the docker config.json, after removing what was pulled.
    h.images
        .remove(pb::RemoveImageRequest {
            reference: reference.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let auth = "YWxpY2U6czNjcmV0"; // base64("alice:s3cret")
    std::fs::write(
        &docker_config,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    pull(&mut h, pull_request(reference))
        .await
        .expect("pull with the docker config");
    let log = std::fs::read_to_string(h.local().log()).unwrap();
    assert!(
        !log.contains("s3cret") && !log.contains(auth),
        "a secret in the agent's log"
    );
}

#[tokio::test]
async fn bad_content_and_bad_references() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let image = TestImage::new(
        vec![(
            tar_of_files(&[("data", 0o644, &[7u8; 50_000])]).unwrap(),
            Compression::Gzip,
        )],
        serde_json::json!({"Cmd": ["/bin/true"]}),
        "amd64",
    );
    registry.push("test/corrupt", "v1", &image).await.unwrap();
    // Same size, other bytes: only the digest tells.
    let blob = registry.blob_file(&image.layer_digests()[0]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let corrupt = pull(
        &mut h,
        pull_request(format!("{}/test/corrupt:v1", registry.host())),
    )
    .await
    .unwrap_err();
    assert_eq!(corrupt.code(), Code::DataLoss, "{corrupt}");
    let images = h.local().root().join("images");
    for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
        assert_eq!(
            std::fs::read_dir(images.join(dir)).unwrap().count(),
            0,
            "{dir}: nothing committed"
        );
    }
    assert!(
        h.images
            .list(pb::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images
            .is_empty()
    );

    let missing = pull(
        &mut h,
        pull_request(format!("{}/test/corrupt:nope", registry.host())),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing}");
    let unknown_repo = pull(
        &mut h,
        pull_request(format!("{}/no/such:v1", registry.host())),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown_repo.code(), Code::NotFound, "{unknown_repo}");
    for bad in [
        "",
        "UPPER/case",
        "a b",
        "x@sha256:123",
        "host:5000/app:bad:tag",
    ] {
        let e = pull(&mut h, pull_request(bad.into())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e}");
    }
    let e = h
        .images
        .inspect(pb::InspectImageRequest {
            reference: "not/pulled".into(),
            agent: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = h
        .create(pb::ContainerConfig {
            id: "no-image".into(),
            root: Some(pb::container_config::Root::Image("not/pulled".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(!h.local().root().join("containers/no-image").exists());
}

#[tokio::test]
async fn a_hostile_layer_writes_nothing_outside() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("pwned");
    let target = target.to_str().unwrap().trim_start_matches('/');
    // A symlink to "/" then a file through it, and a climb out with "..".
    let mut climb = String::new();
    for _ in 0..20 {
        climb.push_str("../");
    }
    let hostile = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        builder.append_link(&mut link, "evil", "/").unwrap();
        for path in [
            format!("evil/{target}-link"),
            format!("{climb}{target}-climb"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(5);
            header.set_mode(0o644);
            // Written raw: the tar crate refuses ".." in set_path.
            let name = &mut header.as_old_mut().name;
            name.fill(0);
            let bytes = path.as_bytes();
            assert!(bytes.len() < name.len(), "a short enough path");
            name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, &b"owned"[..]).unwrap();
        }
        builder.into_inner().unwrap()
    };
    let image = TestImage::new(
        vec![(hostile, Compression::Gzip)],
        serde_json::json!({}),
        "amd64",
    );
    registry.push("test/hostile", "v1", &image).await.unwrap();
    let result = pull(
        &mut h,
        pull_request(format!("{}/test/hostile:v1", registry.host())),
    )
    .await;
    let escaped: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        escaped.is_empty(),
        "written outside: {escaped:?} ({result:?})"
    );
    if let Err(e) = result {
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");
        assert_eq!(
            std::fs::read_dir(h.local().root().join("images/layers/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[tokio::test]
async fn an_interrupted_pull_completes_when_retried() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    // 64 MiB that do not compress, as a plain tar layer: long enough to
    // kill the agent in the middle.
    let mut data = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let image = TestImage::new(
        vec![(
            tar_of_files(&[("big", 0o644, &data)]).unwrap(),
            Compression::None,
        )],
        serde_json::json!({"Cmd": ["/bin/true"]}),
        "amd64",
    );
    drop(data);
    registry.push("test/big", "v1", &image).await.unwrap();
    let reference = format!("{}/test/big:v1", registry.host());
    let mut stream = h
        .images
        .pull(pull_request(reference.clone()))
        .await
        .unwrap()
        .into_inner();
    loop {
        let m = stream
            .message()
            .await
            .unwrap()
            .expect("progress before the end");
        if m.downloaded_bytes > 0 {
            assert!(
                m.image.is_none(),
                "the pull ended before it could be interrupted"
            );
            break;
        }
    }
    h.local_mut().kill();
    h.local_mut().restart().unwrap();
    h.reconnect().await;
    let images = h.local().root().join("images");
    assert_eq!(
        std::fs::read_dir(images.join("tmp")).unwrap().count(),
        0,
        "partial files removed at start"
    );
    let image_pulled = pull_image(&mut h, pull_request(reference)).await;
    assert_eq!(image_pulled.id, image.id());
    let digest = &image.layer_digests()[0];
    let blob = std::fs::read(images.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(
        &integration::registry::sha256(&blob),
        digest,
        "no corrupt blob"
    );
    assert_eq!(
        std::fs::metadata(images.join("layers/sha256").join(&digest[7..]).join("big"))
            .unwrap()
            .len(),
        64 << 20
    );
}

#[tokio::test]
async fn get_rootfs_gives_a_plain_directory() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let image = busybox_image(&h);
    registry.push("test/busybox", "v1", &image).await.unwrap();
    let reference = format!("{}/test/busybox:v1", registry.host());
    pull(&mut h, pull_request(reference.clone())).await.unwrap();
    let rootfs = h
        .images
        .get_rootfs(pb::GetRootfsRequest {
            reference: reference.clone(),
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let path = std::path::PathBuf::from(&rootfs.path);
    assert_eq!(
        std::fs::read_to_string(path.join("etc/motd")).unwrap(),
        "layer two\n"
    );
    assert!(!path.join("etc/group").exists(), "whiteout applied");
    assert!(
        !path.join("srv/old").exists() && path.join("srv/new").exists(),
        "opaque directory applied"
    );
    assert!(path.join("bin/busybox").is_file());
    let mut config = h.sh("on-rootfs", "cat /etc/motd");
    config.root = Some(pb::container_config::Root::Rootfs(rootfs.path.clone()));
    config.read_only_rootfs = true;
    h.create(config).await.unwrap();
    h.start_container("on-rootfs").await;
    assert_eq!(h.wait("on-rootfs").await.exit_code, 0);
    // The directory goes with the image.
    h.delete("on-rootfs", false).await.unwrap();
    h.images
        .remove(pb::RemoveImageRequest {
            reference,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn a_mirror_serves_an_image_that_keeps_its_name() {
    let registry = Registry::start().unwrap();
    let mut h = Harness::start().await;
    let image = TestImage::new(
        vec![(
            tar_of_files(&[("hello", 0o644, b"mirrored\n")]).unwrap(),
            Compression::Gzip,
        )],
        serde_json::json!({"Cmd": ["/bin/true"]}),
        "amd64",
    );
    registry.push("e2e/app", "1.0", &image).await.unwrap();
    // The name's registry does not exist; the mirror serves its paths.
    let pulled = pull_image(
        &mut h,
        pb::PullImageRequest {
            reference: "registry.invalid/e2e/app:1.0".into(),
            mirror: registry.host().to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pulled.references, vec!["registry.invalid/e2e/app:1.0"]);
    let found = h
        .images
        .inspect(pb::InspectImageRequest {
            reference: "registry.invalid/e2e/app:1.0".into(),
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.image.unwrap().id, pulled.id);
    let bad = pull(
        &mut h,
        pb::PullImageRequest {
            reference: "registry.invalid/e2e/app:1.0".into(),
            mirror: format!("http://{}", registry.host()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad}");
}
