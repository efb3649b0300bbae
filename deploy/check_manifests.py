#!/usr/bin/env python3
"""Consistency checks on rendered rolecall manifests (run by validate.sh).

Schema validation (kubernetes-validate) says each object is well formed; this
says the objects agree with each other and with rolecall's contract: the
probe port is the Admin listener, the files rolecall is told to read are
mounted, the socket is shared with the app, the Service exposes only the
Admin port, the grace periods nest, the security settings are in place.

Usage: check_manifests.py RENDERED.yaml [--authz unix|tcp] [--dockerfile FILE]
Prints one line per problem and exits 1 if there is any.
"""

import argparse
import posixpath
import re
import sys

import yaml

ADMIN_PORT_NAME = "admin"
METRICS_PORT_NAME = "metrics"
REQUIRED_ENV = [
    "ROLECALL_LISTEN",
    "ROLECALL_ADMIN_LISTEN",
    "ROLECALL_ADMIN_TOKEN_FILE",
    "ROLECALL_METRICS_LISTEN",
    "ROLECALL_STATE_DIR",
    "ROLECALL_SNAPSHOT",
    "ROLECALL_LOG_FORMAT",
    "ROLECALL_SHUTDOWN_GRACE_SECONDS",
]

problems = []


def problem(msg):
    problems.append(msg)


def port_of(addr):
    """Port of a `host:port` listener address, or None."""
    m = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]*):(\d+)", addr or "")
    return int(m.group(1)) if m else None


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def mount_for(container, path):
    """The volumeMount of `container` holding `path` (longest match)."""
    best = None
    for vm in container.get("volumeMounts") or []:
        if under(path, vm["mountPath"]):
            if best is None or len(vm["mountPath"]) > len(best["mountPath"]):
                best = vm
    return best


def check_file_from_volume(pod, container, env_name, path, kind, objects):
    """`path` must be a file projected from a Secret/ConfigMap volume."""
    vm = mount_for(container, path)
    if vm is None:
        problem(f"{env_name}={path}: no volumeMount of container {container['name']} holds it")
        return
    vol = next((v for v in pod.get("volumes") or [] if v["name"] == vm["name"]), None)
    if vol is None:
        problem(f"{env_name}: volumeMount {vm['name']} names no volume of the pod")
        return
    src = vol.get("secret") if kind == "Secret" else vol.get("configMap")
    if src is None:
        problem(f"{env_name}: volume {vm['name']} is not a {kind} volume")
        return
    name = src.get("secretName") if kind == "Secret" else src.get("name")
    obj = objects.get((kind, name))
    if obj is None:
        problem(f"{env_name}: the {kind} {name!r} mounted at {vm['mountPath']} is not in the manifests")
        return
    rel = posixpath.relpath(path, vm["mountPath"])
    items = src.get("items")
    if items is not None:
        keys = [i["key"] for i in items if i["path"] == rel]
        if not keys:
            problem(f"{env_name}: no item of volume {vm['name']} is projected at {rel}")
            return
        key = keys[0]
    else:
        key = rel
    data = dict(obj.get("data") or {})
    data.update(obj.get("stringData") or {})
    if key not in data:
        problem(f"{env_name}: {kind} {name} has no key {key!r}")


def rule_covers(rule, port):
    """Whether an ingress rule lets TCP traffic to `port` through."""
    rule_ports = rule.get("ports")
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP" or not isinstance(p.get("port"), int):
            continue
        if p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def check_network_policy(np, tmpl, rolecall_ports):
    """A policy on the pod closes rolecall's pod-IP ports to all but the
    peers it names, and leaves every other TCP port open, as the overlay's
    comments promise."""
    name = np["metadata"]["name"]
    spec = np["spec"]
    labels = tmpl["metadata"].get("labels") or {}
    wanted = (spec.get("podSelector") or {}).get("matchLabels") or {}
    if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
        problem(f"NetworkPolicy {name} selects {wanted}, not the pod {labels}")
        return
    if "Ingress" not in (spec.get("policyTypes") or []):
        problem(f"NetworkPolicy {name} does not restrict Ingress")
    rules = spec.get("ingress") or []
    for port in sorted(p for p in rolecall_ports if p is not None):
        covering = [r for r in rules if rule_covers(r, port)]
        if not covering:
            problem(f"NetworkPolicy {name} lets nobody reach port {port}: "
                    "the control plane or Prometheus would be shut out")
        if any(not r.get("from") for r in covering):
            problem(f"NetworkPolicy {name} opens port {port} to everyone")
    shut = [p for p in range(1, 65536)
            if p not in rolecall_ports
            and not any(not r.get("from") and rule_covers(r, p) for r in rules)]
    if shut:
        problem(f"NetworkPolicy {name} also closes {len(shut)} of the app's TCP ports "
                f"(from {shut[0]}): only rolecall's ports should be restricted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--authz", choices=["unix", "tcp"], required=True)
    ap.add_argument("--dockerfile")
    args = ap.parse_args()

    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    deployments = [d for d in docs if d["kind"] == "Deployment"]
    services = [d for d in docs if d["kind"] == "Service"]
    if len(deployments) != 1:
        problem(f"expected one Deployment, found {len(deployments)}")
        return finish()
    dep = deployments[0]
    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    rc = containers.get("rolecall")
    app = containers.get("app")
    if rc is None or app is None:
        problem(f"the pod needs containers 'app' and 'rolecall', has {sorted(containers)}")
        return finish()

    env = {e["name"]: e.get("value") for e in rc.get("env") or []}
    for name in REQUIRED_ENV:
        if name not in env:
            problem(f"rolecall container: {name} is not set")
    app_env = {e["name"]: e.get("value") for e in app.get("env") or []}

    # --- ports: admin listener = probes = containerPort = Service -------------
    ports = {p.get("name"): p["containerPort"] for p in rc.get("ports") or []}
    admin_port = port_of(env.get("ROLECALL_ADMIN_LISTEN"))
    metrics_port = port_of(env.get("ROLECALL_METRICS_LISTEN"))
    if admin_port is None:
        problem(f"ROLECALL_ADMIN_LISTEN={env.get('ROLECALL_ADMIN_LISTEN')!r} is not host:port")
    if metrics_port is None:
        problem(f"ROLECALL_METRICS_LISTEN={env.get('ROLECALL_METRICS_LISTEN')!r} is not host:port")
    if ports.get(ADMIN_PORT_NAME) != admin_port:
        problem(f"containerPort {ADMIN_PORT_NAME}={ports.get(ADMIN_PORT_NAME)} but the Admin listener is on {admin_port}")
    if ports.get(METRICS_PORT_NAME) != metrics_port:
        problem(f"containerPort {METRICS_PORT_NAME}={ports.get(METRICS_PORT_NAME)} but metrics are on {metrics_port}")
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = rc.get(probe_name)
        if not probe or "grpc" not in probe:
            problem(f"rolecall {probe_name} is not a native grpc probe")
            continue
        if probe["grpc"].get("port") != admin_port:
            problem(f"rolecall {probe_name} probes port {probe['grpc'].get('port')}, the Admin listener is {admin_port}")
    ready_svc = (rc.get("readinessProbe") or {}).get("grpc", {}).get("service")
    live_svc = (rc.get("livenessProbe") or {}).get("grpc", {}).get("service")
    if ready_svc not in ("", None, "rolecall.v1.Authz"):
        problem(f"readinessProbe checks health service {ready_svc!r}")
    if live_svc in ("", None, "rolecall.v1.Authz"):
        problem(f"livenessProbe checks {live_svc!r}, which is NOT_SERVING until a model is loaded: "
                "a pod waiting for its first model would be restarted")

    for np in (d for d in docs if d["kind"] == "NetworkPolicy"):
        check_network_policy(np, tmpl, {admin_port, metrics_port})

    ann = tmpl["metadata"].get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true":
        problem("pod template lacks prometheus.io/scrape: \"true\"")
    if ann.get("prometheus.io/port") != str(metrics_port):
        problem(f"prometheus.io/port={ann.get('prometheus.io/port')!r}, metrics are on {metrics_port}")
    if ann.get("prometheus.io/path", "/metrics") != "/metrics":
        problem("prometheus.io/path is not /metrics")

    if len(services) != 1:
        problem(f"expected one Service (the Admin port), found {len(services)}")
    for svc in services:
        sp = svc["spec"].get("ports") or []
        if len(sp) != 1:
            problem(f"Service {svc['metadata']['name']} exposes {len(sp)} ports; only the Admin port belongs there")
        for p in sp:
            tp = p.get("targetPort", p["port"])
            if tp not in (ADMIN_PORT_NAME, admin_port):
                problem(f"Service {svc['metadata']['name']} port {p['port']} targets {tp!r}, not the Admin port")
        sel = svc["spec"].get("selector") or {}
        labels = tmpl["metadata"].get("labels") or {}
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            problem(f"Service {svc['metadata']['name']} selector {sel} does not select the pod")
        if svc["metadata"]["name"].upper().replace("-", "_").startswith("ROLECALL") and pod.get("enableServiceLinks", True):
            problem("a Service named rolecall* with service links on injects ROLECALL_* variables into the pod")

    # --- the Authz listener ----------------------------------------------------
    listen = env.get("ROLECALL_LISTEN") or ""
    addr = app_env.get("ROLECALL_ADDR") or ""
    if args.authz == "unix":
        if not listen.startswith("unix:/"):
            problem(f"ROLECALL_LISTEN={listen!r}: expected unix:/path")
        else:
            sock = listen[len("unix:"):]
            if addr != "unix://" + sock:
                problem(f"app ROLECALL_ADDR={addr!r} does not dial the socket {sock}")
            d = posixpath.dirname(sock)
            m1, m2 = mount_for(rc, sock), mount_for(app, sock)
            if m1 is None or m2 is None or m1["name"] != m2["name"]:
                problem(f"the socket directory {d} is not one volume mounted in both containers")
            elif m1.get("readOnly") or m2.get("readOnly"):
                problem(f"the socket volume {m1['name']} is mounted read-only")
            elif m1["mountPath"] != m2["mountPath"]:
                problem("the socket volume is mounted at different paths in the two containers")
    else:
        host, _, port = listen.rpartition(":")
        if host not in ("127.0.0.1", "[::1]", "localhost") or not port.isdigit():
            problem(f"ROLECALL_LISTEN={listen!r}: expected a loopback host:port")
        if addr != listen:
            problem(f"app ROLECALL_ADDR={addr!r} does not dial ROLECALL_LISTEN={listen!r}")
        if port.isdigit() and int(port) in ports.values():
            problem("the loopback Authz port is declared as a containerPort")

    # --- files and directories rolecall uses -------------------------------------
    if env.get("ROLECALL_ADMIN_TOKEN_FILE"):
        check_file_from_volume(pod, rc, "ROLECALL_ADMIN_TOKEN_FILE", env["ROLECALL_ADMIN_TOKEN_FILE"], "Secret", objects)
    if env.get("ROLECALL_SNAPSHOT"):
        check_file_from_volume(pod, rc, "ROLECALL_SNAPSHOT", env["ROLECALL_SNAPSHOT"], "ConfigMap", objects)
    state = env.get("ROLECALL_STATE_DIR")
    if state:
        vm = mount_for(rc, state)
        if vm is None or vm["mountPath"] != state:
            problem(f"ROLECALL_STATE_DIR={state} is not a volume mount of its own")
        elif vm.get("readOnly"):
            problem("the state dir is mounted read-only")
    if env.get("ROLECALL_DEMO", "false").lower() not in ("false", "0", "no", "off"):
        problem("ROLECALL_DEMO is set: a pod would serve the built-in demo model")
    if env.get("ROLECALL_LOG_FORMAT") != "json":
        problem("ROLECALL_LOG_FORMAT is not json")

    # --- shutdown --------------------------------------------------------------
    try:
        grace = int(env.get("ROLECALL_SHUTDOWN_GRACE_SECONDS"))
        delay = int(env.get("ROLECALL_SHUTDOWN_DELAY_SECONDS", "0"))
        tgps = int(pod.get("terminationGracePeriodSeconds", 30))
        if tgps <= delay + grace:
            problem(f"terminationGracePeriodSeconds={tgps} is not larger than ROLECALL_SHUTDOWN_DELAY_SECONDS={delay} + ROLECALL_SHUTDOWN_GRACE_SECONDS={grace}")
    except (TypeError, ValueError):
        problem("ROLECALL_SHUTDOWN_GRACE_SECONDS or ROLECALL_SHUTDOWN_DELAY_SECONDS is not an integer")

    # --- security --------------------------------------------------------------
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != 65532:
        problem("pod securityContext: runAsNonRoot true and runAsUser 65532 expected")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem("pod securityContext: seccompProfile RuntimeDefault expected")
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        n = c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(f"container {n}: allowPrivilegeEscalation false expected")
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(f"container {n}: readOnlyRootFilesystem true expected")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problem(f"container {n}: capabilities.drop ALL expected")
        if sc.get("runAsNonRoot") is False or sc.get("runAsUser", 65532) != 65532:
            problem(f"container {n}: must run as non-root user 65532")
        if (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault") != "RuntimeDefault":
            problem(f"container {n}: seccompProfile RuntimeDefault expected")
    res = rc.get("resources") or {}
    for part in ("requests", "limits"):
        for what in ("cpu", "memory"):
            if what not in (res.get(part) or {}):
                problem(f"rolecall container: resources.{part}.{what} is not set")

    # --- the image -------------------------------------------------------------
    if args.dockerfile:
        with open(args.dockerfile) as f:
            text = f.read()
        exposed = set()
        for line in text.splitlines():
            m = re.match(r"\s*EXPOSE\s+(.*)", line, re.I)
            if m:
                exposed.update(int(p.split("/")[0]) for p in m.group(1).split())
        if {admin_port, metrics_port} - exposed:
            problem(f"the Dockerfile EXPOSEs {sorted(exposed)}, the manifests use {admin_port} and {metrics_port}")
        if not re.search(r'ENTRYPOINT\s+\["/usr/local/bin/rolecall",\s*"serve"\]', text):
            problem("the Dockerfile ENTRYPOINT is not [\"/usr/local/bin/rolecall\", \"serve\"]")
        if rc.get("command") or rc.get("args"):
            problem("the rolecall container overrides the image's entrypoint; configure it with ROLECALL_* env instead")

    return finish()


def finish():
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
