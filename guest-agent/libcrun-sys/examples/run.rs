//! Runs one command in a container through libcrun, in this process, like
//! `crun run`: `run [--rootfs DIR] [CMD [ARGS...]]`.
//!
//! Without `--rootfs`, a busybox root filesystem is built in a temporary
//! directory. The container gets libcrun's default spec (`crun spec`) with
//! the command, a read-only root and a private network namespace; its
//! stdout and stderr are this process's. Exits with the container's exit
//! status.

use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("run: {e}");
        std::process::exit(125);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rootfs: Option<PathBuf> = None;
    if args.first().map(String::as_str) == Some("--rootfs") {
        args.remove(0);
        rootfs = Some(PathBuf::from(args.remove(0)).canonicalize()?);
    }
    if args.is_empty() {
        args = vec![
            "sh".into(),
            "-c".into(),
            "echo hello from $(hostname), pid $$ in a busybox container".into(),
        ];
    }
    let prep = libcrun_sys::cgroup::prepare_process()?;
    eprintln!(
        "libcrun {}: cgroups {:?} (host {:?})",
        libcrun_sys::libcrun_version(),
        prep.effective_mode,
        prep.host_mode
    );
    let busybox;
    let rootfs = match rootfs {
        Some(r) => r,
        None => {
            busybox = integration::BusyboxRootfs::new()?;
            busybox.path()
        }
    };
    let mut spec: serde_json::Value = serde_json::from_str(&libcrun_sys::default_spec(false)?)?;
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    spec["hostname"] = serde_json::json!("example");
    let state = tempfile::tempdir()?;
    let context = libcrun_sys::Context::builder(state.path())
        .bundle(rootfs.parent().unwrap_or(&rootfs))
        .build()?;
    let mut container = libcrun_sys::Container::from_json(&spec.to_string())?;
    let id = format!("example-{}", std::process::id());
    let status = context.run(&id, &mut container)?;
    std::process::exit(status);
}
