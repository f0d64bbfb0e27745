#include "fs/vfs.h"

#include <fcntl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "base/clock.h"
#include "base/log.h"
#include "base/sha256.h"

namespace hf::fs {

namespace net = boost::asio;

namespace {

constexpr std::string_view kXattrXetHash = "user.hf.xet_hash";
constexpr std::string_view kXattrOid = "user.hf.oid";
constexpr std::string_view kXattrRevision = "user.hf.revision";
constexpr std::string_view kXattrSource = "user.hf.source";
constexpr std::string_view kXattrCachedBytes = "user.hf.cached_bytes";

Key32 content_key(std::string_view kind, std::string_view id) {
  std::string s(kind);
  s.push_back(':');
  s += id;
  return sha256(s);
}

// What lookup/opendir report for a failed listing: ENOENT for a directory the server says is
// gone, EACCES for access problems, EINTR for interruptions, EIO for the rest (a server's
// oversized or malformed answer is an I/O error, never EFBIG or EINVAL).
Error listing_error(Error e) {
  switch (e.code) {
    case Errc::not_found:
    case Errc::entry_not_found:
    case Errc::repo_not_found:      // (boot: exit codes depend on these)
    case Errc::revision_not_found:
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

}  // namespace

Vfs::Vfs(VfsConfig cfg, Remote& remote, ChunkCache& cache, net::any_io_executor ex, MetaStore* meta,
         std::optional<net::any_io_executor> cpu)
    : cfg_(std::move(cfg)),
      remote_(remote),
      cache_(cache),
      ex_(std::move(ex)),
      meta_(meta),
      cpu_(cpu ? *cpu : ex_),
      table_(cfg_.table) {
  revs_.push_back(remote_.revision());
}

Vfs::~Vfs() { life_->cancel(); }

void Vfs::shutdown() {
  life_->cancel();
  std::vector<std::shared_ptr<FileReader>> readers;
  {
    std::lock_guard lk(mu_);
    for (auto& [key, weak] : readers_) {
      if (auto r = weak.lock()) readers.push_back(std::move(r));
    }
  }
  // Outside mu_: cancelling runs the readers' cancel callbacks, which may take their own locks.
  for (auto& r : readers) r->shutdown();
}

void Vfs::set_revision(std::string rev) {
  std::lock_guard lk(mu_);
  if (revs_.back() != rev) revs_.push_back(std::move(rev));
}

std::string Vfs::revision() const {
  std::lock_guard lk(mu_);
  return revs_.back();
}

EntryOut Vfs::entry_for(const Attr& a) const {
  EntryOut e;
  e.attr = a;
  e.entry_timeout = cfg_.entry_timeout;
  e.attr_timeout = cfg_.attr_timeout;
  return e;
}

// ---------------------------------------------------------------------------------- entries

std::optional<Result<EntryOut>> Vfs::lookup_fast(uint64_t parent, std::string_view name) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  if (name.size() > 255) return Result<EntryOut>(Error(Errc::name_too_long, "name longer than 255 bytes"));
  // Found and counted under one lock: the kernel never gets an uncounted reference, nor a node
  // that was renamed or replaced between the lookup and the count.
  auto r = table_.lookup_counted(parent, name);
  switch (r.state) {
    case InodeTable::ChildState::found:
      return Result<EntryOut>(entry_for(r.info.attr));
    case InodeTable::ChildState::absent: {
      auto p = table_.get(parent);
      if (!p) return Result<EntryOut>(Error(Errc::not_found, "parent directory no longer exists"));
      if (p->attr.kind != NodeKind::dir) return Result<EntryOut>(Error(Errc::not_dir, "parent is not a directory"));
      EntryOut neg;
      neg.entry_timeout = cfg_.negative_timeout;
      return Result<EntryOut>(neg);
    }
    case InodeTable::ChildState::unknown:
      return std::nullopt;
  }
  return std::nullopt;
}

Task<Result<EntryOut>> Vfs::lookup(uint64_t parent, std::string name, CancelPtr cancel) {
  stats_.lookups_remote.fetch_add(1, std::memory_order_relaxed);
  Status st = co_await ensure_listed(parent, cancel);
  if (!st.ok()) co_return st.error();
  auto r = lookup_fast(parent, name);
  if (!r) co_return Error(Errc::io, "directory listing did not complete");
  co_return std::move(*r);
}

void Vfs::forget(uint64_t ino, uint64_t nlookup) {
  std::shared_ptr<WriteState> dropped;  // destroyed (staging file deleted) outside mu_
  {
    // Under mu_: a new node given the freed number must never find this node's write state.
    std::lock_guard lk(mu_);
    if (!table_.forget(ino, nlookup)) return;
    kernel_content_.erase(ino);  // the kernel holds no pages of a node it forgot
    auto w = writes_.find(ino);
    if (w == writes_.end()) return;
    for (auto& [fh, h] : files_) {
      if (h->ino == ino) return;  // (the kernel releases handles before forgetting)
    }
    dropped = std::move(w->second);
    writes_.erase(w);
  }
}

std::optional<Attr> Vfs::add_lookup_child(uint64_t dir, std::string_view name) {
  auto r = table_.lookup_counted(dir, name);
  if (r.state != InodeTable::ChildState::found) return std::nullopt;
  return r.info.attr;
}

Result<Attr> Vfs::getattr(uint64_t ino) {
  auto n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  return n->attr;
}

Result<std::string> Vfs::readlink(uint64_t ino) {
  auto n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  if (n->attr.kind != NodeKind::symlink) return Error(Errc::invalid_argument, "not a symbolic link");
  return n->symlink_target;
}

// ------------------------------------------------------------------------------ directories

Task<Status> Vfs::ensure_listed(uint64_t dir, CancelPtr cancel) {
  if (table_.is_listed(dir)) co_return Status{};
  if (!table_.is_dir(dir)) {
    co_return table_.get(dir) ? Error(Errc::not_dir, "not a directory") : Error(Errc::not_found, "no such inode");
  }
  SharedResultPtr<Status> flight;
  bool start = false;
  {
    std::lock_guard lk(mu_);
    auto it = listing_flights_.find(dir);
    if (it != listing_flights_.end()) {
      flight = it->second;
    } else {
      flight = SharedResult<Status>::create();
      listing_flights_.emplace(dir, flight);
      start = true;
    }
  }
  if (start) net::co_spawn(ex_, load_dir(dir, flight), net::detached);
  // Wait for the listing or for this caller's cancellation; the listing itself continues for
  // other waiters.
  auto waiter = SharedResult<Status>::create();
  flight->on_ready([waiter](const Status& s) { waiter->set(s); });
  uint64_t cb = 0;
  if (cancel) cb = cancel->on_cancel([waiter] { waiter->set(Error(Errc::cancelled, "interrupted")); });
  Status st = co_await waiter->wait();
  if (cancel) cancel->remove(cb);
  co_return st;
}

std::vector<ListedEntry> Vfs::convert_listing(std::vector<RemoteEntry>&& entries, const std::string& dir_path) {
  std::vector<ListedEntry> out;
  out.reserve(entries.size());
  uint32_t rev_index;
  {
    std::lock_guard lk(mu_);
    rev_index = static_cast<uint32_t>(revs_.size() - 1);
  }
  size_t skipped = 0;
  for (auto& e : entries) {
    if (!valid_entry_name(e.name)) {
      if (skipped++ < 5) {
        HF_LOG_WARN("listing", "skipping invalid entry name in '{}' ({} bytes): not served", dir_path, e.name.size());
      }
      continue;
    }
    ListedEntry le;
    le.name = std::move(e.name);
    le.kind = e.is_dir ? NodeKind::dir : NodeKind::file;
    le.size = e.is_dir ? 0 : e.size;
    le.mtime_ns = e.mtime_ns;
    if (!e.is_dir) {
      le.content.rev = rev_index;
      le.content.etag = !e.lfs_sha256.empty() ? e.lfs_sha256 : e.oid;
      if (!e.xet_hash.empty()) {
        auto h = xet::Hash::from_hex(e.xet_hash);
        if (!h.ok()) {
          if (skipped++ < 5) HF_LOG_WARN("listing", "skipping '{}/{}': malformed xet hash", dir_path, le.name);
          continue;
        }
        le.content.source = Content::Source::xet;
        le.content.id = h->bytes;
      } else if (e.size == 0) {
        le.content.source = Content::Source::empty;
      } else {
        le.content.source = Content::Source::http;
        if (!e.lfs_sha256.empty()) {
          le.content.id = content_key("lfs", e.lfs_sha256);
        } else if (!e.oid.empty()) {
          le.content.id = content_key("git", e.oid);
        } else {
          // No content identity from the server: key by revision and path (immutable per rev).
          le.content.id = content_key("path", revs_[rev_index] + "\n" + dir_path + "/" + le.name);
        }
      }
    }
    out.push_back(std::move(le));
  }
  if (skipped) stats_.skipped_names.fetch_add(skipped, std::memory_order_relaxed);
  return out;
}

Task<void> Vfs::load_dir(uint64_t dir, SharedResultPtr<Status> flight) {
  Status result;
  auto path = table_.path(dir);
  if (!path) {
    result = Error(Errc::not_found, "directory no longer exists");
  } else {
    std::string rev;
    uint32_t rev_index;
    {
      std::lock_guard lk(mu_);
      rev = revs_.back();
      rev_index = static_cast<uint32_t>(revs_.size() - 1);
    }
    // A listing of this commit stored by an earlier mount is as good as the Hub's: commits are
    // immutable.
    std::optional<std::vector<ListedEntry>> stored;
    if (meta_) stored = meta_->get_listing(rev, *path);
    if (stored) {
      for (auto& e : *stored) e.content.rev = rev_index;
      stats_.listings_from_store.fetch_add(1, std::memory_order_relaxed);
      table_.apply_listing(dir, std::move(*stored));
    } else {
      auto r = co_await remote_.list_dir(rev, *path, life_);
      if (!r.ok()) {
        HF_LOG_WARN("listing", "listing '{}' failed: {}", path->empty() ? "/" : *path, r.error().describe());
        result = listing_error(std::move(r).error());
      } else {
        stats_.listings.fetch_add(1, std::memory_order_relaxed);
        stats_.listing_entries.fetch_add(r->size(), std::memory_order_relaxed);
        std::vector<ListedEntry> entries = convert_listing(std::move(*r), *path);
        if (meta_) {
          Status ps = meta_->put_listing(rev, *path, entries);
          if (!ps.ok()) HF_LOG_DEBUG("listing", "cannot persist listing: {}", ps.error().describe());
        }
        table_.apply_listing(dir, std::move(entries));
      }
    }
  }
  {
    std::lock_guard lk(mu_);
    listing_flights_.erase(dir);
  }
  flight->set(result);
}

Result<OpenOut> Vfs::make_dir_handle(uint64_t ino) {
  if (!table_.is_listed(ino)) return Error(Errc::io, "directory listing unavailable");
  std::lock_guard lk(mu_);
  uint64_t fh = next_fh_++;
  dirs_.emplace(fh, DirHandle{ino, nullptr});
  OpenOut o;
  o.fh = fh;
  o.cache_dir = true;
  o.keep_cache = true;
  return o;
}

std::optional<Result<OpenOut>> Vfs::opendir_fast(uint64_t ino) {
  auto n = table_.get(ino);
  if (!n) return Result<OpenOut>(Error(Errc::not_found, "no such inode"));
  if (n->attr.kind != NodeKind::dir) return Result<OpenOut>(Error(Errc::not_dir, "not a directory"));
  if (!table_.is_listed(ino)) return std::nullopt;
  return make_dir_handle(ino);
}

Task<Result<OpenOut>> Vfs::opendir(uint64_t ino, CancelPtr cancel) {
  Status st = co_await ensure_listed(ino, cancel);
  if (!st.ok()) co_return st.error();
  co_return make_dir_handle(ino);
}

std::shared_ptr<const DirSnapshot> Vfs::dir_snapshot(uint64_t fh) {
  uint64_t ino;
  {
    std::lock_guard lk(mu_);
    auto it = dirs_.find(fh);
    if (it == dirs_.end()) return nullptr;
    if (it->second.snap) return it->second.snap;
    ino = it->second.ino;
  }
  auto snap = table_.snapshot(ino);
  if (!snap) {
    // Gone from the table since opendir (a local rmdir of the then empty directory, then the
    // kernel's forget): it reads as empty. A directory removed remotely stays in the table
    // while the kernel holds it and lists its last known entries.
    auto empty = std::make_shared<DirSnapshot>();
    empty->dir_ino = empty->parent_ino = ino;
    snap = std::move(empty);
  }
  std::lock_guard lk(mu_);
  auto it = dirs_.find(fh);
  if (it == dirs_.end()) return snap;
  if (!it->second.snap) it->second.snap = std::move(snap);  // two racing first readdirs: one wins
  return it->second.snap;
}

void Vfs::releasedir(uint64_t fh) {
  std::lock_guard lk(mu_);
  dirs_.erase(fh);
}

// ------------------------------------------------------------------------------------ files

std::shared_ptr<FileReader> Vfs::reader_locked(const NodeInfo& n) {
  // Local content is read through the write state (read() finds it first).
  if (n.content.source == Content::Source::empty || n.content.source == Content::Source::local || n.attr.size == 0) {
    return nullptr;
  }
  auto key = std::make_tuple(static_cast<int>(n.content.source), n.content.id, n.attr.size);
  auto it = readers_.find(key);
  if (it != readers_.end()) {
    if (auto r = it->second.lock()) return r;
  }
  std::string rev = n.content.rev < revs_.size() ? revs_[n.content.rev] : revs_.back();
  std::string path = table_.path(n.attr.ino).value_or(n.name);
  auto r = std::make_shared<FileReader>(ex_, remote_, cache_, cfg_.reader, stats_.reader, n.content, n.attr.size,
                                        std::move(rev), std::move(path), meta_);
  readers_[key] = r;
  // Drop dead weak entries occasionally so the map stays small.
  if (readers_.size() > 4 * cfg_.reader_cache + 64) {
    for (auto i = readers_.begin(); i != readers_.end();) {
      i = i->second.expired() ? readers_.erase(i) : std::next(i);
    }
  }
  return r;
}

std::shared_ptr<FileReader> Vfs::reader_for_ino(uint64_t ino) {
  auto n = table_.get(ino);
  if (!n || n->attr.kind != NodeKind::file) return nullptr;
  std::lock_guard lk(mu_);
  return reader_locked(*n);
}

Result<OpenOut> Vfs::open(uint64_t ino, int flags) {
  auto n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  if (n->attr.kind == NodeKind::dir) return Error(Errc::is_dir, "is a directory");
  bool wants_write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (wants_write) HF_TRY(check_writable());
  std::lock_guard lk(mu_);
  // Read the node again under mu_: the poller changes content and marks stale attributes
  // under mu_ too, so the content this handle gets and refresh_attrs below agree.
  n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  if (n->attr.kind == NodeKind::dir) return Error(Errc::is_dir, "is a directory");
  auto h = std::make_unique<FileHandle>();
  h->ino = ino;
  OpenOut o;
  if (wants_write) {
    auto ws = write_state_locked(ino, *n, (flags & O_TRUNC) != 0);
    if (!ws.ok()) return std::move(ws).error();
    (*ws)->writers++;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    if (flags & O_TRUNC) table_.set_written(ino, 0, now_unix_ns(), (*ws)->staged->content());
  } else if (!writes_.count(ino)) {
    h->reader = reader_locked(*n);
  }
  o.fh = next_fh_++;
  o.refresh_attrs = stale_attrs_.erase(ino) > 0;
  // Keep the kernel's pages only if they were filled from this same content.
  auto kc = kernel_content_.find(ino);
  o.keep_cache = kc == kernel_content_.end() || kc->second == n->content.id;
  kernel_content_[ino] = n->content.id;
  files_.emplace(o.fh, std::move(h));
  return o;
}

bool Vfs::read_fast(uint64_t fh, uint64_t off, uint64_t len, ReadData& out) {
  FileHandle* h;
  {
    std::lock_guard lk(mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return false;
    h = it->second.get();
    if (writes_.count(h->ino)) return false;  // staged content: the async path merges it
  }
  stats_.reads.fetch_add(1, std::memory_order_relaxed);
  if (!h->reader) {
    out = ReadData{};  // empty file
    stats_.reads_fast.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!h->reader->try_read_local(off, len, out, &h->stream)) return false;
  stats_.reads_fast.fetch_add(1, std::memory_order_relaxed);
  stats_.read_bytes.fetch_add(out.bytes, std::memory_order_relaxed);
  return true;
}

Task<Result<ReadData>> Vfs::read(uint64_t fh, uint64_t off, uint64_t len, CancelPtr cancel) {
  std::shared_ptr<FileReader> reader;
  std::shared_ptr<WriteState> ws;
  StreamState* stream = nullptr;
  {
    std::lock_guard lk(mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) co_return Error(Errc::bad_handle, "unknown file handle");
    if (auto w = writes_.find(it->second->ino); w != writes_.end()) {
      ws = w->second;
    } else {
      reader = it->second->reader;
      if (!reader) {
        // Opened while the file was being written, committed since: read the new content.
        if (auto n = table_.get(it->second->ino)) reader = it->second->reader = reader_locked(*n);
      }
    }
    stream = &it->second->stream;  // handles outlive their in-flight reads (kernel contract)
  }
  Result<ReadData> r = ReadData{};
  if (ws) {
    r = co_await read_staged(ws, off, len, cancel);
  } else if (reader) {
    r = co_await reader->read(off, len, stream, cancel);
  }
  if (r.ok()) {
    stats_.read_bytes.fetch_add(r->bytes, std::memory_order_relaxed);
  } else if (r.code() != Errc::cancelled) {
    stats_.read_errors.fetch_add(1, std::memory_order_relaxed);
  }
  co_return r;
}

void Vfs::release(uint64_t fh) {
  std::lock_guard lk(mu_);
  auto it = files_.find(fh);
  if (it == files_.end()) return;
  if (it->second->reader) {
    recent_readers_.push_front(it->second->reader);
    if (recent_readers_.size() > cfg_.reader_cache) recent_readers_.pop_back();
  }
  uint64_t ino = it->second->ino;
  bool writable = it->second->writable;
  files_.erase(it);
  auto w = writes_.find(ino);
  if (w == writes_.end()) return;
  if (writable && w->second->writers > 0) w->second->writers--;
  WriteState& ws = *w->second;
  if (ws.writers > 0 || ws.flight) return;
  if (ws.staged->generation() == ws.committed_gen) {
    // Committed and nobody writes: reads go to the committed content from now on.
    bool open_elsewhere = false;
    for (auto& [fh2, h2] : files_) open_elsewhere |= h2->ino == ino;
    if (!open_elsewhere && !staged_only_locked(ino)) writes_.erase(w);
  } else {
    // Dirty with no writer left: writeback=async already queued it at its flush (it joins a
    // group commit with its neighbours); with writeback=sync its close failed. Either way it is
    // retried in the background with backoff until it commits (queued again in case the flush
    // itself failed); never a single try that a still-down bucket would make the last.
    net::post(ex_, [this, ino, life = life_] {
      if (!life->cancelled()) commit_in_background(ino);
    });
  }
}

// --------------------------------------------------------------------------- xattr, statfs

Result<std::string> Vfs::getxattr(uint64_t ino, std::string_view name) {
  auto n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  bool file = n->attr.kind == NodeKind::file;
  if (name == kXattrSource) return cfg_.source;
  if (name == kXattrRevision) {
    std::lock_guard lk(mu_);
    return file && n->content.rev < revs_.size() ? revs_[n->content.rev] : revs_.back();
  }
  if (file && name == kXattrXetHash && n->content.source == Content::Source::xet) {
    xet::Hash h;
    h.bytes = n->content.id;
    return h.hex();
  }
  if (file && name == kXattrOid && !n->content.etag.empty()) return n->content.etag;
  if (file && name == kXattrCachedBytes) {
    auto r = reader_for_ino(ino);
    return std::to_string(r ? r->cached_bytes() : 0);
  }
  return Error(Errc::no_data, "no such attribute");
}

Result<std::vector<std::string>> Vfs::listxattr(uint64_t ino) {
  auto n = table_.get(ino);
  if (!n) return Error(Errc::not_found, "no such inode");
  std::vector<std::string> names{std::string(kXattrSource), std::string(kXattrRevision)};
  if (n->attr.kind == NodeKind::file) {
    if (n->content.source == Content::Source::xet) names.emplace_back(kXattrXetHash);
    if (!n->content.etag.empty()) names.emplace_back(kXattrOid);
    names.emplace_back(kXattrCachedBytes);
  }
  return names;
}

StatfsOut Vfs::statfs() {
  StatfsOut s;
  auto cs = cache_.stats();
  s.files = table_.size();
  // A read-only repository view is "full" (like squashfs): nothing can be written. Report the
  // locally cached bytes as used space so `df` shows cache usage.
  s.blocks = std::max<uint64_t>(1, (cs.disk_bytes + cs.mem_bytes + s.block_size - 1) / s.block_size);
  if (!cfg_.read_only) {
    s.blocks_free = s.blocks_avail = 1ull << 40;  // 4 PiB: buckets have no fixed quota here
    s.blocks += s.blocks_free;
    s.files_free = 1ull << 32;
  }
  return s;
}

}  // namespace hf::fs
