#!/usr/bin/env bash
# Runs every test of dialkv: installs prerequisites (apt, pip), builds the binaries the
# integration tests start, then runs the unit, property and integration tests.
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
