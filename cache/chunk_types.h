// Types shared by the chunk caches (memory and disk).
//
// A xorb is identified by its raw 32-byte hash (not hex): the cache does not depend on the Xet
// codec. A chunk is identified by (xorb key, chunk index inside the xorb). Decoded chunk bytes
// are immutable once published and shared by reference: a reader holding a ChunkBytes keeps the
// data alive regardless of what any cache evicts afterwards.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace hf::cache {

using Key32 = std::array<uint8_t, 32>;
using ChunkBytes = std::shared_ptr<const std::vector<uint8_t>>;  // immutable decoded chunk

// Hash of a xorb key for hash tables. Keys come from the network, so the hash mixes all 32
// bytes (XXH3) instead of trusting the first 8 to be uniformly distributed.
struct Key32Hash {
  size_t operator()(const Key32& k) const noexcept;
};

}  // namespace hf::cache
