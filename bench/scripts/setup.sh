#!/usr/bin/env bash
# Installs what dialkv-bench needs on Debian: the baselines (etcd-server, redis-server), protoc
# for etcd-client's build script, and a TrueType font for the plot. Safe to run again: it
# installs only what is missing. Source it (`source bench/scripts/setup.sh`) to also export
# PROTOC for cargo.
set -euo pipefail

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bench setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  # The packages' own services are not wanted (the benchmark starts its own clusters on free
  # ports); in containers policy-rc.d already stops them from starting.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian starts the packaged services where it can: stop them so they take no CPU or ports.
for service in etcd redis-server; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    $([ "$(id -u)" -eq 0 ] || echo sudo) systemctl stop "$service" || true
  fi
done

# etcd-client's build script compiles etcd's .proto files with protoc found through PROTOC.
export PROTOC="${PROTOC:-$(command -v protoc)}"
