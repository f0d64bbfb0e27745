#include "test/hubsim/cas_store.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "base/clock.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/text.h"

namespace hf::hubsim {

namespace fs = std::filesystem;

// Xorbs listed per global-dedup answer (and remembered per indexed chunk).
constexpr size_t kMaxDedupXorbs = 32;

void FileRec::finalize_offsets() {
  term_end.clear();
  term_end.reserve(terms.size());
  uint64_t e = 0;
  for (const auto& t : terms) {
    e += t.unpacked_bytes;
    term_end.push_back(e);
  }
  size = e;
}

XorbPtr make_xorb_rec(const xet::Hash& hash, const xet::ParsedXorb& parsed, SourcePtr bytes) {
  auto rec = std::make_shared<XorbRec>();
  rec->hash = hash;
  size_t n = parsed.chunks.size();
  rec->chunk_hashes.reserve(n);
  rec->chunk_raw.reserve(n);
  rec->ser_end.reserve(n);
  rec->raw_end.reserve(n);
  for (const auto& c : parsed.chunks) {
    rec->chunk_hashes.push_back(c.hash);
    rec->chunk_raw.push_back(c.raw_len);
    rec->ser_end.push_back(c.serialized_offset + c.serialized_len);
    rec->raw_end.push_back(c.raw_offset + c.raw_len);
  }
  rec->stored_size = parsed.records_end + 92 + 40 * n + 4;  // + V1 footer (spec §4.5)
  rec->bytes = std::move(bytes);
  return rec;
}

// ---------------------------------------------------------------------------------------------
// Persistence helpers

static Status write_file_atomic(const fs::path& path, std::string_view data) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return make_error(Errc::io, "cannot write " + tmp.string());
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) return make_error(Errc::io, "cannot write " + tmp.string());
  }
  fs::rename(tmp, path, ec);
  if (ec) return make_error(Errc::io, "cannot rename " + tmp.string() + ": " + ec.message());
  return {};
}

static Result<std::string> read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(Errc::io, "cannot read " + path.string());
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s;
}

Status CasStore::load() {
  if (dir_.empty()) return {};
  std::error_code ec;
  fs::path xdir = fs::path(dir_) / "xorbs";
  if (fs::is_directory(xdir, ec)) {
    for (const auto& ent : fs::directory_iterator(xdir, ec)) {
      auto name = ent.path().filename().string();
      if (name.ends_with(".tmp")) continue;
      auto h = xet::Hash::from_hex(name);
      auto data = read_file(ent.path());
      if (!h.ok() || !data.ok()) continue;
      auto body = std::move(data).value();
      auto parsed = xet::parse_xorb({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
      if (!parsed.ok() || parsed->hash != h.value()) {
        HF_LOG_WARN("hubsim", "skipping damaged persisted xorb {}", name);
        continue;
      }
      // Validated; the records are then served from the file (the leading records_end bytes).
      auto rec = make_xorb_rec(h.value(), parsed.value(),
                               std::make_shared<const FileSource>(ent.path().string(), parsed->records_end));
      std::unique_lock lk(mu_);
      xorbs_[rec->hash] = rec;
      uploaded_xorbs_[rec->hash].store(mono_ns(), std::memory_order_relaxed);
      oldest_use_ns_ = std::min(oldest_use_ns_, mono_ns());
    }
  }
  fs::path sdir = fs::path(dir_) / "shards";
  if (fs::is_directory(sdir, ec)) {
    std::vector<std::pair<uint64_t, fs::path>> shards;
    for (const auto& ent : fs::directory_iterator(sdir, ec)) {
      auto stem = ent.path().stem().string();
      if (ent.path().extension() != ".shard") continue;
      if (auto n = parse_u64(stem)) shards.emplace_back(*n, ent.path());
    }
    std::sort(shards.begin(), shards.end());
    for (const auto& [seq, path] : shards) {
      shard_seq_ = std::max(shard_seq_, seq);
      auto data = read_file(path);
      if (!data.ok()) continue;
      auto r = register_shard(data.value(), false, path.filename().string());
      if (!r.ok()) HF_LOG_WARN("hubsim", "skipping persisted shard {}: {}", path.string(), r.error().message);
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Xorbs

Result<bool> CasStore::upload_xorb(const xet::Hash& claimed, std::string body) {
  if (body.empty()) return make_error(Errc::invalid_argument, "empty xorb");
  if (body.size() > xet::kMaxXorbRecordBytes + (1u << 20))
    return make_error(Errc::too_large, "xorb exceeds the size limit");
  HF_ASSIGN_OR_RETURN(auto parsed,
                      xet::parse_xorb({reinterpret_cast<const uint8_t*>(body.data()), body.size()}));
  if (parsed.chunks.empty()) return make_error(Errc::invalid_argument, "xorb has no chunks");
  if (parsed.hash != claimed)
    return make_error(Errc::invalid_argument,
                      fmt::format("xorb hash mismatch: body hashes to {}", parsed.hash.hex()));
  {
    std::shared_lock lk(mu_);
    if (xorbs_.count(claimed)) {
      if (auto u = uploaded_xorbs_.find(claimed); u != uploaded_xorbs_.end())
        u->second.store(mono_ns(), std::memory_order_relaxed);
      return false;
    }
  }
  body.resize(parsed.records_end);  // drop an uploaded footer; the stored one is rebuilt
  SourcePtr bytes;
  if (!dir_.empty()) {
    // Persisted xorbs are served from disk: memory stays flat however much is uploaded.
    fs::path path = fs::path(dir_) / "xorbs" / claimed.hex();
    auto st = write_file_atomic(path, body);
    if (st.ok()) bytes = std::make_shared<const FileSource>(path.string(), body.size());
    else HF_LOG_WARN("hubsim", "persisting xorb failed: {}", st.error().message);
  }
  if (!bytes) bytes = make_memory_source(std::move(body));
  auto rec = make_xorb_rec(claimed, parsed, std::move(bytes));
  std::unique_lock lk(mu_);
  bool inserted = xorbs_.emplace(claimed, std::move(rec)).second;
  if (inserted) {
    int64_t now = mono_ns();
    uploaded_xorbs_[claimed].store(now, std::memory_order_relaxed);
    oldest_use_ns_ = std::min(oldest_use_ns_, now);
  }
  return inserted;
}

void CasStore::add_xorb(XorbPtr x) {
  std::unique_lock lk(mu_);
  xorbs_[x->hash] = std::move(x);
}

XorbPtr CasStore::xorb(const xet::Hash& h) const {
  std::shared_lock lk(mu_);
  auto it = xorbs_.find(h);
  return it == xorbs_.end() ? nullptr : it->second;
}

size_t CasStore::xorb_count() const {
  std::shared_lock lk(mu_);
  return xorbs_.size();
}

size_t CasStore::file_count() const {
  std::shared_lock lk(mu_);
  return files_.size();
}

// ---------------------------------------------------------------------------------------------
// Shards

Result<CasStore::ShardResult> CasStore::upload_shard(std::string_view body) {
  std::string name;
  if (!dir_.empty()) {
    std::unique_lock lk(mu_);
    name = fmt::format("{:08}.shard", ++shard_seq_);
  }
  return register_shard(body, true, name);
}

Result<CasStore::ShardResult> CasStore::register_shard(std::string_view body, bool persist,
                                                       const std::string& shard_name) {
  if (body.size() > xet::kMaxShardBytes) return make_error(Errc::too_large, "shard exceeds 64 MiB");
  HF_ASSIGN_OR_RETURN(auto shard, xet::parse_shard({reinterpret_cast<const uint8_t*>(body.data()), body.size()}));
  ShardResult result;

  // Snapshot the xorbs the shard references (validation runs without the lock).
  std::unordered_map<xet::Hash, XorbPtr, xet::HashHasher> refs;
  {
    std::shared_lock lk(mu_);
    auto grab = [&](const xet::Hash& h) {
      if (refs.count(h)) return;
      auto it = xorbs_.find(h);
      refs.emplace(h, it == xorbs_.end() ? nullptr : it->second);
    };
    for (const auto& f : shard.files)
      for (const auto& t : f.terms) grab(t.xorb_hash);
    for (const auto& x : shard.xorbs) grab(x.xorb_hash);
  }

  // CAS section: every xorb must be uploaded and described exactly.
  for (const auto& x : shard.xorbs) {
    const XorbPtr& rec = refs[x.xorb_hash];
    if (!rec) return make_error(Errc::invalid_argument, fmt::format("xorb {} has not been uploaded", x.xorb_hash.hex()));
    if (x.chunks.size() != rec->num_chunks())
      return make_error(Errc::invalid_argument, fmt::format("xorb {}: chunk count mismatch", x.xorb_hash.hex()));
    if (x.num_bytes_in_xorb != rec->raw_total())
      return make_error(Errc::invalid_argument, fmt::format("xorb {}: num_bytes_in_xorb mismatch", x.xorb_hash.hex()));
    for (uint32_t k = 0; k < x.chunks.size(); ++k) {
      const auto& c = x.chunks[k];
      if (c.chunk_hash != rec->chunk_hashes[k] || c.unpacked_bytes != rec->chunk_raw[k] ||
          c.byte_range_start != rec->raw_start(k))
        return make_error(Errc::invalid_argument,
                          fmt::format("xorb {}: chunk {} does not match the uploaded xorb", x.xorb_hash.hex(), k));
    }
  }

  // File section.
  std::vector<FilePtr> new_files;
  for (const auto& f : shard.files) {
    if (!f.terms.empty() && f.verification.size() != f.terms.size())
      return make_error(Errc::invalid_argument,
                        fmt::format("file {}: verification entries are required", f.file_hash.hex()));
    xet::MerkleBuilder mb;
    for (size_t i = 0; i < f.terms.size(); ++i) {
      const auto& t = f.terms[i];
      const XorbPtr& rec = refs[t.xorb_hash];
      if (!rec)
        return make_error(Errc::invalid_argument,
                          fmt::format("file {}: term {} references unknown xorb {}", f.file_hash.hex(), i, t.xorb_hash.hex()));
      if (t.chunk_start >= t.chunk_end || t.chunk_end > rec->num_chunks())
        return make_error(Errc::invalid_argument,
                          fmt::format("file {}: term {} has an invalid chunk range [{}, {})", f.file_hash.hex(), i,
                                      t.chunk_start, t.chunk_end));
      uint64_t sum = rec->raw_end[t.chunk_end - 1] - rec->raw_start(t.chunk_start);
      if (sum != t.unpacked_bytes)
        return make_error(Errc::invalid_argument,
                          fmt::format("file {}: term {} unpacked_segment_bytes {} != {}", f.file_hash.hex(), i,
                                      t.unpacked_bytes, sum));
      std::span<const xet::Hash> hashes(rec->chunk_hashes.data() + t.chunk_start, t.chunk_end - t.chunk_start);
      if (xet::range_hash(hashes) != f.verification[i])
        return make_error(Errc::invalid_argument,
                          fmt::format("file {}: term {} verification hash mismatch", f.file_hash.hex(), i));
      for (uint32_t k = t.chunk_start; k < t.chunk_end; ++k) mb.add(rec->chunk_hashes[k], rec->chunk_raw[k]);
      result.terms++;
    }
    xet::Hash computed = mb.finish_file_hash();
    if (computed != f.file_hash)
      return make_error(Errc::invalid_argument,
                        fmt::format("file reconstruction does not produce this hash: {} (computed {})",
                                    f.file_hash.hex(), computed.hex()));
    auto rec = std::make_shared<FileRec>();
    rec->hash = f.file_hash;
    rec->terms = f.terms;
    rec->sha256 = f.sha256;
    rec->finalize_offsets();
    new_files.push_back(std::move(rec));
    result.files++;
  }

  std::vector<xet::Hash> cas_xorbs;
  for (const auto& x : shard.xorbs) cas_xorbs.push_back(x.xorb_hash);
  {
    std::unique_lock lk(mu_);
    // Garbage collection may have removed a xorb since validation: the shard then fails as if
    // the xorb had never been uploaded (the client uploads it again).
    int64_t now = mono_ns();
    for (const auto& [h, rec] : refs) {
      auto it = xorbs_.find(h);
      if (it == xorbs_.end() || it->second != rec)
        return make_error(Errc::invalid_argument, fmt::format("xorb {} has not been uploaded", h.hex()));
      if (auto u = uploaded_xorbs_.find(h); u != uploaded_xorbs_.end()) u->second.store(now, std::memory_order_relaxed);
    }
    for (auto& f : new_files) {
      // Global dedup index (spec §5.8): each file's first chunk, pointing at the xorb holding
      // that chunk, this shard's CAS section, then what the chunk pointed at before (a file
      // deduplicated against an earlier one keeps the earlier xorbs reachable), bounded.
      if (!f->terms.empty()) {
        const auto& t0 = f->terms.front();
        const XorbPtr& rec = refs[t0.xorb_hash];
        const xet::Hash& first = rec->chunk_hashes[t0.chunk_start];
        std::vector<xet::Hash> xs{t0.xorb_hash};
        auto add = [&xs](const xet::Hash& h) {
          if (xs.size() < kMaxDedupXorbs && std::find(xs.begin(), xs.end(), h) == xs.end()) xs.push_back(h);
        };
        for (const auto& h : cas_xorbs) add(h);
        if (auto old = dedup_.find(first); old != dedup_.end())
          for (const auto& h : *old->second) add(h);
        dedup_[first] = std::make_shared<const std::vector<xet::Hash>>(std::move(xs));
      }
      if (files_.emplace(f->hash, f).second) {
        result.inserted = true;
        uploaded_files_[f->hash] = UploadedFile{now, shard_name};
        if (!shard_name.empty()) shard_live_files_[shard_name]++;
        oldest_use_ns_ = std::min(oldest_use_ns_, now);
      } else if (auto u = uploaded_files_.find(f->hash); u != uploaded_files_.end()) {
        u->second.used_ns = now;
      }
    }
    if (!cas_xorbs.empty()) {
      auto xs = std::make_shared<const std::vector<xet::Hash>>(cas_xorbs);
      for (const auto& x : shard.xorbs)
        for (const auto& c : x.chunks)
          if (xet::is_global_dedup_eligible(c.chunk_hash) || (c.flags & xet::kChunkFlagGlobalDedup))
            dedup_.emplace(c.chunk_hash, xs);
    }
  }
  if (persist && !shard_name.empty() && result.inserted) {
    auto st = write_file_atomic(fs::path(dir_) / "shards" / shard_name, body);
    if (!st.ok()) HF_LOG_WARN("hubsim", "persisting shard failed: {}", st.error().message);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Garbage collection

bool CasStore::has_gc_candidates(int64_t cutoff_ns) const {
  std::shared_lock lk(mu_);
  return oldest_use_ns_ < cutoff_ns;
}

CasStore::GcResult CasStore::collect_garbage(const std::unordered_set<xet::Hash, xet::HashHasher>& live_files,
                                             int64_t cutoff_ns) {
  GcResult r;
  std::vector<std::string> unlink_paths;
  {
    std::unique_lock lk(mu_);
    int64_t oldest = INT64_MAX;
    for (auto it = uploaded_files_.begin(); it != uploaded_files_.end();) {
      if (it->second.used_ns < cutoff_ns && !live_files.count(it->first)) {
        files_.erase(it->first);
        if (!it->second.shard.empty()) {
          auto s = shard_live_files_.find(it->second.shard);
          if (s != shard_live_files_.end() && --s->second == 0) {
            unlink_paths.push_back((fs::path(dir_) / "shards" / s->first).string());
            shard_live_files_.erase(s);
          }
        }
        r.files++;
        it = uploaded_files_.erase(it);
        continue;
      }
      oldest = std::min(oldest, it->second.used_ns);
      ++it;
    }
    std::unordered_set<xet::Hash, xet::HashHasher> referenced;
    for (const auto& [h, f] : files_)
      for (const auto& t : f->terms) referenced.insert(t.xorb_hash);
    for (auto it = uploaded_xorbs_.begin(); it != uploaded_xorbs_.end();) {
      int64_t used = it->second.load(std::memory_order_relaxed);
      if (used < cutoff_ns && !referenced.count(it->first)) {
        if (auto x = xorbs_.find(it->first); x != xorbs_.end()) {
          r.bytes += x->second->stored_size;
          xorbs_.erase(x);
        }
        if (!dir_.empty()) unlink_paths.push_back((fs::path(dir_) / "xorbs" / it->first.hex()).string());
        r.xorbs++;
        it = uploaded_xorbs_.erase(it);
        continue;
      }
      oldest = std::min(oldest, used);
      ++it;
    }
    oldest_use_ns_ = oldest;
    if (r.xorbs > 0) {
      for (auto it = dedup_.begin(); it != dedup_.end();) {
        bool any = std::any_of(it->second->begin(), it->second->end(), [&](const xet::Hash& h) { return xorbs_.count(h) > 0; });
        it = any ? std::next(it) : dedup_.erase(it);
      }
    }
  }
  // Responses in flight keep their sources (shared_ptr) and a FileSource whose file is gone
  // fails its read: the connection drops, the client retries and sees the current state.
  std::error_code ec;
  for (const auto& p : unlink_paths) fs::remove(p, ec);
  return r;
}

void CasStore::add_file(FilePtr f) {
  std::unique_lock lk(mu_);
  files_[f->hash] = std::move(f);
}

FilePtr CasStore::file(const xet::Hash& h) const {
  std::shared_lock lk(mu_);
  auto it = files_.find(h);
  return it == files_.end() ? nullptr : it->second;
}

void CasStore::index_dedup(const xet::Hash& chunk, const std::vector<xet::Hash>& xorbs) {
  auto xs = std::make_shared<const std::vector<xet::Hash>>(xorbs);
  std::unique_lock lk(mu_);
  dedup_[chunk] = std::move(xs);
}

std::optional<std::string> CasStore::dedup_shard(const xet::Hash& chunk) const {
  std::vector<XorbPtr> xorbs;
  {
    std::shared_lock lk(mu_);
    auto it = dedup_.find(chunk);
    if (it == dedup_.end()) return std::nullopt;
    for (const auto& h : *it->second) {
      if (xorbs.size() >= kMaxDedupXorbs) break;  // bound the response
      auto x = xorbs_.find(h);
      if (x != xorbs_.end()) xorbs.push_back(x->second);
      // A client may reference what it was just told about: that counts as a use.
      if (auto u = uploaded_xorbs_.find(h); u != uploaded_xorbs_.end()) u->second.store(mono_ns(), std::memory_order_relaxed);
    }
  }
  if (xorbs.empty()) return std::nullopt;
  xet::Hash key;
  if (RAND_bytes(key.bytes.data(), 32) != 1) key = xet::keyed_hash(xet::kDataKey, chunk.bytes);
  xet::Shard shard;
  for (const auto& x : xorbs) {
    xet::XorbInfo info;
    info.xorb_hash = x->hash;
    info.num_bytes_in_xorb = static_cast<uint32_t>(x->raw_total());
    info.num_bytes_on_disk = 0;  // as production dedup shards (spec §12.9)
    info.chunks.reserve(x->num_chunks());
    for (uint32_t k = 0; k < x->num_chunks(); ++k) {
      xet::XorbChunkEntry e;
      e.chunk_hash = xet::hmac(x->chunk_hashes[k], key);
      e.byte_range_start = static_cast<uint32_t>(x->raw_start(k));
      e.unpacked_bytes = x->chunk_raw[k];
      e.flags = k == 0 ? xet::kChunkFlagGlobalDedup : 0;
      info.chunks.push_back(e);
    }
    shard.xorbs.push_back(std::move(info));
  }
  xet::FullShardParams p;
  p.chunk_hash_hmac_key = key;
  p.creation_timestamp = static_cast<uint64_t>(now_unix_s());
  p.key_expiry = p.creation_timestamp + 7 * 86400;
  p.lookup_tables = false;
  auto bytes = xet::serialize_full_shard(shard, p);
  if (!bytes.ok()) {
    HF_LOG_WARN("hubsim", "dedup shard serialization failed: {}", bytes.error().message);
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

// ---------------------------------------------------------------------------------------------
// File bytes

namespace {

// Decodes a registered file's chunks on demand. Each read() returns whole chunks where
// possible so that consecutive reads do not decode a chunk twice.
class ReconstructedSource final : public ByteSource {
 public:
  ReconstructedSource(FilePtr f, std::vector<XorbPtr> xorbs) : file_(std::move(f)), xorbs_(std::move(xorbs)) {}
  uint64_t size() const override { return file_->size; }
  std::span<const uint8_t> read(uint64_t offset, size_t max, std::vector<uint8_t>& scratch) const override {
    size_t want = static_cast<size_t>(std::min<uint64_t>(max, size() - offset));
    scratch.resize(std::max<size_t>(want, xet::kMaxChunk));
    size_t ti = std::upper_bound(file_->term_end.begin(), file_->term_end.end(), offset) - file_->term_end.begin();
    size_t out = 0;
    std::vector<uint8_t> raw(xet::kMaxChunk);
    std::vector<uint8_t> rec_buf;
    while (out < want && ti < file_->terms.size()) {
      const auto& t = file_->terms[ti];
      const XorbRec& x = *xorbs_[ti];
      uint64_t term_start = file_->term_end[ti] - t.unpacked_bytes;
      uint64_t pos_in_term = offset + out - term_start;
      uint64_t base = x.raw_start(t.chunk_start);
      // First chunk of the term containing pos_in_term.
      uint32_t k = static_cast<uint32_t>(
          std::upper_bound(x.raw_end.begin() + t.chunk_start, x.raw_end.begin() + t.chunk_end, base + pos_in_term) -
          x.raw_end.begin());
      for (; k < t.chunk_end && out < want; ++k) {
        uint32_t len = x.chunk_raw[k];
        uint64_t in_chunk = base + pos_in_term - x.raw_start(k);
        size_t take = static_cast<size_t>(std::min<uint64_t>(len - in_chunk, want - out));
        if (out > 0 && take < len - in_chunk) return {scratch.data(), out};  // stop at a chunk boundary
        if (!decode(x, k, raw.data())) return {scratch.data(), out};
        std::memcpy(scratch.data() + out, raw.data() + in_chunk, take);
        out += take;
        pos_in_term += take;
      }
      ++ti;
    }
    return {scratch.data(), out};
  }

 private:
  static bool decode(const XorbRec& x, uint32_t k, uint8_t* out) {
    uint64_t s = x.ser_start(k), e = x.ser_end[k];
    std::vector<uint8_t> tmp;
    std::span<const uint8_t> rec;
    auto whole = x.bytes->contiguous();
    if (!whole.empty()) {
      rec = whole.subspan(s, e - s);
    } else {
      tmp.resize(e - s);
      std::vector<uint8_t> scratch;
      uint64_t off = s;
      size_t pos = 0;
      while (off < e) {
        auto v = x.bytes->read(off, static_cast<size_t>(e - off), scratch);
        if (v.empty()) return false;  // unreadable persisted xorb
        std::memcpy(tmp.data() + pos, v.data(), v.size());
        pos += v.size();
        off += v.size();
      }
      rec = tmp;
    }
    auto h = xet::parse_chunk_header(rec);
    if (!h.ok()) return false;
    return xet::decode_chunk(h.value(), rec.subspan(xet::kChunkHeaderSize), {out, h->raw_len}).ok();
  }

  FilePtr file_;
  std::vector<XorbPtr> xorbs_;  // per term
};

}  // namespace

SourcePtr CasStore::file_source(const FilePtr& f) const {
  if (f->content) return f->content;
  std::vector<XorbPtr> xs;
  xs.reserve(f->terms.size());
  {
    std::shared_lock lk(mu_);
    for (const auto& t : f->terms) {
      auto it = xorbs_.find(t.xorb_hash);
      if (it == xorbs_.end()) return nullptr;
      xs.push_back(it->second);
    }
  }
  return std::make_shared<ReconstructedSource>(f, std::move(xs));
}

// ---------------------------------------------------------------------------------------------
// Packer

Packer::Packer(CasStore& store, uint64_t xorb_raw_limit)
    : store_(store), limit_(std::clamp<uint64_t>(xorb_raw_limit, xet::kMaxChunk, xet::kMaxXorbRawBytes)) {}

Status Packer::close_xorb() {
  if (builder_.empty()) return {};
  auto rec = std::make_shared<XorbRec>();
  rec->hash = builder_.hash();
  const auto& chunks = builder_.chunks();
  for (const auto& c : chunks) {
    rec->chunk_hashes.push_back(c.hash);
    rec->chunk_raw.push_back(c.raw_len);
    rec->ser_end.push_back(c.serialized_offset + c.serialized_len);
    rec->raw_end.push_back(c.raw_offset + c.raw_len);
  }
  const auto& ser = builder_.serialized();
  rec->stored_size = ser.size() + 92 + 40 * chunks.size() + 4;
  rec->bytes = make_memory_source(std::string(reinterpret_cast<const char*>(ser.data()), ser.size()));
  xorb_hashes_.push_back(rec->hash);
  store_.add_xorb(std::move(rec));
  builder_.clear();
  return {};
}

Result<Packer::Packed> Packer::add(std::span<const uint8_t> data) {
  Packed out;
  out.size = data.size();
  out.sha256 = sha256(data.data(), data.size());
  PendingFile pf;
  pf.sha256 = out.sha256;
  std::vector<xet::HashSize> leaves;
  xet::ChunkStream cs(true);
  auto take = [&](const std::vector<xet::StreamChunk>& chunks) -> Status {
    for (const auto& c : chunks) {
      size_t len = c.data.size();
      size_t xi;
      uint32_t index;
      if (auto p = placed_.find(c.hash); p != placed_.end()) {
        xi = p->second.first;  // deduplicated: reference the chunk where it already is
        index = p->second.second;
      } else {
        if (!builder_.fits(len) || builder_.raw_bytes() + len > limit_) HF_TRY(close_xorb());
        // Deterministic mix of schemes (the encoder stores None when compression does not help).
        static constexpr xet::Compression kSchemes[] = {xet::Compression::none, xet::Compression::lz4,
                                                        xet::Compression::bg4_lz4};
        index = static_cast<uint32_t>(builder_.chunks().size());
        HF_TRY(builder_.add(c.data, c.hash, kSchemes[c.hash.mod(3)]));
        xi = xorb_hashes_.size();
        placed_.emplace(c.hash, std::make_pair(xi, index));
      }
      if (pf.terms.empty()) pf.first_chunks.push_back(c.hash);
      if (!pf.terms.empty() && pf.terms.back().xorb_index == xi && pf.terms.back().end == index) {
        pf.terms.back().end++;
        pf.terms.back().unpacked += static_cast<uint32_t>(len);
      } else {
        pf.terms.push_back(PendingTerm{xi, index, index + 1, static_cast<uint32_t>(len)});
      }
      leaves.push_back({c.hash, len});
      if (xet::is_global_dedup_eligible(c.hash)) dedup_.emplace_back(c.hash, xi);
    }
    return {};
  };
  HF_TRY(take(cs.feed(data)));
  HF_TRY(take(cs.finish()));
  out.file_hash = xet::file_hash(leaves);
  pf.hash = out.file_hash;
  files_.push_back(std::move(pf));
  return out;
}

Status Packer::finish() {
  HF_TRY(close_xorb());
  for (auto& pf : files_) {
    auto rec = std::make_shared<FileRec>();
    rec->hash = pf.hash;
    rec->sha256 = pf.sha256;
    for (const auto& t : pf.terms) {
      xet::FileTerm ft;
      ft.xorb_hash = xorb_hashes_[t.xorb_index];
      ft.chunk_start = t.start;
      ft.chunk_end = t.end;
      ft.unpacked_bytes = t.unpacked;
      rec->terms.push_back(ft);
    }
    rec->finalize_offsets();
    if (!pf.first_chunks.empty() && !rec->terms.empty())
      store_.index_dedup(pf.first_chunks.front(), {rec->terms.front().xorb_hash});
    store_.add_file(std::move(rec));
  }
  for (const auto& [chunk, xi] : dedup_) store_.index_dedup(chunk, {xorb_hashes_[xi]});
  files_.clear();
  dedup_.clear();
  return {};
}

}  // namespace hf::hubsim
