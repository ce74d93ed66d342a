#!/usr/bin/env bash
# Builds libcrun-shim's Linux guest without any container engine: a kernel
# (Debian's cloud kernel package, of the build machine's architecture) and
# an initramfs holding busybox,
# e2fsprogs, the kernel modules in load order, our init, crun-shim-agent
# and crun-shim-monitor with every shared library they load (found with
# ldd: glibc, libcrun's yajl, seccomp, cap). The Dockerfile beside this
# script runs it too, so both give the same artefacts.
#
# The initramfs is two concatenated cpio archives (the kernel unpacks them
# in turn): the *base*, which changes only with the kernel and Debian's
# packages and is cached by integration/setup.d/40-vm.sh, and the *agent
# layer*, rebuilt from the binaries under test in a second.
#
#   build-guest.sh base  [--kernel-dir DIR] --out DIR
#       DIR/vmlinuz, DIR/base.cpio, DIR/kernel-release
#   build-guest.sh image --base DIR --bin DIR --out DIR
#       DIR/vmlinuz, DIR/initramfs.img (base + the binaries of --bin)
#   build-guest.sh all   [--kernel-dir DIR] --bin DIR --out DIR
#       both: what the Dockerfile runs
#
# --kernel-dir is an unpacked linux-image-*-cloud-amd64 package (dpkg-deb
# -x); without it the package linux-image-cloud-amd64 points at is
# downloaded with apt-get. --bin holds crun-shim-init, crun-shim-agent and
# crun-shim-monitor (target/release or target/debug; debug info is
# stripped). Archives are reproducible: sorted, fixed times, renumbered
# inodes (GNU cpio --reproducible). Needs: busybox-static, e2fsprogs,
# kmod (depmod), cpio, binutils (strip), ca-certificates.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-}"
shift || true
kernel_dir="" out="" bin="" base=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-dir) kernel_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    *) echo "build-guest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
die() { echo "build-guest.sh: $*" >&2; exit 1; }
[ -n "$out" ] || die "--out is required"
# Fixed times: the same inputs give the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"

# Copies FILE (resolving links) to ROOT at the same path.
install_file() {
  local root="$1" file="$2"
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
}

# Copies every shared library BINARY loads, and its loader, into ROOT.
install_libs() {
  local root="$1" binary="$2" lib
  for lib in $(ldd "$binary" | awk '/=> \//{print $3} /^\t\//{print $1}'); do
    [ -e "$root$lib" ] || install_file "$root" "$lib"
  done
}

# Writes the cpio archive of ROOT to FILE, reproducibly.
pack() {
  local root="$1" file="$2"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort \
    | cpio --quiet -o -H newc --reproducible -R 0:0) > "$file"
}

# The guest has the build machine's architecture: amd64 for QEMU on Linux,
# arm64 for Virtualization.framework on Apple silicon (build it in an arm64
# container: docker build --platform linux/arm64).
arch="$(dpkg --print-architecture)"

fetch_kernel() {
  local work pkg
  work="$(mktemp -d)"
  pkg="$(apt-cache depends "linux-image-cloud-$arch" \
    | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)"
  [ -n "$pkg" ] || die "no linux-image-cloud-$arch in apt's lists (apt-get update?)"
  (cd "$work" && apt-get download -qq "$pkg" >&2)
  mkdir -p "$work/kernel"
  dpkg-deb -x "$work"/*.deb "$work/kernel"
  kernel_dir="$work/kernel"
}

build_base() {
  [ -n "$kernel_dir" ] || fetch_kernel
  local release
  release="$(basename "$(find "$kernel_dir/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")"
  [ -n "$release" ] || die "$kernel_dir holds no lib/modules/RELEASE"
  local root
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$out"
  cp "$kernel_dir/boot/vmlinuz-$release" "$out/vmlinuz"
  # Virtualization.framework boots an uncompressed arm64 Image only.
  if [ "$arch" = arm64 ] && [ "$(head -c2 "$out/vmlinuz" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
    gunzip -c "$kernel_dir/boot/vmlinuz-$release" > "$out/vmlinuz"
  fi
  echo "$release" > "$out/kernel-release"

  # The skeleton.
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc/libcrun-shim,var/lib/libcrun-shim}
  chmod 1777 "$root/tmp"
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3

  # busybox and its applets (its own name would become a self-link).
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list-full); do
    case "$applet" in bin/busybox|sbin/init|linuxrc) continue ;; esac
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
  done

  # e2fsprogs: the init formats a blank state disk and checks a dirty one.
  local tool
  for tool in /sbin/mke2fs /sbin/e2fsck; do
    rm -f "$root$tool"
    install_file "$root" "$tool"
    install_libs "$root" "$tool"
  done
  ln -sf mke2fs "$root/sbin/mkfs.ext4"
  cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"

  # Kernel modules, dependencies first (modules.dep lists a module's
  # dependencies, the last to load first).
  local moddir="$kernel_dir/lib/modules/$release"
  [ -f "$moddir/modules.dep" ] || depmod -b "$kernel_dir" "$release"
  local order=() seen=" " name line deps dep i
  add_module() {
    case "$seen" in *" $1 "*) return ;; esac
    seen="$seen$1 "
    order+=("$1")
  }
  while read -r name; do
    case "$name" in ''|'#'*) continue ;; esac
    line="$(grep -E "(^|/)$name\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep")" \
      || die "module $name is not in $release"
    read -r -a deps <<< "${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[$i]}"; done
    add_module "${line%%:*}"
  done < "$here/modules.txt"
  : > "$root/etc/libcrun-shim/modules"
  for dep in "${order[@]}"; do
    mkdir -p "$root/lib/modules/$release/$(dirname "$dep")"
    cp "$moddir/$dep" "$root/lib/modules/$release/$dep"
    echo "/lib/modules/$release/$dep" >> "$root/etc/libcrun-shim/modules"
  done

  # /etc: users, name resolution, CA certificates (pulls over HTTPS), the
  # DHCP client's hook (Virtualization.framework's NAT).
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$root/etc/group"
  : > "$root/etc/resolv.conf"
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cat > "$root/etc/libcrun-shim/udhcpc.sh" <<'SH'
#!/bin/sh
# busybox udhcpc's hook: applies the lease to $interface.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
SH
  chmod 755 "$root/etc/libcrun-shim/udhcpc.sh"
  pack "$root" "$out/base.cpio"
}

build_image() {
  [ -n "$bin" ] || die "--bin is required"
  [ -n "$base" ] || die "--base is required"
  local b
  for b in crun-shim-init crun-shim-agent crun-shim-monitor; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing (cargo build)"
  done
  local root
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root/usr/bin" "$out"
  strip --strip-debug -o "$root/init" "$bin/crun-shim-init"
  strip --strip-debug -o "$root/usr/bin/crun-shim-agent" "$bin/crun-shim-agent"
  strip --strip-debug -o "$root/usr/bin/crun-shim-monitor" "$bin/crun-shim-monitor"
  for b in "$bin/crun-shim-init" "$bin/crun-shim-agent" "$bin/crun-shim-monitor"; do
    install_libs "$root" "$b"
  done
  pack "$root" "$out/agent.cpio"
  [ "$(cd "$base" && pwd)" = "$(cd "$out" && pwd)" ] || cp "$base/vmlinuz" "$out/vmlinuz"
  cat "$base/base.cpio" "$out/agent.cpio" > "$out/initramfs.img.tmp"
  mv "$out/initramfs.img.tmp" "$out/initramfs.img"
  rm -f "$out/agent.cpio"
}

case "$mode" in
  base) build_base ;;
  image) build_image ;;
  all) build_base; base="$out"; build_image ;;
  *) die "usage: build-guest.sh base|image|all [--kernel-dir DIR] [--base DIR] [--bin DIR] --out DIR" ;;
esac
