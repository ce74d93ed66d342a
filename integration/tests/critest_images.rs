//! The images critest pulls, checked for what critest checks: each one run
//! by crun from its built layers, and all of them pushed to a real registry
//! under their original repository paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::critest_images::{
    CritestImage, default_cache_root, ensure_built, mirror_path, push_all,
};
use integration::registry::Registry;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

fn images() -> Vec<CritestImage> {
    ensure_built(&default_cache_root()).expect("the critest images build")
}

fn image(images: &[CritestImage], name: &str) -> CritestImage {
    images.iter().find(|i| i.name == name).unwrap().clone()
}

/// A container run by crun from an image's layers, in a network namespace
/// of its own (loopback up); removed on drop.
struct Container {
    dir: tempfile::TempDir,
    id: String,
    netns: String,
}

/// crun on a private state root, in a private mount namespace without the
/// cgroup2 mount of hybrid hosts (which crun cannot combine with v1).
fn crun(state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args([
            "-m",
            "sh",
            "-c",
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root \"$0\" \"$@\"",
        ])
        .arg(state)
        .args(args);
    command
}

#[derive(Default)]
struct Process<'a> {
    args: &'a [&'a str],
    uid: u32,
    gid: u32,
    groups: &'a [u32],
    no_new_privileges: bool,
}

impl Container {
    fn new(image: &CritestImage, process: Process<'_>) -> Container {
        let dir = tempfile::Builder::new()
            .prefix("critest-image")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        for tar in image.image.layer_tars().unwrap() {
            let mut archive = tar::Archive::new(&tar[..]);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.set_overwrite(true);
            archive.unpack(&rootfs).unwrap();
        }
        let id = format!(
            "critest-image-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        );
        let netns = id.clone();
        assert!(
            Command::new("ip")
                .args(["netns", "add", &netns])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("ip")
                .args(["-n", &netns, "link", "set", "lo", "up"])
                .status()
                .unwrap()
                .success()
        );
        let config = image.image.config();
        let config = &config["config"];
        let mut args: Vec<String> = Vec::new();
        for part in [&config["Entrypoint"], &config["Cmd"]] {
            if let Some(a) = part.as_array() {
                args.extend(a.iter().map(|s| s.as_str().unwrap().to_string()));
            }
        }
        if !process.args.is_empty() {
            args = process.args.iter().map(|s| s.to_string()).collect();
        }
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        assert!(
            crun(&state, &["spec"])
                .current_dir(dir.path())
                .status()
                .unwrap()
                .success()
        );
        let spec_path = dir.path().join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
        spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(args);
        spec["process"]["env"] = config["Env"].clone();
        spec["process"]["noNewPrivileges"] = process.no_new_privileges.into();
        // The capabilities CRI runtimes give containers by default.
        let caps = serde_json::json!([
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]);
        let as_root = process.uid == 0;
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set] = if as_root || set == "bounding" {
                caps.clone()
            } else {
                serde_json::json!([])
            };
        }
        spec["process"]["user"] = serde_json::json!({
            "uid": process.uid, "gid": process.gid, "additionalGids": process.groups,
        });
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = format!("/var/run/netns/{netns}").into();
            }
        }
        std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
        Container { dir, id, netns }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs to the end; its output.
    fn run(&self) -> Output {
        crun(
            &self.state(),
            &["run", "-b", self.dir.path().to_str().unwrap(), &self.id],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap()
    }

    /// Starts it detached, its output going to `log`.
    fn start(&self) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let status = crun(
            &self.state(),
            &[
                "run",
                "-d",
                "-b",
                self.dir.path().to_str().unwrap(),
                &self.id,
            ],
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
        assert!(status.success(), "crun run -d: {}", self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.id.as_str()];
        all.extend_from_slice(args);
        crun(&self.state(), &all)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Polls `args` until it succeeds; its stdout.
    fn exec_until(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.exec(args);
            if out.status.success() {
                return String::from_utf8(out.stdout).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{args:?} kept failing: {}; log: {}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status(&self) -> String {
        let out = crun(&self.state(), &["state", &self.id]).output().unwrap();
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        state["status"].as_str().unwrap_or("gone").to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = crun(&self.state(), &["delete", "-f", &self.id]).output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn busybox_has_the_applets_critest_runs() {
    let images = images();
    let busybox = image(&images, "busybox");
    let c = Container::new(
        &busybox,
        Process {
            args: &["echo", "-n", "hello"],
            ..Default::default()
        },
    );
    assert_eq!(stdout(&c.run()), "hello");
    let check = "for a in sh echo sleep cat ls top pgrep pidof id hostname wget grep nc head tail; do command -v $a >/dev/null || echo missing $a; done; id -u";
    let c = Container::new(
        &busybox,
        Process {
            args: &["sh", "-c", check],
            ..Default::default()
        },
    );
    assert_eq!(stdout(&c.run()), "0\n");
    // pgrep finds a sleep by name, and says nothing when there is none.
    let c = Container::new(
        &busybox,
        Process {
            args: &[
                "sh",
                "-c",
                // The child is named sh until it has exec'd sleep: ask
                // again (boundedly) until it has.
                "pgrep sleep || echo none; sleep 60 & p=$!; i=0; until pgrep -x sleep || [ $i -ge 1000 ]; do i=$((i+1)); done; kill $p",
            ],
            ..Default::default()
        },
    );
    let out = stdout(&c.run());
    let (none, pid) = out.split_once('\n').unwrap();
    assert_eq!(none, "none");
    assert!(pid.trim().parse::<u32>().is_ok(), "{out:?}");
}

fn check_nginx(name: &str, port: u16) {
    let images = images();
    let c = Container::new(&image(&images, name), Process::default());
    c.start();
    let page = c.exec_until(&["wget", "-qO-", &format!("http://127.0.0.1:{port}/")]);
    assert!(page.contains("Welcome to nginx!"), "{page}");
    let pid = stdout(&c.exec(&["cat", "/var/run/nginx.pid"]));
    assert!(pid.trim().parse::<u32>().is_ok(), "{pid:?}");
    let cmdline = stdout(&c.exec(&["cat", "/proc/1/cmdline"]));
    assert!(cmdline.starts_with("nginx: master process"), "{cmdline:?}");
    assert!(!stdout(&c.exec(&["pidof", "nginx"])).trim().is_empty());
}

#[test]
fn nginx_serves_on_80_as_a_master_process_with_a_pid_file() {
    check_nginx("nginx", 80);
}

#[test]
fn hostnet_nginx_serves_on_12003() {
    check_nginx("hostnet-nginx", 12003);
}

#[test]
fn httpd_serves_on_80_and_says_httpd() {
    let images = images();
    let c = Container::new(&image(&images, "httpd"), Process::default());
    c.start();
    let page = c.exec_until(&["wget", "-qO-", "http://127.0.0.1:80/"]);
    assert!(page.contains("It works!"));
    assert!(c.log().contains("httpd"), "{}", c.log());
}

#[test]
fn nonewprivs_prints_the_effective_uid() {
    let images = images();
    let nnp = image(&images, "nonewprivs");
    for (no_new_privileges, expected) in [
        (false, "Effective uid: 0\n"),
        (true, "Effective uid: 1000\n"),
    ] {
        let c = Container::new(
            &nnp,
            Process {
                uid: 1000,
                gid: 1000,
                no_new_privileges,
                ..Default::default()
            },
        );
        assert_eq!(
            stdout(&c.run()),
            expected,
            "no_new_privileges={no_new_privileges}"
        );
    }
}

#[test]
fn pause_waits_and_ends_on_sigterm() {
    let images = images();
    let pause = image(&images, "pause");
    assert_eq!(pause.image.config()["config"]["User"], "65535:65535");
    let c = Container::new(
        &pause,
        Process {
            uid: 65535,
            gid: 65535,
            ..Default::default()
        },
    );
    c.start();
    assert_eq!(c.status(), "running");
    assert!(
        crun(&c.state(), &["kill", &c.id, "TERM"])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.status() == "running" {
        assert!(Instant::now() < deadline, "pause ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn test_images_are_distinct_or_shared_by_tag_and_carry_their_users() {
    let images = images();
    let digest = |name: &str| image(&images, name).image.manifest_digest();
    let distinct = [
        "test-image-1",
        "test-image-2",
        "test-image-3",
        "test-image-latest",
        "test-image-tag-test",
        "test-image-tag-all",
    ];
    let mut digests: Vec<String> = distinct.iter().map(|n| digest(n)).collect();
    digests.dedup();
    assert_eq!(digests.len(), distinct.len());
    assert_eq!(image(&images, "test-image-tags").references.len(), 3);
    for (name, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:users"),
        ("test-image-user-username-group", "www-data:www-data"),
        ("test-image-predefined-group", "1000"),
    ] {
        assert_eq!(
            image(&images, name).image.config()["config"]["User"],
            user,
            "{name}"
        );
    }
    let marked = Container::new(
        &image(&images, "test-image-2"),
        Process {
            args: &["cat", "/test-image-2"],
            ..Default::default()
        },
    );
    assert_eq!(stdout(&marked.run()), "test-image-2\n");
    // www-data resolves in the user images.
    let c = Container::new(
        &image(&images, "test-image-user-username"),
        Process {
            args: &["id", "www-data"],
            ..Default::default()
        },
    );
    assert_eq!(
        stdout(&c.run()),
        "uid=33(www-data) gid=33(www-data) groups=33(www-data)\n"
    );
    // The predefined group: what critest's supplemental-groups test reads.
    let c = Container::new(
        &image(&images, "test-image-predefined-group"),
        Process {
            args: &["sh", "-c", "id -G; id -nG default-user"],
            uid: 1000,
            gid: 1000,
            groups: &[1000, 1234, 50000],
            ..Default::default()
        },
    );
    assert_eq!(
        stdout(&c.run()),
        "1000 1234 50000\ndefault-user group-defined-in-image\n"
    );
}

#[tokio::test]
async fn pushed_images_are_found_under_their_mirror_paths() {
    let images = images();
    let registry = Registry::start().unwrap();
    push_all(&registry, &images).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    for image in &images {
        for reference in &image.references {
            let (repository, tag) = mirror_path(reference);
            let local: oci_client::Reference = format!("{}/{repository}:{tag}", registry.host())
                .parse()
                .unwrap();
            let digest = client
                .fetch_manifest_digest(&local, &RegistryAuth::Anonymous)
                .await
                .unwrap_or_else(|e| panic!("{reference} at {local}: {e}"));
            assert_eq!(digest, image.image.manifest_digest(), "{reference}");
        }
    }
    assert_eq!(
        mirror_path("registry.k8s.io/e2e-test-images/busybox:1.29-2"),
        ("e2e-test-images/busybox".into(), "1.29-2".into())
    );
    assert_eq!(
        mirror_path("k8s.gcr.io/pause:3.9"),
        ("pause".into(), "3.9".into())
    );
    assert_eq!(
        mirror_path("gcr.io/k8s-staging-cri-tools/test-image-latest"),
        (
            "k8s-staging-cri-tools/test-image-latest".into(),
            "latest".into()
        )
    );
}
