#!/bin/sh
# The Debian package builds and is lintian-clean (suite `packaging`):
#   install the packaging toolchain (install-deps.sh --package), build with
#   DEB_BUILD_OPTIONS="nocheck parallel=2 noautodbgsym" DEB_CXXFLAGS_APPEND=-g0 packaging/build-deb.sh (HF_DEB_DIR=DIR
#   checks packages built earlier instead), run lintian (errors fail,
#   warnings are shown), check the package contents, and check that `meson install` of this
#   build installs the same set of files (binaries, helper link, man pages, examples).
set -u
src=${HF_SOURCE_ROOT:?}
build=${HF_BUILD_ROOT:?}

if [ "$(id -u)" = 0 ]; then
    "$src/packaging/install-deps.sh" --package >/dev/null || { echo "FAIL  install-deps.sh --package"; exit 1; }
fi
for tool in dpkg-buildpackage dh lintian fakeroot; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool missing (run install-deps.sh --package as root)"; exit 77; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
ok() { echo "ok    $1"; }
bad() { echo "FAIL  $1"; fail=1; }

start=$(date +%s)
if [ -n "${HF_DEB_DIR:-}" ]; then
    # Developer shortcut: check packages built earlier by packaging/build-deb.sh.
    mkdir -p "$tmp/out" && cp "$HF_DEB_DIR"/*.deb "$HF_DEB_DIR"/*.changes "$HF_DEB_DIR"/*.buildinfo "$tmp/out/"
    ok "using the packages in $HF_DEB_DIR"
# -g0 appended to Debian's flags: the same optimised, hardened build without debug info, which
# builds about 35% faster (the package's contents and lintian checks do not depend on it).
elif DEB_BUILD_OPTIONS="nocheck parallel=2 noautodbgsym" DEB_CXXFLAGS_APPEND=-g0 DEB_CFLAGS_APPEND=-g0 \
        "$src/packaging/build-deb.sh" "$tmp/out" > "$tmp/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b ($(( $(date +%s) - start )) s)"
else
    tail -40 "$tmp/build.log"
    bad "dpkg-buildpackage"
    exit 1
fi
deb=$(ls "$tmp"/out/hf-mount_*.deb | grep -v dbgsym | head -n 1)

lintian --fail-on error --tag-display-limit 0 "$tmp"/out/*.changes > "$tmp/lintian.log" 2>&1
rc=$?
sed 's/^/      lintian: /' "$tmp/lintian.log"
if [ $rc -eq 0 ] && ! grep -q '^E:' "$tmp/lintian.log"; then ok "lintian: no errors"; else bad "lintian reports errors"; fi

# perms owner size date time path [-> target]
dpkg-deb -c "$deb" | awk '{ if ($7 == "->") print $6 " -> " $8; else print $6 }' | sed 's|^\./|/|' > "$tmp/contents"
for p in /usr/bin/hf-mount /usr/bin/hf-mount-fuse /usr/bin/hf-mount-hubsim /usr/bin/hf-mount-xet \
         /usr/share/man/man1/hf-mount.1.gz /usr/share/man/man8/hf-mount-fuse.8.gz \
         /usr/share/man/man1/hf-mount-hubsim.1.gz /usr/share/man/man1/hf-mount-xet.1.gz \
         /usr/share/doc/hf-mount/examples/fstab.example \
         "/usr/share/doc/hf-mount/examples/hf-mount@.service" \
         /usr/share/doc/hf-mount/examples/mnt-hf-gpt2.mount /usr/share/doc/hf-mount/examples/mnt-hf-gpt2.automount; do
    if grep -qx "$p" "$tmp/contents"; then ok "package contains $p"; else bad "package lacks $p"; fi
done
if grep -qx "/usr/sbin/mount.fuse.hfmount -> ../bin/hf-mount-fuse" "$tmp/contents"; then
    ok "package links /usr/sbin/mount.fuse.hfmount -> ../bin/hf-mount-fuse"
else
    bad "mount helper link: $(grep mount.fuse "$tmp/contents")"
fi
if grep -q "^/usr/share/man/man8/mount.fuse.hfmount.8.gz -> hf-mount-fuse.8.gz$" "$tmp/contents"; then
    ok "package links mount.fuse.hfmount.8.gz"
else
    bad "man page link: $(grep 'mount.fuse.hfmount.8' "$tmp/contents")"
fi
# The binaries run (shared libraries resolved by ${shlibs:Depends} exist here).
dpkg-deb -x "$deb" "$tmp/root"
if "$tmp/root/usr/bin/hf-mount" --version | grep -q '^hf-mount '; then ok "packaged hf-mount runs"; else bad "packaged hf-mount does not run"; fi
if "$tmp/root/usr/bin/hf-mount-fuse" --version | grep -q '^hf-mount-fuse '; then ok "packaged hf-mount-fuse runs"; else bad "packaged hf-mount-fuse does not run"; fi

# meson install of this build: the same files, modulo prefix, man page compression and the two
# files dh adds (changelog, copyright).
DESTDIR="$tmp/meson" meson install -C "$build" --no-rebuild --quiet > "$tmp/meson-install.log" 2>&1 || {
    cat "$tmp/meson-install.log"; bad "meson install"; }
prefix=$(dirname "$(dirname "$(find "$tmp/meson" -path '*/bin/hf-mount' | head -n 1)")")
(cd "$prefix" && find . \( -type f -o -type l \) | sed 's|^\./|/usr/|; s|\.gz$||' | sort) > "$tmp/meson.list"
(cd "$tmp/root" && find ./usr \( -type f -o -type l \) | sed 's|^\.||; s|\.gz$||' |
    grep -v -e '^/usr/share/doc/hf-mount/changelog' -e '^/usr/share/doc/hf-mount/copyright' -e '^/usr/lib/debug' |
    sort) > "$tmp/deb.list"
if diff -u "$tmp/deb.list" "$tmp/meson.list" > "$tmp/diff"; then
    ok "meson install installs the package's files ($(wc -l < "$tmp/deb.list") paths)"
else
    cat "$tmp/diff"
    bad "meson install and the package differ"
fi
if [ -L "$prefix/sbin/mount.fuse.hfmount" ]; then ok "meson install creates sbin/mount.fuse.hfmount"; else bad "meson install: no sbin/mount.fuse.hfmount link"; fi
exit $fail
