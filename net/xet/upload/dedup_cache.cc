#include "net/xet/upload/dedup_cache.h"

#include "net/xet/chunker.h"
#include "net/xet/xorb.h"

namespace hf::xet {

Status DedupShardCache::add(const Shard& shard, int64_t now_unix) {
  if (limits_.max_shards == 0 || limits_.max_entries == 0) {
    return Error(Errc::invalid_argument, "dedup shard cache disabled");
  }
  if (!shard.footer) return Error(Errc::invalid_argument, "dedup shard without footer (no key, no expiry)");
  const ShardFooter& f = *shard.footer;
  if (now_unix < 0 || static_cast<uint64_t>(now_unix) >= f.shard_key_expiry) {
    return Error(Errc::invalid_argument, "dedup shard key has expired");
  }
  Cached c;
  c.key = f.chunk_hash_hmac_key;
  c.expiry = f.shard_key_expiry;
  for (const XorbInfo& x : shard.xorbs) {
    if (x.chunks.empty() || x.chunks.size() > kMaxXorbChunks) continue;  // not a xorb the CAS could hold
    if (c.chunks.size() + x.chunks.size() > limits_.max_entries) break;
    uint32_t xi = static_cast<uint32_t>(c.xorbs.size());
    c.xorbs.push_back(x.xorb_hash);
    for (uint32_t i = 0; i < x.chunks.size(); ++i) {
      const XorbChunkEntry& e = x.chunks[i];
      if (e.unpacked_bytes == 0 || e.unpacked_bytes > kMaxChunk) continue;
      c.chunks.emplace(e.chunk_hash, Entry{xi, i, e.unpacked_bytes});  // first occurrence wins
    }
  }
  if (c.chunks.empty()) return Error(Errc::invalid_argument, "dedup shard lists no usable chunk");
  // Expired answers go first, then the oldest, until the new one fits.
  std::erase_if(shards_, [&](const Cached& s) {
    bool dead = static_cast<uint64_t>(now_unix) >= s.expiry;
    if (dead) entries_ -= s.chunks.size();
    return dead;
  });
  while (!shards_.empty() &&
         (shards_.size() >= limits_.max_shards || entries_ + c.chunks.size() > limits_.max_entries)) {
    entries_ -= shards_.front().chunks.size();
    shards_.pop_front();
  }
  entries_ += c.chunks.size();
  shards_.push_back(std::move(c));
  return {};
}

std::optional<CasChunkRef> DedupShardCache::find(const Hash& h, uint32_t len, int64_t now_unix,
                                                 std::optional<CasChunkRef> continues) const {
  std::optional<CasChunkRef> first;
  for (auto it = shards_.rbegin(); it != shards_.rend(); ++it) {  // newest first
    const Cached& s = *it;
    if (now_unix < 0 || static_cast<uint64_t>(now_unix) >= s.expiry) continue;
    auto e = s.chunks.find(s.key.is_zero() ? h : hmac(h, s.key));
    if (e == s.chunks.end() || e->second.len != len) continue;
    CasChunkRef ref{s.xorbs[e->second.xorb], e->second.index};
    if (!continues || (continues->xorb == ref.xorb && continues->index + 1 == ref.index)) return ref;
    if (!first) first = ref;
  }
  return first;
}

}  // namespace hf::xet
