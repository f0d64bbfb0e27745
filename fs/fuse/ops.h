// The FUSE low-level operations (one function per op; grouped by family in entry.cc, dir.cc,
// file.cc, xattr.cc, statfs.cc) and the session runner.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "fs/fuse/context.h"

namespace hf::fs::fuse {

void op_lookup(fuse_req_t, fuse_ino_t parent, const char* name);
void op_forget(fuse_req_t, fuse_ino_t, uint64_t nlookup);
void op_forget_multi(fuse_req_t, size_t count, struct fuse_forget_data*);
void op_getattr(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_setattr(fuse_req_t, fuse_ino_t, struct stat*, int to_set, struct fuse_file_info*);
void op_readlink(fuse_req_t, fuse_ino_t);
void op_opendir(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_readdir(fuse_req_t, fuse_ino_t, size_t, off_t, struct fuse_file_info*);
void op_readdirplus(fuse_req_t, fuse_ino_t, size_t, off_t, struct fuse_file_info*);
void op_releasedir(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_open(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_read(fuse_req_t, fuse_ino_t, size_t, off_t, struct fuse_file_info*);
void op_flush(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_release(fuse_req_t, fuse_ino_t, struct fuse_file_info*);
void op_getxattr(fuse_req_t, fuse_ino_t, const char*, size_t);
void op_listxattr(fuse_req_t, fuse_ino_t, size_t);
void op_setxattr(fuse_req_t, fuse_ino_t, const char*, const char*, size_t, int);
void op_removexattr(fuse_req_t, fuse_ino_t, const char*);
void op_statfs(fuse_req_t, fuse_ino_t);
void op_write(fuse_req_t, fuse_ino_t, const char* buf, size_t size, off_t off, struct fuse_file_info*);
void op_fsync(fuse_req_t, fuse_ino_t, int datasync, struct fuse_file_info*);
void op_create(fuse_req_t, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info*);
void op_mkdir(fuse_req_t, fuse_ino_t parent, const char* name, mode_t mode);
void op_symlink(fuse_req_t, const char* link, fuse_ino_t parent, const char* name);
void op_unlink(fuse_req_t, fuse_ino_t parent, const char* name);
void op_rmdir(fuse_req_t, fuse_ino_t parent, const char* name);
void op_rename(fuse_req_t, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags);
void op_link(fuse_req_t, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);

struct fuse_lowlevel_ops make_ops();

struct SessionOptions {
  std::string mountpoint;
  std::vector<std::string> mount_opts;  // passed as "-o a,b,c" to fuse_session_new
  unsigned max_threads = 8;
  bool clone_fd = true;
  bool debug = false;
  unsigned read_ahead_kb = 0;  // 0 = leave the kernel default (needs root to change)
};

// Owns a mounted FUSE session. Construction order: new session -> signal handlers -> mount.
// Destruction: unmount -> remove handlers -> destroy (reverse).
class Session {
 public:
  static Result<std::unique_ptr<Session>> mount(FuseContext& ctx, const SessionOptions& opts);
  ~Session();
  // Serves requests until unmount or a signal (SIGINT/SIGTERM/SIGHUP). Returns 0 on a clean exit.
  int loop();
  void exit();
  // Kernel cache invalidation. Never call from a FUSE worker or from an io thread that a read
  // might be waiting on: the kernel can block these calls on page locks held by reads.
  int invalidate_inode(uint64_t ino, bool pages);
  int invalidate_entry(uint64_t parent, const std::string& name);
  // An Invalidator for the core: queues the requests for a dedicated thread owned by the
  // session (stopped, and later requests dropped, before the session unmounts).
  Invalidator invalidator();

 private:
  Session() = default;
  void invalidation_loop();
  std::mutex inv_mu_;
  std::condition_variable inv_cv_;
  std::deque<Invalidation> inv_queue_;
  bool inv_stop_ = false;
  std::thread inv_thread_;
  FuseContext* ctx_ = nullptr;
  struct fuse_session* se_ = nullptr;
  SessionOptions opts_;
  bool mounted_ = false;
  bool handlers_ = false;
  bool have_dev_ = false;  // dev_: the mount's device number, to tell whether it is still there
  unsigned dev_major_ = 0, dev_minor_ = 0;
};

}  // namespace hf::fs::fuse
