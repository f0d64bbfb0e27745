"""Servers of the benchmark suite: the project's Hub/CAS emulator (for our filesystem), nginx
serving the same bytes as plain files (for the peers), and an optional network namespace with a
tc tbf bandwidth cap (WAN profiles; netem is not available on this kernel)."""
import json, os, shutil, subprocess, time, urllib.error, urllib.request

from benchlib import Proc, cleanup, free_port, http_json, log, run


class Hubsim:
    """hf-mount-hubsim as a subprocess. `netns` runs it inside a namespace listening on `host`."""

    def __init__(self, build, workdir, args, host="127.0.0.1", netns=None, cpus=None, timeout=600):
        self.bin = os.path.join(build, "cmd", "hf-mount-hubsim")
        port = free_port()
        os.makedirs(workdir, exist_ok=True)
        self.out_path = os.path.join(workdir, f"hubsim-{port}.out")
        self.err_path = os.path.join(workdir, f"hubsim-{port}.err")
        cmd = [self.bin, "--listen", f"{host}:{port}", "--threads", "2"] + list(args)
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        t0 = time.monotonic()
        self.proc = Proc("hubsim", cmd, stdout=open(self.out_path, "wb"), stderr=open(self.err_path, "wb"), cpus=cpus)
        while True:
            line = open(self.out_path).readline().strip()
            if line.startswith("listening on "):
                self.url = line[len("listening on "):]
                break
            if not self.proc.alive():
                raise RuntimeError("hubsim exited: " + open(self.err_path).read()[-800:])
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("hubsim did not start in time")
            time.sleep(0.05)
        self.start_s = time.monotonic() - t0
        log(f"hubsim ready at {self.url} in {self.start_s:.1f} s")

    def stats(self):
        s = http_json(self.url + "/_sim/stats")
        # The suite's own control requests are not the filesystem's.
        sim_req = s["requests"].get("sim", 0)
        sim_bytes = s["bytes"].get("sim", 0)
        return {
            "requests": s["requests_total"] - sim_req,
            "bytes_out": s["bytes_out_total"] - sim_bytes,
            "bytes_in": sum(v for k, v in s["bytes_in"].items() if k != "sim"),
            "routes": {k: v for k, v in s["requests"].items() if k != "sim"},
            "bytes_in_routes": {k: v for k, v in s["bytes_in"].items() if k != "sim"},
        }

    def reset_stats(self):
        http_json(self.url + "/_sim/stats/reset", data=b"", method="POST")

    def set_knobs(self, **k):
        return http_json(self.url + "/_sim/config", data=json.dumps(k).encode(), method="POST")

    def knobs(self):
        return http_json(self.url + "/_sim/config")

    def largest_xorb_range(self, repo, name):
        """(presigned URL, first byte, last byte) of the largest xorb range of a model file's
        reconstruction: what the CAS serves to a reader, the emulator-vs-nginx comparison's subject."""
        head = urllib.request.Request(f"{self.url}/{repo}/resolve/main/{name}", method="HEAD")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            r = opener.open(head, timeout=30)
            xet_hash = r.headers["X-Xet-Hash"]
        except urllib.error.HTTPError as e:  # the 302 to the CAS carries the header
            xet_hash = e.headers["X-Xet-Hash"]
        token = http_json(f"{self.url}/api/models/{repo}/xet-read-token/main")["accessToken"]
        req = urllib.request.Request(f"{self.url}/cas/v2/reconstructions/{xet_hash}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            recon = json.loads(r.read())
        fetch = max((e for v in recon["xorbs"].values() for e in v),
                    key=lambda e: e["ranges"][0]["bytes"]["end"] - e["ranges"][0]["bytes"]["start"])
        b = fetch["ranges"][0]["bytes"]
        return fetch["url"], b["start"], b["end"]

    def repo_sha(self, kind, repo):
        return http_json(f"{self.url}/api/{kind}s/{repo}")["sha"]

    def stop(self):
        self.proc.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class Delta:
    """Server-side counters over a block: `with Delta(hub) as d: ...; d.value`."""

    def __init__(self, hub, reset=True):
        self.hub = hub
        self.reset = reset
        self.value = None

    def __enter__(self):
        if self.reset:
            self.hub.reset_stats()
        self.before = self.hub.stats()
        return self

    def __exit__(self, *a):
        after = self.hub.stats()
        b = self.before
        self.value = {
            "requests": after["requests"] - b["requests"],
            "bytes_out": after["bytes_out"] - b["bytes_out"],
            "bytes_in": after["bytes_in"] - b["bytes_in"],
            "routes": {k: v - b["routes"].get(k, 0) for k, v in after["routes"].items() if v - b["routes"].get(k, 0)},
            "bytes_in_routes": {k: v - b["bytes_in_routes"].get(k, 0) for k, v in after["bytes_in_routes"].items()
                                if v - b["bytes_in_routes"].get(k, 0)},
        }
        return False


class Nginx:
    """nginx-light serving `root` (autoindex for rclone's http backend, /bkt/ alias for s3fs)."""

    def __init__(self, workdir, root, host="127.0.0.1", netns=None, cpus=None):
        if not shutil.which("nginx"):
            raise RuntimeError("nginx not installed (packaging/install-deps.sh --bench)")
        port = free_port()
        d = os.path.join(workdir, f"nginx-{port}")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 2;
error_log {d}/error.log;
pid {d}/nginx.pid;
user root;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 60;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    server {{
        listen {host}:{port};
        root {root};
        location / {{ autoindex on; }}
        location /bkt/ {{ alias {root}/; }}
        # s3fs checks the service with a bucket listing: an empty ListBucketResult satisfies it
        # (it then reaches files through HEAD/GET of their paths).
        location = /bkt/ {{
            default_type application/xml;
            return 200 '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>';
        }}
    }}
}}
""")
        cmd = ["nginx", "-c", conf, "-p", d]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = Proc("nginx", cmd, cpus=cpus)
        self.url = f"http://{host}:{port}"
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    r.read()
                break
            except OSError:
                if not self.proc.alive() or time.monotonic() - t0 > 20:
                    raise RuntimeError("nginx did not start: " + (open(f"{d}/error.log").read()[-500:] if os.path.exists(f"{d}/error.log") else ""))
                time.sleep(0.05)

    def stop(self):
        self.proc.stop()


class Netns:
    """A network namespace `name` reached through a veth pair 10.199.<n>.1 <-> 10.199.<n>.2, with
    a tbf qdisc on both ends (`rate`, e.g. "800mbit"). Never touches `lo`."""

    def __init__(self, name="hfbench", subnet=199, rate=None):
        self.name = name
        self.host_if, self.ns_if = f"{name[:8]}h0", f"{name[:8]}s0"
        self.host_ip, self.ns_ip = f"10.{subnet}.0.1", f"10.{subnet}.0.2"
        self._teardown()
        cleanup().add(f"netns {name}", self._teardown)
        run(["ip", "netns", "add", name])
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
        run(["ip", "link", "set", self.ns_if, "netns", name])
        run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        ns = ["ip", "netns", "exec", name]
        run(ns + ["ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
        run(ns + ["ip", "link", "set", self.ns_if, "up"])
        run(ns + ["ip", "link", "set", "lo", "up"])
        if rate:
            tbf = ["tbf", "rate", rate, "burst", "512kb", "latency", "20ms"]
            run(["tc", "qdisc", "add", "dev", self.host_if, "root"] + tbf)
            run(ns + ["tc", "qdisc", "add", "dev", self.ns_if, "root"] + tbf)
        self.rate = rate

    def _teardown(self):
        subprocess.run(["tc", "qdisc", "del", "dev", self.host_if, "root"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def close(self):
        self._teardown()


def netns_available():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        return False
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    return r.returncode == 0
