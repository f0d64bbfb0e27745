#include "cache/chunk_types.h"

#include <xxhash.h>

namespace hf::cache {

size_t Key32Hash::operator()(const Key32& k) const noexcept {
  return static_cast<size_t>(XXH3_64bits(k.data(), k.size()));
}

}  // namespace hf::cache
