// The tiered chunk cache every read goes through: a byte-bounded memory cache in front of the
// shared on-disk chunk store. Disk writes happen on a dedicated writer thread so a read
// completion never waits for the disk. Fetchers wait for room in the write queue before going
// to the network (when_disk_room), so a disk slower than the network slows downloads instead of
// losing cache fills; a queue that is full anyway (a disk that stalls, many files at once) drops
// work (it is only a cache) and counts it.
//
// Thread-safety: all members are safe from any thread. Lifetime: the writer thread is joined by
// the destructor after the queue drains (bounded: at most `max_queue_bytes` pending).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "cache/chunk_store.h"
#include "cache/memory_cache.h"

namespace hf::fs {

using cache::ChunkBytes;
using cache::Key32;

struct ChunkCacheStats {
  uint64_t mem_hits = 0, disk_hits = 0, misses = 0;
  uint64_t runs_queued = 0, runs_dropped = 0;
  uint64_t mem_bytes = 0, disk_bytes = 0;
};

class ChunkCache {
 public:
  // `disk` may be null (no disk cache).
  ChunkCache(uint64_t memory_bytes, std::unique_ptr<cache::DiskChunkStore> disk,
             uint64_t max_queue_bytes = 256ull << 20);
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // Memory first, then disk (a disk hit is promoted to memory). nullptr = miss.
  ChunkBytes get(const Key32& xorb, uint32_t index);
  // Chunks first, first+1, ... < end of one xorb into `out` (cleared), stopping at the first
  // one that is in neither tier. Memory first; each gap of memory misses comes from the disk
  // with one read per covering run (the sequential re-read path); those are not promoted to
  // memory (get() promotes: that is the random-access path).
  void get_range(const Key32& xorb, uint32_t first, uint32_t end, std::vector<ChunkBytes>& out);
  // Memory only (never touches the disk): for callers on latency-critical threads.
  ChunkBytes get_memory(const Key32& xorb, uint32_t index);
  // True if the chunk is in memory or on disk (cheap; for cached-bytes accounting).
  bool contains(const Key32& xorb, uint32_t index);

  // Publishes freshly fetched chunks [first, first+n) of one xorb: into memory now, and queued
  // for the disk store.
  void insert_run(const Key32& xorb, uint32_t first, std::vector<ChunkBytes> chunks);
  // Keeps a xorb this process uploaded (its serialized chunk records, footer optional): its
  // chunks are queued for the disk store only, so writing does not push what readers use out
  // of memory, while reading the data back (now or after a remount) costs no download.
  // A body that does not decode is ignored (it is our own; nothing to serve from it).
  // CPU-bound (decompression): call it off the io threads.
  void insert_uploaded_xorb(const Key32& xorb, std::span<const uint8_t> serialized);

  // Calls `ready` once the disk write queue is at most half full: inline when it is now (or
  // there is no disk store, or the writer has been stuck on one write for over 2 s: a stalled
  // disk must not stall reads), otherwise from the writer thread or the destructor. `ready`
  // must be cheap and must not call back into this cache (it runs under no lock, but on the
  // writer thread).
  void when_disk_room(std::function<void()> ready);

  // Blocks until the disk write queue is empty (tests, unmount).
  void flush();

  ChunkCacheStats stats() const;
  cache::DiskChunkStore* disk() { return disk_.get(); }

 private:
  void queue_for_disk(const Key32& xorb, uint32_t first, std::vector<ChunkBytes> chunks, uint64_t bytes);

  struct Run {
    Key32 xorb;
    uint32_t first;
    std::vector<ChunkBytes> chunks;
    uint64_t bytes;
  };
  void writer_loop();

  cache::MemoryChunkCache mem_;
  std::unique_ptr<cache::DiskChunkStore> disk_;
  uint64_t max_queue_bytes_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work available / stop
  std::condition_variable idle_cv_;  // queue drained
  std::deque<Run> queue_;
  uint64_t queued_bytes_ = 0;
  bool writing_ = false;
  std::chrono::steady_clock::time_point write_started_;
  bool stop_ = false;
  std::vector<std::function<void()>> room_waiters_;
  std::thread writer_;

  std::atomic<uint64_t> mem_hits_{0}, disk_hits_{0}, misses_{0}, runs_queued_{0}, runs_dropped_{0};
};

}  // namespace hf::fs
