#include "fs/mount.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>

#include "base/log.h"
#include "fs/chunk_cache.h"
#include "fs/fuse/ops.h"
#include "fs/hub_remote.h"
#include "fs/vfs.h"
#include "net/http/client.h"
#include "net/hub/hub_client.h"
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

Status Mount::boot(const MountConfig& cfg) {
  cfg_ = cfg;
  info_.source = cfg.source.canonical();
  info_.revision = cfg.revision;
  info_.endpoint = cfg.endpoint;
  if (info_.endpoint.empty()) {
    const char* e = std::getenv("HF_ENDPOINT");
    info_.endpoint = e && *e ? e : "https://huggingface.co";
    while (!info_.endpoint.empty() && info_.endpoint.back() == '/') info_.endpoint.pop_back();
  }

  // io threads: two are enough on the machines this targets; FUSE threads never wait on them.
  io_ = std::make_unique<net::io_context>(2);
  work_ = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(io_->get_executor());
  for (int i = 0; i < 2; ++i) io_threads_.emplace_back([this] { io_->run(); });

  http::ClientOptions ho;
  if (!cfg.ca_bundle.empty()) ho.extra_ca_file = cfg.ca_bundle;
  ho.insecure_skip_verify = cfg.insecure_tls;
  http_ = std::make_unique<http::Client>(*io_, ho);

  tokens_ = std::make_shared<hub::TokenProvider>(hub::TokenProviderOptions{cfg.token, cfg.token_file});
  hub::HubOptions hubo;
  hubo.endpoint = info_.endpoint;
  hubo.tokens = tokens_;
  hub_ = std::make_unique<hub::HubClient>(*http_, hubo);

  hub::RepoRef repo{repo_type(cfg.source.kind), cfg.source.repo_id};
  if (cfg.source.kind == SourceKind::bucket) {
    return Error(Errc::unsupported, "bucket mounts are not implemented yet");
  }
  auto ri = run_sync(*io_, hub_->repo_info(repo, cfg.revision));
  if (!ri.ok()) return std::move(ri).error();
  info_.commit = ri->sha;
  info_.repo_id = ri->id.empty() ? cfg.source.repo_id : ri->id;
  info_.pinned = is_commit_sha(cfg.revision) && cfg.revision == ri->sha;
  if (info_.commit.empty()) return Error(Errc::protocol, "the Hub did not report a commit for this revision");
  if (info_.repo_id != cfg.source.repo_id) {
    HF_LOG_INFO("mount", "resolved repo alias {} -> {}", cfg.source.repo_id, info_.repo_id);
  }
  repo.id = info_.repo_id;

  cas_tokens_ = std::make_shared<xet::HubTokenSource>(*hub_, repo, info_.commit, false);
  cas_ = std::make_unique<xet::CasClient>(*http_, cas_tokens_, xet::CasOptions{});

  std::unique_ptr<cache::DiskChunkStore> disk;
  info_.cache_dir = cfg.cache_dir.empty() ? default_cache_dir() : cfg.cache_dir;
  if (cfg.cache_size > 0) {
    HF_TRY(prepare_private_dir(info_.cache_dir));
    cache::DiskChunkStoreOptions dso;
    dso.dir = info_.cache_dir;
    dso.max_bytes = cfg.cache_size;
    auto ds = cache::DiskChunkStore::open(dso);
    if (!ds.ok()) return Error(Errc::io, "cache: " + ds.error().message);
    disk = std::move(*ds);
  }
  cache_ = std::make_unique<ChunkCache>(cfg.memory_cache, std::move(disk));

  remote_ = std::make_unique<HubRemote>(*hub_, *cas_, repo, cfg.source.subfolder, info_.commit);

  VfsConfig vc;
  vc.source = info_.source;
  vc.read_only = cfg.read_only;
  vc.pinned = info_.pinned;
  double ttl = info_.pinned ? 365.0 * 86400 : cfg.metadata_ttl;
  vc.entry_timeout = vc.attr_timeout = vc.negative_timeout = ttl;
  vc.table.uid = cfg.uid.value_or(getuid());
  vc.table.gid = cfg.gid.value_or(getgid());
  vc.table.file_perm = 0444 & ~cfg.umask;
  vc.table.dir_perm = 0555 & ~cfg.umask;
  vc.table.default_mtime_ns = ri->last_modified_ns;
  vfs_ = std::make_unique<Vfs>(vc, *remote_, *cache_, io_->get_executor());

  // List the root now: a wrong subfolder or an unreadable repo fails the mount, not the
  // first `ls`, and the first `ls` is instant.
  Status listed = run_sync(*io_, vfs_->ensure_listed(kRootIno, nullptr));
  if (!listed.ok()) {
    if (listed.code() == Errc::entry_not_found && !cfg.source.subfolder.empty()) {
      return Error(Errc::entry_not_found, fmt::format("folder '{}' not found in {}@{}", cfg.source.subfolder,
                                                       info_.repo_id, cfg.revision));
    }
    return listed;
  }
  HF_LOG_INFO("mount", "{} at {} (commit {}{})", info_.source, cfg.revision, info_.commit,
              info_.pinned ? ", pinned" : "");
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
  return {};
}

int Mount::serve() { return session_ ? session_->loop() : 1; }

Mount::~Mount() {
  session_.reset();  // unmount first: no new requests
  fctx_.reset();
  if (work_) work_.reset();
  if (io_) io_->stop();
  for (auto& t : io_threads_) t.join();
  vfs_.reset();
  remote_.reset();
  cache_.reset();
  cas_.reset();
  cas_tokens_.reset();
  hub_.reset();
  tokens_.reset();
  http_.reset();
  io_.reset();
}

}  // namespace hf::fs
