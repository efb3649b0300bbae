#!/usr/bin/env bash
# Check latency while Apply deltas stream in. The target: "`Check` p99 under
# load no worse than 2x its quiet value while 1000 deltas per second stream
# in".
#
# It builds the release binary and the load generator, generates a model
# (`rolecall gen`), serves it on loopback with an Admin listener and a token
# file (0600), waits for SERVING, then runs the same Check load
# (examples/loadgen.rs: the whole request mix, every answer compared with the
# file's `allowed`) twice for the same time and concurrency:
#
#   quiet   no deltas;
#   loaded  the same, plus RATE one-record deltas per second on one Admin
#           Apply stream: each upserts an existing record (parent unchanged)
#           with new labels, a resource-only delta, which the server applies
#           to its overlay without a rebuild. Records named by the requests
#           file are never changed, so every Check answer is still checked.
#
# and prints quiet and loaded p50/p99, the p99 ratio (target <= 2x), the
# delta rate achieved and its ack latency, the server's CPU and RSS, and the
# load average. Any non-OK status, wrong answer, rejected or unanswered delta
# fails the run (exit 1). A missed target does not: it is a measurement.
#
#   bash bench/deltas.sh                      # large, 20 s each
#   PRESET=small SECS=10 bash bench/deltas.sh
#
# Knobs (environment, defaults in brackets):
#   PRESET      small or large [large]
#   SECS        seconds of each measured run [20]
#   RATE        deltas per second in the loaded run [1000]
#   C M         loadgen connections and calls in flight per connection [16 16]
#   WARM_N      warm-up calls before each run (not counted) [20000]
#   ROUNDS      quiet/loaded pairs, back to back; the ratio is their median [1]
#   WINDOW      most deltas sent and not yet answered [256]
#   PIN=0       no taskset (server on SERVER_CPU=1, loadgen on LOAD_CPU=0) [1]
#   PORT ADMIN_PORT   loopback ports of the Authz and Admin listeners [30171 30172]
#   STATE=1     serve with a state dir (every delta fsynced; compaction every
#               COMPACT_EVERY updates, the server's default if unset) [0]
#   RETAIN_SECONDS    the server's --retain-seconds (its default if unset)
#   QUIET_MAX_BUSY QUIET_WAIT   before each run, wait up to QUIET_WAIT s for
#               the machine to be under QUIET_MAX_BUSY % busy [10 60]
#   WORK        output directory [target/bench-deltas/<timestamp>]
#   CARGO_TARGET_DIR is honoured for the build.
# Each resource delta adds to the server's overlay until it is full and the
# next delta folds it into a new base table (a full rebuild: seconds on
# `large`). At 1000 deltas/s that is about a minute in: SECS=80 includes one,
# 15-20 s does not.
# Needs: cargo; taskset for pinning. Last line printed: a key=value summary
# (the table is also in $WORK/summary.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PRESET=${PRESET:-large}; SECS=${SECS:-20}; RATE=${RATE:-1000}
C=${C:-16}; M=${M:-16}; WARM_N=${WARM_N:-20000}; ROUNDS=${ROUNDS:-1}; WINDOW=${WINDOW:-256}
PIN=${PIN:-1}; SERVER_CPU=${SERVER_CPU:-1}; LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-30171}; ADMIN_PORT=${ADMIN_PORT:-30172}
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-10}; QUIET_WAIT=${QUIET_WAIT:-60}
STATE=${STATE:-0}; COMPACT_EVERY=${COMPACT_EVERY:-}; RETAIN_SECONDS=${RETAIN_SECONDS:-}
WORK=${WORK:-target/bench-deltas/$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
TARGET_RATIO=2
ADDR=127.0.0.1:$PORT; ADMIN_ADDR=127.0.0.1:$ADMIN_PORT

log() { echo "[deltas] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
loadavg() { uptime | sed 's/.*load average: *//; s/ //g'; }

case $PRESET in small|large) ;; *) die "PRESET must be small or large, not $PRESET" ;; esac
for v in SECS RATE C M WARM_N ROUNDS WINDOW QUIET_MAX_BUSY QUIET_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not ${!v}"
done
if [ "$RATE" -le 0 ] || [ "$SECS" -le 0 ] || [ "$ROUNDS" -le 0 ]; then
  die "RATE, SECS and ROUNDS must be > 0"
fi
command -v cargo >/dev/null || die "cargo not found"
if [ "$PIN" = 1 ] && { ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; }; then
  log "no taskset or fewer than 2 cores: not pinning"; PIN=0
fi
SRV_PIN=(); LOAD_PIN=()
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c "$SERVER_CPU"); LOAD_PIN=(taskset -c "$LOAD_CPU"); fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
TOKEN=$WORK/admin.token
SRV_PID=
cleanup() {
  local rc=$?
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    log "stopped rolecall pid $SRV_PID"
  fi
  rm -f "$TOKEN"
  rm -rf "$WORK/state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOAD_START=$(loadavg)
log "output in $WORK; load average $LOAD_START; $(nproc) cores"

# ------------------------------------------------------------------ build
log "building release: rolecall, example loadgen"
cargo build --release --quiet --bin rolecall --example loadgen >&2
for b in rolecall examples/loadgen; do [ -x "$BIN/$b" ] || die "$BIN/$b missing after the build"; done

# ------------------------------------------------------------------ model
SNAP=$WORK/$PRESET.json; REQS=$WORK/$PRESET.requests.jsonl
"$BIN/rolecall" gen --preset "$PRESET" --out "$SNAP" --requests-out "$REQS" 2>&1 | sed 's/^/[gen] /' >&2

# a random token, readable by its owner only
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN")
chmod 600 "$TOKEN"
[ "$(stat -c %a "$TOKEN")" = 600 ] || die "$TOKEN is not mode 0600"

# ------------------------------------------------------------------ serve
if command -v ss >/dev/null; then
  for p in "$PORT" "$ADMIN_PORT"; do
    ss -ltnH "sport = :$p" | grep -q . && die "port $p already in use (PORT=... ADMIN_PORT=...)"
  done
fi
SERVE=(serve --snapshot "$SNAP" --listen "$ADDR" --admin-listen "$ADMIN_ADDR"
  --admin-token-file "$TOKEN" --log-filter warn)
if [ "$STATE" = 1 ]; then
  SERVE+=(--state-dir "$WORK/state")
  [ -z "$COMPACT_EVERY" ] || SERVE+=(--compact-every "$COMPACT_EVERY")
fi
[ -z "$RETAIN_SECONDS" ] || SERVE+=(--retain-seconds "$RETAIN_SECONDS")
rm -rf "$WORK/state"
"${SRV_PIN[@]}" "$BIN/rolecall" "${SERVE[@]}" >"$WORK/serve.log" 2>&1 &
SRV_PID=$!
log "rolecall pid $SRV_PID (pin: ${SRV_PIN[*]:-none}) loading $PRESET; state dir: $([ "$STATE" = 1 ] && echo yes || echo no)"
t0=$SECONDS; ok=0
for _ in $(seq 1 1200); do  # up to ~10 min
  kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$WORK/serve.log" >&2; SRV_PID=; die "rolecall exited"; }
  if "$BIN/examples/loadgen" --addr "$ADDR" --method health -c 1 -m 1 -n 1 --warmup 0 \
       --duration 5 >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
[ "$ok" = 1 ] || die "rolecall not SERVING after 10 minutes"
log "SERVING after $((SECONDS - t0)) s"

rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SRV_PID/status"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SRV_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat"; }  # utime + stime
HZ=$(getconf CLK_TCK)
# user+system seconds of this shell's finished children (bash `times`, which
# must run in this shell: a subshell starts with no children's times)
children_cpu() {
  times >"$WORK/times.txt"
  awk 'NR == 2 {
    s = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] }
    printf "%.2f", s }' "$WORK/times.txt"
}
busy_snap() { head -1 /proc/stat; }
# between two /proc/stat lines: % of the whole machine busy, and % used by
# processes other than the server and the loadgen (their CPU seconds: $3 $4)
busy_pct() {
  awk -v a="$1" -v b="$2" -v srv="$3" -v lg="$4" -v hz="$HZ" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); tot = 0
    for (i = 2; i <= 9 && i <= n; i++) tot += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    busy = tot > 0 ? 100 * (tot - idle) / tot : 0
    other = tot > 0 ? 100 * ((tot - idle) / hz - srv - lg) / (tot / hz) : 0
    printf "busy_pct=%.0f other_pct=%.0f", busy, (other < 0 ? 0 : other) }'
}
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | tail -1; }
wait_quiet() {  # up to QUIET_WAIT s for < QUIET_MAX_BUSY % of the machine busy
  local waited=0 a b busy
  while :; do
    a=$(busy_snap); sleep 3; b=$(busy_snap)
    busy=$(busy_pct "$a" "$b" 0 0 | sed 's/busy_pct=\([0-9]*\).*/\1/')
    [ "$busy" -ge "$QUIET_MAX_BUSY" ] || return 0
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      log "WARNING: the machine is still ${busy}% busy; measuring anyway (see other procs CPU)"
      return 0
    fi
    log "machine ${busy}% busy (ps lifetime %CPU: $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -3 | tr -s ' ' | tr '\n' ';')); waiting"
    sleep 2; waited=$((waited + 5))
  done
}

RSS_START=$(rss_mib)
log "server VmRSS $RSS_START MiB after loading"

run() {  # name extra-loadgen-args...
  local name=$1; shift
  local la c0 c1 l0 l1 s0 s1 rc=0
  wait_quiet
  la=$(loadavg)
  children_cpu >"$WORK/cpu0.txt"
  c0=$(cpu_ticks); l0=$(cat "$WORK/cpu0.txt"); s0=$(busy_snap)
  log "$name: load average $la"
  "${LOAD_PIN[@]}" "$BIN/examples/loadgen" --addr "$ADDR" --method check --requests "$REQS" \
    --check-allowed -c "$C" -m "$M" -n 1000000000 --duration "$SECS" --warmup "$WARM_N" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  children_cpu >"$WORK/cpu1.txt"
  c1=$(cpu_ticks); l1=$(cat "$WORK/cpu1.txt"); s1=$(busy_snap)
  sed 's/^/  /' "$WORK/$name.err" >&2
  [ "$rc" = 0 ] || die "loadgen $name exited $rc"
  grep '^loadgen ' "$WORK/$name.out" | tail -1 >"$WORK/$name.line"
  [ "$(kv "$WORK/$name.line" ok)" = true ] || die "loadgen $name: not ok: $(cat "$WORK/$name.line")"
  kill -0 "$SRV_PID" 2>/dev/null || die "rolecall exited during $name"
  # CPU over the whole loadgen process (warm-up and, loaded, its model read
  # included)
  local srv lg
  srv=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  lg=$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.2f", b - a }')
  echo "load=$la server_cpu_s=$srv loadgen_cpu_s=$lg $(busy_pct "$s0" "$s1" "$srv" "$lg") rss_mib=$(rss_mib)" >"$WORK/$name.env"
  log "$name: $(cat "$WORK/$name.line")"
  log "$name: $(cat "$WORK/$name.env")"
}

APPLY=(--apply-rate "$RATE" --admin-addr "$ADMIN_ADDR" --admin-token-file "$TOKEN"
  --apply-model "$SNAP" --apply-window "$WINDOW")
for r in $(seq 1 "$ROUNDS"); do
  run "quiet_$r"
  run "loaded_$r" "${APPLY[@]}" --apply-seed "$r"
done
RSS_END=$(rss_mib); HWM=$(hwm_mib); RSS_BEFORE=$(kv "$WORK/quiet_1.env" rss_mib)
LOAD_END=$(loadavg)

# ------------------------------------------------------------------ report
f0() { awk -v v="$1" 'BEGIN { printf "%\047.0f", v }'; }
ratios=()
{
  echo "Check p99 while deltas stream in: \`$PRESET\`, c${C}×m${M}, ${SECS} s per run, RATE=$RATE deltas/s"
  echo "(load average at start $LOAD_START, at end $LOAD_END; pin: ${PIN})"
  echo
  echo "| run | Check req/s | p50 / p99 / p99.9 (µs) | p99 ratio | deltas acked | delta rate (/s) | ack p50 / p99 (µs) | server / loadgen CPU (s) | other procs CPU | RSS after (MiB) | load avg |"
  echo "|---|---:|---|---:|---:|---:|---|---|---:|---:|---|"
  for r in $(seq 1 "$ROUNDS"); do
    q=$WORK/quiet_$r.line; l=$WORK/loaded_$r.line
    ratio=$(awk -v a="$(kv "$l" p99_us)" -v b="$(kv "$q" p99_us)" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    ratios+=("$ratio")
    for k in quiet loaded; do
      f=$WORK/${k}_$r.line; e=$WORK/${k}_$r.env
      if [ "$k" = quiet ]; then rc="1.00"; acked="–"; rate="–"; ack="–"
      else
        rc="**$ratio×**"; acked=$(f0 "$(kv "$f" apply_acked)"); rate=$(kv "$f" apply_rate)
        ack="$(f0 "$(kv "$f" apply_p50_us)") / $(f0 "$(kv "$f" apply_p99_us)")"
      fi
      label=$k; [ "$ROUNDS" = 1 ] || label="$k $r"
      echo "| $label | $(f0 "$(kv "$f" rps)") | $(f0 "$(kv "$f" p50_us)") / $(f0 "$(kv "$f" p99_us)") / $(f0 "$(kv "$f" p999_us)") | $rc | $acked | $rate | $ack | $(kv "$e" server_cpu_s) / $(kv "$e" loadgen_cpu_s) | $(kv "$e" other_pct) % | $(kv "$e" rss_mib) | $(sed -n 's/^load=\(.*\) server_cpu_s=.*/\1/p' "$e") |"
    done
  done
  echo
} >"$WORK/summary.md"
MEDIAN=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
VERDICT=$(awk -v r="$MEDIAN" -v t="$TARGET_RATIO" 'BEGIN { print ((r <= t) ? "met" : "MISSED") }')
{
  echo "p99 loaded / quiet: **${MEDIAN}×** (target ≤ ${TARGET_RATIO}×: $VERDICT)"
  echo "server VmRSS: ${RSS_START} MiB just after loading, ${RSS_BEFORE} MiB before the deltas (after the quiet run), ${RSS_END} MiB after them (peak ${HWM} MiB)"
} >>"$WORK/summary.md"
cat "$WORK/summary.md"
L=$WORK/loaded_$ROUNDS.line; Q=$WORK/quiet_$ROUNDS.line
echo "deltas preset=$PRESET secs=$SECS c=$C m=$M rounds=$ROUNDS rate_target=$RATE quiet_p50_us=$(kv "$Q" p50_us) quiet_p99_us=$(kv "$Q" p99_us) loaded_p50_us=$(kv "$L" p50_us) loaded_p99_us=$(kv "$L" p99_us) p99_ratio=$MEDIAN target=$TARGET_RATIO verdict=$VERDICT apply_acked=$(kv "$L" apply_acked) apply_rate=$(kv "$L" apply_rate) apply_p50_us=$(kv "$L" apply_p50_us) apply_p99_us=$(kv "$L" apply_p99_us) rss_loaded_mib=$RSS_START rss_before_deltas_mib=$RSS_BEFORE rss_after_deltas_mib=$RSS_END rss_peak_mib=$HWM load_start=$LOAD_START load_end=$LOAD_END" | tee "$WORK/summary.txt"
