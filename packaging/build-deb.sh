#!/bin/sh
# Builds the Debian binary package without touching the source tree: exports the tree (tracked
# and new files, minus what .gitignore excludes, such as build directories) into a temporary
# directory, copies packaging/debian to ./debian there, and runs dpkg-buildpackage -us -uc -b.
# The .deb files, .changes and .buildinfo are copied to OUTDIR (default: ./build-deb).
#
#   packaging/build-deb.sh [OUTDIR]
#   DEB_BUILD_OPTIONS="nocheck parallel=2" packaging/build-deb.sh     # faster: no unit tests
#
# Needs the packaging toolchain: packaging/install-deps.sh --package
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-deb}
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac

for tool in dpkg-buildpackage dpkg-parsechangelog dh fakeroot; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-deb.sh: $tool not found; run packaging/install-deps.sh --package" >&2
        exit 1
    }
done

version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
work=$(mktemp -d "${TMPDIR:-/tmp}/hf-mount-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
tree="$work/hf-mount-$version"
mkdir -p "$tree"

if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    # Files that exist (a tracked file may have been deleted in the working tree).
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf -) | tar -C "$tree" -xf -
else
    tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./debian -cf - . | tar -C "$tree" -xf -
fi
rm -rf "$tree/debian"
cp -r "$src/packaging/debian" "$tree/debian"

echo "build-deb.sh: building hf-mount $version in $tree (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
(cd "$tree" && dpkg-buildpackage -us -uc -b)

mkdir -p "$out"
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/
echo "build-deb.sh: packages in $out:"
ls -1 "$out"/*.deb
