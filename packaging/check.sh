#!/bin/sh
# Installs dependencies, builds from scratch in ./build-check and runs every test suite (unit,
# fuse, packaging; then bench-ci alone), then the sanitizer subset (packaging/sanitize.sh
# --quick: the parsers' unit suites under ASan+UBSan, unit-fs + unit-http + fuse-read under
# TSan; skip with HF_CHECK_SANITIZE=0). This is the README's test command and
# what CI runs (.ci/run).
# Must run as root (package installs, real FUSE mounts).
set -eu
cd "$(dirname "$0")/.."

t0=$(date +%s)
phases=""
phase_done() {  # NAME: records how long the phase took (CI has a time limit; see the summary)
    t1=$(date +%s)
    phases="$phases $1 $(( t1 - t0 ))s"
    echo "check.sh: $1 took $(( t1 - t0 )) s"
    t0=$t1
}

./packaging/install-deps.sh
phase_done install

BUILD=${HF_CHECK_BUILD_DIR:-build-check}
rm -rf "$BUILD"
# -O2 with line tables only (-g1): asserts stay on and backtraces keep file:line, and the build
# takes about 30% less time than debugoptimized's full -g.
meson setup "$BUILD" -Doptimization=2 -Ddebug=false -Dcpp_args=-g1 -Dc_args=-g1 >/dev/null
ninja -C "$BUILD"
phase_done build

sanitize_build=
if [ "${HF_CHECK_SANITIZE:-1}" != 0 ]; then
    # Fresh sanitizer builds too: a stale tree could hide a report. They compile at the lowest
    # priority while the suites below run (those wait on mounts, timeouts and the network much
    # of the time), which takes about 15 minutes off the check on two cores.
    rm -rf build-asan build-tsan
    # Its own process group, so that an early exit stops its compilers too.
    nice -n 19 setsid ./packaging/sanitize.sh all --quick --build-only > "$BUILD/sanitize-build.log" 2>&1 &
    sanitize_build=$!
    trap 'kill -- -$sanitize_build 2>/dev/null || true' EXIT
fi

status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 2 --no-suite bench || status=$?
phase_done tests

if [ -n "$sanitize_build" ]; then
    # Its failures show again below: sanitize.sh builds what is missing before running.
    wait "$sanitize_build" || echo "check.sh: background sanitizer build failed (see $BUILD/sanitize-build.log)"
    phase_done sanitizer-build-wait
fi

# The benchmark guards alone on a quiet machine: beside the .deb build and the sanitizer
# compilers, the cold read ran at a quarter of its speed and tripped its guard.
meson test -C "$BUILD" --print-errorlogs --suite bench --logbase testlog-bench || status=$?
phase_done bench

sanitizers=skipped
if [ -n "$sanitize_build" ]; then
    if ./packaging/sanitize.sh all --quick; then
        sanitizers=clean
    else
        sanitizers=FAILED
        status=1
    fi
    phase_done sanitizers
fi

# One summary line CI can read, taken from meson's own machine-readable log.
python3 - "$sanitizers" "$phases" "$BUILD/meson-logs/testlog.json" "$BUILD/meson-logs/testlog-bench.json" <<'PY'
import json, sys, collections
c = collections.Counter()
bad = ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS")
failures = []
for log in sys.argv[3:]:
    try:
        lines = open(log).readlines()
    except OSError:
        lines = []
        c["ERROR"] += 1  # a run that left no log (meson itself failed)
        failures.append({"name": log, "result": "ERROR", "stdout": "no test log written"})
    for line in lines:
        r = json.loads(line)
        c[r["result"]] += 1
        if r["result"] in bad:
            failures.append(r)
total = sum(c.values())
failed = sum(c[k] for k in bad)
# CI keeps only the tail of the output: repeat each failure's own last lines here, so the
# reason is visible without the full log.
for r in failures:
    print(f"--- {r['name']}: {r['result']} (last lines of its output) ---")
    tail = (r.get("stdout") or "").splitlines()[-40:]
    print("\n".join(tail))
names = "".join(f" [{r['name']}]" for r in failures)
print(f"hf-mount-cpp check: {total} tests, {c['OK'] + c['EXPECTEDFAIL']} passed, {failed} failed{names}, {c['SKIP']} skipped; "
      f"sanitizers {sys.argv[1]};{sys.argv[2]}")
PY
exit $status
