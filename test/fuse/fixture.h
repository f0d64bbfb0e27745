// Fixtures for tests that mount for real: an in-process Hub + CAS emulator (test/hubsim) and
// hf-mount-fuse processes on private temporary mount points.
//
// Hygiene (ecosystem notes B.7 #15): every mount gets its own directory; waiting for a mount
// fails fast if the daemon dies; teardown always runs `fusermount3 -u -z`, then terminates and
// if needed kills the process, so a failing test never leaves a mount or a daemon behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/hubsim/server.h"

namespace hf::fstest {

std::string build_root();
std::string tempdir(const std::string& tag);
void remove_tree(const std::string& path);
// SHA-256 (hex) of a file read through the regular POSIX API, or of a byte string.
std::string sha256_file(const std::string& path, size_t block = 1 << 20);
std::string sha256_of(const std::string& bytes);
std::string random_bytes(size_t n, uint64_t seed);
bool is_mounted(const std::string& mountpoint);

// An emulator running in this process (HTTP, or HTTPS with a throwaway CA).
class Hub {
 public:
  explicit Hub(bool tls = false, hubsim::Options opts = {});
  ~Hub();
  hubsim::Server& server() { return *server_; }
  std::string url() const { return server_->base_url(); }
  const std::string& ca_file() const { return ca_; }
  bool tls() const { return !ca_.empty(); }

 private:
  std::string dir_, ca_;
  std::unique_ptr<hubsim::Server> server_;
};

// One hf-mount-fuse process serving one mount point.
class Mount {
 public:
  // Starts `hf-mount-fuse -f SOURCE MNT -o endpoint=...,cache_dir=...,<opts>` and waits until
  // the mount shows up in /proc/self/mountinfo.
  Mount(const Hub& hub, const std::string& source, const std::string& opts = "",
        const std::string& cache_dir = "", std::vector<std::string> env = {});
  // The same against any endpoint URL (e.g. an emulator running as a subprocess); `ca_file`
  // non-empty adds ca_bundle=.
  Mount(const std::string& endpoint, const std::string& ca_file, const std::string& source,
        const std::string& opts = "", const std::string& cache_dir = "", std::vector<std::string> env = {});
  ~Mount();
  const std::string& path() const { return mnt_; }
  std::string operator/(const std::string& rel) const { return mnt_ + "/" + rel; }
  const std::string& cache_dir() const { return cache_; }
  pid_t pid() const { return pid_; }
  const std::string& log_file() const { return log_; }
  std::string log() const;
  bool alive() const;
  // Unmounts (fusermount3 -u, lazily if busy) and waits up to `timeout` for the daemon to exit.
  // Returns the daemon's exit status, or -1 if it had to be killed. The default is generous: an
  // unmount commits pending bucket writes first, which under ASan took more than 10 s for a
  // cp -r of 1,000 files (returns as soon as the daemon exits; a hang still fails).
  int unmount(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  void start(const std::string& endpoint, const std::string& ca_file, const std::string& source,
             const std::string& opts, const std::string& cache_dir, std::vector<std::string> env);
  std::string mnt_, cache_, log_;
  bool own_cache_ = false;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Runs a command line (sh -c) and returns its exit status and combined output.
struct CmdResult {
  int status = -1;
  std::string out;
};
CmdResult run(const std::string& cmd);

}  // namespace hf::fstest
