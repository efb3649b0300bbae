#!/usr/bin/env python3
"""The summary of one bench/compare.sh run (stdlib only).

  report.py WORK_DIR "extra key=value ..."

Reads WORK_DIR/<model>/median_*.json (h2load medians), WORK_DIR/<model>/lg_*.line
(loadgen), WORK_DIR/cerbos_summary.txt (the last line of the peers' Cerbos
bench), prints a Markdown table with the ratios against the targets, writes it to
WORK_DIR/summary.md, and prints a key=value summary line (also WORK_DIR/summary.txt).
"""
import json
import os
import sys

TARGET_FLOOR = 0.9  # Check throughput >= 0.9x the same server's Health/Check
TARGET_PEER = 10.0  # >= 10x Cerbos's throughput, <= 1/10 of its p99


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def kv_line(path):
    try:
        with open(path) as f:
            line = f.read().strip().splitlines()[-1]
    except (FileNotFoundError, IndexError):
        return None
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def verdict(ok):
    return "**meets**" if ok else "**misses**"


def main():
    work, extra = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
    lines, summary = [], {}
    cerbos = kv_line(os.path.join(work, "cerbos_summary.txt"))
    models = [m for m in ("small", "large") if os.path.isdir(os.path.join(work, m))]
    for model in models:
        d = os.path.join(work, model)
        tc = load_json(os.path.join(d, "median_tput_check.json")) or {}
        th = load_json(os.path.join(d, "median_tput_health.json")) or {}
        lc = load_json(os.path.join(d, "median_lat_check.json")) or {}
        lh = load_json(os.path.join(d, "median_lat_health.json")) or {}
        bg = [open(os.path.join(d, f)).read().strip() if os.path.exists(os.path.join(d, f)) else "?"
              for f in ("bg_busy_start", "bg_busy_end")]
        lines.append(f"### rolecall `{model}` model vs Cerbos (h2load, medians of {int(tc.get('runs', 0))} runs)\n")
        head = "| | rolecall Check | rolecall Health/Check (floor) |"
        sep = "|---|---:|---:|"
        if cerbos:
            head += " Cerbos CheckResources | Cerbos Health/Check |"
            sep += "---:|---:|"
        lines += [head, sep]

        def row(label, ours_c, ours_h, cer_c=None, cer_h=None):
            r = f"| {label} | {ours_c} | {ours_h} |"
            if cerbos:
                r += f" {cer_c or '–'} | {cer_h or '–'} |"
            lines.append(r)

        cg = (cerbos or {}).get
        row("throughput, -c16 -m16 (req/s)", fmt(tc.get("rps")), fmt(th.get("rps")),
            fmt(cg("cerbos_check_rps")), fmt(cg("cerbos_health_rps")))
        row("under that load p50 / p99 (µs)",
            f"{fmt(tc.get('p50_us'))} / {fmt(tc.get('p99_us'))}",
            f"{fmt(th.get('p50_us'))} / {fmt(th.get('p99_us'))}",
            f"{fmt(cg('cerbos_check_loaded_p50_us'))} / {fmt(cg('cerbos_check_loaded_p99_us'))}", "")
        row("server CPU per request (µs)", fmt(tc.get("server_cpu_us_per_req"), 1),
            fmt(th.get("server_cpu_us_per_req"), 1),
            fmt(cg("cerbos_check_cpu_us_per_req"), 1), fmt(cg("cerbos_health_cpu_us_per_req"), 1))
        row("latency -c1 -m1 p50 / p90 / p99 / p99.9 (µs)",
            " / ".join(fmt(lc.get(k)) for k in ("p50_us", "p90_us", "p99_us", "p999_us")),
            " / ".join(fmt(lh.get(k)) for k in ("p50_us", "p90_us", "p99_us", "p999_us")),
            f"{fmt(cg('cerbos_check_p50_us'))} / – / {fmt(cg('cerbos_check_p99_us'))} / –",
            f"{fmt(cg('cerbos_health_p50_us'))} / – / {fmt(cg('cerbos_health_p99_us'))} / –")
        row("background CPU during runs (%, max)",
            fmt(max((load_json(os.path.join(d, f)) or {}).get("bg_cpu_pct", 0)
                    for f in os.listdir(d) if f.startswith("tput_check_") and f.endswith(".json")) if tc else None, 1),
            fmt(max((load_json(os.path.join(d, f)) or {}).get("bg_cpu_pct", 0)
                    for f in os.listdir(d) if f.startswith("tput_health_") and f.endswith(".json")) if th else None, 1))
        lines.append("")
        lines.append(f"machine busy before / after: {bg[0]} % / {bg[1]} %")
        lines.append("")
        ratios = []
        if tc and th:
            r = tc["rps"] / th["rps"]
            summary[f"{model}_check_rps"] = round(tc["rps"])
            summary[f"{model}_health_rps"] = round(th["rps"])
            summary[f"{model}_check_vs_health"] = round(r, 3)
            summary[f"{model}_check_p99_us"] = lc.get("p99_us")
            ratios.append(f"- Check / Health throughput: **{r:.2f}×** (target ≥ {TARGET_FLOOR}×: {verdict(r >= TARGET_FLOOR)})")
            pairs = []
            for i in range(1, 100):
                a = load_json(os.path.join(d, f"tput_check_{i}.json"))
                b = load_json(os.path.join(d, f"tput_health_{i}.json"))
                if not (a and b):
                    break
                pairs.append((a["rps"] / b["rps"],
                              b.get("server_cpu_us_per_req", 0) / max(a.get("server_cpu_us_per_req", 0), 1e-9)))
            if len(pairs) > 1:
                rr = sorted(p[0] for p in pairs)
                cr = sorted(p[1] for p in pairs)
                ratios.append(f"- per repeat (check run i / health run i, adjacent in time; Check first in odd repeats): throughput "
                              + ", ".join(f"{p[0]:.2f}" for p in pairs)
                              + f" (median {rr[len(rr) // 2]:.2f}); server CPU per request health/check "
                              + ", ".join(f"{p[1]:.2f}" for p in pairs) + f" (median {cr[len(cr) // 2]:.2f})")
            pp = []
            for i in range(1, 1000):
                a = load_json(os.path.join(d, f"pair_check_{i}.json"))
                b = load_json(os.path.join(d, f"pair_health_{i}.json"))
                if not (a and b):
                    break
                pp.append((a["rps"] / b["rps"], b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"],
                           max(a["bg_cpu_pct"], b["bg_cpu_pct"])))
            if pp:
                rr = sorted(p[0] for p in pp)
                cr = sorted(p[1] for p in pp)
                q = lambda v, f: v[min(len(v) - 1, int(f * len(v)))]
                med = q(rr, 0.5)
                summary[f"{model}_pairs_check_vs_health"] = round(med, 3)
                ratios.append(f"- **{len(pp)} short pairs** back to back (-n {int(load_json(os.path.join(d, 'pair_check_1.json'))['succeeded'])}):"
                              f" Check/Health throughput median **{med:.2f}×** (quartiles {q(rr, 0.25):.2f}–{q(rr, 0.75):.2f};"
                              f" target ≥ {TARGET_FLOOR}×: {verdict(med >= TARGET_FLOOR)}); server CPU per request"
                              f" Health/Check median {q(cr, 0.5):.2f}× (quartiles {q(cr, 0.25):.2f}–{q(cr, 0.75):.2f});"
                              f" pairs with > 3 % other CPU: {sum(1 for p in pp if p[2] > 3)}")
                # compare.sh alternates which goes first (odd pairs: Check):
                # a difference between the two halves is an order effect
                first = {"Check": sorted(p[0] for i, p in enumerate(pp) if i % 2 == 0),
                         "Health": sorted(p[0] for i, p in enumerate(pp) if i % 2 == 1)}
                if all(first.values()):
                    ratios.append("- the pairs by which ran first: " + "; ".join(
                        f"{who} first, Check/Health median {q(v, 0.5):.2f}× ({len(v)} pairs)"
                        for who, v in first.items()))
            if tc.get("server_cpu_us_per_req") and th.get("server_cpu_us_per_req"):
                ratios.append(f"- server CPU per request, medians: Check {tc['server_cpu_us_per_req']:.1f} µs,"
                              f" Health {th['server_cpu_us_per_req']:.1f} µs"
                              f" = {th['server_cpu_us_per_req'] / tc['server_cpu_us_per_req']:.2f}×")
            if lc and lh:
                ratios.append(f"- Check / Health p50 at c1: {lc['p50_us']:.0f} / {lh['p50_us']:.0f} µs"
                              f" = {lc['p50_us'] / lh['p50_us']:.2f}×")
        if tc and cerbos and cerbos.get("cerbos_check_rps"):
            r = tc["rps"] / cerbos["cerbos_check_rps"]
            summary[f"{model}_vs_cerbos_rps"] = round(r, 2)
            ratios.append(f"- rolecall Check / Cerbos CheckResources throughput: **{r:.1f}×**"
                          f" (target ≥ {TARGET_PEER:.0f}×: {verdict(r >= TARGET_PEER)})")
        if lc and cerbos and cerbos.get("cerbos_check_p99_us"):
            r = cerbos["cerbos_check_p99_us"] / lc["p99_us"]
            summary[f"{model}_cerbos_p99_over_ours"] = round(r, 2)
            ratios.append(f"- p99 at c1: rolecall {lc['p99_us']:.0f} µs vs Cerbos {cerbos['cerbos_check_p99_us']:.0f} µs"
                          f" = 1/{r:.1f} (target ≤ 1/{TARGET_PEER:.0f}: {verdict(r >= TARGET_PEER)})")
        if tc and cerbos and cerbos.get("cerbos_check_cpu_us_per_req") and tc.get("server_cpu_us_per_req"):
            r = cerbos["cerbos_check_cpu_us_per_req"] / tc["server_cpu_us_per_req"]
            ratios.append(f"- server CPU per check: rolecall {tc['server_cpu_us_per_req']:.1f} µs vs Cerbos"
                          f" {cerbos['cerbos_check_cpu_us_per_req']:.1f} µs = 1/{r:.1f}")
        lines += ratios
        lines.append("")
        lg = [(f[3:-5], kv_line(os.path.join(d, f))) for f in sorted(os.listdir(d))
              if f.startswith("lg_") and f.endswith(".line")]
        if lg:
            lines += [f"loadgen (tonic client, request mix of `{model}`, one process on the load core):", "",
                      "| run | calls | req/s | p50 | p90 | p99 | p99.9 (µs) | server CPU µs/call"
                      " | loadgen CPU % | other CPU % | errors | mismatches |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name, v in lg:
                if not v:
                    continue
                cpu = load_json(os.path.join(d, f"lg_{name}.out.cpu.json")) or {}
                # the server's CPU over the whole loadgen run, warm-up included
                calls = (v.get("n") or 0) + (v.get("warmup_calls") or 0)
                per = 1e6 * cpu["server_cpu_s"] / calls if cpu.get("server_cpu_s") and calls else None
                lgp = 100 * cpu["loadgen_cpu_s"] / cpu["wall_s"] if cpu.get("wall_s") else None
                lines.append(f"| {name} | {fmt(v.get('n'))} | {fmt(v.get('rps'))} | {fmt(v.get('p50_us'))}"
                             f" | {fmt(v.get('p90_us'))} | {fmt(v.get('p99_us'))} | {fmt(v.get('p999_us'))}"
                             f" | {fmt(per, 1)} | {fmt(lgp)} | {fmt(cpu.get('bg_cpu_pct'), 1)}"
                             f" | {fmt(v.get('errors'))} | {fmt(v.get('mismatches'))} |")
            for name, v in lg:
                if v and v.get("decisions_per_s"):
                    lines.append(f"- {name}: {fmt(v['decisions_per_s'])} decisions/s in CheckBatch calls of"
                                 f" {v.get('batch_size', 0):.0f} (its req/s are batches)")
            lines.append("")
        verify = kv_line(os.path.join(d, "verify.line"))
        if verify:
            lines.append(f"verified over gRPC: {int(verify['n'])} Check answers equal the requests file's"
                         f" `allowed` (mismatches {int(verify['mismatches'])}, errors {int(verify['errors'])})")
        batch = kv_line(os.path.join(d, "verify_batch.line"))
        if batch:
            lines.append(f"verified over gRPC: {int(batch['n'])} CheckBatch calls of {int(batch['batch_size'])}"
                         f" checks, every answer equal to the requests file's `allowed` (mismatches"
                         f" {int(batch['mismatches'])}, errors {int(batch['errors'])})")
        if verify or batch:
            lines.append("")
    if cerbos:
        lines.append(f"Cerbos summary line: `{open(os.path.join(work, 'cerbos_summary.txt')).read().strip()}`")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(work, "summary.md"), "w") as f:
        f.write(text + "\n")
    line = " ".join(f"{k}={v}" for k, v in summary.items()) + (" " + extra if extra else "")
    if cerbos:
        line += f" cerbos_contaminated={cerbos.get('contaminated', '?'):.0f}" if isinstance(
            cerbos.get("contaminated"), float) else ""
    with open(os.path.join(work, "summary.txt"), "w") as f:
        f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
