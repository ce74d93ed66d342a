//! Generates the v1 protocol's Rust code and its encoded file descriptor set.

use std::path::PathBuf;

/// The .proto files of the v1 protocol, relative to this crate.
const PROTOS: &[&str] = &[
    "libcrun_shim/v1/container.proto",
    "libcrun_shim/v1/events.proto",
    "libcrun_shim/v1/exec.proto",
    "libcrun_shim/v1/health.proto",
    "libcrun_shim/v1/images.proto",
    "libcrun_shim/v1/logs.proto",
    "libcrun_shim/v1/metrics.proto",
    "libcrun_shim/v1/network.proto",
    "libcrun_shim/v1/stdio.proto",
    "libcrun_shim/v1/system.proto",
];

/// Kubernetes' Container Runtime Interface, vendored from `k8s.io/cri-api`
/// (see `cri/README.md`).
const CRI_PROTO: &str = "cri/runtime/v1/api.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        // Output, log and stdin payloads are passed on without copies.
        .bytes(".")
        .file_descriptor_set_path(out_dir.join("libcrun_shim_v1_descriptor.bin"))
        .compile_protos(PROTOS, &["."])?;
    // Kubernetes' CRI (vendored cri-api), for the CRI server of the SDK.
    if std::env::var_os("CARGO_FEATURE_CRI").is_some() {
        println!("cargo:rerun-if-changed={CRI_PROTO}");
        // `debug_redact` (protobuf 22) only marks secrets for debug output;
        // older protoc releases (Debian 12 has 3.21) refuse it, so a copy
        // without it is compiled.
        let text = std::fs::read_to_string(CRI_PROTO)?;
        let include = out_dir.join("cri");
        let compiled = include.join("runtime/v1/api.proto");
        std::fs::create_dir_all(compiled.parent().ok_or("no parent")?)?;
        std::fs::write(&compiled, text.replace(" [debug_redact = true]", ""))?;
        tonic_prost_build::configure()
            // Newer RPCs answer Unimplemented until served: the kubelet
            // and cri-tools then fall back to the older ones.
            .generate_default_stubs(true)
            .compile_protos(&[compiled.as_path()], &[include.as_path()])?;
    }
    Ok(())
}
