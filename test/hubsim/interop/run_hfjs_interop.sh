#!/bin/sh
# Runs hfjs_interop.mjs (huggingface.js @huggingface/hub) against a fresh hf-mount-hubsim.
#   run_hfjs_interop.sh HUBSIM_BINARY [WORK_DIR]
# Skips (exit 77) when node/npm are missing or the package cannot be installed (offline).
set -eu
BIN=$1
WORK=${2:-${HF_BUILD_ROOT:-/tmp}/hfjs-interop}
HERE=$(cd "$(dirname "$0")" && pwd)
HFJS_VERSION=2.17.5
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "node/npm missing: skipped"; exit 77; }
mkdir -p "$WORK"
if [ ! -f "$WORK/node_modules/@huggingface/hub/package.json" ]; then
    (cd "$WORK" && [ -f package.json ] || echo '{"private":true}' >package.json)
    (cd "$WORK" && timeout 300 npm install --no-audit --no-fund "@huggingface/hub@$HFJS_VERSION" >npm.log 2>&1) || {
        echo "cannot install @huggingface/hub (offline?): skipped"; exit 77; }
fi
SRC=$(mktemp -d /tmp/hfjs-src.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$SRC"; }
trap cleanup EXIT INT TERM
mkdir -p "$SRC/sub"
printf '{"a":1}\n' >"$SRC/config.json"
head -c 3000000 /dev/urandom >"$SRC/sub/model.bin"
python3 -c "import sys; sys.stdout.write(''.join(chr(65 + (i * 7) % 26) for i in range(500000)))" >"$SRC/text.txt"
"$BIN" --listen 127.0.0.1:0 --repo "model:acme/interop=$SRC" --bucket alice/interop >"$SRC/out" 2>"$SRC/err" &
PID=$!
i=0
until grep -q '^listening on ' "$SRC/out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 300 ] && { cat "$SRC/err"; exit 1; }
    sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$SRC/out")
cp "$HERE/hfjs_interop.mjs" "$WORK/"
cd "$WORK" && node hfjs_interop.mjs "$URL" "$SRC"
