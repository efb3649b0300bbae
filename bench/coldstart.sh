#!/usr/bin/env bash
# Cold start on the `large` model (1M records): how long loading takes and
# what it leaves resident.
#
#   1. `rolecall gen --preset large` writes the JSON snapshot;
#   2. `rolecall validate` on it, timed (target: load the large snapshot
#      file in <= 5 s);
#   3. `rolecall serve --snapshot large.json --state-dir NEW` (the state dir
#      is empty, so the snapshot is loaded and written there as revision 1),
#      timed until health says SERVING, then stopped with SIGTERM;
#   4. `rolecall serve --state-dir DIR` (no snapshot file: the
#      model comes from the state dir alone), timed from process start until
#      SERVING (target: <= 1 s), REPEAT times; VmRSS after load against the
#      JSON size (target: RSS <= 0.5x the JSON).
#
#   bash bench/coldstart.sh                  # builds release, then measures
#   BIN=path/to/release bash bench/coldstart.sh   # an already built binary dir
# Knobs: PRESET=large REPEAT=3 PORT=30153 POLL=0.01 SETTLE=2 TIMEOUT=600
#        WORK=target/bench-coldstart
# Needs curl (the SERVING probe: grpc.health.v1.Health/Check over h2c, as
# bench/compare.sh does). GNU time (/usr/bin/time), when present, adds the
# peak RSS of `validate`.
#
# SERVING is polled with curl every POLL seconds, so each start-up figure is
# late by up to one poll plus one curl run (a few ms). The figures are wall
# clock on whatever else the machine runs: compare within one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PRESET=${PRESET:-large}; REPEAT=${REPEAT:-3}; PORT=${PORT:-30153}
POLL=${POLL:-0.01}; SETTLE=${SETTLE:-2}; TIMEOUT=${TIMEOUT:-600}
ADDR=127.0.0.1:$PORT
WORK=${WORK:-target/bench-coldstart}
log() { echo "[coldstart] $*" >&2; }
die() { log "error: $*"; exit 1; }
for t in curl awk od ss; do command -v "$t" >/dev/null || die "$t not found"; done
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
if [ -z "${BIN:-}" ]; then
  log "building release: rolecall"
  cargo build --release --quiet --bin rolecall >&2
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
RC="$BIN/rolecall"
[ -x "$RC" ] || die "$RC not found"

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }  # field pid -> kB
# MB = 10^6 bytes, as `rolecall gen` prints sizes; /proc reports kB = KiB
mb_of_kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }
mb_of_bytes() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

SRV_PID=
stop_server() {
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill -TERM "$SRV_PID"
    wait "$SRV_PID" 2>/dev/null || true
  fi
  SRV_PID=
}
trap stop_server EXIT

# grpc.health.v1.Health/Check for the overall status (""): an empty
# HealthCheckRequest behind the 5-byte gRPC frame header. The overall status
# is NOT_SERVING until a model is loaded, so SERVING means the model is in.
printf '\0\0\0\0\0' >"$WORK/health_body.bin"
serving() {
  curl -s --max-time 2 --http2-prior-knowledge -X POST -H 'content-type: application/grpc' \
    -H 'te: trailers' --data-binary @"$WORK/health_body.bin" -D "$WORK/health.hdr" \
    -o "$WORK/health_reply.bin" "http://$ADDR/grpc.health.v1.Health/Check" 2>/dev/null || return 1
  grep -qi '^grpc-status: 0' "$WORK/health.hdr" || return 1
  # the reply: frame header, then `status: SERVING` (field 1, value 1)
  [ "$(od -An -tx1 -j5 "$WORK/health_reply.bin" | tr -d ' \n')" = 0801 ]
}

# Starts `rolecall serve ARGS...` and waits for SERVING; sets SRV_PID and
# STARTUP (seconds from just before the process was started).
start_and_wait() {  # log-file args...
  local logf=$1; shift
  ss -ltnH "sport = :$PORT" | grep -q . && die "port $PORT already in use (PORT=...)"
  local t0; t0=$(now)
  "$RC" serve --listen "$ADDR" "$@" >"$logf" 2>&1 &
  SRV_PID=$!
  local deadline=$((SECONDS + TIMEOUT))
  until serving; do
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$logf" >&2; die "rolecall serve exited"; }
    [ "$SECONDS" -lt "$deadline" ] || { cat "$logf" >&2; die "not SERVING after $TIMEOUT s"; }
    sleep "$POLL"
  done
  STARTUP=$(elapsed "$t0" "$(now)")
  T0=$t0
}

# Seconds from T0 to the first log line matching $2 in $1 (the log's own
# UTC timestamp, GNU date), or "?" when there is none.
logged_at() {  # log-file pattern
  local ts
  ts=$(grep -m1 -- "$2" "$1" | cut -d' ' -f1)
  [ -n "$ts" ] && ts=$(date -d "$ts" +%s.%N 2>/dev/null) && elapsed "$T0" "$ts" || echo "?"
}

log "$("$RC" --version); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ 1. gen
SNAP="$WORK/$PRESET.json"
t0=$(now)
"$RC" gen --preset "$PRESET" --out "$SNAP" >&2
GEN_S=$(elapsed "$t0" "$(now)")
JSON_BYTES=$(stat -c %s "$SNAP")
log "gen --preset $PRESET: $GEN_S s, $(mb_of_bytes "$JSON_BYTES") MB of JSON ($JSON_BYTES bytes)"

# ------------------------------------------------------------------ 2. validate
VALIDATE=() VALIDATE_RSS=()
for i in $(seq 1 "$REPEAT"); do
  if [ -x /usr/bin/time ]; then
    t0=$(now)
    /usr/bin/time -f '%M' -o "$WORK/validate.time" "$RC" validate "$SNAP" >"$WORK/validate.out" \
      || { cat "$WORK/validate.out" >&2; die "validate failed"; }
    s=$(elapsed "$t0" "$(now)")
    VALIDATE_RSS+=("$(tail -1 "$WORK/validate.time")")
  else
    t0=$(now)
    "$RC" validate "$SNAP" >"$WORK/validate.out" || { cat "$WORK/validate.out" >&2; die "validate failed"; }
    s=$(elapsed "$t0" "$(now)")
  fi
  VALIDATE+=("$s")
  log "validate $i/$REPEAT: $s s${VALIDATE_RSS[$((i - 1))]:+, max RSS $(mb_of_kib "${VALIDATE_RSS[$((i - 1))]}") MB}: $(head -1 "$WORK/validate.out")"
done

# ------------------------------------------------------------------ 3. bootstrap into a fresh state dir
STATE="$WORK/state"
rm -rf "$STATE"
start_and_wait "$WORK/serve-bootstrap.log" --snapshot "$SNAP" --state-dir "$STATE" --log-filter info
BOOT_S=$STARTUP
BOOT_RSS=$(kib VmRSS "$SRV_PID"); BOOT_HWM=$(kib VmHWM "$SRV_PID")
log "serve --snapshot (empty state dir): SERVING after $BOOT_S s; VmRSS $(mb_of_kib "$BOOT_RSS") MB, VmHWM $(mb_of_kib "$BOOT_HWM") MB"
stop_server
STATE_BYTES=$(du -sb "$STATE" | cut -f1)
log "state dir: $(mb_of_bytes "$STATE_BYTES") MB ($(find "$STATE" -type f | wc -l) files)"

# ------------------------------------------------------------------ 4. restart from the state dir alone
COLD=() RESTORED=() RSS=() RSS_SETTLED=() HWM=()
for i in $(seq 1 "$REPEAT"); do
  start_and_wait "$WORK/serve-restart.log" --state-dir "$STATE" --log-filter info
  grep -q 'restored from the state dir' "$WORK/serve-restart.log" \
    || { cat "$WORK/serve-restart.log" >&2; die "the model was not restored from the state dir"; }
  r=$(kib VmRSS "$SRV_PID")
  restored=$(logged_at "$WORK/serve-restart.log" 'restored from the state dir')
  listening=$(logged_at "$WORK/serve-restart.log" ' listening ')
  sleep "$SETTLE"
  rs=$(kib VmRSS "$SRV_PID"); h=$(kib VmHWM "$SRV_PID")
  stop_server
  COLD+=("$STARTUP"); RESTORED+=("$restored"); RSS+=("$r"); RSS_SETTLED+=("$rs"); HWM+=("$h")
  log "restart $i/$REPEAT: restored (log) at $restored s, listening at $listening s, SERVING (probe) after $STARTUP s; VmRSS $(mb_of_kib "$r") MB at SERVING, $(mb_of_kib "$rs") MB ${SETTLE} s later; VmHWM $(mb_of_kib "$h") MB"
done

# ------------------------------------------------------------------ summary
V_MED=$(echo "${VALIDATE[*]}" | median)
C_MED=$(echo "${COLD[*]}" | median)
R_MED=$(echo "${RSS_SETTLED[*]}" | median)
H_MED=$(echo "${HWM[*]}" | median)
ratio=$(awk -v r="$R_MED" -v j="$JSON_BYTES" 'BEGIN { printf "%.2f", r * 1024 / j }')
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }
list_mb() { for k in "$@"; do printf '%s ' "$(mb_of_kib "$k")"; done; }
echo "coldstart preset=$PRESET json=$(mb_of_bytes "$JSON_BYTES") MB state_dir=$(mb_of_bytes "$STATE_BYTES") MB repeat=$REPEAT load_average=$(cut -d' ' -f1 /proc/loadavg)"
echo "  validate, wall (s):                       ${VALIDATE[*]}  median $V_MED  target <= 5 s: $(verdict "$V_MED" 5)${VALIDATE_RSS[*]:+  (max RSS MB: $(list_mb "${VALIDATE_RSS[@]}"))}"
echo "  serve --snapshot, empty state dir (s):    $BOOT_S to SERVING  (VmRSS $(mb_of_kib "$BOOT_RSS") MB, VmHWM $(mb_of_kib "$BOOT_HWM") MB)"
echo "  restart from the state dir (s):           ${COLD[*]}  median $C_MED  target <= 1 s: $(verdict "$C_MED" 1)  (model restored, by the log: ${RESTORED[*]})"
echo "  VmRSS after the restart (MB):             at SERVING $(list_mb "${RSS[@]}")/ ${SETTLE} s later $(list_mb "${RSS_SETTLED[@]}")/ VmHWM median $(mb_of_kib "$H_MED")"
echo "  VmRSS / JSON size:                        $ratio  ($(mb_of_kib "$R_MED") MB / $(mb_of_bytes "$JSON_BYTES") MB)  target <= 0.5: $(verdict "$ratio" 0.5)"
