#!/usr/bin/env bash
# Runs dialkv locally: installs prerequisites, builds, and runs a 3-replica cluster on
# 127.0.0.1:7001-7003 (metrics on :7101-7103) with its data in ./dialkv-data. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --bins
exec "$CARGO_TARGET_DIR/debug/dialkv" dev --nodes 3 --port 7001 \
  --data-dir "${DIALKV_DEV_DIR:-./dialkv-data}" "$@"
