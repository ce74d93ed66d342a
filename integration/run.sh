#!/usr/bin/env bash
# The main job, after doing the whole set-up a fresh Debian 12 machine needs
# (integration/setup.sh). Until the agent and the daemon land, this runs a
# busybox container through libcrun in-process (libcrun-sys's `run`
# example): `integration/run.sh [--rootfs DIR] [CMD [ARGS...]]`. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"
exec cargo run --release --locked -q -p libcrun-sys --example run -- "$@"
