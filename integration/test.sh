#!/usr/bin/env bash
# Runs every test of libcrun-shim on this machine, after doing the whole
# set-up a fresh Debian 12 machine needs (integration/setup.sh: apt packages,
# libcrun built from Debian's crun source). Needs root: the tests run real
# containers.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build" >&2
# The binaries first: tests of other packages than theirs (integration's
# tests/clients.rs) run them from the profile directory they run from.
cargo build --workspace --locked
echo "== cargo test" >&2
cargo test --workspace --locked
echo "== critest (Kubernetes CRI conformance, against crun-shim-cri)" >&2
cargo run --locked -q -p integration --bin critest-run
