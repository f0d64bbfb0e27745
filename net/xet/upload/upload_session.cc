#include "net/xet/upload/upload_session.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/clock.h"
#include "base/log.h"
#include "base/sha256.h"
#include "net/xet/chunker.h"

namespace hf::xet {

namespace net = boost::asio;

namespace {
constexpr size_t kSchemeRetest = 32;  // chunks per compressibility test (XC's retest interval)
}

UploadSession::UploadSession(UploadSink& sink, net::any_io_executor io, net::any_io_executor cpu, UploadOptions opts)
    : sink_(sink), io_(std::move(io)), cpu_(std::move(cpu)), opts_(opts), dedup_(opts.dedup_cache) {}

UploadSession::~UploadSession() = default;

Compression UploadSession::pick_scheme(std::span<const uint8_t> raw) {
  switch (opts_.compression) {
    case CompressionPolicy::none: return Compression::none;
    case CompressionPolicy::lz4: return Compression::lz4;
    case CompressionPolicy::bg4: return Compression::bg4_lz4;
    case CompressionPolicy::automatic: break;
  }
  if (group_left_ == 0) {
    // Test the first chunk of each group with both schemes and keep the smaller: incompressible
    // data (most model weights) then skips the compressor for the whole group, and text does
    // not get byte-grouping it would not benefit from.
    std::vector<uint8_t> a, b;
    auto lz = encode_chunk(raw, Compression::lz4, a);
    auto bg = encode_chunk(raw, Compression::bg4_lz4, b);
    size_t limit = raw.size() * 95 / 100 + kChunkHeaderSize;
    size_t best = limit;
    group_scheme_ = Compression::none;
    if (lz.ok() && *lz == Compression::lz4 && a.size() < best) {
      best = a.size();
      group_scheme_ = Compression::lz4;
    }
    if (bg.ok() && *bg == Compression::bg4_lz4 && b.size() < best) group_scheme_ = Compression::bg4_lz4;
    group_left_ = kSchemeRetest;
  }
  --group_left_;
  return group_scheme_;
}

Status UploadSession::seal_open_xorb() {
  if (open_slot_ < 0) return {};
  if (open_.empty()) {
    xorbs_.pop_back();  // the slot was created for a chunk that never came
    open_slot_ = -1;
    return {};
  }
  XorbSlot& slot = xorbs_[static_cast<size_t>(open_slot_)];
  slot.info.xorb_hash = open_.hash();
  slot.info.num_bytes_in_xorb = static_cast<uint32_t>(open_.raw_bytes());
  slot.info.num_bytes_on_disk = static_cast<uint32_t>(open_.serialized().size());
  slot.info.chunks.reserve(open_.chunks().size());
  for (const XorbChunkInfo& c : open_.chunks()) {
    slot.info.chunks.push_back(XorbChunkEntry{c.hash, static_cast<uint32_t>(c.raw_offset), c.raw_len, 0});
  }
  slot.sealed = true;
  auto bytes = std::make_shared<const std::string>(reinterpret_cast<const char*>(open_.serialized().data()),
                                                   open_.serialized().size());
  stats_.xorbs++;
  stats_.xorb_bytes += bytes->size();
  auto done = SharedResult<Status>::create();
  uploads_.push_back(done);
  Hash h = slot.info.xorb_hash;
  net::co_spawn(
      io_,
      [this, h, bytes, done]() -> Task<void> {
        Status s = co_await sink_.put_xorb(h, bytes);
        if (!s.ok()) failed_ = true;
        done->set(s);
      },
      net::detached);
  open_.clear();
  open_slot_ = -1;
  return {};
}

int64_t UploadSession::now_unix() const { return opts_.now_unix ? opts_.now_unix() : now_unix_s(); }

void UploadSession::count_term(FileCtx& f) {
  const auto& cs = f.file->chunks;
  if (cs.size() < 2) {
    f.terms = cs.size();
    return;
  }
  const PlacedChunk& a = cs[cs.size() - 2];
  const PlacedChunk& b = cs.back();
  // As build_shards forms terms: the same xorb (new: same slot), the next chunk index.
  bool extends = a.slot == b.slot && (a.slot >= 0 || a.known == b.known) && b.index == a.index + 1;
  if (!extends) f.terms++;
}

void UploadSession::place_existing(const Hash& h, uint32_t len, const CasChunkRef& at, bool global, FileCtx& f) {
  f.file->chunks.push_back(PlacedChunk{h, len, -1, at.index, at.xorb});
  count_term(f);
  f.res->dedup_bytes += len;
  if (global) f.res->global_dedup_bytes += len;
  f.prev = at;
}

Status UploadSession::place_local(std::span<const uint8_t> data, const Hash& h, FileCtx& f) {
  uint32_t len = static_cast<uint32_t>(data.size());
  f.prev.reset();
  if (auto it = placed_.find(h); it != placed_.end()) {
    f.file->chunks.push_back(PlacedChunk{h, len, it->second.first, it->second.second, {}});
    count_term(f);
    f.res->dedup_bytes += len;
    return {};
  }
  if (open_slot_ >= 0 && (!open_.fits(len) || open_.chunks().size() >= opts_.max_xorb_chunks ||
                          open_.raw_bytes() + len > opts_.max_xorb_bytes)) {
    HF_TRY(seal_open_xorb());
  }
  if (open_slot_ < 0) {
    open_slot_ = static_cast<int32_t>(xorbs_.size());
    xorbs_.emplace_back();
  }
  auto added = open_.add(data, h, pick_scheme(data));
  if (!added.ok()) return std::move(added).error();
  uint32_t index = static_cast<uint32_t>(open_.chunks().size() - 1);
  placed_.emplace(h, std::make_pair(open_slot_, index));
  f.file->chunks.push_back(PlacedChunk{h, len, open_slot_, index, {}});
  count_term(f);
  f.res->new_bytes += len;
  return {};
}

Status UploadSession::flush_run(FileCtx& f, bool take_it) {
  for (RunChunk& r : f.run) {
    if (take_it) {
      place_existing(r.hash, static_cast<uint32_t>(r.data.size()), r.at, true, f);
    } else {
      HF_TRY(place_local(r.data, r.hash, f));
    }
  }
  f.run.clear();
  f.run_terms = 0;
  f.run_from_start = false;
  return {};
}

Status UploadSession::place(const StreamChunk& c, FileCtx& f) {
  uint32_t len = static_cast<uint32_t>(c.data.size());
  bool first = f.chunks_seen++ == 0;
  if (*f.known) {
    if (auto loc = (*f.known)(c.offset, len)) {
      HF_TRY(flush_run(f, false));
      place_existing(c.hash, len, *loc, false, f);
      return {};
    }
  }
  // Local dedup first: such a chunk costs nothing either way, and XC's order is the same.
  std::optional<CasChunkRef> hit;
  if (dedup_.shards() > 0 && !placed_.count(c.hash)) {
    std::optional<CasChunkRef> tail = f.run.empty() ? f.prev : std::optional<CasChunkRef>(f.run.back().at);
    hit = dedup_.find(c.hash, len, now_unix(), tail);
    if (hit) {
      bool continues = tail && tail->xorb == hit->xorb && tail->index + 1 == hit->index;
      if (f.run.empty() && continues) {
        place_existing(c.hash, len, *hit, true, f);  // extends the previous term: never fragments
        return {};
      }
      if (f.run.empty()) {
        f.run_from_start = first;
        f.run_terms = 1;
      } else if (!continues) {
        f.run_terms++;  // the run goes on in another xorb (or elsewhere in this one): a new term
      }
      f.run.push_back(RunChunk{c.hash, std::vector<uint8_t>(c.data.begin(), c.data.end()), *hit});
      size_t min_run = std::max<uint32_t>(opts_.min_dedup_run, 1);
      if (f.file->chunks.size() + f.run.size() >= min_run * (f.terms + f.run_terms)) {
        HF_TRY(flush_run(f, true));  // the file keeps long enough terms on average
      } else if (f.run.size() >= 4 * min_run) {
        HF_TRY(flush_run(f, false));  // scattered matches: bound the bytes held back, upload them
      }
      return {};
    }
  }
  HF_TRY(flush_run(f, false));
  return place_local(c.data, c.hash, f);
}

bool UploadSession::query_candidate(const StreamChunk& c, const FileCtx& f) const {
  // The file's first chunk (f.res->size counts the bytes read so far: the whole file when it
  // fits one read block) and eligible chunks.
  return opts_.global_dedup &&
         ((f.chunks_seen == 0 && f.res->size >= opts_.min_dedup_file) || is_global_dedup_eligible(c.hash));
}

Task<void> UploadSession::maybe_query(const StreamChunk& c, FileCtx& f) {
  // Candidates not deduplicated locally, within the session's query budget.
  if (stats_.dedup_queries >= opts_.max_dedup_queries) co_return;
  uint32_t len = static_cast<uint32_t>(c.data.size());
  if (*f.known && (*f.known)(c.offset, len)) co_return;
  if (placed_.count(c.hash) || dedup_.find(c.hash, len, now_unix())) co_return;
  stats_.dedup_queries++;
  // The sink talks to the network on the io executor; resume here (cpu) afterwards.
  std::optional<Shard> answer =
      co_await net::co_spawn(io_, sink_.query_dedup(c.hash), net::use_awaitable);
  if (!answer) co_return;
  Status st = dedup_.add(*answer, now_unix());
  if (!st.ok()) {
    HF_LOG_DEBUG("upload", "global dedup answer for {} not used: {}", c.hash.hex(), st.error().message);
    co_return;
  }
  stats_.dedup_answers++;
}

Task<Status> UploadSession::take(const std::vector<StreamChunk>& chunks, FileCtx& f) {
  for (const StreamChunk& c : chunks) {
    if (query_candidate(c, f)) co_await maybe_query(c, f);
    HF_CO_TRY(place(c, f));
  }
  co_return Status{};
}

Task<Status> UploadSession::drain(size_t keep) {
  while (uploads_.size() > keep) {
    auto f = uploads_.front();
    uploads_.pop_front();
    Status s = co_await f->wait();
    if (!s.ok() && first_error_.ok()) first_error_ = s;
  }
  co_return first_error_;
}

Task<void> UploadSession::settle() { (void)co_await drain(0); }

Task<Result<FileUploadResult>> UploadSession::process(ReadFn read, KnownAt known) {
  FileUploadResult res;
  PendingFile file;
  std::vector<HashSize> leaves;
  std::optional<Sha256> sha;
  if (opts_.sha256) sha.emplace();
  ChunkStream cs(true);
  std::vector<uint8_t> buf(opts_.read_block);
  group_left_ = 0;  // compressibility is a property of each file: test its first chunk afresh
  FileCtx ctx;
  ctx.known = &known;
  ctx.file = &file;
  ctx.res = &res;
  auto leaves_of = [&](const std::vector<StreamChunk>& chunks) {
    for (const StreamChunk& c : chunks) leaves.push_back(HashSize{c.hash, c.data.size()});
  };
  for (;;) {
    if (failed_) {
      Status s = co_await drain(0);
      if (!s.ok()) co_return s.error();
    }
    auto n = read(buf);
    if (!n.ok()) co_return std::move(n).error();
    if (*n == 0) break;
    if (*n > buf.size()) co_return Error(Errc::internal, "read callback overran its buffer");
    std::span<const uint8_t> data(buf.data(), *n);
    res.size += *n;
    if (sha) sha->update(data);
    const std::vector<StreamChunk>& chunks = cs.feed(data);
    leaves_of(chunks);
    HF_CO_TRY(co_await take(chunks, ctx));
    if (uploads_.size() > opts_.max_inflight_xorbs) {
      Status s = co_await drain(opts_.max_inflight_xorbs);
      if (!s.ok()) co_return s.error();
    }
  }
  {
    const std::vector<StreamChunk>& chunks = cs.finish();
    leaves_of(chunks);
    HF_CO_TRY(co_await take(chunks, ctx));
  }
  // A pending run that is the whole file is one term: take it; otherwise it is a short
  // fragment at the end and goes into the new xorb.
  HF_CO_TRY(flush_run(ctx, ctx.run_from_start && ctx.run.size() == ctx.chunks_seen));
  res.file_hash = file_hash(leaves);
  file.file_hash = res.file_hash;
  if (sha) file.sha256 = sha->finish();
  stats_.new_bytes += res.new_bytes;
  stats_.dedup_bytes += res.dedup_bytes;
  stats_.global_dedup_bytes += res.global_dedup_bytes;
  files_.push_back(std::move(file));
  co_return res;
}

Task<Result<FileUploadResult>> UploadSession::add_file(ReadFn read, KnownAt known) {
  // Run the CPU-heavy part on the cpu executor; co_spawn's value form would need a
  // default-constructible result, so carry it out through a local.
  std::optional<Result<FileUploadResult>> out;
  co_await net::co_spawn(
      cpu_, [&]() -> Task<void> { out.emplace(co_await process(std::move(read), std::move(known))); },
      net::use_awaitable);
  co_return std::move(*out);
}

Result<std::vector<Shard>> UploadSession::build_shards() {
  auto xorb_of = [&](const PlacedChunk& c) -> const Hash& {
    return c.slot < 0 ? c.known : xorbs_[static_cast<size_t>(c.slot)].info.xorb_hash;
  };
  std::vector<FileInfo> infos;
  std::vector<std::vector<int32_t>> introduced(files_.size());  // new xorbs each file references
  for (size_t fi = 0; fi < files_.size(); ++fi) {
    const PendingFile& pf = files_[fi];
    FileInfo info;
    info.file_hash = pf.file_hash;
    info.sha256 = pf.sha256;
    std::vector<Hash> term_hashes;
    for (size_t i = 0; i < pf.chunks.size(); ++i) {
      const PlacedChunk& c = pf.chunks[i];
      if (c.slot >= 0 && !xorbs_[static_cast<size_t>(c.slot)].sealed) {
        return Error(Errc::internal, "upload: a chunk references an unsealed xorb");
      }
      const Hash& xh = xorb_of(c);
      bool extend = !info.terms.empty() && info.terms.back().xorb_hash == xh && info.terms.back().chunk_end == c.index;
      if (extend) {
        FileTerm& t = info.terms.back();
        t.chunk_end++;
        t.unpacked_bytes += c.len;
      } else {
        if (!info.terms.empty()) {
          info.verification.push_back(range_hash(term_hashes));
          term_hashes.clear();
        }
        info.terms.push_back(FileTerm{xh, c.len, c.index, c.index + 1});
      }
      term_hashes.push_back(c.hash);
      if (c.slot >= 0) introduced[fi].push_back(c.slot);
    }
    if (!info.terms.empty()) info.verification.push_back(range_hash(term_hashes));
    infos.push_back(std::move(info));
  }

  // Group files into shards below the size limit; each xorb is declared once, in the first
  // shard that needs it (later shards may reference it: it is uploaded by then).
  auto file_bytes = [](const FileInfo& f) {
    return 48 + f.terms.size() * 96 + (f.sha256 ? 48 : 0);
  };
  std::vector<Shard> shards(1);
  std::vector<bool> declared(xorbs_.size(), false);
  size_t cur = 48 * 3;
  for (size_t fi = 0; fi < infos.size(); ++fi) {
    size_t need = file_bytes(infos[fi]);
    for (int32_t s : introduced[fi]) {
      if (!declared[static_cast<size_t>(s)]) need += 48 + 48 * xorbs_[static_cast<size_t>(s)].info.chunks.size();
    }
    if (cur + need > opts_.max_shard_bytes && !(shards.back().files.empty() && shards.back().xorbs.empty())) {
      shards.emplace_back();
      cur = 48 * 3;
    }
    for (int32_t s : introduced[fi]) {
      if (!declared[static_cast<size_t>(s)]) {
        declared[static_cast<size_t>(s)] = true;
        shards.back().xorbs.push_back(xorbs_[static_cast<size_t>(s)].info);
      }
    }
    shards.back().files.push_back(std::move(infos[fi]));
    cur += need;
  }
  return shards;
}

Task<Status> UploadSession::finish() {
  HF_CO_TRY(seal_open_xorb());
  Status st = co_await drain(0);
  if (!st.ok()) co_return st;
  if (files_.empty()) co_return Status{};
  auto shards = build_shards();
  if (!shards.ok()) co_return shards.error();
  for (const Shard& s : *shards) {
    auto bytes = serialize_upload_shard(s);
    if (!bytes.ok()) co_return bytes.error();
    auto body = std::make_shared<const std::string>(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    stats_.shards++;
    stats_.shard_bytes += body->size();
    Status ps = co_await sink_.put_shard(body);
    if (!ps.ok()) co_return ps;
  }
  files_.clear();
  co_return Status{};
}

}  // namespace hf::xet
