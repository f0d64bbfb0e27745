// Throughput of the chunk caches against plain-file references measured in the same run.
//
//   bench_cache [dir] [MiB]     (default: $TMPDIR or /tmp, 256 MiB of 64 KiB chunks)
//
// write: DiskChunkStore::put_run of 4 MiB runs (16 per xorb)  vs  create + pwritev + rename of
//        the same bytes
// read:  DiskChunkStore::get per 64 KiB chunk (page cache, XXH3 verified, fresh buffer each)
//        vs  pread of 64 KiB into one reused buffer (no verification, no allocation)
// range: DiskChunkStore::get_range of whole 4 MiB runs  vs  the same pread reference
// memory: MemoryChunkCache::get hits (ops/s)
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cache/chunk_store.h"
#include "cache/memory_cache.h"

using namespace hf::cache;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Key32 key_of(uint64_t i) {
  Key32 k{};
  uint64_t x = i * 0x9e3779b97f4a7c15ull + 1;
  for (size_t j = 0; j < 32; ++j) {
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    k[j] = static_cast<uint8_t>(x >> 56);
  }
  return k;
}

}  // namespace

int main(int argc, char** argv) {
  const char* base = argc > 1 ? argv[1] : (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
  const uint64_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 256;
  const size_t kChunk = 64 * 1024, kPerRun = 64;  // 4 MiB runs
  const size_t runs = mib * (1 << 20) / (kChunk * kPerRun);
  // A 64 MiB xorb holds 16 runs of 4 MiB, as a cold sequential read would store it.
  const size_t kRunsPerXorb = 16;
  auto first_of = [&](size_t r) { return static_cast<uint32_t>((r % kRunsPerXorb) * kPerRun); };
  const double total = static_cast<double>(runs * kPerRun * kChunk);

  std::string dir = std::string(base) + "/hf-bench-cache-XXXXXX";
  if (!::mkdtemp(dir.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  // Incompressible-looking chunk contents, shared by all runs (the store does not dedup).
  std::vector<ChunkBytes> chunks;
  uint64_t x = 12345;
  for (size_t i = 0; i < kPerRun; ++i) {
    auto v = std::make_shared<std::vector<uint8_t>>(kChunk);
    for (auto& b : *v) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<uint8_t>(x >> 56);
    }
    chunks.push_back(std::move(v));
  }

  // ---- writes: reference (create + pwritev + rename) and put_run, alternating, best of 3,
  // with the dirty pages flushed before each measurement so both see the same writeback state.
  std::string ref_dir = dir + "/ref";
  std::vector<iovec> iov;
  for (auto& c : chunks) iov.push_back({const_cast<uint8_t*>(c->data()), c->size()});
  DiskChunkStoreOptions o;
  o.dir = dir + "/store";
  o.max_bytes = 64ull << 30;
  std::unique_ptr<DiskChunkStore> store;
  double ref_write = 0, put_write = 0;
  auto flush = [&] {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    ::syncfs(dfd);
    ::close(dfd);
  };
  // Reference and put_run alternate run by run, so load from other processes hits both alike.
  for (int rep = 0; rep < 3; ++rep) {
    std::filesystem::remove_all(ref_dir);
    std::filesystem::create_directories(ref_dir);
    store.reset();
    std::filesystem::remove_all(o.dir);
    auto opened = DiskChunkStore::open(o);
    if (!opened.ok()) {
      std::fprintf(stderr, "open: %s\n", opened.error().describe().c_str());
      return 1;
    }
    store = std::move(opened).value();
    flush();
    double t_ref = 0, t_put = 0;
    for (size_t r = 0; r < runs; ++r) {
      auto t0 = Clock::now();
      std::string tmp = ref_dir + "/tmp" + std::to_string(r), dst = ref_dir + "/" + std::to_string(r);
      int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0 || ::pwritev(fd, iov.data(), static_cast<int>(iov.size()), 0) < 0) return 1;
      ::close(fd);
      ::rename(tmp.c_str(), dst.c_str());
      auto t1 = Clock::now();
      if (!store->put_run(key_of(r / kRunsPerXorb), first_of(r), chunks).ok()) return 1;
      auto t2 = Clock::now();
      t_ref += secs(t0, t1);
      t_put += secs(t1, t2);
    }
    ref_write = std::max(ref_write, total / t_ref);
    put_write = std::max(put_write, total / t_put);
  }

  // ---- reads (page cache), alternating run by run with the reference, best of 3 ----
  // reference: pread 64 KiB into one reused buffer; get(): per chunk, verified, fresh buffer;
  // get_range(): whole 4 MiB runs.
  store.reset();
  auto opened = DiskChunkStore::open(o);  // fresh index: first pass loads listings and tables
  if (!opened.ok()) return 1;
  auto& s2 = *opened;
  std::vector<uint8_t> buf(kChunk);
  std::vector<ChunkBytes> out;
  uint64_t sink = 0;
  std::vector<int> ref_fds;
  for (size_t r = 0; r < runs; ++r)
    ref_fds.push_back(::open((ref_dir + "/" + std::to_string(r)).c_str(), O_RDONLY | O_CLOEXEC));
  double ref_read = 0, get_read = 0, range_read = 0;
  for (int rep = 0; rep < 4; ++rep) {  // rep 0 warms the page cache and the store's index
    double t_ref = 0, t_get = 0, t_range = 0;
    for (size_t r = 0; r < runs; ++r) {
      const Key32 k = key_of(r / kRunsPerXorb);
      auto t0 = Clock::now();
      for (size_t i = 0; i < kPerRun; ++i) {
        if (::pread(ref_fds[r], buf.data(), kChunk, static_cast<off_t>(i * kChunk)) !=
            static_cast<ssize_t>(kChunk))
          return 1;
        sink += buf[i];
      }
      auto t1 = Clock::now();
      for (uint32_t i = first_of(r); i < first_of(r) + kPerRun; ++i) {
        auto g = s2->get(k, i);
        if (!g.ok() || !*g) return 1;
        sink += (**g)[0];
      }
      auto t2 = Clock::now();
      if (!s2->get_range(k, first_of(r), first_of(r) + kPerRun, out).ok() || out.size() != kPerRun)
        return 1;
      sink += (*out[5])[7];
      auto t3 = Clock::now();
      t_ref += secs(t0, t1);
      t_get += secs(t1, t2);
      t_range += secs(t2, t3);
    }
    if (rep == 0) {
      std::printf("get (first touch: listing + table load + page cache warm-up): %.2f GB/s\n",
                  total / t_get / 1e9);
      continue;
    }
    ref_read = std::max(ref_read, total / t_ref);
    get_read = std::max(get_read, total / t_get);
    range_read = std::max(range_read, total / t_range);
  }
  for (int fd : ref_fds) ::close(fd);

  // ---- memory cache hits ----
  MemoryChunkCache mem(1ull << 30);
  for (uint32_t i = 0; i < 4096; ++i) mem.put(key_of(i % 64), i, chunks[i % kPerRun]);
  const int kOps = 4'000'000;
  auto t0 = Clock::now();
  for (int i = 0; i < kOps; ++i) {
    uint32_t j = static_cast<uint32_t>(i) & 4095;
    if (auto v = mem.get(key_of(j % 64), j)) sink += v->size();
  }
  auto t1 = Clock::now();
  const double mem_ops = kOps / secs(t0, t1);

  std::printf("data: %zu runs x %zu chunks x %zu KiB = %.0f MiB in %s\n", runs, kPerRun,
              kChunk / 1024, total / (1 << 20), dir.c_str());
  std::printf("write  put_run        %6.2f GB/s   reference pwritev+rename %6.2f GB/s   ratio %.2f\n",
              put_write / 1e9, ref_write / 1e9, put_write / ref_write);
  std::printf("read   get (64 KiB)   %6.2f GB/s   reference pread 64 KiB   %6.2f GB/s   ratio %.2f\n",
              get_read / 1e9, ref_read / 1e9, get_read / ref_read);
  std::printf("read   get_range      %6.2f GB/s   reference pread 64 KiB   %6.2f GB/s   ratio %.2f\n",
              range_read / 1e9, ref_read / 1e9, range_read / ref_read);
  std::printf("memory get (hit)      %6.2f Mops/s (key_of() hashing included)\n", mem_ops / 1e6);
  std::printf("(sink %llu)\n", static_cast<unsigned long long>(sink));
  s2.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
