// MDB shard format (spec §5): file reconstruction blocks and xorb (CAS) blocks, as uploaded
// (no footer), as returned by global dedup (footer, HMAC-keyed chunk hashes) and as stored
// locally (lookup tables + footer).
//
// parse_shard accepts all three shapes (§12.13) and is bounded: the body size is limited,
// every count is checked against the remaining bytes before anything is allocated.
// Errors: Errc::protocol (malformed), Errc::too_large (body over the limit). Pure functions,
// thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "net/xet/hash.h"

namespace hf::xet {

inline constexpr size_t kShardRecordSize = 48;
inline constexpr size_t kShardFooterSize = 200;
inline constexpr size_t kMaxShardBytes = 64u << 20;
inline constexpr uint32_t kFileFlagWithVerification = 0x80000000u;
inline constexpr uint32_t kFileFlagWithMetadataExt = 0x40000000u;
inline constexpr uint32_t kChunkFlagGlobalDedup = 0x80000000u;

// One reconstruction term (FileDataSequenceEntry).
struct FileTerm {
  Hash xorb_hash;
  uint32_t unpacked_bytes = 0;  // sum of raw sizes of chunks [chunk_start, chunk_end)
  uint32_t chunk_start = 0;
  uint32_t chunk_end = 0;  // exclusive
  bool operator==(const FileTerm&) const = default;
};

struct FileInfo {
  Hash file_hash;
  std::vector<FileTerm> terms;
  std::vector<Hash> verification;  // range hash per term, or empty
  // Standard SHA-256 digest byte order (as sha256() returns it); the wire form is
  // word-swapped (§5.4.4), which (de)serialization handles.
  std::optional<std::array<uint8_t, 32>> sha256;
  bool operator==(const FileInfo&) const = default;
};

struct XorbChunkEntry {
  Hash chunk_hash;
  uint32_t byte_range_start = 0;  // cumulative raw offset inside the xorb
  uint32_t unpacked_bytes = 0;
  uint32_t flags = 0;  // bit 31: global-dedup candidate (server-set)
  bool operator==(const XorbChunkEntry&) const = default;
};

struct XorbInfo {
  Hash xorb_hash;
  uint32_t flags = 0;
  uint32_t num_bytes_in_xorb = 0;  // sum of raw chunk sizes
  uint32_t num_bytes_on_disk = 0;  // serialized length (HD) or 0 (XC); not validated
  std::vector<XorbChunkEntry> chunks;
  bool operator==(const XorbInfo&) const = default;
};

// The 200-byte footer (§5.7), XC field names.
struct ShardFooter {
  uint64_t version = 1;
  uint64_t file_info_offset = 0;
  uint64_t xorb_info_offset = 0;
  uint64_t file_lookup_offset = 0;
  uint64_t file_lookup_num_entry = 0;
  uint64_t xorb_lookup_offset = 0;
  uint64_t xorb_lookup_num_entry = 0;
  uint64_t chunk_lookup_offset = 0;
  uint64_t chunk_lookup_num_entry = 0;
  Hash chunk_hash_hmac_key;  // zero = chunk hashes are not keyed
  uint64_t shard_creation_timestamp = 0;
  uint64_t shard_key_expiry = 0;
  uint64_t stored_bytes_on_disk = 0;
  uint64_t materialized_bytes = 0;
  uint64_t stored_bytes = 0;
  uint64_t footer_offset = 0;
  bool operator==(const ShardFooter&) const = default;
};

struct Shard {
  std::vector<FileInfo> files;
  std::vector<XorbInfo> xorbs;
  std::optional<ShardFooter> footer;
};

// Upload body (§5.8 shape 1): header with footer_size 0, file section, CAS section, no
// lookup tables, no footer. Verification is all-or-none per shard: if any file has
// `verification` entries (or every file is empty, as XC does) every file is flagged and must
// have exactly one entry per term; otherwise no file may have any. Errc::invalid_argument
// if that does not hold. The metadata ext is written iff `sha256` is set.
Result<std::vector<uint8_t>> serialize_upload_shard(const Shard& shard);

struct FullShardParams {
  Hash chunk_hash_hmac_key;           // zero: chunk hashes stored as given
  uint64_t creation_timestamp = 0;    // unix seconds
  uint64_t key_expiry = 0;            // unix seconds
  bool lookup_tables = true;          // false: empty tables (offsets = footer_offset), as in dedup responses
};

// Full shard (shapes 2 and 3): header(footer_size 200) + sections + lookup tables + footer.
// Chunk hashes are written as given (callers HMAC them for dedup responses). Footer totals
// are computed from the content.
Result<std::vector<uint8_t>> serialize_full_shard(const Shard& shard, const FullShardParams& params);

// Parses any of the three shapes. Rejects: bad tag/version, footer_size other than 0/200,
// sections without bookends, counts exceeding the body, only some files with verification,
// trailing bytes without a footer, footer offsets inconsistent with the sections.
// Duplicate file hashes: the first block wins (§12.29).
Result<Shard> parse_shard(std::span<const uint8_t> bytes, size_t max_bytes = kMaxShardBytes);

// SHA-256 word swap used by FileMetadataExt (§5.4.4): reverses each 8-byte group. Its own inverse.
std::array<uint8_t, 32> sha256_word_swap(const std::array<uint8_t, 32>& in);

}  // namespace hf::xet
