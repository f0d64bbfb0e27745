#include "net/xet/chunker.h"

#include <algorithm>

namespace hf::xet {

namespace {

// §2.4: the first MIN - 64 - 1 bytes of a chunk are not hashed. The gear state after a byte
// depends only on the last 64 bytes, so every tested position (size >= MIN) sees the same
// state as the byte-by-byte definition of §2.3.
constexpr uint64_t kSkip = kMinChunk - 64 - 1;

}  // namespace

size_t Chunker::next(std::span<const uint8_t> data, bool& boundary) {
  const uint8_t* p = data.data();
  const size_t n = data.size();
  const uint64_t* const table = kGearTable;
  size_t i = 0;
  boundary = false;

  if (cur_ < kSkip) {
    size_t s = static_cast<size_t>(std::min<uint64_t>(kSkip - cur_, n));
    cur_ += s;
    i += s;
    if (i == n) {
      offset_ += n;
      return n;
    }
    h_ = 0;
  }

  uint64_t h = h_;
  // Warm-up: hash without testing until the next byte would complete a MIN-sized chunk.
  if (cur_ < kMinChunk - 1) {
    size_t s = static_cast<size_t>(std::min<uint64_t>(kMinChunk - 1 - cur_, n - i));
    for (size_t k = 0; k < s; ++k) h = (h << 1) + table[p[i + k]];
    i += s;
    cur_ += s;
    if (i == n) {
      h_ = h;
      offset_ += n;
      return n;
    }
  }

  // Test zone: every byte may end the chunk; at most MAX - cur_ bytes remain in it.
  const size_t lim = static_cast<size_t>(std::min<uint64_t>(n - i, kMaxChunk - cur_));
  const uint8_t* q = p + i;
  size_t k = 0;
  // Unrolled by 8; the only per-byte branch is the (almost never taken) mask test.
  for (; k + 8 <= lim; k += 8) {
#define HF_GEAR_STEP(j)                     \
  h = (h << 1) + table[q[k + (j)]];         \
  if ((h & kGearMask) == 0) {               \
    k += (j) + 1;                           \
    goto found;                             \
  }
    HF_GEAR_STEP(0)
    HF_GEAR_STEP(1)
    HF_GEAR_STEP(2)
    HF_GEAR_STEP(3)
    HF_GEAR_STEP(4)
    HF_GEAR_STEP(5)
    HF_GEAR_STEP(6)
    HF_GEAR_STEP(7)
#undef HF_GEAR_STEP
  }
  for (; k < lim; ++k) {
    h = (h << 1) + table[q[k]];
    if ((h & kGearMask) == 0) {
      ++k;
      goto found;
    }
  }
  cur_ += lim;
  i += lim;
  offset_ += i;
  if (cur_ == kMaxChunk) {  // forced cut, whether or not the mask matched
    boundary = true;
    cur_ = 0;
    h_ = 0;
    return i;
  }
  h_ = h;
  return i;

found:
  i += k;
  offset_ += i;
  boundary = true;
  cur_ = 0;
  h_ = 0;
  return i;
}

std::optional<uint64_t> next_stable_chunk_boundary(uint64_t p, std::span<const uint64_t> ends) {
  size_t i = static_cast<size_t>(std::lower_bound(ends.begin(), ends.end(), p) - ends.begin());
  for (; i + 2 < ends.size(); ++i) {
    if (is_stable_chunk_size(ends[i + 1] - ends[i]) && is_stable_chunk_size(ends[i + 2] - ends[i + 1])) {
      return ends[i + 2];
    }
  }
  return std::nullopt;
}

void Chunker::feed(std::span<const uint8_t> data, std::vector<uint64_t>& ends) {
  size_t pos = 0;
  while (pos < data.size()) {
    bool boundary;
    pos += next(data.subspan(pos), boundary);
    if (boundary) ends.push_back(offset_);
  }
}

void Chunker::finish(std::vector<uint64_t>& ends) {
  if (cur_ > 0) ends.push_back(offset_);
  reset();
}

void ChunkStream::emit(std::span<const uint8_t> data) {
  StreamChunk c;
  c.offset = emitted_offset_;
  c.data = data;
  if (hash_) c.hash = chunk_hash(data);
  emitted_offset_ += data.size();
  out_.push_back(c);
}

const std::vector<StreamChunk>& ChunkStream::feed(std::span<const uint8_t> data) {
  out_.clear();
  size_t pos = 0;
  while (pos < data.size()) {
    bool boundary;
    size_t used = chunker_.next(data.subspan(pos), boundary);
    if (!boundary) {
      carry_.insert(carry_.end(), data.begin() + static_cast<ptrdiff_t>(pos), data.end());
      break;
    }
    if (carry_.empty()) {
      emit(data.subspan(pos, used));  // zero-copy: the whole chunk is in the caller's span
    } else {
      // At most one chunk per call spans calls; move it out so carry_ can take the tail.
      carry_.insert(carry_.end(), data.begin() + static_cast<ptrdiff_t>(pos),
                    data.begin() + static_cast<ptrdiff_t>(pos + used));
      emitted_.swap(carry_);
      carry_.clear();
      emit(emitted_);
    }
    pos += used;
  }
  return out_;
}

const std::vector<StreamChunk>& ChunkStream::finish() {
  out_.clear();
  if (!carry_.empty()) {
    emitted_.swap(carry_);
    carry_.clear();
    emit(emitted_);
  }
  std::vector<uint64_t> ignored;
  chunker_.finish(ignored);
  emitted_offset_ = 0;
  return out_;
}

}  // namespace hf::xet
