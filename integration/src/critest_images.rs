//! The images critest pulls, built offline from Debian's binaries with the
//! behaviour critest checks, cached as OCI image layouts, and pushed to a
//! registry under their original repository paths.
//!
//! critest names its images by their public references
//! (`registry.k8s.io/e2e-test-images/busybox:1.29-2`,
//! `gcr.io/k8s-staging-cri-tools/test-image-tag:test`, `k8s.gcr.io/pause:3.9`
//! ...). A runtime whose registry mirrors send `registry.k8s.io`,
//! `k8s.gcr.io` and `gcr.io` to one local registry pulls them under those
//! names once [`push_all`] pushed each to its path there
//! (`e2e-test-images/busybox:1.29-2`, `k8s-staging-cri-tools/...`,
//! `pause:3.9`): the three registries' paths do not collide.
//!
//! What each image must do (cri-tools `pkg/validate`):
//! - busybox: the applets critest runs (`echo`, `sleep`, `sh`, `top`,
//!   `pidof`, `ls`, `cat`, `id`, `hostname`, `wget` ...), and a `pgrep`;
//! - nginx (`:80`) and hostnet-nginx (`:12003`): serve HTTP 200, write
//!   `/var/run/nginx.pid`, run as `nginx: master process ...`, with a shell;
//! - httpd: serve `:80` and log the word `httpd`;
//! - nonewprivs: print `Effective uid: N` from a setuid-root program;
//! - pause: wait for a signal, reaping children;
//! - the test-image-* set: distinct or shared images by tag, and the users
//!   and groups of their configs and `/etc` files.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::registry::{Compression, Registry, TestImage};

/// Bump when a recipe changes: the cache is keyed by it.
const RECIPE_VERSION: u32 = 4;
/// A fixed timestamp for every file, so builds are reproducible.
const MTIME: u64 = 1_700_000_000;
/// The registry path prefix critest uses for its own test images.
const CRI_TOOLS: &str = "gcr.io/k8s-staging-cri-tools/";
/// The prefix of Kubernetes' e2e test images.
const E2E: &str = "registry.k8s.io/e2e-test-images/";

/// One image critest pulls: every reference it goes by, and its content.
#[derive(Debug, Clone)]
pub struct CritestImage {
    /// A short name (its cache directory's).
    pub name: &'static str,
    /// Its public references (`registry.k8s.io/pause:3.9` ...).
    pub references: Vec<String>,
    /// The image.
    pub image: TestImage,
}

/// Where the host's Debian nginx was unpacked (`CRITEST_NGINX_ROOT`, which
/// `integration/setup.sh` prints).
pub fn nginx_root() -> io::Result<PathBuf> {
    unpacked_root("CRITEST_NGINX_ROOT", "usr/sbin/nginx")
}

/// Debian's dynamically linked busybox, unpacked by
/// `integration/setup.d/50-cri-tools.sh` (`CRITEST_BUSYBOX_ROOT`): the
/// busybox image's. Its shell runs programs from PATH, as the real image's
/// does (Debian's static build runs applets in-process, so masking
/// /bin/ls would not stop `sh -c ls`).
pub fn busybox_root() -> io::Result<PathBuf> {
    unpacked_root("CRITEST_BUSYBOX_ROOT", "bin/busybox")
}

/// The directory a Debian package was unpacked into, named by `variable`
/// (which `integration/setup.sh` prints), holding `binary`.
fn unpacked_root(variable: &str, binary: &str) -> io::Result<PathBuf> {
    let root = std::env::var_os(variable)
        .map(PathBuf::from)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{variable} is not set: run `eval \"$(integration/setup.sh)\"` first"),
            )
        })?;
    if !root.join(binary).is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {binary} in {}", root.display()),
        ));
    }
    Ok(root)
}

/// The cache directory of this recipe version and these inputs.
fn cache_dir(cache_root: &Path, nginx: &Path, busybox: &Path) -> PathBuf {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    cache_root.join(format!(
        "critest-images-v{RECIPE_VERSION}-{}-{}",
        name(nginx),
        name(busybox)
    ))
}

/// The project's cache root (`LIBCRUN_SHIM_CACHE`, default
/// `/var/cache/libcrun-shim`, as `integration/setup.sh` uses).
pub fn default_cache_root() -> PathBuf {
    std::env::var_os("LIBCRUN_SHIM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/libcrun-shim"))
}

/// The images, from their OCI layouts in the cache, built first when the
/// cache does not hold them.
pub fn ensure_built(cache_root: &Path) -> io::Result<Vec<CritestImage>> {
    let nginx = nginx_root()?;
    let busybox = busybox_root()?;
    let dir = cache_dir(cache_root, &nginx, &busybox);
    let stamp = dir.join(".complete");
    // One builder at a time (tests build them in parallel).
    std::fs::create_dir_all(cache_root)?;
    let lock = std::fs::File::create(cache_root.join(".critest-images.lock"))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes when
    // the file is closed at the end of the function.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if !stamp.exists() {
        let images = build(&nginx, &busybox)?;
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for image in &images {
            let names: Vec<&str> = image.references.iter().map(String::as_str).collect();
            image
                .image
                .write_oci_layout(&tmp.join(image.name), &names)?;
        }
        std::fs::write(tmp.join(".complete"), RECIPE_VERSION.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
    }
    recipes()
        .into_iter()
        .map(|(name, references, _)| {
            Ok(CritestImage {
                name,
                references,
                image: TestImage::read_oci_layout(&dir.join(name))?,
            })
        })
        .collect()
}

/// Pushes every image to `registry` under each of its references' paths.
pub async fn push_all(registry: &Registry, images: &[CritestImage]) -> io::Result<()> {
    for image in images {
        for reference in &image.references {
            let (repository, tag) = mirror_path(reference);
            registry.push(&repository, &tag, &image.image).await?;
        }
    }
    Ok(())
}

/// The repository and tag a mirror of the reference's registry serves it
/// under: `registry.k8s.io/e2e-test-images/nginx:1.14-2` →
/// (`e2e-test-images/nginx`, `1.14-2`).
pub fn mirror_path(reference: &str) -> (String, String) {
    let (_registry, rest) = reference.split_once('/').expect("a registry host");
    match rest.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository.into(), tag.into()),
        _ => (rest.into(), "latest".into()),
    }
}

type Recipe = fn(&Parts) -> io::Result<TestImage>;

/// What the images are made of, built once per build.
struct Parts {
    base: Vec<u8>,
    nginx: PathBuf,
}

fn recipes() -> Vec<(&'static str, Vec<String>, Recipe)> {
    let one = |r: &str| vec![r.to_string()];
    let tool = |r: &str| vec![format!("{CRI_TOOLS}{r}")];
    let e2e = |r: &str| vec![format!("{E2E}{r}")];
    vec![
        ("busybox", e2e("busybox:1.29-2"), |p| {
            busybox_image(p, vec![], json(&[]))
        }),
        ("nginx", e2e("nginx:1.14-2"), |p| nginx_image(p, 80)),
        ("hostnet-nginx", tool("hostnet-nginx-amd64:latest"), |p| {
            nginx_image(p, 12003)
        }),
        ("httpd", e2e("httpd:2.4.39-4"), httpd_image),
        ("nonewprivs", e2e("nonewprivs:1.3"), nonewprivs_image),
        (
            "pause",
            [
                one("registry.k8s.io/pause:3.9"),
                one("k8s.gcr.io/pause:3.9"),
            ]
            .concat(),
            pause_image,
        ),
        ("test-image-latest", tool("test-image-latest:latest"), |p| {
            marked(p, "test-image-latest")
        }),
        ("test-image-tag-test", tool("test-image-tag:test"), |p| {
            marked(p, "test-image-tag-test")
        }),
        ("test-image-tag-all", tool("test-image-tag:all"), |p| {
            marked(p, "test-image-tag-all")
        }),
        ("test-image-1", tool("test-image-1:latest"), |p| {
            marked(p, "test-image-1")
        }),
        ("test-image-2", tool("test-image-2:latest"), |p| {
            marked(p, "test-image-2")
        }),
        ("test-image-3", tool("test-image-3:latest"), |p| {
            marked(p, "test-image-3")
        }),
        (
            "test-image-tags",
            [
                tool("test-image-tags:1"),
                tool("test-image-tags:2"),
                tool("test-image-tags:3"),
            ]
            .concat(),
            |p| marked(p, "test-image-tags"),
        ),
        (
            "test-image-user-uid",
            tool("test-image-user-uid:latest"),
            |p| user(p, "1002"),
        ),
        (
            "test-image-user-username",
            tool("test-image-user-username:latest"),
            |p| user(p, "www-data"),
        ),
        (
            "test-image-user-uid-group",
            tool("test-image-user-uid-group:latest"),
            |p| user(p, "1003:users"),
        ),
        (
            "test-image-user-username-group",
            tool("test-image-user-username-group:latest"),
            |p| user(p, "www-data:www-data"),
        ),
        (
            "test-image-predefined-group",
            tool("test-image-predefined-group:latest"),
            predefined_group_image,
        ),
    ]
}

/// Builds every image (no cache).
pub fn build(nginx: &Path, busybox: &Path) -> io::Result<Vec<CritestImage>> {
    let parts = Parts {
        base: busybox_layer(&busybox.join("bin/busybox"))?,
        nginx: nginx.to_path_buf(),
    };
    recipes()
        .into_iter()
        .map(|(name, references, recipe)| {
            Ok(CritestImage {
                name,
                references,
                image: recipe(&parts)?,
            })
        })
        .collect()
}

fn json(pairs: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut config = serde_json::Map::new();
    config.insert(
        "Env".into(),
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
    );
    for (k, v) in pairs {
        config.insert((*k).into(), v.clone());
    }
    serde_json::Value::Object(config)
}

fn busybox_image(
    parts: &Parts,
    extra: Vec<Vec<u8>>,
    config: serde_json::Value,
) -> io::Result<TestImage> {
    let mut config = config;
    if config.get("Cmd").is_none() && config.get("Entrypoint").is_none() {
        config["Cmd"] = serde_json::json!(["sh"]);
    }
    let layers = std::iter::once(parts.base.clone())
        .chain(extra)
        .map(|tar| (tar, Compression::Gzip))
        .collect();
    Ok(TestImage::new(layers, config, "amd64"))
}

/// A busybox image with a file of its own (different images by name).
fn marked(parts: &Parts, name: &str) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    layer.file(name, 0o644, format!("{name}\n").as_bytes())?;
    busybox_image(parts, vec![layer.finish()?], json(&[]))
}

fn user(parts: &Parts, user: &str) -> io::Result<TestImage> {
    busybox_image(parts, vec![], json(&[("User", user.into())]))
}

fn predefined_group_image(parts: &Parts) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    layer.file(
        "etc/passwd",
        0o644,
        format!("{PASSWD}default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")
            .as_bytes(),
    )?;
    layer.file(
        "etc/group",
        0o644,
        format!("{GROUP}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
            .as_bytes(),
    )?;
    layer.dir("home/default-user", 0o755)?;
    busybox_image(
        parts,
        vec![layer.finish()?],
        json(&[("User", "1000".into())]),
    )
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";

const GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
";

/// Debian's busybox (with its shared libraries) and every applet, and a
/// minimal tree.
fn busybox_layer(binary: &Path) -> io::Result<Vec<u8>> {
    let busybox = std::fs::read(binary)?;
    let list = Command::new(binary).arg("--list").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list failed"));
    }
    let mut layer = Layer::new();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("var", 0o755),
        ("var/run", 0o755),
        ("var/spool", 0o755),
        ("var/spool/mail", 0o755),
        ("var/www", 0o755),
    ] {
        layer.dir(dir, mode)?;
    }
    layer.file("bin/busybox", 0o755, &busybox)?;
    layer.shared_libraries(binary)?;
    let mut applets: Vec<&str> = std::str::from_utf8(&list.stdout)
        .map_err(io::Error::other)?
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
        .collect();
    applets.sort_unstable();
    // Hard links, as in the busybox image: masking one applet (critest
    // masks /bin/ls) must not mask busybox itself through a symlink.
    for applet in applets {
        layer.hard_link(&format!("bin/{applet}"), "bin/busybox")?;
    }
    layer.file("bin/pgrep", 0o755, PGREP.as_bytes())?;
    layer.file("bin/ipcs", 0o755, IPCS.as_bytes())?;
    layer.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    layer.file("etc/group", 0o644, GROUP.as_bytes())?;
    layer.finish()
}

/// Debian's busybox has no ipcs, which critest runs (`ipcs -m`, for
/// the segments of the container's IPC namespace): util-linux's output,
/// from /proc/sysvipc/shm (which shows the reader's IPC namespace).
const IPCS: &str = r#"#!/bin/sh
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
[ -r /proc/sysvipc/shm ] || exit 0
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
    printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
"#;

/// Debian's busybox has no pgrep, which critest runs (`pgrep sleep
/// || true`, expecting nothing on stderr): the pids of the processes whose
/// name matches the pattern.
const PGREP: &str = r#"#!/bin/sh
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
found=1
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    read -r name < "$d/comm" 2>/dev/null || continue
    if echo "$name" | grep -q -e "$1"; then
        echo "$pid"
        found=0
    fi
done
exit $found
"#;

const NGINX_CONF: &str = "user www-data;
worker_processes 1;
pid /var/run/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    server {
        listen PORT;
        location / {
            root /usr/share/nginx/html;
            index index.html;
        }
    }
}
";

/// Debian's nginx (binary, the libraries it links on this machine, its
/// mime types) on busybox, serving a page on `port`.
fn nginx_image(parts: &Parts, port: u16) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    for dir in [
        "etc/nginx",
        "usr/share/nginx",
        "usr/share/nginx/html",
        "var/log",
        "var/log/nginx",
        "var/lib",
        "var/lib/nginx",
        "var/lib/nginx/body",
        "var/lib/nginx/fastcgi",
        "var/lib/nginx/proxy",
        "var/lib/nginx/scgi",
        "var/lib/nginx/uwsgi",
    ] {
        layer.dir(dir, 0o755)?;
    }
    let binary = parts.nginx.join("usr/sbin/nginx");
    layer.file("usr/sbin/nginx", 0o755, &std::fs::read(&binary)?)?;
    layer.shared_libraries(&binary)?;
    layer.file(
        "etc/nginx/mime.types",
        0o644,
        &std::fs::read(parts.nginx.join("etc/nginx/mime.types"))?,
    )?;
    layer.file(
        "etc/nginx/nginx.conf",
        0o644,
        NGINX_CONF.replace("PORT", &port.to_string()).as_bytes(),
    )?;
    layer.file(
        "usr/share/nginx/html/index.html",
        0o644,
        b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n",
    )?;
    busybox_image(
        parts,
        vec![layer.finish()?],
        json(&[
            ("Cmd", serde_json::json!(["nginx", "-g", "daemon off;"])),
            (
                "ExposedPorts",
                serde_json::json!({format!("{port}/tcp"): {}}),
            ),
            ("StopSignal", "SIGQUIT".into()),
        ]),
    )
}

/// busybox's httpd, saying its name in its log.
fn httpd_image(parts: &Parts) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    layer.dir("var/www/html", 0o755)?;
    layer.file(
        "var/www/html/index.html",
        0o644,
        b"<html><body><h1>It works!</h1></body></html>\n",
    )?;
    busybox_image(
        parts,
        vec![layer.finish()?],
        json(&[
            (
                "Cmd",
                serde_json::json!([
                    "sh",
                    "-c",
                    "echo 'httpd: serving /var/www/html on port 80'; exec httpd -f -v -p 80 -h /var/www/html"
                ]),
            ),
            ("ExposedPorts", serde_json::json!({"80/tcp": {}})),
        ]),
    )
}

const NNP_C: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
"#;

/// A setuid-root program printing its effective uid (no_new_privs keeps
/// it the caller's).
fn nonewprivs_image(parts: &Parts) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    layer.file("usr/local/bin/nnp", 0o4755, &compile_static(NNP_C)?)?;
    busybox_image(
        parts,
        vec![layer.finish()?],
        json(&[("Entrypoint", serde_json::json!(["/usr/local/bin/nnp"]))]),
    )
}

const PAUSE_C: &str = r#"#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = quit;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) pause();
}
"#;

/// A static pause: waits for SIGINT or SIGTERM, reaping children.
fn pause_image(_parts: &Parts) -> io::Result<TestImage> {
    let mut layer = Layer::new();
    layer.file("pause", 0o755, &compile_static(PAUSE_C)?)?;
    Ok(TestImage::new(
        vec![(layer.finish()?, Compression::Gzip)],
        serde_json::json!({
            "Entrypoint": ["/pause"],
            "User": "65535:65535",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }),
        "amd64",
    ))
}

/// A static binary of a C program (the host's gcc and libc6-dev).
fn compile_static(source: &str) -> io::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let (src, out) = (dir.path().join("main.c"), dir.path().join("main"));
    std::fs::write(&src, source)?;
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(&out)
        .arg(&src)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(
            "gcc failed (integration/setup.sh installs gcc and libc6-dev)",
        ));
    }
    std::fs::read(out)
}

/// A tar layer built entry by entry: root-owned, fixed times.
struct Layer {
    tar: tar::Builder<Vec<u8>>,
    paths: std::collections::BTreeSet<String>,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            tar: tar::Builder::new(Vec::new()),
            paths: Default::default(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(size);
        header
    }

    /// Adds the parents of `path` that are not in the layer yet.
    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if !self.paths.contains(&at) {
                self.dir(&at.clone(), 0o755)?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.parents(path)?;
        if self.paths.insert(path.to_string()) {
            let mut header = Layer::header(tar::EntryType::Directory, mode, 0);
            self.tar
                .append_data(&mut header, format!("{path}/"), &[][..])?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> io::Result<()> {
        self.parents(path)?;
        self.paths.insert(path.to_string());
        let mut header = Layer::header(tar::EntryType::Regular, mode, content.len() as u64);
        self.tar.append_data(&mut header, path, content)
    }

    fn hard_link(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.parents(path)?;
        self.paths.insert(path.to_string());
        let mut header = Layer::header(tar::EntryType::Link, 0o755, 0);
        self.tar.append_link(&mut header, path, target)
    }

    /// The shared libraries `binary` loads on this machine (and the dynamic
    /// loader), at the paths it loads them from.
    fn shared_libraries(&mut self, binary: &Path) -> io::Result<()> {
        let out = Command::new("ldd").arg(binary).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!("ldd {} failed", binary.display())));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)".
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line.trim(),
            };
            let Some(path) = path
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            else {
                continue;
            };
            let content = std::fs::read(path)?;
            self.file(path.trim_start_matches('/'), 0o755, &content)?;
        }
        Ok(())
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        self.tar.into_inner()
    }
}
