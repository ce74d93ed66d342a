#!/usr/bin/env bash
# containerd, for the Shim v2 tests and the CRI benchmark: Debian's
# containerd 1.6 (with its ctr and containerd-shim-runc-v2), and containerd
# 2.x built from the Go module proxy into $CACHE_DIR/containerd-VERSION/bin
# (containerd, ctr and its own containerd-shim-runc-v2). The two daemons share
# binary names: put CONTAINERD2_BIN_DIR first on a 2.x daemon's PATH so it
# finds its own runc shim.
set -euo pipefail
. "$(dirname "$0")/lib/go.sh"

apt_install containerd

# The newest containerd 2.x on the Go module proxy
# (`go list -m -versions github.com/containerd/containerd/v2`).
CONTAINERD2_VERSION=v2.4.2

build_containerd() {
  local out=$1 module=github.com/containerd/containerd/v2
  local ldflags="-s -w -X $module/version.Version=$CONTAINERD2_VERSION"
  mkdir -p "$out/bin"
  # no_btrfs: no btrfs headers or cgo needed (containerd's BUILDING.md).
  GOBIN="$out/bin" go install -trimpath -tags no_btrfs -ldflags "$ldflags" \
    "$module/cmd/containerd@$CONTAINERD2_VERSION" \
    "$module/cmd/ctr@$CONTAINERD2_VERSION" \
    "$module/cmd/containerd-shim-runc-v2@$CONTAINERD2_VERSION" >&2
}

cached_build containerd "$CONTAINERD2_VERSION" build_containerd \
  bin/containerd bin/ctr bin/containerd-shim-runc-v2
dir="$CACHE_DIR/containerd-$CONTAINERD2_VERSION/bin"
echo "export CONTAINERD16=/usr/bin/containerd"
echo "export CTR16=/usr/bin/ctr"
echo "export CONTAINERD2_BIN_DIR=$dir"
echo "export CONTAINERD2=$dir/containerd"
echo "export CTR2=$dir/ctr"
