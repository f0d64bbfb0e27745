// init/destroy, the operations table, and the session runner.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include "base/mountinfo.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

static void op_init(void* userdata, struct fuse_conn_info* conn) {
  auto* c = static_cast<FuseContext*>(userdata);
  // Metadata is served from memory: always return attributes with directory entries so
  // `ls -l`, `find` and `du` never need one LOOKUP per entry.
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  // Page cache stays valid across opens unless mtime/size change (FOPEN_KEEP_CACHE + this).
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  if (c->tuning.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  // No lock ops are implemented: the kernel then arbitrates flock/fcntl locks itself, which is
  // exactly "locks work within this mount".
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_background = c->tuning.max_background;
  conn->congestion_threshold = c->tuning.congestion_threshold;
  if (c->tuning.max_readahead < conn->max_readahead) conn->max_readahead = c->tuning.max_readahead;
  if (!c->read_ahead_path.empty() && c->read_ahead_kb) {
    std::string path = c->read_ahead_path;
    unsigned kb = c->read_ahead_kb;
    // The INIT reply is sent after this callback returns; give the kernel a moment to apply it.
    std::thread([path, kb] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      std::ofstream ra(path);
      if (ra << kb << "\n" && ra.flush()) {
        HF_LOG_DEBUG("fuse", "read_ahead_kb={} on {}", kb, path);
      } else {
        HF_LOG_DEBUG("fuse", "cannot set {} (not root?)", path);
      }
    }).detach();
  }
  HF_LOG_DEBUG("fuse", "init: proto {}.{}, capable 0x{:x}, want 0x{:x}, max_readahead {}, max_write {}",
               conn->proto_major, conn->proto_minor, conn->capable, conn->want, conn->max_readahead, conn->max_write);
}

static void op_destroy(void*) {}

struct fuse_lowlevel_ops make_ops() {
  struct fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = op_init;
  ops.destroy = op_destroy;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.open = op_open;
  ops.read = op_read;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.setxattr = op_setxattr;
  ops.removexattr = op_removexattr;
  ops.statfs = op_statfs;
  ops.write = op_write;
  ops.fsync = op_fsync;
  ops.create = op_create;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.link = op_link;
  return ops;
}

// The mount's device number from /proc/self/mountinfo: stat()ing our own mountpoint here would
// send a request to a session that is not serving yet.
static bool mount_dev(const std::string& mountpoint, unsigned* maj, unsigned* min) {
  auto all = read_mountinfo();
  const MountEntry* e = all.ok() ? mount_at(*all, mountpoint) : nullptr;
  if (!e) return false;
  *maj = e->dev_major;
  *min = e->dev_minor;
  return true;
}

// True while a mount with this device number is in our mount namespace (an unreadable table
// counts as mounted: the caller then reports the loop's error instead of a clean stop).
static bool mounted_by_device(unsigned maj, unsigned min) {
  auto all = read_mountinfo();
  if (!all.ok()) return true;
  return std::any_of(all->begin(), all->end(),
                     [&](const MountEntry& e) { return e.dev_major == maj && e.dev_minor == min; });
}

Result<std::unique_ptr<Session>> Session::mount(FuseContext& ctx, const SessionOptions& opts) {
  std::unique_ptr<Session> s(new Session());
  s->ctx_ = &ctx;
  s->opts_ = opts;
  std::vector<std::string> argv_s{"hf-mount-fuse"};
  if (opts.debug) argv_s.push_back("-d");
  if (!opts.mount_opts.empty()) {
    std::string joined;
    for (auto& o : opts.mount_opts) {
      if (!joined.empty()) joined.push_back(',');
      joined += o;
    }
    argv_s.push_back("-o");
    argv_s.push_back(joined);
  }
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  struct fuse_lowlevel_ops ops = make_ops();
  s->se_ = fuse_session_new(&args, &ops, sizeof(ops), &ctx);
  // fuse_opt_parse inside replaced args with a heap copy (args.allocated); ours to free.
  fuse_opt_free_args(&args);
  if (!s->se_) return Error(Errc::invalid_argument, "FUSE rejected the mount options (see the message above)");
  ctx.session = s->se_;
  if (fuse_set_signal_handlers(s->se_) != 0) return Error(Errc::internal, "cannot install signal handlers");
  s->handlers_ = true;
  if (fuse_session_mount(s->se_, opts.mountpoint.c_str()) != 0) {
    return Error(Errc::io, "cannot mount on " + opts.mountpoint + " (is it an existing, empty directory?)");
  }
  s->mounted_ = true;
  s->have_dev_ = mount_dev(opts.mountpoint, &s->dev_major_, &s->dev_minor_);
  if (opts.read_ahead_kb && s->have_dev_) {
    ctx.read_ahead_path = "/sys/class/bdi/" + std::to_string(s->dev_major_) + ":" + std::to_string(s->dev_minor_) +
                          "/read_ahead_kb";
    ctx.read_ahead_kb = opts.read_ahead_kb;
  }
  return s;
}

int Session::loop() {
  struct fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, opts_.clone_fd ? 1 : 0);
  fuse_loop_cfg_set_max_threads(cfg, opts_.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, std::min(opts_.max_threads, 4u));
  int r = fuse_session_loop_mt(se_, cfg);
  fuse_loop_cfg_destroy(cfg);
  // libfuse (3.14) returns the number of the signal that ended the loop through its handlers:
  // SIGTERM, SIGINT and SIGHUP are requested stops (systemd's stop is a SIGTERM), not failures.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (r == sig || r == -sig) r = 0;
  }
  if (r != 0) {
    // A worker's read of /dev/fuse can fail while a lazy unmount (umount -l) tears the
    // connection down under busy files; once the mount is gone that is the requested stop.
    std::string what = r < 0 ? std::strerror(-r) : fmt::format("status {}", r);
    if (have_dev_ && !mounted_by_device(dev_major_, dev_minor_)) {
      HF_LOG_INFO("fuse", "session ended ({}) after the filesystem was unmounted", what);
      r = 0;
    } else {
      HF_LOG_ERROR("fuse", "the FUSE session failed: {}", what);
    }
  }
  return r;
}

void Session::exit() {
  if (se_) fuse_session_exit(se_);
}

int Session::invalidate_inode(uint64_t ino, bool pages) {
  return fuse_lowlevel_notify_inval_inode(se_, ino, pages ? 0 : -1, 0);
}

int Session::invalidate_entry(uint64_t parent, const std::string& name) {
  return fuse_lowlevel_notify_inval_entry(se_, parent, name.c_str(), name.size());
}

Invalidator Session::invalidator() {
  {
    std::lock_guard lk(inv_mu_);
    if (!inv_thread_.joinable()) inv_thread_ = std::thread([this] { invalidation_loop(); });
  }
  return [this](std::vector<Invalidation> inv) {
    std::lock_guard lk(inv_mu_);
    if (inv_stop_) return;
    for (auto& i : inv) inv_queue_.push_back(std::move(i));
    inv_cv_.notify_one();
  };
}

void Session::invalidation_loop() {
  std::unique_lock lk(inv_mu_);
  for (;;) {
    inv_cv_.wait(lk, [&] { return inv_stop_ || !inv_queue_.empty(); });
    if (inv_stop_) return;
    Invalidation i = std::move(inv_queue_.front());
    inv_queue_.pop_front();
    lk.unlock();
    int r = 0;
    switch (i.kind) {
      case Invalidation::Kind::inode_pages: r = invalidate_inode(i.ino, true); break;
      case Invalidation::Kind::inode_attrs: r = invalidate_inode(i.ino, false); break;
      case Invalidation::Kind::entry: r = invalidate_entry(i.ino, i.name); break;
    }
    // -ENOENT: the kernel does not know the inode/entry, which is fine.
    if (r != 0 && r != -ENOENT) HF_LOG_DEBUG("fuse", "invalidation of inode {} returned {}", i.ino, r);
    lk.lock();
  }
}

Session::~Session() {
  {
    std::lock_guard lk(inv_mu_);
    inv_stop_ = true;
    inv_queue_.clear();
  }
  inv_cv_.notify_all();
  if (inv_thread_.joinable()) inv_thread_.join();
  if (mounted_) fuse_session_unmount(se_);
  if (handlers_) fuse_remove_signal_handlers(se_);
  if (se_) fuse_session_destroy(se_);
  if (ctx_) ctx_->session = nullptr;
}

}  // namespace hf::fs::fuse
