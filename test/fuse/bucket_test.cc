// Read-write bucket mounts, for real (issue 7): write patterns, tools, durability, namespace.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "test/fuse/fixture.h"

using namespace hf;
using namespace hf::fstest;

namespace {

std::string slurp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void spit(const std::string& path, const std::string& data, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  int fd = ::open(path.c_str(), flags, 0644);
  REQUIRE(fd >= 0);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, std::min<size_t>(data.size() - done, 1 << 20));
    REQUIRE(n > 0);
    done += static_cast<size_t>(n);
  }
  REQUIRE(::close(fd) == 0);  // close = committed (writeback=sync)
}

// The bytes the bucket itself serves for `path` (the Hub's download path, not the mount).
std::string remote_sha(const Hub& hub, const std::string& bucket, const std::string& path) {
  CmdResult r = run("curl -sfL '" + hub.url() + "/buckets/" + bucket + "/resolve/" + path + "' | sha256sum");
  return r.out.substr(0, 64);
}

}  // namespace

TEST_CASE("write patterns read back through the mount, a fresh mount and the bucket", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/scratch").ok());
  std::map<std::string, std::string> expect;
  {
    Mount m(hub, "hf://buckets/alice/scratch");
    // Sequential.
    std::string seq = random_bytes(6 << 20, 1);
    spit(m / "seq.bin", seq);
    expect["seq.bin"] = seq;
    // Random writes into a fresh file (holes read as zeros), then sparse growth.
    std::string rnd(3 << 20, '\0');
    {
      int fd = ::open((m / "rnd.bin").c_str(), O_RDWR | O_CREAT, 0644);
      std::mt19937_64 rng(2);
      for (int i = 0; i < 300; ++i) {
        size_t off = rng() % (3 << 20), len = 1 + rng() % 9000;
        if (off + len > rnd.size()) len = rnd.size() - off;
        std::string piece = random_bytes(len, rng());
        REQUIRE(::pwrite(fd, piece.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
        rnd.replace(off, len, piece);
      }
      // pwrite far past the end: a hole.
      REQUIRE(::pwrite(fd, "END", 3, 5 << 20) == 3);
      rnd.resize(5 << 20, '\0');
      rnd += "END";
      // Read-your-writes before close.
      std::string back(rnd.size(), '\0');
      REQUIRE(::pread(fd, back.data(), back.size(), 0) == static_cast<ssize_t>(back.size()));
      REQUIRE(back == rnd);
      REQUIRE(::close(fd) == 0);
    }
    expect["rnd.bin"] = rnd;
    // Append.
    spit(m / "log.txt", "line 1\n");
    spit(m / "log.txt", "line 2\n", O_WRONLY | O_APPEND);
    expect["log.txt"] = "line 1\nline 2\n";
    // Truncate down, then grow.
    spit(m / "trunc.bin", random_bytes(100000, 3));
    REQUIRE(::truncate((m / "trunc.bin").c_str(), 1000) == 0);
    REQUIRE(::truncate((m / "trunc.bin").c_str(), 5000) == 0);
    expect["trunc.bin"] = random_bytes(100000, 3).substr(0, 1000) + std::string(4000, '\0');
    // Overwrite in the middle of an existing file (reopened without O_TRUNC).
    spit(m / "mid.bin", random_bytes(20 << 20, 4));
    {
      int fd = ::open((m / "mid.bin").c_str(), O_WRONLY);
      REQUIRE(::pwrite(fd, "MIDDLE", 6, 10 << 20) == 6);
      REQUIRE(::close(fd) == 0);
    }
    std::string mid = random_bytes(20 << 20, 4);
    mid.replace(10 << 20, 6, "MIDDLE");
    expect["mid.bin"] = mid;
    // mkdir + nested file.
    REQUIRE(::mkdir((m / "d1").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "d1/d2").c_str(), 0755) == 0);
    spit(m / "d1/d2/deep.txt", "deep\n");
    expect["d1/d2/deep.txt"] = "deep\n";
    for (auto& [p, data] : expect) {
      INFO(p);
      CHECK(sha256_file(m / p) == sha256_of(data));
    }
  }
  Mount fresh(hub, "hf://buckets/alice/scratch");
  for (auto& [p, data] : expect) {
    INFO(p);
    CHECK(sha256_file(fresh / p) == sha256_of(data));
    CHECK(remote_sha(hub, "alice/scratch", p) == sha256_of(data));
  }
}

TEST_CASE("namespace operations: rename (files and a 1000-file directory), link, unlink, rmdir", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/ns").ok());
  Mount m(hub, "hf://buckets/alice/ns");
  REQUIRE(::mkdir((m / "big").c_str(), 0755) == 0);
  for (int i = 0; i < 1000; ++i) spit(m / ("big/f" + std::to_string(i)), "file " + std::to_string(i) + "\n");
  REQUIRE(::rename((m / "big").c_str(), (m / "moved").c_str()) == 0);
  CHECK(::access((m / "big").c_str(), F_OK) != 0);
  CHECK(slurp(m / "moved/f999") == "file 999\n");
  uint64_t batches_before = hub.server().requests("batch");
  REQUIRE(::rename((m / "moved/f1").c_str(), (m / "renamed.txt").c_str()) == 0);
  CHECK(hub.server().requests("batch") == batches_before + 1);  // one add+delete batch, no re-upload
  REQUIRE(::link((m / "renamed.txt").c_str(), (m / "linked.txt").c_str()) == 0);
  REQUIRE(::unlink((m / "renamed.txt").c_str()) == 0);
  CHECK(slurp(m / "linked.txt") == "file 1\n");
  CHECK(::rmdir((m / "moved").c_str()) != 0);
  CHECK(errno == ENOTEMPTY);
  Mount fresh(hub, "hf://buckets/alice/ns");
  CHECK(slurp(fresh / "moved/f500") == "file 500\n");
  CHECK(slurp(fresh / "linked.txt") == "file 1\n");
  CHECK(::access((fresh / "renamed.txt").c_str(), F_OK) != 0);
  CmdResult n = run("find '" + fresh.path() + "/moved' -type f | wc -l");
  CHECK(std::stoul(n.out) == 999);
}

TEST_CASE("everyday tools: rsync, tar and SQLite", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/tools").ok());
  std::string src = tempdir("src");
  for (int d = 0; d < 20; ++d) {
    ::mkdir((src + "/dir" + std::to_string(d)).c_str(), 0755);
    for (int f = 0; f < 100; ++f) {
      std::string p = src + "/dir" + std::to_string(d) + "/file" + std::to_string(f) + ".dat";
      spit(p, random_bytes(100 + (d * 100 + f) % 4000, static_cast<uint64_t>(d * 1000 + f)));
    }
  }
  Mount m(hub, "hf://buckets/alice/tools");
  CmdResult in = run("rsync -a '" + src + "/' '" + m.path() + "/tree/'");
  REQUIRE(in.status == 0);
  std::string back = tempdir("back");
  CmdResult out = run("rsync -a '" + m.path() + "/tree/' '" + back + "/'");
  REQUIRE(out.status == 0);
  CHECK(run("diff -r '" + src + "' '" + back + "'").status == 0);
  // tar -x into the mount.
  // The archive lives in a private temporary directory: concurrent runs must not share it.
  std::string tardir = tempdir("tar"), archive = tardir + "/tools.tar";
  CmdResult tar = run("tar -C '" + src + "' -cf '" + archive + "' . && mkdir '" + m.path() + "/untar' && tar -C '" +
                      m.path() + "/untar' -xf '" + archive + "'");
  INFO(tar.out);
  REQUIRE(tar.status == 0);
  CHECK(run("diff -r '" + src + "' '" + m.path() + "/untar'").status == 0);
  // SQLite: create, insert, query (journal files, fsync, locking within the mount).
  CmdResult sql = run("sqlite3 '" + m.path() + "/db.sqlite' 'create table t(k integer primary key, v text);"
                      " insert into t(v) values (\"a\"),(\"b\"),(\"c\"); select count(*) from t;'");
  REQUIRE(sql.status == 0);
  CHECK(sql.out == "3\n");
  CmdResult sql2 = run("sqlite3 '" + m.path() + "/db.sqlite' 'select group_concat(v) from t;'");
  CHECK(sql2.out == "a,b,c\n");
  remove_tree(src);
  remove_tree(back);
  remove_tree(tardir);
}

TEST_CASE("fsynced data survives kill -9 of the mount; async writeback resumes after a crash", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/crash").ok());
  std::string cache = tempdir("cache");
  std::string ckpt = random_bytes(8 << 20, 9);
  {
    Mount m(hub, "hf://buckets/alice/crash", "writeback=async", cache);
    int fd = ::open((m / "ckpt.bin").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, ckpt.data(), ckpt.size()) == static_cast<ssize_t>(ckpt.size()));
    // Make the bucket refuse commits so the upload cannot finish before the crash.
    hubsim::FaultRule r;
    r.route = "batch";
    r.kind = hubsim::FaultKind::status503;
    r.rate = 1.0;
    hub.server().set_faults({r});
    REQUIRE(::fsync(fd) == 0);  // acknowledged: durable locally
    ::close(fd);
    ::kill(m.pid(), SIGKILL);
    m.unmount();
  }
  hub.server().clear_faults();
  Mount again(hub, "hf://buckets/alice/crash", "writeback=async", cache);
  bool committed = false;
  for (int i = 0; i < 300 && !committed; ++i) {
    committed = remote_sha(hub, "alice/crash", "ckpt.bin") == sha256_of(ckpt);
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(committed);
  CHECK(sha256_file(again / "ckpt.bin") == sha256_of(ckpt));
  remove_tree(cache);
}

TEST_CASE("writeback=async: cp -r of 1000 small files lands whole with a batch per group, not per file", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/many").ok());
  std::string src = tempdir("many-src");
  std::vector<std::string> sums;
  for (int i = 0; i < 1000; ++i) {
    std::string d = src + "/d" + std::to_string(i % 10);
    ::mkdir(d.c_str(), 0755);
    std::string bytes = random_bytes(1024 + (i * 37) % 8192, 500 + i);
    std::ofstream(d + "/f" + std::to_string(i), std::ios::binary) << bytes;
    sums.push_back(sha256_of(bytes));
  }
  std::string cache = tempdir("cache");
  {
    Mount m(hub, "hf://buckets/alice/many", "writeback=async", cache);
    hub.server().reset_stats();
    CmdResult cp = run("cp -r '" + src + "' '" + m.path() + "/tree'");
    REQUIRE(cp.status == 0);
    CHECK(m.unmount() == 0);  // the unmount waits for the pending commits
  }
  uint64_t batches = hub.server().requests("batch");
  INFO("batch requests: " << batches);
  CHECK(batches > 0);
  CHECK(batches <= 100);
  // Every file through a fresh mount of the bucket, a sample through the bucket's own resolve.
  Mount fresh(hub, "hf://buckets/alice/many", "ro");
  for (int i = 0; i < 1000; ++i) {
    std::string rel = "tree/d" + std::to_string(i % 10) + "/f" + std::to_string(i);
    INFO(rel);
    REQUIRE(sha256_file(fresh / rel) == sums[i]);
    if (i % 50 == 0) REQUIRE(remote_sha(hub, "alice/many", rel) == sums[i]);
  }
  remove_tree(src);
  remove_tree(cache);
}

TEST_CASE("a failing commit fails close() with EIO and keeps the data; batch line failures are failures", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/fail").ok());
  Mount m(hub, "hf://buckets/alice/fail");
  hubsim::Knobs k = hub.server().knobs();
  k.batch_fail_200 = true;  // 200 with success:false and failed[] lines
  hub.server().set_knobs(k);
  hubsim::FaultRule r;
  r.route = "batch";
  r.kind = hubsim::FaultKind::status500;
  r.rate = 1.0;
  hub.server().set_faults({r});
  int fd = ::open((m / "x.bin").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "precious", 8) == 8);
  errno = 0;
  CHECK(::close(fd) != 0);
  CHECK(errno == EIO);
  CHECK(slurp(m / "x.bin") == "precious");  // still there locally
  hub.server().clear_faults();
  k.batch_fail_200 = false;
  hub.server().set_knobs(k);
  fd = ::open((m / "x.bin").c_str(), O_RDONLY);
  REQUIRE(::fsync(fd) == 0);  // now it commits
  ::close(fd);
  CHECK(remote_sha(hub, "alice/fail", "x.bin") == sha256_of("precious"));
}

TEST_CASE("remote changes appear; a locally dirty file is not overwritten", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/live").ok());
  REQUIRE(hub.server().bucket_put("alice/live", "shared.txt", "original\n").ok());
  Mount m(hub, "hf://buckets/alice/live", "poll_interval=1,metadata_ttl=1");
  CHECK(slurp(m / "shared.txt") == "original\n");
  int fd = ::open((m / "shared.txt").c_str(), O_WRONLY | O_TRUNC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "local edit\n", 11) == 11);
  REQUIRE(hub.server().bucket_put("alice/live", "shared.txt", "remote edit\n").ok());
  REQUIRE(hub.server().bucket_put("alice/live", "other.txt", "new remote file\n").ok());
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = ::access((m / "other.txt").c_str(), F_OK) == 0;
  }
  CHECK(seen);
  CHECK(slurp(m / "shared.txt") == "local edit\n");  // local changes win while dirty
  REQUIRE(::close(fd) == 0);                          // ...and on commit (last writer wins)
  CHECK(remote_sha(hub, "alice/live", "shared.txt") == sha256_of("local edit\n"));
}

// Found by the soak: `ls -lR` opened a directory, a writer renamed f over g, then ls read the
// entries of its handle's (older) snapshot. readdirplus handed the kernel "f" -> the moved node
// and "g" -> the replaced one; the next open(f, O_TRUNC) then wrote into the file now named g
// (or into the replaced orphan: an acknowledged write lost), and g read back the old bytes.
TEST_CASE("entries read from a directory handle opened before a rename name the current files", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/alias").ok());
  Mount m(hub, "hf://buckets/alice/alias");
  REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
  spit(m / "d/f", "new bytes\n");
  spit(m / "d/g", "old bytes, longer\n");
  DIR* dir = ::opendir((m / "d").c_str());  // the handle's snapshot: f, g
  REQUIRE(dir);
  REQUIRE(::rename((m / "d/f").c_str(), (m / "d/g").c_str()) == 0);
  std::vector<std::string> names;
  while (auto* e = ::readdir(dir)) names.emplace_back(e->d_name);
  ::closedir(dir);
  CHECK(::access((m / "d/f").c_str(), F_OK) != 0);
  CHECK(slurp(m / "d/g") == "new bytes\n");
  // Writing "f" again makes a new file; g keeps its bytes; f can be renamed.
  spit(m / "d/f", "third\n");
  CHECK(slurp(m / "d/f") == "third\n");
  CHECK(slurp(m / "d/g") == "new bytes\n");
  CHECK(::rename((m / "d/f").c_str(), (m / "d/h").c_str()) == 0);
  CHECK(remote_sha(hub, "alice/alias", "d/g") == sha256_of("new bytes\n"));
  CHECK(remote_sha(hub, "alice/alias", "d/h") == sha256_of("third\n"));
}

TEST_CASE("two writers in one mount, and a randomized model check of 20k operations", "[bucket]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/fsx").ok());
  Mount m(hub, "hf://buckets/alice/fsx");
  // Two threads writing different files concurrently.
  std::string a = random_bytes(3 << 20, 11), b = random_bytes(3 << 20, 12);
  std::thread ta([&] { spit(m / "a.bin", a); });
  std::thread tb([&] { spit(m / "b.bin", b); });
  ta.join();
  tb.join();
  CHECK(sha256_file(m / "a.bin") == sha256_of(a));
  CHECK(sha256_file(m / "b.bin") == sha256_of(b));
  // fsx-style: random writes, truncates, reads and occasional fsyncs against a model.
  std::string model;
  int fd = ::open((m / "fsx.bin").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  std::mt19937_64 rng(99);
  for (int op = 0; op < 20000; ++op) {
    int kind = static_cast<int>(rng() % 100);
    if (kind < 45) {
      size_t off = rng() % (model.size() + 50000), len = 1 + rng() % 20000;
      std::string piece = random_bytes(len, rng());
      REQUIRE(::pwrite(fd, piece.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
      if (model.size() < off + len) model.resize(off + len, '\0');
      model.replace(off, len, piece);
    } else if (kind < 50) {
      size_t n = rng() % (model.size() + 20000);
      REQUIRE(::ftruncate(fd, static_cast<off_t>(n)) == 0);
      model.resize(n, '\0');
    } else if (kind < 99) {
      size_t off = rng() % (model.size() + 10), len = 1 + rng() % 30000;
      std::string got(len, '\0');
      ssize_t n = ::pread(fd, got.data(), len, static_cast<off_t>(off));
      size_t want = off >= model.size() ? 0 : std::min(len, model.size() - off);
      REQUIRE(n == static_cast<ssize_t>(want));
      REQUIRE(got.substr(0, want) == model.substr(std::min(off, model.size()), want));
    } else {
      REQUIRE(::fsync(fd) == 0);
    }
  }
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  CHECK(static_cast<size_t>(st.st_size) == model.size());
  REQUIRE(::close(fd) == 0);
  CHECK(remote_sha(hub, "alice/fsx", "fsx.bin") == sha256_of(model));
}
