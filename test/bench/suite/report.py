"""Markdown table and gnuplot chart from a results.json of run_suite.py."""
import os, shutil, subprocess


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 1000:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        elif abs(v) >= 0.1:
            s = f"{v:.2f}"
        else:
            s = f"{v:.3g}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    return s


def target_rows(out):
    rows = []
    for t in out["targets"]:
        if t["kind"] == "ratio>=":
            goal = f"≥ {t['goal']}×"
            got = f"{fmt(t['ratio'])}× ({fmt(t['measured'])} / {fmt(t['reference'])})" if t["ratio"] is not None else "—"
        else:
            op = "≤" if t["kind"] == "value<=" else "≥"
            goal = f"{op} {fmt(t['goal'])} {t['unit']}".strip()
            got = f"{fmt(t['measured'])} {t['unit']}".strip()
        status = "met" if t["ok"] else ("**missed**" if t["ok"] is False else "n/a")
        rows.append((t["name"], got, goal, status))
    return rows


def markdown(out):
    m = out["meta"]
    L = []
    L.append(f"Run {m.get('date_utc')} UTC, commit `{m.get('commit')}`, mode **{m.get('mode')}**, "
             f"{m.get('reps')} repetitions (median, min–max), build type `{m.get('buildtype')}`.")
    L.append("")
    L.append(f"Machine: {m.get('cpu')}, {m.get('cpus')} vCPU, {m.get('mem_gib')} GiB RAM, kernel {m.get('kernel')}, "
             f"libfuse {m.get('libfuse')}, fuse max_pages_limit {m.get('fuse_max_pages_limit')}, "
             f"enable_uring {m.get('fuse_enable_uring')}; our mount's read_ahead_kb {m.get('ours_read_ahead_kb')}; "
             f"load average at start `{m.get('loadavg_start')}`, at end `{m.get('loadavg_end')}`.")
    L.append(f"Placement: {m.get('placement')}.")
    tools = m.get("tools", {})
    if tools:
        L.append("Tools: " + "; ".join(f"{k}: {v}" for k, v in sorted(tools.items())) + ".")
    L.append("")
    L.append("### Targets")
    L.append("")
    L.append("| Target | Measured | Goal | Status |")
    L.append("|---|---|---|---|")
    for r in target_rows(out):
        L.append("| " + " | ".join(r) + " |")
    L.append("")
    L.append("### All measurements")
    L.append("")
    L.append("| Workload | System | Metric | Median | Min – max | Unit | Extra |")
    L.append("|---|---|---|---|---|---|---|")
    for r in out["results"]:
        extra = ""
        if r.get("extra"):
            extra = ", ".join(f"{k} {fmt(v) if not isinstance(v, dict) else v}" for k, v in r["extra"].items())
        L.append(f"| {r['id']} | {r['system']} | {r['metric']} | {fmt(r['median'])} | "
                 f"{fmt(r['min'])} – {fmt(r['max'])} | {r['unit']} | {extra} |")
    if out.get("notes"):
        L.append("")
        L.append("Notes: " + " ".join(f"- {n}" for n in out["notes"]))
    if out.get("errors"):
        L.append("")
        L.append("Errors: " + "; ".join(out["errors"]))
    return "\n".join(L) + "\n"


def write_markdown(out, path):
    with open(path, "w") as f:
        f.write("# hf-mount-cpp benchmark results\n\n")
        f.write(markdown(out))


def chart_rows(out):
    """(label, score) per target: score = measured ratio / goal ratio for ratio targets,
    goal / measured for upper bounds (>= 1 means met). Bounds of zero are plotted as 1 when met
    and as 1/(1+measured) when missed."""
    rows = []
    for t in out["targets"]:
        label = (t.get("short") or t["name"])[:34].replace('"', "'")
        v = None
        if t["kind"] == "ratio>=" and t["ratio"] is not None:
            v = t["ratio"] / t["goal"]
        elif t["kind"] == "value<=" and t["measured"] is not None:
            if t["goal"]:
                v = t["goal"] / t["measured"] if t["measured"] > 0 else 32.0
            else:
                v = 1.0 if t["measured"] <= 0 else 1.0 / (1.0 + t["measured"])
        elif t["kind"] == "value>=" and t["measured"] is not None and t["goal"]:
            v = t["measured"] / t["goal"]
        if v is not None:
            rows.append((label, min(max(v, 0.02), 32.0)))
    return rows


def write_chart(out, outdir):
    """Horizontal bars, one per target: score (>= 1 means the goal is met), log scale."""
    if not shutil.which("gnuplot"):
        return None
    rows = chart_rows(out)
    if not rows:
        return None
    dat = os.path.join(outdir, "chart.dat")
    with open(dat, "w") as f:
        for i, (label, v) in enumerate(reversed(rows)):
            f.write(f'{i} "{label}" {v:.4f}\n')
    png = os.path.join(outdir, "chart.png")
    m = out["meta"]
    script = f"""
set terminal pngcairo size 760,{110 + 19 * len(rows)} font "sans,8"
set output "{png}"
set title "hf-mount-cpp targets: measured / goal (>= 1 met), {m.get('date_utc', '')[:10]}, {m.get('mode')} mode"
set style fill solid 0.8 border -1
set logscale x 2
set xrange [0.02:32]
set yrange [-0.7:{len(rows) - 0.3}]
set lmargin 30
set ytics nomirror scale 0
set grid xtics
set key off
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb "#d62728" lw 2
plot "{dat}" using (sqrt($3)):1:(($3<1)?$3:1):(($3<1)?1:$3):($1-0.35):($1+0.35):ytic(2) with boxxyerrorbars lc rgb "#1f77b4"
"""
    gp = os.path.join(outdir, "chart.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed: " + r.stderr[-400:])
        return None
    return png
