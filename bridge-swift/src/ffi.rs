//! The bridge itself: what Swift reads of a VM ([`VmSpec`]) and what Rust
//! calls in Swift (`VMBridge`, in `swift/Sources/VMBridge/VMBridge.swift`).
//! `build.rs` generates the Swift and C halves from this module.

#![allow(missing_docs)]

use crate::VmSpec;

#[swift_bridge::bridge]
pub mod ffi {
    // Why a VMBridge call failed; `VMBridge.last_error()` says more.
    // (swift-bridge takes no doc attributes inside the module.)
    enum VmError {
        // Virtualization.framework refused the configuration.
        InvalidConfiguration,
        // The VM did not start.
        StartFailed,
        // The VM did not stop.
        StopFailed,
        // The vsock relay socket could not be served.
        RelayFailed,
    }

    extern "Rust" {
        type VmSpec;
        fn kernel(self: &VmSpec) -> String;
        fn initramfs(self: &VmSpec) -> String;
        fn command_line(self: &VmSpec) -> String;
        fn cpus(self: &VmSpec) -> u32;
        fn memory_bytes(self: &VmSpec) -> u64;
        fn disk_count(self: &VmSpec) -> usize;
        fn disk_path(self: &VmSpec, index: usize) -> String;
        fn disk_read_only(self: &VmSpec, index: usize) -> bool;
        fn share_count(self: &VmSpec) -> usize;
        fn share_tag(self: &VmSpec, index: usize) -> String;
        fn share_path(self: &VmSpec, index: usize) -> String;
        fn share_read_only(self: &VmSpec, index: usize) -> bool;
        fn nat(self: &VmSpec) -> bool;
        fn rosetta(self: &VmSpec) -> bool;
        fn relay_socket(self: &VmSpec) -> String;
        fn console_log(self: &VmSpec) -> String;
    }

    extern "Swift" {
        type VMBridge;
        #[swift_bridge(init)]
        fn new(spec: VmSpec) -> VMBridge;
        async fn start(self: &VMBridge) -> Result<(), VmError>;
        async fn stop(self: &VMBridge) -> Result<(), VmError>;
        async fn wait_until_stopped(self: &VMBridge) -> String;
        fn last_error(self: &VMBridge) -> String;
    }
}
