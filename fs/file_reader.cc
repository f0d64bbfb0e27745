#include "fs/file_reader.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <algorithm>

#include <openssl/evp.h>

#include "base/log.h"
#include "base/sleep.h"
#include "base/text.h"
#include "fs/meta_store.h"
#include "net/xet/hash.h"

namespace hf::fs {

namespace net = boost::asio;

namespace {

bool retryable(Errc c) {
  switch (c) {
    case Errc::network:
    case Errc::timed_out:
    case Errc::server_error:
    case Errc::rate_limited:
    case Errc::protocol:
    case Errc::corrupt:
    case Errc::forbidden:  // presigned URL expired: the retry re-queries reconstruction
    case Errc::not_found:  // a presigned URL that 404s: the retry gets fresh URLs
    case Errc::io:
    case Errc::again:
      return true;
    default:
      return false;
  }
}

// What a reader gets for a failed fetch: EACCES for access problems, EINTR for interruptions,
// EIO for everything else. A remote "not found", "out of range" or "too large" about content
// the listing promised is an I/O error for the application: read(2) never reports ENOENT,
// ERANGE or EFBIG because of a server.
Error reader_error(Error e) {
  switch (e.code) {
    case Errc::cancelled:
    case Errc::unauthorized:
    case Errc::forbidden:
    case Errc::gated:
    case Errc::permission_denied:
    case Errc::io:
    case Errc::network:
    case Errc::tls:
    case Errc::timed_out:
    case Errc::protocol:
    case Errc::corrupt:
    case Errc::server_error:
    case Errc::rate_limited:
    case Errc::offline:
      return e;
    default:
      return Error(Errc::io, e.describe());
  }
}

// Whole-content check of plain (non-Xet) files: `etag` is the LFS SHA-256 (64 hex) or the git
// blob id (40 hex, SHA-1 of "blob <size>\0" + content). Empty or other forms: no check.
class EtagCheck {
 public:
  EtagCheck(const std::string& etag, uint64_t size) : want_(to_lower(etag)) {
    const EVP_MD* md = nullptr;
    if (want_.size() == 64) md = EVP_sha256();
    if (want_.size() == 40) md = EVP_sha1();
    if (!md || !hex_decode(want_)) return;
    ctx_ = EVP_MD_CTX_new();
    if (!ctx_ || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) {
      EVP_MD_CTX_free(ctx_);
      ctx_ = nullptr;
      return;
    }
    if (want_.size() == 40) {
      std::string head = fmt::format("blob {}", size);
      head.push_back('\0');
      EVP_DigestUpdate(ctx_, head.data(), head.size());
    }
  }
  ~EtagCheck() { EVP_MD_CTX_free(ctx_); }
  EtagCheck(const EtagCheck&) = delete;
  EtagCheck& operator=(const EtagCheck&) = delete;
  bool active() const { return ctx_ != nullptr; }
  void update(std::span<const uint8_t> d) {
    if (ctx_) EVP_DigestUpdate(ctx_, d.data(), d.size());
  }
  bool matches() {
    if (!ctx_) return true;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    return hex_encode(md, n) == want_;
  }

 private:
  std::string want_;
  EVP_MD_CTX* ctx_ = nullptr;
};

// Completes `r` with false after `ms` (if nothing completed it first).
Task<void> set_after(SharedResultPtr<bool> r, int ms, CancelPtr cancel) {
  co_await sleep_for(std::chrono::milliseconds(ms), cancel);
  r->set(false);
}

}  // namespace

FileReader::FileReader(net::any_io_executor ex, Remote& remote, ChunkCache& cache, const ReaderConfig& cfg,
                       ReaderStats& stats, Content content, uint64_t size, std::string rev, std::string path,
                       MetaStore* meta)
    : ex_(std::move(ex)),
      remote_(remote),
      cache_(cache),
      cfg_(cfg),
      stats_(stats),
      content_(std::move(content)),
      size_(size),
      rev_(std::move(rev)),
      path_(std::move(path)),
      meta_(meta) {
  if (content_.source == Content::Source::http) {
    // Fixed-size blocks keyed by the content id: the layout is known up front.
    uint32_t slot = xorb_slot_locked(content_.id);
    uint64_t block = cfg_.http_block;
    for (uint64_t off = 0, i = 0; off < size_; off += block, ++i) {
      uint64_t len = std::min<uint64_t>(block, size_ - off);
      chunks_.emplace(off, ChunkLoc{static_cast<uint32_t>(len), slot, static_cast<uint32_t>(i)});
    }
  }
}

FileReader::~FileReader() { life_->cancel(); }

void FileReader::load_persisted() {
  if (!meta_ || content_.source != Content::Source::xet) return;
  std::call_once(persisted_once_, [this] {
    auto entries = meta_->get_chunks(content_.id);
    std::lock_guard lk(mu_);
    uint64_t prev_end = 0;
    for (auto& e : entries) {
      if (e.offset < prev_end || e.offset >= size_) continue;  // overlapping or bogus: ignore
      uint32_t slot = xorb_slot_locked(e.xorb);
      chunks_.emplace(e.offset, ChunkLoc{e.len, slot, e.index});
      prev_end = e.offset + e.len;
    }
  });
}

uint32_t FileReader::xorb_slot_locked(const Key32& key) {
  auto it = xorb_slots_.find(key);
  if (it != xorb_slots_.end()) return it->second;
  uint32_t slot = static_cast<uint32_t>(xorbs_.size());
  xorbs_.push_back(key);
  xorb_slots_.emplace(key, slot);
  return slot;
}

uint64_t FileReader::assemble(uint64_t off, uint64_t end, ReadData& out, bool memory_only,
                              const std::vector<std::shared_ptr<Segment>>* pinned) {
  load_persisted();
  struct Want {
    uint64_t file_off;
    ChunkLoc loc;
    Key32 xorb;
  };
  std::vector<Want> wants;
  {
    std::lock_guard lk(mu_);
    auto it = chunks_.upper_bound(off);
    if (it != chunks_.begin()) --it;
    uint64_t cursor = off;
    for (; it != chunks_.end() && cursor < end; ++it) {
      uint64_t cstart = it->first, cend = cstart + it->second.len;
      if (cend <= cursor) continue;
      if (cstart > cursor) break;  // hole in the known layout
      wants.push_back(Want{cstart, it->second, xorbs_[it->second.xorb]});
      cursor = cend;
    }
  }
  uint64_t cursor = off;
  // Consecutive chunks of one xorb are looked up together: a disk-cache re-read then costs one
  // read per run file instead of one per chunk.
  std::vector<ChunkBytes> batch;
  size_t batch_from = 0;
  for (size_t wi = 0; wi < wants.size(); ++wi) {
    const Want& w = wants[wi];
    ChunkBytes b;
    if (memory_only) {
      b = cache_.get_memory(w.xorb, w.loc.index);
    } else {
      if (wi >= batch_from + batch.size()) {
        size_t n = 1;
        while (wi + n < wants.size() && wants[wi + n].xorb == w.xorb &&
               wants[wi + n].loc.index == w.loc.index + n)
          ++n;
        if (n == 1) {
          batch.assign(1, cache_.get(w.xorb, w.loc.index));
        } else {
          cache_.get_range(w.xorb, w.loc.index, static_cast<uint32_t>(w.loc.index + n), batch);
        }
        batch_from = wi;
      }
      if (wi - batch_from < batch.size()) b = batch[wi - batch_from];
    }
    if (!b && pinned) {
      for (auto& seg : *pinned) {
        std::lock_guard lk(seg->mu);
        auto it = seg->delivered.find(w.file_off);
        if (it != seg->delivered.end()) {
          b = it->second;
          break;
        }
      }
    }
    if (!b || b->size() != w.loc.len) break;
    uint64_t from = cursor - w.file_off;
    uint64_t to = std::min<uint64_t>(w.loc.len, end - w.file_off);
    out.slices.push_back(ReadSlice{b, static_cast<uint32_t>(from), static_cast<uint32_t>(to - from)});
    out.bytes += to - from;
    cursor = w.file_off + to;
    if (cursor >= end) break;
  }
  return cursor;
}

bool FileReader::try_read_local(uint64_t off, uint64_t len, ReadData& out, StreamState* stream) {
  if (off >= size_) return true;  // EOF: empty read
  uint64_t end = std::min(size_, off + len);
  ReadData d;
  if (assemble(off, end, d, false) < end) return false;
  out = std::move(d);
  update_stream(stream, off, end);
  return true;
}

std::shared_ptr<FileReader::Segment> FileReader::start_segment_locked(uint64_t start, uint64_t end) {
  auto seg = std::make_shared<Segment>();
  seg->start = start;
  seg->end = end;
  inflight_.emplace(start, seg);
  stats_.segments.fetch_add(1, std::memory_order_relaxed);
  stats_.segments_in_flight.fetch_add(1, std::memory_order_relaxed);
  HF_LOG_TRACE("read", "segment {} [{}, {})", path_, start, end);
  net::co_spawn(ex_, run_segment(seg), net::detached);
  return seg;
}

std::shared_ptr<FileReader::Segment> FileReader::segment_for(uint64_t pos, uint64_t want_end) {
  std::lock_guard lk(mu_);
  // An in-flight segment already covering `pos`?
  auto it = inflight_.upper_bound(pos);
  if (it != inflight_.begin()) {
    auto prev = std::prev(it);
    if (prev->second->start <= pos && pos < prev->second->end) return prev->second;
  }
  // A small file is always fetched whole, wherever the first read lands: its content hash can
  // then be checked before anything is served (fetch_xet, fetch_http).
  if (size_ <= cfg_.first_segment && inflight_.empty()) return start_segment_locked(0, size_);
  uint64_t end = std::min(size_, std::max(want_end, pos + 1));
  if (it != inflight_.end() && it->second->start < end) end = it->second->start;  // don't overlap
  // Don't refetch what is already cached after the gap: stop at the first known, cached chunk.
  auto c = chunks_.upper_bound(pos);
  for (; c != chunks_.end() && c->first < end; ++c) {
    if (cache_.contains(xorbs_[c->second.xorb], c->second.index)) {
      end = std::max(c->first, pos + 1);
      break;
    }
  }
  return start_segment_locked(pos, end);
}

uint64_t FileReader::prefetch(uint64_t from, uint64_t to) {
  to = std::min(to, size_);
  std::lock_guard lk(mu_);
  uint64_t cursor = from;
  while (cursor < to && inflight_.size() < cfg_.max_segments_in_flight) {
    // Skip what is in flight.
    auto it = inflight_.upper_bound(cursor);
    if (it != inflight_.begin()) {
      auto prev = std::prev(it);
      if (prev->second->end > cursor) {
        cursor = prev->second->end;
        continue;
      }
    }
    // Skip what the layout already knows (assumed cached; a read that misses refetches).
    auto c = chunks_.upper_bound(cursor);
    if (c != chunks_.begin()) {
      auto pc = std::prev(c);
      if (pc->first + pc->second.len > cursor && content_.source == Content::Source::xet) {
        cursor = pc->first + pc->second.len;
        continue;
      }
    }
    uint64_t end = std::min(to, cursor + cfg_.segment);
    if (it != inflight_.end() && it->second->start < end) end = it->second->start;
    if (end <= cursor) break;
    if (content_.source == Content::Source::http) {
      // Only blocks that are not cached.
      bool cached = true;
      for (uint64_t o = cursor; o < end && cached; o += cfg_.http_block) {
        auto b = chunks_.find(o - o % cfg_.http_block);
        if (b == chunks_.end() || !cache_.contains(xorbs_[b->second.xorb], b->second.index)) cached = false;
      }
      if (cached) {
        cursor = end;
        continue;
      }
    }
    start_segment_locked(cursor, end);
    cursor = end;
  }
  return std::min(cursor, to);
}

void FileReader::update_stream(StreamState* s, uint64_t off, uint64_t end) {
  if (!s) return;
  uint64_t pf_from = 0, pf_to = 0;
  {
    std::lock_guard lk(s->mu);
    // Prefetch only once a stream has shown it is sequential: a run of at least one first
    // segment. Header reads (and the kernel's own small readahead around them) then cost one
    // fetch, and a streaming read gets a growing window after its first megabyte.
    bool sequential = s->started && off + cfg_.backward_tolerance >= s->next && off <= s->next + cfg_.forward_tolerance;
    s->seq_bytes = sequential ? s->seq_bytes + (end - std::min(end, off)) : end - off;
    if (sequential && s->seq_bytes >= cfg_.first_segment) {
      s->window = s->window ? std::min(s->window * 2, cfg_.max_window) : cfg_.initial_window;
      uint64_t target = std::min(size_, end + s->window);
      if (s->prefetched_to < end) s->prefetched_to = end;
      // Extend in whole segments, so a stream of small reads does not issue a small fetch each.
      if (target > s->prefetched_to && (target - s->prefetched_to >= cfg_.segment || target == size_)) {
        pf_from = s->prefetched_to;
        pf_to = std::min(size_, pf_from + (target - pf_from + cfg_.segment - 1) / cfg_.segment * cfg_.segment);
        s->prefetched_to = pf_to;
      }
    } else if (!sequential) {
      s->window = 0;
      s->prefetched_to = end;
    }
    s->started = true;
    s->next = std::max(end, off);
  }
  if (pf_to <= pf_from) return;
  // The file's in-flight cap (several streams share it) can stop the prefetch short: the
  // stream must not count the rest as prefetched, or its reads there become small demand
  // fetches that each wait a full round trip (8 readers under 20 ms latency ran at half the
  // speed of one). The next read extends from where this one stopped.
  const uint64_t reached = prefetch(pf_from, pf_to);
  if (reached < pf_to) {
    std::lock_guard lk(s->mu);
    if (s->prefetched_to == pf_to) s->prefetched_to = reached;
  }
}

Task<Result<ReadData>> FileReader::read(uint64_t off, uint64_t len, StreamState* stream, CancelPtr cancel) {
  auto self = shared_from_this();  // keep alive across suspension
  HF_LOG_TRACE("read", "read {} [{}, +{})", path_, off, len);
  ReadData out;
  if (off >= size_ || len == 0) co_return out;
  uint64_t end = std::min(size_, off + len);
  load_persisted();
  update_stream(stream, off, end);

  uint64_t last_missing = UINT64_MAX;
  int stalls = 0;
  std::vector<std::shared_ptr<Segment>> waited;  // their chunks stay reachable for this read
  for (;;) {
    ReadData part;
    uint64_t missing = assemble(off, end, part, false, &waited);
    if (missing >= end) co_return part;
    if (cancel && cancel->cancelled()) co_return Error(Errc::cancelled, "read interrupted");
    if (missing == last_missing && ++stalls > 2) {
      co_return Error(Errc::io, "fetched data did not cover the requested range");
    }
    last_missing = missing;
    // A sequential stream that misses (its prefetch was held back by the file's in-flight cap,
    // or is behind) fetches a whole segment: 1 MiB demand fetches each cost a full round trip.
    bool sequential = false;
    if (stream) {
      std::lock_guard lk(stream->mu);
      sequential = stream->window > 0;
    }
    uint64_t want = std::max(end, std::min(size_, missing + (sequential ? cfg_.segment : cfg_.first_segment)));
    auto seg = segment_for(missing, want);
    waited.push_back(seg);
    // Wait for the segment, or for cancellation of this read (the segment keeps going for
    // other readers).
    auto waiter = SharedResult<Status>::create();
    seg->done->on_ready([waiter](const Status& s) { waiter->set(s); });
    uint64_t cb = 0;
    if (cancel) cb = cancel->on_cancel([waiter] { waiter->set(Error(Errc::cancelled, "read interrupted")); });
    Status st = co_await waiter->wait();
    if (cancel) cancel->remove(cb);
    if (!st.ok()) co_return st.error();
  }
}

Task<void> FileReader::wait_for_disk_room() {
  auto room = SharedResult<bool>::create();
  cache_.when_disk_room([room] { room->set(true); });
  if (room->ready()) co_return;
  // Bounded: the cache holds the queue back only while its disk makes progress, and a reader
  // never waits longer than this for a cache fill.
  net::co_spawn(ex_, set_after(room, 1000, life_), net::detached);
  co_await room->wait();
}

Task<void> FileReader::run_segment(std::shared_ptr<Segment> seg) {
  auto self = shared_from_this();
  Status st;
  // Downloads go no faster than the disk cache can keep them: what is fetched now is on disk
  // for the next mount instead of dropped from a full write queue.
  co_await wait_for_disk_room();
  for (int attempt = 1;; ++attempt) {
    // (g++ 12 miscompiles co_await inside a conditional expression: keep these statements.)
    // An exception must not escape: this coroutine is detached, and waiting readers would hang.
    try {
      if (content_.source == Content::Source::xet) {
        st = co_await fetch_xet(seg);
      } else {
        st = co_await fetch_http(seg);
      }
    } catch (const std::exception& e) {
      st = Error(Errc::internal, fmt::format("fetch failed: {}", e.what()));
    }
    if (st.ok() || life_->cancelled() || attempt >= cfg_.max_attempts || !retryable(st.code())) break;
    stats_.segment_retries.fetch_add(1, std::memory_order_relaxed);
    HF_LOG_INFO("read", "retrying {} bytes {}-{} after: {}", path_.empty() ? "file" : path_, seg->start, seg->end,
                st.error().describe());
    if (st.code() != Errc::forbidden) co_await sleep_for(std::chrono::milliseconds(cfg_.retry_base_ms << (2 * (attempt - 1))), life_);
  }
  if (!st.ok()) {
    stats_.segment_failures.fetch_add(1, std::memory_order_relaxed);
    HF_LOG_WARN("read", "fetch of {} bytes {}-{} failed: {}", path_.empty() ? "file" : path_, seg->start, seg->end,
                st.error().describe());
    st = reader_error(std::move(st).error());
  }
  {
    std::lock_guard lk(mu_);
    auto it = inflight_.find(seg->start);
    if (it != inflight_.end() && it->second == seg) inflight_.erase(it);
  }
  stats_.segments_in_flight.fetch_sub(1, std::memory_order_relaxed);
  seg->done->set(st);
}

void FileReader::learn_chunks(const Key32& xorb, uint32_t first_index, uint64_t file_offset,
                              const std::vector<ChunkBytes>& chunks, Segment* seg) {
  if (seg) {
    std::lock_guard lk(seg->mu);
    uint64_t off = file_offset;
    for (auto& c : chunks) {
      seg->delivered.emplace(off, c);
      off += c->size();
    }
  }
  std::vector<ChunkMapEntry> fresh;
  {
    std::lock_guard lk(mu_);
    uint32_t slot = xorb_slot_locked(xorb);
    uint64_t off = file_offset;
    for (size_t i = 0; i < chunks.size(); ++i) {
      uint32_t len = static_cast<uint32_t>(chunks[i]->size());
      uint32_t index = first_index + static_cast<uint32_t>(i);
      if (off < size_ && len > 0) {
        auto [it, inserted] = chunks_.emplace(off, ChunkLoc{len, slot, index});
        if (inserted) {
          fresh.push_back(ChunkMapEntry{off, xorb, index, len});
        } else if (it->second.len != len) {
          HF_LOG_WARN("read", "inconsistent chunk layout at offset {} of {}: {} vs {} bytes", off, path_,
                      it->second.len, len);
        }
      }
      off += len;
    }
  }
  if (meta_ && !fresh.empty()) {
    Status st = meta_->put_chunks(content_.id, fresh);
    if (!st.ok()) HF_LOG_DEBUG("read", "cannot persist chunk layout: {}", st.error().describe());
  }
}

Task<Status> FileReader::fetch_xet(std::shared_ptr<Segment> seg) {
  uint64_t start = seg->start, end = seg->end;
  xet::Hash file;
  file.bytes = content_.id;
  stats_.reconstructions.fetch_add(1, std::memory_order_relaxed);
  auto rec = co_await remote_.reconstruct(file, start, end - 1, life_);
  if (!rec.ok()) {
    if (rec.code() == Errc::out_of_range) {
      co_return Error(Errc::corrupt, fmt::format("server says offset {} is past the end, listing says {} bytes", start,
                                                 size_));
    }
    co_return std::move(rec).error();
  }
  const xet::Reconstruction& r = *rec;
  if (r.terms.empty()) co_return Error(Errc::corrupt, "empty reconstruction for a non-empty range");
  if (r.offset_into_first_range > start) co_return Error(Errc::protocol, "offset_into_first_range beyond range start");

  // Which fetch entry serves each term (§7.2: every term's chunk range is inside one entry).
  struct FetchJob {
    xet::Hash xorb;
    const xet::XorbFetch* fetch;
    const xet::FetchRange* range;
    std::vector<ChunkBytes> chunks;  // decoded, indexed from range->chunks.start
    Status status;
    bool from_cache = false;
    std::optional<uint64_t> object_size;  // of the stored xorb, when the server said
    std::vector<xet::HashSize> leaves;    // chunk hashes, once computed (whole-xorb check)
  };
  std::vector<FetchJob> jobs;
  std::vector<size_t> term_job(r.terms.size());
  for (size_t t = 0; t < r.terms.size(); ++t) {
    const xet::Term& term = r.terms[t];
    auto loc = r.find(term);
    const xet::XorbFetch* found_f = loc.fetch;
    const xet::FetchRange* found_r = loc.range;
    if (!found_r) co_return Error(Errc::protocol, "no xorb fetch entry covers a reconstruction term");
    size_t j = 0;
    for (; j < jobs.size(); ++j) {
      if (jobs[j].range == found_r) break;
    }
    if (j == jobs.size()) jobs.push_back(FetchJob{term.xorb, found_f, found_r, {}, {}, false, {}, {}});
    term_job[t] = j;
  }

  // Ranges whose chunks are all cached already (content shared with another file, a rewritten
  // file's unchanged part, an earlier mount) are not downloaded again.
  std::vector<FetchJob*> to_fetch;
  for (auto& job : jobs) {
    uint32_t base = job.range->chunks.start;
    std::vector<ChunkBytes> cached;
    cached.reserve(job.range->chunks.end - base);
    for (uint32_t i = base; i < job.range->chunks.end; ++i) {
      ChunkBytes b = cache_.get(job.xorb.bytes, i);
      if (!b) break;
      cached.push_back(std::move(b));
    }
    if (cached.size() == job.range->chunks.end - base) {
      job.chunks = std::move(cached);
      job.from_cache = true;
      stats_.ranges_from_cache.fetch_add(1, std::memory_order_relaxed);
    } else {
      to_fetch.push_back(&job);
    }
  }
  // Download the other xorb ranges in parallel.
  auto all_done = SharedResult<Status>::create();
  if (to_fetch.empty()) all_done->set(Status{});
  auto remaining = std::make_shared<std::atomic<size_t>>(to_fetch.size());
  for (FetchJob* jp : to_fetch) {
    net::co_spawn(
        ex_,
        [this, jp, all_done, remaining]() -> Task<void> {
          uint32_t base = jp->range->chunks.start;
          size_t n = jp->range->chunks.end - base;
          try {
            jp->chunks.assign(n, nullptr);
            ChunkSink sink = [jp, base, n](uint32_t idx, std::span<const uint8_t> raw) -> Status {
              if (idx < base || idx - base >= n) return Error(Errc::protocol, "chunk index outside the fetched range");
              jp->chunks[idx - base] = std::make_shared<const std::vector<uint8_t>>(raw.begin(), raw.end());
              return {};
            };
            auto got = co_await remote_.fetch_chunks(jp->fetch->url, *jp->range, std::move(sink), life_);
            if (got.ok()) {
              jp->object_size = got->object_size;
            } else {
              jp->status = std::move(got).error();
            }
          } catch (const std::exception& e) {  // detached: an escaping exception would hang the segment
            jp->status = Error(Errc::internal, fmt::format("xorb range fetch failed: {}", e.what()));
          }
          if (jp->status.ok()) {
            for (auto& c : jp->chunks) {
              if (!c) {
                jp->status = Error(Errc::protocol, "xorb range ended before all chunks were received");
                break;
              }
              stats_.bytes_fetched.fetch_add(c->size(), std::memory_order_relaxed);
            }
          }
          if (remaining->fetch_sub(1) == 1) all_done->set(Status{});
        },
        net::detached);
  }
  co_await all_done->wait();
  for (auto& job : jobs) {
    if (!job.status.ok()) co_return job.status;
  }
  // The protocol carries no per-chunk hashes, but a range that holds a whole xorb can be
  // checked against the xorb's name (§3.4). A mismatch is refetched (the retry of this
  // segment); the same wrong bytes twice mean the object is not laid out as covers_whole_xorb
  // assumes (a legacy footer) or is stored that way: no refetch can do better, so it is served.
  // Every job is checked before failing, so one retry settles all of them.
  Status xorb_check;
  for (auto& job : jobs) {
    if (job.from_cache || !job.object_size || !xet::covers_whole_xorb(*job.range, *job.object_size)) continue;
    job.leaves.reserve(job.chunks.size());
    for (auto& c : job.chunks) job.leaves.push_back(xet::HashSize{xet::chunk_hash(*c), c->size()});
    const xet::Hash got = xet::xorb_hash(job.leaves);
    if (got == job.xorb) {
      stats_.xorbs_verified.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    stats_.verify_failures.fetch_add(1, std::memory_order_relaxed);
    bool repeated;
    {
      std::lock_guard lk(mu_);
      auto [it, fresh] = xorb_mismatches_.try_emplace(job.xorb.bytes, got.bytes);
      repeated = !fresh && it->second == got.bytes;
      it->second = got.bytes;
    }
    if (!repeated) {
      if (xorb_check.ok()) {
        xorb_check = Error(Errc::corrupt, fmt::format("xorb {} downloaded with content that does not match its hash",
                                                      job.xorb.hex().substr(0, 16)));
      }
      continue;
    }
    HF_LOG_WARN("read", "xorb {} came twice with the same bytes that do not hash to its name: serving them",
                job.xorb.hex().substr(0, 16));
  }
  if (!xorb_check.ok()) co_return xorb_check;

  // Walk the terms in file order: check their lengths, then learn the layout and publish.
  std::vector<std::vector<ChunkBytes>> runs(r.terms.size());
  uint64_t cursor = start - r.offset_into_first_range;
  for (size_t t = 0; t < r.terms.size(); ++t) {
    const xet::Term& term = r.terms[t];
    FetchJob& job = jobs[term_job[t]];
    uint32_t base = job.range->chunks.start;
    runs[t].assign(job.chunks.begin() + (term.range.start - base), job.chunks.begin() + (term.range.end - base));
    uint64_t term_bytes = 0;
    for (auto& c : runs[t]) term_bytes += c->size();
    if (term_bytes != term.unpacked_length) {
      co_return Error(Errc::corrupt, fmt::format("term decodes to {} bytes, reconstruction says {}", term_bytes,
                                                 term.unpacked_length));
    }
    cursor += term_bytes;
  }
  if (cursor < std::min(end, size_)) {
    co_return Error(Errc::corrupt, fmt::format("reconstruction covers up to {}, needed {}", cursor, std::min(end, size_)));
  }
  // The protocol carries no per-chunk hashes: a flipped byte in an uncompressed chunk (or in an
  // LZ4 literal) decodes fine. When this fetch holds the whole file, its Xet file hash (§3.5)
  // checks every byte before anything is published: small files (one segment) are never
  // served wrong.
  bool downloaded = std::any_of(jobs.begin(), jobs.end(), [](const FetchJob& j) { return !j.from_cache; });
  if (start == 0 && r.offset_into_first_range == 0 && end >= size_ && downloaded) {
    std::vector<xet::HashSize> leaves;
    for (size_t t = 0; t < r.terms.size(); ++t) {
      const FetchJob& job = jobs[term_job[t]];
      const uint32_t base = job.range->chunks.start;
      for (uint32_t k = r.terms[t].range.start; k < r.terms[t].range.end; ++k) {
        const ChunkBytes& c = job.chunks[k - base];
        leaves.push_back(job.leaves.empty() ? xet::HashSize{xet::chunk_hash(*c), c->size()} : job.leaves[k - base]);
      }
    }
    if (xet::file_hash(leaves).bytes != content_.id) {
      stats_.verify_failures.fetch_add(1, std::memory_order_relaxed);
      co_return Error(Errc::corrupt, "downloaded content does not match its Xet file hash");
    }
  }
  cursor = start - r.offset_into_first_range;
  for (size_t t = 0; t < r.terms.size(); ++t) {
    const xet::Term& term = r.terms[t];
    FetchJob& job = jobs[term_job[t]];
    uint64_t term_bytes = term.unpacked_length;
    learn_chunks(job.xorb.bytes, term.range.start, cursor, runs[t], seg.get());
    if (!job.from_cache) cache_.insert_run(job.xorb.bytes, term.range.start, std::move(runs[t]));
    cursor += term_bytes;
  }
  co_return Status{};
}

Task<Status> FileReader::fetch_http(std::shared_ptr<Segment> seg) {
  uint64_t start = seg->start, end = seg->end;
  uint64_t block = cfg_.http_block;
  uint64_t s = start - start % block;
  uint64_t e = std::min(size_, ((end + block - 1) / block) * block);
  auto buf = std::make_shared<std::vector<uint8_t>>();
  buf->reserve(std::min<uint64_t>(block, e - s));
  uint64_t block_index = s / block;
  uint64_t received = 0;
  Key32 key = content_.id;
  // A fetch of the whole file is checked against the git blob id / LFS SHA-256 before any of
  // it is published (see fetch_xet for why partial fetches cannot be).
  EtagCheck check(s == 0 && e == size_ ? content_.etag : std::string(), size_);
  std::vector<std::pair<uint64_t, ChunkBytes>> held;  // blocks waiting for the check
  auto publish = [&](uint64_t index, ChunkBytes b) {
    {
      std::lock_guard lk(seg->mu);
      seg->delivered.emplace(index * block, b);
    }
    std::vector<ChunkBytes> one{std::move(b)};
    cache_.insert_run(key, static_cast<uint32_t>(index), std::move(one));
  };
  ByteSink sink = [&](std::span<const uint8_t> data) -> Status {
    check.update(data.subspan(0, std::min<uint64_t>(data.size(), e - s - received)));
    while (!data.empty()) {
      uint64_t block_len = std::min<uint64_t>(block, size_ - block_index * block);
      size_t take = std::min<size_t>(data.size(), block_len - buf->size());
      buf->insert(buf->end(), data.begin(), data.begin() + take);
      data = data.subspan(take);
      received += take;
      if (buf->size() == block_len) {
        if (check.active()) {
          held.emplace_back(block_index, std::move(buf));
        } else {
          publish(block_index, std::move(buf));
        }
        buf = std::make_shared<std::vector<uint8_t>>();
        ++block_index;
        if (block_index * block >= e) {
          if (!data.empty()) return Error(Errc::protocol, "server sent more bytes than requested");
          break;
        }
      }
    }
    return {};
  };
  Status st = co_await remote_.download(rev_, path_, s, e - s, sink, life_);
  stats_.bytes_fetched.fetch_add(received, std::memory_order_relaxed);
  if (!st.ok()) co_return st;
  if (received != e - s) {
    co_return Error(Errc::corrupt, fmt::format("download returned {} bytes, expected {}", received, e - s));
  }
  if (check.active()) {
    if (!check.matches()) {
      stats_.verify_failures.fetch_add(1, std::memory_order_relaxed);
      co_return Error(Errc::corrupt, fmt::format("downloaded content does not match its id {}", content_.etag));
    }
    for (auto& [index, b] : held) publish(index, std::move(b));
  }
  co_return Status{};
}

std::optional<FileReader::KnownChunk> FileReader::chunk_at(uint64_t offset) {
  load_persisted();
  std::lock_guard lk(mu_);
  auto it = chunks_.find(offset);
  if (it == chunks_.end() || content_.source != Content::Source::xet) return std::nullopt;
  return KnownChunk{xorbs_[it->second.xorb], it->second.index, it->second.len};
}

uint64_t FileReader::cached_bytes() {
  load_persisted();
  std::vector<std::pair<ChunkLoc, Key32>> all;
  {
    std::lock_guard lk(mu_);
    all.reserve(chunks_.size());
    for (auto& [off, loc] : chunks_) all.emplace_back(loc, xorbs_[loc.xorb]);
  }
  uint64_t total = 0;
  for (auto& [loc, key] : all) {
    if (cache_.contains(key, loc.index)) total += loc.len;
  }
  return total;
}

Task<Status> FileReader::warm(std::function<void(uint64_t)> on_bytes, CancelPtr cancel) {
  auto self = shared_from_this();
  StreamState stream;
  uint64_t step = cfg_.segment;
  for (uint64_t off = 0; off < size_; off += step) {
    if (cancel && cancel->cancelled()) co_return Error(Errc::cancelled, "warm cancelled");
    auto r = co_await read(off, step, &stream, cancel);
    if (!r.ok()) co_return std::move(r).error();
    if (on_bytes) on_bytes(r->bytes);
  }
  co_return Status{};
}

}  // namespace hf::fs
