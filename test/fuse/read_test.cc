// Read-only repository mounts, for real (issue 5): content, listings, revisions, access.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "base/sha256.h"
#include "test/fuse/fixture.h"

using namespace hf;
using namespace hf::fstest;
using hubsim::FileSpec;
using hubsim::RepoType;

namespace {

std::vector<FileSpec> sample_files() {
  return {
      {"config.json", R"({"architectures":["Demo"],"hidden_size":64})", ""},
      {"README.md", "# demo\n", ""},
      {"empty.txt", "", ""},
      {"model.safetensors", random_bytes(9 << 20, 1), ""},
      {"onnx/model.onnx", random_bytes(300000, 2), ""},
      {"onnx/deep/er/tiny.bin", random_bytes(70000, 3), ""},
      {"name with spaces #1?.txt", "odd names survive URL encoding\n", ""},
  };
}

std::string read_range(const std::string& path, off_t off, size_t len) {
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  std::string out(len, '\0');
  ssize_t n = ::pread(fd, out.data(), len, off);
  ::close(fd);
  REQUIRE(n >= 0);
  out.resize(static_cast<size_t>(n));
  return out;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  REQUIRE(d);
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("every file of a repository reads back byte-exact over HTTPS", "[read]") {
  Hub hub(true);
  auto files = sample_files();
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/tiny", files).ok());
  Mount m(hub, "hf://acme/tiny");
  CHECK(list_dir(m.path()) == std::vector<std::string>{"README.md", "config.json", "empty.txt",
                                                       "model.safetensors", "name with spaces #1?.txt", "onnx"});
  for (auto& f : files) {
    INFO(f.path);
    struct stat st {};
    REQUIRE(::stat((m / f.path).c_str(), &st) == 0);
    CHECK(static_cast<size_t>(st.st_size) == f.bytes.size());
    CHECK((st.st_mode & 0777) == 0444);
    CHECK(sha256_file(m / f.path) == sha256_of(f.bytes));
  }
  // Xet identity is visible as xattrs.
  char buf[128];
  ssize_t n = ::getxattr((m / "model.safetensors").c_str(), "user.hf.xet_hash", buf, sizeof buf);
  CHECK(n == 64);
  n = ::getxattr((m / "model.safetensors").c_str(), "user.hf.source", buf, sizeof buf);
  REQUIRE(n > 0);
  CHECK(std::string(buf, static_cast<size_t>(n)) == "hf://acme/tiny");
  // Writes are refused with EROFS.
  CHECK(::open((m / "config.json").c_str(), O_WRONLY) < 0);
  CHECK(errno == EROFS);
  CHECK(::mkdir((m / "newdir").c_str(), 0755) < 0);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::open((m / "missing.txt").c_str(), O_RDONLY) < 0);
  CHECK(errno == ENOENT);
}

TEST_CASE("random preads match the source and 8 threads share one file", "[read]") {
  Hub hub;
  std::string big = random_bytes(24 << 20, 7);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/big", {{"w.bin", big, ""}}).ok());
  Mount m(hub, "hf://acme/big");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    off_t off = static_cast<off_t>(rng() % big.size());
    size_t len = 1 + rng() % (1 << 20);
    std::string got = read_range(m / "w.bin", off, len);
    size_t want = std::min(len, big.size() - static_cast<size_t>(off));
    REQUIRE(got.size() == want);
    REQUIRE(got == big.substr(static_cast<size_t>(off), want));
  }
  // Eight readers at once, each on its own region, with one shared file descriptor per thread.
  std::atomic<int> bad{0};
  std::vector<std::thread> th;
  size_t part = big.size() / 8;
  for (int t = 0; t < 8; ++t) {
    th.emplace_back([&, t] {
      int fd = ::open((m / "w.bin").c_str(), O_RDONLY);
      std::string buf(1 << 20, '\0');
      for (size_t off = t * part; off < (t + 1) * part; off += buf.size()) {
        ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
        if (n <= 0 || std::memcmp(buf.data(), big.data() + off, static_cast<size_t>(n)) != 0) bad++;
      }
      ::close(fd);
    });
  }
  for (auto& x : th) x.join();
  CHECK(bad == 0);
}

TEST_CASE("the first 4 KiB of a cold file costs at most 3 HTTP requests", "[read]") {
  Hub hub;
  std::string st = random_bytes(64 << 20, 9);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/st", {{"model.safetensors", st, ""}}).ok());
  Mount m(hub, "hf://acme/st");
  hub.server().reset_stats();
  std::string head = read_range(m / "model.safetensors", 0, 4096);
  REQUIRE(head == st.substr(0, 4096));
  uint64_t total = 0;
  for (auto r : {"tree", "resolve", "token", "reconstruction", "xorb", "repo_info", "paths_info"}) total += hub.server().requests(r);
  INFO(hub.server().stats_json());
  CHECK(total <= 3);
}

TEST_CASE("the CAS token is fetched while mounting: a cold first read makes only its two CAS requests", "[read]") {
  Hub hub;
  std::string st = random_bytes(8 << 20, 10);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/tok", {{"model.safetensors", st, ""}}).ok());
  Mount m(hub, "hf://acme/tok");
  // The mount asks for it in the background: wait for it (bounded).
  for (int i = 0; i < 500 && hub.server().requests("token") == 0; ++i) usleep(10000);
  REQUIRE(hub.server().requests("token") == 1);
  hub.server().reset_stats();
  std::string head = read_range(m / "model.safetensors", 0, 4096);
  REQUIRE(sha256_hex(head) == sha256_hex(st.substr(0, 4096)));
  INFO(hub.server().stats_json());
  CHECK(hub.server().requests("token") == 0);
  CHECK(hub.server().requests("reconstruction") == 1);
  CHECK(hub.server().requests("xorb") >= 1);
}

TEST_CASE("listing 20k files with pagination: find, ls -lR, and a warm rerun without requests", "[read]") {
  hubsim::Options o;
  Hub hub(false, o);
  REQUIRE(hub.server().add_synthetic_repo(RepoType::dataset, "acme/many", "files=20000,size=10-200,dirs=10x10,seed=5").ok());
  hubsim::Knobs k = hub.server().knobs();
  k.page_size = 500;  // many pages per directory
  hub.server().set_knobs(k);
  Mount m(hub, "hf://datasets/acme/many");
  CmdResult f = run("find '" + m.path() + "' -type f | wc -l");
  REQUIRE(f.status == 0);
  CHECK(std::stoul(f.out) == 20000);
  CmdResult l = run("ls -lR '" + m.path() + "' | grep -c '^-r--r--r--'");
  CHECK(std::stoul(l.out) == 20000);
  uint64_t tree = hub.server().requests("tree");
  // Cold: one listing per directory plus its extra pages (<= 111 dirs + 20000/500 pages).
  CHECK(tree <= 111 + 40 + 5);
  hub.server().reset_stats();
  CmdResult again = run("find '" + m.path() + "' -type f | wc -l");
  CHECK(std::stoul(again.out) == 20000);
  CHECK(hub.server().requests("tree") == 0);
}

TEST_CASE("subfolder mounts show only the subfolder", "[read]") {
  Hub hub;
  auto files = sample_files();
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/tiny", files).ok());
  Mount m(hub, "hf://acme/tiny/onnx");
  CHECK(list_dir(m.path()) == std::vector<std::string>{"deep", "model.onnx"});
  CHECK(sha256_file(m / "deep/er/tiny.bin") == sha256_of(files[5].bytes));
}

TEST_CASE("revisions: branch, tag, commit sha and refs/pr/N", "[read]") {
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/rev", {{"v.txt", "one\n", ""}}).ok());
  auto first = hub.server().resolve_revision(RepoType::model, "acme/rev", "main").value();
  REQUIRE(hub.server().create_tag(RepoType::model, "acme/rev", "v1", "main").ok());
  hubsim::CommitRequest c;
  c.add = {{"v.txt", "two\n", ""}, {"added.txt", "new\n", ""}};
  REQUIRE(hub.server().commit(RepoType::model, "acme/rev", c).ok());
  hubsim::CommitRequest dev;
  dev.branch = "dev";
  dev.add = {{"v.txt", "dev\n", ""}};
  REQUIRE(hub.server().commit(RepoType::model, "acme/rev", dev).ok());
  uint64_t pr = hub.server().create_pr(RepoType::model, "acme/rev", "dev").value();

  auto content = [&](const std::string& opts) {
    Mount m(hub, "hf://acme/rev", opts);
    return read_range(m / "v.txt", 0, 100);
  };
  CHECK(content("") == "two\n");
  CHECK(content("revision=v1") == "one\n");
  CHECK(content("revision=" + first) == "one\n");
  CHECK(content("revision=dev") == "dev\n");
  CHECK(content("revision=refs/pr/" + std::to_string(pr)) == "dev\n");
  Mount pinned(hub, "hf://acme/rev@" + first);
  CHECK(access((pinned / "added.txt").c_str(), F_OK) != 0);
  char buf[64];
  ssize_t n = ::getxattr((pinned / "v.txt").c_str(), "user.hf.revision", buf, sizeof buf);
  REQUIRE(n == 40);
  CHECK(std::string(buf, 40) == first);
}

TEST_CASE("private repositories need a token; mount errors have clear exit codes", "[read]") {
  hubsim::Options o;
  o.tokens = {"alice:hf_secret_token_for_tests"};
  Hub hub(false, o);
  hubsim::RepoFlags priv;
  priv.is_private = true;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/secret", {{"s.txt", "classified\n", ""}}, priv).ok());
  hubsim::RepoFlags gated;
  gated.gated = true;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/gated", {{"g.txt", "gated\n", ""}}, gated).ok());
  std::string tokfile = tempdir("tok") + "/token";
  {
    FILE* f = std::fopen(tokfile.c_str(), "w");
    std::fputs("hf_secret_token_for_tests\n", f);
    std::fclose(f);
    ::chmod(tokfile.c_str(), 0600);
  }
  {
    Mount m(hub, "hf://acme/secret", "token_file=" + tokfile);
    CHECK(read_range(m / "s.txt", 0, 100) == "classified\n");
    // The token never shows up in the log.
    CHECK(m.log().find("hf_secret_token_for_tests") == std::string::npos);
  }
  // Without -f: the parent's exit code and one line say what is wrong.
  std::string bin = build_root() + "/cmd/hf-mount-fuse";
  std::string mnt = tempdir("mnt");
  std::string base = bin + " hf://acme/secret " + mnt + " -o endpoint=" + hub.url() + ",cache_dir=" + tempdir("c");
  CmdResult anon = run("env -u HF_TOKEN HOME=/nonexistent " + base);
  CHECK(anon.status == 3);  // private repos look like missing ones to anonymous callers
  CHECK_THAT(anon.out, Catch::Contains("acme/secret"));
  std::string badtok = tempdir("tok") + "/bad";
  run("echo hf_wrong > " + badtok + " && chmod 600 " + badtok);
  CmdResult bad = run(base + ",token_file=" + badtok);
  CHECK(bad.status == 2);
  CmdResult missing = run(bin + " hf://acme/nope " + mnt + " -o endpoint=" + hub.url() + ",cache_dir=" + tempdir("c") +
                          ",token_file=" + tokfile);
  CHECK(missing.status == 3);
  CmdResult rev = run(base + ",token_file=" + tokfile + ",revision=nope");
  CHECK(rev.status == 3);
  CHECK_THAT(rev.out, Catch::Contains("nope"));
  CmdResult ok = run(base + ",token_file=" + tokfile);
  CHECK(ok.status == 0);
  CHECK(is_mounted(mnt));
  run("fusermount3 -u " + mnt);
  // Gated: listing works, reading is refused with EACCES.
  Mount g(hub, "hf://acme/gated", "token_file=" + tokfile);
  CHECK(list_dir(g.path()) == std::vector<std::string>{"g.txt"});
  errno = 0;
  int fd = ::open((g / "g.txt").c_str(), O_RDONLY);
  if (fd >= 0) {
    char c;
    CHECK(::read(fd, &c, 1) < 0);
    CHECK(errno == EACCES);
    ::close(fd);
  }
}

TEST_CASE("a moving branch is followed while mounted", "[read]") {
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/live", {{"a.txt", "v1\n", ""}}).ok());
  Mount m(hub, "hf://acme/live", "poll_interval=1,metadata_ttl=1");
  CHECK(read_range(m / "a.txt", 0, 10) == "v1\n");
  int held = ::open((m / "a.txt").c_str(), O_RDONLY);
  REQUIRE(held >= 0);
  hubsim::CommitRequest c;
  c.add = {{"a.txt", "version two\n", ""}, {"b.txt", "bee\n", ""}};
  REQUIRE(hub.server().commit(RepoType::model, "acme/live", c).ok());
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = access((m / "b.txt").c_str(), F_OK) == 0;
  }
  REQUIRE(seen);
  CHECK(read_range(m / "a.txt", 0, 100) == "version two\n");
  CHECK(read_range(m / "b.txt", 0, 100) == "bee\n");
  ::close(held);
}
