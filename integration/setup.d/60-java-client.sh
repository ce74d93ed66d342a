#!/usr/bin/env bash
# The grpc-java client of integration/tests/clients.rs: a JDK and Maven from
# Debian, grpc-java (integration/tests/java/pom.xml) from Maven Central into
# $CACHE_DIR/maven, and UnixSocketClient.java compiled beside it, cached under
# $CACHE_DIR/java-client-<hash of pom.xml and the source>, rebuilt when
# missing. Prints LIBCRUN_SHIM_JAVA_CLIENT: a classpath to run
# `java -cp "$LIBCRUN_SHIM_JAVA_CLIENT" UnixSocketClient SOCKET` with.
set -euo pipefail
src="$(cd "$(dirname "$0")/../tests/java" && pwd)"

apt_install default-jdk-headless maven

hash="$(cat "$src/pom.xml" "$src/UnixSocketClient.java" | sha256sum | cut -c1-12)"
out="$CACHE_DIR/java-client-$hash"
if [ -f "$out/.complete" ]; then
  log "using cached Java client $out"
else
  log "building the Java client into $out (grpc-java from Maven Central)"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp/classes"
  mvn -q -B -f "$src/pom.xml" -Dmaven.repo.local="$CACHE_DIR/maven" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out.tmp/lib" >&2
  javac -d "$out.tmp/classes" -cp "$out.tmp/lib/*" "$src/UnixSocketClient.java" >&2
  touch "$out.tmp/.complete"
  rm -rf "$out"
  mv "$out.tmp" "$out"
fi
echo "export LIBCRUN_SHIM_JAVA_CLIENT='$out/classes:$out/lib/*'"
