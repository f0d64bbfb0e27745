// hf-bench-probe: small, precise client-side workloads for the benchmark suite (test/bench/suite).
// Each prints one JSON object on stdout; times are wall-clock (CLOCK_MONOTONIC).
//
//   hf-bench-probe header FILE...         safetensors header read per file: open, pread 8 bytes,
//                                         pread the JSON header, close (W2). Checks the header
//                                         starts with '{' and its length is sane.
//   hf-bench-probe walk ROOT              recursive walk (readdir + lstat of every entry, like
//                                         `find`/`ls -lR`): entries, directories, ms
//   hf-bench-probe stat ROOT THREADS      walk once (untimed), then THREADS threads lstat every
//                                         path (stat storm): ops/s
//   hf-bench-probe negative DIR N         N lstat calls of names that do not exist
//   hf-bench-probe restat PATH N          N lstat calls of the same path (getattr cost)
//   hf-bench-probe pread FILE BS COUNT [direct]   COUNT sequential preads of BS bytes (wrapping
//                                         at EOF), O_DIRECT if asked: MB/s
//   hf-bench-probe prand FILE BS COUNT [direct]   COUNT preads of BS bytes at fixed pseudo-random
//                                         BS-aligned offsets: IOPS
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

double now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

int die(const std::string& msg) {
  std::fprintf(stderr, "hf-bench-probe: %s\n", msg.c_str());
  return 1;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o + "\"";
}

int header(const std::vector<std::string>& files) {
  double t_all = now_ms();
  std::string out = "{\"files\":[";
  double max_first = 0, sum_first = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    double t0 = now_ms();
    int fd = ::open(files[i].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return die(files[i] + ": " + std::strerror(errno));
    double t_open = now_ms();
    uint8_t len8[8];
    if (::pread(fd, len8, 8, 0) != 8) return die(files[i] + ": short read of the header length");
    double t_first = now_ms();
    uint64_t hlen = 0;
    std::memcpy(&hlen, len8, 8);  // little-endian host (x86-64/arm64)
    if (hlen == 0 || hlen > (100u << 20)) return die(files[i] + ": implausible header length");
    std::string json(hlen, '\0');
    ssize_t r = ::pread(fd, json.data(), hlen, 8);
    if (r != static_cast<ssize_t>(hlen) || json[0] != '{') return die(files[i] + ": bad header");
    double t_hdr = now_ms();
    ::close(fd);
    double first = t_first - t0;
    max_first = std::max(max_first, first);
    sum_first += first;
    char b[512];
    std::snprintf(b, sizeof b,
                  "%s{\"path\":%s,\"open_ms\":%.4f,\"first_byte_ms\":%.4f,\"header_ms\":%.4f,\"header_len\":%llu}",
                  i ? "," : "", json_str(files[i]).c_str(), t_open - t0, first, t_hdr - t0,
                  static_cast<unsigned long long>(hlen));
    out += b;
  }
  char b[256];
  std::snprintf(b, sizeof b, "],\"total_ms\":%.4f,\"max_first_byte_ms\":%.4f,\"mean_first_byte_ms\":%.4f}",
                now_ms() - t_all, max_first, files.empty() ? 0.0 : sum_first / static_cast<double>(files.size()));
  std::puts((out + b).c_str());
  return 0;
}

struct Walk {
  uint64_t entries = 0, dirs = 0, errors = 0;
  std::vector<std::string>* paths = nullptr;
};

void walk_dir(const std::string& dir, Walk& w) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    ++w.errors;
    return;
  }
  ++w.dirs;
  std::vector<std::string> subdirs;
  int dfd = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    struct stat st {};
    if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      ++w.errors;
      continue;
    }
    ++w.entries;
    std::string p = dir + "/" + e->d_name;
    if (S_ISDIR(st.st_mode)) subdirs.push_back(p);
    if (w.paths) w.paths->push_back(std::move(p));
  }
  ::closedir(d);
  for (const auto& s : subdirs) walk_dir(s, w);
}

int walk(const std::string& root) {
  Walk w;
  double t0 = now_ms();
  walk_dir(root, w);
  double ms = now_ms() - t0;
  std::printf("{\"entries\":%llu,\"dirs\":%llu,\"errors\":%llu,\"ms\":%.3f}\n",
              static_cast<unsigned long long>(w.entries), static_cast<unsigned long long>(w.dirs),
              static_cast<unsigned long long>(w.errors), ms);
  return w.errors ? 2 : 0;
}

int stat_storm(const std::string& root, int threads) {
  std::vector<std::string> paths;
  Walk w;
  w.paths = &paths;
  walk_dir(root, w);
  if (paths.empty()) return die("no entries under " + root);
  std::atomic<uint64_t> errors{0};
  double t0 = now_ms();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      struct stat st {};
      for (size_t i = static_cast<size_t>(t); i < paths.size(); i += static_cast<size_t>(threads)) {
        if (::lstat(paths[i].c_str(), &st) != 0) errors.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  double ms = now_ms() - t0;
  std::printf("{\"ops\":%zu,\"threads\":%d,\"errors\":%llu,\"ms\":%.3f,\"ops_per_s\":%.1f}\n", paths.size(), threads,
              static_cast<unsigned long long>(errors.load()), ms, static_cast<double>(paths.size()) / (ms / 1e3));
  return errors ? 2 : 0;
}

int negative(const std::string& dir, uint64_t n) {
  double t0 = now_ms();
  uint64_t found = 0;
  struct stat st {};
  for (uint64_t i = 0; i < n; ++i) {
    std::string p = dir + "/missing_" + std::to_string(i % 1000) + (i % 2 ? ".py" : ".json");
    if (::lstat(p.c_str(), &st) == 0) ++found;
  }
  double ms = now_ms() - t0;
  std::printf("{\"ops\":%llu,\"found\":%llu,\"ms\":%.3f,\"ops_per_s\":%.1f}\n", static_cast<unsigned long long>(n),
              static_cast<unsigned long long>(found), ms, static_cast<double>(n) / (ms / 1e3));
  return 0;
}

int restat(const std::string& path, uint64_t n) {
  double t0 = now_ms();
  struct stat st {};
  for (uint64_t i = 0; i < n; ++i) {
    if (::lstat(path.c_str(), &st) != 0) return die(path + ": " + std::strerror(errno));
  }
  double ms = now_ms() - t0;
  std::printf("{\"ops\":%llu,\"ms\":%.3f,\"ops_per_s\":%.1f}\n", static_cast<unsigned long long>(n), ms,
              static_cast<double>(n) / (ms / 1e3));
  return 0;
}

int pread_seq(const std::string& file, uint64_t bs, uint64_t count, bool direct) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) return die(file + ": " + std::strerror(errno));
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, bs) != 0) return die("out of memory");
  double t0 = now_ms();
  uint64_t off = 0, total = 0;
  for (uint64_t i = 0; i < count; ++i) {
    ssize_t r = ::pread(fd, buf, bs, static_cast<off_t>(off));
    if (r < 0) return die(file + ": pread: " + std::strerror(errno));
    if (r == 0) {
      if (off == 0) return die(file + ": empty");
      off = 0;
      --i;
      continue;
    }
    total += static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
  double ms = now_ms() - t0;
  ::close(fd);
  std::free(buf);
  std::printf("{\"bytes\":%llu,\"ms\":%.3f,\"mb_per_s\":%.1f}\n", static_cast<unsigned long long>(total), ms,
              static_cast<double>(total) / 1e6 / (ms / 1e3));
  return 0;
}

// COUNT preads of BS bytes at offsets drawn from a fixed-seed generator (aligned to BS), so that
// two runs issue exactly the same requests (instruction counts are comparable).
int pread_random(const std::string& file, uint64_t bs, uint64_t count, bool direct) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) return die(file + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < bs) return die(file + ": too small");
  const uint64_t blocks = static_cast<uint64_t>(st.st_size) / bs;
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, bs) != 0) return die("out of memory");
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64: fixed sequence
  double t0 = now_ms();
  for (uint64_t i = 0; i < count; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (::pread(fd, buf, bs, static_cast<off_t>((x % blocks) * bs)) != static_cast<ssize_t>(bs)) {
      return die(file + ": short pread");
    }
  }
  double ms = now_ms() - t0;
  ::close(fd);
  std::free(buf);
  std::printf("{\"ops\":%llu,\"ms\":%.3f,\"iops\":%.1f}\n", static_cast<unsigned long long>(count), ms,
              static_cast<double>(count) / (ms / 1e3));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto num = [](const std::string& s) { return std::strtoull(s.c_str(), nullptr, 10); };
  if (a.size() >= 2 && a[0] == "header") return header({a.begin() + 1, a.end()});
  if (a.size() == 2 && a[0] == "walk") return walk(a[1]);
  if (a.size() == 3 && a[0] == "stat") return stat_storm(a[1], std::max(1, static_cast<int>(num(a[2]))));
  if (a.size() == 3 && a[0] == "negative") return negative(a[1], num(a[2]));
  if (a.size() == 3 && a[0] == "restat") return restat(a[1], num(a[2]));
  if ((a.size() == 4 || a.size() == 5) && a[0] == "prand") {
    return pread_random(a[1], num(a[2]), num(a[3]), a.size() == 5 && a[4] == "direct");
  }
  if ((a.size() == 4 || a.size() == 5) && a[0] == "pread") {
    return pread_seq(a[1], num(a[2]), num(a[3]), a.size() == 5 && a[4] == "direct");
  }
  return die("usage: header FILE... | walk ROOT | stat ROOT THREADS | negative DIR N | restat PATH N | "
             "pread|prand FILE BS COUNT [direct]");
}
