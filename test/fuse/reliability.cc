#include "test/fuse/reliability.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace hf::fstest {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

bool bounded(const std::function<void()>& fn, std::chrono::milliseconds limit, const std::function<void()>& on_stuck) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    fn();
    std::lock_guard lk(mu);
    done = true;
    cv.notify_all();
  });
  bool in_time;
  {
    std::unique_lock lk(mu);
    in_time = cv.wait_for(lk, limit, [&] { return done; });
  }
  if (!in_time && on_stuck) on_stuck();
  t.join();
  return in_time;
}

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stoull(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoull(line.substr(8));
    if (line.rfind("State:", 0) == 0 && line.size() > 7) {
      size_t p = line.find_first_not_of(" \t", 6);
      if (p != std::string::npos) s.state = line[p];
    }
  }
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] != '.') s.fds++;
    }
    ::closedir(d);
  }
  return s;
}

std::vector<pid_t> d_state_tasks(pid_t pid) {
  std::vector<pid_t> out;
  std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(base.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream st(base + "/" + e->d_name + "/stat");
    std::string all((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
    size_t p = all.rfind(')');  // the command name may contain spaces and parentheses
    if (p != std::string::npos && p + 2 < all.size() && all[p + 2] == 'D') out.push_back(std::stoi(e->d_name));
  }
  ::closedir(d);
  return out;
}

IoResult read_all(const std::string& path) {
  IoResult r;
  auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    r.err = errno;
    r.seconds = since(t0);
    return r;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      r.err = errno;
      break;
    }
    if (n == 0) break;
    r.data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  r.seconds = since(t0);
  return r;
}

IoResult pread_range(const std::string& path, uint64_t off, size_t len) {
  IoResult r;
  auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    r.err = errno;
    r.seconds = since(t0);
    return r;
  }
  r.data.resize(len);
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, r.data.data() + got, len - got, static_cast<off_t>(off + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      r.err = errno;
      break;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  r.data.resize(got);
  ::close(fd);
  r.seconds = since(t0);
  return r;
}

IoResult write_all(const std::string& path, const std::string& data, bool fsync_before_close) {
  IoResult r;
  auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    r.err = errno;
    r.seconds = since(t0);
    return r;
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, std::min<size_t>(data.size() - done, 1 << 20));
    if (n < 0) {
      if (errno == EINTR) continue;
      r.err = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (r.err == 0 && fsync_before_close && ::fsync(fd) != 0) r.err = errno;
  if (::close(fd) != 0 && r.err == 0) r.err = errno;
  r.seconds = since(t0);
  return r;
}

void drop_page_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

uint64_t wrong_bytes(const std::string& got, const std::string& want) {
  uint64_t bad = 0;
  size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) bad += got[i] != want[i];
  return bad;
}

// ---------------------------------------------------------------------------------- HubProcess

HubProcess::HubProcess(std::vector<std::string> args) : args_(std::move(args)) {
  log_ = tempdir("hubproc") + "/hubsim.log";
}

HubProcess::~HubProcess() {
  if (pid_ > 0) kill(SIGKILL);
  remove_tree(log_.substr(0, log_.rfind('/')));
}

void HubProcess::start() {
  if (pid_ > 0) throw std::runtime_error("hubsim already running");
  std::string bin = build_root() + "/cmd/hf-mount-hubsim";
  std::vector<std::string> argv_s{bin, "--listen", "127.0.0.1:" + std::to_string(port_)};
  argv_s.insert(argv_s.end(), args_.begin(), args_.end());
  // The port of a killed server can linger in TIME_WAIT for its clients' side only; the
  // listener uses SO_REUSEADDR, but retry for a few seconds in case the bind still fails.
  for (int attempt = 0; attempt < 50; ++attempt) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);
      int lf = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (lf >= 0) ::dup2(lf, 2);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> av;
      for (auto& a : argv_s) av.push_back(a.data());
      av.push_back(nullptr);
      ::execv(bin.c_str(), av.data());
      _exit(127);
    }
    ::close(out[1]);
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) > 0) {
        char buf[256];
        ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(out[0]);
    const std::string prefix = "listening on ";
    if (line.rfind(prefix, 0) == 0) {
      pid_ = pid;
      url_ = line.substr(prefix.size(), line.find('\n') - prefix.size());
      port_ = static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)));
      return;
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (port_ == 0) break;  // not a port-reuse problem
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  throw std::runtime_error("hf-mount-hubsim did not start: " + ss.str());
}

void HubProcess::kill(int sig) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  int st = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (::waitpid(pid_, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

int HubProcess::control(const std::string& route, const std::string& json, const std::string& method) {
  std::string f = tempdir("ctl") + "/body.json";
  {
    std::ofstream o(f);
    o << json;
  }
  CmdResult r = run(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' -X {} -H 'Content-Type: application/json' "
                                "--data-binary @{} '{}{}'",
                                method, f, url_, route));
  remove_tree(f.substr(0, f.rfind('/')));
  try {
    return std::stoi(r.out);
  } catch (...) {
    return -1;
  }
}

// ---------------------------------------------------------------------------------- reporting

std::string Tally::line() const {
  return fmt::format("{:<44} faults={:<5} reads={:<5} read_errors={:<4} wrong_bytes={} stuck={} writes={} lost={} "
                     "max_op={:.1f}s{}{}",
                     name, faults, reads, read_errors, wrong_bytes, stuck, writes, lost, max_op_seconds,
                     note.empty() ? "" : "  ", note);
}

void report_tally(const std::string& suite, const Tally& t) {
  std::string l = t.line();
  std::printf("[%s] %s\n", suite.c_str(), l.c_str());
  std::fflush(stdout);
  if (const char* b = std::getenv("HF_BUILD_ROOT")) {
    std::ofstream o(std::string(b) + "/reliability-" + suite + ".txt", std::ios::app);
    o << l << "\n";
  }
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

std::string remote_file_sha(const std::string& endpoint, const std::string& bucket, const std::string& path) {
  CmdResult r = run("curl -sfL --max-time 60 '" + endpoint + "/buckets/" + bucket + "/resolve/" + path +
                    "' -o /tmp/hf-remote-sha.$$ && sha256sum < /tmp/hf-remote-sha.$$; rm -f /tmp/hf-remote-sha.$$");
  if (r.out.size() < 64) return "";
  return r.out.substr(0, 64);
}

}  // namespace hf::fstest
