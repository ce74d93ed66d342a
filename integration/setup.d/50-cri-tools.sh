#!/usr/bin/env bash
# The Kubernetes project's own CRI tools, for the CRI server's tests:
# `crictl` (the CRI command line) and `critest` (the CRI validation suite, a
# Go test binary), from cri-tools as the Go module proxy serves it. Built
# once into $CACHE_DIR/cri-tools-VERSION; prints CRICTL and CRITEST.
set -euo pipefail
. "$(dirname "$0")/lib/go.sh"

# The newest cri-tools release on the Go module proxy
# (`go list -m -versions sigs.k8s.io/cri-tools`).
CRI_TOOLS_VERSION=v1.37.0

build_cri_tools() {
  local out=$1 module=sigs.k8s.io/cri-tools
  local ldflags="-s -w -X $module/pkg/version.Version=${CRI_TOOLS_VERSION#v}"
  GOBIN="$out" go install -trimpath -ldflags "$ldflags" "$module/cmd/crictl@$CRI_TOOLS_VERSION" >&2
  # critest is a test binary (`go test -c`), which needs the module's own
  # tree: a writable copy of it out of the module cache.
  local src
  src="$(go mod download -json "$module@$CRI_TOOLS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [ -d "$src" ] || { log "no source directory for $module@$CRI_TOOLS_VERSION"; return 1; }
  rm -rf "$out/src"
  cp -r "$src" "$out/src"
  chmod -R u+w "$out/src"
  (cd "$out/src" && go test -c -trimpath -ldflags "$ldflags" -o "$out/critest" ./cmd/critest >&2)
  rm -rf "$out/src"
}

apt_install crun gcc libc6-dev

# nginx for the web server images: Debian's binary package and its
# configuration, unpacked; its shared libraries come from this machine.
nginx_version="$(apt-cache policy nginx | sed -n 's/^ *Candidate: //p')"
nginx_root="$CACHE_DIR/critest-nginx-$nginx_version"
if [ ! -x "$nginx_root/usr/sbin/nginx" ]; then
  log "unpacking Debian's nginx $nginx_version into $nginx_root"
  apt_install libcrypt1 libpcre2-8-0 libssl3 zlib1g
  work="$(mktemp -d)"
  chmod 755 "$work" # apt's download user writes there
  (cd "$work" && apt-get download -qq "nginx=$nginx_version" "nginx-common=$nginx_version" >&2)
  rm -rf "$nginx_root.tmp"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$nginx_root.tmp"; done
  rm -rf "$work" "$nginx_root"
  mv "$nginx_root.tmp" "$nginx_root"
fi
echo "export CRITEST_NGINX_ROOT=$nginx_root"

# busybox for critest's busybox image: Debian's dynamically linked build,
# whose shell runs programs from PATH as the real image's does (the static
# build runs its applets in-process, which critest's masked /bin/ls cannot
# stop). Unpacked only: it conflicts with busybox-static.
busybox_version="$(apt-cache policy busybox | sed -n 's/^ *Candidate: //p')"
busybox_root="$CACHE_DIR/critest-busybox-$busybox_version"
if [ ! -x "$busybox_root/bin/busybox" ]; then
  log "unpacking Debian's busybox $busybox_version into $busybox_root"
  work="$(mktemp -d)"
  chmod 755 "$work"
  (cd "$work" && apt-get download -qq "busybox=$busybox_version" >&2)
  rm -rf "$busybox_root.tmp"
  dpkg-deb -x "$work"/busybox_*.deb "$busybox_root.tmp"
  rm -rf "$work" "$busybox_root"
  mv "$busybox_root.tmp" "$busybox_root"
fi
echo "export CRITEST_BUSYBOX_ROOT=$busybox_root"

cached_build cri-tools "$CRI_TOOLS_VERSION" build_cri_tools crictl critest
dir="$CACHE_DIR/cri-tools-$CRI_TOOLS_VERSION"
echo "export CRICTL=$dir/crictl"
echo "export CRITEST=$dir/critest"
