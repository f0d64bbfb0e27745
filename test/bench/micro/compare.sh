#!/usr/bin/env bash
# Compares the Xet codec hot paths with reference tools on the same data and prints ratios.
#
#   test/bench/micro/compare.sh [BUILD_DIR]        (default BUILD_DIR: build)
#   SIZE_MB=256 (default) sets the size of the generated data.
#
# Data: pseudo-random-but-compressible (incompressible blocks, text-like runs, float-like
# runs). Measured, all single-threaded, CPU time (user+sys) so a busy machine skews less:
#   * chunker            vs the 1 GB/s target
#   * BLAKE3 64 KiB chunk hashing and BLAKE3 over the whole buffer
#                        vs `b3sum --num-threads 1` (one pass over the whole file)
#   * LZ4 / BG4 decode of the data's chunks (each chunk one frame, as in xorbs)
#                        vs `lz4 -d` of the same data compressed with `lz4 -1 -B4 --no-frame-crc`
#                        (64 KiB independent blocks, no checksum: the closest CLI equivalent)
# Reference tools read the file from the page cache and include process start-up; the
# ratio is ours / reference (> 1 = faster).
set -euo pipefail

BUILD=${1:-build}
SIZE_MB=${SIZE_MB:-256}
BENCH="$BUILD/test/bench/micro/xet_micro_bench"
if [[ ! -x "$BENCH" ]]; then
  echo "compare.sh: $BENCH not found (ninja -C $BUILD test/bench/micro/xet_micro_bench)" >&2
  exit 1
fi
for tool in b3sum lz4 python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not installed" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp/data.bin" "$SIZE_MB" <<'EOF'
import random, struct, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(42)
words = [b"model ", b"weights ", b"layer.", b"attention ", b"0.0625 ", b"\n", b"bias ", b'{"x": ']
out = bytearray()
while len(out) < size:
    kind, n = rnd.randrange(3), 4096 + rnd.randrange(65536)
    if kind == 0:
        out += rnd.randbytes(n)
    elif kind == 1:
        parts = []
        got = 0
        while got < n:
            w = words[rnd.randrange(8)]
            parts.append(w)
            got += len(w)
        out += b"".join(parts)[:n]
    else:
        out += struct.pack("<%df" % (n // 4), *[rnd.randrange(100000) / 1000.0 for _ in range(n // 4)])
with open(path, "wb") as f:
    f.write(out[:size])
EOF

lz4 -q -1 -B4 --no-frame-crc -f "$tmp/data.bin" "$tmp/data.lz4"

HF_BENCH_DATA="$tmp/data.bin" "$BENCH" --benchmark_format=json \
  --benchmark_filter='BM_(Chunker|ChunkHash64K|ChunkHashActual|Blake3Whole|ChunkStream|Lz4Decode|Bg4Decode)/' \
  >"$tmp/bench.json"

python3 - "$tmp" <<'EOF'
import json, os, resource, subprocess, sys
tmp = sys.argv[1]
data = os.path.join(tmp, "data.bin")
size = os.path.getsize(data)

def cpu_seconds(cmd, stdout=subprocess.DEVNULL, runs=5):
    """Best-of-N CPU time (user+sys) of a child process."""
    best = None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, stdout=stdout, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = t if best is None else min(best, t)
    return best

b3 = size / cpu_seconds(["b3sum", "--num-threads", "1", "--no-names", data])
lz = size / cpu_seconds(["lz4", "-q", "-d", "-c", os.path.join(tmp, "data.lz4")])

ours = {}
for b in json.load(open(os.path.join(tmp, "bench.json")))["benchmarks"]:
    ours[b["name"].split("/")[0]] = b["bytes_per_second"]

mb = lambda v: "%8.0f MB/s" % (v / 1e6)
print("data: %d MiB, lz4 -1 -B4 ratio %.3f" % (size >> 20, os.path.getsize(os.path.join(tmp, "data.lz4")) / size))
print("%-34s %13s %13s %7s" % ("", "ours", "reference", "ratio"))
rows = [
    ("chunker (target 1 GB/s)", ours["BM_Chunker"], 1e9),
    ("BLAKE3 64 KiB chunks vs b3sum", ours["BM_ChunkHash64K"], b3),
    ("BLAKE3 real CDC chunks vs b3sum", ours["BM_ChunkHashActual"], b3),
    ("BLAKE3 whole buffer vs b3sum", ours["BM_Blake3Whole"], b3),
    ("chunk+hash+merkle (ChunkStream)", ours["BM_ChunkStream"], None),
    ("LZ4 chunk decode vs lz4 -d", ours["BM_Lz4Decode"], lz),
    ("BG4 chunk decode vs lz4 -d", ours["BM_Bg4Decode"], lz),
]
for name, v, ref in rows:
    if ref is None:
        print("%-34s %13s %13s %7s" % (name, mb(v), "-", "-"))
    else:
        print("%-34s %13s %13s %6.2fx" % (name, mb(v), mb(ref), v / ref))
EOF
