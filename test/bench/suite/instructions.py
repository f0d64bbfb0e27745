#!/usr/bin/env python3
"""CPU-cost regression check that does not depend on machine noise: instruction counts (Ir) of
the hf-mount-fuse daemon under valgrind --tool=callgrind for fixed small workloads.

  warm_read_1m : 256 x 1 MiB O_DIRECT reads of a file held in the disk cache (filled by a normal
                 mount first; the measured mount is a remount on the same cache directory)
  rand_read_4k : 2,000 O_DIRECT 4 KiB reads at fixed pseudo-random offsets of the same file, from
                 the disk cache (fresh daemon)
  getattr      : 20,000 lstat calls of one file on a branch mount with metadata_ttl=0 (every
                 call reaches the daemon as LOOKUP/GETATTR)

Only the workload phase is counted (--instr-atstart=no, toggled with callgrind_control).

usage: instructions.py --build DIR [--record] [--check] [--json OUT] [--history FILE]
  --record  append {commit, date, buildtype, Ir per op} to the history (test/bench/instructions.json)
  --check   compare with the last history entry of the same build type: exit 1 if any workload
            costs more than --max-ratio (default 1.5) times as many instructions per op
Exit 77 when not root, without /dev/fuse or without valgrind.
"""
import argparse, json, os, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import FuseMount, cleanup, log, run  # noqa: E402
from servers import Hubsim  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
HISTORY = os.path.join(SRC, "test", "bench", "instructions.json")
READS = 256
RAND_READS = 2000
GETATTRS = 20000
FILE_MIB = 256


def buildtype(build):
    try:
        for o in json.load(open(os.path.join(build, "meson-info", "intro-buildoptions.json"))):
            if o["name"] == "buildtype":
                return o["value"]
    except (OSError, ValueError):
        pass
    return "unknown"


def callgrind_toggle(pid, on):
    # callgrind_control talks to the valgrind gdbserver of `pid` (vgdb).
    r = subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind_control failed: {r.stdout[-300:]} {r.stderr[-300:]}")


def valgrind_pid(proc):
    """Popen runs valgrind directly (no shell), so the pid is the daemon's."""
    return proc.pid


def total_ir(out_file):
    """Sum of the Ir totals of every dump file callgrind wrote for this run (out, out.1, ...)."""
    total = 0
    d = os.path.dirname(out_file)
    base = os.path.basename(out_file)
    for name in os.listdir(d):
        if name != base and not name.startswith(base + "."):
            continue
        # "summary:" is written at the top when the dump starts (0 with --instr-atstart=no);
        # "totals:" at the end holds the collected count.
        summary = totals = None
        for line in open(os.path.join(d, name), errors="replace"):
            if line.startswith("summary:"):
                summary = int(line.split()[1])
            elif line.startswith("totals:"):
                totals = int(line.split()[1])
        total += totals if totals is not None else (summary or 0)
    return total


def measure(build, work):
    fusebin = os.path.join(build, "cmd", "hf-mount-fuse")
    probe = os.path.join(build, "test", "bench", "suite", "hf-bench-probe")
    hub = Hubsim(build, work, ["--synthetic", f"model:bench/ir=file=w.bin:{FILE_MIB}M:seed=5"])
    cache = os.path.join(work, "ir-cache")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    res = {}
    try:
        def mount(opts, tag, valgrind_out=None):
            mnt = os.path.join(work, f"ir-mnt-{tag}")
            o = f"endpoint={hub.url},cache_dir={cache},log_file={work}/ir-{tag}.log,max_threads=2" + (f",{opts}" if opts else "")
            cmd = [fusebin, "-f", "hf://bench/ir", mnt, "-o", o]
            env = None
            if valgrind_out:
                cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={valgrind_out}",
                       "--vgdb=yes"] + cmd
                # A set GLIBC_TUNABLES keeps the daemon from re-executing itself (out of valgrind)
                # to apply its malloc tunables, which valgrind's malloc ignores anyway.
                env = dict(os.environ, GLIBC_TUNABLES="")
            return FuseMount(tag, cmd, mnt, os.path.join(work, f"ir-{tag}.stderr"), env=env, timeout=600)

        # Fill the disk cache natively.
        m = mount("", "fill")
        run([probe, "pread", m.mnt + "/w.bin", str(1 << 20), str(FILE_MIB)], timeout=600)
        m.close()
        # warm_read_1m under callgrind.
        out = os.path.join(work, "callgrind.read.out")
        for name in os.listdir(work):
            if name.startswith("callgrind."):
                os.remove(os.path.join(work, name))
        out = os.path.join(work, "callgrind.read.out")
        m = mount("", "vg-read", out)
        run([probe, "pread", m.mnt + "/w.bin", str(1 << 20), "1"], timeout=600)  # open path warmed up, not counted
        hub.reset_stats()
        callgrind_toggle(valgrind_pid(m.proc.p), True)
        t0 = time.monotonic()
        run([probe, "pread", m.mnt + "/w.bin", str(1 << 20), str(READS), "direct"], timeout=1200)
        callgrind_toggle(valgrind_pid(m.proc.p), False)
        secs = time.monotonic() - t0
        fetched = hub.stats()["bytes_out"]
        m.close()
        ir = total_ir(out)
        res["warm_read_1m"] = {"ops": READS, "ir": ir, "ir_per_op": ir / READS, "server_bytes": fetched,
                               "wall_s": round(secs, 1)}
        log(f"warm_read_1m: {ir} Ir, {ir / READS:.0f} per 1 MiB read ({secs:.1f} s under callgrind)")
        # rand_read_4k under callgrind (fresh daemon: the memory cache is empty, chunks come from disk).
        out = os.path.join(work, "callgrind.rand.out")
        m = mount("", "vg-rand", out)
        run([probe, "pread", m.mnt + "/w.bin", "4096", "1"], timeout=600)
        hub.reset_stats()
        callgrind_toggle(m.proc.pid, True)
        t0 = time.monotonic()
        run([probe, "prand", m.mnt + "/w.bin", "4096", str(RAND_READS), "direct"], timeout=1200)
        callgrind_toggle(m.proc.pid, False)
        secs = time.monotonic() - t0
        fetched = hub.stats()["bytes_out"]
        m.close()
        ir = total_ir(out)
        res["rand_read_4k"] = {"ops": RAND_READS, "ir": ir, "ir_per_op": ir / RAND_READS, "server_bytes": fetched,
                               "wall_s": round(secs, 1)}
        log(f"rand_read_4k: {ir} Ir, {ir / RAND_READS:.0f} per 4 KiB read ({secs:.1f} s under callgrind)")
        # getattr under callgrind.
        out = os.path.join(work, "callgrind.getattr.out")
        m = mount("metadata_ttl=0,poll_interval=0", "vg-getattr", out)
        run([probe, "restat", m.mnt + "/w.bin", "100"], timeout=600)
        hub.reset_stats()
        callgrind_toggle(valgrind_pid(m.proc.p), True)
        t0 = time.monotonic()
        run([probe, "restat", m.mnt + "/w.bin", str(GETATTRS)], timeout=1200)
        callgrind_toggle(valgrind_pid(m.proc.p), False)
        secs = time.monotonic() - t0
        reqs = hub.stats()["requests"]
        m.close()
        ir = total_ir(out)
        res["getattr"] = {"ops": GETATTRS, "ir": ir, "ir_per_op": ir / GETATTRS, "server_requests": reqs,
                          "wall_s": round(secs, 1)}
        log(f"getattr: {ir} Ir, {ir / GETATTRS:.0f} per lstat ({secs:.1f} s under callgrind, {reqs} server requests)")
    finally:
        hub.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--max-ratio", type=float, default=1.5)
    ap.add_argument("--json")
    ap.add_argument("--history", default=HISTORY)
    ap.add_argument("--work")
    a = ap.parse_args()
    # `meson test` sets MALLOC_PERTURB_ (glibc then fills every malloc'd and freed block): the
    # daemon would count glibc's fills, not its own work, and the count would depend on how
    # long its buffers live (seen in CI: 2.1x on warm_read_1m from perturbation alone).
    os.environ.pop("MALLOC_PERTURB_", None)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or not shutil.which("valgrind") \
            or not shutil.which("callgrind_control"):
        print("instructions: skipped (needs root, /dev/fuse and valgrind)")
        return 77
    build = os.path.abspath(a.build)
    # Absolute: the daemon is told these paths and may run with another working directory.
    work = os.path.abspath(a.work or os.path.join(build, "bench-instructions"))
    os.makedirs(work, exist_ok=True)
    try:
        res = measure(build, work)
    finally:
        cleanup().run_all()
    bt = buildtype(build)
    commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no", "--", "fs", "net", "cache",
                            "base", "cmd"], capture_output=True, text=True).stdout.strip() != ""
    entry = {"commit": commit + ("+dirty" if dirty else ""), "date": time.strftime("%Y-%m-%d", time.gmtime()),
             "buildtype": bt, "workloads": {k: {"ops": v["ops"], "ir_per_op": round(v["ir_per_op"])} for k, v in res.items()}}
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"entry": entry, "details": res}, f, indent=1)
    hist = []
    if os.path.exists(a.history):
        hist = json.load(open(a.history))
    status = 0
    if a.check:
        prev = [h for h in hist if h.get("buildtype") == bt]
        if not prev:
            print(f"instructions: no history entry for build type {bt}: nothing to compare")
        else:
            p = prev[-1]
            for k, v in entry["workloads"].items():
                old = p["workloads"].get(k, {}).get("ir_per_op")
                if not old:
                    continue
                ratio = v["ir_per_op"] / old
                verdict = "REGRESSION" if ratio > a.max_ratio else "ok"
                print(f"instructions: {k}: {v['ir_per_op']} Ir/op vs {old} at {p['commit']} ({ratio:.2f}x) {verdict}")
                if ratio > a.max_ratio:
                    status = 1
    if res.get("warm_read_1m", {}).get("server_bytes", 0) > (1 << 20):
        print("instructions: warm reads fetched from the server (disk cache not used)")
    if a.record:
        hist.append(entry)
        with open(a.history, "w") as f:
            json.dump(hist, f, indent=1)
            f.write("\n")
        print(f"instructions: recorded {entry['commit']} in {a.history}")
    print(json.dumps(entry))
    return status


if __name__ == "__main__":
    sys.exit(main())
