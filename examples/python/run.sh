#!/usr/bin/env bash
# Runs the Python client example end to end:
#   1. a venv in a temporary directory with requirements.txt from PyPI
#      (or the venv at $VENV_DIR, created there if missing, to reuse it);
#   2. stubs generated from proto/ with grpcio-tools into the temporary
#      directory (never into the repository);
#   3. `rolecall serve` with the built-in demo model on two free loopback
#      ports (Authz and Admin) and an admin token in a temporary file;
#   4. client.py, which asserts every answer (non-zero exit on a mismatch);
#   5. a look at the Prometheus metrics the run left (--metrics-listen);
#   6. SIGTERM to the server (by its pid), which must exit 0.
#
# ROLECALL_BIN is the binary to run (default: target/release/rolecall; build
# it with `cargo build --release`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${ROLECALL_BIN:-$root/target/release/rolecall}"
if [ ! -x "$bin" ]; then
  echo "no rolecall binary at $bin: run 'cargo build --release' or set ROLECALL_BIN" >&2
  exit 1
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== venv and requirements"
venv="${VENV_DIR:-$work/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
py="$venv/bin/python"

echo "== stubs from proto/"
stubs="$work/stubs"
mkdir -p "$stubs"
"$py" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$stubs" --grpc_python_out="$stubs" \
  "$root/proto/rolecall/v1/authz.proto" "$root/proto/rolecall/v1/admin.proto"

echo "== rolecall serve (demo model)"
free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
authz_port="$(free_port)"
admin_port="$(free_port)"
metrics_port="$(free_port)"
token_file="$work/admin-token"
(umask 077 && "$py" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$token_file")
log="$work/server.log"
"$bin" serve --demo \
  --listen "127.0.0.1:$authz_port" \
  --admin-listen "127.0.0.1:$admin_port" \
  --admin-token-file "$token_file" \
  --metrics-listen "127.0.0.1:$metrics_port" \
  >"$log" 2>&1 &
server_pid=$!
echo "  pid $server_pid: Authz 127.0.0.1:$authz_port, Admin 127.0.0.1:$admin_port, metrics 127.0.0.1:$metrics_port"

echo "== client.py"
status=0
"$py" "$here/client.py" \
  --authz "127.0.0.1:$authz_port" \
  --admin "127.0.0.1:$admin_port" \
  --token-file "$token_file" \
  --stubs "$stubs" || status=$?

if [ "$status" -eq 0 ]; then
  echo "== /metrics"
  "$py" - "$metrics_port" <<'PY' || status=$?
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
values = {}
for line in text.splitlines():
    if line.startswith("rolecall_") and "_bucket" not in line:
        series, value = line.rsplit(" ", 1)
        values[series] = float(value)
        if not series.startswith("rolecall_revision_applied"):
            print(f"  {line}")
want = {
    'rolecall_decisions_total{rpc="check",result="allow"}': 2,
    'rolecall_decisions_total{rpc="check",result="deny"}': 3,
    'rolecall_denials_total{rpc="check",reason="no_reach"}': 2,
    'rolecall_denials_total{rpc="check",reason="unknown_resource"}': 1,
    'rolecall_decisions_total{rpc="list_visible",result="ok"}': 4,
    # The delta, and the export applied back in pieces.
    'rolecall_updates_total{result="accepted"}': 2,
    "rolecall_revision": 3,
}
bad = {k: (values.get(k), v) for k, v in want.items() if values.get(k) != v}
if bad:
    sys.exit(f"  unexpected metrics (got, want): {bad}")
PY
fi

echo "== stop the server"
if kill -0 "$server_pid" 2>/dev/null; then
  kill -TERM "$server_pid"
  server_status=0
  wait "$server_pid" || server_status=$?
  server_pid=""
  if [ "$server_status" -ne 0 ]; then
    echo "  rolecall exited $server_status after SIGTERM" >&2
    status=1
  else
    echo "  rolecall exited 0"
  fi
else
  wait "$server_pid" || true
  server_pid=""
  echo "  rolecall had already stopped" >&2
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "== server log" >&2
  cat "$log" >&2
  echo "FAILED" >&2
  exit "$status"
fi
echo "== the Python example passed"
