#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine (run as root):
#   * installs every apt package the build and the tests need;
#   * builds libcrun from Debian's own crun source package into a cache
#     outside the git tree (default /var/cache/libcrun-shim/libcrun-<version>),
#     reused when present and rebuilt when missing.
# It prints `export` lines for the environment the build needs
# (LIBCRUN_PREFIX), so callers can `eval "$(integration/setup.sh)"`.
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
  # tests: a real rootfs, real peers
  busybox-static iproute2 util-linux procps
)

need_install=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    need_install+=("$p")
  fi
done

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
}

if [ "${#need_install[@]}" -gt 0 ]; then
  apt_update
  log "installing ${need_install[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_install[@]}" >&2
fi

# --- libcrun ---------------------------------------------------------------
if [ -z "${LIBCRUN_PREFIX:-}" ] && pkg-config --exists libcrun 2>/dev/null; then
  log "using system libcrun $(pkg-config --modversion libcrun) (pkg-config)"
  exit 0
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

mkdir -p "$CACHE_DIR"
if [ -n "${LIBCRUN_PREFIX:-}" ]; then
  prefix="$LIBCRUN_PREFIX"
elif [ -f "$CACHE_DIR/current/lib/pkgconfig/libcrun.pc" ]; then
  prefix="$(readlink -f "$CACHE_DIR/current")"
  log "using cached libcrun $(cat "$prefix/VERSION")"
else
  build_libcrun
  prefix="$(readlink -f "$CACHE_DIR/current")"
fi
echo "export LIBCRUN_PREFIX=$prefix"
