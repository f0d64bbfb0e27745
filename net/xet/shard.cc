#include "net/xet/shard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <unordered_set>

namespace hf::xet {

namespace {

constexpr uint8_t kShardTag[32] = {'H', 'F', 'R', 'e', 'p', 'o', 'M', 'e', 't', 'a', 'D',
                                   'a', 't', 'a', 0,   85,  105, 103, 69,  106, 123, 129,
                                   87,  131, 165, 189, 217, 92,  205, 209, 74,  169};
constexpr uint64_t kShardHeaderVersion = 2;
constexpr uint64_t kShardFooterVersion = 1;

Error bad_shard(std::string msg) { return make_error(Errc::protocol, "shard: " + std::move(msg)); }

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void bytes(const void* p, size_t n) {
    // resize + memcpy rather than insert(): g++ 12 -O3 emits a false -Wstringop-overflow
    // for vector::insert of a constant-size range.
    const size_t at = out_.size();
    out_.resize(at + n);
    std::memcpy(out_.data() + at, p, n);
  }
  void hash(const Hash& h) { bytes(h.bytes.data(), 32); }
  void u32(uint32_t v) { bytes(&v, 4); }
  void u64(uint64_t v) { bytes(&v, 8); }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }
  void bookend() {
    out_.insert(out_.end(), 32, 0xFF);
    zeros(16);
  }
  size_t size() const { return out_.size(); }

 private:
  std::vector<uint8_t>& out_;
};

uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

bool is_bookend(const uint8_t* rec) {
  for (int i = 0; i < 32; ++i) {
    if (rec[i] != 0xFF) return false;
  }
  return true;
}

// Verification entries are all-or-none per shard (§5.4.3): every file carries the flag when
// any file has entries, or when every file is empty (XC flags empty files too).
bool shard_has_verification(const Shard& shard) {
  bool all_empty = true;
  for (const FileInfo& f : shard.files) {
    if (!f.verification.empty()) return true;
    all_empty = all_empty && f.terms.empty();
  }
  return all_empty;
}

Status check_files(const Shard& shard) {
  const bool flagged = shard_has_verification(shard);
  for (const FileInfo& f : shard.files) {
    if (flagged ? f.verification.size() != f.terms.size() : !f.verification.empty()) {
      return make_error(Errc::invalid_argument,
                        fmt::format("file {}: {} verification entries for {} terms (verification is all-or-none "
                                    "per shard)",
                                    f.file_hash.hex(), f.verification.size(), f.terms.size()));
    }
  }
  return {};
}

// Exact byte size of header + both sections (with bookends).
size_t sections_size(const Shard& shard) {
  size_t records = 1 + 2;  // header + bookends
  for (const FileInfo& f : shard.files) records += 1 + f.terms.size() + f.verification.size() + (f.sha256 ? 1 : 0);
  for (const XorbInfo& x : shard.xorbs) records += 1 + x.chunks.size();
  return records * kShardRecordSize;
}

void write_header(Writer& w, uint64_t footer_size) {
  w.bytes(kShardTag, 32);
  w.u64(kShardHeaderVersion);
  w.u64(footer_size);
}

// Writes the file and CAS sections (each ending with its bookend). Returns the offset of
// the CAS section.
uint64_t write_sections(Writer& w, const Shard& shard) {
  const bool flagged = shard_has_verification(shard);
  for (const FileInfo& f : shard.files) {
    uint32_t flags = (flagged ? kFileFlagWithVerification : 0) | (f.sha256 ? kFileFlagWithMetadataExt : 0);
    w.hash(f.file_hash);
    w.u32(flags);
    w.u32(static_cast<uint32_t>(f.terms.size()));
    w.u64(0);
    for (const FileTerm& t : f.terms) {
      w.hash(t.xorb_hash);
      w.u32(0);
      w.u32(t.unpacked_bytes);
      w.u32(t.chunk_start);
      w.u32(t.chunk_end);
    }
    for (const Hash& v : f.verification) {
      w.hash(v);
      w.zeros(16);
    }
    if (f.sha256) {
      auto swapped = sha256_word_swap(*f.sha256);
      w.bytes(swapped.data(), 32);
      w.zeros(16);
    }
  }
  w.bookend();
  uint64_t xorb_info_offset = w.size();
  for (const XorbInfo& x : shard.xorbs) {
    w.hash(x.xorb_hash);
    w.u32(x.flags);
    w.u32(static_cast<uint32_t>(x.chunks.size()));
    w.u32(x.num_bytes_in_xorb);
    w.u32(x.num_bytes_on_disk);
    for (const XorbChunkEntry& c : x.chunks) {
      w.hash(c.chunk_hash);
      w.u32(c.byte_range_start);
      w.u32(c.unpacked_bytes);
      w.u32(c.flags);
      w.u32(0);
    }
  }
  w.bookend();
  return xorb_info_offset;
}

}  // namespace

std::array<uint8_t, 32> sha256_word_swap(const std::array<uint8_t, 32>& in) {
  std::array<uint8_t, 32> out;
  for (int w = 0; w < 4; ++w) {
    for (int b = 0; b < 8; ++b) out[8 * w + b] = in[8 * w + 7 - b];
  }
  return out;
}

Result<std::vector<uint8_t>> serialize_upload_shard(const Shard& shard) {
  HF_TRY(check_files(shard));
  std::vector<uint8_t> out;
  out.reserve(sections_size(shard));
  Writer w(out);
  write_header(w, 0);
  write_sections(w, shard);
  return out;
}

Result<std::vector<uint8_t>> serialize_full_shard(const Shard& shard, const FullShardParams& params) {
  HF_TRY(check_files(shard));
  std::vector<uint8_t> out;
  size_t chunk_count = 0;
  for (const XorbInfo& x : shard.xorbs) chunk_count += x.chunks.size();
  out.reserve(sections_size(shard) + 12 * (shard.files.size() + shard.xorbs.size()) + 16 * chunk_count +
              kShardFooterSize);
  Writer w(out);
  write_header(w, kShardFooterSize);
  ShardFooter f;
  f.version = kShardFooterVersion;
  f.file_info_offset = kShardRecordSize;
  f.xorb_info_offset = write_sections(w, shard);
  const uint64_t tables_start = w.size();

  if (params.lookup_tables) {
    // Record indices count 48-byte records from the start of their section (§5.6).
    std::vector<std::pair<uint64_t, uint32_t>> file_lookup, xorb_lookup;
    std::vector<std::tuple<uint64_t, uint32_t, uint32_t>> chunk_lookup;
    uint32_t rec = 0;
    for (const FileInfo& fi : shard.files) {
      file_lookup.emplace_back(fi.file_hash.word(0), rec);
      rec += 1 + static_cast<uint32_t>(fi.terms.size() + fi.verification.size()) + (fi.sha256 ? 1 : 0);
    }
    rec = 0;
    for (const XorbInfo& x : shard.xorbs) {
      xorb_lookup.emplace_back(x.xorb_hash.word(0), rec);
      for (uint32_t i = 0; i < x.chunks.size(); ++i) chunk_lookup.emplace_back(x.chunks[i].chunk_hash.word(0), rec, i);
      rec += 1 + static_cast<uint32_t>(x.chunks.size());
    }
    std::sort(file_lookup.begin(), file_lookup.end());
    std::sort(xorb_lookup.begin(), xorb_lookup.end());
    std::sort(chunk_lookup.begin(), chunk_lookup.end());
    f.file_lookup_offset = w.size();
    f.file_lookup_num_entry = file_lookup.size();
    for (auto& [k, v] : file_lookup) {
      w.u64(k);
      w.u32(v);
    }
    f.xorb_lookup_offset = w.size();
    f.xorb_lookup_num_entry = xorb_lookup.size();
    for (auto& [k, v] : xorb_lookup) {
      w.u64(k);
      w.u32(v);
    }
    f.chunk_lookup_offset = w.size();
    f.chunk_lookup_num_entry = chunk_lookup.size();
    for (auto& [k, x, i] : chunk_lookup) {
      w.u64(k);
      w.u32(x);
      w.u32(i);
    }
  } else {
    f.file_lookup_offset = f.xorb_lookup_offset = f.chunk_lookup_offset = tables_start;
  }
  f.footer_offset = w.size();
  f.chunk_hash_hmac_key = params.chunk_hash_hmac_key;
  f.shard_creation_timestamp = params.creation_timestamp;
  f.shard_key_expiry = params.key_expiry;
  for (const XorbInfo& x : shard.xorbs) {
    f.stored_bytes_on_disk += x.num_bytes_on_disk;
    f.stored_bytes += x.num_bytes_in_xorb;
  }
  for (const FileInfo& fi : shard.files) {
    for (const FileTerm& t : fi.terms) f.materialized_bytes += t.unpacked_bytes;
  }

  w.u64(f.version);
  w.u64(f.file_info_offset);
  w.u64(f.xorb_info_offset);
  w.u64(f.file_lookup_offset);
  w.u64(f.file_lookup_num_entry);
  w.u64(f.xorb_lookup_offset);
  w.u64(f.xorb_lookup_num_entry);
  w.u64(f.chunk_lookup_offset);
  w.u64(f.chunk_lookup_num_entry);
  w.hash(f.chunk_hash_hmac_key);
  w.u64(f.shard_creation_timestamp);
  w.u64(f.shard_key_expiry);
  w.zeros(48);
  w.u64(f.stored_bytes_on_disk);
  w.u64(f.materialized_bytes);
  w.u64(f.stored_bytes);
  w.u64(f.footer_offset);
  return out;
}

Result<Shard> parse_shard(std::span<const uint8_t> bytes, size_t max_bytes) {
  const size_t size = bytes.size();
  const uint8_t* const base = bytes.data();
  if (size > max_bytes) {
    return make_error(Errc::too_large, fmt::format("shard: {} bytes exceeds the {}-byte limit", size, max_bytes));
  }
  if (size < kShardRecordSize) return bad_shard("truncated header");
  if (std::memcmp(base, kShardTag, 32) != 0) return bad_shard("bad header tag");
  if (uint64_t v = rd64(base + 32); v != kShardHeaderVersion) return bad_shard(fmt::format("unsupported version {}", v));
  const uint64_t footer_size = rd64(base + 40);
  if (footer_size != 0 && footer_size != kShardFooterSize) {
    return bad_shard(fmt::format("unsupported footer size {}", footer_size));
  }
  // The sections must end before the footer when there is one.
  const size_t sections_end = footer_size ? (size >= kShardFooterSize ? size - kShardFooterSize : 0) : size;
  if (sections_end < kShardRecordSize) return bad_shard("truncated footer");

  Shard shard;
  size_t pos = kShardRecordSize;
  // Records still available before sections_end (always re-derived, so counts from the
  // input are compared against real bytes before any allocation).
  auto records_left = [&] { return (sections_end - pos) / kShardRecordSize; };
  auto need_record = [&]() { return pos + kShardRecordSize <= sections_end; };

  // File info section.
  std::unordered_set<Hash, HashHasher> seen_files;
  size_t with_verification = 0, without_verification = 0;
  for (;;) {
    if (!need_record()) return bad_shard("file section has no bookend");
    const uint8_t* rec = base + pos;
    pos += kShardRecordSize;
    if (is_bookend(rec)) break;
    FileInfo fi;
    fi.file_hash = Hash::from_bytes(rec);
    const uint32_t flags = rd32(rec + 32);
    const uint32_t n = rd32(rec + 36);
    const bool has_verification = flags & kFileFlagWithVerification;
    const bool has_ext = flags & kFileFlagWithMetadataExt;
    const uint64_t needed = uint64_t{n} * (has_verification ? 2 : 1) + (has_ext ? 1 : 0);
    if (needed > records_left()) {
      return bad_shard(fmt::format("file {} declares {} terms beyond the end of the body", fi.file_hash.hex(), n));
    }
    fi.terms.resize(n);
    for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) {
      const uint8_t* e = base + pos;
      FileTerm& t = fi.terms[i];
      t.xorb_hash = Hash::from_bytes(e);
      t.unpacked_bytes = rd32(e + 36);
      t.chunk_start = rd32(e + 40);
      t.chunk_end = rd32(e + 44);
      if (t.chunk_start >= t.chunk_end) {
        return bad_shard(fmt::format("file {} term {}: empty chunk range [{}, {})", fi.file_hash.hex(), i,
                                    t.chunk_start, t.chunk_end));
      }
    }
    if (has_verification) {
      fi.verification.resize(n);
      for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) fi.verification[i] = Hash::from_bytes(base + pos);
      ++with_verification;
    } else {
      ++without_verification;
    }
    if (has_ext) {
      std::array<uint8_t, 32> wire;
      std::memcpy(wire.data(), base + pos, 32);
      fi.sha256 = sha256_word_swap(wire);
      pos += kShardRecordSize;
    }
    if (seen_files.insert(fi.file_hash).second) shard.files.push_back(std::move(fi));
  }
  if (with_verification > 0 && without_verification > 0) {
    return bad_shard("only some files contain verification");
  }

  // CAS (xorb) info section.
  const size_t xorb_info_offset = pos;
  for (;;) {
    if (!need_record()) return bad_shard("xorb section has no bookend");
    const uint8_t* rec = base + pos;
    pos += kShardRecordSize;
    if (is_bookend(rec)) break;
    XorbInfo x;
    x.xorb_hash = Hash::from_bytes(rec);
    x.flags = rd32(rec + 32);
    const uint32_t n = rd32(rec + 36);
    x.num_bytes_in_xorb = rd32(rec + 40);
    x.num_bytes_on_disk = rd32(rec + 44);
    if (n > records_left()) {
      return bad_shard(fmt::format("xorb {} declares {} chunks beyond the end of the body", x.xorb_hash.hex(), n));
    }
    x.chunks.resize(n);
    for (uint32_t i = 0; i < n; ++i, pos += kShardRecordSize) {
      const uint8_t* e = base + pos;
      XorbChunkEntry& c = x.chunks[i];
      c.chunk_hash = Hash::from_bytes(e);
      c.byte_range_start = rd32(e + 32);
      c.unpacked_bytes = rd32(e + 36);
      c.flags = rd32(e + 40);
    }
    shard.xorbs.push_back(std::move(x));
  }
  const size_t sections_stop = pos;

  if (footer_size == 0) {
    if (sections_stop != size) {
      return bad_shard(fmt::format("{} trailing bytes after the xorb section and no footer", size - sections_stop));
    }
    return shard;
  }

  const uint8_t* f = base + size - kShardFooterSize;
  ShardFooter ft;
  ft.version = rd64(f);
  ft.file_info_offset = rd64(f + 8);
  ft.xorb_info_offset = rd64(f + 16);
  ft.file_lookup_offset = rd64(f + 24);
  ft.file_lookup_num_entry = rd64(f + 32);
  ft.xorb_lookup_offset = rd64(f + 40);
  ft.xorb_lookup_num_entry = rd64(f + 48);
  ft.chunk_lookup_offset = rd64(f + 56);
  ft.chunk_lookup_num_entry = rd64(f + 64);
  ft.chunk_hash_hmac_key = Hash::from_bytes(f + 72);
  ft.shard_creation_timestamp = rd64(f + 104);
  ft.shard_key_expiry = rd64(f + 112);
  ft.stored_bytes_on_disk = rd64(f + 168);
  ft.materialized_bytes = rd64(f + 176);
  ft.stored_bytes = rd64(f + 184);
  ft.footer_offset = rd64(f + 192);
  if (ft.version != kShardFooterVersion) return bad_shard(fmt::format("unsupported footer version {}", ft.version));
  if (ft.footer_offset != size - kShardFooterSize) return bad_shard("footer_offset does not point at the footer");
  if (ft.file_info_offset != kShardRecordSize) return bad_shard("footer file_info_offset is not 48");
  if (ft.xorb_info_offset != xorb_info_offset) return bad_shard("footer xorb_info_offset does not match the sections");
  // Lookup tables are optional (count 0; HFJS writes offset 0). Non-empty tables must lie
  // between the xorb section and the footer.
  auto check_table = [&](uint64_t off, uint64_t count, uint64_t entry, const char* name) -> Status {
    if (count == 0) return {};
    if (off < sections_stop || off > ft.footer_offset || count > (ft.footer_offset - off) / entry) {
      return bad_shard(fmt::format("{} lookup table lies outside the lookup area", name));
    }
    return {};
  };
  HF_TRY(check_table(ft.file_lookup_offset, ft.file_lookup_num_entry, 12, "file"));
  HF_TRY(check_table(ft.xorb_lookup_offset, ft.xorb_lookup_num_entry, 12, "xorb"));
  HF_TRY(check_table(ft.chunk_lookup_offset, ft.chunk_lookup_num_entry, 16, "chunk"));
  shard.footer = ft;
  return shard;
}

}  // namespace hf::xet
