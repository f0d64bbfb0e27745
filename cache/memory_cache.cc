#include "cache/memory_cache.h"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace hf::cache {

namespace {

struct ChunkKey {
  Key32 xorb;
  uint32_t index;
  bool operator==(const ChunkKey&) const = default;
};

// The table stores the precomputed hash, so the hasher only has to hand it back.
struct PrecomputedHash {
  size_t operator()(const std::pair<size_t, ChunkKey>& k) const noexcept { return k.first; }
};
struct KeyEq {
  bool operator()(const std::pair<size_t, ChunkKey>& a,
                  const std::pair<size_t, ChunkKey>& b) const noexcept {
    return a.first == b.first && a.second == b.second;
  }
};

size_t hash_key(const Key32& xorb, uint32_t index) {
  uint8_t buf[36];
  std::memcpy(buf, xorb.data(), 32);
  std::memcpy(buf + 32, &index, 4);
  return static_cast<size_t>(XXH3_64bits(buf, sizeof buf));
}

}  // namespace

struct MemoryChunkCache::Shard {
  struct Node {
    std::pair<size_t, ChunkKey> key;
    ChunkBytes value;
    uint64_t charge;
  };
  using List = std::list<Node>;

  std::mutex mu;
  List lru;  // front = most recently used
  std::unordered_map<std::pair<size_t, ChunkKey>, List::iterator, PrecomputedHash, KeyEq> map;
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t hits = 0, misses = 0, inserts = 0, evictions = 0;
};

MemoryChunkCache::MemoryChunkCache(uint64_t max_bytes, unsigned shards) : max_bytes_(max_bytes) {
  size_t n = std::bit_ceil(std::max(1u, shards));
  shard_mask_ = n - 1;
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<Shard>();
    // Split evenly; the first shards take the remainder so the capacities sum to max_bytes.
    s->capacity = max_bytes / n + (i < max_bytes % n ? 1 : 0);
    shards_.push_back(std::move(s));
  }
}

MemoryChunkCache::~MemoryChunkCache() = default;

MemoryChunkCache::Shard& MemoryChunkCache::shard_for(const Key32& xorb, uint32_t index,
                                                     size_t* hash) {
  *hash = hash_key(xorb, index);
  // High bits pick the shard; the hash table uses the low bits.
  return *shards_[(*hash >> 48) & shard_mask_];
}

ChunkBytes MemoryChunkCache::get(const Key32& xorb, uint32_t index) {
  if (max_bytes_ == 0) return nullptr;
  size_t h;
  Shard& s = shard_for(xorb, index, &h);
  std::lock_guard lk(s.mu);
  auto it = s.map.find({h, ChunkKey{xorb, index}});
  if (it == s.map.end()) {
    ++s.misses;
    return nullptr;
  }
  ++s.hits;
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return it->second->value;
}

bool MemoryChunkCache::put(const Key32& xorb, uint32_t index, ChunkBytes value) {
  if (max_bytes_ == 0 || !value) return false;
  size_t h;
  Shard& s = shard_for(xorb, index, &h);
  const uint64_t charge = value->size() + kEntryOverhead;
  if (charge > s.capacity) return false;
  std::pair<size_t, ChunkKey> key{h, ChunkKey{xorb, index}};

  // Destroy evicted values outside the lock (the last reference may free megabytes).
  std::vector<ChunkBytes> dropped;
  {
    std::lock_guard lk(s.mu);
    auto it = s.map.find(key);
    if (it != s.map.end()) {
      Shard::Node& n = *it->second;
      s.used -= n.charge;
      used_.fetch_sub(n.charge, std::memory_order_relaxed);
      dropped.push_back(std::move(n.value));
      s.lru.erase(it->second);
      s.map.erase(it);
    }
    // Evict before inserting so the shard (and thus the total) never exceeds its capacity.
    while (s.used + charge > s.capacity && !s.lru.empty()) {
      Shard::Node& victim = s.lru.back();
      s.used -= victim.charge;
      used_.fetch_sub(victim.charge, std::memory_order_relaxed);
      dropped.push_back(std::move(victim.value));
      s.map.erase(victim.key);
      s.lru.pop_back();
      ++s.evictions;
    }
    s.lru.push_front(Shard::Node{key, std::move(value), charge});
    s.map.emplace(key, s.lru.begin());
    s.used += charge;
    used_.fetch_add(charge, std::memory_order_relaxed);
    ++s.inserts;
  }
  return true;
}

bool MemoryChunkCache::erase(const Key32& xorb, uint32_t index) {
  if (max_bytes_ == 0) return false;
  size_t h;
  Shard& s = shard_for(xorb, index, &h);
  ChunkBytes dropped;
  std::lock_guard lk(s.mu);
  auto it = s.map.find({h, ChunkKey{xorb, index}});
  if (it == s.map.end()) return false;
  s.used -= it->second->charge;
  used_.fetch_sub(it->second->charge, std::memory_order_relaxed);
  dropped = std::move(it->second->value);
  s.lru.erase(it->second);
  s.map.erase(it);
  return true;
}

void MemoryChunkCache::clear() {
  for (auto& sp : shards_) {
    Shard::List victims;
    {
      std::lock_guard lk(sp->mu);
      used_.fetch_sub(sp->used, std::memory_order_relaxed);
      sp->used = 0;
      sp->map.clear();
      victims.swap(sp->lru);
    }
  }
}

MemoryChunkCache::Stats MemoryChunkCache::stats() const {
  Stats st;
  for (auto& sp : shards_) {
    std::lock_guard lk(sp->mu);
    st.hits += sp->hits;
    st.misses += sp->misses;
    st.inserts += sp->inserts;
    st.evictions += sp->evictions;
    st.entries += sp->map.size();
  }
  return st;
}

}  // namespace hf::cache
