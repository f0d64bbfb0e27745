// Chunks the CAS already stores, learnt from global-dedup answers (xet-protocol.md §7.4, the
// response is a §5.8 shape-2 shard): its CAS section lists xorbs with HMAC-keyed chunk hashes,
// the key and its expiry are in the footer.
//
// The shard bytes come from the network, so nothing in them is trusted beyond what is checked
// here: shards without a footer or with an expired key are refused; xorbs with more chunks than
// a xorb may hold, chunks with impossible sizes and chunks whose length differs from the local
// one are ignored. Memory is bounded by `Limits` (oldest shards are evicted first).
//
// A wrong answer from a hostile server (a chunk claimed to be somewhere it is not) cannot
// corrupt data: the CAS validates every uploaded shard's terms against the stored xorbs (§9.4)
// and refuses it, so such an upload fails instead.
//
// Not thread-safe: owned by one UploadSession.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "net/xet/hash.h"
#include "net/xet/shard.h"

namespace hf::xet {

// A chunk stored in the CAS: chunk `index` of xorb `xorb`.
struct CasChunkRef {
  Hash xorb;
  uint32_t index = 0;
  bool operator==(const CasChunkRef&) const = default;
};

struct DedupCacheLimits {
  size_t max_shards = 8;           // cached answers
  size_t max_entries = 256 << 10;  // chunk entries over all cached answers (~20 MiB of index)
};

class DedupShardCache {
 public:
  using Limits = DedupCacheLimits;

  explicit DedupShardCache(Limits limits = {}) : limits_(limits) {}

  // Adds one dedup answer. Errc::invalid_argument (nothing added) when it has no footer, its key
  // has expired at `now_unix` (seconds), or it holds no usable chunk. Evicts the oldest answers
  // to stay within the limits; an answer larger than max_entries is cut at a xorb boundary.
  Status add(const Shard& shard, int64_t now_unix);

  // Where the CAS holds a chunk with hash `h` and raw length `len`, from answers whose key is
  // still valid at `now_unix`. When several answers know the chunk, the location right after
  // `continues` (same xorb, next index) wins, so runs stay in one term.
  std::optional<CasChunkRef> find(const Hash& h, uint32_t len, int64_t now_unix,
                                  std::optional<CasChunkRef> continues = std::nullopt) const;

  size_t shards() const { return shards_.size(); }
  size_t entries() const { return entries_; }

 private:
  struct Entry {
    uint32_t xorb;  // index into Cached::xorbs
    uint32_t index;
    uint32_t len;
  };
  struct Cached {
    Hash key;    // zero: chunk hashes are stored un-keyed
    uint64_t expiry = 0;
    std::vector<Hash> xorbs;
    std::unordered_map<Hash, Entry, HashHasher> chunks;  // keyed chunk hash -> where
  };

  Limits limits_;
  std::deque<Cached> shards_;  // oldest first
  size_t entries_ = 0;
};

}  // namespace hf::xet
