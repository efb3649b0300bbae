#!/usr/bin/env python3
"""Runs `rolecall serve` as the rendered manifests configure it, and checks
what the kubelet, the app, Prometheus and a rollout would see (run by
validate.sh when ROLECALL_BIN is given; no container runtime involved).

The rolecall container's environment is taken from the rendered Deployment
as is, except what only exists inside a pod, which is moved into a
temporary directory or onto free loopback ports:

- the Authz listener (Unix socket in a temporary directory, or a loopback
  port), the Admin and metrics listeners (loopback ports);
- the state directory, the admin token file (a test token), and the
  bootstrap snapshot (written from the rendered ConfigMap, i.e. exactly what
  the pod would mount).

Then it checks, with a deadline:
- readiness: grpc.health.v1.Health on the Admin port reports the readiness
  probe's service SERVING (the bootstrap snapshot is loaded);
- liveness: the same for the liveness probe's service;
- the app's view: Health on the address the app dials (ROLECALL_ADDR, as a
  gRPC target) reports rolecall.v1.Authz SERVING;
- metrics: GET /metrics answers 200 with Prometheus text;
- SIGTERM: during ROLECALL_SHUTDOWN_DELAY_SECONDS the app's address still
  answers (health NOT_SERVING, but answered); then the process exits 0
  within the delay plus ROLECALL_SHUTDOWN_GRACE_SECONDS and before
  terminationGracePeriodSeconds.

Usage: smoke_serve.py RENDERED.yaml ROLECALL_BIN
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT = 15.0
problems = []


def problem(msg):
    problems.append(msg)
    print(f"    PROBLEM {msg}")


def note(msg):
    print(f"    {msg}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(target, service, timeout=1.0):
    """The serving status name, or the error, of one Health.Check."""
    # On a Unix socket, gRPC C-core (this client, like Python, C++ and Ruby
    # apps) sends the socket path as :authority, which the HTTP/2 stack of
    # rolecall's server rejects (PROTOCOL_ERROR); clients set "localhost",
    # as grpc-go does by itself. See deploy/README.md.
    options = [("grpc.default_authority", "localhost")] if target.startswith("unix:") else []
    try:
        with grpc.insecure_channel(target, options=options) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()}"


def wait_serving(proc, target, service, what):
    deadline = time.monotonic() + START_TIMEOUT
    status = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        status = health(target, service)
        if status == "SERVING":
            note(f"{what}: {service or '(overall)'} SERVING on {target}")
            return True
        time.sleep(0.2)
    problem(f"{what}: health of {service!r} on {target} is {status} after {START_TIMEOUT:.0f}s")
    return False


def main():
    rendered, binary = sys.argv[1], os.path.abspath(sys.argv[2])
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    rc = next(c for c in pod["containers"] if c["name"] == "rolecall")
    app = next(c for c in pod["containers"] if c["name"] == "app")
    env = {e["name"]: e["value"] for e in rc.get("env") or [] if "value" in e}
    app_addr = next(e["value"] for e in app.get("env") or [] if e["name"] == "ROLECALL_ADDR")
    tgps = int(pod.get("terminationGracePeriodSeconds", 30))
    grace = int(env.get("ROLECALL_SHUTDOWN_GRACE_SECONDS", "10"))
    delay = int(env.get("ROLECALL_SHUTDOWN_DELAY_SECONDS", "0"))

    tmp = tempfile.mkdtemp(prefix="rolecall-smoke-")
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_env.update(env)

    # Authz: what rolecall binds, and what the app dials.
    listen = env["ROLECALL_LISTEN"]
    if listen.startswith("unix:"):
        sock = os.path.join(tmp, "authz.sock")
        run_env["ROLECALL_LISTEN"] = "unix:" + sock
        # ROLECALL_ADDR is unix://<the socket path>; point it at the moved socket.
        if app_addr != "unix://" + listen[len("unix:"):]:
            problem(f"app ROLECALL_ADDR={app_addr!r} does not name the socket {listen}")
        app_target = "unix://" + sock
    else:
        port = free_port()
        run_env["ROLECALL_LISTEN"] = f"127.0.0.1:{port}"
        if app_addr != listen:
            problem(f"app ROLECALL_ADDR={app_addr!r} is not ROLECALL_LISTEN={listen!r}")
        app_target = f"127.0.0.1:{port}"
    admin_port, metrics_port = free_port(), free_port()
    run_env["ROLECALL_ADMIN_LISTEN"] = f"127.0.0.1:{admin_port}"
    run_env["ROLECALL_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    run_env["ROLECALL_STATE_DIR"] = os.path.join(tmp, "state")
    os.mkdir(run_env["ROLECALL_STATE_DIR"], 0o700)
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write("smoke-test-token\n")
    os.chmod(token, 0o600)  # rolecall refuses a token file readable by others
    run_env["ROLECALL_ADMIN_TOKEN_FILE"] = token
    if "ROLECALL_SNAPSHOT" in env:
        cms = [d for d in docs if d["kind"] == "ConfigMap"]
        key = os.path.basename(env["ROLECALL_SNAPSHOT"])
        data = next((cm["data"][key] for cm in cms if key in (cm.get("data") or {})), None)
        if data is None:
            problem(f"no ConfigMap holds {key}")
            return 1
        snap = os.path.join(tmp, key)
        with open(snap, "w") as f:
            f.write(data)
        run_env["ROLECALL_SNAPSHOT"] = snap

    log_path = os.path.join(tmp, "rolecall.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "serve"], env=run_env, cwd=tmp,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        probes = {
            "readiness probe": (rc.get("readinessProbe") or {}).get("grpc") or {},
            "liveness probe": (rc.get("livenessProbe") or {}).get("grpc") or {},
        }
        for what, probe in probes.items():
            wait_serving(proc, f"127.0.0.1:{admin_port}", probe.get("service", ""), what)
        wait_serving(proc, app_target, "rolecall.v1.Authz", "the app's address")
        if proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
                    body = r.read().decode("utf-8", "replace")
                if r.status != 200 or "# TYPE" not in body:
                    problem(f"GET /metrics: status {r.status}, no Prometheus text")
                else:
                    note(f"metrics: GET /metrics 200, {body.count('# TYPE')} metric families")
            except OSError as e:
                problem(f"GET /metrics on 127.0.0.1:{metrics_port}: {e}")
        if proc.poll() is not None:
            problem(f"rolecall serve exited with {proc.returncode} while starting")
        else:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            if delay >= 2:
                time.sleep(1)
                status = health(app_target, "rolecall.v1.Authz")
                if status != "NOT_SERVING":
                    problem(f"1s into the {delay}s shutdown delay, the app's address answered {status}, not NOT_SERVING")
                else:
                    note(f"SIGTERM: 1s into the {delay}s delay the app's address still answers (NOT_SERVING)")
            limit = min(delay + grace, tgps) + 5
            try:
                code = proc.wait(timeout=limit)
                took = time.monotonic() - t0
                if code != 0:
                    problem(f"after SIGTERM rolecall exited {code}, not 0")
                elif took >= tgps:
                    problem(f"after SIGTERM rolecall took {took:.1f}s, longer than terminationGracePeriodSeconds={tgps}")
                elif took < delay:
                    problem(f"after SIGTERM rolecall exited after {took:.1f}s, before its {delay}s delay")
                else:
                    note(f"SIGTERM: exited 0 after {took:.1f}s")
            except subprocess.TimeoutExpired:
                problem(f"rolecall did not exit within {limit}s of SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if problems:
            print("    rolecall's output (last 20 lines):")
            with open(log_path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines()[-20:]:
                    print(f"      {line[:300]}")
        subprocess.run(["rm", "-rf", tmp], check=False)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
