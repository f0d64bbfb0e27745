"""Infrastructure of the benchmark suite: processes, mounts, servers, namespaces, statistics.

Everything started here is registered with a Cleanup object and torn down in reverse order on
exit, on an exception and on SIGINT/SIGTERM: mounts are unmounted (lazily if busy), processes are
terminated by pid (then killed), network namespaces and tc qdiscs are deleted.
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, time, urllib.request

MIB = 1 << 20
GIB = 1 << 30


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Cleanup:
    def __init__(self):
        self.actions = []  # (name, fn), run in reverse order
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def add(self, name, fn):
        self.actions.append((name, fn))
        return fn

    def remove(self, fn):
        self.actions = [(n, f) for (n, f) in self.actions if f is not fn]

    def run_all(self):
        while self.actions:
            name, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log(f"cleanup of {name} failed: {e}")

    def _on_signal(self, signum, frame):
        log(f"signal {signum}: cleaning up")
        self.run_all()
        sys.exit(128 + signum)


CLEANUP = None


def cleanup():
    global CLEANUP
    if CLEANUP is None:
        CLEANUP = Cleanup()
    return CLEANUP


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(cmd, check=True, timeout=600, env=None, capture=True, **kw):
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, env=env, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}: {(r.stderr or '')[-600:]}")
    return r


def timed(cmd, **kw):
    """Runs cmd; returns (seconds, CompletedProcess)."""
    t0 = time.monotonic()
    r = run(cmd, **kw)
    return time.monotonic() - t0, r


class Proc:
    """A child process stopped by pid at cleanup (SIGTERM, then SIGKILL)."""

    def __init__(self, name, cmd, stdout=None, stderr=None, env=None, cpus=None):
        self.name = name
        if cpus is not None:
            cmd = ["taskset", "-c", cpus] + list(cmd)
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdout=stdout or subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL,
                                  env=env, start_new_session=True)
        self.pid = self.p.pid
        self._fn = cleanup().add(f"process {name}", self.stop)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        if self.p.poll() is None:
            try:
                self.p.terminate()
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        cleanup().remove(self._fn)
        return self.p.returncode

    def cpu_seconds(self):
        """utime+stime of the process (all threads), from /proc; None once it exited."""
        try:
            f = open(f"/proc/{self.pid}/stat").read()
        except OSError:
            return None
        fields = f[f.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_kib(self, key):
        try:
            for line in open(f"/proc/{self.pid}/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # The kernel escapes space, tab, newline and backslash as \ooo.
            where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if where == path:
                return True
    return False


def wait_mounted(path, proc, timeout=120):
    """Polls mountinfo until `path` is mounted; returns the seconds waited."""
    t0 = time.monotonic()
    while not is_mounted(path):
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.p.returncode}) before mounting {path}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{path} not mounted after {timeout} s")
        time.sleep(0.0005)
    return time.monotonic() - t0


def unmount(path):
    if not is_mounted(path):
        return
    for args in (["-u"], ["-u", "-z"]):
        for tool in ("fusermount3", "fusermount"):
            if shutil.which(tool) and subprocess.run([tool] + args + [path], capture_output=True).returncode == 0:
                return
    subprocess.run(["umount", "-l", path], capture_output=True)


class FuseMount:
    """A FUSE daemon in the foreground serving one mount point (ours or a peer)."""

    def __init__(self, name, cmd, mnt, log_path, env=None, cpus=None, timeout=180):
        os.makedirs(mnt, exist_ok=True)
        unmount(mnt)
        self.mnt = mnt
        self.name = name
        self.t_start = time.monotonic()
        self.logf = open(log_path, "ab")
        self.proc = Proc(name, cmd, stdout=self.logf, stderr=self.logf, env=env, cpus=cpus)
        self._fn = cleanup().add(f"mount {mnt}", lambda: unmount(mnt))
        self.mount_s = wait_mounted(mnt, self.proc, timeout)
        self.t_ready = time.monotonic()
        self.cpu0 = 0.0

    def __truediv__(self, rel):
        return os.path.join(self.mnt, rel)

    def cpu(self):
        return self.proc.cpu_seconds() or 0.0

    def peak_rss_mib(self):
        v = self.proc.status_kib("VmHWM")
        return v / 1024 if v else None

    def rss_mib(self):
        v = self.proc.status_kib("VmRSS")
        return v / 1024 if v else None

    def close(self):
        unmount(self.mnt)
        t0 = time.monotonic()
        while self.proc.alive() and time.monotonic() - t0 < 20:
            time.sleep(0.02)
        self.proc.stop()
        cleanup().remove(self._fn)
        self.logf.close()


def http_json(url, data=None, method=None, timeout=30):
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def summarize(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def drop_file_cache(path):
    """Evicts one file's pages from the page cache (POSIX_FADV_DONTNEED), for a local file."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except OSError:
        pass


def warm_file(path):
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


def fio(args, cpus=None, timeout=600):
    cmd = ["fio", "--output-format=json", "--name=j"] + args
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    r = run(cmd, timeout=timeout)
    d = json.loads(r.stdout[r.stdout.index("{"):])
    jobs = d["jobs"]
    rd = [j["read"] for j in jobs]
    iops = sum(x["iops"] for x in rd)
    bw = sum(x["bw_bytes"] for x in rd)
    lat = [x["clat_ns"] for x in rd]
    mean_us = statistics.mean(l["mean"] for l in lat) / 1e3
    p99 = [l.get("percentile", {}).get("99.000000") for l in lat]
    p99 = [x for x in p99 if x]
    return {"iops": iops, "mb_s": bw / 1e6, "lat_mean_us": mean_us, "lat_p99_us": (max(p99) / 1e3) if p99 else None}


def machine_info():
    info = {}
    def rd(p):
        try:
            return open(p).read().strip()
        except OSError:
            return None
    info["date_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    info["kernel"] = os.uname().release
    for line in (rd("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
            break
    info["cpus"] = os.cpu_count()
    mem = (rd("/proc/meminfo") or "").split("\n")[0].split()
    info["mem_gib"] = round(int(mem[1]) / 1024 / 1024, 1) if len(mem) > 1 else None
    info["loadavg_start"] = " ".join((rd("/proc/loadavg") or "").split()[:3])
    info["fuse_max_pages_limit"] = rd("/proc/sys/fs/fuse/max_pages_limit")
    info["fuse_enable_uring"] = rd("/sys/module/fuse/parameters/enable_uring")
    r = subprocess.run(["pkg-config", "--modversion", "fuse3"], capture_output=True, text=True)
    info["libfuse"] = r.stdout.strip()
    vers = {}
    for tool, args in (("rclone", ["version"]), ("s3fs", ["--version"]), ("nginx", ["-v"]), ("curl", ["--version"]),
                       ("fio", ["--version"]), ("valgrind", ["--version"])):
        if shutil.which(tool):
            r = subprocess.run([tool] + args, capture_output=True, text=True)
            out = (r.stdout or r.stderr).strip().splitlines()
            vers[tool] = out[0][:80] if out else "?"
    info["tools"] = vers
    return info
