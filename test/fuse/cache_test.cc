// Persistent state, for real (issue 6): offline remounts, stable inodes, shared cache
// directories, dedup across files, eviction bounds, corruption healing, kill -9.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "test/fuse/fixture.h"

using namespace hf;
using namespace hf::fstest;
using hubsim::FileSpec;
using hubsim::RepoType;

namespace {

std::vector<FileSpec> repo_files() {
  return {{"config.json", "{\"a\":1}\n", ""},
          {"weights/w1.bin", random_bytes(6 << 20, 31), ""},
          {"weights/w2.bin", random_bytes(4 << 20, 32), ""},
          {"data/x.txt", "x\n", ""}};
}

uint64_t ino_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

// Disk space allocated under `dir` (st_blocks, like du), each inode once. Why not file sizes:
// the store sizes a new run (sparse ftruncate) before reserving room for it, and a run renamed
// from tmp/ to v1/ during the walk would be seen twice; neither is space the cache uses.
uint64_t du_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::set<ino_t> seen;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (seen.insert(st.st_ino).second) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Xorb bytes the emulator has served since its last stats reset.
uint64_t xorb_bytes_served(Hub& hub) {
  std::string stats = hub.server().stats_json();
  auto pos = stats.find("\"bytes\":{");
  REQUIRE(pos != std::string::npos);
  auto x = stats.find("\"xorb\":", pos);
  return x == std::string::npos ? 0 : std::stoull(stats.substr(x + 7));
}

// Reads a file, returning the errno of the first failure (0 = success) and the time it took.
std::pair<int, double> try_read(const std::string& path) {
  auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        err = errno;
        break;
      }
      if (n == 0) break;
    }
    ::close(fd);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {err, s};
}

}  // namespace

TEST_CASE("offline remount: listings, stable inodes and cached bytes without the Hub; recovery after", "[cache]") {
  auto files = repo_files();
  std::string cache = tempdir("cache");
  std::map<std::string, uint64_t> inos;
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/off", files).ok());
  {
    Mount m(hub, "hf://acme/off", "", cache);
    for (auto& f : files) inos[f.path] = ino_of(m / f.path);
    CHECK(sha256_file(m / "weights/w1.bin") == sha256_of(files[1].bytes));  // cached now
    CHECK(run("ls -lR '" + m.path() + "' > /dev/null").status == 0);
  }
  // The Hub becomes unreachable: every connection is reset.
  hubsim::FaultRule down;
  down.route = "any";
  down.kind = hubsim::FaultKind::reset;
  down.rate = 1.0;
  hub.server().set_faults({down});
  auto t0 = std::chrono::steady_clock::now();
  Mount m(hub, "hf://acme/off", "", cache);
  double mount_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(mount_s < 30);
  CHECK_THAT(m.log(), Catch::Contains("serving cached commit"));
  for (auto& f : files) {
    INFO(f.path);
    CHECK(ino_of(m / f.path) == inos[f.path]);  // same inode numbers across mounts
  }
  CHECK(sha256_file(m / "weights/w1.bin") == sha256_of(files[1].bytes));  // cached bytes, offline
  auto [err, secs] = try_read(m / "weights/w2.bin");                       // never read: not cached
  CHECK(err == EIO);
  CHECK(secs < 30);  // fails fast, no multi-minute hang
  auto [err2, secs2] = try_read(m / "weights/w2.bin");  // and the next try fails at once
  CHECK(err2 == EIO);
  CHECK(secs2 < 2);
  // The Hub comes back: the mount recovers by itself.
  hub.server().clear_faults();
  bool ok = false;
  for (int i = 0; i < 90 && !ok; ++i) {
    ok = try_read(m / "weights/w2.bin").first == 0;
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  INFO(m.log());
  REQUIRE(ok);
  CHECK(sha256_file(m / "weights/w2.bin") == sha256_of(files[2].bytes));
  remove_tree(cache);
}

TEST_CASE("a remount of a pinned revision lists everything without a single Hub request", "[cache]") {
  Hub hub;
  REQUIRE(hub.server().add_synthetic_repo(RepoType::dataset, "acme/tree", "files=5000,size=10-100,dirs=10x5,seed=8").ok());
  std::string commit = hub.server().resolve_revision(RepoType::dataset, "acme/tree", "main").value();
  std::string cache = tempdir("cache");
  {
    Mount m(hub, "hf://datasets/acme/tree@" + commit, "", cache);
    CHECK(std::stoul(run("find '" + m.path() + "' -type f | wc -l").out) == 5000);
  }
  hub.server().reset_stats();
  Mount m(hub, "hf://datasets/acme/tree@" + commit, "", cache);
  CHECK(std::stoul(run("find '" + m.path() + "' -type f | wc -l").out) == 5000);
  INFO(hub.server().stats_json());
  CHECK(hub.server().requests("tree") == 0);
  remove_tree(cache);
}

TEST_CASE("two mounts share one cache directory, for two repos and for the same repo twice", "[cache]") {
  Hub hub;
  auto files = repo_files();
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/one", files).ok());
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/two", {{"t.bin", random_bytes(3 << 20, 40), ""}}).ok());
  std::string cache = tempdir("cache");
  Mount a(hub, "hf://acme/one", "", cache);
  Mount b(hub, "hf://acme/two", "", cache);
  Mount c(hub, "hf://acme/one", "", cache);  // same repo: its metadata store is busy
  CHECK(sha256_file(a / "weights/w1.bin") == sha256_of(files[1].bytes));
  CHECK(sha256_file(b / "t.bin") == sha256_of(random_bytes(3 << 20, 40)));
  hub.server().reset_stats();
  // The second mount of acme/one finds the bytes the first one fetched.
  CHECK(sha256_file(c / "weights/w1.bin") == sha256_of(files[1].bytes));
  CHECK(hub.server().requests("xorb") == 0);
  remove_tree(cache);
}

TEST_CASE("files sharing most chunks are not downloaded twice", "[cache]") {
  Hub hub;
  std::string a = random_bytes(20 << 20, 50);
  std::string b = a;
  b.replace(18 << 20, 64, std::string(64, 'X'));  // 10% at the end differs at most
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/ft", {{"base.bin", a, ""}, {"finetune.bin", b, ""}}).ok());
  Mount m(hub, "hf://acme/ft");
  REQUIRE(sha256_file(m / "base.bin") == sha256_of(a));
  hub.server().reset_stats();
  REQUIRE(sha256_file(m / "finetune.bin") == sha256_of(b));
  INFO(hub.server().stats_json());
  // xorb bytes served for the second file: at most 15% of its size.
  CHECK(xorb_bytes_served(hub) <= b.size() * 15 / 100);
}

TEST_CASE("without a disk cache, a cold sequential read fetches each byte once", "[cache]") {
  Hub hub;
  std::string big = random_bytes(64 << 20, 61);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/nodisk", {{"big.bin", big, ""}}).ok());
  std::string cache = tempdir("cache");
  // Prefetched chunks wait in the memory tier until read; a prefetch window larger than that
  // tier evicted them first (cache_size=0 fetched a cold file 1.92 times).
  Mount m(hub, "hf://acme/nodisk", "cache_size=0,memory_cache=16M", cache);
  hub.server().reset_stats();
  REQUIRE(sha256_file(m / "big.bin") == sha256_of(big));
  INFO(hub.server().stats_json());
  CHECK(xorb_bytes_served(hub) <= big.size() * 11 / 10);
  CHECK_FALSE(std::filesystem::exists(cache + "/chunks"));
  remove_tree(cache);
}

TEST_CASE("a tiny cache bound holds under 8 concurrent readers, and data stays correct", "[cache]") {
  Hub hub;
  std::string big = random_bytes(48 << 20, 60);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/evict", {{"big.bin", big, ""}}).ok());
  std::string cache = tempdir("cache");
  Mount m(hub, "hf://acme/evict", "cache_size=8M,memory_cache=4M", cache);
  std::atomic<int> bad{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> max_seen{0};
  std::thread watcher([&] {
    while (!stop) {
      uint64_t d = du_bytes(cache + "/chunks");
      uint64_t prev = max_seen.load();
      while (d > prev && !max_seen.compare_exchange_weak(prev, d)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      int fd = ::open((m / "big.bin").c_str(), O_RDONLY | O_DIRECT);
      if (fd < 0) fd = ::open((m / "big.bin").c_str(), O_RDONLY);
      std::vector<char> buf(1 << 20);
      for (int i = 0; i < 20; ++i) {
        size_t off = (rng() % (big.size() / buf.size())) * buf.size();
        ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
        if (n != static_cast<ssize_t>(buf.size())) {
          std::fprintf(stderr, "short/failed read at %zu: %zd (%s)\n", off, n, n < 0 ? std::strerror(errno) : "");
          bad++;
        } else if (std::memcmp(buf.data(), big.data() + off, buf.size()) != 0) {
          std::fprintf(stderr, "WRONG BYTES at %zu\n", off);
          bad++;
        }
      }
      ::close(fd);
    });
  }
  for (auto& r : readers) r.join();
  stop = true;
  watcher.join();
  CHECK(bad == 0);
  INFO("max disk usage " << max_seen.load());
  // Writes reserve their room before the first byte lands, so the bound holds at every instant;
  // the margin is file-system metadata (extent blocks, the 4 KiB state file).
  CHECK(max_seen.load() <= (8u << 20) + (1u << 20));
  remove_tree(cache);
}

TEST_CASE("a corrupted cache file is detected and healed; kill -9 during reads leaves a usable cache", "[cache]") {
  Hub hub;
  auto files = repo_files();
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/heal", files).ok());
  std::string cache = tempdir("cache");
  {
    Mount m(hub, "hf://acme/heal", "", cache);
    REQUIRE(sha256_file(m / "weights/w1.bin") == sha256_of(files[1].bytes));
  }
  // Flip bytes in the middle of every cached chunk run.
  int damaged = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(cache + "/chunks")) {
    if (!e.is_regular_file() || e.path().extension() != ".run") continue;
    int fd = ::open(e.path().c_str(), O_RDWR);
    off_t size = ::lseek(fd, 0, SEEK_END);
    char junk[16];
    std::memset(junk, 0x5a, sizeof junk);
    REQUIRE(::pwrite(fd, junk, sizeof junk, size - size / 3) == sizeof junk);
    ::close(fd);
    ++damaged;
  }
  REQUIRE(damaged > 0);
  {
    Mount m(hub, "hf://acme/heal", "", cache);
    CHECK(sha256_file(m / "weights/w1.bin") == sha256_of(files[1].bytes));  // refetched, never wrong
    // kill -9 in the middle of heavy reading.
    std::atomic<bool> go{true};
    std::thread reader([&] {
      while (go) (void)try_read(m / "weights/w2.bin");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(m.pid(), SIGKILL);
    go = false;
    reader.join();
    m.unmount();
  }
  Mount m(hub, "hf://acme/heal", "", cache);
  for (auto& f : files) {
    INFO(f.path);
    CHECK(sha256_file(m / f.path) == sha256_of(f.bytes));
  }
  remove_tree(cache);
}
