#include "net/xet/hash.h"

#include <blake3.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace hf::xet {

const std::array<uint8_t, 32> kDataKey = {102, 151, 245, 119, 91,  149, 80,  222, 49,  53, 203,
                                          172, 165, 151, 24,  28,  157, 228, 33,  16,  155, 235,
                                          43,  88,  180, 208, 176, 75,  147, 173, 242, 41};
const std::array<uint8_t, 32> kInternalNodeKey = {1,   126, 197, 199, 165, 71,  41,  150, 253, 148, 102,
                                                  102, 180, 138, 2,   230, 93,  221, 83,  111, 55,  199,
                                                  109, 210, 248, 99,  82,  230, 74,  83,  113, 63};
const std::array<uint8_t, 32> kVerificationKey = {127, 24,  87,  214, 206, 86, 237, 102, 18,  127, 249,
                                                  19,  231, 165, 195, 243, 164, 205, 38, 213, 181, 219,
                                                  73,  230, 65,  36,  152, 127, 40,  251, 148, 195};

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Upper bound of one merkle text line: 64 hex + " : " + 20 digits + "\n".
constexpr size_t kMaxLine = 64 + 3 + 20 + 1;
constexpr size_t kMaxGroup = 9;  // 2 * MEAN_BRANCHING + 1

// §3.3 next_merge_cut for a slice that is known to be the tail of its level.
size_t next_merge_cut_tail(std::span<const HashSize> nodes) {
  if (nodes.size() <= 2) return nodes.size();
  size_t end = std::min(kMaxGroup, nodes.size());
  for (size_t i = 2; i < end; ++i) {
    if (nodes[i].hash.mod(4) == 0) return i + 1;
  }
  return end;
}

}  // namespace

bool Hash::is_zero() const {
  return (word(0) | word(1) | word(2) | word(3)) == 0;
}

void Hash::hex_into(char* out) const {
  for (int w = 0; w < 4; ++w) {
    for (int b = 7; b >= 0; --b) {
      uint8_t v = bytes[8 * w + b];
      *out++ = kHexDigits[v >> 4];
      *out++ = kHexDigits[v & 15];
    }
  }
}

std::string Hash::hex() const {
  std::string s(64, '\0');
  hex_into(s.data());
  return s;
}

Result<Hash> Hash::from_hex(std::string_view s) {
  if (s.size() != 64) {
    return make_error(Errc::invalid_argument,
                      fmt::format("hash must be 64 hex characters, got {}", s.size()));
  }
  Hash h;
  for (int w = 0; w < 4; ++w) {
    for (int b = 0; b < 8; ++b) {
      int hi = hex_value(s[16 * w + 2 * b]);
      int lo = hex_value(s[16 * w + 2 * b + 1]);
      if (hi < 0 || lo < 0) return make_error(Errc::invalid_argument, "hash contains a non-hex character");
      h.bytes[8 * w + (7 - b)] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
  return h;
}

Hash keyed_hash(const std::array<uint8_t, 32>& key, std::span<const uint8_t> data) {
  blake3_hasher hasher;
  blake3_hasher_init_keyed(&hasher, key.data());
  blake3_hasher_update(&hasher, data.data(), data.size());
  Hash h;
  blake3_hasher_finalize(&hasher, h.bytes.data(), 32);
  return h;
}

Hash chunk_hash(std::span<const uint8_t> data) { return keyed_hash(kDataKey, data); }

Hash hmac(const Hash& h, const Hash& key) { return keyed_hash(key.bytes, h.bytes); }

Hash range_hash(std::span<const Hash> chunk_hashes) {
  blake3_hasher hasher;
  blake3_hasher_init_keyed(&hasher, kVerificationKey.data());
  for (const Hash& h : chunk_hashes) blake3_hasher_update(&hasher, h.bytes.data(), 32);
  Hash out;
  blake3_hasher_finalize(&hasher, out.bytes.data(), 32);
  return out;
}

HashSize merge_nodes(std::span<const HashSize> group) {
  // Text is built in a stack buffer; groups from the tree have at most 9 nodes, so the
  // buffer is flushed into the hasher only for unusually large caller-supplied groups.
  char text[kMaxGroup * kMaxLine];
  size_t n = 0;
  uint64_t total = 0;
  blake3_hasher hasher;
  blake3_hasher_init_keyed(&hasher, kInternalNodeKey.data());
  for (const HashSize& node : group) {
    if (n + kMaxLine > sizeof(text)) {
      blake3_hasher_update(&hasher, text, n);
      n = 0;
    }
    node.hash.hex_into(text + n);
    n += 64;
    text[n++] = ' ';
    text[n++] = ':';
    text[n++] = ' ';
    n = static_cast<size_t>(std::to_chars(text + n, text + n + 20, node.size).ptr - text);
    text[n++] = '\n';
    total += node.size;
  }
  blake3_hasher_update(&hasher, text, n);
  HashSize out;
  out.size = total;
  blake3_hasher_finalize(&hasher, out.hash.bytes.data(), 32);
  return out;
}

void MerkleBuilder::reset() {
  levels_.clear();
  leaf_count_ = 0;
  total_size_ = 0;
}

void MerkleBuilder::add(const HashSize& leaf) {
  ++leaf_count_;
  total_size_ += leaf.size;
  push(0, leaf);
}

void MerkleBuilder::push(size_t level, const HashSize& node) {
  if (levels_.size() <= level) levels_.resize(level + 1);
  levels_[level].pending.push_back(node);
  // Emit every group whose extent no later node can change: a cut at index j (2 <= j < 9)
  // is final as soon as node j is known; with 9 pending nodes and no cut the group is 9.
  for (;;) {
    auto& pending = levels_[level].pending;
    size_t p = pending.size();
    size_t cut = 0;
    size_t end = std::min(kMaxGroup, p);
    for (size_t i = 2; i < end; ++i) {
      if (pending[i].hash.mod(4) == 0) {
        cut = i + 1;
        break;
      }
    }
    if (cut == 0 && p >= kMaxGroup) cut = kMaxGroup;
    if (cut == 0) return;
    HashSize merged = merge_nodes({pending.data(), cut});
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(cut));
    levels_[level].emitted += cut;
    push(level + 1, merged);  // recursion depth <= tree height (~log4 of leaf count)
  }
}

Hash MerkleBuilder::finish() {
  Hash root = Hash::zero();
  for (size_t k = 0; k < levels_.size(); ++k) {
    auto& lv = levels_[k];
    uint64_t total = lv.emitted + lv.pending.size();
    if (total == 0) break;  // only possible for level 0 with no leaves
    if (total == 1) {
      root = lv.pending[0].hash;
      break;
    }
    // This level is complete: group its tail with the end-aware cut rule.
    while (!levels_[k].pending.empty()) {
      auto& pending = levels_[k].pending;
      size_t cut = next_merge_cut_tail(pending);
      HashSize merged = merge_nodes({pending.data(), cut});
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(cut));
      levels_[k].emitted += cut;
      push(k + 1, merged);  // may grow levels_; re-fetch references above
    }
  }
  reset();
  return root;
}

Hash MerkleBuilder::finish_file_hash() {
  bool empty = leaf_count_ == 0;
  Hash root = finish();
  if (empty) return Hash::zero();
  return hmac(root, Hash::zero());
}

Hash merkle_root(std::span<const HashSize> leaves) {
  if (leaves.empty()) return Hash::zero();
  if (leaves.size() == 1) return leaves[0].hash;
  // Batch form of §3.3, in place on one copy of the leaves.
  std::vector<HashSize> level(leaves.begin(), leaves.end());
  while (level.size() > 1) {
    size_t w = 0, r = 0;
    while (r < level.size()) {
      size_t cut = next_merge_cut_tail({level.data() + r, level.size() - r});
      level[w++] = merge_nodes({level.data() + r, cut});
      r += cut;
    }
    level.resize(w);
  }
  return level[0].hash;
}

Hash xorb_hash(std::span<const HashSize> chunks) { return merkle_root(chunks); }

Hash file_hash(std::span<const HashSize> chunks) {
  if (chunks.empty()) return Hash::zero();
  return hmac(merkle_root(chunks), Hash::zero());
}

}  // namespace hf::xet
