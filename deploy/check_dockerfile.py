#!/usr/bin/env python3
"""Static checks on deploy/Dockerfile (run by validate.sh; no Docker engine).

Parses the Dockerfile with BuildKit's own parser (the PyPI package
`dockerfile`, which wraps it), then checks what a build would trip over or
what the manifests rely on:

- every instruction is a real one, every COPY has a source and a destination;
- every COPY source exists in the build context (the repository root) and
  is let through by deploy/Dockerfile.dockerignore;
- every target Cargo.toml declares ([[bench]], [[test]], [[example]], [[bin]])
  is inside a copied path: cargo refuses to load a manifest whose declared
  target file is missing, even for a build that does not compile it;
- every file the Rust sources pull in with include_str!/include_bytes!
  (for example a README used as crate docs) is inside a copied path;
- the build stage runs `cargo build --release --locked`;
- the runtime stage is distroless, runs as 65532, has the binary at
  /usr/local/bin/rolecall and the exec-form ENTRYPOINT `rolecall serve`.

Usage: check_dockerfile.py DOCKERFILE CONTEXT_DIR
"""

import fnmatch
import os
import re
import sys

import dockerfile

KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
    "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}
BINARY = "/usr/local/bin/rolecall"

problems = []


def problem(msg):
    problems.append(msg)


def load_ignore(path):
    """The patterns of a .dockerignore, in order, as (negated, pattern)."""
    rules = []
    if not os.path.exists(path):
        return rules
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
            rules.append((neg, pat))
    return rules


def ignored(rules, rel):
    """Docker's rule: the last pattern matching the path or a parent wins."""
    parts = rel.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, pat in rules:
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            result = not neg
    return result


def cargo_targets(context):
    """Paths of the targets Cargo.toml declares explicitly."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return None
    with open(os.path.join(context, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    defaults = {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}
    out = []
    for kind, folder in defaults.items():
        for t in manifest.get(kind, []):
            path = t.get("path") or f"{folder}/{t['name']}.rs"
            out.append((kind, t.get("name", "?"), path))
    build = manifest.get("package", {}).get("build")
    if isinstance(build, str):
        out.append(("build script", build, build))
    return out


def main():
    path, context = sys.argv[1], sys.argv[2]
    try:
        cmds = dockerfile.parse_file(path)
    except dockerfile.GoParseError as e:
        print(f"  PROBLEM {path} does not parse: {e}")
        return 1

    stages = []  # (from-value, [commands])
    for c in cmds:
        if c.cmd.upper() not in KNOWN:
            problem(f"line {c.start_line}: unknown instruction {c.cmd}")
        if c.cmd.upper() == "FROM":
            stages.append((c.value, []))
        elif not stages:
            if c.cmd.upper() != "ARG":
                problem(f"line {c.start_line}: {c.cmd} before the first FROM")
        else:
            stages[-1][1].append(c)

    if len(stages) < 2:
        problem(f"expected a build stage and a runtime stage, found {len(stages)} stage(s)")
        return finish()
    build_from, build_cmds = stages[0]
    run_from, run_cmds = stages[-1]
    if build_from[0] != "rust:1-bookworm":
        problem(f"the build stage is FROM {build_from[0]}, expected rust:1-bookworm")
    if not any(c.cmd.upper() == "RUN" and "cargo build --release --locked" in " ".join(c.value)
               for c in build_cmds):
        problem("the build stage does not run `cargo build --release --locked`")
    if not run_from[0].startswith("gcr.io/distroless/cc-debian12:nonroot"):
        problem(f"the runtime stage is FROM {run_from[0]}, expected gcr.io/distroless/cc-debian12:nonroot")

    # COPY sources from the build context.
    rules = load_ignore(path + ".dockerignore")
    copied = []
    for _, stage_cmds in stages:
        for c in stage_cmds:
            if c.cmd.upper() not in ("COPY", "ADD"):
                continue
            if len(c.value) < 2:
                problem(f"line {c.start_line}: {c.cmd} needs a source and a destination")
                continue
            if any(f.startswith("--from") for f in c.flags):
                continue
            for src in c.value[:-1]:
                rel = os.path.normpath(src).lstrip("/")
                copied.append(rel)
                if not os.path.exists(os.path.join(context, rel)):
                    problem(f"line {c.start_line}: COPY source {src} does not exist in the build context")
                elif ignored(rules, rel):
                    problem(f"line {c.start_line}: COPY source {src} is excluded by {os.path.basename(path)}.dockerignore")

    targets = cargo_targets(context)
    if targets is None:
        print("  note: Python < 3.11 (no tomllib): Cargo.toml targets not checked")
    else:
        for kind, name, tpath in targets:
            tpath = os.path.normpath(tpath)
            if not any(tpath == c or tpath.startswith(c + "/") for c in copied):
                problem(f"Cargo.toml declares {kind} {name} at {tpath}, which the Dockerfile does not copy")

    # Files pulled in at compile time, relative to the including file.
    include = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)')
    for top in copied:
        base = os.path.join(context, top)
        files = [base] if os.path.isfile(base) else [
            os.path.join(d, f) for d, _, fs in os.walk(base) for f in fs]
        for src in files:
            if not src.endswith(".rs"):
                continue
            with open(src, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in include.finditer(text):
                target = os.path.relpath(
                    os.path.normpath(os.path.join(os.path.dirname(src), m.group(1))), context)
                if not any(target == c or target.startswith(c + "/") for c in copied):
                    rel = os.path.relpath(src, context)
                    problem(f"{rel} includes {m.group(1)} ({target}), which the Dockerfile does not copy")

    # The runtime stage.
    users = [c for c in run_cmds if c.cmd.upper() == "USER"]
    if not users or users[-1].value[0].split(":")[0] != "65532":
        problem("the runtime stage does not end with USER 65532")
    if not any(c.cmd.upper() == "COPY" and any(f.startswith("--from") for f in c.flags)
               and c.value[-1] == BINARY for c in run_cmds):
        problem(f"the runtime stage does not copy the binary to {BINARY}")
    eps = [c for c in run_cmds if c.cmd.upper() == "ENTRYPOINT"]
    if not eps or not eps[-1].json or list(eps[-1].value) != [BINARY, "serve"]:
        problem(f'the ENTRYPOINT is not the exec form ["{BINARY}", "serve"]')
    return finish()


def finish():
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
