#!/bin/sh
# hf-mount quick start, end to end, on this machine only (no Hugging Face account or network
# access needed):
#   1. install the build dependencies (packaging/install-deps.sh) and build into ./build-demo;
#   2. generate a demo model repository (config.json, tokenizer.json, a ~360 MB
#      model.safetensors with a real safetensors header; deterministic bytes);
#   3. serve it from the bundled local Hub + Xet CAS emulator (hf-mount-hubsim);
#   4. mount it with `hf-mount start`, list it, read the safetensors header through the mount,
#      warm the weights into the cache, show `hf-mount status`;
#   5. unmount and stop the emulator, leaving nothing running.
# Run as root on Debian 12 (it installs packages and makes a FUSE mount):
#   sudo packaging/demo.sh
# HF_DEMO_KEEP=1 keeps the generated files in the printed work directory.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: run as root (installs packages, mounts a FUSE filesystem): sudo $0" >&2
    exit 1
fi

say "Installing build dependencies"
./packaging/install-deps.sh

say "Building hf-mount into build-demo"
if [ ! -f build-demo/build.ninja ]; then
    meson setup build-demo -Dbuildtype=release -Dtests=false -Dbench=false >/dev/null
fi
# The compiler output goes to a log (g++ 12 prints harmless -Wrestrict notes at -O3).
if ! ninja -C build-demo cmd/hf-mount cmd/hf-mount-fuse cmd/hf-mount-hubsim > build-demo/demo-build.log 2>&1; then
    tail -n 60 build-demo/demo-build.log >&2
    echo "demo.sh: build failed (full log: build-demo/demo-build.log)" >&2
    exit 1
fi
echo "built (log: build-demo/demo-build.log)"
bin="$src/build-demo/cmd"

work=$(mktemp -d /tmp/hf-mount-demo.XXXXXX)
chmod 755 "$work"
mnt="$work/mnt"
hub_pid=""
cleanup() {
    set +e
    if grep -q " $mnt fuse.hfmount " /proc/self/mounts 2>/dev/null; then
        "$bin/hf-mount" stop "$mnt" >/dev/null 2>&1 || umount "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null
    fi
    if [ -n "$hub_pid" ]; then
        kill "$hub_pid" 2>/dev/null
        wait "$hub_pid" 2>/dev/null
    fi
    if [ "${HF_DEMO_KEEP:-0}" = 1 ]; then echo "demo files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Generating a demo model repository"
python3 packaging/demo-repo.py make "$work/repo"

say "Starting the local Hub emulator (it chunks the files into Xet first; ~10-30 s)"
"$bin/hf-mount-hubsim" --repo "model:demo/tiny-llama=$work/repo" > "$work/hubsim.out" 2> "$work/hubsim.log" &
hub_pid=$!
i=0
until grep -q '^listening on ' "$work/hubsim.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 1200 ] || ! kill -0 "$hub_pid" 2>/dev/null; then
        echo "demo.sh: the emulator did not start:" >&2
        cat "$work/hubsim.log" >&2
        exit 1
    fi
    sleep 0.1
done
endpoint=$(sed -n 's/^listening on //p' "$work/hubsim.out")
echo "local Hub at $endpoint"

say "hf-mount start repo demo/tiny-llama $mnt --hub-endpoint $endpoint"
mkdir "$mnt"
"$bin/hf-mount" start repo demo/tiny-llama "$mnt" --hub-endpoint "$endpoint" --cache-dir "$work/cache" \
    --log-file "$work/mount.log"

say "ls -l $mnt"
ls -l "$mnt"

say "Reading the safetensors header through the mount (only its first bytes are fetched)"
python3 packaging/demo-repo.py header "$mnt/model.safetensors" | head -n 12
echo "  ..."
echo "cached so far: $(getfattr --only-values -n user.hf.cached_bytes "$mnt/model.safetensors" 2>/dev/null || echo '?') bytes of $(stat -c %s "$mnt/model.safetensors")"

say "hf-mount warm $mnt/model.safetensors  (prefetch before a training run)"
"$bin/hf-mount" warm "$mnt/model.safetensors"

say "Reading the whole file again, now from the cache"
start=$(date +%s%N)
sha=$(sha256sum "$mnt/model.safetensors" | cut -d' ' -f1)
end=$(date +%s%N)
orig=$(sha256sum "$work/repo/model.safetensors" | cut -d' ' -f1)
echo "sha256 through the mount: $sha ($(( (end - start) / 1000000 )) ms)"
if [ "$sha" = "$orig" ]; then echo "identical to the generated file"; else echo "MISMATCH with $orig" >&2; exit 1; fi

say "hf-mount status $mnt"
"$bin/hf-mount" status "$mnt"

say "hf-mount stop $mnt"
"$bin/hf-mount" stop "$mnt"

cat <<EOF

Done: the mount is gone and the emulator is stopped.

To mount a real Hugging Face repository instead (network access needed):
  $bin/hf-mount start repo openai-community/gpt2 /mnt/gpt2
  $bin/hf-mount start repo datasets/OWNER/NAME /mnt/data --hf-token "\$HF_TOKEN"   # private or gated
  $bin/hf-mount start bucket OWNER/NAME /mnt/bucket --token-file ~/.cache/huggingface/token
or through mount(8) / fstab once installed (packaging/build-deb.sh builds a .deb):
  mount -t fuse.hfmount hf://openai-community/gpt2 /mnt/gpt2 -o ro,allow_other
See hf-mount(1) and hf-mount-fuse(8).
EOF
