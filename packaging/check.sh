#!/bin/sh
# Installs dependencies, builds from scratch and runs every test suite; the README's test command
# and what CI runs (.ci/run). Must run as root (package installs, real FUSE mounts).
#
#   build-check    ASan+UBSan (-O1): every suite (unit, interop, fuse, packaging) runs here, so
#                  the integration suites' daemons and emulators are checked too; any sanitizer
#                  report, from a test or from a process it spawned, fails the run.
#   build-release  the shipped optimisation (-O2): bench-ci, alone on the machine at the end
#                  (ratios against curl and the null filesystem mean nothing under ASan).
#   build-tsan     ThreadSanitizer: the concurrency-heavy subset (packaging/sanitize.sh tsan
#                  --quick: unit-fs, unit-http, fuse-read).
# The release and TSan trees compile at the lowest priority while the suites run (those wait on
# mounts, timeouts and the network much of the time).
# HF_CHECK_SANITIZE=0: one plain -O2 build in build-check runs everything, bench-ci included.
set -eu
cd "$(dirname "$0")/.."
. packaging/sanitizer-env.sh

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
sanitize=${HF_CHECK_SANITIZE:-1}
# Fresh trees: a stale one could hide a failure or a report.
rm -rf "$BUILD" build-release build-tsan
plain_setup() {  # DIR: -O2 with line tables only (-g1): asserts on, backtraces keep file:line
    meson setup "$1" -Doptimization=2 -Ddebug=false -Dcpp_args=-g1 -Dc_args=-g1 >/dev/null
}
if [ "$sanitize" != 0 ]; then
    sanitizer_setup "$BUILD" address,undefined
    BENCH_BUILD=build-release
else
    plain_setup "$BUILD"
    BENCH_BUILD=$BUILD
fi
ninja -C "$BUILD"
phase_done build

background=
if [ "$sanitize" != 0 ]; then
    plain_setup build-release
    # Its own process group, so that an early exit stops its compilers too. Its failures show
    # again below: meson test and sanitize.sh build what is missing before running.
    # shellcheck disable=SC2046  # one target per line
    nice -n 19 setsid sh -c 'ninja -C build-release $(packaging/meson-tests.py build-release targets --suite bench);
        ./packaging/sanitize.sh tsan --quick --build-only' > "$BUILD/background-build.log" 2>&1 &
    background=$!
    trap 'kill -- -$background 2>/dev/null || true' EXIT
fi

status=0
sanitizers=skipped
if [ "$sanitize" != 0 ]; then
    sanitizer_env "$PWD/$BUILD/sanitizer-reports"
    # Under ASan+UBSan at -O1 the suites run about 1.5x slower; their own timeouts assume -O2.
    meson test -C "$BUILD" --print-errorlogs --num-processes 2 --timeout-multiplier 3 --no-suite bench || status=$?
    unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
    if sanitizer_reports "$PWD/$BUILD/sanitizer-reports" "check.sh: $BUILD (ASan+UBSan)"; then
        sanitizers=clean
    else
        sanitizers=FAILED
        status=1
    fi
else
    meson test -C "$BUILD" --print-errorlogs --num-processes 2 --no-suite bench || status=$?
fi
phase_done tests

if [ -n "$background" ]; then
    wait "$background" || echo "check.sh: background build failed (see $BUILD/background-build.log)"
    phase_done background-build-wait
fi

# The benchmark guards alone on a quiet machine: beside the .deb build and the sanitizer
# compilers, the cold read ran at a quarter of its speed and tripped its guard.
meson test -C "$BENCH_BUILD" --print-errorlogs --suite bench --logbase testlog-bench || status=$?
phase_done bench

if [ "$sanitize" != 0 ]; then
    if ./packaging/sanitize.sh tsan --quick; then
        [ "$sanitizers" = FAILED ] || sanitizers=clean
    else
        sanitizers=FAILED
        status=1
    fi
    phase_done tsan
fi

# One summary line CI can read, taken from meson's own machine-readable log.
python3 - "$sanitizers" "$phases" "$BUILD/meson-logs/testlog.json" "$BENCH_BUILD/meson-logs/testlog-bench.json" <<'PY'
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
