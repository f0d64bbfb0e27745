#!/usr/bin/env python3
"""System integration test (suite `packaging`): real FUSE mounts through every entry point.

Against a local hf-mount-hubsim it checks:
  * mount -t fuse.hfmount hf://... (the /usr/sbin/mount.fuse.hfmount helper) and umount;
  * an fstab entry in a temporary fstab (mount -T FILE DIR) carrying every fstab-only option;
  * the helper rejecting an unknown option and accepting each fstab-only option;
  * readiness: the parent's exit code and single line for a missing repo, a bad token, an
    unreachable Hub, a missing mount point, and success (the mount is usable at exit);
  * hf-mount start / status (text and --json) / stop;
  * hf-mount warm filling the cache (user.hf.cached_bytes) and the per-mount log file;
  * the control socket refusing another uid (setpriv), and another uid unable to stop the mount.

Needs root and /dev/fuse (exit 77 = skipped otherwise). Installs the helper link
/usr/sbin/mount.fuse.hfmount for the duration of the test (restoring what was there), uses its
own temporary directories and always unmounts (fusermount3 -u -z as a fallback).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("HF_BUILD_ROOT", "")
SOURCE = os.environ.get("HF_SOURCE_ROOT", "")
FUSE_BIN = os.path.join(BUILD, "cmd", "hf-mount-fuse")
CLI = os.path.join(BUILD, "cmd", "hf-mount")
HUBSIM = os.path.join(BUILD, "cmd", "hf-mount-hubsim")
DEMO = os.path.join(SOURCE, "packaging", "demo-repo.py")
HELPER = "/usr/sbin/mount.fuse.hfmount"
GOOD_TOKEN = "hf_packaging_test_good"

FSTAB_ONLY = ["nofail", "_netdev", "auto", "noauto", "user", "nouser", "users", "owner", "group", "defaults",
              "sync", "async", "x-systemd.automount", "x-systemd.idle-timeout=30min", "x-foo=bar",
              "comment=hello"]

failures = []
checks = 0


def check(cond, what, detail=""):
    global checks
    checks += 1
    if cond:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
        failures.append(what)
    return cond


def run(argv, env=None, timeout=60, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout, **kw)
    return r


def mounts():
    """(source, mountpoint, fstype, options) of every mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a = line.split()
            dash = a.index("-")
            # The kernel escapes space, tab, newline and backslash as \ooo; other bytes (UTF-8
            # names) are as they are, which unicode_escape would garble.
            unesc = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
            out.append((unesc(a[dash + 2]), unesc(a[4]), a[dash + 1], a[5]))
    return out


def mounted_at(mp):
    for src, where, fstype, opts in mounts():
        if where == mp and fstype == "fuse.hfmount":
            return src, opts
    return None


def process_running(pid):
    """Alive and not a zombie (an exited daemon whose reaper is slow still has a /proc entry)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def force_unmount(mp):
    for _ in range(3):
        if not mounted_at(mp):
            return
        subprocess.run(["umount", mp], stderr=subprocess.DEVNULL)
        if mounted_at(mp):
            subprocess.run(["fusermount3", "-u", "-z", mp], stderr=subprocess.DEVNULL)
        time.sleep(0.2)


class Hubsim:
    def __init__(self, repo_dir, tmp):
        self.log = open(os.path.join(tmp, "hubsim.log"), "w")
        self.proc = subprocess.Popen(
            [HUBSIM, "--repo", f"model:acme/tiny={repo_dir}", "--repo", f"model:acme/private={repo_dir}",
             "--private", "model:acme/private", "--token", GOOD_TOKEN],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"hubsim did not start: {line!r}")
        self.url = line.split()[-1]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("skipped: needs root and /dev/fuse")
        return 77
    for b in (FUSE_BIN, CLI, HUBSIM, DEMO):
        if not os.path.exists(b):
            print(f"missing {b}")
            return 1
    for tool in ("mount", "umount", "setpriv", "fusermount3"):
        if not shutil.which(tool):
            print(f"skipped: {tool} not installed")
            return 77

    tmp = tempfile.mkdtemp(prefix="hf-pkg-test-")
    os.chmod(tmp, 0o755)
    mps = []

    def mountpoint(name):
        p = os.path.join(tmp, name)
        os.mkdir(p)
        mps.append(p)
        return p

    repo = os.path.join(tmp, "repo")
    subprocess.run([sys.executable, DEMO, "make", repo, "--small"], check=True, stdout=subprocess.DEVNULL)
    sizes = {n: os.path.getsize(os.path.join(repo, n)) for n in os.listdir(repo)}

    # The helper link, as the package installs it; whatever was there comes back afterwards.
    backup = None
    if os.path.lexists(HELPER):
        backup = HELPER + ".hf-test-backup"
        os.rename(HELPER, backup)
    os.symlink(FUSE_BIN, HELPER)

    hub = None
    try:
        hub = Hubsim(repo, tmp)
        cache = os.path.join(tmp, "cache")
        common = f"endpoint={hub.url},cache_dir={cache}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env["HOME"] = tmp  # no stray token from the invoking user

        # --- mount -t fuse.hfmount / umount -------------------------------------------------
        mp = mountpoint("m1")
        t0 = time.monotonic()
        r = run(["mount", "-t", "fuse.hfmount", "hf://acme/tiny", mp, "-o", f"ro,{common}"], env=env)
        check(r.returncode == 0, "mount -t fuse.hfmount exits 0", r.stderr)
        # Readiness: usable the moment mount(8) returns.
        check(sorted(os.listdir(mp)) == sorted(sizes), "listing right after mount(8) returned", str(os.listdir(mp)))
        m = mounted_at(mp)
        check(m is not None and m[0] == "hf://acme/tiny", "/proc/mounts shows hf://acme/tiny fuse.hfmount", str(m))
        check(m is not None and "nosuid" in m[1] and "nodev" in m[1], "nosuid,nodev forced", str(m))
        with open(os.path.join(mp, "config.json"), "rb") as f, open(os.path.join(repo, "config.json"), "rb") as g:
            check(f.read() == g.read(), "config.json read through the mount matches")
        r = run(["umount", mp])
        check(r.returncode == 0 and mounted_at(mp) is None, "umount", r.stderr)
        print(f"      (mount + listing + umount: {time.monotonic() - t0:.2f} s)")

        # --- fstab entry with every fstab-only option ---------------------------------------
        mp = mountpoint("fstab dir")  # a space: escaped as \040 in fstab
        fstab = os.path.join(tmp, "fstab")
        opts = ",".join(["ro"] + [o for o in FSTAB_ONLY if o not in ("noauto", "auto")] + ["noauto", common])
        with open(fstab, "w") as f:
            f.write(f"hf://acme/tiny {mp.replace(' ', chr(92) + '040')} fuse.hfmount {opts} 0 0\n")
        r = run(["mount", "-T", fstab, mp], env=env)
        check(r.returncode == 0, "mount -T FSTAB DIR with every fstab-only option", r.stderr)
        check(mounted_at(mp) is not None and os.path.exists(os.path.join(mp, "model.safetensors")),
              "fstab mount is usable", str(mounted_at(mp)))
        r = run(["umount", mp])
        check(r.returncode == 0 and mounted_at(mp) is None, "umount of the fstab mount", r.stderr)

        # --- relative mount point and cache_dir: relative to where the command ran (the daemon
        # chdirs to / before it opens the cache) -------------------------------------------------
        mp = mountpoint("rel")
        r = run([FUSE_BIN, "hf://acme/tiny", "rel", "-o", f"endpoint={hub.url},cache_dir=relcache"], env=env, cwd=tmp)
        check(r.returncode == 0 and mounted_at(mp) is not None, "daemon mount with a relative mount point and cache_dir",
              r.stderr)
        check(os.path.isdir(os.path.join(tmp, "relcache")) and not os.path.exists("/relcache"),
              "relative cache_dir created under the invoking directory", str(os.listdir(tmp)))
        force_unmount(mp)

        # --- the helper itself: unknown option refused, each fstab-only option accepted ------
        r = run(["mount", "-t", "fuse.hfmount", "hf://acme/tiny", mp, "-o", f"frobnicate=1,{common}"], env=env)
        check(r.returncode == 1 and "frobnicate" in r.stderr and mounted_at(mp) is None,
              "helper rejects an unknown option (exit 1, names it)", f"{r.returncode} {r.stderr!r}")
        for o in FSTAB_ONLY:
            r = run([HELPER, "hf://acme/tiny", mp, "-f", "-v", "-o", f"{o},{common}"], env={})
            check(r.returncode == 0, f"helper accepts fstab option {o}", r.stderr)
        r = run([HELPER, "hf://acme/tiny", mp, "-s", "-n", "-v", "-o", ",".join(FSTAB_ONLY + [common])], env={})
        check(r.returncode == 0 and mounted_at(mp) is not None, "helper mounts with all of them, empty environment",
              r.stderr)
        force_unmount(mp)

        # --- readiness: exit codes and one clear line ---------------------------------------
        def expect_fail(args, code, fragment, what):
            r = run([FUSE_BIN] + args, env=env)
            lines = [l for l in r.stderr.splitlines() if l.startswith("hf-mount-fuse:")]
            check(r.returncode == code and any(fragment in l for l in lines) and mounted_at(args[1]) is None,
                  f"readiness: {what} -> exit {code}", f"got {r.returncode}: {r.stderr!r}")

        mp = mountpoint("m2")
        expect_fail(["hf://acme/missing", mp, "-o", common], 3, "not found", "missing repo")
        tokfile = os.path.join(tmp, "bad.token")
        with open(tokfile, "w") as f:
            f.write("hf_wrong_token\n")
        os.chmod(tokfile, 0o600)
        expect_fail(["hf://acme/private", mp, "-o", f"{common},token_file={tokfile}"], 2, "", "bad token")
        expect_fail(["hf://acme/tiny", mp, "-o", f"endpoint=http://127.0.0.1:1,cache_dir={cache}"], 4, "",
                    "unreachable Hub")
        expect_fail(["hf://acme/tiny", os.path.join(tmp, "nonexistent"), "-o", common], 5, "mount point",
                    "missing mount point")
        goodtok = os.path.join(tmp, "good.token")
        with open(goodtok, "w") as f:
            f.write(GOOD_TOKEN + "\n")
        os.chmod(goodtok, 0o600)
        r = run([FUSE_BIN, "hf://acme/private", mp, "-o", f"{common},token_file={goodtok}"], env=env)
        check(r.returncode == 0 and os.path.getsize(os.path.join(mp, "model.safetensors")) == sizes["model.safetensors"],
              "readiness: success -> exit 0 and the mount is usable", r.stderr)
        force_unmount(mp)

        # --- foreground service mode: sd_notify READY=1, then STOPPING=1 at unmount ---------
        mp = mountpoint("svc")
        sock_path = os.path.join(tmp, "notify.sock")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        ns.settimeout(20)
        proc = subprocess.Popen([FUSE_BIN, "-f", "hf://acme/tiny", mp, "-o", common],
                                env=dict(env, NOTIFY_SOCKET=sock_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            msg = ns.recv(4096).decode()
            check("READY=1" in msg.split("\n") and "STATUS=Serving hf://acme/tiny" in msg and mounted_at(mp),
                  "-f with NOTIFY_SOCKET: READY=1 once mounted", msg)
            check(f"MAINPID={proc.pid}" in msg, "READY carries MAINPID", msg)
            run(["umount", mp])
            msg = ns.recv(4096).decode()
            check("STOPPING=1" in msg.split("\n"), "STOPPING=1 at unmount", msg)
            check(proc.wait(20) == 0, "the foreground mount exits 0 after umount")
        except socket.timeout:
            check(False, "sd_notify messages arrive", proc.stderr.read() if proc.poll() is not None else "")
        finally:
            if proc.poll() is None:
                force_unmount(mp)
                proc.kill()
            ns.close()

        # --- hf-mount start / status / warm / stop ------------------------------------------
        mp = mountpoint("m3")
        logf = os.path.join(tmp, "m3.log")
        r = run([CLI, "start", "repo", "acme/tiny", mp, "--hub-endpoint", hub.url, "--cache-dir", cache,
                 "--log-file", logf, "--advanced-writes"], env=env)
        check(r.returncode == 0 and mounted_at(mp) is not None, "hf-mount start", r.stderr)
        check("--advanced-writes has no effect here" in r.stderr, "incumbent flag accepted with a note", r.stderr)
        check(os.path.exists(logf) and "acme/tiny" in open(logf).read(), "per-mount log file written", logf)
        r = run([CLI, "start", "repo", "acme/tiny", mp, "--hub-endpoint", hub.url], env=env)
        check(r.returncode == 5 and "already" in r.stderr, "hf-mount start refuses a mounted mount point", r.stderr)

        r = run([CLI, "status"], env=env)
        check(r.returncode == 0 and f"hf://acme/tiny on {mp}" in r.stdout and "revision   main @" in r.stdout
              and "  memory     " in r.stdout and " resident: heap " in r.stdout,
              "hf-mount status (text)", r.stdout + r.stderr)
        r = run([CLI, "status", "--json"], env=env)
        doc = json.loads(r.stdout) if r.returncode == 0 else {}
        entry = next((e for e in doc.get("mounts", []) if e["mountpoint"] == mp), None)
        check(entry is not None and entry["reachable"] and entry["status"]["revision"] == "main"
              and len(entry["status"]["commit"]) == 40 and entry["status"]["pid"] > 0
              and entry["status"]["source"] == "hf://acme/tiny",
              "hf-mount status --json", r.stdout + r.stderr)
        st = entry["status"] if entry else {}
        # The daemon's own /proc/PID/statm agrees with the resident size it reports (within 16 MiB).
        statm = open(f"/proc/{st.get('pid', 0)}/statm").read().split() if st.get("pid") else ["0", "0"]
        resident = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
        check(st.get("rss_bytes", 0) > 0 and abs(st["rss_bytes"] - resident) < (16 << 20)
              and 0 < st.get("heap_in_use_bytes", 0) < st["rss_bytes"] and "db_memory_bytes" in st,
              "hf-mount status --json reports the daemon's memory", json.dumps(st))

        model = os.path.join(mp, "model.safetensors")
        before = int(os.getxattr(model, "user.hf.cached_bytes"))
        check(before == 0, "nothing cached before warm", str(before))
        r = run([CLI, "warm", model], env=env, timeout=120)
        after = int(os.getxattr(model, "user.hf.cached_bytes"))
        check(r.returncode == 0 and "warmed" in r.stdout, "hf-mount warm", r.stdout + r.stderr)
        check(after == sizes["model.safetensors"], "warm filled the cache (user.hf.cached_bytes = size)",
              f"{after} of {sizes['model.safetensors']}")
        r = run([CLI, "warm", os.path.join(tmp, "repo")], env=env)
        check(r.returncode == 5, "warm outside a mount is refused", r.stderr)

        # --- hf-mount cache info / prune / clean on the cache the mount uses -----------------
        r = run([CLI, "cache", "info", "--cache-dir", cache, "--json"], env=env)
        info = json.loads(r.stdout) if r.returncode == 0 else {}
        check(info.get("chunk_bytes", 0) >= sizes["model.safetensors"] and mp in info.get("mounts", []),
              "hf-mount cache info: the warmed bytes, used by the mount", r.stdout + r.stderr)
        r = run([CLI, "cache", "prune", "--cache-dir", cache, "--max-size", "1M", "--json"], env=env)
        pr = json.loads(r.stdout) if r.returncode == 0 else {}
        check(pr.get("chunk_bytes_after", 1 << 40) <= (1 << 20) and pr.get("freed_bytes", 0) > 0,
              "hf-mount cache prune --max-size 1M", r.stdout + r.stderr)
        r = run([CLI, "cache", "clean", "--cache-dir", cache, "--json"], env=env)
        cl = json.loads(r.stdout) if r.returncode == 0 else {}
        check(cl.get("chunk_bytes_after", 1) == 0, "hf-mount cache clean", r.stdout + r.stderr)
        with open(model, "rb") as f, open(os.path.join(repo, "model.safetensors"), "rb") as g:
            check(f.read() == g.read(), "the mount still reads correctly after cache clean")

        # --- another uid: no control channel, no stop ---------------------------------------
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        r = run(nobody + [CLI, "status", "--json", mp], env=env)
        doc = json.loads(r.stdout) if r.stdout.strip() else {}
        e = (doc.get("mounts") or [{}])[0]
        check(e.get("reachable") is False and e.get("errc") == "permission_denied",
              "control socket refuses another uid", r.stdout + r.stderr)
        r = run(nobody + [CLI, "stop", mp], env=env)
        check(r.returncode != 0 and mounted_at(mp) is not None, "another uid cannot stop the mount",
              r.stdout + r.stderr)

        r = run([CLI, "stop", mp], env=env)
        check(r.returncode == 0 and mounted_at(mp) is None and "unmounted" in r.stdout, "hf-mount stop", r.stderr)
        pid = entry["status"]["pid"] if entry else 0
        check(pid > 0 and not process_running(pid), "the mount process exited", str(pid))
        r = run([CLI, "stop", mp], env=env)
        check(r.returncode == 5, "stop of a non-mount fails with exit 5", r.stderr)

        # stop --all after two starts; only when no other hfmount mount exists (on a shared
        # machine, --all would also stop other people's mounts).
        foreign = [m for m in mounts() if m[2] == "fuse.hfmount" and not m[1].startswith(tmp)]
        if foreign:
            print(f"note  hf-mount stop --all not tried: other hfmount mounts exist ({foreign[0][1]} ...)")
        else:
            a, b = mountpoint("all-a"), mountpoint("all-b")
            for d in (a, b):
                run([CLI, "start", "hf://acme/tiny", d, "--hub-endpoint", hub.url, "--cache-dir", cache], env=env)
            r = run([CLI, "stop", "--all"], env=env)
            check(r.returncode == 0 and mounted_at(a) is None and mounted_at(b) is None, "hf-mount stop --all",
                  r.stdout + r.stderr)
    except Exception:
        traceback.print_exc()
        failures.append("exception")
    finally:
        for mp in mps:
            force_unmount(mp)
        if hub:
            hub.stop()
        if os.path.islink(HELPER) and os.readlink(HELPER) == FUSE_BIN:
            os.unlink(HELPER)
        if backup:
            os.rename(backup, HELPER)
        leftovers = [p for p in mps if mounted_at(p)]
        if leftovers:
            failures.append(f"leftover mounts {leftovers}")
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # meson's timeout: still clean up
    sys.exit(main())
