#!/usr/bin/env bash
# The benchmark suite (integration/BENCHMARKS.md): libcrun-shim beside the
# crun CLI, podman and containerd 1.6, measured in one run on this machine.
# Does the whole set-up (integration/setup.sh) plus the anchors, builds in
# release and runs crun-shim-bench; prints a table of medians and ratios and
# writes integration/bench/results/results.{json,md,svg}. Extra arguments go
# to crun-shim-bench (--help: --runs, --containers, --log-mib, --only).
# Not part of the test command. Needs root; anchors run on private state.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"
# The anchors, and what the image benchmark builds its image from.
ANCHORS=(crun skopeo umoci podman containerd python3.11 vim-runtime)
missing=()
for p in "${ANCHORS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
cargo build --release --locked --workspace --bins
bin_dir="$(realpath "${CARGO_TARGET_DIR:-target}/release")"
CRUN_SHIM_BIN_DIR="$bin_dir" exec "$bin_dir/crun-shim-bench" "$@"
