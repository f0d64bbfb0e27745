# Sourced by packaging/check.sh and packaging/sanitize.sh: one place for the sanitizer runtime
# options and the report check, so CI's check build and the on-demand runs judge alike.

# sanitizer_setup DIR SANITIZERS: configures a sanitizer build tree (meson's b_sanitize values:
# address,undefined or thread) without the micro-benchmarks.
sanitizer_setup() {
    # -O1 with line tables only (-g1): reports keep function, file and line, and the build is
    # about twice as fast as -O2 -g under ASan+UBSan (80 s -> 38 s for fs/vfs_write.cc).
    # ASan: unity build (8 sources per unit): the headers (Asio, Beast) are parsed once per
    # unit instead of once per source, 19 -> 13 min on 2 vCPUs. The release tree stays one
    # source per object, so a source that misses an include still fails there. Not for TSan: in
    # a unity unit_fs, RocksDB's background threads copying out of blocks the main thread had
    # read showed up as races (RocksDB is not instrumented; tsan.supp's thread-creation
    # suppression did not catch them): 6 runs in 18 of the MetaStore tests, 0 in 20 without.
    unity=off
    [ "$2" = thread ] || unity=on
    meson setup "$1" -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 -Dc_args=-g1 -Db_sanitize="$2" \
        -Db_lundef=false -Dbench=false -Dunity=$unity -Dunity_size=8 >/dev/null
}

# sanitizer_env REPORTS_DIR: every sanitizer writes its reports under REPORTS_DIR (emptied),
# including those of processes the tests spawn (hf-mount-fuse daemons, hf-mount-hubsim
# subprocesses), whose stderr would otherwise end up in logs nobody reads.
sanitizer_env() {
    rm -rf "$1"
    mkdir -p "$1"
    # halt_on_error=0 for UBSan/TSan: keep going, every report is collected and fails the run.
    # ASan stops the faulty process (its memory is no longer trustworthy).
    ASAN_OPTIONS="log_path=$1/asan:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0:strict_string_checks=0"
    UBSAN_OPTIONS="log_path=$1/ubsan:print_stacktrace=1:halt_on_error=0"
    TSAN_OPTIONS="log_path=$1/tsan:halt_on_error=0:second_deadlock_stack=1:report_signal_unsafe=0:suppressions=$PWD/packaging/tsan.supp"
    export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
}

# sanitizer_reports REPORTS_DIR LABEL: prints the reports (first 40 lines each) and fails if
# there is any, even when every test passed.
sanitizer_reports() {
    n=$(find "$1" -type f | wc -l)
    if [ "$n" -gt 0 ]; then
        echo "$2: $n sanitizer report(s) in $1:" >&2
        for f in "$1"/*; do
            echo "---- $f" >&2
            head -n 40 "$f" >&2
        done
        return 1
    fi
    echo "$2: no sanitizer reports"
}
