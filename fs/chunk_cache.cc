#include "fs/chunk_cache.h"

#include "base/log.h"
#include "net/xet/xorb.h"

namespace hf::fs {

ChunkCache::ChunkCache(uint64_t memory_bytes, std::unique_ptr<cache::DiskChunkStore> disk, uint64_t max_queue_bytes)
    : mem_(memory_bytes), disk_(std::move(disk)), max_queue_bytes_(max_queue_bytes) {
  if (disk_) writer_ = std::thread([this] { writer_loop(); });
}

ChunkCache::~ChunkCache() {
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lk(mu_);
    waiters.swap(room_waiters_);
  }
  for (auto& w : waiters) w();
}

void ChunkCache::when_disk_room(std::function<void()> ready) {
  if (disk_) {
    std::lock_guard lk(mu_);
    const bool stalled = writing_ && std::chrono::steady_clock::now() - write_started_ > std::chrono::seconds(2);
    if (queued_bytes_ > max_queue_bytes_ / 2 && !stop_ && !stalled) {
      room_waiters_.push_back(std::move(ready));
      return;
    }
  }
  ready();
}

ChunkBytes ChunkCache::get_memory(const Key32& xorb, uint32_t index) {
  ChunkBytes b = mem_.get(xorb, index);
  if (b) mem_hits_.fetch_add(1, std::memory_order_relaxed);
  return b;
}

ChunkBytes ChunkCache::get(const Key32& xorb, uint32_t index) {
  if (ChunkBytes b = mem_.get(xorb, index)) {
    mem_hits_.fetch_add(1, std::memory_order_relaxed);
    return b;
  }
  if (disk_) {
    auto r = disk_->get(xorb, index);
    if (r.ok() && *r) {
      disk_hits_.fetch_add(1, std::memory_order_relaxed);
      mem_.put(xorb, index, *r);
      return *r;
    }
    if (!r.ok()) HF_LOG_DEBUG("cache", "disk cache read failed: {}", r.error().describe());
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void ChunkCache::get_range(const Key32& xorb, uint32_t first, uint32_t end, std::vector<ChunkBytes>& out) {
  out.clear();
  uint32_t idx = first;
  uint64_t from_memory = 0, from_disk_total = 0;
  std::vector<ChunkBytes> from_disk;
  while (idx < end) {
    if (ChunkBytes b = mem_.get(xorb, idx)) {
      out.push_back(std::move(b));
      ++from_memory, ++idx;
      continue;
    }
    if (!disk_) break;
    // The gap of memory misses goes to the disk as one range read.
    uint32_t gap_end = idx + 1;
    while (gap_end < end && !mem_.get(xorb, gap_end)) ++gap_end;
    Status st = disk_->get_range(xorb, idx, gap_end, from_disk);
    if (!st.ok()) HF_LOG_DEBUG("cache", "disk cache read failed: {}", st.error().describe());
    from_disk_total += from_disk.size();
    // Not promoted to memory: a sequential re-read would push what random readers use out of
    // it, for data the kernel already keeps in the run files' page cache; and a buffer freed
    // right after the reply is reused by the next read (promoting 512 MiB of chunks made a
    // fresh page fault, plus its zero-fill, of every fourth chunk read).
    for (auto& b : from_disk) {
      ++idx;
      out.push_back(std::move(b));
    }
    if (idx < gap_end) break;  // a chunk in neither tier
  }
  mem_hits_.fetch_add(from_memory, std::memory_order_relaxed);
  disk_hits_.fetch_add(from_disk_total, std::memory_order_relaxed);
  if (idx < end) misses_.fetch_add(1, std::memory_order_relaxed);
}

bool ChunkCache::contains(const Key32& xorb, uint32_t index) {
  if (mem_.get(xorb, index)) return true;
  return disk_ && disk_->contains(xorb, index);
}

void ChunkCache::insert_run(const Key32& xorb, uint32_t first, std::vector<ChunkBytes> chunks) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    mem_.put(xorb, first + static_cast<uint32_t>(i), chunks[i]);
    bytes += chunks[i]->size();
  }
  queue_for_disk(xorb, first, std::move(chunks), bytes);
}

void ChunkCache::insert_uploaded_xorb(const Key32& xorb, std::span<const uint8_t> serialized) {
  if (!disk_) return;
  std::vector<ChunkBytes> chunks;
  uint64_t bytes = 0;
  xet::ChunkRecordDecoder decoder(/*stop_at_footer=*/true);
  Status st = decoder.feed(serialized, [&](uint32_t, std::span<const uint8_t> raw, uint32_t) {
    chunks.push_back(std::make_shared<const std::vector<uint8_t>>(raw.begin(), raw.end()));
    bytes += raw.size();
    return Status{};
  });
  if (st.ok()) st = decoder.finish();
  if (!st.ok()) {
    HF_LOG_DEBUG("cache", "uploaded xorb not kept: {}", st.error().describe());
    return;
  }
  queue_for_disk(xorb, 0, std::move(chunks), bytes);
}

void ChunkCache::queue_for_disk(const Key32& xorb, uint32_t first, std::vector<ChunkBytes> chunks, uint64_t bytes) {
  if (!disk_ || chunks.empty()) return;
  {
    std::lock_guard lk(mu_);
    if (queued_bytes_ + bytes > max_queue_bytes_) {
      // The disk cannot keep up with the network; the data is still served from memory.
      runs_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queued_bytes_ += bytes;
    queue_.push_back(Run{xorb, first, std::move(chunks), bytes});
  }
  runs_queued_.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_one();
}

void ChunkCache::writer_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    Run run = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    lk.unlock();
    Status st = disk_->put_run(run.xorb, run.first, run.chunks);
    if (!st.ok()) HF_LOG_WARN("cache", "disk cache write failed: {}", st.error().describe());
    run.chunks.clear();  // before waking fetchers: their data replaces this
    lk.lock();
    writing_ = false;
    queued_bytes_ -= run.bytes;
    if (queue_.empty()) idle_cv_.notify_all();
    if (!room_waiters_.empty() && queued_bytes_ <= max_queue_bytes_ / 2) {
      std::vector<std::function<void()>> waiters;
      waiters.swap(room_waiters_);
      lk.unlock();
      for (auto& w : waiters) w();
      lk.lock();
    }
  }
}

void ChunkCache::flush() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return (queue_.empty() && !writing_) || !writer_.joinable(); });
}

ChunkCacheStats ChunkCache::stats() const {
  ChunkCacheStats s;
  s.mem_hits = mem_hits_.load();
  s.disk_hits = disk_hits_.load();
  s.misses = misses_.load();
  s.runs_queued = runs_queued_.load();
  s.runs_dropped = runs_dropped_.load();
  s.mem_bytes = mem_.used_bytes();
  s.disk_bytes = disk_ ? disk_->used_bytes() : 0;
  return s;
}

}  // namespace hf::fs
