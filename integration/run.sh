#!/usr/bin/env bash
# The main job, after doing the whole set-up a fresh Debian 12 machine needs
# (integration/setup.sh): builds and runs the host daemon crun-shimd, which
# serves the v1 gRPC API on /run/libcrun-shim/crun-shimd.sock and starts and
# supervises its local agent (crun-shim-agent, state in
# /var/lib/libcrun-shim/agent); target/release/crun-shim is the CLI and
# target/release/crun-shim-cri the Kubernetes CRI server (README: Kubernetes).
# Extra arguments go to crun-shimd
# (see `crun-shimd --help`). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"
cargo build --release --locked -q -p crun-shimd -p crun-shim-agent -p crun-shim-cli -p crun-shim-cri
exec target/release/crun-shimd "$@"
