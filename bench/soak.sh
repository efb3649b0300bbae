#!/usr/bin/env bash
# A mixed-load soak of a real `rolecall serve` on loopback (examples/soak.rs;
# results in RELIABILITY.md): many Authz clients (Check, ListVisible), a
# steady stream of Apply deltas to a state dir, Watch followers; it samples
# the server's RSS and latencies and checks for unexpected errors, lost
# updates, watcher gaps and memory growth. Exits non-zero on any of them.
#
#   bash bench/soak.sh                    # 10 minutes
#   SOAK_SECONDS=60 bash bench/soak.sh    # the short variant
# Knobs (environment): SOAK_SECONDS=600 SOAK_CLIENTS=16 SOAK_RPS=2000
#   SOAK_APPLIES_PER_SEC=20 SOAK_WATCHERS=4 SOAK_RSS_MARGIN_PERCENT=15
#   SOAK_RSS_MARGIN_MIB=8 SOAK_RETAIN_SECONDS=20 WORK=target/soak
#   BIN=dir with an already built release `rolecall` and `examples/soak`
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=${WORK:-target/soak}
mkdir -p "$WORK"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin rolecall --example soak >&2
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
exec "$BIN/examples/soak" --bin "$BIN/rolecall" --work "$WORK"
