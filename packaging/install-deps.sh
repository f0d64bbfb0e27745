#!/bin/sh
# Installs every Debian 12 package needed to build, test and benchmark hf-mount-cpp.
# Idempotent: re-running it only installs what is missing. Must run as root.
#   packaging/install-deps.sh            build + test dependencies
#   packaging/install-deps.sh --bench    also the peers and tools used by the benchmark suite
#   packaging/install-deps.sh --package  also the Debian packaging toolchain
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

BUILD="build-essential pkgconf meson ninja-build
 libfuse3-dev fuse3 libboost-dev libssl-dev openssl libsimdjson-dev librocksdb-dev
 catch2 liblz4-dev librust-blake3-dev libfmt-dev libxxhash-dev libbenchmark-dev"
# Used by the test suites: real mounts, checksums, fuzzers/sanitizers, shell tools.
TEST="clang libclang-rt-14-dev lz4 b3sum curl attr python3 sqlite3 rsync tar
 util-linux procps psmisc coreutils findutils systemd
 fio valgrind"  # fio, valgrind: the bench-ci test (test/bench/suite)
BENCH="fio hyperfine nginx-light rclone s3fs gnuplot-nox valgrind linux-perf iproute2"
PACKAGE="debhelper dpkg-dev fakeroot lintian"

want="$BUILD $TEST"
for arg in "$@"; do
    case "$arg" in
        --bench) want="$want $BENCH" ;;
        --package) want="$want $PACKAGE" ;;
        *) echo "install-deps.sh: unknown argument '$arg'" >&2; exit 1 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-deps.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "install-deps.sh: all dependencies present"
