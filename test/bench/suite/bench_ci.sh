#!/bin/sh
# bench-ci (meson test, suite 'bench'): the short CI mode of the benchmark suite (small fixtures,
# generous thresholds on ratios; fails only on large regressions) and the instruction-count
# check against test/bench/instructions.json. Exit 77 (skip) when not root or without /dev/fuse.
#   test/bench/suite/bench_ci.sh BUILD_DIR
set -u
BUILD=${1:?usage: bench_ci.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
    echo "bench-ci: skipped (needs root and /dev/fuse)"
    exit 77
fi
for tool in python3 fio curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench-ci: skipped ($tool not installed)"; exit 77; }
done
OUT=$BUILD/bench-ci
rm -rf "$OUT/work"
status=0
python3 "$HERE/run_suite.py" --build "$BUILD" --mode ci --out "$OUT" --ci-check --skip W9,HTTP || status=$?
[ "$status" = 77 ] && exit 77
if command -v valgrind >/dev/null 2>&1; then
    python3 "$HERE/instructions.py" --build "$BUILD" --check --max-ratio 1.5 --json "$OUT/instructions.json" \
        --work "$OUT/work-ir" || { s=$?; [ "$s" = 77 ] || status=1; }
else
    echo "bench-ci: instruction-count check skipped (valgrind not installed)"
fi
exit $status
