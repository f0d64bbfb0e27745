// Fuzz harness bodies, shared by the libFuzzer targets (test/fuzz/fuzz_*.cc) and by the
// corpus regression unit test (test/unit/xet/fuzz_corpus_test.cc). Each returns false when
// an invariant is violated (the fuzz targets then trap); malformed input is expected and
// must simply yield an error value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "net/xet/reconstruction.h"
#include "net/xet/shard.h"
#include "net/xet/xorb.h"

namespace hf::xet::fuzz {

// Chunk headers, LZ4 frames and the streaming record decoder. Byte 0 picks the piece size
// for the decoder, bytes 1-2 an output size for the raw LZ4 frame decoder.
inline bool chunk_records(const uint8_t* data, size_t size) {
  if (size < 3) return true;
  const size_t piece = 1 + data[0] * 97u;
  const size_t lz4_out = (size_t{data[1]} << 8 | data[2]) * 4;
  std::span<const uint8_t> in(data + 3, size - 3);

  // Header + payload decode of the first record.
  if (auto h = parse_chunk_header(in); h.ok()) {
    if (h->compressed_len > kMaxChunkPayload || h->raw_len > kMaxChunk) return false;
    if (in.size() >= kChunkHeaderSize + h->compressed_len) {
      std::vector<uint8_t> raw(h->raw_len);
      (void)decode_chunk(*h, in.subspan(kChunkHeaderSize, h->compressed_len), raw);
    }
  }
  {
    std::vector<uint8_t> out(lz4_out);
    (void)lz4_frame_decode(in, out);
  }

  // Streaming decode in pieces must agree with a one-shot decode.
  auto run = [&](size_t step, std::vector<uint8_t>& raw, uint32_t& chunks) -> Status {
    ChunkRecordDecoder dec(true);
    auto on = [&](uint32_t ordinal, std::span<const uint8_t> r, uint32_t record) -> Status {
      if (ordinal != chunks || record < kChunkHeaderSize || r.size() > kMaxChunk) {
        return make_error(Errc::internal, "decoder invariant");
      }
      ++chunks;
      raw.insert(raw.end(), r.begin(), r.end());
      return {};
    };
    for (size_t pos = 0; pos < in.size(); pos += step) {
      HF_TRY(dec.feed(in.subspan(pos, std::min(step, in.size() - pos)), on));
    }
    return dec.finish();
  };
  std::vector<uint8_t> raw_a, raw_b;
  uint32_t n_a = 0, n_b = 0;
  Status a = run(in.size() + 1, raw_a, n_a);
  Status b = run(piece, raw_b, n_b);
  if (a.ok() != b.ok()) return false;
  if (!a.ok() && (a.code() == Errc::internal || b.code() == Errc::internal)) return false;
  if (a.ok() && (raw_a != raw_b || n_a != n_b)) return false;

  // Encoding the input as a chunk must round-trip for every scheme.
  std::span<const uint8_t> raw = in.first(std::min(in.size(), kMaxChunk));
  for (Compression c : {Compression::none, Compression::lz4, Compression::bg4_lz4}) {
    std::vector<uint8_t> rec;
    auto used = encode_chunk(raw, c, rec);
    if (!used.ok()) return false;
    auto h = parse_chunk_header(rec);
    if (!h.ok() || h->raw_len != raw.size() || rec.size() != kChunkHeaderSize + h->compressed_len) return false;
    std::vector<uint8_t> back(raw.size());
    if (!decode_chunk(*h, std::span(rec).subspan(kChunkHeaderSize), back).ok()) return false;
    if (!std::equal(back.begin(), back.end(), raw.begin(), raw.end())) return false;
  }
  return true;
}

// Whole xorbs with optional footer; parse_xorb must agree with the streaming decoder.
inline bool xorb(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  size_t footer_start = 0;
  if (auto f = parse_footer(in, &footer_start); f.ok()) {
    if (footer_start > size) return false;
    // A parsed footer re-serializes to the same bytes (V1).
    if (f->version == 1) {
      auto bytes = serialize_footer(*f);
      if (!bytes.ok() || !std::equal(bytes->begin(), bytes->end(), in.begin() + footer_start, in.end())) return false;
    }
  }
  std::vector<uint8_t> raw;
  auto parsed = parse_xorb(in, {.decode = true, .raw_out = &raw});
  if (!parsed.ok()) return true;
  uint64_t total = 0;
  for (const auto& c : parsed->chunks) total += c.raw_len;
  if (total != raw.size() || total != parsed->raw_bytes) return false;
  std::vector<uint8_t> streamed;
  ChunkRecordDecoder dec(true);
  Status s = dec.feed(in, [&](uint32_t, std::span<const uint8_t> r, uint32_t) -> Status {
    streamed.insert(streamed.end(), r.begin(), r.end());
    return {};
  });
  if (!s.ok() || !dec.finish().ok() || streamed != raw) return false;
  if (dec.bytes_consumed() != parsed->records_end) return false;
  return true;
}

// Shards: anything that parses must serialize back to an equal structure.
inline bool shard(const uint8_t* data, size_t size) {
  auto parsed = parse_shard({data, size});
  if (!parsed.ok()) return true;
  auto same = [](const Shard& a, const Shard& b) { return a.files == b.files && a.xorbs == b.xorbs; };
  auto upload = serialize_upload_shard(*parsed);
  if (!upload.ok()) return false;
  auto again = parse_shard(*upload);
  if (!again.ok() || !same(*again, *parsed) || again->footer) return false;
  FullShardParams p;
  if (parsed->footer) {
    p.chunk_hash_hmac_key = parsed->footer->chunk_hash_hmac_key;
    p.creation_timestamp = parsed->footer->shard_creation_timestamp;
    p.key_expiry = parsed->footer->shard_key_expiry;
  }
  for (bool tables : {true, false}) {
    p.lookup_tables = tables;
    auto full = serialize_full_shard(*parsed, p);
    if (!full.ok()) return false;
    auto f = parse_shard(*full);
    if (!f.ok() || !same(*f, *parsed) || !f->footer) return false;
    if (f->footer->chunk_hash_hmac_key != p.chunk_hash_hmac_key) return false;
  }
  return true;
}

// Reconstruction JSON (v2, v1, batch): anything that parses must round-trip.
inline bool reconstruction(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  auto same = [](const Reconstruction& a, const Reconstruction& b) {
    return a.offset_into_first_range == b.offset_into_first_range && a.terms == b.terms && a.fetches == b.fetches;
  };
  if (auto v2 = parse_reconstruction_v2(json); v2.ok()) {
    auto again = parse_reconstruction_v2(to_json_v2(*v2));
    if (!again.ok() || !same(*again, *v2)) return false;
    for (const Term& t : v2->terms) {
      if (!v2->find(t).range) return false;
    }
  }
  if (auto v1 = parse_reconstruction_v1(json); v1.ok()) {
    auto again = parse_reconstruction_v1(to_json_v1(*v1));
    if (!again.ok() || !same(*again, *v1)) return false;
  }
  if (auto b = parse_batch_reconstruction_v1(json); b.ok()) {
    auto again = parse_batch_reconstruction_v1(to_json_batch_v1(*b));
    if (!again.ok() || again->files != b->files || again->fetches != b->fetches) return false;
  }
  return true;
}

}  // namespace hf::xet::fuzz
