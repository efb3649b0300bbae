#!/usr/bin/env bash
# rolecall over gRPC, in one run on this 2-core machine:
#   1. against its own transport floor: Authz/Check vs the same server's
#      grpc.health.v1.Health/Check under identical h2load load (target:
#      Check >= 0.9x Health throughput);
#   2. against Cerbos CheckResources, measured by the peers' harness
#      (../shared/peers/cerbos/bench.sh) with the same h2load lines and
#      pinning (targets: >= 10x its throughput, <= 1/10 of its p99);
#   3. a second opinion from our own tonic load generator
#      (examples/loadgen.rs): p50/p90/p99/p99.9 over the whole request mix,
#      and CheckBatch calls of 64 (decisions per second).
#
# Run from anywhere:   bash bench/compare.sh
# Knobs (environment, defaults in brackets):
#   QUICK=1     short run: n=50000 / lat_n=5000, 1 repeat, short loadgen runs
#   LARGE=1     also the `large` model (1M records) [0]
#   MODELS      the presets to measure, in order ["small"; LARGE=1 adds large]
#   CERBOS=0    skip the Cerbos peer bench (about 6 minutes) [1]
#   LOADGEN=0   skip the loadgen second opinion [1]
#   N C M LAT_N REPEATS WARM_N   h2load sizes [200000 16 16 20000 3 20000]
#   PAIRS PAIR_N  short Check/Health h2load pairs, back to back, for the
#               median paired ratio [15 50000; QUICK 4 30000]
#   LG_SECS     seconds per loadgen run [20; QUICK 5]
#   PORT        rolecall's loopback port [30151; the bench scripts' ports lie
#               below Linux's ephemeral range (32768-60999), so a client socket
#               left in TIME-WAIT by an earlier run cannot hold them]
#   PIN=0       no taskset (server on SERVER_CPU=1, load on LOAD_CPU=0) [1]
#   QUIET_MAX_BUSY QUIET_WAIT QUIET_BUDGET   wait up to QUIET_WAIT s for
#               < QUIET_MAX_BUSY % CPU busy before measuring, and at most
#               QUIET_BUDGET s in all [10 300 900; QUICK 10 30 60]
#   BG_MAX MAX_TRIES  retry an h2load run during which other processes used
#               more than BG_MAX % of the machine [3 3; QUICK 3 1]
#   HALT_POLL_NS  if set, the KVM guest's halt-polling window for the run
#               (cpuidle-haltpoll's guest_halt_poll_ns; needs root), restored
#               at exit; both servers are measured under it [unset: as booted]
#   WORK        output directory [target/bench-grpc/<timestamp>]
#   CARGO_TARGET_DIR is honoured for the build.
# Needs: cargo, curl, python3, taskset; installs h2load (apt nghttp2-client)
# if missing. The peers' scripts are run in place (h2load_stats.py is
# stdlib-only); bench.sh installs Cerbos from npm and its own python venv.
# Last line printed: a key=value summary (also in $WORK/summary.txt; the
# table is in $WORK/summary.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PEERS_DIR=${PEERS_DIR:-../shared/peers}
CERBOS_DIR=$PEERS_DIR/cerbos
QUICK=${QUICK:-0}; LARGE=${LARGE:-0}; CERBOS=${CERBOS:-1}; LOADGEN=${LOADGEN:-1}
MODELS=${MODELS:-small}; if [ "$LARGE" = 1 ]; then MODELS="$MODELS large"; fi
if [ "$QUICK" = 1 ]; then
  N=${N:-50000}; LAT_N=${LAT_N:-5000}; REPEATS=${REPEATS:-1}; WARM_N=${WARM_N:-5000}
  LG_SECS=${LG_SECS:-5}; QUIET_WAIT=${QUIET_WAIT:-30}; QUIET_BUDGET=${QUIET_BUDGET:-60}
  MAX_TRIES=${MAX_TRIES:-1}
  VERIFY_N=${VERIFY_N:-20000}; PAIRS=${PAIRS:-4}; PAIR_N=${PAIR_N:-30000}
else
  N=${N:-200000}; LAT_N=${LAT_N:-20000}; REPEATS=${REPEATS:-3}; WARM_N=${WARM_N:-20000}
  LG_SECS=${LG_SECS:-20}; QUIET_WAIT=${QUIET_WAIT:-300}; QUIET_BUDGET=${QUIET_BUDGET:-900}
  MAX_TRIES=${MAX_TRIES:-3}
  VERIFY_N=${VERIFY_N:-100000}; PAIRS=${PAIRS:-15}; PAIR_N=${PAIR_N:-50000}
fi
C=${C:-16}; M=${M:-16}
PORT=${PORT:-30151}; ADDR=127.0.0.1:$PORT
PIN=${PIN:-1}; SERVER_CPU=${SERVER_CPU:-1}; LOAD_CPU=${LOAD_CPU:-0}
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-10}; BG_MAX=${BG_MAX:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
WORK=${WORK:-target/bench-grpc/$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
STATS=(python3 "$CERBOS_DIR/h2load_stats.py")
CHECK_PATH=/rolecall.v1.Authz/Check
HEALTH_PATH=/grpc.health.v1.Health/Check

log() { echo "[compare] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
load() { log "load: $(uptime | sed 's/.*load average/load average/')"; }
busy_pct() {  # system-wide CPU busy % over 3 s (from /proc/stat)
  local a b tot=0 i idle
  read -ra a < <(head -1 /proc/stat); sleep 3; read -ra b < <(head -1 /proc/stat)
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  idle=$(( (b[4] - a[4]) + (b[5] - a[5]) ))
  echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
WAITED=0  # seconds spent waiting for quiet so far, at most QUIET_BUDGET in all
wait_quiet() {  # sets BUSY; waits at most QUIET_WAIT s (and QUIET_BUDGET s per run)
  local waited=0
  while :; do
    BUSY=$(busy_pct)
    if [ "$BUSY" -lt "$QUIET_MAX_BUSY" ] || [ "$waited" -ge "$QUIET_WAIT" ] \
       || [ "$WAITED" -ge "$QUIET_BUDGET" ]; then break; fi
    log "machine busy (${BUSY}% CPU; top: $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -3 | tr -s ' ' | tr '\n' ';')); waiting"
    sleep 7; waited=$((waited + 10)); WAITED=$((WAITED + 10))
  done
  [ "$BUSY" -lt "$QUIET_MAX_BUSY" ] || log "WARNING: machine still ${BUSY}% busy; figures are contaminated"
}

# ------------------------------------------------------------------ tools
for t in cargo curl python3 taskset ss; do command -v "$t" >/dev/null || die "$t not found"; done
if ! command -v h2load >/dev/null; then
  log "installing nghttp2-client (h2load) via apt"
  { apt-get update && apt-get install -y nghttp2-client; } >&2
fi
[ -f "$CERBOS_DIR/h2load_stats.py" ] || die "$CERBOS_DIR/h2load_stats.py not found (PEERS_DIR=$PEERS_DIR)"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
log "output in $WORK"
log "$(h2load --version | head -1); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# ------------------------------------------------------------------ idle
# How long an idle vCPU polls before it halts. A halted vCPU takes tens of
# microseconds to wake, which is most of a c1 call's latency (BENCHMARKS.md,
# "What the c1 floor is made of"); the figures record which setting they had.
HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_BOOTED=
halt_poll_now() { if [ -r "$HALT_POLL" ]; then cat "$HALT_POLL"; else echo n/a; fi; }
restore_halt_poll() {
  if [ -n "$HALT_POLL_BOOTED" ]; then
    echo "$HALT_POLL_BOOTED" >"$HALT_POLL" && log "guest_halt_poll_ns restored to $HALT_POLL_BOOTED"
    HALT_POLL_BOOTED=
  fi
}
if [ -n "${HALT_POLL_NS:-}" ]; then
  [ -w "$HALT_POLL" ] || die "HALT_POLL_NS needs a writable $HALT_POLL (root, cpuidle-haltpoll)"
  HALT_POLL_BOOTED=$(cat "$HALT_POLL")
  trap restore_halt_poll EXIT
  echo "$HALT_POLL_NS" >"$HALT_POLL" || die "cannot set guest_halt_poll_ns"
fi
log "guest_halt_poll_ns: $(halt_poll_now)"

# ------------------------------------------------------------------ build
load
log "building release: rolecall, examples loadgen + encode_body"
cargo build --release --quiet --bin rolecall --example loadgen --example encode_body >&2
[ -x "$BIN/rolecall" ] || die "$BIN/rolecall missing after the build"

SRV_PIN=(); LOAD_PIN=()
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c "$SERVER_CPU"); LOAD_PIN=(taskset -c "$LOAD_CPU"); fi
SRV_PID=
stop_server() {
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; log "stopped rolecall pid $SRV_PID"
  fi
  SRV_PID=
}
trap 'stop_server; restore_halt_poll' EXIT

# one unary call with curl (same framing as h2load): checks grpc-status 0,
# writes the reply to $3, prints its DATA size
grpc_curl() {  # path body-file reply-file
  curl -s --max-time 10 --http2-prior-knowledge -X POST -H 'content-type: application/grpc' \
    -H 'te: trailers' --data-binary @"$2" -D "$3.hdr" -o "$3" "http://$ADDR$1" || return 1
  grep -qi '^grpc-status: 0' "$3.hdr" || return 1
  stat -c %s "$3"
}

CONTAMINATED=0
run_h2load() {  # dir name path body n c m reply-bytes [tries]
  local d=$1 name=$2 path=$3 body=$4 n=$5 c=$6 m=$7 rb=$8 tries=${9:-$MAX_TRIES} try bg
  rm -f "$d/$name.json"
  for try in $(seq 1 "$tries"); do
    [ "$try" = 1 ] || wait_quiet
    load
    rm -f "$d/$name.tsv"  # --log-file appends
    "${STATS[@]}" exec "$d/$name.out" "$SRV_PID" "$RUN_TIMEOUT" -- \
      "${LOAD_PIN[@]}" h2load -n "$n" -c "$c" -m "$m" -t 1 \
      -H 'content-type: application/grpc' -H 'te: trailers' -d "$body" \
      --log-file="$d/$name.tsv" "http://$ADDR$path" || { cat "$d/$name.out" >&2; die "h2load $name"; }
    # exits 1 unless every request got HTTP 200 and DATA bytes = n x reply size
    "${STATS[@]}" run "$d/$name.out" "$d/$name.tsv" "$n" "$rb" >"$d/$name.try$try.json" \
      || die "h2load $name: failed requests or a grpc error (DATA bytes != $n x $rb)"
    rm -f "$d/$name.tsv"
    log "$name: $(cat "$d/$name.try$try.json")"
    # keep the try with the least background CPU
    bg=$(python3 -c '
import json, os, sys
new, best, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
b_new = json.load(open(new))["bg_cpu_pct"]
if not os.path.exists(best) or b_new <= json.load(open(best))["bg_cpu_pct"]:
    os.replace(new, best)
else:
    os.remove(new)
print(int(b_new > limit))' "$d/$name.try$try.json" "$d/$name.json" "$BG_MAX")
    [ "$bg" = 1 ] || return 0
    log "$name: other processes used > ${BG_MAX}% CPU during the run (try $try/$tries)"
  done
  log "$name: keeping the least contaminated try: $(cat "$d/$name.json")"
  case $name in warm_*) ;; *) CONTAMINATED=$((CONTAMINATED + 1)) ;; esac
}

run_loadgen() {  # dir name loadgen-args...
  local d=$1 name=$2; shift 2
  load
  "${STATS[@]}" exec "$d/$name.out" "$SRV_PID" "$RUN_TIMEOUT" -- \
    "${LOAD_PIN[@]}" "$BIN/examples/loadgen" --addr "$ADDR" "$@" \
    || { cat "$d/$name.out" >&2; die "loadgen $name"; }
  grep '^loadgen ' "$d/$name.out" | tail -1 >"$d/$name.line"
  log "$name: $(cat "$d/$name.line") $(cat "$d/$name.out.cpu.json")"
}

bench_model() {  # preset
  local model=$1 d="$WORK/$1"
  mkdir -p "$d"
  log "=== model $model"
  "$BIN/rolecall" gen --preset "$model" --out "$d/snapshot.json" --requests-out "$d/requests.jsonl" 2>&1 \
    | sed 's/^/[gen] /' >&2

  ss -ltnH "sport = :$PORT" | grep -q . && die "port $PORT already in use (PORT=...)"
  "${SRV_PIN[@]}" "$BIN/rolecall" serve --snapshot "$d/snapshot.json" --listen "$ADDR" \
    --log-filter warn >"$d/serve.log" 2>&1 &
  SRV_PID=$!
  log "rolecall pid $SRV_PID (pin: ${SRV_PIN[*]:-none}), loading $model"
  "$BIN/examples/encode_body" health >"$d/health_body.bin" 2>/dev/null
  local t0=$SECONDS ok=0 i
  for i in $(seq 1 1200); do  # up to ~10 min for `large`
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$d/serve.log" >&2; die "rolecall exited"; }
    if grpc_curl "$HEALTH_PATH" "$d/health_body.bin" "$d/health_reply.bin" >/dev/null 2>&1 \
       && [ "$(od -An -tx1 -j5 "$d/health_reply.bin" | tr -d ' \n')" = 0801 ]; then ok=1; break; fi
    sleep 0.5
  done
  [ "$ok" = 1 ] || die "rolecall not SERVING"
  log "SERVING after $((SECONDS - t0)) s; server VmRSS $(grep VmRSS /proc/$SRV_PID/status | tr -s ' ' | cut -d' ' -f2-)"

  # the Check body: the first allowed `read` of a record in the mix (so the
  # answer goes through reach: the record and its parent Mini)
  local line
  line=$(python3 -c '
import json, sys
for i, l in enumerate(open(sys.argv[1])):
    r = json.loads(l)
    if r["action"] == "read" and r["resource"].startswith("record:") and r["allowed"]:
        print(i); break' "$d/requests.jsonl")
  [ -n "$line" ] || die "no allowed record read in $d/requests.jsonl"
  "$BIN/examples/encode_body" check --requests "$d/requests.jsonl" --line "$line" \
    >"$d/check_body.bin" 2>"$d/check_body.txt"
  log "$(tr '\n' ' ' <"$d/check_body.txt")"
  local check_rb health_rb
  check_rb=$(grpc_curl "$CHECK_PATH" "$d/check_body.bin" "$d/check_reply.bin") || die "Check: grpc-status != 0: $(cat "$d/check_reply.bin.hdr")"
  health_rb=$(grpc_curl "$HEALTH_PATH" "$d/health_body.bin" "$d/health_reply.bin") || die "Health: grpc-status != 0"
  # CheckResponse field 1 (allowed) = true: bytes 08 01 right after the 5-byte frame header
  [ "$(od -An -tx1 -j5 -N2 "$d/check_reply.bin" | tr -d ' \n')" = 0801 ] || die "Check reply is not allowed=true"
  log "curl: grpc-status 0 for both; reply DATA bytes check=$check_rb (allowed=true) health=$health_rb (SERVING)"
  echo "$check_rb" >"$d/check_reply_bytes"

  # every answer over gRPC equals the engine's in the requests file, one
  # Check at a time and in CheckBatch calls of 64
  run_loadgen "$d" verify --method check --requests "$d/requests.jsonl" --check-allowed \
    -c 4 -m 8 -n "$VERIFY_N" --warmup 0 --duration 120
  run_loadgen "$d" verify_batch --method batch --batch-size 64 --requests "$d/requests.jsonl" \
    --check-allowed -c 4 -m 4 -n "$(((VERIFY_N + 63) / 64))" --warmup 0 --duration 120

  wait_quiet; load
  log "background CPU busy before h2load: ${BUSY}%"
  echo "$BUSY" >"$d/bg_busy_start"
  # warm-up (not counted, not retried)
  run_h2load "$d" warm_check "$CHECK_PATH" "$d/check_body.bin" "$WARM_N" "$C" "$M" "$check_rb" 1
  run_h2load "$d" warm_health "$HEALTH_PATH" "$d/health_body.bin" "$WARM_N" "$C" "$M" "$health_rb" 1
  # Check and Health take turns going first (odd repeats and pairs: Check;
  # even: Health), so that whatever the first run after a pause pays is
  # not always Check's
  for i in $(seq 1 "$REPEATS"); do
    local order=(check health)
    [ $((i % 2)) = 1 ] || order=(health check)
    for what in "${order[@]}"; do
      if [ "$what" = check ]; then
        run_h2load "$d" "tput_check_$i"  "$CHECK_PATH"  "$d/check_body.bin"  "$N" "$C" "$M" "$check_rb"
      else
        run_h2load "$d" "tput_health_$i" "$HEALTH_PATH" "$d/health_body.bin" "$N" "$C" "$M" "$health_rb"
      fi
    done
    run_h2load "$d" "lat_check_$i"   "$CHECK_PATH"  "$d/check_body.bin"  "$LAT_N" 1 1 "$check_rb"
    run_h2load "$d" "lat_health_$i"  "$HEALTH_PATH" "$d/health_body.bin" "$LAT_N" 1 1 "$health_rb"
  done
  # many short Check/Health pairs back to back: on this VM the speed of a
  # core drifts by +-20 % from minute to minute (invisible to /proc/stat), so
  # the median of adjacent pairs is the steadier Check/Health estimate
  for i in $(seq 1 "$PAIRS"); do
    local order=(check health)
    [ $((i % 2)) = 1 ] || order=(health check)
    for what in "${order[@]}"; do
      if [ "$what" = check ]; then
        run_h2load "$d" "pair_check_$i"  "$CHECK_PATH"  "$d/check_body.bin"  "$PAIR_N" "$C" "$M" "$check_rb" 1
      else
        run_h2load "$d" "pair_health_$i" "$HEALTH_PATH" "$d/health_body.bin" "$PAIR_N" "$C" "$M" "$health_rb" 1
      fi
    done
  done
  local k
  for k in tput_check tput_health lat_check lat_health; do
    local runs=()
    for i in $(seq 1 "$REPEATS"); do runs+=("$d/${k}_$i.json"); done
    "${STATS[@]}" median "${runs[@]}" >"$d/median_$k.json"
    log "median $k: $(cat "$d/median_$k.json")"
  done

  if [ "$LOADGEN" = 1 ]; then
    local lg=(-n 100000000 --duration "$LG_SECS")
    run_loadgen "$d" lg_check_c16m16  --method check  --requests "$d/requests.jsonl" --check-allowed -c "$C" -m "$M" --warmup "$WARM_N" "${lg[@]}"
    run_loadgen "$d" lg_health_c16m16 --method health -c "$C" -m "$M" --warmup "$WARM_N" "${lg[@]}"
    run_loadgen "$d" lg_check_c1m1    --method check  --requests "$d/requests.jsonl" --check-allowed -c 1 -m 1 --warmup 2000 "${lg[@]}"
    run_loadgen "$d" lg_health_c1m1   --method health -c 1 -m 1 --warmup 2000 "${lg[@]}"
    run_loadgen "$d" lg_list_c1m1     --method list   --requests "$d/requests.jsonl" --page-size 100 -c 1 -m 1 --warmup 200 "${lg[@]}"
    run_loadgen "$d" lg_batch64_c4m4  --method batch  --batch-size 64 --requests "$d/requests.jsonl" --check-allowed -c 4 -m 4 --warmup 500 "${lg[@]}"
  fi
  grep -E 'VmHWM|VmRSS' "/proc/$SRV_PID/status" | tr -s ' \t' ' ' >"$d/server_mem.txt" || true
  stop_server
  busy_pct >"$d/bg_busy_end"
}

for model in $MODELS; do bench_model "$model"; done

if [ "$CERBOS" = 1 ]; then
  load
  log "=== Cerbos: bash $CERBOS_DIR/bench.sh (REPEATS=$REPEATS N=$N C=$C M=$M LAT_N=$LAT_N PIN=$PIN)"
  REPEATS=$REPEATS N=$N C=$C M=$M LAT_N=$LAT_N PIN=$PIN SERVER_CPU=$SERVER_CPU LOAD_CPU=$LOAD_CPU \
    QUIET_MAX_BUSY=$QUIET_MAX_BUSY QUIET_WAIT=$QUIET_WAIT BG_MAX=$BG_MAX MAX_TRIES=$MAX_TRIES \
    bash "$CERBOS_DIR/bench.sh" >"$WORK/cerbos.out" 2>"$WORK/cerbos.log" \
    || { tail -20 "$WORK/cerbos.log" >&2; die "cerbos bench.sh"; }
  tail -1 "$WORK/cerbos.out" >"$WORK/cerbos_summary.txt"
  log "cerbos: $(cat "$WORK/cerbos_summary.txt")"
fi

load
python3 bench/report.py "$WORK" "contaminated=$CONTAMINATED quick=$QUICK pin=$PIN c=$C m=$M n=$N lat_n=$LAT_N repeats=$REPEATS halt_poll_ns=$(halt_poll_now)"
