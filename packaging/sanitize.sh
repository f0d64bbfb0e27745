#!/bin/sh
# Sanitizer builds and runs (issue 10.4). g++ 12's -fsanitize is used because clang 14 cannot
# compile Boost 1.74's coroutines; the libFuzzer targets are clang builds of the Asio-free
# parsers (test/fuzz/meson.build).
#
#   packaging/sanitize.sh [asan|tsan|all] [--quick]
#
#   asan   build-asan: AddressSanitizer + UndefinedBehaviorSanitizer. Runs the unit suite and
#          the real-mount suites (read, bucket, cache persistence, faults, hostile, lifecycle,
#          POSIX model, a 60 s soak).
#   tsan   build-tsan: ThreadSanitizer. Runs the concurrency-heavy tests: unit-fs, unit-http,
#          unit-cache, unit-upload, unit-hubsim, unit-cmd and the fuse read, bucket and soak
#          suites.
#   all    both (default).
#   --quick  the CI subset (CI has a time limit): the parsers of untrusted input under
#          ASan+UBSan (unit-xet, unit-hub, unit-cas, unit-cache, unit-http), and unit-fs +
#          unit-http + fuse-read under TSan. The rest runs on demand without --quick (the
#          ASan+UBSan build of the whole unit suite alone takes 1,700 CPU s, 14 min on 2 cores).
#   --build-only  build what the selected tests need and stop (check.sh runs this at low
#          priority while the main test suites run, which leave a CPU idle much of the time).
#
# Every report counts, including those of processes the tests spawn (hf-mount-fuse daemons,
# hf-mount-hubsim subprocesses) whose stderr ends up in their own logs: all sanitizers write
# to $SANITIZE_REPORTS (default build-<kind>/sanitizer-reports/), and the script fails if any
# report exists after the run, even when every test passed. Must run as root (real mounts).
# Build directories are reused (ninja rebuilds what changed); delete them for a clean build.
set -eu
cd "$(dirname "$0")/.."

what=all
quick=0
build_only=0
for a in "$@"; do
    case "$a" in
        asan|tsan|all) what=$a ;;
        --quick) quick=1 ;;
        --build-only) build_only=1 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "sanitize.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

status=0

setup() {  # DIR SANITIZERS
    if [ ! -f "$1/build.ninja" ]; then
        # -O1 with line tables only (-g1): reports keep function, file and line, and the build
        # is about twice as fast as -O2 -g under ASan+UBSan (80 s -> 38 s for fs/vfs_write.cc).
        meson setup "$1" -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 -Dc_args=-g1 -Db_sanitize="$2" \
            -Db_lundef=false -Dbench=false >/dev/null
    fi
}

# From meson's introspection of DIR: `names` prints the tests a selection (names, or --suite
# NAME) stands for (meson test itself intersects --suite with names given beside it, which
# selected nothing); `targets` prints the ninja targets they need, the same set `meson test`
# rebuilds before running them.
introspect_tests() {  # DIR names|targets SELECTION...
    python3 - "$@" <<'PY'
import json, os, subprocess, sys
d, what, sel = sys.argv[1], sys.argv[2], sys.argv[3:]
names, suites, i = set(), set(), 0
while i < len(sel):
    if sel[i] == "--suite":
        suites.add(sel[i + 1]); i += 2
    else:
        names.add(sel[i]); i += 1
intro = lambda arg: json.loads(subprocess.run(["meson", "introspect", d, arg], check=True,
                                              capture_output=True, text=True).stdout)
tests = [t for t in intro("--tests")
         if t["name"] in names or any(s.split(":")[-1] in suites for s in t["suite"])]
if what == "names":
    print("\n".join(t["name"] for t in tests))
else:
    files = {t["id"]: t["filename"] for t in intro("--targets")}
    out = {os.path.relpath(f, d) for t in tests for dep in t["depends"] for f in files.get(dep, [])}
    print("\n".join(sorted(out)))
PY
}

# Runs meson test in $1 with the given tests; sanitizer reports go to $1/sanitizer-reports.
run_tests() {
    dir=$1
    shift
    # One name per line, no spaces in names.
    # shellcheck disable=SC2046
    set -- $(introspect_tests "$dir" names "$@")
    if [ $# = 0 ]; then
        echo "sanitize.sh: $dir: the selection matches no test" >&2
        status=1
        return
    fi
    if [ "$build_only" = 1 ]; then
        # shellcheck disable=SC2046  # one target per line
        ninja -C "$dir" $(introspect_tests "$dir" targets "$@") || status=1
        return
    fi
    reports=${SANITIZE_REPORTS:-$PWD/$dir/sanitizer-reports}
    rm -rf "$reports"
    mkdir -p "$reports"
    # halt_on_error=0 for UBSan/TSan: keep going, every report is collected and fails the run.
    # ASan stops the faulty process (its memory is no longer trustworthy).
    ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0:strict_string_checks=0" \
    UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=0" \
    TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=0:second_deadlock_stack=1:report_signal_unsafe=0:suppressions=$PWD/packaging/tsan.supp" \
    HF_SOAK_SECONDS=${HF_SOAK_SECONDS:-60} \
        meson test -C "$dir" --print-errorlogs --num-processes 1 --timeout-multiplier 4 "$@" || status=1
    n=$(find "$reports" -type f | wc -l)
    if [ "$n" -gt 0 ]; then
        echo "sanitize.sh: $n sanitizer report(s) in $reports:" >&2
        for f in "$reports"/*; do
            echo "---- $f" >&2
            head -n 40 "$f" >&2
        done
        status=1
    else
        echo "sanitize.sh: $dir: no sanitizer reports"
    fi
}

if [ "$what" = asan ] || [ "$what" = all ]; then
    setup build-asan address,undefined
    if [ "$quick" = 1 ]; then
        # meson test builds only what the selected tests need.
        run_tests build-asan unit-xet unit-hub unit-cas unit-cache unit-http
    else
        [ "$build_only" = 1 ] || ninja -C build-asan
        run_tests build-asan --suite unit fuse-read fuse-bucket fuse-cache fuse-faults fuse-hostile fuse-lifecycle \
            fuse-posix-model fuse-soak
    fi
fi

if [ "$what" = tsan ] || [ "$what" = all ]; then
    setup build-tsan thread
    if [ "$quick" = 1 ]; then
        run_tests build-tsan unit-fs unit-http fuse-read
    else
        [ "$build_only" = 1 ] || ninja -C build-tsan
        run_tests build-tsan unit-fs unit-http unit-cache unit-upload unit-hubsim unit-cmd fuse-read fuse-bucket \
            fuse-soak
    fi
fi

exit $status
