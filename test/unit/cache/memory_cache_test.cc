#include "cache/memory_cache.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "test/unit/cache/test_util.h"

using hf::cache::ChunkBytes;
using hf::cache::MemoryChunkCache;
using namespace hf::cache::test;

namespace {
ChunkBytes bytes_of(size_t n, uint8_t fill) {
  return std::make_shared<const std::vector<uint8_t>>(n, fill);
}
constexpr uint64_t kOv = MemoryChunkCache::kEntryOverhead;
}  // namespace

TEST_CASE("memory cache: put/get/erase/clear and stats", "[cache][memory]") {
  MemoryChunkCache c(1 << 20);
  auto k1 = xorb_key(1), k2 = xorb_key(2);
  CHECK(c.get(k1, 0) == nullptr);
  REQUIRE(c.put(k1, 0, bytes_of(100, 1)));
  REQUIRE(c.put(k1, 1, bytes_of(200, 2)));
  REQUIRE(c.put(k2, 0, bytes_of(300, 3)));
  auto v = c.get(k1, 1);
  REQUIRE(v);
  CHECK(*v == std::vector<uint8_t>(200, 2));
  CHECK(*c.get(k2, 0) == std::vector<uint8_t>(300, 3));
  CHECK(c.get(k2, 1) == nullptr);  // same xorb, other index
  CHECK(c.used_bytes() == 600 + 3 * kOv);

  // Replacing a key re-charges it.
  REQUIRE(c.put(k1, 0, bytes_of(50, 9)));
  CHECK(*c.get(k1, 0) == std::vector<uint8_t>(50, 9));
  CHECK(c.used_bytes() == 550 + 3 * kOv);

  CHECK(c.erase(k1, 1));
  CHECK_FALSE(c.erase(k1, 1));
  CHECK(c.get(k1, 1) == nullptr);
  CHECK(c.used_bytes() == 350 + 2 * kOv);

  auto st = c.stats();
  CHECK(st.hits == 3);
  CHECK(st.misses == 3);
  CHECK(st.inserts == 4);
  CHECK(st.entries == 2);
  c.clear();
  CHECK(c.used_bytes() == 0);
  CHECK(c.get(k2, 0) == nullptr);
  CHECK(c.stats().entries == 0);
}

TEST_CASE("memory cache: exact LRU order with one shard", "[cache][memory]") {
  // Room for exactly 4 entries of 1000 bytes.
  MemoryChunkCache c(4 * (1000 + kOv), 1);
  auto k = xorb_key(7);
  for (uint32_t i = 0; i < 4; ++i) REQUIRE(c.put(k, i, bytes_of(1000, static_cast<uint8_t>(i))));
  // Touch 0 and 2: LRU order (oldest first) becomes 1, 3, 0, 2.
  REQUIRE(c.get(k, 0));
  REQUIRE(c.get(k, 2));
  REQUIRE(c.put(k, 4, bytes_of(1000, 4)));  // evicts 1
  CHECK(c.get(k, 1) == nullptr);
  REQUIRE(c.put(k, 5, bytes_of(1000, 5)));  // evicts 3
  CHECK(c.get(k, 3) == nullptr);
  for (uint32_t i : {0u, 2u, 4u, 5u}) {
    auto v = c.get(k, i);
    REQUIRE(v);
    CHECK((*v)[0] == i);
  }
  CHECK(c.stats().evictions == 2);
  // A 2000-byte value needs two slots: evicts the two least recently used (0 then 2).
  REQUIRE(c.put(k, 6, bytes_of(2000, 6)));
  CHECK(c.get(k, 0) == nullptr);
  CHECK(c.get(k, 2) == nullptr);
  CHECK(c.get(k, 4));
  CHECK(c.get(k, 5));
  CHECK(c.used_bytes() <= 4 * (1000 + kOv));
}

TEST_CASE("memory cache: too large values, null values and a disabled cache", "[cache][memory]") {
  MemoryChunkCache c(16 * 1024, 4);  // 4 KiB per shard
  auto k = xorb_key(3);
  CHECK_FALSE(c.put(k, 0, bytes_of(8 * 1024, 1)));
  CHECK_FALSE(c.put(k, 0, nullptr));
  CHECK(c.get(k, 0) == nullptr);
  CHECK(c.used_bytes() == 0);

  MemoryChunkCache off(0);
  CHECK_FALSE(off.put(k, 0, bytes_of(10, 1)));
  CHECK(off.get(k, 0) == nullptr);
  CHECK(off.used_bytes() == 0);
}

TEST_CASE("memory cache: evicted values stay alive for their holders", "[cache][memory]") {
  MemoryChunkCache c(2 * (1000 + kOv), 1);
  auto k = xorb_key(4);
  REQUIRE(c.put(k, 0, bytes_of(1000, 0xab)));
  ChunkBytes held = c.get(k, 0);
  std::weak_ptr<const std::vector<uint8_t>> weak = held;
  REQUIRE(c.put(k, 1, bytes_of(1000, 1)));
  REQUIRE(c.put(k, 2, bytes_of(1000, 2)));  // evicts 0
  CHECK(c.get(k, 0) == nullptr);
  REQUIRE(held);
  CHECK(*held == std::vector<uint8_t>(1000, 0xab));
  held.reset();
  CHECK(weak.expired());  // the cache no longer referenced it
}

TEST_CASE("memory cache: byte bound holds under 8 concurrent threads", "[cache][memory]") {
  const uint64_t max = 256 * 1024;
  MemoryChunkCache c(max);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> peak{0}, wrong{0};
  std::thread sampler([&] {
    while (!stop.load()) {
      uint64_t u = c.used_bytes();
      if (u > peak.load()) peak.store(u);
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      uint64_t s = static_cast<uint64_t>(t) + 1;
      for (int i = 0; i < 20000; ++i) {
        uint64_t r = splitmix64(s);
        uint64_t id = r % 4;
        uint32_t idx = static_cast<uint32_t>((r >> 8) % 300);
        if ((r >> 40) % 3 == 0) {
          c.put(xorb_key(id), idx, make_chunk(id, idx, 6000));
        } else if (auto v = c.get(xorb_key(id), idx)) {
          if (*v != chunk_content(id, idx, 6000)) wrong.fetch_add(1);
        }
        if ((r >> 50) % 1000 == 0) c.erase(xorb_key(id), idx);
      }
    });
  }
  for (auto& t : ts) t.join();
  stop = true;
  sampler.join();
  CHECK(wrong.load() == 0);
  CHECK(peak.load() <= max);
  CHECK(peak.load() > max / 2);  // the workload did fill it
  CHECK(c.used_bytes() <= max);
  auto st = c.stats();
  CHECK(st.evictions > 0);
  CHECK(st.hits > 0);
}
