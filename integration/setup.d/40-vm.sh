#!/usr/bin/env bash
# The VM path's peers (issue 16): QEMU, the guest kernel, vhost-device-vsock
# and virtiofsd, and the guest's base image built by docker/build-guest.sh.
#
#   * qemu-system-x86 from Debian (TCG; KVM is used when /dev/kvm works);
#   * Debian's cloud kernel package, downloaded and unpacked (never installed
#     on the host) into $CACHE_DIR/guest-kernel-VERSION;
#   * vhost-device-vsock and virtiofsd from crates.io (Debian 12 packages
#     neither), `cargo install`ed once into $CACHE_DIR/vm-tools-VERSIONS;
#   * the guest's base (kernel, modules, busybox, e2fsprogs, our init's
#     settings) built by docker/build-guest.sh into
#     $CACHE_DIR/guest-base-HASH, HASH covering every input that changes it.
#     The agent's own layer is added at test time from the binaries being
#     tested (integration::vm), so a code change never rebuilds the base.
#
# Cold (empty cache, Debian packages already installed) 11.8 min on two
# cores shared with builds and tests (load about 9), nearly all of it the two
# cargo installs; the kernel's download and the base image take 20 s.
# Warm: 4 s.
#
# Prints CRUN_SHIMD_QEMU, CRUN_SHIMD_VHOST_DEVICE_VSOCK, CRUN_SHIMD_VIRTIOFSD
# (crun-shimd's own variables) and CRUN_SHIM_GUEST_BASE for the VM tests and
# the bench.
set -euo pipefail
: "${CACHE_DIR:?run through integration/setup.sh}"
here="$(cd "$(dirname "$0")/../.." && pwd)"

VHOST_DEVICE_VSOCK_VERSION=0.3.0
VIRTIOFSD_VERSION=1.14.0

# virtiofsd links libseccomp and libcap-ng; busybox-static, e2fsprogs and
# the CA certificates go into the guest; kmod (depmod), cpio and binutils
# (strip) build it.
apt_install qemu-system-x86 libcap-ng-dev libseccomp-dev e2fsprogs busybox-static \
  ca-certificates kmod cpio binutils

# --- vhost-device-vsock and virtiofsd --------------------------------------
tools="$CACHE_DIR/vm-tools-vsock$VHOST_DEVICE_VSOCK_VERSION-virtiofsd$VIRTIOFSD_VERSION"
if [ ! -x "$tools/bin/vhost-device-vsock" ] || [ ! -x "$tools/bin/virtiofsd" ]; then
  log "building vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION and virtiofsd $VIRTIOFSD_VERSION into $tools (a few minutes, once)"
  rm -rf "$tools.tmp"
  # Their own target dir: never the caller's sccache or RUSTFLAGS.
  env -u RUSTC_WRAPPER -u RUSTFLAGS CARGO_TARGET_DIR="$tools.tmp/target" \
    cargo install --quiet --locked --root "$tools.tmp" \
    "vhost-device-vsock@$VHOST_DEVICE_VSOCK_VERSION" >&2
  env -u RUSTC_WRAPPER -u RUSTFLAGS CARGO_TARGET_DIR="$tools.tmp/target" \
    cargo install --quiet --locked --root "$tools.tmp" "virtiofsd@$VIRTIOFSD_VERSION" >&2
  rm -rf "$tools.tmp/target" "$tools"
  mv "$tools.tmp" "$tools"
else
  log "using cached vhost-device-vsock and virtiofsd in $tools"
fi

# --- the guest kernel --------------------------------------------------------
# The image package the metapackage points at, e.g. linux-image-6.1.0-57-cloud-amd64.
kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
  | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)"
if [ -z "$kernel_pkg" ]; then
  apt_update
  kernel_pkg="$(apt-cache depends linux-image-cloud-amd64 \
    | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)"
fi
kernel_version="$(apt-cache policy "$kernel_pkg" | sed -n 's/^ *Candidate: //p')"
kernel_dir="$CACHE_DIR/guest-kernel-$kernel_pkg-$kernel_version"
if [ ! -f "$kernel_dir/.complete" ]; then
  log "downloading $kernel_pkg $kernel_version into $kernel_dir"
  work="$(mktemp -d)"
  (cd "$work" && apt-get download -qq "$kernel_pkg" >&2)
  rm -rf "$kernel_dir"
  mkdir -p "$kernel_dir"
  dpkg-deb -x "$work"/*.deb "$kernel_dir"
  rm -rf "$work"
  touch "$kernel_dir/.complete"
else
  log "using cached guest kernel $kernel_dir"
fi

# --- the guest's base image --------------------------------------------------
# Keyed by the build script, the init's module list, the kernel and the
# versions of what it copies from the host.
key="$( {
  cat "$here/docker/build-guest.sh" "$here/docker/modules.txt"
  echo "$kernel_pkg $kernel_version"
  dpkg-query -W -f='${Package} ${Version}\n' busybox-static e2fsprogs libc6 ca-certificates
} | sha256sum | cut -c1-16)"
base="$CACHE_DIR/guest-base-$key"
if [ ! -f "$base/.complete" ]; then
  log "building the guest's base image into $base"
  rm -rf "$base.tmp"
  "$here/docker/build-guest.sh" base --kernel-dir "$kernel_dir" --out "$base.tmp" >&2
  touch "$base.tmp/.complete"
  rm -rf "$base"
  mv "$base.tmp" "$base"
else
  log "using cached guest base $base"
fi

# crun-shimd reads these as its --qemu, --vhost-device-vsock and --virtiofsd.
echo "export CRUN_SHIMD_QEMU=$(command -v qemu-system-x86_64)"
echo "export CRUN_SHIMD_VHOST_DEVICE_VSOCK=$tools/bin/vhost-device-vsock"
echo "export CRUN_SHIMD_VIRTIOFSD=$tools/bin/virtiofsd"
echo "export CRUN_SHIM_GUEST_BASE=$base"
