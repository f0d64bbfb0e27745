// Xet hashes (spec §1, §3): 32-byte keyed BLAKE3 outputs, their "xet-hex" text form, and the
// aggregations built on them (merkle root, xorb hash, file hash, range/verification hash, HMAC).
//
// All functions are pure and thread-safe. Nothing here allocates except hex() and the
// std::vector inside MerkleBuilder's per-level state (bounded: < 9 nodes per tree level).
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hf::xet {

// A hash exactly as BLAKE3 produced it ("raw bytes"). Binary formats (shards, xorb footers,
// HMAC/verification inputs) carry these bytes unchanged; text forms use hex() (§1.2).
struct Hash {
  std::array<uint8_t, 32> bytes{};

  static Hash zero() { return Hash{}; }
  static Hash from_bytes(const uint8_t* p) {
    Hash h;
    std::memcpy(h.bytes.data(), p, 32);
    return h;
  }
  bool is_zero() const;

  // Little-endian u64 word `i` (0..3) of the raw bytes: XC's `DataHash([u64; 4])` view.
  uint64_t word(int i) const {
    uint64_t w;
    std::memcpy(&w, bytes.data() + 8 * i, 8);
    return w;  // the project only supports little-endian hosts, like XC
  }

  // xet-hex: each 8-byte word byte-reversed, lowercase hex (64 chars).
  std::string hex() const;
  // Writes the 64 xet-hex characters to `out` (no terminator).
  void hex_into(char* out) const;
  // Exactly 64 hex characters, either case; Errc::invalid_argument otherwise.
  static Result<Hash> from_hex(std::string_view s);

  // `h % n` as XC defines it (§1.3): the last 8 raw bytes as little-endian u64, modulo n.
  uint64_t mod(uint64_t n) const { return word(3) % n; }

  bool operator==(const Hash& o) const { return bytes == o.bytes; }
  // Orders like XC's derived Ord on [u64; 4] (word 0 first, each word numerically), which
  // is the order XC uses for shard blocks (§12.29).
  std::strong_ordering operator<=>(const Hash& o) const {
    for (int i = 0; i < 4; ++i) {
      uint64_t a = word(i), b = o.word(i);
      if (a != b) return a < b ? std::strong_ordering::less : std::strong_ordering::greater;
    }
    return std::strong_ordering::equal;
  }
};

// For unordered containers: the first 8 bytes of a BLAKE3 output are uniformly distributed.
struct HashHasher {
  size_t operator()(const Hash& h) const { return static_cast<size_t>(h.word(0)); }
};

// A merkle leaf / node: a hash and the number of raw bytes it covers.
struct HashSize {
  Hash hash;
  uint64_t size = 0;
};

// The three protocol keys (§3.1).
extern const std::array<uint8_t, 32> kDataKey;
extern const std::array<uint8_t, 32> kInternalNodeKey;
extern const std::array<uint8_t, 32> kVerificationKey;

// BLAKE3 keyed hash of `data` with a 32-byte key.
Hash keyed_hash(const std::array<uint8_t, 32>& key, std::span<const uint8_t> data);

// §3.2: BLAKE3_keyed(DATA_KEY, data).
Hash chunk_hash(std::span<const uint8_t> data);

// §3.3 aggregation. Empty -> zero hash; one leaf -> that leaf's hash (no hashing).
Hash merkle_root(std::span<const HashSize> leaves);
// §3.4: identical to merkle_root (empty -> zero).
Hash xorb_hash(std::span<const HashSize> chunks);
// §3.5: empty -> zero hash; else BLAKE3_keyed(key = 32 zero bytes, msg = merkle_root).
Hash file_hash(std::span<const HashSize> chunks);
// §3.7: BLAKE3_keyed(VERIFICATION_KEY, concat of raw chunk hashes).
Hash range_hash(std::span<const Hash> chunk_hashes);
// §3.6: BLAKE3_keyed(key, raw bytes of h).
Hash hmac(const Hash& h, const Hash& key);
// §3.8: h % 1024 == 0.
inline bool is_global_dedup_eligible(const Hash& h) { return h.mod(1024) == 0; }

// The internal-node hash of one group (exposed for tests and tools): hashes the text
// "{xet-hex} : {size}\n" per child with INTERNAL_NODE_KEY; size = sum of child sizes.
HashSize merge_nodes(std::span<const HashSize> group);

// Incremental §3.3 aggregation: add leaves one at a time, finish() returns the root.
// Memory is O(levels * 9) nodes, so a 100 GB file needs no vector of all its leaves.
// Produces exactly merkle_root(all leaves). Not thread-safe; reusable after reset().
class MerkleBuilder {
 public:
  void add(const Hash& h, uint64_t size) { add(HashSize{h, size}); }
  void add(const HashSize& leaf);
  uint64_t leaf_count() const { return leaf_count_; }
  uint64_t total_size() const { return total_size_; }
  // Root hash; zero for no leaves. Leaves the builder in the reset state.
  Hash finish();
  // finish() then BLAKE3_keyed(zero key, root), or zero if no leaves (§3.5).
  Hash finish_file_hash();
  void reset();

 private:
  struct Level {
    std::vector<HashSize> pending;  // nodes not yet grouped (< 9 after push_ready)
    uint64_t emitted = 0;           // nodes of this level already merged into the next
  };
  void push(size_t level, const HashSize& node);
  std::vector<Level> levels_;
  uint64_t leaf_count_ = 0;
  uint64_t total_size_ = 0;
};

}  // namespace hf::xet
