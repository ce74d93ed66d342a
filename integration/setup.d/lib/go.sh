# Sourced by the setup.d scripts that build Go peers (containerd 2.x, the
# cri-tools). Go is only for these tools; the project itself is Rust.
#
# go_env: points Go's module and build caches into $CACHE_DIR/go, so that a
# rebuild after a version bump reuses what was downloaded and compiled, and
# insists on the local toolchain (no toolchain download: only the module
# proxy is reachable).
go_env() {
  command -v go >/dev/null || {
    log "go is missing: install Go >= 1.26 (the cri-tools and containerd 2.x need it)"
    return 1
  }
  export GOPATH="$CACHE_DIR/go" GOMODCACHE="$CACHE_DIR/go/mod" GOCACHE="$CACHE_DIR/go/build"
  export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
}

# cached_build NAME VERSION BUILD_FUNCTION FILE...: runs BUILD_FUNCTION DIR
# into a fresh DIR unless $CACHE_DIR/NAME-VERSION already holds FILE... and
# its stamp, then moves DIR into place; prints nothing, logs to stderr.
cached_build() {
  local name=$1 version=$2 build=$3
  shift 3
  local dir="$CACHE_DIR/$name-$version" stamp ok=1 f
  stamp="$dir/.libcrun-shim-complete"
  [ "$(cat "$stamp" 2>/dev/null)" = "$version" ] || ok=0
  for f in "$@"; do [ -x "$dir/$f" ] || ok=0; done
  if [ "$ok" = 1 ]; then
    log "using cached $name $version"
    return 0
  fi
  log "building $name $version into $dir"
  go_env
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  local started=$SECONDS
  "$build" "$dir.tmp"
  echo "$version" > "$dir.tmp/.libcrun-shim-complete"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  log "built $name $version in $((SECONDS - started)) s"
}
