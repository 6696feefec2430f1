#!/usr/bin/env bash
# Runs the loom models of dialkv's hand-written concurrency structures. Only the server
# crate's test build gets `--cfg loom` (so no dependency is rebuilt), then its loom tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
out=$(cargo rustc -p dialkv-server --lib --profile test --message-format json -- --cfg loom \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "dialkv_server":
        print(m["executable"])')
LOOM_MAX_PREEMPTIONS=3 "$out" loom_tests
