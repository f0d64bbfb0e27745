#include "test/fuse/fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "base/mountinfo.h"
#include "base/sha256.h"
#include "base/text.h"
#include "test/hubsim/tls_gen.h"

namespace hf::fstest {

std::string build_root() {
  const char* b = std::getenv("HF_BUILD_ROOT");
  if (!b) throw std::runtime_error("HF_BUILD_ROOT is not set (run through meson test)");
  return b;
}

std::string tempdir(const std::string& tag) {
  std::string t = "/tmp/hf-" + tag + "-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::string sha256_file(const std::string& path, size_t block) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  Sha256 h;
  std::vector<uint8_t> buf(block);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  auto d = h.finish();
  return hex_encode(d.data(), d.size());
}

std::string sha256_of(const std::string& bytes) { return sha256_hex(bytes); }

std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(&s[i], &x, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

bool is_mounted(const std::string& mountpoint) {
  auto all = read_mountinfo();
  return all.ok() && mount_at(*all, mountpoint) != nullptr;
}

CmdResult run(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

Hub::Hub(bool tls, hubsim::Options opts) {
  if (tls) {
    dir_ = tempdir("tls");
    Status st = hubsim::generate_test_tls(dir_);
    if (!st.ok()) throw std::runtime_error("generate_test_tls: " + st.error().message);
    opts.tls_cert = dir_ + "/cert.pem";
    opts.tls_key = dir_ + "/key.pem";
    ca_ = dir_ + "/ca.pem";
  }
  server_ = std::make_unique<hubsim::Server>(opts);
  Status st = server_->start();
  if (!st.ok()) throw std::runtime_error("hubsim start: " + st.error().message);
}

Hub::~Hub() {
  server_->stop();
  if (!dir_.empty()) remove_tree(dir_);
}

Mount::Mount(const Hub& hub, const std::string& source, const std::string& opts, const std::string& cache_dir,
             std::vector<std::string> env) {
  start(hub.url(), hub.tls() ? hub.ca_file() : std::string(), source, opts, cache_dir, std::move(env));
}

Mount::Mount(const std::string& endpoint, const std::string& ca_file, const std::string& source,
             const std::string& opts, const std::string& cache_dir, std::vector<std::string> env) {
  start(endpoint, ca_file, source, opts, cache_dir, std::move(env));
}

void Mount::start(const std::string& endpoint, const std::string& ca_file, const std::string& source,
                  const std::string& opts, const std::string& cache_dir, std::vector<std::string> env) {
  // A space in every mount point: the kernel escapes it in /proc/self/mountinfo, and both the
  // daemon and the front-end must still recognise their mount there.
  mnt_ = tempdir("mnt point");
  if (cache_dir.empty()) {
    cache_ = tempdir("cache");
    own_cache_ = true;
  } else {
    cache_ = cache_dir;
  }
  log_ = tempdir("log") + "/mount.log";
  std::string o = "endpoint=" + endpoint + ",cache_dir=" + cache_ + ",poll_interval=0,log_level=debug";
  if (!ca_file.empty()) o += ",ca_bundle=" + ca_file;
  if (!opts.empty()) o += "," + opts;
  std::string bin = build_root() + "/cmd/hf-mount-fuse";
  std::vector<std::string> args{bin, "-f", source, mnt_, "-o", o};
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    for (auto& e : env) ::putenv(strdup(e.c_str()));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!is_mounted(mnt_)) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      throw std::runtime_error("hf-mount-fuse exited before mounting: " + log());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      throw std::runtime_error("hf-mount-fuse did not mount within 30 s: " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string Mount::log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 8000 ? "..." + s.substr(s.size() - 8000) : s;
}

bool Mount::alive() const { return pid_ > 0 && !reaped_ && ::kill(pid_, 0) == 0; }

int Mount::unmount(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) {
    if (is_mounted(mnt_)) run("fusermount3 -u -z '" + mnt_ + "'");
    return -1;
  }
  if (is_mounted(mnt_)) {
    CmdResult r = run("fusermount3 -u '" + mnt_ + "'");
    if (r.status != 0) run("fusermount3 -u -z '" + mnt_ + "'");
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid_, &status, WNOHANG);
    if (w == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  return -1;
}

Mount::~Mount() {
  unmount();
  if (is_mounted(mnt_)) run("fusermount3 -u -z '" + mnt_ + "'");
  ::rmdir(mnt_.c_str());
  if (own_cache_) remove_tree(cache_);
  remove_tree(log_.substr(0, log_.rfind('/')));
}

}  // namespace hf::fstest
