#!/usr/bin/env bash
# Installs what building and testing dialkv needs on a fresh Debian machine, then exports the
# shared target directory. Sourced by scripts/dev.sh and scripts/test.sh; safe to run again.
set -euo pipefail

need_apt=()
# librocksdb-sys runs bindgen, which needs libclang.
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  need_apt+=(libclang-dev)
fi
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# etcd-client (the benchmark's etcd baseline) compiles etcd's .proto files with protoc.
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
# The fault-injection harness's report plots need a TrueType font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# The fault-injection harness skews clocks with libfaketime.
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need_apt+=(faketime)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust from rustup first" >&2
  exit 1
fi

# One target directory outside the checkout, shared by every clone on this machine: the
# bundled RocksDB takes most of the build time, and this keeps it built once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dialkv-target}"
export PROTOC="${PROTOC:-$(command -v protoc)}"
