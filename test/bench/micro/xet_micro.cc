// Micro-benchmarks of the Xet codec hot paths (Google Benchmark). Not a test.
//
// Data: the file named by $HF_BENCH_DATA (compare.sh generates one), else 64 MiB of
// generated pseudo-random-but-compressible bytes. Throughput is reported as bytes/s of raw
// (uncompressed) data in every benchmark, so numbers are directly comparable.
#include <benchmark/benchmark.h>
#include <blake3.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "net/xet/chunker.h"
#include "net/xet/hash.h"
#include "net/xet/xorb.h"

namespace {

using namespace hf::xet;

// Mix of incompressible blocks, text-like runs and float-like (BG4-friendly) runs.
std::vector<uint8_t> generate(size_t n) {
  std::vector<uint8_t> out;
  out.reserve(n);
  std::mt19937_64 rng(42);
  static const char* words[] = {"model ", "weights ", "layer.", "attention ", "0.0625 ", "\n", "bias ", "{\"x\": "};
  while (out.size() < n) {
    size_t kind = rng() % 3, len = 4096 + rng() % 65536;
    if (kind == 0) {
      for (size_t i = 0; i < len; i += 8) {
        uint64_t v = rng();
        out.insert(out.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 8);
      }
    } else if (kind == 1) {
      while (len > 0) {
        const char* w = words[rng() % 8];
        size_t k = std::min(len, std::strlen(w));
        out.insert(out.end(), w, w + k);
        len -= k;
      }
    } else {
      for (size_t i = 0; i < len; i += 4) {
        float f = static_cast<float>(static_cast<double>(rng() % 100000) / 1000.0);
        out.insert(out.end(), reinterpret_cast<uint8_t*>(&f), reinterpret_cast<uint8_t*>(&f) + 4);
      }
    }
  }
  out.resize(n);
  return out;
}

const std::vector<uint8_t>& data() {
  static const std::vector<uint8_t> d = [] {
    if (const char* path = std::getenv("HF_BENCH_DATA")) {
      std::ifstream f(path, std::ios::binary);
      if (f) return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
      std::fprintf(stderr, "cannot read HF_BENCH_DATA=%s; generating data\n", path);
    }
    return generate(64u << 20);
  }();
  return d;
}

// Chunk boundaries of data(), computed once.
const std::vector<uint64_t>& ends() {
  static const std::vector<uint64_t> e = [] {
    Chunker c;
    std::vector<uint64_t> v;
    c.feed(data(), v);
    c.finish(v);
    return v;
  }();
  return e;
}

struct Encoded {
  std::vector<uint8_t> records;  // serialized chunk records
  uint64_t raw_bytes = 0;
};

// All chunks of data() encoded with one scheme (records that did not shrink are stored).
const Encoded& encoded(Compression c) {
  static Encoded cache[3];
  static bool done[3] = {};
  int i = static_cast<int>(c);
  if (!done[i]) {
    uint64_t prev = 0;
    for (uint64_t e : ends()) {
      (void)encode_chunk(std::span(data()).subspan(prev, e - prev), c, cache[i].records);
      prev = e;
    }
    cache[i].raw_bytes = prev;
    done[i] = true;
  }
  return cache[i];
}

void BM_Chunker(benchmark::State& state) {
  const auto& d = data();
  std::vector<uint64_t> v;
  v.reserve(d.size() / kMinChunk + 1);
  for (auto _ : state) {
    Chunker c;
    v.clear();
    c.feed(d, v);
    c.finish(v);
    benchmark::DoNotOptimize(v.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
  state.counters["chunks"] = static_cast<double>(v.size());
}

void BM_ChunkHash64K(benchmark::State& state) {
  // The unit of chunk hashing: 64 KiB pieces (target chunk size).
  const auto& d = data();
  for (auto _ : state) {
    for (size_t off = 0; off + kTargetChunk <= d.size(); off += kTargetChunk) {
      Hash h = chunk_hash(std::span(d).subspan(off, kTargetChunk));
      benchmark::DoNotOptimize(h);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (d.size() / kTargetChunk * kTargetChunk)));
}

void BM_ChunkHashActual(benchmark::State& state) {
  // Hash every content-defined chunk of the data (real size distribution).
  const auto& d = data();
  const auto& e = ends();
  for (auto _ : state) {
    uint64_t prev = 0;
    for (uint64_t x : e) {
      Hash h = chunk_hash(std::span(d).subspan(prev, x - prev));
      benchmark::DoNotOptimize(h);
      prev = x;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
}

void BM_Blake3Whole(benchmark::State& state) {
  // One BLAKE3 pass over the whole buffer: what `b3sum --num-threads 1` measures.
  const auto& d = data();
  for (auto _ : state) {
    Hash h = keyed_hash(kDataKey, d);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
}

void BM_ChunkStream(benchmark::State& state) {
  // Chunking + chunk hashing + file-hash merkle, fed in 1 MiB pieces: the upload front end.
  const auto& d = data();
  for (auto _ : state) {
    ChunkStream cs;
    MerkleBuilder m;
    for (size_t off = 0; off < d.size(); off += 1u << 20) {
      for (const auto& c : cs.feed(std::span(d).subspan(off, std::min<size_t>(1u << 20, d.size() - off)))) {
        m.add(c.hash, c.data.size());
      }
    }
    for (const auto& c : cs.finish()) m.add(c.hash, c.data.size());
    benchmark::DoNotOptimize(m.finish_file_hash());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
}

void decode_all(benchmark::State& state, Compression c) {
  const Encoded& enc = encoded(c);
  std::vector<uint8_t> out(kMaxChunk);
  for (auto _ : state) {
    ChunkRecordDecoder dec;
    auto st = dec.feed(enc.records, [&](uint32_t, std::span<const uint8_t> raw, uint32_t) -> hf::Status {
      benchmark::DoNotOptimize(raw.data());
      return {};
    });
    if (!st.ok()) state.SkipWithError(st.error().message.c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * enc.raw_bytes));
  state.counters["ratio"] = static_cast<double>(enc.records.size()) / static_cast<double>(enc.raw_bytes);
}

void BM_Lz4Decode(benchmark::State& state) { decode_all(state, Compression::lz4); }
void BM_Bg4Decode(benchmark::State& state) { decode_all(state, Compression::bg4_lz4); }

void encode_all(benchmark::State& state, Compression c) {
  const auto& d = data();
  const auto& e = ends();
  std::vector<uint8_t> out;
  out.reserve(d.size() + d.size() / 1000);
  for (auto _ : state) {
    out.clear();
    uint64_t prev = 0;
    for (uint64_t x : e) {
      (void)encode_chunk(std::span(d).subspan(prev, x - prev), c, out);
      prev = x;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * d.size()));
}

void BM_Lz4Encode(benchmark::State& state) { encode_all(state, Compression::lz4); }
void BM_Bg4Encode(benchmark::State& state) { encode_all(state, Compression::bg4_lz4); }

}  // namespace

BENCHMARK(BM_Chunker)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_ChunkHash64K)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_ChunkHashActual)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Blake3Whole)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_ChunkStream)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Lz4Decode)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Bg4Decode)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Lz4Encode)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Bg4Encode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

BENCHMARK_MAIN();
