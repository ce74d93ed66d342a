#!/usr/bin/env bash
# The main job, after doing the whole set-up a fresh Debian 12 machine needs
# (integration/setup.sh): builds and runs the guest agent, serving the v1 gRPC
# API on /run/libcrun-shim/agent.sock with its state in
# /var/lib/libcrun-shim/agent. Extra arguments go to crun-shim-agent
# (see `crun-shim-agent --help`). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"
cargo build --release --locked -q -p crun-shim-agent
exec target/release/crun-shim-agent \
  --listen unix:///run/libcrun-shim/agent.sock \
  --root /var/lib/libcrun-shim/agent "$@"
