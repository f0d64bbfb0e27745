// An in-memory fs::Remote for unit tests of the filesystem core, with fault injection.
//
// Xet files are chunked with the real chunker and spread over fake xorbs of a few chunks each,
// so reads cross term and xorb boundaries. reconstruct() trims terms like XC's emulator (§6 of
// the Xet spec); fetch_chunks() serves decoded chunks for the chunk range it is asked for.
#pragma once

#include <utility>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <atomic>
#include <functional>
#include <algorithm>
#include <map>
#include <mutex>

#include <openssl/evp.h>

#include "base/sha256.h"
#include "base/text.h"
#include "fs/remote.h"
#include "net/xet/chunker.h"
#include "net/xet/hash.h"
#include "net/xet/shard.h"
#include "net/xet/xorb.h"

namespace hf::fs::testing {

class FakeRemote : public Remote, public xet::UploadSink {
 public:
  struct Chunk {
    uint64_t offset;
    uint32_t len;
    xet::Hash xorb;
    uint32_t index;
  };
  struct XetFile {
    std::vector<uint8_t> data;
    std::vector<Chunk> chunks;
  };

  // Knobs (atomic so tests may flip them while reads run on io threads).
  std::atomic<int> fail_reconstruct{0};  // next N reconstruct() calls fail (server_error)
  std::atomic<int> fail_fetch{0};        // next N fetch_chunks() calls fail (network)
  std::atomic<int> expire_fetch{0};      // next N fetch_chunks() calls answer 403 (forbidden)
  std::atomic<int> truncate_fetch{0};    // next N fetch_chunks() calls stop after one chunk
  std::atomic<int> corrupt_fetch{0};     // next N fetch_chunks() calls flip a byte of their first chunk
  std::atomic<int> corrupt_download{0};  // next N download() calls flip a byte in the middle
  std::atomic<int> missing_fetch{0};     // next N fetch_chunks() calls answer 404 (not_found)
  std::atomic<bool> report_object_size{true};  // fetch_chunks() states the stored xorb size
  std::atomic<int> corrupt_whole_fetch{0};     // next N fetches of a whole xorb flip a byte of its first chunk
  std::atomic<bool> claim_ranges_whole{false};  // the stated size makes every [0, n) range look whole
  std::atomic<int> delay_ms{0};          // added before every answer
  std::atomic<int> fail_list{0};
  Errc fail_list_code = Errc::server_error;  // what an injected listing failure reports
  std::atomic<int> fail_commit{0};       // next N commit() calls fail (server_error)
  // commit() lines for this path fail (forbidden); the other lines apply. "" = none.
  void refuse(std::string path) {
    std::lock_guard lk(mu_);
    refuse_path_ = std::move(path);
  }
  std::atomic<int> fail_put_xorb{0};
  std::atomic<uint64_t> commit_calls{0}, uploaded_xorb_bytes{0}, shard_calls{0}, xorb_calls{0};
  // Run once at the start of the next commit() (before its batch applies): lets a test act
  // while a commit is in flight. Set it before the commit starts.
  std::function<void(const std::vector<CommitOp>&)> before_commit;
  // Run once at the start of the next put_shard() (an upload's last step before its batch).
  std::function<void()> before_shard;
  bool writable = false;
  // Counters.
  std::atomic<uint64_t> reconstruct_calls{0}, fetch_calls{0}, fetched_bytes{0}, list_calls{0}, download_calls{0};

  std::string revision() const override {
    std::lock_guard lk(mu_);
    return rev_;
  }
  void set_revision(std::string r) override {
    std::lock_guard lk(mu_);
    rev_ = std::move(r);
  }
  // What probe_revision() reports (the "branch head").
  void set_head(std::string h) {
    std::lock_guard lk(mu_);
    head_ = std::move(h);
  }
  Task<Result<std::string>> probe_revision(CancelPtr) override {
    std::lock_guard lk(mu_);
    co_return head_.empty() ? rev_ : head_;
  }
  void remove_file(const std::string& path) {
    std::lock_guard lk(mu_);
    auto& es = dirs_[dirname(path)];
    es.erase(std::remove_if(es.begin(), es.end(), [&](auto& e) { return e.name == basename(path); }), es.end());
  }

  void add_dir(const std::string& path) {
    std::lock_guard lk(mu_);
    dirs_[path];
    link_parents(path, true);
  }

  xet::Hash add_xet_file(const std::string& path, std::vector<uint8_t> data, size_t chunks_per_xorb = 4) {
    XetFile f;
    std::vector<uint64_t> ends;
    xet::Chunker ch;
    ch.feed(data, ends);
    ch.finish(ends);
    std::vector<xet::HashSize> leaves;
    uint64_t start = 0;
    size_t i = 0;
    std::vector<xet::HashSize> xorb_leaves;
    std::vector<size_t> pending;
    auto close_xorb = [&] {
      xet::Hash xh = xet::xorb_hash(xorb_leaves);
      for (size_t k = 0; k < pending.size(); ++k) {
        f.chunks[pending[k]].xorb = xh;
        f.chunks[pending[k]].index = static_cast<uint32_t>(k);
      }
      xorb_leaves.clear();
      pending.clear();
    };
    for (uint64_t e : ends) {
      std::span<const uint8_t> c(data.data() + start, e - start);
      xet::HashSize hs{xet::chunk_hash(c), e - start};
      leaves.push_back(hs);
      xorb_leaves.push_back(hs);
      f.chunks.push_back(Chunk{start, static_cast<uint32_t>(e - start), {}, 0});
      pending.push_back(i++);
      if (pending.size() == chunks_per_xorb) close_xorb();
      start = e;
    }
    if (!pending.empty()) close_xorb();
    xet::Hash fh = xet::file_hash(leaves);
    f.data = std::move(data);
    uint64_t size = f.data.size();
    std::lock_guard lk(mu_);
    // A xorb's content is defined by its hash: identical chunk groups share one xorb.
    std::map<std::string, std::vector<std::vector<uint8_t>>> fresh;
    for (auto& c : f.chunks) {
      std::string hx = c.xorb.hex();
      if (xorbs_.count(hx)) continue;
      auto& v = fresh[hx];
      if (v.size() == c.index) v.emplace_back(f.data.begin() + c.offset, f.data.begin() + c.offset + c.len);
    }
    for (auto& [hx, v] : fresh) xorbs_.emplace(hx, std::move(v));
    files_[fh.hex()] = std::move(f);
    RemoteEntry e;
    e.name = basename(path);
    e.size = size;
    e.xet_hash = fh.hex();
    e.oid = "0000000000000000000000000000000000000001";
    dirs_[dirname(path)].push_back(e);
    link_parents(dirname(path), true);
    return fh;
  }

  // Git's blob id: SHA-1 of "blob <size>\0" + content.
  static std::string git_blob_id(const std::vector<uint8_t>& data) {
    std::string head = "blob " + std::to_string(data.size());
    head.push_back('\0');
    std::string all = head + std::string(data.begin(), data.end());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(all.data(), all.size(), md, &n, EVP_sha1(), nullptr);
    return hex_encode(md, n);
  }

  void add_http_file(const std::string& path, std::vector<uint8_t> data) {
    std::lock_guard lk(mu_);
    RemoteEntry e;
    e.name = basename(path);
    e.size = data.size();
    e.oid = git_blob_id(data);  // the real id: readers check whole-file downloads against it
    dirs_[dirname(path)].push_back(e);
    link_parents(dirname(path), true);
    http_[path] = std::move(data);
  }

  // Replaces the listing of a directory with raw entries (hostile-server tests).
  void set_dir_entries(const std::string& dir, std::vector<RemoteEntry> es) {
    std::lock_guard lk(mu_);
    dirs_[dir] = std::move(es);
  }

  Task<Result<std::vector<RemoteEntry>>> list_dir(std::string, std::string dir, CancelPtr) override {
    list_calls++;
    co_await delay();
    if (take(fail_list)) co_return Error(fail_list_code, "injected listing failure");
    std::lock_guard lk(mu_);
    auto it = dirs_.find(dir);
    if (it == dirs_.end()) co_return Error(Errc::entry_not_found, "no such directory");
    co_return it->second;
  }

  Task<Result<xet::Reconstruction>> reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl, CancelPtr) override {
    reconstruct_calls++;
    co_await delay();
    if (take(fail_reconstruct)) co_return Error(Errc::server_error, "injected reconstruction failure");
    std::lock_guard lk(mu_);
    auto it = files_.find(file.hex());
    if (it == files_.end()) co_return Error(Errc::entry_not_found, "unknown file");
    const XetFile& f = it->second;
    uint64_t size = f.data.size();
    if (start >= size) co_return Error(Errc::out_of_range, "416");
    uint64_t end = std::min(size, end_incl + 1);
    xet::Reconstruction r;
    bool first = true;
    for (const Chunk& c : f.chunks) {
      if (c.offset + c.len <= start || c.offset >= end) continue;
      if (first) {
        r.offset_into_first_range = start - c.offset;
        first = false;
      }
      if (!r.terms.empty() && r.terms.back().xorb == c.xorb && r.terms.back().range.end == c.index) {
        r.terms.back().range.end++;
        r.terms.back().unpacked_length += c.len;
      } else {
        r.terms.push_back(xet::Term{c.xorb, c.len, {c.index, c.index + 1}});
      }
    }
    for (auto& t : r.terms) {
      xet::XorbFetch xf;
      xf.url = "fake://" + t.xorb.hex();
      xf.ranges.push_back(xet::FetchRange{t.range, {t.range.start * 1000ull, t.range.end * 1000ull - 1}});
      bool merged = false;
      for (auto& [h, v] : r.fetches) {
        if (h == t.xorb) {
          v.push_back(xf);
          merged = true;
        }
      }
      if (!merged) r.fetches.push_back({t.xorb, {xf}});
    }
    r.sort_fetches();
    co_return r;
  }

  Task<Result<xet::RangeFetchReport>> fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink,
                                                   CancelPtr cancel) override {
    fetch_calls++;
    co_await delay();
    if (cancel && cancel->cancelled()) co_return Error(Errc::cancelled, "cancelled");
    if (take(fail_fetch)) co_return Error(Errc::network, "injected connection reset");
    if (take(expire_fetch)) co_return Error(Errc::forbidden, "presigned URL expired");
    if (take(missing_fetch)) co_return Error(Errc::not_found, "presigned URL: 404");
    bool truncate = take(truncate_fetch);
    bool corrupt = take(corrupt_fetch);
    std::vector<std::vector<uint8_t>> chunks;
    xet::RangeFetchReport report;
    {
      std::lock_guard lk(mu_);
      auto it = xorbs_.find(url.substr(7));
      if (it == xorbs_.end()) co_return Error(Errc::entry_not_found, "unknown xorb");
      if (range.chunks.end > it->second.size()) co_return Error(Errc::protocol, "range beyond xorb");
      for (uint32_t i = range.chunks.start; i < range.chunks.end; ++i) chunks.push_back(it->second[i]);
      // Like the CAS's Content-Range total: chunk records (1000 fake bytes each) + V1 footer.
      const uint64_t n = it->second.size();
      if (report_object_size) report.object_size = n * 1000 + 92 + 40 * n + 4;
      if (claim_ranges_whole) report.object_size = range.bytes.end + 1 + 92 + 40 * uint64_t{range.chunks.end} + 4;
      if (range.chunks.start == 0 && range.chunks.end == n && take(corrupt_whole_fetch)) corrupt = true;
    }
    if (corrupt && !chunks.empty() && !chunks[0].empty()) chunks[0][chunks[0].size() / 2] ^= 0x5a;
    uint32_t idx = range.chunks.start;
    for (auto& c : chunks) {
      fetched_bytes += c.size();
      HF_CO_TRY(sink(idx++, c));
      if (truncate) co_return Error(Errc::protocol, "body ended inside a chunk record");
    }
    co_return report;
  }

  // ---- write side
  xet::UploadSink* upload_sink() override { return writable ? this : nullptr; }

  Task<Status> put_xorb(xet::Hash hash, std::shared_ptr<const std::string> bytes) override {
    if (take(fail_put_xorb)) co_return Error(Errc::server_error, "injected 503 on xorb upload");
    ++xorb_calls;
    std::vector<uint8_t> raw;
    xet::ParseXorbOptions o;
    o.raw_out = &raw;
    auto p = xet::parse_xorb(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), o);
    if (!p.ok()) co_return p.error();
    if (!(p->hash == hash)) co_return Error(Errc::invalid_argument, "xorb hash mismatch");
    uploaded_xorb_bytes += bytes->size();
    std::vector<std::vector<uint8_t>> chunks;
    for (auto& c : p->chunks) chunks.emplace_back(raw.begin() + c.raw_offset, raw.begin() + c.raw_offset + c.raw_len);
    std::lock_guard lk(mu_);
    xorbs_.emplace(hash.hex(), std::move(chunks));
    co_return Status{};
  }

  Task<Status> put_shard(std::shared_ptr<const std::string> bytes) override {
    if (auto hook = std::exchange(before_shard, nullptr)) hook();
    ++shard_calls;
    auto s = xet::parse_shard(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
    if (!s.ok()) co_return s.error();
    std::lock_guard lk(mu_);
    for (auto& f : s->files) {
      XetFile xf;
      std::vector<xet::HashSize> leaves;
      uint64_t off = 0;
      for (auto& t : f.terms) {
        auto it = xorbs_.find(t.xorb_hash.hex());
        if (it == xorbs_.end() || t.chunk_end > it->second.size()) co_return Error(Errc::invalid_argument, "unknown xorb");
        for (uint32_t i = t.chunk_start; i < t.chunk_end; ++i) {
          auto& c = it->second[i];
          leaves.push_back({xet::chunk_hash(c), c.size()});
          xf.chunks.push_back(Chunk{off, static_cast<uint32_t>(c.size()), t.xorb_hash, i});
          xf.data.insert(xf.data.end(), c.begin(), c.end());
          off += c.size();
        }
      }
      if (!(xet::file_hash(leaves) == f.file_hash)) co_return Error(Errc::invalid_argument, "file hash mismatch");
      files_[f.file_hash.hex()] = std::move(xf);
    }
    co_return Status{};
  }

  Task<Status> commit(std::vector<CommitOp> ops, CancelPtr) override {
    commit_calls++;
    co_await delay();
    if (auto hook = std::exchange(before_commit, nullptr)) hook(ops);
    if (take(fail_commit)) co_return Error(Errc::server_error, "injected batch failure");
    std::lock_guard lk(mu_);
    // Like a bucket's updatedAt: every change gives the bucket a new revision marker.
    rev_ = head_ = "bucket-state-" + std::to_string(++commit_seq_);
    std::optional<Error> refused;
    for (auto& op : ops) {
      if (!refuse_path_.empty() && op.path == refuse_path_) {  // a per-line failure: the other lines still apply
        refused = Error(Errc::forbidden, "batch: " + op.path + ": refused");
        continue;
      }
      std::string dir = dirname(op.path), name = basename(op.path);
      auto& entries = dirs_[dir];
      entries.erase(std::remove_if(entries.begin(), entries.end(), [&](auto& e) { return e.name == name && !e.is_dir; }),
                    entries.end());
      if (op.kind == CommitOp::Kind::add) {
        auto f = files_.find(op.hash.hex());
        if (f == files_.end() && !op.hash.is_zero()) co_return Error(Errc::io, "batch: " + op.path + ": Xet file not found");
        RemoteEntry e;
        e.name = name;
        e.size = f == files_.end() ? 0 : f->second.data.size();
        e.xet_hash = op.hash.hex();
        e.mtime_ns = op.mtime_ms * 1000000;
        entries.push_back(e);
        link_parents(dir, true);
      }
    }
    if (refused) co_return *refused;
    co_return Status{};
  }

  // The committed xet hash (hex) of a path, nullopt if absent.
  std::optional<std::string> committed_hash(const std::string& path) {
    std::lock_guard lk(mu_);
    auto d = dirs_.find(dirname(path));
    if (d == dirs_.end()) return std::nullopt;
    for (auto& e : d->second) {
      if (e.name == basename(path) && !e.is_dir) return e.xet_hash;
    }
    return std::nullopt;
  }

  // Committed bytes of a path (nullopt if absent), for assertions.
  std::optional<std::vector<uint8_t>> committed(const std::string& path) {
    std::lock_guard lk(mu_);
    auto d = dirs_.find(dirname(path));
    if (d == dirs_.end()) return std::nullopt;
    for (auto& e : d->second) {
      if (e.name == basename(path) && !e.is_dir) {
        if (e.xet_hash == xet::Hash::zero().hex()) return std::vector<uint8_t>{};
        auto f = files_.find(e.xet_hash);
        if (f == files_.end()) return std::nullopt;
        return f->second.data;
      }
    }
    return std::nullopt;
  }

  Task<Status> download(std::string, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                        CancelPtr) override {
    download_calls++;
    co_await delay();
    if (take(fail_fetch)) co_return Error(Errc::network, "injected connection reset");
    std::vector<uint8_t> part;
    {
      std::lock_guard lk(mu_);
      auto it = http_.find(path);
      if (it == http_.end()) co_return Error(Errc::entry_not_found, "no such file");
      if (offset > it->second.size()) co_return Error(Errc::out_of_range, "416");
      uint64_t n = std::min<uint64_t>(length, it->second.size() - offset);
      part.assign(it->second.begin() + offset, it->second.begin() + offset + n);
    }
    if (take(corrupt_download) && !part.empty()) part[part.size() / 2] ^= 0x5a;
    fetched_bytes += part.size();
    // Deliver in uneven pieces like a socket would.
    size_t pos = 0, piece = 1000;
    while (pos < part.size()) {
      size_t n = std::min(piece, part.size() - pos);
      HF_CO_TRY(sink(std::span<const uint8_t>(part.data() + pos, n)));
      pos += n;
      piece = piece * 3 % 70001 + 1;
    }
    co_return Status{};
  }

 private:
  static std::string basename(const std::string& p) {
    auto s = p.rfind('/');
    return s == std::string::npos ? p : p.substr(s + 1);
  }
  static std::string dirname(const std::string& p) {
    auto s = p.rfind('/');
    return s == std::string::npos ? std::string() : p.substr(0, s);
  }
  void link_parents(const std::string& dir, bool) {
    if (dir.empty()) {
      dirs_[""];
      return;
    }
    std::string parent = dirname(dir), name = basename(dir);
    auto& entries = dirs_[parent];
    bool present = false;
    for (auto& e : entries) present |= (e.name == name && e.is_dir);
    if (!present) {
      RemoteEntry e;
      e.name = name;
      e.is_dir = true;
      entries.push_back(e);
    }
    dirs_[dir];
    link_parents(parent, true);
  }
  static bool take(std::atomic<int>& n) {
    int v = n.load();
    while (v > 0) {
      if (n.compare_exchange_weak(v, v - 1)) return true;
    }
    return false;
  }
  Task<void> delay() {
    int ms = delay_ms.load();
    if (ms <= 0) co_return;
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(ms));
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }

  std::string refuse_path_;  // under mu_
  mutable std::mutex mu_;
  std::string rev_ = "1111111111111111111111111111111111111111";
  std::string head_;
  uint64_t commit_seq_ = 0;
  std::map<std::string, std::vector<RemoteEntry>> dirs_;
  std::map<std::string, XetFile> files_;
  std::map<std::string, std::vector<std::vector<uint8_t>>> xorbs_;
  std::map<std::string, std::vector<uint8_t>> http_;
};

}  // namespace hf::fs::testing
