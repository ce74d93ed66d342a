#!/usr/bin/env bash
# Benchmarks beside the anchors, after the whole set-up (integration/setup.sh)
# plus the anchors themselves (Debian's crun CLI). Prints medians and ratios;
# not part of the test command. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(integration/setup.sh)"
if ! command -v crun >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends crun >&2
fi
exec cargo bench --locked -p crun-shim-agent --bench agent
