// Helpers of the reliability suites (faults, hostile server, lifecycle, soak): bounded
// operations with a watchdog, process resource sampling, an emulator running as a killable
// subprocess, and the tallies every suite reports.
//
// Everything here cleans up after itself even when a test fails: destructors kill what they
// started and unmount what they mounted.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "test/fuse/fixture.h"

namespace hf::fstest {

// Runs `fn` on its own thread and waits at most `limit` for it. On time-out `on_stuck` runs
// (it must make `fn` return, e.g. by killing the daemon so the kernel aborts the request), then
// the thread is joined. Returns true if `fn` finished in time.
bool bounded(const std::function<void()>& fn, std::chrono::milliseconds limit,
             const std::function<void()>& on_stuck);

// Resource usage of a process, from /proc.
struct ProcSample {
  uint64_t rss_kb = 0;
  uint64_t fds = 0;
  uint64_t threads = 0;
  char state = '?';  // R, S, D, Z...
};
ProcSample sample_process(pid_t pid);
// Threads of `pid` currently in uninterruptible sleep (D state).
std::vector<pid_t> d_state_tasks(pid_t pid);

// Whole-file and range I/O returning errno instead of throwing (faults are expected).
struct IoResult {
  int err = 0;         // errno of the first failure, 0 = success
  std::string data;    // bytes read
  double seconds = 0;  // wall time
};
IoResult read_all(const std::string& path);
IoResult pread_range(const std::string& path, uint64_t off, size_t len);
// Writes `data` (create/truncate), then fsync (optional) and close; err = the first failure.
IoResult write_all(const std::string& path, const std::string& data, bool fsync_before_close = false);

// Drops the kernel's cached pages of a file so the next read goes to the daemon.
void drop_page_cache(const std::string& path);

// Number of bytes that differ between `got` and the same-length prefix of `want`.
uint64_t wrong_bytes(const std::string& got, const std::string& want);

// hf-mount-hubsim as a child process (for kill -9 / restart on the same port).
class HubProcess {
 public:
  // `args` are extra command-line arguments (content, knobs, --data-dir...).
  explicit HubProcess(std::vector<std::string> args);
  ~HubProcess();
  HubProcess(const HubProcess&) = delete;
  HubProcess& operator=(const HubProcess&) = delete;

  // Starts the server (on the port of the previous run after a kill, so URLs stay valid).
  void start();
  void kill(int sig = 9);  // and reaps it
  bool running() const { return pid_ > 0; }
  const std::string& url() const { return url_; }
  uint16_t port() const { return port_; }
  // POSTs JSON to a control route (/_sim/config, /_sim/faults); returns the HTTP status.
  int control(const std::string& route, const std::string& json, const std::string& method = "POST");

 private:
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string url_;
  std::string log_;
};

// What a reliability scenario reports (printed as one line, and summed into a suite total).
struct Tally {
  std::string name;
  uint64_t faults = 0;         // faults the emulator injected
  uint64_t reads = 0;          // read operations attempted
  uint64_t read_errors = 0;    // reads that failed cleanly (EIO...)
  uint64_t wrong_bytes = 0;    // bytes served that differ from the source (must be 0)
  uint64_t stuck = 0;          // operations that exceeded their bound (must be 0)
  uint64_t writes = 0;         // files written (close/fsync acknowledged)
  uint64_t lost = 0;           // acknowledged writes missing or different remotely (must be 0)
  double max_op_seconds = 0;   // slowest operation
  std::string note;
  std::string line() const;
};
// Appends a tally to the suite's report ($HF_BUILD_ROOT/reliability-<suite>.txt) and stdout.
void report_tally(const std::string& suite, const Tally& t);

// Waits until `pred` holds, polling every 50 ms, at most `limit`. Returns pred().
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds limit);

// SHA-256 of a bucket file as served by the Hub's download route ("" when unavailable).
std::string remote_file_sha(const std::string& endpoint, const std::string& bucket, const std::string& path);

}  // namespace hf::fstest
