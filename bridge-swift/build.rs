//! Generates the Swift and C glue of the bridge (on every platform: the
//! generated files are checked by the crate's tests on Linux), and on macOS
//! links the Swift package's static library and Virtualization.framework.
//!
//! The glue goes to `$OUT_DIR/generated`, or to `BRIDGE_SWIFT_GENERATED`
//! when set (`build-macos.sh` points it into the Swift package).

use std::path::PathBuf;

fn main() {
    let bridges = vec!["src/ffi.rs"];
    for path in &bridges {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=BRIDGE_SWIFT_GENERATED");
    println!("cargo:rerun-if-env-changed=VMBRIDGE_LIB_DIR");
    let out = std::env::var_os("BRIDGE_SWIFT_GENERATED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
                .join("generated")
        });
    swift_bridge_build::parse_bridges(bridges)
        .write_all_concatenated(&out, "libcrun-shim-bridge-swift");
    println!(
        "cargo:rustc-env=BRIDGE_SWIFT_GENERATED_DIR={}",
        out.display()
    );

    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        // The Swift package built by build-macos.sh (`swift build`).
        if let Some(dir) = std::env::var_os("VMBRIDGE_LIB_DIR") {
            println!(
                "cargo:rustc-link-search=native={}",
                PathBuf::from(dir).display()
            );
            println!("cargo:rustc-link-lib=static=VMBridge");
            // The Swift runtime of the OS (macOS 12 and later ship it).
            println!("cargo:rustc-link-search=native=/usr/lib/swift");
            println!("cargo:rustc-link-lib=dylib=swiftCore");
            println!("cargo:rustc-link-lib=framework=Foundation");
            println!("cargo:rustc-link-lib=framework=Virtualization");
        }
    }
}
