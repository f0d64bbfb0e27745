// Vfs: the write side (bucket mounts): namespace changes, staging, commit.
//
// Semantics (also in README "Write semantics"):
// * write() lands in a local staging file and returns at once; nothing of the existing
//   content is downloaded to write into it.
// * close() (flush) and fsync() return only after the file's content is uploaded to the CAS
//   and committed to the bucket (batch addFile), or they fail; a failed commit is retried
//   with backoff, and the staged data stays (never silently dropped).
// * rename/unlink/link of committed files are applied remotely first, then locally.
// * Directories are implicit in buckets: mkdir creates a local directory that lives as long as
//   the mount; symlinks, modes and owners are local.
#include <deque>
#include <fcntl.h>

#include <utility>  // before asio

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <future>

#include "base/clock.h"
#include "base/log.h"
#include "base/sleep.h"
#include "fs/vfs.h"

namespace hf::fs {

namespace net = boost::asio;

namespace {

constexpr size_t kMaxBatchOps = 1000;  // hub-api §7.4: keep a batch at or below 1000 lines

bool retryable_commit(Errc c) {
  switch (c) {
    case Errc::network:
    case Errc::timed_out:
    case Errc::server_error:
    case Errc::rate_limited:
    case Errc::protocol:
    case Errc::again:
    case Errc::io:
      return true;
    default:
      return false;
  }
}

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Marks directories as changing locally for its lifetime (see InodeTable::begin_local_change):
// the poller must not apply a listing taken between a remote commit and its local mirror.
class LocalChange {
 public:
  LocalChange(InodeTable& t, std::vector<uint64_t> dirs) : t_(t), dirs_(std::move(dirs)) {
    for (uint64_t d : dirs_) t_.begin_local_change(d);
  }
  ~LocalChange() {
    for (uint64_t d : dirs_) t_.end_local_change(d);
  }
  LocalChange(const LocalChange&) = delete;
  LocalChange& operator=(const LocalChange&) = delete;

 private:
  InodeTable& t_;
  std::vector<uint64_t> dirs_;
};

// The remote's upload sink, plus: each xorb the CAS accepted goes to the disk chunk cache
// (decoded on the cpu executor), so files written here read back without a download.
class CachingUploadSink final : public xet::UploadSink {
 public:
  CachingUploadSink(xet::UploadSink& inner, ChunkCache& cache, net::any_io_executor cpu)
      : inner_(inner), cache_(cache), cpu_(std::move(cpu)) {}

  Task<Status> put_xorb(xet::Hash hash, std::shared_ptr<const std::string> serialized) override {
    Status st = co_await inner_.put_xorb(hash, serialized);
    if (st.ok()) {
      net::post(cpu_, [&cache = cache_, key = hash.bytes, body = std::move(serialized)] {
        cache.insert_uploaded_xorb(key, {reinterpret_cast<const uint8_t*>(body->data()), body->size()});
      });
    }
    co_return st;
  }
  Task<Status> put_shard(std::shared_ptr<const std::string> shard) override {
    co_return co_await inner_.put_shard(std::move(shard));
  }
  Task<std::optional<xet::Shard>> query_dedup(xet::Hash chunk) override {
    co_return co_await inner_.query_dedup(chunk);
  }

 private:
  xet::UploadSink& inner_;
  ChunkCache& cache_;
  net::any_io_executor cpu_;
};

}  // namespace

bool is_os_junk(std::string_view n) {
  static const char* names[] = {".DS_Store", ".Spotlight-V100", ".Trashes", ".fseventsd", "__MACOSX",
                                "Thumbs.db", "desktop.ini", ".AppleDouble"};
  for (const char* x : names) {
    if (n == x) return true;
  }
  return n.substr(0, 2) == "._";
}

Status Vfs::check_writable() const {
  if (cfg_.read_only) return Error(Errc::read_only, "read-only mount");
  if (!remote_.upload_sink()) return Error(Errc::read_only, "this source cannot be written");
  return {};
}

std::string Vfs::full_path(uint64_t parent, std::string_view name) {
  return join(table_.path(parent).value_or(""), name);
}

Result<std::shared_ptr<Vfs::WriteState>> Vfs::write_state_locked(uint64_t ino, const NodeInfo& n, bool truncate) {
  auto it = writes_.find(ino);
  if (it != writes_.end()) {
    if (truncate) HF_TRY(it->second->staged->truncate(0));
    return it->second;
  }
  uint64_t base_size = n.content.source == Content::Source::empty ? 0 : n.attr.size;
  auto staged = StagedFile::create(cfg_.staging_dir, n.content, base_size, truncate);
  if (!staged.ok()) return std::move(staged).error();
  auto ws = std::make_shared<WriteState>();
  ws->staged = std::move(*staged);
  // O_TRUNC is a change even if nothing is written afterwards (the file becomes empty, its
  // mtime moves): it must be committed, or the bucket keeps the old bytes and the node stays
  // local (renames and unlinks would then skip it remotely).
  ws->committed_gen = truncate ? UINT64_MAX : ws->staged->generation();
  ws->ever_committed = !table_.is_local(ino);  // it came from the bucket
  if (!truncate && base_size > 0) ws->base = reader_locked(n);
  writes_[ino] = ws;
  return ws;
}

std::shared_ptr<Vfs::WriteState> Vfs::write_state(uint64_t ino) {
  std::lock_guard lk(mu_);
  auto it = writes_.find(ino);
  return it == writes_.end() ? nullptr : it->second;
}

bool Vfs::staged_only_locked(uint64_t ino) const {
  auto n = table_.get(ino);
  return n && n->content.source == Content::Source::local;
}

void Vfs::orphaned_locked(uint64_t ino) {
  auto it = writes_.find(ino);
  if (it == writes_.end()) return;
  // Its uncommitted bytes (or committed ones with a size a later write moves) can never reach
  // the bucket now: from here on the staged file is the node's content.
  table_.set_written(ino, it->second->staged->size(), 0, it->second->staged->content());
}

// ------------------------------------------------------------------------------- namespace

Result<std::pair<EntryOut, OpenOut>> Vfs::create(uint64_t parent, std::string name, uint32_t mode, int flags) {
  HF_TRY(check_writable());
  InodeTable::NewNode nn;
  nn.kind = NodeKind::file;
  nn.mtime_ns = now_unix_ns();
  nn.perm = mode & 07777;
  // Counted at creation (see InodeTable::create): the entry goes to the kernel.
  auto info = table_.create(parent, name, nn, true, 1);
  if (!info.ok()) return std::move(info).error();
  uint64_t ino = info->attr.ino;
  std::lock_guard lk(mu_);
  auto ws = write_state_locked(ino, *info, true);
  if (!ws.ok()) {
    // Not handed to the kernel after all: take the name and our reference back.
    if (auto r = table_.lookup(parent, name); r.state == InodeTable::ChildState::found && r.info.attr.ino == ino) {
      (void)table_.remove(parent, name);
    }
    table_.forget(ino, 1);
    return std::move(ws).error();
  }
  (*ws)->ever_committed = false;
  (*ws)->committed_gen = UINT64_MAX;  // a new file is dirty until its first commit, even empty
  (*ws)->writers++;
  auto h = std::make_unique<FileHandle>();
  h->ino = ino;
  h->writable = (flags & O_ACCMODE) != O_RDONLY;
  OpenOut o;
  o.fh = next_fh_++;
  kernel_content_[ino] = Key32{};
  files_.emplace(o.fh, std::move(h));
  return std::make_pair(entry_for(info->attr), o);
}

Result<EntryOut> Vfs::mkdir(uint64_t parent, std::string name, uint32_t mode) {
  HF_TRY(check_writable());
  InodeTable::NewNode nn;
  nn.kind = NodeKind::dir;
  nn.mtime_ns = now_unix_ns();
  nn.perm = mode & 07777;
  auto info = table_.create(parent, name, nn, true, 1);  // counted: the entry goes to the kernel
  if (!info.ok()) return std::move(info).error();
  return entry_for(info->attr);
}

Result<EntryOut> Vfs::symlink(std::string target, uint64_t parent, std::string name) {
  HF_TRY(check_writable());
  if (target.empty() || target.size() > 4095) return Error(Errc::invalid_argument, "invalid symlink target");
  InodeTable::NewNode nn;
  nn.kind = NodeKind::symlink;
  nn.mtime_ns = now_unix_ns();
  nn.symlink_target = std::move(target);
  auto info = table_.create(parent, name, nn, true, 1);  // counted: the entry goes to the kernel
  if (!info.ok()) return std::move(info).error();
  return entry_for(info->attr);
}

Task<Status> Vfs::unlink(uint64_t parent, std::string name, CancelPtr cancel) {
  HF_CO_TRY(check_writable());
  HF_CO_TRY(co_await ensure_listed(parent, cancel));
  auto ns = co_await ns_mu_.lock();  // no commit of this file resolves its path meanwhile
  auto r = table_.lookup(parent, name);
  if (r.state != InodeTable::ChildState::found) co_return Error(Errc::not_found, "no such file");
  if (r.info.attr.kind == NodeKind::dir) co_return Error(Errc::is_dir, "is a directory");
  uint64_t ino = r.info.attr.ino;
  LocalChange busy(table_, {parent});
  auto ws = write_state(ino);
  bool remote = ws ? ws->ever_committed : !table_.is_local(ino);
  if (remote && r.info.attr.kind == NodeKind::file) {
    stats_.batches.fetch_add(1, std::memory_order_relaxed);
    // (g++ 12 mishandles braced initializers inside co_await: build the ops first.)
    std::vector<CommitOp> ops(1);
    ops[0].kind = CommitOp::Kind::del;
    ops[0].path = full_path(parent, name);
    HF_CO_TRY(co_await remote_.commit(std::move(ops), cancel));
  }
  std::string path = full_path(parent, name);
  HF_CO_TRY(table_.remove(parent, name));
  if (ws) {
    std::lock_guard lk(mu_);
    orphaned_locked(ino);
    ws->ever_committed = false;  // nothing to delete remotely any more; an open fd keeps the data
    if (ws->journaled && meta_) {
      (void)meta_->delete_pending(path);
      ws->set_journaled(false);
    }
  }
  co_return Status{};
}

Task<Status> Vfs::rmdir(uint64_t parent, std::string name, CancelPtr cancel) {
  HF_CO_TRY(check_writable());
  HF_CO_TRY(co_await ensure_listed(parent, cancel));
  auto r = table_.lookup(parent, name);
  if (r.state != InodeTable::ChildState::found) co_return Error(Errc::not_found, "no such directory");
  if (r.info.attr.kind != NodeKind::dir) co_return Error(Errc::not_dir, "not a directory");
  HF_CO_TRY(co_await ensure_listed(r.info.attr.ino, cancel));
  auto snap = table_.snapshot(r.info.attr.ino);
  if (snap && !snap->entries.empty()) co_return Error(Errc::not_empty, "directory not empty");
  HF_CO_TRY(table_.remove(parent, name));
  co_return Status{};
}

Task<Status> Vfs::rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name, bool no_replace,
                         CancelPtr cancel) {
  HF_CO_TRY(check_writable());
  HF_CO_TRY(co_await ensure_listed(parent, cancel));
  HF_CO_TRY(co_await ensure_listed(new_parent, cancel));
  // Until the local rename: no commit resolves a path, writes its journal entry or sends its
  // batch meanwhile (it would target a name this rename moves, or read content it moves).
  auto ns = co_await ns_mu_.lock();
  auto src = table_.lookup(parent, name);
  if (src.state != InodeTable::ChildState::found) co_return Error(Errc::not_found, "no such file or directory");
  auto dst = table_.lookup(new_parent, new_name);
  if (dst.state == InodeTable::ChildState::found) {
    if (dst.info.attr.ino == src.info.attr.ino) co_return Status{};  // the same file: nothing to do
    if (no_replace) co_return Error(Errc::exists, "target exists");
    if (dst.info.attr.kind == NodeKind::dir && src.info.attr.kind != NodeKind::dir) co_return Error(Errc::is_dir, "target is a directory");
    if (dst.info.attr.kind != NodeKind::dir && src.info.attr.kind == NodeKind::dir) co_return Error(Errc::not_dir, "target is not a directory");
  }
  std::string old_path = full_path(parent, name), new_path = full_path(new_parent, new_name);
  // Everything the local rename would refuse is refused before anything is committed remotely:
  // a rename that fails here after moving files in the bucket would leave the two diverged.
  if (src.info.attr.kind == NodeKind::dir &&
      (new_path == old_path || new_path.rfind(old_path + "/", 0) == 0)) {
    co_return Error(Errc::invalid_argument, "cannot move a directory into itself");
  }
  if (dst.state == InodeTable::ChildState::found && dst.info.attr.kind == NodeKind::dir) {
    HF_CO_TRY(co_await ensure_listed(dst.info.attr.ino, cancel));
    auto snap = table_.snapshot(dst.info.attr.ino);
    if (snap && !snap->entries.empty()) co_return Error(Errc::not_empty, "target directory not empty");
  }

  // Committed files under the source move remotely: one add per file at the new path (same
  // content hash: nothing is re-uploaded), then the deletes, adds first as the Hub requires.
  std::vector<std::pair<std::string, std::string>> moves;  // old path, new path
  std::vector<std::pair<uint64_t, std::string>> files;
  // Every directory whose listing this rename changes (parents, and the moved subtree).
  std::vector<uint64_t> changing{parent, new_parent};
  if (src.info.attr.kind == NodeKind::dir) {
    // Load the whole subtree: a rename must move files nobody has looked at yet.
    std::vector<uint64_t> pending{src.info.attr.ino};
    while (!pending.empty()) {
      uint64_t d = pending.back();
      pending.pop_back();
      changing.push_back(d);
      HF_CO_TRY(co_await ensure_listed(d, cancel));
      if (auto snap = table_.snapshot(d)) {
        for (auto& e : snap->entries) {
          if (e.attr.kind == NodeKind::dir) pending.push_back(e.attr.ino);
        }
      }
    }
    files = table_.files_below(src.info.attr.ino);
  } else {
    files.emplace_back(src.info.attr.ino, "");
  }
  LocalChange busy(table_, std::move(changing));
  std::vector<CommitOp> adds, dels;
  for (auto& [ino, rel] : files) {
    auto n = table_.get(ino);
    // Empty bucket files are Xet files too (their hash is all zeros, §3.5) and must move along.
    bool empty = n && n->content.source == Content::Source::empty;
    if (!n || n->attr.kind != NodeKind::file || (n->content.source != Content::Source::xet && !empty)) continue;
    auto ws = write_state(ino);
    bool committed = ws ? ws->ever_committed : !table_.is_local(ino);
    if (!committed) continue;
    std::string from = rel.empty() ? old_path : old_path + "/" + rel;
    std::string to = rel.empty() ? new_path : new_path + "/" + rel;
    xet::Hash h;
    if (!empty) h.bytes = n->content.id;
    CommitOp add;
    add.path = to;
    add.hash = h;
    add.mtime_ms = n->attr.mtime_ns / 1000000;
    adds.push_back(std::move(add));
    CommitOp del;
    del.kind = CommitOp::Kind::del;
    del.path = from;
    dels.push_back(std::move(del));
  }
  // Journal the whole change first: after a crash the next mount replays it (adds and deletes
  // by path are idempotent), so a big directory rename never stays half done.
  uint64_t ops_id = 0;
  if (meta_ && !adds.empty()) {
    MetaStore::PendingOps po;
    for (auto& a : adds) po.lines.emplace_back(0, a.path, a.hash.hex(), a.mtime_ms);
    for (auto& d : dels) po.lines.emplace_back(1, d.path, std::string(), 0);
    auto id = meta_->put_ops(po);
    if (id.ok()) ops_id = *id;
  }
  // Batches of at most 1000 lines; each batch is self-contained (its adds precede its
  // deletes), so an interruption never leaves a file deleted without its new copy.
  for (size_t i = 0; i < adds.size(); i += kMaxBatchOps / 2) {
    std::vector<CommitOp> ops;
    size_t n = std::min(kMaxBatchOps / 2, adds.size() - i);
    ops.insert(ops.end(), adds.begin() + i, adds.begin() + i + n);
    ops.insert(ops.end(), dels.begin() + i, dels.begin() + i + n);
    stats_.batches.fetch_add(1, std::memory_order_relaxed);
    HF_CO_TRY(co_await remote_.commit(std::move(ops), cancel));
  }
  if (ops_id) (void)meta_->delete_ops(ops_id);
  // A replaced file's pending upload has nowhere to go any more (the name is the moved
  // file's now): its journal entry goes, or the next mount would resume it over the file that
  // took its name. Before the entries of the moved files are written at their new paths (the
  // journal is keyed by path).
  if (dst.state == InodeTable::ChildState::found && dst.info.attr.kind == NodeKind::file && meta_) {
    if (auto dws = write_state(dst.info.attr.ino)) {
      std::lock_guard lk(mu_);
      if (dws->journaled) {
        (void)meta_->delete_pending(new_path);
        dws->set_journaled(false);
      }
    }
  }
  // Files with uncommitted changes move their journal entries along.
  for (auto& [ino, rel] : files) {
    auto ws = write_state(ino);
    if (!ws || !ws->journaled || !meta_) continue;
    std::string from = rel.empty() ? old_path : old_path + "/" + rel;
    std::string to = rel.empty() ? new_path : new_path + "/" + rel;
    if (journal(ino, to, *ws).ok()) (void)meta_->delete_pending(from);
  }
  HF_CO_TRY(table_.rename(parent, name, new_parent, new_name, no_replace));
  if (dst.state == InodeTable::ChildState::found && dst.info.attr.kind == NodeKind::file) {
    std::lock_guard lk(mu_);
    if (auto t = table_.get(dst.info.attr.ino); t && t->parent == 0) orphaned_locked(dst.info.attr.ino);
  }
  co_return Status{};
}

Task<Result<EntryOut>> Vfs::link(uint64_t ino, uint64_t new_parent, std::string new_name, CancelPtr cancel) {
  HF_CO_TRY(check_writable());
  auto n = table_.get(ino);
  if (!n) co_return Error(Errc::not_found, "no such file");
  if (n->attr.kind != NodeKind::file) co_return Error(Errc::not_permitted, "hard links to directories are not allowed");
  HF_CO_TRY(co_await flush_ino_if_dirty(ino, cancel));
  HF_CO_TRY(co_await ensure_listed(new_parent, cancel));
  // From reading the content to the new name: atomic with respect to rename, unlink and
  // commits (see ns_mu_), or the link could copy content a commit has just replaced.
  auto ns = co_await ns_mu_.lock();
  n = table_.get(ino);
  bool empty = n && n->content.source == Content::Source::empty;
  if (!n || (n->content.source != Content::Source::xet && !empty)) {
    co_return Error(Errc::unsupported, "only committed files can be linked");
  }
  if (table_.lookup(new_parent, new_name).state == InodeTable::ChildState::found) co_return Error(Errc::exists, "target exists");
  LocalChange busy(table_, {new_parent});
  xet::Hash h;  // all zeros for an empty file
  if (!empty) h.bytes = n->content.id;
  stats_.batches.fetch_add(1, std::memory_order_relaxed);
  std::vector<CommitOp> ops(1);
  ops[0].path = full_path(new_parent, new_name);
  ops[0].hash = h;
  ops[0].mtime_ms = n->attr.mtime_ns / 1000000;
  HF_CO_TRY(co_await remote_.commit(std::move(ops), cancel));
  // A server-side copy: the new name is its own inode with the same content.
  InodeTable::NewNode nn;
  nn.kind = NodeKind::file;
  nn.size = n->attr.size;
  nn.mtime_ns = n->attr.mtime_ns;
  nn.content = n->content;
  // Counted at creation: a non-local node, so a poll could otherwise remove it before the count
  // and the kernel would hold an uncounted entry.
  auto info = table_.create(new_parent, new_name, nn, false, 1);
  if (!info.ok()) co_return std::move(info).error();
  co_return entry_for(info->attr);
}

Task<Result<Attr>> Vfs::setattr(uint64_t ino, SetAttrIn in, CancelPtr cancel) {
  auto n = table_.get(ino);
  if (!n) co_return Error(Errc::not_found, "no such inode");
  if (in.size || in.mode || in.uid || in.gid || in.mtime_ns) HF_CO_TRY(check_writable());
  if (in.size) {
    if (n->attr.kind == NodeKind::dir) co_return Error(Errc::is_dir, "is a directory");
    std::shared_ptr<WriteState> ws;
    {
      std::lock_guard lk(mu_);
      auto w = write_state_locked(ino, *n, *in.size == 0);
      if (!w.ok()) co_return std::move(w).error();
      ws = *w;
    }
    HF_CO_TRY(ws->staged->truncate(*in.size));
    table_.set_written(ino, *in.size, now_unix_ns(), ws->staged->content());
  }
  if (in.mode || in.uid || in.gid || in.mtime_ns) {
    table_.set_meta(ino, in.mode, in.uid, in.gid, in.mtime_ns);
  }
  // An mtime change of a clean committed file is sent to the bucket (the API carries mtime).
  // Decided and sent under ns_mu_: a commit finishing meanwhile would otherwise see its new
  // content replaced by the hash read here, and a rename would leave the batch on the old name.
  if (in.mtime_ns && !in.size && n->attr.kind == NodeKind::file) {
    auto ns = co_await ns_mu_.lock();
    auto cur = table_.get(ino);
    bool clean_committed = cur && cur->content.source == Content::Source::xet && !table_.is_local(ino) && !write_state(ino);
    std::optional<std::string> p;
    if (clean_committed) p = table_.path(ino);
    if (p) {
      xet::Hash h;
      h.bytes = cur->content.id;
      stats_.batches.fetch_add(1, std::memory_order_relaxed);
      std::vector<CommitOp> ops(1);
      ops[0].path = *p;
      ops[0].hash = h;
      ops[0].mtime_ms = *in.mtime_ns / 1000000;
      HF_CO_TRY(co_await remote_.commit(std::move(ops), cancel));
    }
  }
  auto after = table_.get(ino);
  if (!after) co_return Error(Errc::not_found, "no such inode");
  co_return after->attr;
}

// ------------------------------------------------------------------------------------ data

Result<size_t> Vfs::write(uint64_t fh, uint64_t off, std::span<const uint8_t> data) {
  std::shared_ptr<WriteState> ws;
  uint64_t ino;
  {
    std::lock_guard lk(mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) return Error(Errc::bad_handle, "unknown file handle");
    if (!it->second->writable) return Error(Errc::bad_handle, "file not open for writing");
    ino = it->second->ino;
    auto w = writes_.find(ino);
    if (w == writes_.end()) return Error(Errc::bad_handle, "file has no write state");
    ws = w->second;
  }
  HF_TRY(ws->staged->write(off, data));
  table_.set_written(ino, ws->staged->size(), now_unix_ns(), ws->staged->content());
  stats_.bytes_written.fetch_add(data.size(), std::memory_order_relaxed);
  return data.size();
}

Task<Result<ReadData>> Vfs::read_staged(std::shared_ptr<WriteState> ws, uint64_t off, uint64_t len, CancelPtr cancel) {
  auto pieces = ws->staged->plan(off, len);
  ReadData out;
  if (pieces.empty()) co_return out;
  uint64_t total = pieces.back().end - off;
  auto buf = std::make_shared<std::vector<uint8_t>>(total);
  for (auto& p : pieces) {
    std::span<uint8_t> dst(buf->data() + (p.start - off), p.end - p.start);
    if (p.inside) {
      HF_CO_TRY(ws->staged->pread(p.start, dst));
      continue;
    }
    if (!ws->base) co_return Error(Errc::internal, "unstaged range without a base");
    auto r = co_await ws->base->read(p.start, p.end - p.start, nullptr, cancel);
    if (!r.ok()) co_return std::move(r).error();
    size_t pos = 0;
    for (auto& s : r->slices) {
      std::memcpy(dst.data() + pos, s.data->data() + s.offset, s.length);
      pos += s.length;
    }
    if (pos != dst.size()) co_return Error(Errc::io, "base content shorter than expected");
  }
  out.bytes = total;
  out.slices.push_back(ReadSlice{buf, 0, static_cast<uint32_t>(total)});
  co_return out;
}

Task<Status> Vfs::flush(uint64_t fh, CancelPtr cancel) {
  uint64_t ino;
  {
    std::lock_guard lk(mu_);
    auto it = files_.find(fh);
    if (it == files_.end() || !it->second->writable) co_return Status{};
    ino = it->second->ino;
  }
  co_return co_await make_durable(ino, cancel);
}

Task<Status> Vfs::make_durable(uint64_t ino, CancelPtr cancel) {
  if (cfg_.async_writeback) {
    auto ns = co_await ns_mu_.lock();  // its journal entry is keyed by the path (see ns_mu_)
    co_return persist_locally(ino);
  }
  Status st = co_await commit_ino(ino, cancel);
  if (!st.ok() && retryable_commit(st.code())) {
    // close/fsync report the failure (the write is not acknowledged), but the bytes are not
    // dropped either: journaled and retried in the background, as with writeback=async.
    // Without this only a later fsync, close or the unmount tried again.
    auto ns = co_await ns_mu_.lock();
    if (Status kept = persist_locally(ino); !kept.ok())
      HF_LOG_WARN("write", "keeping inode {} for a background retry failed: {}", ino, kept.error().describe());
  }
  co_return st;
}

Status Vfs::persist_locally(uint64_t ino) {
  auto ws = write_state(ino);
  if (!ws || ws->staged->generation() == ws->committed_gen) return {};
  auto path = table_.path(ino);
  if (!path) return {};  // unlinked: nothing to keep
  // Durable here before acknowledging: staged bytes fsynced, then the journal (sync=true).
  HF_TRY(ws->staged->sync());
  HF_TRY(journal(ino, *path, *ws));
  commit_in_background(ino);
  return {};
}

Task<Status> Vfs::fsync(uint64_t fh, CancelPtr cancel) {
  uint64_t ino;
  {
    std::lock_guard lk(mu_);
    auto it = files_.find(fh);
    if (it == files_.end()) co_return Error(Errc::bad_handle, "unknown file handle");
    ino = it->second->ino;
  }
  co_return co_await make_durable(ino, cancel);
}

Task<Status> Vfs::flush_ino_if_dirty(uint64_t ino, CancelPtr cancel) { co_return co_await commit_ino(ino, cancel); }

Task<Status> Vfs::flush_all() {
  std::vector<uint64_t> inos;
  std::vector<GroupMember> small;
  {
    std::lock_guard lk(mu_);
    for (auto& [ino, ws] : writes_) inos.push_back(ino);
    // Small dirty files first, in groups (an unmount right after cp -r must not send a batch
    // per file); whatever fails, is large or is being committed goes one by one below.
    for (uint64_t ino : inos) {
      auto it = writes_.find(ino);
      if (it->second->staged->size() >= kGroupFileLimit) continue;
      bool in_flight = false;
      if (auto m = claim_locked(ino, in_flight)) small.push_back(std::move(*m));
    }
  }
  for (size_t at = 0; at < small.size(); at += cfg_.group_max_files) {
    std::vector<GroupMember> group(std::make_move_iterator(small.begin() + static_cast<long>(at)),
                                   std::make_move_iterator(small.begin() + static_cast<long>(std::min(small.size(), at + cfg_.group_max_files))));
    (void)co_await commit_claimed(group);
  }
  Status first;
  for (uint64_t ino : inos) {
    Status s = co_await commit_ino(ino, nullptr);
    if (!s.ok() && first.ok()) first = s;
  }
  co_return first;
}

Task<Status> Vfs::commit_ino(uint64_t ino, CancelPtr cancel) {
  (void)cancel;  // a commit, once started, completes: interrupting close() must not lose data
  for (;;) {
    std::shared_ptr<WriteState> ws;
    SharedResultPtr<Status> flight, mine;
    {
      std::lock_guard lk(mu_);
      auto it = writes_.find(ino);
      if (it == writes_.end()) co_return Status{};
      ws = it->second;
      if (ws->flight) {
        flight = ws->flight;
      } else {
        if (ws->staged->generation() == ws->committed_gen) co_return Status{};
        mine = ws->flight = SharedResult<Status>::create();
      }
    }
    if (flight) {
      (void)co_await flight->wait();  // someone else's commit; then re-check what is left
      continue;
    }
    Status st;
    for (int attempt = 1;; ++attempt) {
      st = co_await commit_once(ino, ws);
      if (st.ok() || attempt >= cfg_.commit_attempts || !retryable_commit(st.code())) break;
      stats_.commit_retries.fetch_add(1, std::memory_order_relaxed);
      HF_LOG_WARN("write", "commit of inode {} failed ({}), retrying", ino, st.error().describe());
      co_await sleep_for(std::chrono::milliseconds(cfg_.commit_retry_base_ms << (attempt - 1)), life_);
    }
    if (!st.ok()) {
      stats_.commit_failures.fetch_add(1, std::memory_order_relaxed);
      HF_LOG_ERROR("write", "commit of {} failed: {} (the data stays staged)", table_.path(ino).value_or("?"),
                   st.error().describe());
    }
    {
      std::lock_guard lk(mu_);
      ws->flight.reset();
    }
    mine->set(st);
    co_return st;
  }
}

Task<Status> Vfs::commit_once(uint64_t ino, std::shared_ptr<WriteState> ws) {
  std::vector<GroupMember> one(1);
  one[0].ino = ino;
  one[0].ws = std::move(ws);
  co_return co_await commit_group(one);
}

bool Vfs::nothing_to_send(const std::optional<std::string>& path) const {
  if (!path) return true;
  std::string name = path->substr(path->rfind('/') == std::string::npos ? 0 : path->rfind('/') + 1);
  return cfg_.filter_os_junk && is_os_junk(name);
}

std::pair<xet::ReadFn, xet::KnownAt> Vfs::upload_source(const WriteState& ws, uint64_t size) {
  uint64_t base_limit = ws.staged->base_limit();
  auto staged = ws.staged;
  auto base = ws.base;
  net::any_io_executor io = ex_;
  // Content reader for the uploader (runs on the cpu executor): staged bytes from the staging
  // file, the rest from the base content (cache or network, waited for here, off the io
  // threads).
  auto pos = std::make_shared<uint64_t>(0);
  xet::ReadFn read = [staged, base, size, pos, io](std::span<uint8_t> buf) -> Result<size_t> {
    uint64_t n = std::min<uint64_t>(buf.size(), size - *pos);
    if (n == 0) return size_t{0};
    for (auto& p : staged->plan(*pos, n)) {
      std::span<uint8_t> dst(buf.data() + (p.start - *pos), p.end - p.start);
      if (p.inside) {
        HF_TRY(staged->pread(p.start, dst));
        continue;
      }
      if (!base) return Error(Errc::internal, "unstaged range without a base");
      ReadData d;
      if (!base->try_read_local(p.start, dst.size(), d)) {
        std::promise<Result<ReadData>> prom;
        auto fut = prom.get_future();
        net::co_spawn(
            io,
            [&prom, base, start = p.start, len = dst.size()]() -> Task<void> {
              prom.set_value(co_await base->read(start, len, nullptr, nullptr));
            },
            net::detached);
        auto r = fut.get();
        if (!r.ok()) return std::move(r).error();
        d = std::move(*r);
      }
      size_t at = 0;
      for (auto& s : d.slices) {
        std::memcpy(dst.data() + at, s.data->data() + s.offset, s.length);
        at += s.length;
      }
      if (at != dst.size()) return Error(Errc::io, "base content shorter than expected");
    }
    *pos += n;
    return static_cast<size_t>(n);
  };
  // Unchanged chunks of the base content are referenced, not uploaded again.
  xet::KnownAt known;
  if (base) {
    known = [staged, base, base_limit](uint64_t off, uint32_t len) -> std::optional<xet::ChunkLocation> {
      if (off + len > base_limit || staged->touches_staged(off, len)) return std::nullopt;
      auto c = base->chunk_at(off);
      if (!c || c->len != len) return std::nullopt;
      xet::Hash x;
      x.bytes = c->xorb;
      return xet::ChunkLocation{x, c->index};
    };
  }
  return {std::move(read), std::move(known)};
}

Task<Status> Vfs::commit_group(std::vector<GroupMember>& members) {
  xet::UploadSink* sink = remote_.upload_sink();
  if (!sink) co_return Error(Errc::read_only, "this source cannot be written");
  // A member whose node has nothing to send (see nothing_to_send) is done at its generation.
  auto done_without_upload = [&](GroupMember& m) {
    std::lock_guard lk(mu_);
    m.ws->committed_gen = m.gen;
    m.skip = true;
  };
  // The member's path, or nullopt once its node is gone: its write state is no longer the
  // node's (forgotten after an unlink; the number, derived from the path, may already belong to
  // a new file of the same name, which must not receive these bytes).
  auto path_of = [&](const GroupMember& m) -> std::optional<std::string> {
    {
      std::lock_guard lk(mu_);
      auto it = writes_.find(m.ino);
      if (it == writes_.end() || it->second != m.ws) return std::nullopt;
    }
    return table_.path(m.ino);
  };
  // Paths are resolved, and used, only under ns_mu_ (see there); a rename or unlink may run
  // while the content uploads, so they are resolved again for the batch.
  {
    auto ns = co_await ns_mu_.lock();
    // Journal first: if the process dies during the upload, the next mount resumes it. One
    // synced write for the whole group (a sync per file made a burst of small files wait on
    // the disk, not the network).
    std::vector<MetaStore::PendingFile> entries;
    for (auto& m : members) {
      m.gen = m.ws->staged->generation();
      auto path = path_of(m);
      if (nothing_to_send(path)) {
        done_without_upload(m);
        continue;
      }
      if (meta_) entries.push_back(journal_entry(m.ino, *path, *m.ws));
    }
    if (!entries.empty()) {
      if (Status js = meta_->put_pending(entries); js.ok()) {
        for (auto& m : members) {
          if (!m.skip) m.ws->set_journaled(true);
        }
      } else {
        HF_LOG_DEBUG("write", "journal unavailable for a group of {} files: {}", entries.size(), js.error().describe());
      }
    }
  }
  // One upload session for the group: small files share xorbs and one shard.
  CachingUploadSink caching_sink(*sink, cache_, cpu_);
  xet::UploadSession session(caching_sink, ex_, cpu_, cfg_.upload);
  for (auto& m : members) {
    if (m.skip) continue;
    m.size = m.ws->staged->size();
    auto [read, known] = upload_source(*m.ws, m.size);
    auto up = co_await session.add_file(std::move(read), std::move(known));
    if (!up.ok()) {
      co_await session.settle();
      co_return std::move(up).error();
    }
    m.up = *up;
  }
  if (Status st = co_await session.finish(); !st.ok()) {
    co_await session.settle();
    co_return st;
  }
  // From the paths' resolution to the nodes' new content: atomic with respect to rename and
  // unlink (a rename reads the content it moves; the journal is keyed by path).
  auto ns = co_await ns_mu_.lock();
  std::vector<CommitOp> ops;
  for (auto& m : members) {
    if (m.skip) continue;
    m.path = path_of(m);
    if (nothing_to_send(m.path)) {
      done_without_upload(m);
      continue;
    }
    auto n = table_.get(m.ino);
    m.mtime_ns = n ? n->attr.mtime_ns : now_unix_ns();
    CommitOp op;
    op.path = *m.path;
    op.hash = m.up.file_hash;
    op.mtime_ms = m.mtime_ns / 1000000;
    ops.push_back(std::move(op));
  }
  if (ops.empty()) co_return Status{};
  stats_.batches.fetch_add(1, std::memory_order_relaxed);
  HF_CO_TRY(co_await remote_.commit(std::move(ops), nullptr));
  stats_.uploaded_bytes.fetch_add(session.stats().xorb_bytes, std::memory_order_relaxed);

  std::vector<std::string> settled;  // journal entries of members now clean: dropped in one write
  for (auto& m : members) {
    if (m.skip) continue;
    auto& ws = m.ws;
    stats_.commits.fetch_add(1, std::memory_order_relaxed);
    stats_.dedup_bytes.fetch_add(m.up.dedup_bytes, std::memory_order_relaxed);
    Content c;
    c.source = Content::Source::xet;
    c.id = m.up.file_hash.bytes;
    bool clean;
    {
      std::lock_guard lk(mu_);
      ws->committed_gen = m.gen;
      ws->ever_committed = true;
      clean = ws->staged->generation() == m.gen;
      // Writes that landed during the upload are not in this commit: the file stays dirty and
      // its size (and mtime) are the staged ones, never the snapshot's (getattr would show a
      // shrunk file until the next write). The staged file is authoritative while it exists.
      table_.set_content(m.ino, c, ws->staged->size(), clean ? m.mtime_ns : 0);
      if (clean) table_.set_local(m.ino, false);
      kernel_content_[m.ino] = c.id;  // the kernel's pages already hold these bytes
    }
    m.clean = clean;
    if (clean && ws->journaled && meta_) settled.push_back(*m.path);
  }
  const bool journal_cleared = settled.empty() || meta_->delete_pending(settled).ok();
  for (auto& m : members) {
    if (m.skip) continue;
    auto& ws = m.ws;
    const bool clean = m.clean;
    if (clean && ws->journaled && journal_cleared) ws->set_journaled(false);
    if (clean) {
      // Nobody has the file open any more (e.g. a resumed upload): drop the staged copy now,
      // reads go to the committed content.
      std::lock_guard lk(mu_);
      bool open = false;
      for (auto& [fh, h] : files_) open |= h->ino == m.ino;
      auto it = writes_.find(m.ino);
      if (!open && it != writes_.end() && it->second == ws && ws->writers == 0 && !ws->journaled &&
          ws->staged->generation() == ws->committed_gen && !staged_only_locked(m.ino)) {
        writes_.erase(it);
      }
    }
    HF_LOG_DEBUG("write", "committed {} ({} bytes, {} new, {} deduplicated)", *m.path, m.size, m.up.new_bytes,
                 m.up.dedup_bytes);
  }
  co_return Status{};
}


MetaStore::PendingFile Vfs::journal_entry(uint64_t ino, const std::string& path, const WriteState& ws) {
  MetaStore::PendingFile p;
  p.path = path;
  p.staging_path = ws.staged->path();
  p.base = ws.staged->base();
  p.base_size = ws.staged->base_size();
  p.base_limit = ws.staged->base_limit();
  p.size = ws.staged->size();
  auto n = table_.get(ino);
  p.mtime_ns = n ? n->attr.mtime_ns : now_unix_ns();
  RangeSet present = ws.staged->present();  // (keep the copy alive for the loop)
  for (auto& [a, b] : present.ranges()) p.present.emplace_back(a, b);
  return p;
}

Status Vfs::journal(uint64_t ino, const std::string& path, WriteState& ws) {
  if (!meta_) return {};
  HF_TRY(meta_->put_pending(journal_entry(ino, path, ws)));
  ws.set_journaled(true);
  return {};
}

void Vfs::commit_in_background(uint64_t ino) {
  {
    std::lock_guard lk(mu_);
    auto it = writes_.find(ino);
    if (it == writes_.end()) return;
    if (it->second->staged->size() < kGroupFileLimit && !it->second->background) {
      // Small: joins the next group commit (cp -r, tar -x: one upload session and one batch
      // for many files instead of one each).
      group_queue_.insert(ino);
      if (std::exchange(group_flusher_running_, true)) return;
      net::co_spawn(ex_, group_flusher(life_), net::detached);
      return;
    }
  }
  // Large (the upload dominates, there is nothing to share), or already retrying alone.
  commit_alone_in_background(ino);
}

void Vfs::commit_alone_in_background(uint64_t ino) {
  {
    std::lock_guard lk(mu_);
    auto it = writes_.find(ino);
    if (it == writes_.end() || it->second->background) return;
    it->second->background = true;
  }
  auto life = life_;
  net::co_spawn(
      ex_,
      [this, ino, life]() -> Task<void> {
        int delay_ms = 1000;
        for (;;) {
          Status st = co_await commit_ino(ino, nullptr);
          if (life->cancelled()) co_return;
          if (st.ok()) break;
          // Never give up on acknowledged data: back off to at most 5 minutes and keep going.
          HF_LOG_WARN("write", "background upload of inode {} failed ({}); next try in {} s", ino,
                      st.error().describe(), delay_ms / 1000);
          co_await sleep_for(std::chrono::milliseconds(delay_ms), life);
          if (life->cancelled()) co_return;
          delay_ms = std::min(delay_ms * 2, 300000);
        }
        std::lock_guard lk(mu_);
        if (auto it = writes_.find(ino); it != writes_.end()) it->second->background = false;
      },
      net::detached);
}

std::optional<Vfs::GroupMember> Vfs::claim_locked(uint64_t ino, bool& in_flight) {
  in_flight = false;
  auto it = writes_.find(ino);
  if (it == writes_.end()) return std::nullopt;
  auto& ws = it->second;
  if (ws->flight) {
    in_flight = true;
    return std::nullopt;
  }
  if (ws->staged->generation() == ws->committed_gen) return std::nullopt;
  ws->flight = SharedResult<Status>::create();
  GroupMember m;
  m.ino = ino;
  m.ws = ws;
  return m;
}

Task<Status> Vfs::commit_claimed(std::vector<GroupMember>& group) {
  Status st = co_await commit_group(group);
  for (auto& m : group) {
    SharedResultPtr<Status> flight;
    {
      std::lock_guard lk(mu_);
      flight = std::move(m.ws->flight);
      m.ws->flight.reset();
    }
    flight->set(st);
  }
  co_return st;
}

Task<void> Vfs::group_flusher(CancelPtr life) {
  // After a failed group, its halves are tried as groups of their own (with backoff), down to
  // single files that retry alone: one file the bucket refuses for good (a batch line failing)
  // costs about log2(group) extra batches and never holds back the others.
  std::deque<std::vector<uint64_t>> halves;
  int delay_ms = 1000;
  for (;;) {
    std::vector<uint64_t> candidates;
    if (!halves.empty()) {
      candidates = std::move(halves.front());
      halves.pop_front();
    } else {
      // Let a burst of closes gather (debounced: while files keep arriving, up to
      // group_max_wait_ms or a full group); a group in flight gathers the next one meanwhile.
      size_t seen = SIZE_MAX;
      for (int waited = 0; waited < cfg_.group_max_wait_ms; waited += cfg_.group_gather_ms) {
        size_t now;
        {
          std::lock_guard lk(mu_);
          now = group_queue_.size();
        }
        if (now == seen || now >= cfg_.group_max_files) break;
        seen = now;
        co_await sleep_for(std::chrono::milliseconds(cfg_.group_gather_ms), life);
        if (life->cancelled()) co_return;
      }
    }
    if (life->cancelled()) co_return;
    std::vector<GroupMember> group;
    {
      std::lock_guard lk(mu_);
      std::vector<uint64_t> busy;
      uint64_t bytes = 0;
      auto claim = [&](uint64_t ino) {
        bool in_flight = false;
        if (auto m = claim_locked(ino, in_flight)) {
          bytes += m->ws->staged->size();
          group.push_back(std::move(*m));
        } else if (in_flight) {
          busy.push_back(ino);  // another commit of it runs (unmount, link): look again next round
        }
      };
      if (!candidates.empty()) {
        for (uint64_t ino : candidates) claim(ino);
      } else {
        while (!group_queue_.empty() && group.size() < cfg_.group_max_files && bytes < kGroupBytesLimit) {
          uint64_t ino = *group_queue_.begin();
          group_queue_.erase(group_queue_.begin());
          claim(ino);
        }
      }
      group_queue_.insert(busy.begin(), busy.end());
      if (group.empty() && group_queue_.empty() && halves.empty()) {
        group_flusher_running_ = false;
        co_return;
      }
    }
    if (group.empty()) continue;
    Status st = co_await commit_claimed(group);
    if (life->cancelled()) co_return;
    if (st.ok()) {
      delay_ms = 1000;
      continue;
    }
    if (group.size() == 1) {
      commit_alone_in_background(group[0].ino);  // its own retries and backoff from here
      continue;
    }
    HF_LOG_WARN("write", "background upload of {} files failed ({}); next try in {} s, in halves", group.size(),
                st.error().describe(), delay_ms / 1000);
    size_t mid = group.size() / 2;
    std::vector<uint64_t> a, b;
    for (size_t i = 0; i < group.size(); ++i) (i < mid ? a : b).push_back(group[i].ino);
    halves.push_front(std::move(b));
    halves.push_front(std::move(a));
    // Never give up on acknowledged data: back off to at most 5 minutes and keep going.
    co_await sleep_for(std::chrono::milliseconds(delay_ms), life);
    delay_ms = std::min(delay_ms * 2, 300000);
  }
}

size_t Vfs::dirty_files() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto& [ino, ws] : writes_) n += ws->staged->generation() != ws->committed_gen;
  return n;
}

Task<Status> Vfs::replay_ops(MetaStore::PendingOps ops) {
  std::vector<CommitOp> lines;
  for (auto& [kind, path, hash, mtime] : ops.lines) {
    CommitOp op;
    op.kind = kind == 0 ? CommitOp::Kind::add : CommitOp::Kind::del;
    op.path = path;
    if (op.kind == CommitOp::Kind::add) {
      auto h = xet::Hash::from_hex(hash);
      if (!h.ok()) continue;
      op.hash = *h;
      op.mtime_ms = mtime;
    }
    lines.push_back(std::move(op));
  }
  if (!lines.empty()) HF_CO_TRY(co_await remote_.commit(std::move(lines), nullptr));
  co_return meta_->delete_ops(ops.id);
}

Task<Status> Vfs::recover_journal() {
  if (!meta_ || cfg_.read_only) co_return Status{};
  // Interrupted namespace changes first: they describe the remote state files rely on.
  for (auto& ops : meta_->list_ops()) {
    Status st = co_await replay_ops(ops);
    if (!st.ok()) HF_LOG_WARN("journal", "replaying an interrupted rename failed: {}", st.error().describe());
  }
  auto pending = meta_->list_pending();
  if (!pending.empty()) HF_LOG_INFO("journal", "resuming {} file(s) with uncommitted changes", pending.size());
  for (auto& p : pending) {
    RangeSet present;
    for (auto& [a, b] : p.present) present.add(a, b);
    auto staged = StagedFile::reopen(p.staging_path, p.base, p.base_size, p.base_limit, p.size, std::move(present));
    if (!staged.ok()) {
      HF_LOG_ERROR("journal", "cannot resume '{}': {}", p.path, staged.error().describe());
      continue;
    }
    (*staged)->keep_on_disk(true);
    // Walk/create the parent directories (local ones if the bucket no longer has them).
    uint64_t dir = kRootIno;
    std::string rest = p.path;
    bool ok = true;
    for (size_t slash; (slash = rest.find('/')) != std::string::npos;) {
      std::string name = rest.substr(0, slash);
      rest = rest.substr(slash + 1);
      Status ls = co_await ensure_listed(dir, nullptr);
      if (!ls.ok()) {
        ok = false;
        break;
      }
      auto r = table_.lookup(dir, name);
      if (r.state != InodeTable::ChildState::found) {
        InodeTable::NewNode nn;
        nn.kind = NodeKind::dir;
        nn.mtime_ns = p.mtime_ns;
        auto c = table_.create(dir, name, nn, true);
        if (!c.ok()) {
          ok = false;
          break;
        }
        dir = c->attr.ino;
      } else {
        dir = r.info.attr.ino;
      }
    }
    if (ok) ok = (co_await ensure_listed(dir, nullptr)).ok();
    if (!ok) {
      HF_LOG_ERROR("journal", "cannot resume '{}': its directory cannot be listed", p.path);
      continue;
    }
    // Local changes win over whatever the bucket holds now (documented conflict rule).
    uint64_t ino;
    auto r = table_.lookup(dir, rest);
    if (r.state == InodeTable::ChildState::found && r.info.attr.kind == NodeKind::file) {
      ino = r.info.attr.ino;
    } else {
      if (r.state == InodeTable::ChildState::found) (void)table_.remove(dir, rest);
      InodeTable::NewNode nn;
      nn.kind = NodeKind::file;
      nn.content = p.base;
      nn.size = p.base_size;
      nn.mtime_ns = p.mtime_ns;
      auto c = table_.create(dir, rest, nn, true);
      if (!c.ok()) {
        HF_LOG_ERROR("journal", "cannot resume '{}': {}", p.path, c.error().describe());
        continue;
      }
      ino = c->attr.ino;
    }
    {
      std::lock_guard lk(mu_);
      auto ws = std::make_shared<WriteState>();
      ws->staged = std::move(*staged);
      ws->committed_gen = UINT64_MAX;  // dirty until committed
      ws->set_journaled(true);
      ws->ever_committed = p.base.source == Content::Source::xet;
      auto n = table_.get(ino);
      if (n && p.base.source != Content::Source::empty && p.base_size > 0) {
        NodeInfo base_info = *n;
        base_info.content = p.base;
        base_info.attr.size = p.base_size;
        ws->base = reader_locked(base_info);
      }
      writes_[ino] = ws;
    }
    table_.set_size(ino, p.size, p.mtime_ns);
    table_.set_local(ino, true);
    commit_in_background(ino);
  }
  co_return Status{};
}

}  // namespace hf::fs
