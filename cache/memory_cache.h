// In-memory cache of decoded chunks, bounded in bytes.
//
// Policy: LRU, sharded by key hash (default 16 shards, each with its own mutex, list and hash
// map; capacity split evenly). Why LRU rather than S3-FIFO/CLOCK: this cache sits in front of
// the disk cache and holds chunks that concurrent and nearby reads are about to touch again
// (read-around, overlapping ranges, several handles on one file); recency is the right signal
// there, and scan pollution is cheap because a scan's chunks are also on disk. A hit costs one
// uncontended mutex and an O(1) list splice, which is far below the cost of producing a chunk.
//
// Accounting: each entry is charged value->size() + kEntryOverhead. A shard never holds more
// than its capacity (eviction happens before insertion under the shard lock), so used_bytes()
// never exceeds max_bytes. A value larger than a shard's capacity is not cached.
//
// Thread-safety: every member is thread-safe. Values are shared_ptr: a reader keeps a chunk
// alive after the cache evicted or erased it. max_bytes = 0 disables the cache (every get
// misses, put is a no-op).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cache/chunk_types.h"

namespace hf::cache {

class MemoryChunkCache {
 public:
  static constexpr uint64_t kEntryOverhead = 128;  // list node + map node + key, approximately

  // `shards` is rounded up to a power of two (>= 1). Use shards = 1 for exact global LRU order.
  explicit MemoryChunkCache(uint64_t max_bytes, unsigned shards = 16);
  ~MemoryChunkCache();
  MemoryChunkCache(const MemoryChunkCache&) = delete;
  MemoryChunkCache& operator=(const MemoryChunkCache&) = delete;

  // nullptr on miss. A hit makes the entry most recently used.
  ChunkBytes get(const Key32& xorb, uint32_t index);
  // Inserts or replaces; evicts least recently used entries of the shard to make room. Returns
  // false if the value was not cached (null, too large, or cache disabled).
  bool put(const Key32& xorb, uint32_t index, ChunkBytes value);
  bool erase(const Key32& xorb, uint32_t index);
  void clear();

  uint64_t used_bytes() const { return used_.load(std::memory_order_relaxed); }
  uint64_t max_bytes() const { return max_bytes_; }

  struct Stats {
    uint64_t hits = 0, misses = 0, inserts = 0, evictions = 0, entries = 0;
  };
  Stats stats() const;

 private:
  struct Shard;
  Shard& shard_for(const Key32& xorb, uint32_t index, size_t* hash);

  uint64_t max_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
  size_t shard_mask_ = 0;
  std::atomic<uint64_t> used_{0};
};

}  // namespace hf::cache
