#include "net/xet/xorb.h"

#include <fmt/format.h>
#include <lz4.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace hf::xet {

namespace {

constexpr uint8_t kFooterMagic[7] = {'X', 'E', 'T', 'B', 'L', 'O', 'B'};
constexpr uint8_t kHashesIdent[7] = {'X', 'B', 'L', 'B', 'H', 'S', 'H'};
constexpr uint8_t kBoundsIdent[7] = {'X', 'B', 'L', 'B', 'B', 'N', 'D'};

constexpr uint32_t kLz4FrameMagic = 0x184D2204;
constexpr uint32_t kLz4LegacyMagic = 0x184C2102;
constexpr uint32_t kLz4SkippableMask = 0xFFFFFFF0;
constexpr uint32_t kLz4SkippableMagic = 0x184D2A50;
constexpr size_t kLz4LegacyBlock = 8u << 20;

uint32_t le24(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16; }
uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void put_le24(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v >> 16);
}
void put_le32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

Error corrupt(std::string msg) { return make_error(Errc::corrupt, std::move(msg)); }
Error bad_xorb(std::string msg) { return make_error(Errc::protocol, std::move(msg)); }

// Bounded per-thread scratch for BG4 (split on encode, LZ4 output on decode).
uint8_t* bg4_scratch() {
  thread_local std::vector<uint8_t> buf(kMaxChunk);
  return buf.data();
}

}  // namespace

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::none: return "none";
    case Compression::lz4: return "lz4";
    case Compression::bg4_lz4: return "bg4_lz4";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Chunk header

bool starts_with_footer_magic(std::span<const uint8_t> bytes) {
  return bytes.size() >= 7 && std::memcmp(bytes.data(), kFooterMagic, 7) == 0;
}

Result<ChunkHeader> parse_chunk_header(std::span<const uint8_t> b) {
  if (starts_with_footer_magic(b)) return bad_xorb("footer (XETBLOB) where a chunk header was expected");
  if (b.size() < kChunkHeaderSize) {
    return bad_xorb(fmt::format("truncated chunk header: {} of 8 bytes", b.size()));
  }
  ChunkHeader h;
  h.version = b[0];
  h.compressed_len = le24(&b[1]);
  h.raw_len = le24(&b[5]);
  if (h.version != 0) return bad_xorb(fmt::format("unsupported chunk header version {}", h.version));
  if (b[4] > 2) return bad_xorb(fmt::format("unknown chunk compression scheme {}", b[4]));
  h.scheme = static_cast<Compression>(b[4]);
  if (h.compressed_len > kMaxChunkPayload) {
    return bad_xorb(fmt::format("chunk compressed length {} exceeds {}", h.compressed_len, kMaxChunkPayload));
  }
  if (h.raw_len > kMaxChunk) {
    return bad_xorb(fmt::format("chunk raw length {} exceeds {}", h.raw_len, kMaxChunk));
  }
  if (h.scheme == Compression::none && h.compressed_len != h.raw_len) {
    return bad_xorb(fmt::format("uncompressed chunk with compressed length {} != raw length {}",
                                h.compressed_len, h.raw_len));
  }
  return h;
}

void write_chunk_header(const ChunkHeader& h, uint8_t* out) {
  out[0] = h.version;
  put_le24(out + 1, h.compressed_len);
  out[4] = static_cast<uint8_t>(h.scheme);
  put_le24(out + 5, h.raw_len);
}

// ---------------------------------------------------------------------------------------------
// BG4

void bg4_split(std::span<const uint8_t> in, uint8_t* out) {
  const size_t n = in.size(), q = n / 4, r = n % 4;
  const uint8_t* p = in.data();
  uint8_t* g0 = out;
  uint8_t* g1 = g0 + q + (r > 0);
  uint8_t* g2 = g1 + q + (r > 1);
  uint8_t* g3 = g2 + q + (r > 2);
  for (size_t i = 0; i < q; ++i) {
    g0[i] = p[4 * i];
    g1[i] = p[4 * i + 1];
    g2[i] = p[4 * i + 2];
    g3[i] = p[4 * i + 3];
  }
  if (r > 0) g0[q] = p[4 * q];
  if (r > 1) g1[q] = p[4 * q + 1];
  if (r > 2) g2[q] = p[4 * q + 2];
}

void bg4_regroup(std::span<const uint8_t> in, uint8_t* out) {
  const size_t n = in.size(), q = n / 4, r = n % 4;
  const uint8_t* g0 = in.data();
  const uint8_t* g1 = g0 + q + (r > 0);
  const uint8_t* g2 = g1 + q + (r > 1);
  const uint8_t* g3 = g2 + q + (r > 2);
  for (size_t i = 0; i < q; ++i) {
    out[4 * i] = g0[i];
    out[4 * i + 1] = g1[i];
    out[4 * i + 2] = g2[i];
    out[4 * i + 3] = g3[i];
  }
  if (r > 0) out[4 * q] = g0[q];
  if (r > 1) out[4 * q + 1] = g1[q];
  if (r > 2) out[4 * q + 2] = g2[q];
}

bool bg4_recommended(std::span<const uint8_t> raw) {
  uint32_t hist[4][9] = {};
  for (size_t i = 0; i < raw.size(); ++i) ++hist[i % 4][std::popcount(raw[i])];
  // Same arithmetic as XC, including its NaN behaviour: a group with an empty bucket gets
  // 0 * ln(0) = NaN, and fmax (like Rust's f64::max) ignores NaN.
  uint32_t base[9];
  uint32_t totals[4] = {};
  for (int j = 0; j < 9; ++j) base[j] = 1;
  for (int g = 0; g < 4; ++g) {
    for (int j = 0; j < 9; ++j) {
      base[j] += hist[g][j];
      totals[g] += hist[g][j];
    }
  }
  double base_total = double(totals[0]) + totals[1] + totals[2] + totals[3];
  double max_kl = 0.0;
  for (int g = 0; g < 4; ++g) {
    double kl = 0.0;
    for (int j = 0; j < 9; ++j) {
      double p = double(hist[g][j]) / double(totals[g]);
      double q = double(base[j]) / base_total;
      kl += p * std::log(p / q);
    }
    max_kl = std::fmax(max_kl, kl);
  }
  return max_kl > 0.02;
}

Compression choose_compression(std::span<const uint8_t> raw) {
  return bg4_recommended(raw) ? Compression::bg4_lz4 : Compression::lz4;
}

// ---------------------------------------------------------------------------------------------
// LZ4 frame

namespace {
size_t lz4_block_max_for(size_t n) { return n <= (64u << 10) ? (64u << 10) : (256u << 10); }
}  // namespace

size_t lz4_frame_bound(size_t n) {
  const size_t block_max = lz4_block_max_for(n);
  size_t bound = 7 + 4;  // frame header + end mark
  for (size_t pos = 0; pos < n; pos += block_max) {
    bound += 4 + static_cast<size_t>(LZ4_compressBound(static_cast<int>(std::min(block_max, n - pos))));
  }
  return bound;
}

size_t lz4_frame_encode(std::span<const uint8_t> in, uint8_t* out) {
  const size_t block_max = lz4_block_max_for(in.size());
  uint8_t* o = out;
  put_le32(o, kLz4FrameMagic);
  o[4] = 0x60;                                 // version 01, independent blocks, no checksums
  o[5] = block_max == (64u << 10) ? 0x40 : 0x50;
  o[6] = static_cast<uint8_t>((XXH32(o + 4, 2, 0) >> 8) & 0xFF);
  o += 7;
  for (size_t pos = 0; pos < in.size(); pos += block_max) {
    const int len = static_cast<int>(std::min(block_max, in.size() - pos));
    const char* src = reinterpret_cast<const char*>(in.data() + pos);
    // `out` has LZ4_compressBound room (the fast path of LZ4); a block that does not shrink
    // is stored (high bit of the size word), as the frame format allows.
    int c = LZ4_compress_default(src, reinterpret_cast<char*>(o + 4), len, LZ4_compressBound(len));
    if (c > 0 && c < len) {
      put_le32(o, static_cast<uint32_t>(c));
      o += 4 + c;
    } else {
      put_le32(o, static_cast<uint32_t>(len) | 0x80000000u);
      std::memcpy(o + 4, src, static_cast<size_t>(len));
      o += 4 + len;
    }
  }
  put_le32(o, 0);
  o += 4;
  return static_cast<size_t>(o - out);
}

Status lz4_frame_decode(std::span<const uint8_t> in, std::span<uint8_t> out) {
  const uint8_t* const src = in.data();
  const size_t n = in.size();
  uint8_t* const dst = out.data();
  const size_t cap = out.size();
  size_t ip = 0, op = 0;
  bool any_frame = false;

  while (ip < n) {
    if (n - ip < 4) return corrupt("truncated LZ4 frame");
    const uint32_t magic = le32(src + ip);
    if ((magic & kLz4SkippableMask) == kLz4SkippableMagic) {
      if (n - ip < 8) return corrupt("truncated LZ4 skippable frame");
      uint32_t sz = le32(src + ip + 4);
      if (sz > n - ip - 8) return corrupt("truncated LZ4 skippable frame");
      ip += 8 + sz;
      continue;
    }
    if (magic == kLz4LegacyMagic) {
      ip += 4;
      while (ip < n) {
        if (n - ip < 4) return corrupt("truncated LZ4 legacy block size");
        uint32_t bsz = le32(src + ip);
        if (bsz == kLz4FrameMagic || bsz == kLz4LegacyMagic || (bsz & kLz4SkippableMask) == kLz4SkippableMagic) {
          break;  // next frame
        }
        ip += 4;
        if (bsz > n - ip || bsz > static_cast<uint32_t>(LZ4_compressBound(kLz4LegacyBlock))) {
          return corrupt("truncated or oversized LZ4 legacy block");
        }
        int r = LZ4_decompress_safe(reinterpret_cast<const char*>(src + ip), reinterpret_cast<char*>(dst + op),
                                    static_cast<int>(bsz), static_cast<int>(std::min(cap - op, kLz4LegacyBlock)));
        if (r < 0) return corrupt("invalid LZ4 block or decompressed length exceeds raw length");
        ip += bsz;
        op += static_cast<size_t>(r);
      }
      any_frame = true;
      continue;
    }
    if (magic != kLz4FrameMagic) return corrupt(fmt::format("not an LZ4 frame (magic {:08x})", magic));
    ip += 4;
    if (n - ip < 3) return corrupt("truncated LZ4 frame header");
    const uint8_t flg = src[ip], bd = src[ip + 1];
    if ((flg >> 6) != 1) return corrupt("unsupported LZ4 frame version");
    if ((flg & 0x02) || (bd & 0x8F)) return corrupt("reserved bits set in LZ4 frame header");
    const bool independent = flg & 0x20, block_checksum = flg & 0x10, has_content_size = flg & 0x08,
               content_checksum = flg & 0x04, has_dict = flg & 0x01;
    const unsigned bsid = (bd >> 4) & 7;
    if (bsid < 4) return corrupt("invalid LZ4 block size id");
    const size_t block_max = size_t{1} << (2 * bsid + 8);
    const size_t desc_len = 2 + (has_content_size ? 8 : 0) + (has_dict ? 4 : 0);
    if (n - ip < desc_len + 1) return corrupt("truncated LZ4 frame header");
    if (((XXH32(src + ip, desc_len, 0) >> 8) & 0xFF) != src[ip + desc_len]) {
      return corrupt("LZ4 frame header checksum mismatch");
    }
    uint64_t content_size = 0;
    if (has_content_size) std::memcpy(&content_size, src + ip + 2, 8);
    if (has_dict) return corrupt("LZ4 frame requires a dictionary");
    ip += desc_len + 1;

    const size_t frame_start = op;
    for (;;) {
      if (n - ip < 4) return corrupt("truncated LZ4 frame (missing end mark)");
      const uint32_t word = le32(src + ip);
      ip += 4;
      if (word == 0) break;
      const bool stored = word & 0x80000000u;
      const size_t len = word & 0x7FFFFFFFu;
      if (len > block_max) return corrupt("LZ4 block larger than the frame's maximum block size");
      if (len > n - ip) return corrupt("truncated LZ4 block");
      const uint8_t* block = src + ip;
      ip += len;
      if (block_checksum) {
        if (n - ip < 4) return corrupt("truncated LZ4 block checksum");
        if (XXH32(block, len, 0) != le32(src + ip)) return corrupt("LZ4 block checksum mismatch");
        ip += 4;
      }
      if (stored) {
        if (len > cap - op) return corrupt("decompressed length exceeds raw length");
        std::memcpy(dst + op, block, len);
        op += len;
        continue;
      }
      const int room = static_cast<int>(std::min(cap - op, block_max));
      int r;
      if (independent || op == frame_start) {
        r = LZ4_decompress_safe(reinterpret_cast<const char*>(block), reinterpret_cast<char*>(dst + op),
                                static_cast<int>(len), room);
      } else {
        // Linked blocks: the previous output (contiguous in dst) is the dictionary.
        const size_t dict = std::min<size_t>(op - frame_start, 64u << 10);
        r = LZ4_decompress_safe_usingDict(reinterpret_cast<const char*>(block), reinterpret_cast<char*>(dst + op),
                                          static_cast<int>(len), room,
                                          reinterpret_cast<const char*>(dst + op - dict), static_cast<int>(dict));
      }
      if (r < 0) return corrupt("invalid LZ4 block or decompressed length exceeds raw length");
      op += static_cast<size_t>(r);
    }
    if (content_checksum) {
      if (n - ip < 4) return corrupt("truncated LZ4 content checksum");
      if (XXH32(dst + frame_start, op - frame_start, 0) != le32(src + ip)) {
        return corrupt("LZ4 content checksum mismatch");
      }
      ip += 4;
    }
    if (has_content_size && content_size != op - frame_start) {
      return corrupt("LZ4 frame content size does not match its data");
    }
    any_frame = true;
  }
  if (!any_frame) return corrupt("empty LZ4 payload");
  if (op != cap) return corrupt(fmt::format("decompressed length {} != raw length {}", op, cap));
  return {};
}

// ---------------------------------------------------------------------------------------------
// Chunk encode / decode

Result<Compression> encode_chunk(std::span<const uint8_t> raw, Compression preferred, std::vector<uint8_t>& out) {
  if (raw.size() > kMaxChunk) {
    return make_error(Errc::invalid_argument, fmt::format("chunk of {} bytes exceeds {}", raw.size(), kMaxChunk));
  }
  const size_t base = out.size();
  if (preferred != Compression::none && !raw.empty()) {
    out.resize(base + kChunkHeaderSize + lz4_frame_bound(raw.size()));
    std::span<const uint8_t> input = raw;
    if (preferred == Compression::bg4_lz4) {
      uint8_t* scratch = bg4_scratch();
      bg4_split(raw, scratch);
      input = {scratch, raw.size()};
    }
    size_t c = lz4_frame_encode(input, out.data() + base + kChunkHeaderSize);
    if (c < raw.size()) {
      write_chunk_header({0, static_cast<uint32_t>(c), preferred, static_cast<uint32_t>(raw.size())}, out.data() + base);
      out.resize(base + kChunkHeaderSize + c);
      return preferred;
    }
  }
  out.resize(base + kChunkHeaderSize + raw.size());
  write_chunk_header({0, static_cast<uint32_t>(raw.size()), Compression::none, static_cast<uint32_t>(raw.size())},
                     out.data() + base);
  if (!raw.empty()) std::memcpy(out.data() + base + kChunkHeaderSize, raw.data(), raw.size());
  return Compression::none;
}

Status decode_chunk(const ChunkHeader& h, std::span<const uint8_t> payload, std::span<uint8_t> out_raw) {
  if (out_raw.size() != h.raw_len) {
    return make_error(Errc::invalid_argument,
                      fmt::format("output buffer of {} bytes for a {}-byte chunk", out_raw.size(), h.raw_len));
  }
  if (payload.size() != h.compressed_len) {
    return make_error(Errc::invalid_argument,
                      fmt::format("payload of {} bytes, header says {}", payload.size(), h.compressed_len));
  }
  switch (h.scheme) {
    case Compression::none:
      if (payload.size() != out_raw.size()) return corrupt("uncompressed chunk length mismatch");
      if (!payload.empty()) std::memcpy(out_raw.data(), payload.data(), payload.size());
      return {};
    case Compression::lz4:
      return lz4_frame_decode(payload, out_raw);
    case Compression::bg4_lz4: {
      if (h.raw_len > kMaxChunk) return corrupt("chunk raw length exceeds 131072");
      uint8_t* scratch = bg4_scratch();
      HF_TRY(lz4_frame_decode(payload, {scratch, h.raw_len}));
      bg4_regroup({scratch, h.raw_len}, out_raw.data());
      return {};
    }
  }
  return bad_xorb("unknown compression scheme");
}

// ---------------------------------------------------------------------------------------------
// ChunkRecordDecoder

Status ChunkRecordDecoder::deliver(const ChunkHeader& h, std::span<const uint8_t> payload, const OnChunk& on_chunk) {
  std::span<const uint8_t> raw;
  if (h.scheme == Compression::none) {
    raw = payload;  // zero-copy
  } else {
    if (raw_buf_.size() < kMaxChunk) raw_buf_.resize(kMaxChunk);
    std::span<uint8_t> out(raw_buf_.data(), h.raw_len);
    Status s = decode_chunk(h, payload, out);
    if (!s.ok()) {
      return make_error(s.error().code, fmt::format("chunk {}: {}", ordinal_, s.error().message));
    }
    raw = out;
  }
  const uint32_t record = static_cast<uint32_t>(kChunkHeaderSize + h.compressed_len);
  HF_TRY(on_chunk(ordinal_, raw, record));
  ++ordinal_;
  consumed_ += record;
  return {};
}

Status ChunkRecordDecoder::feed(std::span<const uint8_t> bytes, const OnChunk& on_chunk) {
  if (failed_) return make_error(Errc::internal, "chunk record decoder used after an error");
  if (footer_seen_) return {};
  size_t pos = 0;
  const size_t n = bytes.size();
  auto fail = [this](Error e) -> Status {
    failed_ = true;
    return e;
  };
  while (pos < n) {
    if (!header_) {
      // Fast path: a whole header (and maybe payload) in the input.
      std::span<const uint8_t> hdr_bytes;
      if (header_have_ == 0 && n - pos >= kChunkHeaderSize) {
        hdr_bytes = bytes.subspan(pos, kChunkHeaderSize);
        pos += kChunkHeaderSize;
      } else {
        size_t take = std::min(kChunkHeaderSize - header_have_, n - pos);
        std::memcpy(header_buf_ + header_have_, bytes.data() + pos, take);
        header_have_ += take;
        pos += take;
        // "XETBLOB" is 7 bytes: recognise the footer as soon as those have arrived.
        if (header_have_ < kChunkHeaderSize) {
          if (stop_at_footer_ && header_have_ >= 7 && starts_with_footer_magic({header_buf_, header_have_})) {
            footer_seen_ = true;
            return {};
          }
          continue;
        }
        hdr_bytes = {header_buf_, kChunkHeaderSize};
        header_have_ = 0;
      }
      if (stop_at_footer_ && starts_with_footer_magic(hdr_bytes)) {
        footer_seen_ = true;
        return {};
      }
      auto h = parse_chunk_header(hdr_bytes);
      if (!h.ok()) {
        return fail(make_error(h.error().code, fmt::format("chunk {}: {}", ordinal_, h.error().message)));
      }
      if (n - pos >= h->compressed_len) {
        std::span<const uint8_t> payload = bytes.subspan(pos, h->compressed_len);
        pos += h->compressed_len;
        Status s = deliver(*h, payload, on_chunk);
        if (!s.ok()) return fail(std::move(s).error());
        continue;
      }
      header_ = *h;
      payload_buf_.clear();
      payload_buf_.reserve(h->compressed_len);
    }
    size_t need = header_->compressed_len - payload_buf_.size();
    size_t take = std::min(need, n - pos);
    payload_buf_.insert(payload_buf_.end(), bytes.begin() + static_cast<ptrdiff_t>(pos),
                        bytes.begin() + static_cast<ptrdiff_t>(pos + take));
    pos += take;
    if (payload_buf_.size() == header_->compressed_len) {
      ChunkHeader h = *header_;
      header_.reset();
      Status s = deliver(h, payload_buf_, on_chunk);
      if (!s.ok()) return fail(std::move(s).error());
    }
  }
  return {};
}

Status ChunkRecordDecoder::finish() {
  if (failed_) return make_error(Errc::internal, "chunk record decoder used after an error");
  if (footer_seen_) return {};
  if (header_have_ > 0) {
    return bad_xorb(fmt::format("truncated chunk record {}: {} of 8 header bytes", ordinal_, header_have_));
  }
  if (header_) {
    return bad_xorb(fmt::format("truncated chunk record {}: {} of {} payload bytes", ordinal_,
                                payload_buf_.size(), header_->compressed_len));
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Footer

Result<std::vector<uint8_t>> serialize_footer(const XorbFooter& f) {
  const size_t n = f.chunk_hashes.size();
  if (f.chunk_boundary_offsets.size() != n || f.unpacked_chunk_offsets.size() != n) {
    return make_error(Errc::invalid_argument, "xorb footer vectors have different lengths");
  }
  if (n > kMaxXorbChunks) return make_error(Errc::too_large, "xorb footer has too many chunks");
  const uint32_t boundary_off = static_cast<uint32_t>(40 + 8 * n);
  const uint32_t hashes_off = static_cast<uint32_t>(12 + 32 * n) + boundary_off;
  const uint32_t info_len = static_cast<uint32_t>(92 + 40 * n);
  std::vector<uint8_t> out;
  out.reserve(info_len + 4);
  auto put = [&out](const void* p, size_t k) {
    auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + k);
  };
  auto put32 = [&put](uint32_t v) { put(&v, 4); };
  put(kFooterMagic, 7);
  out.push_back(1);
  put(f.xorb_hash.bytes.data(), 32);
  put(kHashesIdent, 7);
  out.push_back(0);
  put32(static_cast<uint32_t>(n));
  for (const Hash& h : f.chunk_hashes) put(h.bytes.data(), 32);
  put(kBoundsIdent, 7);
  out.push_back(1);
  put32(static_cast<uint32_t>(n));
  for (uint32_t v : f.chunk_boundary_offsets) put32(v);
  for (uint32_t v : f.unpacked_chunk_offsets) put32(v);
  put32(static_cast<uint32_t>(n));
  put32(hashes_off);
  put32(boundary_off);
  put(f.nonce_buffer.data(), 16);
  put32(info_len);
  return out;
}

Result<XorbFooter> parse_footer(std::span<const uint8_t> whole, size_t* footer_start) {
  const size_t size = whole.size();
  if (size < 4) return bad_xorb("xorb footer: object too short");
  const uint32_t info_len = le32(whole.data() + size - 4);
  if (info_len > size - 4) return bad_xorb(fmt::format("xorb footer: info_length {} exceeds object size", info_len));
  const size_t start = size - 4 - info_len;
  const uint8_t* p = whole.data() + start;
  const uint8_t* const end = whole.data() + size - 4;
  auto left = [&] { return static_cast<size_t>(end - p); };
  if (left() < 40 || std::memcmp(p, kFooterMagic, 7) != 0) return bad_xorb("xorb footer: missing XETBLOB ident");
  XorbFooter f;
  f.version = p[7];
  f.xorb_hash = Hash::from_bytes(p + 8);
  p += 40;
  uint32_t n = 0;
  if (f.version == 1) {
    if (left() < 12 || std::memcmp(p, kHashesIdent, 7) != 0) return bad_xorb("xorb footer: missing XBLBHSH ident");
    if (p[7] != 0) return bad_xorb(fmt::format("xorb footer: unsupported hashes version {}", p[7]));
    n = le32(p + 8);
    p += 12;
    if (n > kMaxXorbChunks) return make_error(Errc::too_large, fmt::format("xorb footer: {} chunks", n));
    if (info_len != 92 + 40 * size_t{n}) {
      return bad_xorb(fmt::format("xorb footer: info_length {} does not match {} chunks", info_len, n));
    }
    f.chunk_hashes.resize(n);
    for (uint32_t i = 0; i < n; ++i, p += 32) f.chunk_hashes[i] = Hash::from_bytes(p);
    if (std::memcmp(p, kBoundsIdent, 7) != 0) return bad_xorb("xorb footer: missing XBLBBND ident");
    if (p[7] != 1) return bad_xorb(fmt::format("xorb footer: unsupported boundaries version {}", p[7]));
    if (le32(p + 8) != n) return bad_xorb("xorb footer: chunk counts disagree (boundaries)");
    p += 12;
    f.chunk_boundary_offsets.resize(n);
    f.unpacked_chunk_offsets.resize(n);
    for (uint32_t i = 0; i < n; ++i, p += 4) f.chunk_boundary_offsets[i] = le32(p);
    for (uint32_t i = 0; i < n; ++i, p += 4) f.unpacked_chunk_offsets[i] = le32(p);
    if (le32(p) != n) return bad_xorb("xorb footer: chunk counts disagree (trailer)");
    const uint32_t hashes_off = le32(p + 4), boundary_off = le32(p + 8);
    p += 12;
    if (boundary_off != 40 + 8 * n) return bad_xorb("xorb footer: bad boundary section offset");
    if (hashes_off != 12 + 32 * n + boundary_off) return bad_xorb("xorb footer: bad hashes section offset");
    std::memcpy(f.nonce_buffer.data(), p, 16);
    p += 16;
  } else if (f.version == 0) {
    if (left() < 4) return bad_xorb("xorb footer: truncated");
    n = le32(p);
    p += 4;
    if (n > kMaxXorbChunks) return make_error(Errc::too_large, fmt::format("xorb footer: {} chunks", n));
    if (info_len != 40 + 4 + 36 * size_t{n} + 16) {
      return bad_xorb(fmt::format("xorb footer: info_length {} does not match {} chunks", info_len, n));
    }
    f.chunk_boundary_offsets.resize(n);
    for (uint32_t i = 0; i < n; ++i, p += 4) f.chunk_boundary_offsets[i] = le32(p);
    f.chunk_hashes.resize(n);
    for (uint32_t i = 0; i < n; ++i, p += 32) f.chunk_hashes[i] = Hash::from_bytes(p);
    std::memcpy(f.nonce_buffer.data(), p, 16);
    p += 16;
  } else {
    return bad_xorb(fmt::format("xorb footer: unsupported version {}", f.version));
  }
  if (p != end) return bad_xorb("xorb footer: length mismatch");

  // Offsets: records and raw chunks have valid sizes; records end where the footer starts.
  uint64_t prev = 0;
  for (uint32_t b : f.chunk_boundary_offsets) {
    if (b < prev + kChunkHeaderSize || b - prev > kMaxChunkRecord) {
      return bad_xorb("xorb footer: chunk boundary offsets are not valid record ends");
    }
    prev = b;
  }
  if (prev != start) return bad_xorb("xorb footer: chunk records do not end at the footer");
  prev = 0;
  std::vector<HashSize> leaves;
  leaves.reserve(f.unpacked_chunk_offsets.size());
  for (size_t i = 0; i < f.unpacked_chunk_offsets.size(); ++i) {
    uint32_t u = f.unpacked_chunk_offsets[i];
    if (u < prev || u - prev > kMaxChunk) return bad_xorb("xorb footer: unpacked chunk offsets are invalid");
    leaves.push_back({f.chunk_hashes[i], u - prev});
    prev = u;
  }
  if (f.version == 1 && xorb_hash(leaves) != f.xorb_hash) {
    return corrupt("xorb footer: xorb hash does not match its chunk hashes");
  }
  if (footer_start) *footer_start = start;
  return f;
}

// ---------------------------------------------------------------------------------------------
// XorbBuilder

bool XorbBuilder::fits(size_t raw_len) const {
  // Stored payloads are never longer than the raw chunk (None fallback), so this is exact
  // for the worst case.
  return raw_len <= kMaxChunk && chunks_.size() + 1 <= kMaxXorbChunks && raw_bytes_ + raw_len <= kMaxXorbRawBytes &&
         serialized_.size() + kChunkHeaderSize + raw_len <= kMaxXorbSerializedBytes;
}

Result<Compression> XorbBuilder::add(std::span<const uint8_t> raw, const Hash& chunk_hash, Compression c) {
  if (raw.size() > kMaxChunk) {
    return make_error(Errc::invalid_argument, fmt::format("chunk of {} bytes exceeds {}", raw.size(), kMaxChunk));
  }
  if (!fits(raw.size())) return make_error(Errc::too_large, "chunk does not fit in this xorb");
  XorbChunkInfo info;
  info.hash = chunk_hash;
  info.raw_len = static_cast<uint32_t>(raw.size());
  info.raw_offset = raw_bytes_;
  info.serialized_offset = serialized_.size();
  HF_ASSIGN_OR_RETURN(info.scheme, encode_chunk(raw, c, serialized_));
  info.serialized_len = static_cast<uint32_t>(serialized_.size() - info.serialized_offset);
  raw_bytes_ += raw.size();
  chunks_.push_back(info);
  return info.scheme;
}

Hash XorbBuilder::hash() const {
  MerkleBuilder m;
  for (const auto& c : chunks_) m.add(c.hash, c.raw_len);
  return m.finish();
}

XorbFooter XorbBuilder::footer() const {
  XorbFooter f;
  f.version = 1;
  f.xorb_hash = hash();
  for (const auto& c : chunks_) {
    f.chunk_hashes.push_back(c.hash);
    f.chunk_boundary_offsets.push_back(static_cast<uint32_t>(c.serialized_offset + c.serialized_len));
    f.unpacked_chunk_offsets.push_back(static_cast<uint32_t>(c.raw_offset + c.raw_len));
  }
  return f;
}

void XorbBuilder::clear() {
  serialized_.clear();
  chunks_.clear();
  raw_bytes_ = 0;
}

// ---------------------------------------------------------------------------------------------
// parse_xorb

Result<ParsedXorb> parse_xorb(std::span<const uint8_t> bytes, const ParseXorbOptions& opts) {
  ParsedXorb out;
  std::vector<uint8_t> raw_buf;
  size_t pos = 0;
  const size_t n = bytes.size();
  MerkleBuilder merkle;
  while (pos < n) {
    std::span<const uint8_t> rest = bytes.subspan(pos);
    if (starts_with_footer_magic(rest)) {
      size_t footer_start = 0;
      HF_ASSIGN_OR_RETURN(XorbFooter f, parse_footer(bytes, &footer_start));
      if (footer_start != pos) return bad_xorb("xorb footer does not start where the chunk records end");
      out.footer = std::move(f);
      break;
    }
    auto h = parse_chunk_header(rest);
    if (!h.ok()) return make_error(h.error().code, fmt::format("chunk {}: {}", out.chunks.size(), h.error().message));
    if (h->compressed_len > rest.size() - kChunkHeaderSize) {
      return bad_xorb(fmt::format("chunk {}: truncated payload ({} of {} bytes)", out.chunks.size(),
                                  rest.size() - kChunkHeaderSize, h->compressed_len));
    }
    if (out.chunks.size() + 1 > kMaxXorbChunks) {
      return make_error(Errc::too_large, fmt::format("xorb has more than {} chunks", kMaxXorbChunks));
    }
    if (out.raw_bytes + h->raw_len > kMaxXorbRawBytes) {
      return make_error(Errc::too_large, "xorb raw size exceeds 64 MiB");
    }
    const size_t record = kChunkHeaderSize + h->compressed_len;
    if (pos + record > kMaxXorbRecordBytes) return make_error(Errc::too_large, "xorb serialized size exceeds limit");
    XorbChunkInfo info;
    info.raw_len = h->raw_len;
    info.raw_offset = out.raw_bytes;
    info.serialized_offset = pos;
    info.serialized_len = static_cast<uint32_t>(record);
    info.scheme = h->scheme;
    if (opts.decode) {
      std::span<const uint8_t> payload = rest.subspan(kChunkHeaderSize, h->compressed_len);
      std::span<const uint8_t> raw;
      if (h->scheme == Compression::none) {
        raw = payload;
      } else {
        raw_buf.resize(h->raw_len);
        Status s = decode_chunk(*h, payload, raw_buf);
        if (!s.ok()) return make_error(s.error().code, fmt::format("chunk {}: {}", out.chunks.size(), s.error().message));
        raw = raw_buf;
      }
      info.hash = chunk_hash(raw);
      merkle.add(info.hash, info.raw_len);
      if (opts.raw_out) opts.raw_out->insert(opts.raw_out->end(), raw.begin(), raw.end());
    }
    out.raw_bytes += h->raw_len;
    out.chunks.push_back(info);
    pos += record;
  }
  out.records_end = pos;
  if (opts.decode) out.hash = merkle.finish();

  if (out.footer) {
    const XorbFooter& f = *out.footer;
    if (f.chunk_boundary_offsets.size() != out.chunks.size()) {
      return corrupt("xorb footer chunk count does not match the records");
    }
    for (size_t i = 0; i < out.chunks.size(); ++i) {
      const auto& c = out.chunks[i];
      if (f.chunk_boundary_offsets[i] != c.serialized_offset + c.serialized_len) {
        return corrupt(fmt::format("xorb footer boundary of chunk {} does not match the records", i));
      }
      if (!f.unpacked_chunk_offsets.empty() && f.unpacked_chunk_offsets[i] != c.raw_offset + c.raw_len) {
        return corrupt(fmt::format("xorb footer raw offset of chunk {} does not match the records", i));
      }
      if (opts.decode && f.chunk_hashes[i] != c.hash) {
        return corrupt(fmt::format("xorb footer hash of chunk {} does not match its data", i));
      }
    }
    if (opts.decode && f.xorb_hash != out.hash) return corrupt("xorb footer hash does not match the data");
  }
  return out;
}

}  // namespace hf::xet
