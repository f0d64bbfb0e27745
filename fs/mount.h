// The composition root of one mount: builds every component in dependency order, owns them,
// and tears them down in reverse order.
//
//   io threads -> HTTP client -> Hub client (token provider) -> metadata store ->
//   revision resolution (offline: from the store) -> CAS client (CAS token source) ->
//   chunk cache (memory + disk) -> Remote -> Vfs (root listed) -> FUSE session (mounted,
//   invalidation thread) -> change poller -> serve loop
//
// Teardown: dirty files committed (bounded, in serve()) -> work in flight cancelled (Vfs,
// readers, HTTP) and FUSE requests replied (bounded) -> FUSE session (unmount) -> io threads
// drained and joined (bounded; stopped if still busy) -> Vfs -> Remote -> cache -> CAS -> Hub ->
// HTTP -> metadata store -> io context. Boot failures come back as Errors whose Errc selects
// the process exit code (cmd/exit_codes.h).
//
// Threads: create() starts the io threads, so a process that daemonizes must fork before it.
#pragma once

#include <utility>  // before asio

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/cancel.h"
#include "base/result.h"
#include "fs/control.h"
#include "fs/mount_config.h"

namespace hf::http {
class Client;
}
namespace hf::hub {
class HubClient;
struct TokenProvider;
}
namespace hf::xet {
class CasClient;
class TokenSource;
}

namespace hf::fs {

class ChunkCache;
class ControlServer;
class HubRemote;
class MetaStore;
class Vfs;
namespace fuse {
struct FuseContext;
class Session;
}  // namespace fuse

// What a running mount reports about itself (status, logs).
struct MountInfo {
  std::string source;       // canonical hf:// source
  std::string repo_id;      // canonical repo id (after alias resolution)
  std::string revision;     // as requested
  std::string commit;       // resolved commit sha
  bool pinned = false;
  bool offline = false;     // booted from the cache without reaching the Hub
  std::string endpoint;
  std::string cache_dir;
  int64_t started_at_ns = 0;
};

class Mount : public ControlHandler {
 public:
  static Result<std::unique_ptr<Mount>> create(const MountConfig& cfg);
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  // Mounts the kernel side: afterwards the mount point shows the filesystem (requests are
  // served once serve() runs).
  Status mount_kernel();
  // Serves requests until unmount or SIGINT/SIGTERM/SIGHUP. Returns 0 on a clean exit.
  int serve();

  const MountInfo& info() const { return info_; }
  Vfs& vfs() { return *vfs_; }

  // ControlHandler (called by the control server on the io executor).
  MountStatus status() override;
  Task<Status> warm(std::vector<std::string> paths, Progress progress) override;
  Task<Status> flush() override;

 private:
  Mount() = default;
  Status boot(const MountConfig& cfg);

  MountConfig cfg_;
  MountInfo info_;
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::mutex io_mu_;
  std::condition_variable io_cv_;
  int io_running_ = 0;                 // io threads still in run(); guarded by io_mu_
  CancelPtr stopping_ = make_cancel();  // cancelled first thing in the teardown
  std::unique_ptr<boost::asio::thread_pool> cpu_;  // chunking/hashing/compression of uploads
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<http::Client> http_;
  std::shared_ptr<hub::TokenProvider> tokens_;
  std::unique_ptr<hub::HubClient> hub_;
  std::shared_ptr<xet::TokenSource> cas_tokens_;
  std::unique_ptr<xet::CasClient> cas_;
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<HubRemote> remote_;
  std::unique_ptr<Vfs> vfs_;
  std::unique_ptr<fuse::FuseContext> fctx_;
  std::unique_ptr<fuse::Session> session_;
  std::unique_ptr<ControlServer> control_;
};

// Default cache directory: cache_dir= if given; root: /var/cache/hf-mount; otherwise
// ${XDG_CACHE_HOME:-<home>/.cache}/hf-mount with <home> from getpwuid() when $HOME is unset
// (mount helpers run with an empty environment).
std::string default_cache_dir();
// Creates `dir` (and parents) with mode 0700 and refuses directories owned by another user or
// writable by group/other.
Status prepare_private_dir(const std::string& dir);

}  // namespace hf::fs
