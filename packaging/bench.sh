#!/bin/sh
# The benchmark suite in one command (issue 9): installs the benchmark dependencies (peers, fio,
# nginx, gnuplot, valgrind), builds a release tree in ./build-bench, waits for a quiet machine,
# runs the full suite and writes bench-results/<date>/{results.md,results.json,chart.png}, then
# the instruction-count check (test/bench/instructions.json). Must run as root.
#
#   packaging/bench.sh [--ci] [--record] [--no-wait] [-- run_suite.py options]
#     --ci       short CI mode (small fixtures, a few minutes)
#     --record   append this commit's instruction counts to test/bench/instructions.json
#     --no-wait  do not wait for the load average to fall below 1.5 (at most 40 minutes)
set -eu
cd "$(dirname "$0")/.."

MODE=full
RECORD=""
WAIT=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) MODE=ci ;;
        --record) RECORD=--record ;;
        --no-wait) WAIT=0 ;;
        --) shift; break ;;
        *) echo "bench.sh: unknown argument '$1'" >&2; exit 1 ;;
    esac
    shift
done

./packaging/install-deps.sh --bench

BUILD=${HF_BENCH_BUILD_DIR:-build-bench}
[ -d "$BUILD" ] || meson setup "$BUILD" -Dbuildtype=release >/dev/null
ninja -C "$BUILD" cmd/hf-mount-fuse cmd/hf-mount-hubsim \
    test/bench/suite/hf-bench-synth test/bench/suite/hf-bench-probe test/bench/suite/hf-bench-nullfs \
    test/bench/http/hf-http-bench-client test/bench/http/hf-http-bench-server

if [ "$WAIT" = 1 ]; then
    # Other work on a 2-vCPU machine distorts every number: wait for the 1-minute load average to
    # fall below 1.5, for at most 40 minutes, then run anyway (the load is recorded).
    i=0
    while [ "$(awk '{print ($1 < 1.5)}' /proc/loadavg)" != 1 ] && [ $i -lt 80 ]; do
        echo "bench.sh: load average $(cut -d' ' -f1-3 /proc/loadavg), waiting ($i/80)"
        sleep 30
        i=$((i + 1))
    done
fi

OUT=bench-results/$(date -u +%Y%m%d-%H%M%S)-$MODE
mkdir -p "$OUT"
status=0
python3 test/bench/suite/run_suite.py --build "$BUILD" --mode "$MODE" --out "$OUT" \
    --fixtures bench-results/fixtures "$@" || status=$?
python3 test/bench/suite/instructions.py --build "$BUILD" --check $RECORD --json "$OUT/instructions.json" \
    --work "$OUT/work-ir" || status=$?
rm -rf "$OUT/work" "$OUT/work-ir"
echo "bench.sh: results in $OUT/results.md, $OUT/results.json, $OUT/chart.png"
exit $status
