#!/usr/bin/env bash
# Runs every test of dialkv: installs prerequisites (apt, pip), builds the binaries the
# integration tests start, runs the unit, property and integration tests, then the
# fault-injection suite (real 3-replica clusters under kill, pause, partition and clock skew,
# every history checked; reports in $JEPSEN_OUT, default /tmp/dialkv-jepsen-suite).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  echo "setup: installing grpcio and grpcio-tools for the Python client test" >&2
  python3 -m pip install -q grpcio grpcio-tools 2>/dev/null \
    || python3 -m pip install -q --break-system-packages grpcio grpcio-tools
fi
cargo build --workspace --bins
cargo test --workspace --all-targets
bash scripts/loom.sh
out="${JEPSEN_OUT:-/tmp/dialkv-jepsen-suite}"
rm -rf "$out"
"$CARGO_TARGET_DIR/debug/dialkv-jepsen" suite --ci --nodes 3 --no-progress --out "$out"
