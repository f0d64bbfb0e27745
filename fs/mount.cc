#include "fs/mount.h"

#include <malloc.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>

#include "base/clock.h"
#include "base/log.h"
#include "base/sleep.h"
#include "base/text.h"
#include "base/sha256.h"
#include "fs/chunk_cache.h"
#include "fs/control_server.h"
#include "fs/fuse/ops.h"
#include "fs/hub_remote.h"
#include "fs/meta_store.h"
#include "fs/vfs.h"
#include "net/http/client.h"
#include "net/hub/client.h"
#include "net/xet/client/token_source.h"
#include "net/xet/client/cas_client.h"

namespace hf::fs {

namespace net = boost::asio;

namespace {

template <class T>
T run_sync(net::io_context& io, net::awaitable<T> task) {
  std::promise<T> p;
  auto f = p.get_future();
  net::co_spawn(
      io, [&p, t = std::move(task)]() mutable -> net::awaitable<void> { p.set_value(co_await std::move(t)); },
      net::detached);
  return f.get();
}

// Asks for a CAS token ahead of the first content read (see Mount::boot). A failure is only
// logged here; a read that arrived while this request was in flight shares its result (token
// requests are single-flight) and its segment retries a transient error like any other; later
// reads ask again. The frame holds the token source past hub_ only at teardown, when the io
// context is stopped and the frame is destroyed without running.
net::awaitable<void> prefetch_cas_token(std::shared_ptr<xet::TokenSource> tokens) {
  try {
    auto r = co_await tokens->get();
    if (!r.ok()) HF_LOG_DEBUG("mount", "CAS token prefetch failed (the first read asks again): {}", r.error().describe());
  } catch (const std::exception& e) {
    HF_LOG_DEBUG("mount", "CAS token prefetch failed: {}", e.what());
  }
}

hub::RepoType repo_type(SourceKind k) {
  switch (k) {
    case SourceKind::model: return hub::RepoType::model;
    case SourceKind::dataset: return hub::RepoType::dataset;
    case SourceKind::space: return hub::RepoType::space;
    case SourceKind::bucket: return hub::RepoType::bucket;
  }
  return hub::RepoType::model;
}

bool is_commit_sha(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// glibc keeps what is freed in its arenas (bursts of multi-MiB write and xorb buffers on
// several threads): a long-running mount's RSS then creeps up by the free pages in between,
// although the heap in use is flat. Handing them back now and then keeps the RSS at what is
// used; malloc_trim costs about a millisecond per 100 MiB of heap.
net::awaitable<void> release_free_heap_loop(std::chrono::seconds every, CancelPtr stop) {
  // Not `while (co_await ...)`: g++ 12 miscompiles a co_await in a loop condition (ud2).
  for (;;) {
    bool slept = co_await sleep_for(every, stop);
    if (!slept) co_return;
    ::malloc_trim(0);
  }
}

std::string home_dir() {
  if (const char* h = std::getenv("HOME"); h && *h) return h;
  if (struct passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "/";
}

}  // namespace

std::string default_cache_dir() {
  if (geteuid() == 0) return "/var/cache/hf-mount";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') return std::string(x) + "/hf-mount";
  return home_dir() + "/.cache/hf-mount";
}

Status prepare_private_dir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') return Error(Errc::invalid_argument, "cache directory must be an absolute path: " + dir);
  // mkdir -p, each new component 0700.
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(Errc::io, fmt::format("cannot create {}: {}", part, std::strerror(errno)));
    }
    if (pos == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(Errc::io, fmt::format("{} is not a directory", dir));
  }
  if (st.st_uid != geteuid()) {
    return Error(Errc::permission_denied, fmt::format("{} belongs to uid {}, not to us (uid {})", dir, st.st_uid, geteuid()));
  }
  if (st.st_mode & 077) {
    HF_LOG_WARN("mount", "{} was accessible to group/other (mode {:o}); restricting it to 0700", dir, st.st_mode & 0777);
    if (::chmod(dir.c_str(), 0700) != 0) return Error(Errc::io, fmt::format("cannot chmod {}: {}", dir, std::strerror(errno)));
  }
  return {};
}

Result<std::unique_ptr<Mount>> Mount::create(const MountConfig& cfg) {
  std::unique_ptr<Mount> m(new Mount());
  Status st = m->boot(cfg);
  if (!st.ok()) return std::move(st).error();
  return m;
}

namespace {

// Many cache files and RocksDB tables may be open at once: use the hard limit.
void raise_fd_limit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

bool hub_unreachable(Errc c) { return c == Errc::network || c == Errc::tls || c == Errc::timed_out || c == Errc::offline; }

}  // namespace

Status Mount::boot(const MountConfig& cfg) {
  cfg_ = cfg;
  raise_fd_limit();
  info_.started_at_ns = now_unix_ns();
  info_.source = cfg.source.canonical();
  info_.revision = cfg.revision;
  info_.endpoint = cfg.endpoint;
  if (info_.endpoint.empty()) {
    const char* e = std::getenv("HF_ENDPOINT");
    info_.endpoint = e && *e ? e : "https://huggingface.co";
    while (!info_.endpoint.empty() && info_.endpoint.back() == '/') info_.endpoint.pop_back();
  }
  bool bucket = cfg.source.kind == SourceKind::bucket;

  // io threads: two are enough on the machines this targets; FUSE threads never wait on them.
  io_ = std::make_unique<net::io_context>(2);
  work_ = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(io_->get_executor());
  io_running_ = 2;
  for (int i = 0; i < 2; ++i) {
    io_threads_.emplace_back([this] {
      io_->run();
      std::lock_guard lk(io_mu_);
      --io_running_;
      io_cv_.notify_all();
    });
  }
  cpu_ = std::make_unique<net::thread_pool>(1);

  http::ClientOptions ho;
  if (!cfg.ca_bundle.empty()) ho.extra_ca_file = cfg.ca_bundle;
  ho.insecure_skip_verify = cfg.insecure_tls;
  http_ = std::make_unique<http::Client>(*io_, ho);

  hub::TokenProviderOptions to;
  to.token = cfg.token;
  to.token_file = cfg.token_file;
  tokens_ = std::make_shared<hub::TokenProvider>(to);
  if (auto t = tokens_->token(); !t.ok()) return std::move(t).error();
  hub::HubOptions hubo;
  hubo.endpoint = info_.endpoint;
  hubo.tokens = tokens_;
  hub_ = std::make_unique<hub::HubClient>(*http_, hubo);

  info_.cache_dir = cfg.cache_dir.empty() ? default_cache_dir() : cfg.cache_dir;
  HF_TRY(prepare_private_dir(info_.cache_dir));
  hub::RepoRef repo{repo_type(cfg.source.kind), cfg.source.repo_id};
  std::string scope = info_.endpoint + "\n" + std::string(source_kind_name(cfg.source.kind)) + "\n" + cfg.source.repo_id;
  if (auto m = MetaStore::open(info_.cache_dir, scope); m.ok()) {
    meta_ = std::move(*m);
  } else {
    HF_LOG_WARN("mount", "metadata store unavailable ({}); continuing without persistence", m.error().describe());
  }

  // Resolve what to serve: the commit of the revision (repos) or the bucket's change marker.
  // With the Hub unreachable, a revision resolved by an earlier mount is served from the cache.
  int64_t last_modified_ns = 0;
  Error resolve_error;
  bool resolved = false;
  bool resolved_online = false;  // this mount talked to the Hub (else: pinned or offline remount)
  // A commit sha resolved by an earlier mount cannot move: the remount needs no Hub request at
  // all (its listings are cached too). Access is still checked by the first content read, which
  // needs a CAS token.
  if (!bucket && is_commit_sha(cfg.revision) && meta_) {
    auto ref = meta_->get_ref(cfg.revision);
    if (ref && ref->commit == cfg.revision) {
      info_.commit = ref->commit;
      info_.repo_id = ref->repo_id.empty() ? cfg.source.repo_id : ref->repo_id;
      last_modified_ns = ref->last_modified_ns;
      resolved = true;
      info_.offline = cfg.offline;
      HF_LOG_INFO("mount", "{}@{}: pinned commit known from the cache, no Hub request", info_.source, cfg.revision);
    }
  }
  if (!cfg.offline && !resolved) {
    if (bucket) {
      auto bi = run_sync(*io_, hub_->bucket_info(repo));
      if (bi.ok()) {
        info_.commit = std::to_string(bi->updated_at_ns);
        info_.repo_id = bi->id.empty() ? cfg.source.repo_id : bi->id;
        last_modified_ns = bi->updated_at_ns;
        resolved = true;
      } else {
        resolve_error = std::move(bi).error();
      }
    } else {
      auto ri = run_sync(*io_, hub_->repo_info(repo, cfg.revision));
      if (ri.ok()) {
        info_.commit = ri->sha;
        info_.repo_id = ri->id.empty() ? cfg.source.repo_id : ri->id;
        last_modified_ns = ri->last_modified_ns;
        resolved = true;
      } else {
        resolve_error = std::move(ri).error();
      }
    }
    if (resolved && info_.commit.empty()) return Error(Errc::protocol, "the Hub did not report a commit for this revision");
    resolved_online = resolved;
    if (resolved && meta_) {
      (void)meta_->put_ref(cfg.revision, RefRecord{info_.commit, now_unix_ns(), last_modified_ns, info_.repo_id});
    }
  }
  if (!resolved) {
    if (!cfg.offline && !hub_unreachable(resolve_error.code)) return resolve_error;
    auto ref = meta_ ? meta_->get_ref(cfg.revision) : std::nullopt;
    if (!ref) {
      if (cfg.offline) return Error(Errc::offline, "offline and nothing cached for " + info_.source + "@" + cfg.revision);
      return resolve_error;
    }
    info_.offline = true;
    info_.commit = ref->commit;
    info_.repo_id = ref->repo_id.empty() ? cfg.source.repo_id : ref->repo_id;
    last_modified_ns = ref->last_modified_ns;
    HF_LOG_WARN("mount", "{}: serving cached commit {} (resolved {}); the Hub is unreachable ({})", info_.source,
                info_.commit, format_iso8601(ref->resolved_at_ns),
                cfg.offline ? std::string("offline mode") : resolve_error.message);
  }
  info_.pinned = !bucket && is_commit_sha(cfg.revision) && cfg.revision == info_.commit;
  if (info_.repo_id != cfg.source.repo_id) {
    HF_LOG_INFO("mount", "resolved repo alias {} -> {}", cfg.source.repo_id, info_.repo_id);
  }
  repo.id = info_.repo_id;

  bool writable = bucket && !cfg.read_only;
  // A write token can read too: read-write bucket mounts use one token for both. Repos ask for
  // the token at the revision the user mounted (branch, tag or sha), not at the commit it
  // resolved to at boot: the view follows a moving branch, and a commit that disappears later
  // (history rewritten, or an offline boot from an old cached commit) must not make every
  // token request fail until a remount. A CAS token grants the whole repository anyway.
  cas_tokens_ = std::make_shared<xet::HubTokenSource>(*hub_, repo, bucket ? std::string() : cfg.revision, writable);
  cas_ = std::make_unique<xet::CasClient>(*http_, cas_tokens_, xet::CasOptions{});

  std::unique_ptr<cache::DiskChunkStore> disk;
  if (cfg.cache_size > 0) {
    cache::DiskChunkStoreOptions dso;
    dso.dir = info_.cache_dir;
    dso.max_bytes = cfg.cache_size;
    auto ds = cache::DiskChunkStore::open(dso);
    if (!ds.ok()) return Error(Errc::io, "cache: " + ds.error().message);
    disk = std::move(*ds);
  }
  cache_ = std::make_unique<ChunkCache>(cfg.memory_cache, std::move(disk));

  remote_ = std::make_unique<HubRemote>(*hub_, *cas_, repo, cfg.source.subfolder, info_.commit,
                                        bucket ? std::string() : cfg.revision, writable);

  VfsConfig vc;
  vc.source = info_.source;
  vc.read_only = !writable;
  vc.pinned = info_.pinned;
  double ttl = info_.pinned ? 365.0 * 86400 : cfg.metadata_ttl;
  vc.entry_timeout = vc.attr_timeout = vc.negative_timeout = ttl;
  vc.table.uid = cfg.uid.value_or(getuid());
  vc.table.gid = cfg.gid.value_or(getgid());
  vc.table.file_perm = (writable ? 0644 : 0444) & ~cfg.umask;
  vc.table.dir_perm = (writable ? 0755 : 0555) & ~cfg.umask;
  vc.table.default_mtime_ns = last_modified_ns;
  if (cfg.cache_size == 0) {
    // No disk tier: prefetched chunks wait in the memory tier until they are read, so a
    // stream's window (and segment) must stay well below it, or prefetches evict each other
    // (a 128 MiB window over the default 128 MiB tier fetched a cold file 1.92 times).
    const uint64_t cap = std::max<uint64_t>(vc.reader.first_segment, cfg.memory_cache / 4);
    vc.reader.max_window = std::min(vc.reader.max_window, cap);
    vc.reader.initial_window = std::min(vc.reader.initial_window, cap);
    vc.reader.segment = std::min(vc.reader.segment, cap);
  }
  if (writable) {
    // One staging directory per bucket view, next to its journal.
    vc.staging_dir = info_.cache_dir + "/staging/" + sha256_hex(scope).substr(0, 16);
    HF_TRY(prepare_private_dir(vc.staging_dir));
    vc.async_writeback = cfg.async_writeback;
  }
  vfs_ = std::make_unique<Vfs>(vc, *remote_, *cache_, io_->get_executor(), meta_.get(), cpu_->get_executor());

  // List the root now: a wrong subfolder or an unreadable repo fails the mount, not the
  // first `ls`, and the first `ls` is instant.
  Status listed = run_sync(*io_, vfs_->ensure_listed(kRootIno, nullptr));
  if (!listed.ok()) {
    if (listed.code() == Errc::entry_not_found && !cfg.source.subfolder.empty() && !bucket) {
      return Error(Errc::entry_not_found, fmt::format("folder '{}' not found in {}@{}", cfg.source.subfolder,
                                                       info_.repo_id, cfg.revision));
    }
    return listed;
  }
  if (writable) {
    if (meta_ && meta_->read_only()) {
      HF_LOG_WARN("mount", "another mount of {} holds its write journal: uploads of this mount are not crash-safe",
                  info_.source);
    } else {
      Status rec = run_sync(*io_, vfs_->recover_journal());
      if (!rec.ok()) HF_LOG_WARN("mount", "resuming pending uploads failed: {}", rec.error().describe());
    }
  }
  // Every content read needs a CAS token: fetch it now, while the kernel mount is set up, so a
  // cold read pays its two CAS round trips (reconstruction, data) and not a third. Only for a
  // mount that talks to the Hub anyway: a pinned or offline remount makes no request at all.
  if (resolved_online) net::co_spawn(*io_, prefetch_cas_token(cas_tokens_), net::detached);
  HF_LOG_INFO("mount", "{} at {} (commit {}{}{})", info_.source, bucket ? "bucket" : cfg.revision, info_.commit,
              info_.pinned ? ", pinned" : "", info_.offline ? ", offline" : "");
  return {};
}

Status Mount::mount_kernel() {
  fctx_ = std::make_unique<fuse::FuseContext>();
  fctx_->vfs = vfs_.get();
  fctx_->ex = io_->get_executor();
  fuse::SessionOptions so;
  so.mountpoint = cfg_.mountpoint;
  so.mount_opts = fuse_mount_options(cfg_);
  so.max_threads = cfg_.max_threads;
  so.debug = cfg_.debug;
  so.read_ahead_kb = geteuid() == 0 ? cfg_.read_ahead_kb : 0;
  auto s = fuse::Session::mount(*fctx_, so);
  if (!s.ok()) return std::move(s).error();
  session_ = std::move(*s);
  vfs_->set_invalidator(session_->invalidator());
  // The control socket appears once the mount is usable; `hf-mount status/warm` talk to it.
  auto cs = ControlServer::start(io_->get_executor(), cfg_.mountpoint, geteuid(), *this);
  if (cs.ok()) {
    control_ = std::move(*cs);
  } else {
    HF_LOG_WARN("mount", "control socket unavailable ({}); `hf-mount status` will show less", cs.error().describe());
  }
  // Follow a moving branch or a bucket written by others; a pinned commit never changes.
  if (!info_.pinned && cfg_.poll_interval > 0) {
    net::co_spawn(io_->get_executor(), vfs_->poll_loop(std::chrono::seconds(cfg_.poll_interval)), net::detached);
  }
  net::co_spawn(io_->get_executor(), release_free_heap_loop(std::chrono::seconds(30), stopping_), net::detached);
  return {};
}

int Mount::serve() {
  if (!session_) return 1;
  int r = session_->loop();
  // Unmounted (or signalled): commit what is still dirty before tearing down, bounded so a
  // dead Hub cannot hold the process forever. What fails stays in the staging directory.
  if (!vfs_->config().read_only) {
    std::promise<Status> p;
    auto f = p.get_future();
    net::co_spawn(
        io_->get_executor(), [&p, this]() -> net::awaitable<void> { p.set_value(co_await vfs_->flush_all()); },
        net::detached);
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      HF_LOG_ERROR("mount", "gave up committing dirty files after 60 s; their data stays in {}/staging",
                   info_.cache_dir);
    } else if (Status st = f.get(); !st.ok()) {
      HF_LOG_ERROR("mount", "some files could not be committed at unmount: {}", st.error().describe());
    }
  }
  return r;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
extern "C" size_t __sanitizer_get_current_allocated_bytes();  // sanitizer/allocator_interface.h,
extern "C" size_t __sanitizer_get_free_bytes();               // which GCC does not install
#endif

namespace {

// The process's memory as `status` reports it (glibc's mallinfo2 walks every arena: fine for
// an occasional status request, not for a hot path).
void fill_process_memory(MountStatus& s) {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) s.rss_bytes = resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers replace malloc; glibc's arenas (mallinfo2) are then empty.
  s.heap_in_use_bytes = __sanitizer_get_current_allocated_bytes();
  s.heap_free_bytes = __sanitizer_get_free_bytes();
#else
  struct mallinfo2 mi = ::mallinfo2();
  s.heap_in_use_bytes = mi.uordblks + mi.hblkhd;
  s.heap_free_bytes = mi.fordblks;
#endif
}

}  // namespace

MountStatus Mount::status() {
  MountStatus s;
  fill_process_memory(s);
  if (meta_) s.db_memory_bytes = meta_->memory_bytes();
  s.source = info_.source;
  s.mountpoint = cfg_.mountpoint;
  s.revision = info_.revision;
  s.commit = vfs_ ? vfs_->revision() : info_.commit;
  s.endpoint = info_.endpoint;
  s.cache_dir = info_.cache_dir;
  s.read_only = vfs_ ? vfs_->config().read_only : true;
  s.pinned = info_.pinned;
  s.offline = info_.offline || (remote_ && remote_->offline());
  s.pid = ::getpid();
  s.started_at_ns = info_.started_at_ns;
  if (vfs_) {
    VfsStats& v = vfs_->stats();
    s.bytes_fetched = v.reader.bytes_fetched.load();
    s.bytes_served = v.read_bytes.load();
    s.read_errors = v.read_errors.load();
    s.dirty_files = vfs_->dirty_files();
    s.commits = v.commits.load();
    s.commit_failures = v.commit_failures.load();
    s.uploaded_bytes = v.uploaded_bytes.load();
  }
  if (cache_) {
    auto c = cache_->stats();
    s.cache_hits = c.mem_hits + c.disk_hits;
    s.cache_disk_hits = c.disk_hits;
    s.cache_misses = c.misses;
    s.cache_disk_bytes = c.disk_bytes;
    s.cache_memory_bytes = c.mem_bytes;
    s.cache_writes_dropped = c.runs_dropped;
  }
  if (http_) {
    auto h = http_->stats();
    s.http_requests = h.requests;
    s.http_retries = h.retries;
    s.http_errors = h.errors_total();
    s.http_in_flight = static_cast<uint64_t>(std::max<int64_t>(0, vfs_ ? vfs_->stats().reader.segments_in_flight.load() : 0));
  }
  return s;
}

Task<Status> Mount::warm(std::vector<std::string> paths, Progress progress) {
  // Resolve every path to files (directories recursively), then fetch them one by one.
  std::vector<std::pair<uint64_t, uint64_t>> files;  // ino, size
  for (auto& p : paths) {
    uint64_t ino = kRootIno;
    for (auto part : split(p, '/')) {
      if (part.empty() || part == ".") continue;
      auto e = co_await vfs_->lookup(ino, std::string(part), nullptr);
      if (!e.ok()) co_return std::move(e).error();
      if (e->attr.ino == 0) co_return Error(Errc::not_found, "no such file or directory: " + p);
      vfs_->forget(e->attr.ino, 1);  // not a kernel reference
      ino = e->attr.ino;
    }
    std::vector<uint64_t> dirs{ino};
    while (!dirs.empty()) {
      uint64_t d = dirs.back();
      dirs.pop_back();
      auto n = vfs_->table().get(d);
      if (!n) continue;
      if (n->attr.kind == NodeKind::file) {
        files.emplace_back(d, n->attr.size);
        continue;
      }
      if (n->attr.kind != NodeKind::dir) continue;
      HF_CO_TRY(co_await vfs_->ensure_listed(d, nullptr));
      if (auto snap = vfs_->table().snapshot(d)) {
        for (auto& e : snap->entries) dirs.push_back(e.attr.ino);
      }
    }
  }
  uint64_t total = 0, done = 0, files_done = 0;
  for (auto& f : files) total += f.second;
  if (progress) progress(0, total, 0, files.size());
  for (auto& [ino, size] : files) {
    auto reader = vfs_->reader_for_ino(ino);
    if (reader) {
      HF_CO_TRY(co_await reader->warm(
          [&](uint64_t n) {
            done += n;
            if (progress) progress(done, total, files_done, files.size());
          },
          nullptr));
    }
    ++files_done;
    if (progress) progress(done, total, files_done, files.size());
  }
  cache_->flush();
  co_return Status{};
}

Task<Status> Mount::flush() { co_return co_await vfs_->flush_all(); }

Mount::~Mount() {
  using namespace std::chrono_literals;
  control_.reset();
  // Cancel everything in flight and let it finish while the session and the io threads are
  // still there: each FUSE request still gets its reply, and coroutines waiting on one another
  // (single-flight fetches, a reader's segments) complete instead of being abandoned in a
  // cycle of shared_ptrs that nothing frees. Bounded: io_->stop() is the fallback.
  stopping_->cancel();
  if (vfs_) vfs_->shutdown();
  if (http_) http_->shutdown();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fctx_ && fctx_->unreplied.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  session_.reset();  // unmounts if still mounted (a signal ended the loop)
  fctx_.reset();
  if (work_) work_.reset();
  {
    std::unique_lock lk(io_mu_);
    if (!io_cv_.wait_until(lk, deadline + 5s, [this] { return io_running_ == 0; })) {
      HF_LOG_WARN("mount", "work still pending at exit after cancelling it; dropping it");
    }
  }
  if (io_) io_->stop();
  for (auto& t : io_threads_) t.join();
  if (cpu_) cpu_->join();
  vfs_.reset();
  remote_.reset();
  cache_.reset();
  cas_.reset();
  cas_tokens_.reset();
  hub_.reset();
  tokens_.reset();
  http_.reset();
  meta_.reset();
  io_.reset();
}

}  // namespace hf::fs
