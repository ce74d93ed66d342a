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
    Ok(())
}
