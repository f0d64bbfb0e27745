#!/usr/bin/env python3
"""Man pages match the programs' --help (suite `packaging`).

Every option, flag, exit code and environment variable that a program's --help lists must
appear in its man page, and every page must render without groff warnings. Runs as any user.
"""
import os
import re
import subprocess
import sys

BUILD = os.environ["HF_BUILD_ROOT"]
SOURCE = os.environ["HF_SOURCE_ROOT"]
failures = []


def check(cond, what, detail=""):
    print(("ok    " if cond else "FAIL  ") + what + ("" if cond or not detail else f": {detail}"))
    if not cond:
        failures.append(what)


def help_text(*argv):
    r = subprocess.run([os.path.join(BUILD, "cmd", argv[0])] + list(argv[1:]), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.stdout


def man_text(page):
    """The page source with troff font escapes and \\- removed: plain words to search in."""
    with open(os.path.join(SOURCE, "doc", page)) as f:
        s = f.read()
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\(em", "-")
    return s


def section(text, title):
    """Lines of `text` from the line starting with `title` to the next all-caps heading."""
    out, on = [], False
    for line in text.splitlines():
        if line.startswith(title):
            on = True
            continue
        if on and re.match(r"^[A-Z][A-Z ()/-]+$", line.split("(")[0].strip() or "x") and not line.startswith(" "):
            break
        if on:
            out.append(line)
    return out


def check_fuse():
    h = help_text("hf-mount-fuse", "--help")
    man = man_text("hf-mount-fuse.8")
    opts = set()
    for line in section(h, "OPTIONS"):
        if not line.startswith("  ") or line.startswith("   "):
            continue  # continuation lines of a description
        column = re.split(r"\s{2,}", line[2:])[0]  # the option column ends at a run of spaces
        for m in re.finditer(r"(?:^|, |/ )([a-z_][a-z_]*)", column):
            opts.add(m.group(1))
    check(len(opts) >= 20, f"hf-mount-fuse --help lists options ({len(opts)})", str(sorted(opts)))
    for o in sorted(opts):
        check(o in man, f"hf-mount-fuse.8 documents option {o}")
    for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", "\n".join(section(h, "FLAGS"))):
        check(flag in man, f"hf-mount-fuse.8 documents flag {flag}")
    env = set(re.findall(r"\b([A-Z][A-Z0-9_]{3,})\b", "\n".join(section(h, "ENVIRONMENT"))))
    check(len(env) >= 10, f"hf-mount-fuse --help lists environment variables ({len(env)})")
    for v in sorted(env):
        check(v in man, f"hf-mount-fuse.8 documents {v}")
    codes = re.findall(r"\b(\d+) [a-z]", "\n".join(section(h, "EXIT STATUS")))
    check(set(codes) >= {"0", "1", "2", "3", "4", "5", "6", "32"}, "hf-mount-fuse --help lists the exit codes", str(codes))
    man_exit = "\n".join(section(man, ".SH EXIT STATUS"))
    for c in codes:
        check(f".B {c}\n" in man_exit + "\n", f"hf-mount-fuse.8 documents exit code {c}")
    # The helper name is documented on the same page (mount.fuse.hfmount.8 links to it).
    check("mount.fuse.hfmount" in man.split(".SH SYNOPSIS")[0], "hf-mount-fuse.8 NAME covers mount.fuse.hfmount")
    for o in ("nofail", "_netdev", "x-*", "comment="):
        check(o in man, f"hf-mount-fuse.8 documents fstab option {o}")


def check_cli():
    man = man_text("hf-mount.1")
    texts = [help_text("hf-mount", "--help")] + [help_text("hf-mount", "help", c)
                                                 for c in ("start", "stop", "status", "warm", "cache")]
    flags = set()
    for t in texts:
        flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*[a-z])", t))
    check(len(flags) >= 30, f"hf-mount help texts list flags ({len(flags)})")
    for f in sorted(flags):
        check(f in man, f"hf-mount.1 documents {f}")
    for cmd in ("start", "stop", "status", "warm", "cache info", "clean", "prune"):
        check(cmd in man, f"hf-mount.1 documents '{cmd}'")
    for v in set(re.findall(r"\b(HF_[A-Z_]+|XDG_[A-Z_]+)\b", texts[0])):
        check(v in man, f"hf-mount.1 documents {v}")
    codes = re.findall(r"\b(\d+) [a-z]", "\n".join(section(texts[0], "EXIT STATUS")))
    man_exit = "\n".join(section(man, ".SH EXIT STATUS"))
    check(len(codes) >= 8, "hf-mount --help lists the exit codes", str(codes))
    for c in codes:
        check(f".B {c}\n" in man_exit + "\n", f"hf-mount.1 documents exit code {c}")


def check_tools():
    for prog, page in (("hf-mount-hubsim", "hf-mount-hubsim.1"), ("hf-mount-xet", "hf-mount-xet.1")):
        h = help_text(prog, "--help")
        man = man_text(page)
        flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])", h))
        check(len(flags) >= 3, f"{prog} --help lists flags ({len(flags)})")
        for f in sorted(flags):
            check(f in man, f"{page} documents {f}")
        for cmd in re.findall(r"^  ([a-z][a-z-]+) ", h, re.M) if prog == "hf-mount-xet" else []:
            check(cmd in man, f"{page} documents command {cmd}")


def check_render():
    for page in ("hf-mount.1", "hf-mount-fuse.8", "hf-mount-hubsim.1", "hf-mount-xet.1"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(SOURCE, "doc", page)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check(r.returncode == 0 and r.stderr.strip() == "", f"{page} renders without warnings", r.stderr)


def main():
    check_fuse()
    check_cli()
    check_tools()
    if subprocess.run(["sh", "-c", "command -v groff"], stdout=subprocess.DEVNULL).returncode == 0:
        check_render()
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
