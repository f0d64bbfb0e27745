#!/usr/bin/env python3
"""HTTP client benchmark: hf::http::Client vs curl on the same loopback server, same run.

Downloads SIZE bytes (default 1 GiB) from an in-memory loopback server as 1, 4 and 16
concurrent range streams, over HTTP and HTTPS. Each configuration is run REPEAT times,
alternating ours/curl, and the median is reported. Ratios are ours/curl throughput; CPU is
user+sys seconds per GiB of the downloading process(es) (the server runs in its own process).

usage: run_bench.py [--build DIR] [--size BYTES] [--streams 1,4,16] [--repeat 3] [--json OUT]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

def run_timed(cmds):
    """Starts every command in parallel; returns (wall seconds, cpu seconds, exit codes)."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    cpu, codes, outs = 0.0, [], []
    pending = {p.pid: p for p in procs}
    while pending:
        pid, status, ru = os.wait4(-1, 0)
        if pid not in pending:
            continue
        p = pending.pop(pid)
        cpu += ru.ru_utime + ru.ru_stime
        codes.append(os.waitstatus_to_exitcode(status))
    wall = time.monotonic() - t0
    for p in procs:
        out, err = p.stdout.read(), p.stderr.read()
        outs.append((out.decode(errors="replace"), err.decode(errors="replace")))
    return wall, cpu, codes, outs

def make_cert(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key

def main():
    ap = argparse.ArgumentParser()
    src = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(src, "..", "..", ".."))
    ap.add_argument("--build", default=os.path.join(root, "build-http"))
    ap.add_argument("--size", type=int, default=1 << 30)
    ap.add_argument("--streams", default="1,4,16")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--io-threads", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    server = os.path.join(a.build, "test", "bench", "http", "hf-http-bench-server")
    client = os.path.join(a.build, "test", "bench", "http", "hf-http-bench-client")
    for f in (server, client):
        if not os.path.exists(f):
            sys.exit(f"missing {f}: ninja -C {a.build} test/bench/http/hf-http-bench-server test/bench/http/hf-http-bench-client")
    if not shutil.which("curl"):
        sys.exit("curl not found")
    tmp = tempfile.mkdtemp(prefix="hf-http-bench-")
    crt, key = make_cert(tmp)
    import socket
    def free_port():
        s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
    port, tport = free_port(), free_port()
    srv = subprocess.Popen([server, "--size", str(a.size), "--port", str(port), "--tls-port", str(tport),
                            "--cert", crt, "--key", key], stdout=subprocess.PIPE, text=True)
    try:
        if srv.stdout.readline().strip() != "ready":
            sys.exit("server did not start")
        # Correctness first: every byte of a 64 MiB prefix over both protocols.
        for proto, p in (("http", port), ("https", tport)):
            vs = min(a.size, 64 << 20)
            w, c, codes, outs = run_timed([[client, "--url", f"{proto}://127.0.0.1:{p}/obj", "--size", str(vs),
                                            "--streams", "3", "--ca", crt, "--verify"]])
            if codes != [0]:
                sys.exit(f"verification failed over {proto}: {outs}")
        results = []
        gib = a.size / float(1 << 30)
        print(f"size {a.size} bytes, median of {a.repeat}, io threads {a.io_threads}")
        print(f"{'proto':6} {'streams':>7} {'ours MB/s':>10} {'curl MB/s':>10} {'ratio':>6} {'ours cpu s/GiB':>15} {'curl cpu s/GiB':>15}")
        for proto, p in (("http", port), ("https", tport)):
            url = f"{proto}://127.0.0.1:{p}/obj"
            for k in [int(x) for x in a.streams.split(",")]:
                ours, theirs = [], []
                for _ in range(a.repeat):
                    w, c, codes, outs = run_timed([[client, "--url", url, "--size", str(a.size), "--streams", str(k),
                                                    "--ca", crt, "--io-threads", str(a.io_threads)]])
                    if codes != [0]:
                        sys.exit(f"ours failed: {outs}")
                    ours.append((w, c))
                    per = a.size // k
                    cmds = []
                    for i in range(k):
                        first = per * i
                        last = a.size - 1 if i == k - 1 else first + per - 1
                        cmd = ["curl", "-s", "-f", "--cacert", crt, "-o", "/dev/null", url]
                        if k > 1:
                            cmd[1:1] = ["-r", f"{first}-{last}"]
                        cmds.append(cmd)
                    w, c, codes, outs = run_timed(cmds)
                    if any(codes):
                        sys.exit(f"curl failed: {outs}")
                    theirs.append((w, c))
                ow = statistics.median(x[0] for x in ours); oc = statistics.median(x[1] for x in ours)
                cw = statistics.median(x[0] for x in theirs); cc = statistics.median(x[1] for x in theirs)
                row = {"proto": proto, "streams": k, "ours_mb_s": a.size / ow / 1e6, "curl_mb_s": a.size / cw / 1e6,
                       "ratio": cw / ow, "ours_cpu_s_per_gib": oc / gib, "curl_cpu_s_per_gib": cc / gib}
                results.append(row)
                print(f"{proto:6} {k:7d} {row['ours_mb_s']:10.0f} {row['curl_mb_s']:10.0f} {row['ratio']:6.2f} "
                      f"{row['ours_cpu_s_per_gib']:15.2f} {row['curl_cpu_s_per_gib']:15.2f}", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
