#!/bin/sh
# systemd unit and fstab examples are valid (suite `packaging`): systemd-analyze verify on every
# unit in packaging/systemd (the template through an instance name), findmnt --verify on the
# fstab example. ExecStart= paths are pointed at the build tree, since verify insists that
# /usr/bin/hf-mount-fuse exists. Installs systemd through install-deps.sh when missing (root).
set -u
src=${HF_SOURCE_ROOT:?}
build=${HF_BUILD_ROOT:?}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then "$src/packaging/install-deps.sh" >/dev/null || exit 1; fi
    command -v systemd-analyze >/dev/null 2>&1 || { echo "skipped: systemd-analyze not available"; exit 77; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
for f in "$src"/packaging/systemd/*; do
    name=$(basename "$f")
    case "$name" in
        *@.service) target="${name%@.service}@openai\\x2dcommunity-gpt2.service" ;;  # an instance
        *) target=$name ;;
    esac
    sed "s|/usr/bin/hf-mount-fuse|$build/cmd/hf-mount-fuse|g" "$f" > "$tmp/$target"
    if out=$(cd "$tmp" && systemd-analyze verify --man=no "./$target" 2>&1) && [ -z "$out" ]; then
        echo "ok    systemd-analyze verify $name"
    else
        echo "FAIL  systemd-analyze verify $name: $out"
        fail=1
    fi
done

# A broken unit must fail (the check is not vacuous).
printf '[Mount]\nWhat=hf://a/b\nWhere=/mnt/elsewhere\nType=fuse.hfmount\nBogus=1\n' > "$tmp/mnt-hf-gpt2.mount"
if (cd "$tmp" && systemd-analyze verify --man=no ./mnt-hf-gpt2.mount) >/dev/null 2>&1; then
    echo "FAIL  systemd-analyze verify accepts a broken unit"
    fail=1
else
    echo "ok    systemd-analyze verify rejects a broken unit"
fi

# findmnt --verify: errors ([E]) fail, except that the example mount points do not exist here;
# warnings (unreachable sources, unknown fuse type) are expected on a build machine.
out=$(findmnt --verify --tab-file "$src/packaging/fstab.example" 2>&1)
if echo "$out" | grep '\[E\]' | grep -v 'unreachable on boot required target' | grep -q .; then
    echo "FAIL  findmnt --verify fstab.example: $out"
    fail=1
else
    echo "ok    findmnt --verify fstab.example"
fi
for want in _netdev nofail fuse.hfmount; do
    if grep -v '^#' "$src/packaging/fstab.example" | grep -q "$want"; then
        echo "ok    fstab.example uses $want"
    else
        echo "FAIL  fstab.example lacks $want"
        fail=1
    fi
done
exit $fail
