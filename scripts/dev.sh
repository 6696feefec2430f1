#!/usr/bin/env bash
# Runs dialkv locally: installs prerequisites, builds, and serves a replica on 127.0.0.1:7401
# (admin HTTP on 127.0.0.1:7481) with its data in ./.dialkv-dev. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --bins
exec "$CARGO_TARGET_DIR/debug/dialkv" serve --id 1 --listen 127.0.0.1:7401 --admin 127.0.0.1:7481 \
  --data-dir "${DIALKV_DEV_DIR:-.dialkv-dev}/1" "$@"
