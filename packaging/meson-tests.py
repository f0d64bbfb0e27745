#!/usr/bin/env python3
"""Expands a `meson test` selection into what it stands for, from meson's introspection.

    packaging/meson-tests.py BUILD_DIR names|targets [NAME | --suite SUITE]...

`names` prints the selected tests' names, one per line (meson test intersects --suite with names
given beside it, so mixing them on its command line selects nothing); `targets` prints the
ninja targets they need, the same set `meson test` rebuilds before running them. Used by
packaging/sanitize.sh and packaging/check.sh to build a selection without running it.
"""
import json
import os
import subprocess
import sys


def main(argv):
    if len(argv) < 2 or argv[1] not in ("names", "targets"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build, what, sel = argv[0], argv[1], argv[2:]
    names, suites, i = set(), set(), 0
    while i < len(sel):
        if sel[i] == "--suite":
            if i + 1 == len(sel):
                print("meson-tests.py: --suite needs a name", file=sys.stderr)
                return 2
            suites.add(sel[i + 1])
            i += 2
        else:
            names.add(sel[i])
            i += 1

    def intro(arg):
        out = subprocess.run(["meson", "introspect", build, arg], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    tests = [t for t in intro("--tests")
             if t["name"] in names or any(s.split(":")[-1] in suites for s in t["suite"])]
    if what == "names":
        print("\n".join(t["name"] for t in tests))
    else:
        files = {t["id"]: t["filename"] for t in intro("--targets")}
        out = {os.path.relpath(f, build) for t in tests for dep in t["depends"] for f in files.get(dep, [])}
        print("\n".join(sorted(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
