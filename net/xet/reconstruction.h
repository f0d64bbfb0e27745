// File reconstruction responses (spec §6, §7.2, §7.8): parsing (v2, v1, batch v1) with
// validation, and serialization (used by the emulator).
//
// Parsing is bounded (document size, term and fetch counts, JSON nesting via simdjson) and
// lenient about unknown fields. It rejects: malformed JSON or hashes, missing/mistyped
// fields, numbers out of range, empty or inverted chunk ranges, inverted byte ranges, byte
// ranges too short/long for their chunk count, chunk indices or byte spans beyond what one xorb
// can hold (§4.4: 8192 chunks, 64 MiB + headers), terms with implausible unpacked lengths,
// offset_into_first_range >= the first term's length, duplicate xorb keys, and terms that no
// fetch range covers (XC's "No xorb fetch entry found"). Errors are Errc::protocol
// (Errc::too_large for size limits). Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "net/xet/hash.h"

namespace hf::xet {

inline constexpr size_t kMaxReconstructionJson = 256u << 20;
inline constexpr size_t kMaxReconstructionTerms = 1u << 22;
inline constexpr size_t kMaxReconstructionRanges = 1u << 22;

struct ChunkRange {
  uint32_t start = 0;
  uint32_t end = 0;  // exclusive
  bool operator==(const ChunkRange&) const = default;
};

struct ByteRangeIncl {
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive: use directly as "Range: bytes=start-end"
  bool operator==(const ByteRangeIncl&) const = default;
};

struct Term {
  Hash xorb;
  uint32_t unpacked_length = 0;
  ChunkRange range;
  bool operator==(const Term&) const = default;
};

struct FetchRange {
  ChunkRange chunks;
  ByteRangeIncl bytes;  // byte offsets into the serialized xorb
  bool operator==(const FetchRange&) const = default;
};

// What a presigned range response says beyond its chunks.
struct RangeFetchReport {
  // Size of the whole stored xorb object, from `Content-Range: bytes S-E/TOTAL` (nullopt for
  // "/*", a 200 answer, or no header).
  std::optional<uint64_t> object_size;
};

// Does `r` hold every chunk of its xorb? The protocol never says how many chunks a xorb has,
// but the stored object is the records followed by a V1 footer of 92 + 40n + 4 bytes (§4.5),
// so a range of chunks [0, n) whose bytes end exactly that far before the object's end is the
// whole xorb; its chunks can then be checked against the xorb hash (§3.4). A larger xorb
// cannot match: each further chunk adds a record and 40 footer bytes.
bool covers_whole_xorb(const FetchRange& r, uint64_t object_size);

// One presigned URL and the ranges it authorizes (v2 entry; a v1 fetch_info entry becomes
// one XorbFetch with one range). Parsing sorts `ranges` by chunks.start.
struct XorbFetch {
  std::string url;
  std::vector<FetchRange> ranges;
  bool operator==(const XorbFetch&) const = default;
};

using XorbFetchMap = std::vector<std::pair<Hash, std::vector<XorbFetch>>>;

struct Reconstruction {
  uint64_t offset_into_first_range = 0;
  std::vector<Term> terms;
  XorbFetchMap fetches;  // sorted by hash after parsing or sort_fetches()

  struct Located {
    const XorbFetch* fetch = nullptr;
    const FetchRange* range = nullptr;
  };
  // The fetch range containing the term's chunk range; {nullptr, nullptr} if none.
  // Requires `fetches` sorted by hash and each `ranges` sorted by chunks.start.
  Located find(const Term& t) const;
  // Sorts fetches by hash and every ranges vector by chunks.start (for hand-built values).
  void sort_fetches();
  uint64_t total_unpacked() const;  // sum of term unpacked lengths
};

// Batch response (GET/POST /v1/reconstructions): whole files, no offset.
struct BatchReconstruction {
  std::vector<std::pair<Hash, std::vector<Term>>> files;  // in document order
  XorbFetchMap fetches;                                   // sorted by hash after parsing
};

Result<Reconstruction> parse_reconstruction_v2(std::string_view json);
Result<Reconstruction> parse_reconstruction_v1(std::string_view json);
Result<BatchReconstruction> parse_batch_reconstruction_v1(std::string_view json);

// Validation that the parsers apply (exposed for hand-built responses).
Status validate_reconstruction(const Reconstruction& r);

std::string to_json_v2(const Reconstruction& r);
// Each range of each XorbFetch becomes one fetch_info entry carrying the same URL.
std::string to_json_v1(const Reconstruction& r);
std::string to_json_batch_v1(const BatchReconstruction& b);

}  // namespace hf::xet
