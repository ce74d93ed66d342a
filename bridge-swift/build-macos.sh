#!/bin/sh
# Builds crun-shimd with its macOS VM backend, on macOS 13 or later with
# Xcode 16 (Swift 6) and Rust: the swift-bridge glue, the Swift package
# (VMBridge.swift) as a static library, crun-shimd linking it, and the
# com.apple.security.virtualization entitlement, without which
# Virtualization.framework refuses to start a VM.
#
#   bridge-swift/build-macos.sh            # release build
#   target/release/crun-shimd --config crun-shimd.toml
#
# The guest for Apple silicon is arm64: build it with Docker Desktop
# (docker build --platform linux/arm64 -f docker/Dockerfile --output
# type=local,dest=guest .) and name guest/vmlinuz and guest/initramfs.img in
# a [vms.NAME] section (README.md).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
[ "$(uname -s)" = Darwin ] || { echo "build-macos.sh: runs on macOS" >&2; exit 2; }
generated="$here/swift/Sources/VMBridge/Generated"

# 1. The glue, written into the Swift package.
rm -rf "$generated"
BRIDGE_SWIFT_GENERATED="$generated" cargo build --release --locked -p libcrun-shim-bridge-swift
# 2. The Swift side, a static library.
swift build -c release --package-path "$here/swift"
# 3. crun-shimd (and the CLI), linking it and Virtualization.framework.
VMBRIDGE_LIB_DIR="$here/swift/.build/release" \
  cargo build --release --locked -p crun-shimd -p crun-shim-cli
# 4. The entitlement (ad-hoc signature).
codesign --force --sign - --entitlements "$here/vz.entitlements" "$root/target/release/crun-shimd"
echo "built $root/target/release/crun-shimd" >&2
