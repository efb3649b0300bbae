#!/usr/bin/env bash
# Instructions per request of rolecall's Authz/Check and of the same server's
# grpc.health.v1.Health/Check, counted by valgrind's callgrind: repeatable on
# a busy machine where wall-clock throughput is not. The server runs under
# callgrind; h2load sends WARM calls of each, then callgrind's counters are
# zeroed, N calls are sent, and the counters dumped (once per RPC). Then the
# same for CheckBatch calls of BATCH checks (N_BATCH calls; BATCH=0 skips).
#
#   bash bench/callgrind.sh                 # builds release, `small` model
#   BIN=path/to/release bash bench/callgrind.sh   # an already built binary dir
# Knobs: N=20000 WARM=3000 C=16 M=16 PORT=30152 PRESET=small BATCH=64 N_BATCH=2000
#        WORK=target/bench-callgrind
#        ALLOWED=true  (false: the Check measured is a denial, by the first
#                       denied read of a record in the requests file)
#        METRICS=0     (1: serve with --metrics-listen on PORT+1, so each
#                       call is also counted and timed)
# Prints `callgrind check_ir_per_req=... health_ir_per_req=... ratio=...`, then
# `callgrind batch_ir_per_req=... per_check=...`, and leaves callgrind.check /
# callgrind.health / callgrind.batch in WORK for callgrind_annotate.
# Needs valgrind (apt-get install valgrind) and h2load (nghttp2-client).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-20000}; WARM=${WARM:-3000}; C=${C:-16}; M=${M:-16}
BATCH=${BATCH:-64}; N_BATCH=${N_BATCH:-2000}
PORT=${PORT:-30152}; ADDR=127.0.0.1:$PORT; PRESET=${PRESET:-small}
ALLOWED=${ALLOWED:-true}; METRICS=${METRICS:-0}
WORK=${WORK:-target/bench-callgrind}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
log() { echo "[callgrind] $*" >&2; }
for t in valgrind callgrind_control h2load curl python3; do
  command -v "$t" >/dev/null || { log "$t not found"; exit 1; }
done
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin rolecall --example encode_body >&2
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
"$BIN/rolecall" gen --preset "$PRESET" --out "$WORK/snapshot.json" --requests-out "$WORK/requests.jsonl" 2>/dev/null
line=$(python3 -c '
import json, sys
want = sys.argv[2] == "true"
for i, l in enumerate(open(sys.argv[1])):
    r = json.loads(l)
    if r["action"] == "read" and r["resource"].startswith("record:") and r["allowed"] == want:
        print(i); break' "$WORK/requests.jsonl" "$ALLOWED")
"$BIN/examples/encode_body" check --requests "$WORK/requests.jsonl" --line "$line" >"$WORK/check_body.bin" 2>/dev/null
"$BIN/examples/encode_body" health >"$WORK/health_body.bin" 2>/dev/null
[ "$BATCH" -gt 0 ] && "$BIN/examples/encode_body" batch --requests "$WORK/requests.jsonl" --count "$BATCH" \
  >"$WORK/batch_body.bin" 2>/dev/null

rm -f "$WORK"/callgrind.*
ss -ltnH "sport = :$PORT" | grep -q . && { log "port $PORT in use"; exit 1; }
metrics=()
[ "$METRICS" = 1 ] && metrics=(--metrics-listen "127.0.0.1:$((PORT + 1))")
valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/callgrind.start" \
  "$BIN/rolecall" serve --snapshot "$WORK/snapshot.json" --listen "$ADDR" --log-filter warn "${metrics[@]}" \
  >"$WORK/serve.log" 2>&1 &
VG=$!
trap 'kill "$VG" 2>/dev/null; wait "$VG" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  kill -0 "$VG" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  curl -s --max-time 5 --http2-prior-knowledge -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$WORK/health_body.bin" -D "$WORK/h.txt" -o /dev/null "http://$ADDR/grpc.health.v1.Health/Check" \
    && grep -qi '^grpc-status: 0' "$WORK/h.txt" && break
  sleep 1
done
h2() {  # n body path
  h2load -n "$1" -c "$C" -m "$M" -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$2" "http://$ADDR$3" | grep -E '^requests:' | grep -q " $1 succeeded" || { log "h2load $3 failed"; exit 1; }
}
CHECK_PATH=/rolecall.v1.Authz/Check; HEALTH_PATH=/grpc.health.v1.Health/Check
BATCH_PATH=/rolecall.v1.Authz/CheckBatch
h2 "$WARM" "$WORK/check_body.bin" "$CHECK_PATH"
h2 "$WARM" "$WORK/health_body.bin" "$HEALTH_PATH"
measure() {  # name n body path
  callgrind_control -z "$VG" >/dev/null 2>&1
  h2 "$2" "$3" "$4"
  callgrind_control -d "$1" "$VG" >/dev/null 2>&1
  sleep 1
  for f in "$WORK"/callgrind.start.*; do [ -s "$f" ] && mv "$f" "$WORK/callgrind.$1"; done
}
measure check "$N" "$WORK/check_body.bin" "$CHECK_PATH"
measure health "$N" "$WORK/health_body.bin" "$HEALTH_PATH"
ir() { grep -E '^(summary|totals):' "$1" | head -1 | awk '{print $2}'; }
CI=$(ir "$WORK/callgrind.check"); HI=$(ir "$WORK/callgrind.health")
python3 -c 'import sys; c, h, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); print(f"callgrind check_ir_per_req={c/n:.0f} health_ir_per_req={h/n:.0f} ratio={h/c:.3f} n={n} c={sys.argv[4]} m={sys.argv[5]} allowed={sys.argv[6]} metrics={sys.argv[7]}")' \
  "$CI" "$HI" "$N" "$C" "$M" "$ALLOWED" "$METRICS"
if [ "$BATCH" -gt 0 ]; then
  h2 "$((WARM / 10 + 1))" "$WORK/batch_body.bin" "$BATCH_PATH"
  measure batch "$N_BATCH" "$WORK/batch_body.bin" "$BATCH_PATH"
  BI=$(ir "$WORK/callgrind.batch")
  python3 -c 'import sys; b, n, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); print(f"callgrind batch_ir_per_req={b/n:.0f} per_check={b/n/k:.0f} checks={k} n={n}")' \
    "$BI" "$N_BATCH" "$BATCH"
fi
