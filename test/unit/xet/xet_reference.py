#!/usr/bin/env python3
"""Independent cross-check of hf-mount-xet's chunking and hashing.

A second implementation of the Xet spec, written from the text rather than from the C++:
  * chunk boundaries with the byte-by-byte rule of spec §2.3 (no skip optimisation);
  * chunk hashes, merkle nodes (§3.3) and the file hash (§3.5) with BLAKE3 computed by the
    Debian `b3sum --keyed` CLI (key = 32 raw bytes on stdin).
It generates a few files (sizes 0, 1, 8191, 8192, 131073 and two of 1-3 MB, random and
structured) and compares `hf-mount-xet chunk` and `hf-mount-xet file-hash` with its own results;
`xorb-pack` (every compression scheme) must print the reference xorb hash (merkle root of the
chunks) and `xorb-unpack` must return the original bytes.

Usage: xet_reference.py PATH_TO_hf-mount-xet
Exit 0 = match, 1 = mismatch, 77 = skipped (b3sum missing).
"""

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

DATA_KEY = bytes([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
                  157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41])
INTERNAL_NODE_KEY = bytes([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
                           93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63])
ZERO_KEY = bytes(32)

MIN_CHUNK = 8192
MAX_CHUNK = 131072
MASK = 0xFFFF000000000000
M64 = (1 << 64) - 1


def load_gear_table():
    """The table comes from the source tree (or the vectors' table.json) and is checked
    against the spec's transcription check values, so a typo cannot go unnoticed."""
    vectors = os.environ.get("HF_TEST_VECTORS", "")
    path = os.path.join(vectors, "table.json")
    if vectors and os.path.exists(path):
        table = [int(x) for x in re.findall(r"\d+", open(path).read())]
    else:
        src = os.path.join(os.environ.get("HF_SOURCE_ROOT", "."), "net", "xet", "gear_table.cc")
        text = open(src).read()
        text = text[text.index("{"):]  # skip the comment with the check values
        table = [int(x, 16) for x in re.findall(r"0x([0-9a-f]{16})", text)]
    assert len(table) == 256, "gear table must have 256 entries"
    x = 0
    s = 0
    for v in table:
        x ^= v
        s = (s + v) & M64
    assert x == 0x6aa26c5ca5f6cbfc and s == 0xc1acb37ef35c570a, "gear table check values mismatch"
    return table


def chunk_boundaries(data, table):
    """Spec §2.3, byte by byte: returns chunk END offsets."""
    ends = []
    start = 0
    n = len(data)
    while start < n:
        h = 0
        end = n
        i = start
        limit_min = start + MIN_CHUNK  # size >= MIN once i + 1 >= limit_min
        while i < n:
            h = ((h << 1) + table[data[i]]) & M64
            if i + 1 >= limit_min:
                if i + 1 - start >= MAX_CHUNK or (h & MASK) == 0:
                    end = i + 1
                    break
            i += 1
        ends.append(end)
        start = end
    return ends


class B3:
    """BLAKE3 keyed hashing through the b3sum CLI, batched: one process per call of many()."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.counter = 0

    def many(self, key, messages):
        if not messages:
            return []
        paths = []
        for m in messages:
            self.counter += 1
            p = os.path.join(self.workdir, "m%d" % self.counter)
            with open(p, "wb") as f:
                f.write(m)
            paths.append(p)
        out = subprocess.run(["b3sum", "--keyed", "--no-names", "--"] + paths, input=key,
                             capture_output=True, check=True).stdout.decode().split()
        for p in paths:
            os.unlink(p)
        assert len(out) == len(messages)
        return [bytes.fromhex(h) for h in out]


def xet_hex(raw):
    """Spec §1.2: reverse each 8-byte word, then hex."""
    return "".join(raw[8 * w:8 * w + 8][::-1].hex() for w in range(4))


def merkle_root(b3, leaves):
    """Spec §3.3, level by level; each level's node texts are hashed in one b3sum call."""
    if not leaves:
        return bytes(32)
    level = leaves
    while len(level) > 1:
        groups = []
        i = 0
        while i < len(level):
            rest = level[i:]
            if len(rest) <= 2:
                cut = len(rest)
            else:
                end = min(9, len(rest))
                cut = end
                for j in range(2, end):
                    if int.from_bytes(rest[j][0][24:32], "little") % 4 == 0:
                        cut = j + 1
                        break
            groups.append(rest[:cut])
            i += cut
        texts = ["".join("%s : %d\n" % (xet_hex(h), s) for h, s in g).encode() for g in groups]
        hashes = b3.many(INTERNAL_NODE_KEY, texts)
        level = [(h, sum(s for _, s in g)) for h, g in zip(hashes, groups)]
    return level[0][0]


def reference(b3, data, table):
    """Returns (chunk listing lines, file hash hex, xorb hash hex of all the chunks)."""
    ends = chunk_boundaries(data, table)
    chunks = []
    prev = 0
    for e in ends:
        chunks.append(data[prev:e])
        prev = e
    hashes = b3.many(DATA_KEY, chunks)
    lines = []
    off = 0
    for h, c in zip(hashes, chunks):
        lines.append("%d %d %s" % (off, len(c), xet_hex(h)))
        off += len(c)
    if chunks:
        root = merkle_root(b3, list(zip(hashes, [len(c) for c in chunks])))
        file_hash = b3.many(ZERO_KEY, [root])[0]
    else:
        root = bytes(32)
        file_hash = bytes(32)
    return lines, xet_hex(file_hash), xet_hex(root)


def make_inputs():
    rnd = random.Random(20240601)
    inputs = {
        "empty": b"",
        "one": b"\x42",
        "min_minus_1": rnd.randbytes(8191),
        "min": rnd.randbytes(8192),
        "max_plus_1": rnd.randbytes(131073),
    }
    # Random bytes with a long constant run (forced MAX cuts) in the middle.
    big = bytearray(rnd.randbytes(1_700_000))
    big[600_000:1_000_000] = bytes(400_000)
    inputs["random_1_7mb"] = bytes(big)
    # Structured, compressible data (text-like records).
    words = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"0.5 ", b"tensor "]
    parts = []
    size = 0
    while size < 2_300_000:
        w = words[rnd.randrange(len(words))]
        parts.append(w)
        size += len(w)
    inputs["text_2_3mb"] = b"".join(parts)[:2_300_000]
    return inputs


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tool = sys.argv[1]
    if shutil.which("b3sum") is None:
        print("b3sum not installed: skipping", file=sys.stderr)
        return 77
    table = load_gear_table()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        b3 = B3(tmp)
        # BLAKE3 via b3sum must reproduce the spec's "Hello World!" chunk hash first.
        hello = b3.many(DATA_KEY, [b"Hello World!"])[0]
        assert xet_hex(hello) == "d8d408e608fb9ca213b9909a65d86d725f2de4d8d540324be8a363e7a6e228cb"
        for name, data in make_inputs().items():
            path = os.path.join(tmp, name + ".bin")
            with open(path, "wb") as f:
                f.write(data)
            want_lines, want_hash, want_xorb = reference(b3, data, table)
            got_lines = subprocess.run([tool, "chunk", path], capture_output=True, check=True,
                                       text=True).stdout.splitlines()
            got_hash = subprocess.run([tool, "file-hash", path], capture_output=True, check=True,
                                      text=True).stdout.strip()
            ok = got_lines == want_lines and got_hash == want_hash
            # xorb-pack (every scheme, with and without footer) -> xorb hash = merkle root of
            # the chunks; xorb-unpack returns the original bytes and checks the hash.
            for scheme in ("none", "lz4", "bg4", "auto"):
                xorb_path = os.path.join(tmp, name + "." + scheme + ".xorb")
                args = [tool, "xorb-pack", path, "-o", xorb_path, "--compression", scheme]
                if scheme == "auto":
                    args.append("--footer")
                packed = subprocess.run(args, capture_output=True, check=True, text=True).stdout.strip()
                unpacked = subprocess.run([tool, "xorb-unpack", xorb_path, "--expect", want_xorb],
                                          capture_output=True)
                if packed != want_xorb or unpacked.returncode != 0 or unpacked.stdout != data:
                    print("  xorb-pack/unpack mismatch with --compression %s" % scheme, file=sys.stderr)
                    ok = False
                os.unlink(xorb_path)
            print("%-14s %8d bytes %3d chunks  %s" % (name, len(data), len(want_lines), "ok" if ok else "MISMATCH"))
            if not ok:
                failures += 1
                if got_lines != want_lines:
                    print("  chunk listing differs; first reference lines:", want_lines[:3], file=sys.stderr)
                    print("  first tool lines:", got_lines[:3], file=sys.stderr)
                if got_hash != want_hash:
                    print("  file hash: tool %s, reference %s" % (got_hash, want_hash), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
