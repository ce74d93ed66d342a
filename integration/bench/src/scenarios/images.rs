//! 6. Image pull + unpack of a ~100 MB image (the busybox rootfs,
//!    /usr/lib/python3.11 and /usr/share/vim as three gzip layers) from
//!    Debian's docker-registry on loopback, from empty storage each run:
//!    ours through the SDK (download, verify, unpack every layer),
//!    `skopeo copy` + `umoci unpack`, `podman pull`, `ctr image pull`.
//!    Then create-to-started of containers of the pulled image.

use std::process::Command;
use std::time::Instant;

use integration::registry::{Compression, Registry, TestImage, tar_of_dir};
use libcrun_shim::{ContainerConfig, RootSource};

use super::{Setup, timed};
use crate::anchors::{containerd::Containerd, podman::Podman, run};
use crate::ours::Ours;
use crate::report::Scenario;
use crate::stats::{Better, Figure, millis};

/// Pulls of each subject.
const PULLS: usize = 5;

/// Runs the scenario; the second returned scenario is create-to-started.
pub async fn measure(
    setup: &Setup<'_>,
    ours: &Ours,
) -> Result<(Scenario, Scenario), Box<dyn std::error::Error>> {
    let layers = [
        setup.rootfs.to_path_buf(),
        "/usr/lib/python3.11".into(),
        "/usr/share/vim".into(),
    ]
    .iter()
    .map(|dir| Ok((tar_of_dir(dir)?, Compression::Gzip)))
    .collect::<std::io::Result<Vec<_>>>()?;
    let size: usize = layers.iter().map(|(tar, _)| tar.len()).sum();
    let image = TestImage::new(
        layers,
        serde_json::json!({"Cmd": ["/bin/sleep", "3600"]}),
        "amd64",
    );
    let registry = Registry::start()?;
    registry.push("bench/image", "v1", &image).await?;
    let reference = format!("{}/bench/image:v1", registry.host());
    let mut pulls = Scenario::new(
        "pull",
        &format!(
            "Image pull + unpack, {:.0} MB in 3 gzip layers",
            size as f64 / 1e6
        ),
        "ms",
        Better::Lower,
        "libcrun-shim SDK pull",
    )
    .goal("faster than skopeo+umoci and podman");

    let store = ours.runtime.images();
    let mut times = Vec::new();
    for _ in 0..PULLS {
        let began = Instant::now();
        store.pull(&reference, |_| {}).await?;
        times.push(began.elapsed());
        store.remove(&reference, true).await?;
    }
    pulls.push(Figure::of("libcrun-shim SDK pull", &millis(&times)));

    let mut times = Vec::new();
    for _ in 0..PULLS {
        let dir = tempfile::tempdir()?;
        let layout = dir.path().join("layout");
        times.push(timed(|| {
            run(Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:v1", layout.display())))?;
            run(Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:v1", layout.display()))
                .arg(dir.path().join("bundle")))
        })?);
    }
    pulls.push(Figure::of("skopeo copy + umoci unpack", &millis(&times)));

    let mut times = Vec::new();
    for _ in 0..PULLS {
        let podman = Podman::new()?;
        times.push(timed(|| podman.pull(&reference))?);
    }
    pulls.push(Figure::of("podman pull", &millis(&times)));

    let containerd = Containerd::start()?;
    let mut times = Vec::new();
    for _ in 0..PULLS {
        times.push(timed(|| containerd.pull(&reference))?);
        containerd.clean();
    }
    pulls.push(Figure::of("ctr image pull", &millis(&times)));
    drop(containerd);

    // Create-to-started of containers of the pulled image: an overlay
    // mount, the image config merged, libcrun create and start.
    store.pull(&reference, |_| {}).await?;
    let mut starts = Scenario::new(
        "image-start",
        "Create-to-started, container of a pulled image",
        "ms",
        Better::Lower,
        "libcrun-shim SDK",
    )
    .goal("< 30 ms median");
    let mut times = Vec::new();
    for i in 0..setup.runs {
        let id = format!("image-{i}");
        let began = Instant::now();
        ours.runtime
            .create(ContainerConfig {
                id: id.clone(),
                root: RootSource::Image(reference.clone()),
                network: libcrun_shim::NetworkMode::None,
                ..Default::default()
            })
            .await?;
        ours.runtime.start(&id).await?;
        times.push(began.elapsed());
        ours.runtime.delete_with(&id, true).await?;
    }
    starts.push(Figure::of("libcrun-shim SDK", &millis(&times)));
    store.remove(&reference, true).await?;
    Ok((pulls, starts))
}
