// Xorb format (spec §4): chunk records (8-byte header + payload), compression schemes
// (None, LZ4 frame, BG4 + LZ4 frame), streaming record decoding, xorb building, whole-xorb
// parsing and the stored-xorb footer (XorbObjectInfo V1, V0 read-only).
//
// All decoding of untrusted bytes is bounded: a chunk header may announce at most
// 2*131072 payload bytes and 131072 raw bytes; a xorb at most 8192 chunks and 64 MiB raw.
// Errors: Errc::protocol for malformed structure (bad header, truncated record, bad footer
// layout), Errc::corrupt for integrity failures (decompressed length or hash mismatch),
// Errc::too_large for limit violations. Free functions are thread-safe; classes are not.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/xet/chunker.h"
#include "net/xet/hash.h"

namespace hf::xet {

enum class Compression : uint8_t { none = 0, lz4 = 1, bg4_lz4 = 2 };

// "none" | "lz4" | "bg4_lz4"
std::string_view compression_name(Compression c);

inline constexpr size_t kChunkHeaderSize = 8;
inline constexpr size_t kMaxChunkPayload = 2 * kMaxChunk;  // header bound enforced by XC readers
inline constexpr size_t kMaxChunkRecord = kChunkHeaderSize + kMaxChunkPayload;
inline constexpr size_t kMaxXorbRawBytes = 64u << 20;
inline constexpr size_t kMaxXorbSerializedBytes = 64u << 20;
inline constexpr size_t kMaxXorbChunks = 8192;
// Readers tolerate serialized chunk data of up to 64 MiB + 8 bytes per chunk (§4.4, §12.5).
inline constexpr size_t kMaxXorbRecordBytes = kMaxXorbSerializedBytes + kChunkHeaderSize * kMaxXorbChunks;

struct ChunkHeader {
  uint8_t version = 0;
  uint32_t compressed_len = 0;  // payload bytes following the header (u24 on the wire)
  Compression scheme = Compression::none;
  uint32_t raw_len = 0;  // decompressed chunk length (u24 on the wire)
};

// True if `bytes` starts with the 7-byte footer magic "XETBLOB".
bool starts_with_footer_magic(std::span<const uint8_t> bytes);

// Parses and validates the first 8 bytes (§4.2): version 0, known scheme, compressed_len <=
// 2*131072, raw_len <= 131072, and compressed_len == raw_len for scheme None.
// A "XETBLOB" start yields Errc::protocol with a message starting "footer" (use
// starts_with_footer_magic to tell it apart); fewer than 8 bytes yields Errc::protocol.
Result<ChunkHeader> parse_chunk_header(std::span<const uint8_t> bytes);
// Writes the 8-byte header. Lengths must fit in 24 bits.
void write_chunk_header(const ChunkHeader& h, uint8_t* out);

// Byte grouping (§4.3): byte i goes to group i % 4; groups are concatenated in order.
// `out` must have room for in.size() bytes and must not overlap `in`.
void bg4_split(std::span<const uint8_t> in, uint8_t* out);
void bg4_regroup(std::span<const uint8_t> in, uint8_t* out);

// LZ4 frame format. Encoding writes one frame (FLG 0x60: independent blocks, no checksums;
// BD 64 KiB max block if the input is <= 64 KiB, else 256 KiB) into `out`, which must hold
// lz4_frame_bound(in.size()) bytes; returns the frame length.
size_t lz4_frame_bound(size_t n);
size_t lz4_frame_encode(std::span<const uint8_t> in, uint8_t* out);
// Decodes one or more concatenated frames (skippable and legacy frames, linked blocks, block
// and content checksums accepted) into `out`, which must be filled exactly: producing more or
// fewer bytes than out.size() is Errc::corrupt. Never writes outside `out`.
Status lz4_frame_decode(std::span<const uint8_t> in, std::span<uint8_t> out);

// XC's BG4 predictor (§4.3, bg4_prediction.rs): KL divergence of per-position popcount
// histograms; true when max KL > 0.02.
bool bg4_recommended(std::span<const uint8_t> raw);
// lz4 or bg4_lz4 according to bg4_recommended.
Compression choose_compression(std::span<const uint8_t> raw);

// Appends header + payload for `raw` (<= 131072 bytes, else Errc::invalid_argument) to `out`,
// compressed with `preferred` unless the result is not strictly shorter than `raw`, in which
// case scheme None is stored (§4.3). Returns the scheme actually written.
Result<Compression> encode_chunk(std::span<const uint8_t> raw, Compression preferred,
                                 std::vector<uint8_t>& out);
// Decodes a payload into `out_raw`, whose size must equal h.raw_len (else invalid_argument).
// Uses bounded thread-local scratch (<= 128 KiB) for BG4 only.
Status decode_chunk(const ChunkHeader& h, std::span<const uint8_t> payload, std::span<uint8_t> out_raw);

// Streaming decoder of serialized chunk records fed in arbitrary pieces (e.g. an HTTP body
// of a presigned-URL byte range). For every complete record it calls
// on_chunk(ordinal, raw, record_bytes): ordinal counts records from 0 in this decoder,
// `raw` is valid only during the call, record_bytes = 8 + compressed_len. A non-ok status
// from on_chunk stops decoding and is returned (the decoder then stays failed).
// Buffers at most one record; a record contained in one feed() piece is decoded straight
// from the caller's bytes (scheme None: `raw` points into them, no copy at all).
// With stop_at_footer, a "XETBLOB" record start ends the data: the rest is ignored.
class ChunkRecordDecoder {
 public:
  using OnChunk = std::function<Status(uint32_t ordinal, std::span<const uint8_t> raw, uint32_t record_bytes)>;

  explicit ChunkRecordDecoder(bool stop_at_footer = false) : stop_at_footer_(stop_at_footer) {}

  Status feed(std::span<const uint8_t> bytes, const OnChunk& on_chunk);
  // Errc::protocol ("truncated ...") if a partial record remains.
  Status finish();

  uint32_t chunks() const { return ordinal_; }
  uint64_t bytes_consumed() const { return consumed_; }  // record bytes, excluding a footer
  bool footer_seen() const { return footer_seen_; }

 private:
  Status deliver(const ChunkHeader& h, std::span<const uint8_t> payload, const OnChunk& on_chunk);

  bool stop_at_footer_;
  bool footer_seen_ = false;
  bool failed_ = false;
  uint32_t ordinal_ = 0;
  uint64_t consumed_ = 0;
  uint8_t header_buf_[kChunkHeaderSize];
  size_t header_have_ = 0;
  std::optional<ChunkHeader> header_;  // parsed header of the record being assembled
  std::vector<uint8_t> payload_buf_;   // partial payload (only when split across pieces)
  std::vector<uint8_t> raw_buf_;       // decode target, <= 131072 bytes
};

struct XorbChunkInfo {
  Hash hash;                  // chunk hash (zero if not computed)
  uint32_t raw_len = 0;
  uint64_t raw_offset = 0;    // cumulative raw offset inside the xorb
  uint64_t serialized_offset = 0;
  uint32_t serialized_len = 0;  // header + payload
  Compression scheme = Compression::none;
};

// Stored-xorb footer (§4.5).
struct XorbFooter {
  uint8_t version = 1;  // 1 (written and read) or 0 (legacy, read only)
  Hash xorb_hash;
  std::vector<Hash> chunk_hashes;
  std::vector<uint32_t> chunk_boundary_offsets;  // cumulative END offsets of records
  std::vector<uint32_t> unpacked_chunk_offsets;  // cumulative END offsets of raw data (V1)
  std::array<uint8_t, 16> nonce_buffer{};        // bytes 0..3: optional uniqueness nonce
};

// V1 info block followed by the u32 info_length (92 + 40n + 4 bytes). All three vectors
// must have the same length (else Errc::invalid_argument).
Result<std::vector<uint8_t>> serialize_footer(const XorbFooter& f);
// Parses the footer at the end of a stored xorb: last 4 bytes = info_length. Checks the
// idents, versions, the three chunk counts and both section offsets, that offsets are
// increasing with valid record/chunk sizes, that the records end exactly at the footer, and
// (V1) that xorb_hash matches the chunk hashes and sizes. *footer_start = offset of "XETBLOB".
Result<XorbFooter> parse_footer(std::span<const uint8_t> whole_stored_xorb, size_t* footer_start);

// Packs chunks into one xorb within the §4.4 limits. Not thread-safe.
class XorbBuilder {
 public:
  // Would a chunk of raw_len bytes still fit? (conservative: assumes no compression gain)
  bool fits(size_t raw_len) const;
  bool empty() const { return chunks_.empty(); }
  // Appends a chunk. The caller must check fits() first and pass chunk_hash(raw).
  // Returns the scheme stored. Errc::too_large if the limits would be exceeded,
  // Errc::invalid_argument if raw.size() > 131072.
  Result<Compression> add(std::span<const uint8_t> raw, const Hash& chunk_hash, Compression c);

  Hash hash() const;  // xorb hash (§3.4) of the chunks added so far
  const std::vector<uint8_t>& serialized() const { return serialized_; }  // no footer
  const std::vector<XorbChunkInfo>& chunks() const { return chunks_; }
  uint64_t raw_bytes() const { return raw_bytes_; }
  XorbFooter footer() const;  // V1 footer describing serialized()
  void clear();

 private:
  std::vector<uint8_t> serialized_;
  std::vector<XorbChunkInfo> chunks_;
  uint64_t raw_bytes_ = 0;
};

struct ParseXorbOptions {
  bool decode = true;                     // decompress, hash chunks, compute the xorb hash
  std::vector<uint8_t>* raw_out = nullptr;  // if set (and decode), receives the raw data
};

struct ParsedXorb {
  std::vector<XorbChunkInfo> chunks;  // hashes filled when decoded
  Hash hash;                          // xorb hash when decoded, else zero
  uint64_t raw_bytes = 0;
  size_t records_end = 0;             // end of chunk records = footer start (or size)
  std::optional<XorbFooter> footer;
};

// Validates a whole serialized xorb (upload body or stored object): every record, the
// limits, and a trailing footer if one starts at a record boundary (checked against the
// records, and against the recomputed hashes when decoding). Empty input parses as a xorb
// with zero chunks; callers decide whether that is acceptable.
Result<ParsedXorb> parse_xorb(std::span<const uint8_t> bytes, const ParseXorbOptions& opts = {});

}  // namespace hf::xet
