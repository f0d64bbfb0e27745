#!/bin/sh
# Throughput of hf-mount-hubsim serving a cached xorb range over loopback HTTP, compared with
# nginx serving the same bytes from a file, measured in the same run with curl (hyperfine).
#
#   test/hubsim/bench_vs_nginx.sh [BUILD_DIR] [SIZE_MIB]
#
# Needs: nginx (nginx-light), curl, hyperfine, python3. Prints per-case mean times and the
# throughput ratio hubsim/nginx (>= 0.7 is the goal: the emulator must not be the bottleneck of
# the filesystem benchmarks). Exit status 0 even if the goal is missed (this is a measurement).
set -eu

BUILD=${1:-build}
SIZE_MIB=${2:-64}
BIN=$BUILD/cmd/hf-mount-hubsim
for tool in nginx curl hyperfine python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench_vs_nginx: $tool not found (packaging/install-deps.sh --bench)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench_vs_nginx: $BIN not built" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hubsim-bench.XXXXXX)
HPID=""
NPID=""
cleanup() {
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
    [ -n "$NPID" ] && kill "$NPID" 2>/dev/null && wait "$NPID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
[ -n "${BENCH_DEBUG:-}" ] && set -x

mkdir -p "$WORK/repo" "$WORK/www" "$WORK/nginx"
chmod 755 "$WORK" "$WORK/www"  # nginx workers run unprivileged
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/repo/model.bin"

# --- hubsim -------------------------------------------------------------------------------
"$BIN" --listen 127.0.0.1:0 --threads 2 --repo "model:bench/x=$WORK/repo" >"$WORK/hubsim.out" 2>"$WORK/hubsim.err" &
HPID=$!
i=0
while ! grep -q '^listening on ' "$WORK/hubsim.out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 600 ] && { cat "$WORK/hubsim.err" >&2; exit 1; }
    sleep 0.1
done
HUB=$(sed -n 's/^listening on //p' "$WORK/hubsim.out")
HASH=$(curl -sI "$HUB/bench/x/resolve/main/model.bin" | tr -d '\r' | sed -n 's/^[Xx]-[Xx]et-[Hh]ash: //p')
TOKEN=$(curl -s "$HUB/api/models/bench/x/xet-read-token/main" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
# The presigned URL and byte range to serve.
curl -s -H "Authorization: Bearer $TOKEN" "$HUB/cas/v2/reconstructions/$HASH" >"$WORK/recon.json"
# The largest xorb range (a 64 MiB file spans a full xorb plus a small tail xorb; the JSON
# object's key order is not the file's order).
BIGGEST='import json,sys; d=json.load(open(sys.argv[1])); f=max((e for v in d["xorbs"].values() for e in v), key=lambda e: e["ranges"][0]["bytes"]["end"] - e["ranges"][0]["bytes"]["start"])'
URL=$(python3 -c "$BIGGEST; print(f['url'])" "$WORK/recon.json")
FULL=$(python3 -c "$BIGGEST; r=f['ranges'][0]['bytes']; print('%d-%d' % (r['start'], r['end']))" "$WORK/recon.json")
START=${FULL%-*}
END=${FULL#*-}
# The same serialized bytes as a plain file for nginx (offsets identical: the file starts at 0).
curl -s -H "Range: bytes=0-$END" "$URL" -o "$WORK/www/xorb.bin"
chmod 644 "$WORK/www/xorb.bin"
SMALL_END=$((START + 4 * 1024 * 1024 - 1))

# --- nginx --------------------------------------------------------------------------------
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 2;
error_log $WORK/nginx/error.log;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 60;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    server {
        listen 127.0.0.1:$NPORT;
        root $WORK/www;
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NPID=$!
i=0
until curl -sf -o /dev/null "http://127.0.0.1:$NPORT/xorb.bin"; do
    i=$((i + 1)); [ $i -gt 100 ] && { cat "$WORK/nginx/error.log" >&2; exit 1; }
    sleep 0.1
done
NGX="http://127.0.0.1:$NPORT/xorb.bin"

# Same bytes from both?
A=$(curl -s -H "Range: bytes=$START-$END" "$URL" | sha256sum | cut -d' ' -f1)
B=$(curl -s -H "Range: bytes=$START-$END" "$NGX" | sha256sum | cut -d' ' -f1)
[ "$A" = "$B" ] || { echo "bench_vs_nginx: bytes differ ($A vs $B, file $(wc -c <"$WORK/www/xorb.bin") bytes)" >&2; exit 1; }

run() {  # name range parallelism
    name=$1 range=$2 par=$3
    cat >"$WORK/get_hub.sh" <<EOF
#!/bin/sh
for i in \$(seq $par); do curl -s -o /dev/null -H "Range: bytes=$range" '$URL' & done; wait
EOF
    cat >"$WORK/get_ngx.sh" <<EOF
#!/bin/sh
for i in \$(seq $par); do curl -s -o /dev/null -H "Range: bytes=$range" '$NGX' & done; wait
EOF
    chmod +x "$WORK/get_hub.sh" "$WORK/get_ngx.sh"
    hyperfine -N --warmup 3 --runs 20 --export-json "$WORK/$name.json" \
        -n hubsim "$WORK/get_hub.sh" -n nginx "$WORK/get_ngx.sh" >/dev/null 2>&1
    python3 - "$WORK/$name.json" "$name" "$range" "$par" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
t = {r["command"]: r["mean"] for r in d["results"]}
s, e = (int(x) for x in sys.argv[3].split("-"))
mib = (e - s + 1) * int(sys.argv[4]) / 1048576
print("%-22s hubsim %7.1f ms (%6.0f MiB/s)   nginx %7.1f ms (%6.0f MiB/s)   ratio hubsim/nginx = %.2f" % (
    sys.argv[2], t["hubsim"] * 1e3, mib / t["hubsim"], t["nginx"] * 1e3, mib / t["nginx"], t["nginx"] / t["hubsim"]))
EOF
}

echo "hf-mount-hubsim vs nginx, ${SIZE_MIB} MiB xorb, loopback, curl (mean of 20 runs)"
run "full-range x1" "$START-$END" 1
run "full-range x4" "$START-$END" 4
run "4MiB-range x1" "$START-$SMALL_END" 1
run "4MiB-range x8" "$START-$SMALL_END" 8
