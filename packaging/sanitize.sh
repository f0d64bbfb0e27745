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
#   --quick  subsets: the parsers of untrusted input under ASan+UBSan (unit-xet, unit-hub,
#          unit-cas, unit-cache, unit-http), and unit-fs + unit-http + fuse-read under TSan
#          (what CI runs; CI's ASan+UBSan coverage is check.sh's own build-check, where every
#          suite runs).
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
. packaging/sanitizer-env.sh

what=all
quick=0
build_only=0
for a in "$@"; do
    case "$a" in
        asan|tsan|all) what=$a ;;
        --quick) quick=1 ;;
        --build-only) build_only=1 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "sanitize.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

status=0

# Runs meson test in $1 with the given tests; sanitizer reports go to $1/sanitizer-reports.
run_tests() {
    dir=$1
    shift
    # One name per line, no spaces in names.
    # shellcheck disable=SC2046
    set -- $(packaging/meson-tests.py "$dir" names "$@")
    if [ $# = 0 ]; then
        echo "sanitize.sh: $dir: the selection matches no test" >&2
        status=1
        return
    fi
    if [ "$build_only" = 1 ]; then
        # shellcheck disable=SC2046  # one target per line
        ninja -C "$dir" $(packaging/meson-tests.py "$dir" targets "$@") || status=1
        return
    fi
    reports=${SANITIZE_REPORTS:-$PWD/$dir/sanitizer-reports}
    sanitizer_env "$reports"
    HF_SOAK_SECONDS=${HF_SOAK_SECONDS:-60} \
        meson test -C "$dir" --print-errorlogs --num-processes 1 --timeout-multiplier 4 "$@" || status=1
    sanitizer_reports "$reports" "sanitize.sh: $dir" || status=1
}

if [ "$what" = asan ] || [ "$what" = all ]; then
    [ -f build-asan/build.ninja ] || sanitizer_setup build-asan address,undefined
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
    [ -f build-tsan/build.ninja ] || sanitizer_setup build-tsan thread
    if [ "$quick" = 1 ]; then
        run_tests build-tsan unit-fs unit-http fuse-read
    else
        [ "$build_only" = 1 ] || ninja -C build-tsan
        run_tests build-tsan unit-fs unit-http unit-cache unit-upload unit-hubsim unit-cmd fuse-read fuse-bucket \
            fuse-soak
    fi
fi

exit $status
