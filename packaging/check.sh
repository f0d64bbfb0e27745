#!/bin/sh
# Installs dependencies, builds from scratch in ./build-check and runs every test suite
# (unit, fuse, packaging, bench-ci), then the sanitizer subset (packaging/sanitize.sh --quick:
# the unit suite under ASan+UBSan, unit-fs + unit-http + fuse-read under TSan; skip with
# HF_CHECK_SANITIZE=0). This is the README's test command and what CI runs (.ci/run).
# Must run as root (package installs, real FUSE mounts).
set -eu
cd "$(dirname "$0")/.."

./packaging/install-deps.sh

BUILD=${HF_CHECK_BUILD_DIR:-build-check}
rm -rf "$BUILD"
meson setup "$BUILD" -Dbuildtype=debugoptimized >/dev/null
ninja -C "$BUILD"

status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 2 || status=$?

sanitizers=skipped
if [ "${HF_CHECK_SANITIZE:-1}" != 0 ]; then
    # Fresh sanitizer builds too: a stale tree could hide a report.
    rm -rf build-asan build-tsan
    if ./packaging/sanitize.sh all --quick; then
        sanitizers=clean
    else
        sanitizers=FAILED
        status=1
    fi
fi

# One summary line CI can read, taken from meson's own machine-readable log.
python3 - "$BUILD/meson-logs/testlog.json" "$sanitizers" <<'PY'
import json, sys, collections
c = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    c[r["result"]] += 1
total = sum(c.values())
failed = c["FAIL"] + c["TIMEOUT"] + c["ERROR"] + c["UNEXPECTEDPASS"]
print(f"hf-mount-cpp check: {total} tests, {c['OK'] + c['EXPECTEDFAIL']} passed, {failed} failed, {c['SKIP']} skipped; "
      f"sanitizers {sys.argv[2]}")
PY
exit $status
