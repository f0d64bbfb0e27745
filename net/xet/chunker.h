// Content-defined chunking (spec §2): gear hash, 8 KiB min / 64 KiB target / 128 KiB max.
//
// Chunker is a pure boundary finder: it keeps only the gear state and the current chunk
// length, never a copy of the data, and its output does not depend on how the input is split
// into feed() calls (§2.5). ChunkStream adds chunk bytes and chunk hashes for producers.
// Neither class is thread-safe; use one per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "net/xet/hash.h"

namespace hf::xet {

inline constexpr size_t kMinChunk = 8192;
inline constexpr size_t kTargetChunk = 65536;
inline constexpr size_t kMaxChunk = 131072;
inline constexpr uint64_t kGearMask = 0xFFFF000000000000ull;  // (TARGET-1) shifted to the top bits

// gearhash::DEFAULT_TABLE (Appendix A).
extern const uint64_t kGearTable[256];

class Chunker {
 public:
  // Scans `data` (which continues the stream) for the next boundary. Returns the number of
  // bytes consumed; `boundary` tells whether the last consumed byte ends a chunk. When it is
  // false, all of `data` was consumed.
  size_t next(std::span<const uint8_t> data, bool& boundary);

  // Appends the absolute END offsets of the chunks completed by `data`.
  void feed(std::span<const uint8_t> data, std::vector<uint64_t>& ends);
  // Ends the stream: appends the end of the final (short) chunk if any, then resets.
  void finish(std::vector<uint64_t>& ends);

  uint64_t offset() const { return offset_; }         // bytes consumed so far
  uint64_t chunk_bytes() const { return cur_; }       // bytes in the open chunk
  void reset() { h_ = 0, cur_ = 0, offset_ = 0; }

 private:
  uint64_t h_ = 0;       // gear state (only meaningful once hashing started in the chunk)
  uint64_t cur_ = 0;     // bytes of the current chunk consumed so far
  uint64_t offset_ = 0;  // absolute stream offset
};

// §2.6: a chunk size whose boundaries survive edits before it: [16384, 122880).
inline bool is_stable_chunk_size(uint64_t s) { return s >= 2 * kMinChunk && s < kMaxChunk - kMinChunk; }

// §2.6: given the sorted chunk END offsets of a file, the first offset at or after which
// re-chunking from any change before `p` reproduces the same boundaries (two consecutive
// stable chunks starting at or after the first end >= p); nullopt if there is none.
std::optional<uint64_t> next_stable_chunk_boundary(uint64_t p, std::span<const uint64_t> ends);

// One completed chunk. `data` points either into the span passed to the feed() call that
// produced it or into the stream's internal buffer; it is valid until the next feed()/finish()
// call, and (for the first case) as long as the caller's buffer is.
struct StreamChunk {
  uint64_t offset = 0;
  std::span<const uint8_t> data;
  Hash hash;  // chunk_hash(data); zero if hashing is disabled
};

class ChunkStream {
 public:
  explicit ChunkStream(bool compute_hashes = true) : hash_(compute_hashes) {}

  // Returns the chunks completed by `data`. The returned vector is reused by the next call.
  const std::vector<StreamChunk>& feed(std::span<const uint8_t> data);
  // Returns the final chunk (at most one) and resets the stream for reuse.
  const std::vector<StreamChunk>& finish();

  uint64_t offset() const { return chunker_.offset(); }

 private:
  void emit(std::span<const uint8_t> data);

  Chunker chunker_;
  bool hash_;
  uint64_t emitted_offset_ = 0;
  std::vector<uint8_t> carry_;    // bytes of the open chunk received in earlier calls
  std::vector<uint8_t> emitted_;  // backing store of a returned chunk that came from carry_
  std::vector<StreamChunk> out_;
};

}  // namespace hf::xet
