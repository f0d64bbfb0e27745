#include <catch2/catch.hpp>

#include <fcntl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <future>
#include <random>

#include "base/sha256.h"
#include "fake_remote.h"
#include "fs/vfs.h"
#include "harness.h"
#include "test/unit/cache/test_util.h"

using namespace hf;
using namespace hf::fs;
using hf::cache::test::TempDir;
using namespace hf::fs::testing;

namespace {

struct Bucket {
  TempDir staging;
  IoThreads io;
  boost::asio::thread_pool cpu{1};
  FakeRemote remote;
  ChunkCache cache;
  std::unique_ptr<Vfs> vfs;

  explicit Bucket(std::unique_ptr<cache::DiskChunkStore> disk = nullptr) : cache(64 << 20, std::move(disk)) {
    remote.writable = true;
    remote.add_dir("");
    vfs = make();
  }
  ~Bucket() {
    io.stop();
    cpu.join();
    vfs.reset();
  }
  std::unique_ptr<Vfs> make() {
    VfsConfig c;
    c.source = "hf://buckets/alice/scratch";
    c.read_only = false;
    c.staging_dir = staging.path();
    c.reader.retry_base_ms = 1;
    c.commit_retry_base_ms = 1;
    c.upload.max_xorb_chunks = 64;
    return std::make_unique<Vfs>(c, remote, cache, io.ex(), nullptr, cpu.get_executor());
  }
  uint64_t ino(Vfs& v, const std::string& path) {
    uint64_t cur = kRootIno;
    size_t start = 0;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      std::string name = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto r = io.run(v.lookup(cur, name, nullptr));
      if (!r.ok() || r->attr.ino == 0) return 0;
      cur = r->attr.ino;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return cur;
  }
  std::vector<uint8_t> read_all(Vfs& v, uint64_t ino) {
    auto o = v.open(ino, O_RDONLY);
    REQUIRE(o.ok());
    std::vector<uint8_t> out;
    for (uint64_t off = 0;; off += 1 << 20) {
      auto r = io.run(v.read(o->fh, off, 1 << 20, nullptr));
      REQUIRE(r.ok());
      if (r->bytes == 0) break;
      for (auto& s : r->slices) out.insert(out.end(), s.data->begin() + s.offset, s.data->begin() + s.offset + s.length);
    }
    v.release(o->fh);
    return out;
  }
  Status write_file(const std::string& name, const std::vector<uint8_t>& data) {
    auto c = vfs->create(kRootIno, name, 0644, O_WRONLY | O_CREAT);
    if (!c.ok()) return c.error();
    uint64_t fh = c->second.fh;
    for (size_t off = 0; off < data.size(); off += 128 << 10) {
      auto w = vfs->write(fh, off, std::span(data.data() + off, std::min<size_t>(128 << 10, data.size() - off)));
      if (!w.ok()) return w.error();
    }
    Status st = io.run(vfs->flush(fh, nullptr));
    vfs->release(fh);
    return st;
  }
};

}  // namespace

TEST_CASE("what a bucket mount uploaded reads back from the disk cache, also in a fresh mount, without a download") {
  TempDir cache_dir;
  cache::DiskChunkStoreOptions o;
  o.dir = cache_dir.path();
  o.max_bytes = 256ull << 20;
  auto disk = cache::DiskChunkStore::open(o);
  REQUIRE(disk.ok());
  Bucket b(std::move(*disk));
  // Several xorbs (64 chunks each here), compressible and not.
  auto data = random_bytes(6 << 20, 11);
  for (size_t i = 0; i < (2u << 20); ++i) data[i] = static_cast<uint8_t>(i / 4096);
  REQUIRE(b.write_file("ckpt.bin", data).ok());
  REQUIRE(b.remote.committed("ckpt.bin") == data);
  // The xorbs are decoded on the cpu pool, then written by the cache's disk writer.
  std::promise<void> cpu_done;
  boost::asio::post(b.cpu, [&] { cpu_done.set_value(); });
  cpu_done.get_future().wait();
  b.cache.flush();
  uint64_t fetches = b.remote.fetch_calls.load(), downloads = b.remote.download_calls.load();
  auto fresh = b.make();  // nothing of ckpt.bin is known to it; only the chunk cache has the bytes
  uint64_t ino = b.ino(*fresh, "ckpt.bin");
  REQUIRE(ino);
  auto back = b.read_all(*fresh, ino);
  CHECK(sha256_hex(back.data(), back.size()) == sha256_hex(data.data(), data.size()));
  CHECK(b.remote.fetch_calls.load() == fetches);
  CHECK(b.remote.download_calls.load() == downloads);
  auto s = b.cache.stats();
  CHECK(s.disk_hits > 0);
}

TEST_CASE("a new file is committed at close and readable by a fresh mount") {
  Bucket b;
  auto data = random_bytes(3 << 20, 1);
  REQUIRE(b.write_file("ckpt.bin", data).ok());
  CHECK(b.remote.committed("ckpt.bin") == data);
  CHECK(b.remote.commit_calls.load() == 1);
  auto fresh = b.make();
  uint64_t ino = b.ino(*fresh, "ckpt.bin");
  REQUIRE(ino);
  CHECK(b.read_all(*fresh, ino) == data);
}

TEST_CASE("an empty new file is committed too") {
  Bucket b;
  REQUIRE(b.write_file("empty", {}).ok());
  auto got = b.remote.committed("empty");
  REQUIRE(got);
  CHECK(got->empty());
}

TEST_CASE("random writes, truncates and reads match an in-memory model (fsx-style)") {
  Bucket b;
  std::mt19937_64 rng(17);
  auto c = b.vfs->create(kRootIno, "fsx.bin", 0644, O_RDWR | O_CREAT);
  REQUIRE(c.ok());
  uint64_t fh = c->second.fh, ino = c->first.attr.ino;
  std::vector<uint8_t> model;
  for (int op = 0; op < 3000; ++op) {
    int kind = static_cast<int>(rng() % 10);
    if (kind < 5) {  // write, sometimes past the end (a hole of zeros)
      uint64_t off = rng() % (model.size() + 200000);
      size_t len = 1 + rng() % 70000;
      auto data = random_bytes(len, rng());
      REQUIRE(b.vfs->write(fh, off, data).ok());
      if (model.size() < off + len) model.resize(off + len, 0);
      std::copy(data.begin(), data.end(), model.begin() + static_cast<long>(off));
    } else if (kind < 6) {  // truncate down or up
      uint64_t n = rng() % (model.size() + 100000);
      SetAttrIn in;
      in.size = n;
      REQUIRE(b.io.run(b.vfs->setattr(ino, in, nullptr)).ok());
      model.resize(n, 0);
    } else if (kind < 9) {  // read a random range and compare
      uint64_t off = rng() % (model.size() + 10);
      size_t len = 1 + rng() % 200000;
      auto r = b.io.run(b.vfs->read(fh, off, len, nullptr));
      REQUIRE(r.ok());
      std::vector<uint8_t> got;
      for (auto& s : r->slices) got.insert(got.end(), s.data->begin() + s.offset, s.data->begin() + s.offset + s.length);
      size_t want = off >= model.size() ? 0 : std::min<size_t>(len, model.size() - off);
      REQUIRE(got.size() == want);
      REQUIRE(std::equal(got.begin(), got.end(), model.begin() + static_cast<long>(std::min<size_t>(off, model.size()))));
    } else {  // commit mid-way: later edits build on the committed content
      REQUIRE(b.io.run(b.vfs->fsync(fh, nullptr)).ok());
      REQUIRE(b.remote.committed("fsx.bin") == model);
    }
    REQUIRE(b.vfs->getattr(ino)->size == model.size());
  }
  REQUIRE(b.io.run(b.vfs->flush(fh, nullptr)).ok());
  b.vfs->release(fh);
  CHECK(b.remote.committed("fsx.bin") == model);
  auto fresh = b.make();
  CHECK(b.read_all(*fresh, b.ino(*fresh, "fsx.bin")) == model);
}

TEST_CASE("editing the middle of a large file uploads only the change and downloads nothing at open") {
  Bucket b;
  auto data = random_bytes(8 << 20, 2);
  REQUIRE(b.write_file("big.bin", data).ok());
  auto fresh = b.make();  // a new mount: nothing of big.bin is cached or known
  b.vfs = std::move(fresh);
  uint64_t ino = b.ino(*b.vfs, "big.bin");
  uint64_t fetched0 = b.remote.fetched_bytes.load(), uploaded0 = b.remote.uploaded_xorb_bytes.load();
  auto o = b.vfs->open(ino, O_WRONLY);
  REQUIRE(o.ok());
  auto patch = random_bytes(4096, 3);
  REQUIRE(b.vfs->write(o->fh, 4 << 20, patch).ok());
  CHECK(b.remote.fetched_bytes.load() == fetched0);  // writing needed no download
  REQUIRE(b.io.run(b.vfs->flush(o->fh, nullptr)).ok());
  b.vfs->release(o->fh);
  std::copy(patch.begin(), patch.end(), data.begin() + (4 << 20));
  CHECK(b.remote.committed("big.bin") == data);
  uint64_t uploaded = b.remote.uploaded_xorb_bytes.load() - uploaded0;
  CHECK(uploaded > 0);
  CHECK(uploaded <= data.size() / 20);  // a few chunks around the edit
}

TEST_CASE("rename, link and unlink are applied to the bucket") {
  Bucket b;
  auto a = random_bytes(300000, 4);
  auto c = random_bytes(200000, 5);
  REQUIRE(b.write_file("a.bin", a).ok());
  REQUIRE(b.write_file("c.bin", c).ok());
  REQUIRE(b.vfs->mkdir(kRootIno, "dir", 0755).ok());
  uint64_t dir = b.ino(*b.vfs, "dir");
  REQUIRE(b.io.run(b.vfs->rename(kRootIno, "a.bin", dir, "a2.bin", false, nullptr)).ok());
  CHECK_FALSE(b.remote.committed("a.bin"));
  CHECK(b.remote.committed("dir/a2.bin") == a);
  REQUIRE(b.io.run(b.vfs->rename(kRootIno, "dir", kRootIno, "moved", false, nullptr)).ok());
  CHECK(b.remote.committed("moved/a2.bin") == a);
  CHECK_FALSE(b.remote.committed("dir/a2.bin"));
  auto l = b.io.run(b.vfs->link(b.ino(*b.vfs, "c.bin"), kRootIno, "c-link.bin", nullptr));
  REQUIRE(l.ok());
  CHECK(b.remote.committed("c-link.bin") == c);
  REQUIRE(b.io.run(b.vfs->unlink(kRootIno, "c.bin", nullptr)).ok());
  CHECK_FALSE(b.remote.committed("c.bin"));
  CHECK(b.remote.committed("c-link.bin") == c);
  CHECK(b.io.run(b.vfs->unlink(kRootIno, "c.bin", nullptr)).code() == Errc::not_found);
  CHECK(b.io.run(b.vfs->rmdir(kRootIno, "moved", nullptr)).code() == Errc::not_empty);
  CHECK(b.io.run(b.vfs->rename(kRootIno, "c-link.bin", kRootIno, "moved", false, nullptr)).code() == Errc::is_dir);
}

TEST_CASE("a rename the local tree refuses commits nothing to the bucket (found by the model check)") {
  Bucket b;
  auto a = random_bytes(5000, 6);
  REQUIRE(b.vfs->mkdir(kRootIno, "src", 0755).ok());
  REQUIRE(b.vfs->mkdir(kRootIno, "full", 0755).ok());
  uint64_t src = b.ino(*b.vfs, "src"), full = b.ino(*b.vfs, "full");
  auto put = [&](uint64_t dir, const std::string& name) {
    auto c = b.vfs->create(dir, name, 0644, O_WRONLY | O_CREAT);
    REQUIRE(c.ok());
    REQUIRE(b.vfs->write(c->second.fh, 0, a).ok());
    REQUIRE(b.io.run(b.vfs->flush(c->second.fh, nullptr)).ok());
    b.vfs->release(c->second.fh);
  };
  put(src, "f.bin");
  put(full, "g.bin");
  uint64_t commits = b.remote.commit_calls.load();
  // Onto a non-empty directory: ENOTEMPTY, and nothing moved remotely.
  CHECK(b.io.run(b.vfs->rename(kRootIno, "src", kRootIno, "full", false, nullptr)).code() == Errc::not_empty);
  // Into itself: EINVAL, and nothing moved remotely.
  CHECK(b.io.run(b.vfs->rename(kRootIno, "src", src, "inner", false, nullptr)).code() == Errc::invalid_argument);
  CHECK(b.remote.commit_calls.load() == commits);
  CHECK(b.remote.committed("src/f.bin") == a);
  CHECK(b.remote.committed("full/g.bin") == a);
  CHECK_FALSE(b.remote.committed("full/f.bin"));
  // A file onto itself through another name of the same node: nothing to do.
  CHECK(b.io.run(b.vfs->rename(src, "f.bin", src, "f.bin", false, nullptr)).ok());
  CHECK(b.remote.commit_calls.load() == commits);
}

TEST_CASE("empty files move with their directory and can be linked (found by the model check)") {
  Bucket b;
  // The Hub lists an empty bucket file without an xetHash.
  RemoteEntry dir;
  dir.name = "dir";
  dir.is_dir = true;
  RemoteEntry e;
  e.name = "empty.txt";
  e.size = 0;
  b.remote.set_dir_entries("", {dir});
  b.remote.set_dir_entries("dir", {e});
  REQUIRE(b.io.run(b.vfs->rename(kRootIno, "dir", kRootIno, "moved", false, nullptr)).ok());
  auto moved = b.remote.committed("moved/empty.txt");
  REQUIRE(moved);
  CHECK(moved->empty());
  CHECK_FALSE(b.remote.committed("dir/empty.txt"));
  uint64_t ino = b.ino(*b.vfs, "moved/empty.txt");
  REQUIRE(ino);
  REQUIRE(b.io.run(b.vfs->link(ino, kRootIno, "copy.txt", nullptr)).ok());
  auto copy = b.remote.committed("copy.txt");
  REQUIRE(copy);
  CHECK(copy->empty());
}

TEST_CASE("O_TRUNC without any write is committed (found by the model check)") {
  Bucket b;
  auto data = random_bytes(70000, 7);
  REQUIRE(b.write_file("t.bin", data).ok());
  REQUIRE(b.write_file("e.bin", {}).ok());
  REQUIRE(b.vfs->mkdir(kRootIno, "d", 0755).ok());
  for (auto* name : {"t.bin", "e.bin"}) {
    INFO(name);
    uint64_t ino = b.ino(*b.vfs, name);
    auto o = b.vfs->open(ino, O_WRONLY | O_TRUNC);
    REQUIRE(o.ok());
    REQUIRE(b.io.run(b.vfs->flush(o->fh, nullptr)).ok());
    b.vfs->release(o->fh);
    auto got = b.remote.committed(name);
    REQUIRE(got);
    CHECK(got->empty());  // the bucket has the truncated (empty) file
    // ...and the node is clean again: a rename moves it remotely.
    REQUIRE(b.io.run(b.vfs->rename(kRootIno, name, b.ino(*b.vfs, "d"), name, false, nullptr)).ok());
    CHECK_FALSE(b.remote.committed(name));
    CHECK(b.remote.committed(std::string("d/") + name));
  }
}

TEST_CASE("a failing commit is retried; a persistent failure fails close and keeps the data") {
  Bucket b;
  auto data = random_bytes(100000, 6);
  b.remote.fail_commit = 2;
  REQUIRE(b.write_file("r.bin", data).ok());  // succeeds on the third attempt
  CHECK(b.vfs->stats().commit_retries.load() == 2);
  CHECK(b.remote.committed("r.bin") == data);

  auto more = random_bytes(50000, 7);
  b.remote.fail_commit = 1000;
  auto c = b.vfs->create(kRootIno, "s.bin", 0644, O_WRONLY);
  REQUIRE(c.ok());
  REQUIRE(b.vfs->write(c->second.fh, 0, more).ok());
  Status st = b.io.run(b.vfs->flush(c->second.fh, nullptr));
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Errc::server_error);
  CHECK_FALSE(b.remote.committed("s.bin"));
  // Still readable locally, and committed once the bucket recovers.
  CHECK(b.read_all(*b.vfs, c->first.attr.ino) == more);
  b.remote.fail_commit = 0;
  REQUIRE(b.io.run(b.vfs->fsync(c->second.fh, nullptr)).ok());
  CHECK(b.remote.committed("s.bin") == more);
  b.vfs->release(c->second.fh);
}

TEST_CASE("O_TRUNC reopen, junk names, and read-only mounts") {
  Bucket b;
  REQUIRE(b.write_file("t.txt", random_bytes(5000, 8)).ok());
  uint64_t ino = b.ino(*b.vfs, "t.txt");
  auto o = b.vfs->open(ino, O_WRONLY | O_TRUNC);
  REQUIRE(o.ok());
  CHECK(b.vfs->getattr(ino)->size == 0);
  std::vector<uint8_t> small{'h', 'i'};
  REQUIRE(b.vfs->write(o->fh, 0, small).ok());
  REQUIRE(b.io.run(b.vfs->flush(o->fh, nullptr)).ok());
  b.vfs->release(o->fh);
  CHECK(b.remote.committed("t.txt") == small);

  uint64_t calls = b.remote.commit_calls.load();
  REQUIRE(b.write_file(".DS_Store", random_bytes(100, 9)).ok());
  REQUIRE(b.write_file("._t.txt", random_bytes(100, 10)).ok());
  CHECK(b.remote.commit_calls.load() == calls);  // never uploaded
  CHECK(b.ino(*b.vfs, ".DS_Store") != 0);         // but present in the mount

  VfsConfig ro;
  ro.read_only = true;
  Vfs rv(ro, b.remote, b.cache, b.io.ex());
  CHECK(rv.create(kRootIno, "x", 0644, O_WRONLY).code() == Errc::read_only);
  CHECK(rv.mkdir(kRootIno, "d", 0755).code() == Errc::read_only);
}

namespace {
std::vector<uint8_t> read_handle(Bucket& b, uint64_t fh) {
  std::vector<uint8_t> out;
  for (;;) {
    auto r = b.io.run(b.vfs->read(fh, out.size(), 64 << 10, nullptr));
    if (!r.ok()) FAIL(r.error().describe());  // never EIO ("reconstruction covers up to X, needed Y")
    if (r->bytes == 0) break;
    for (auto& s : r->slices) out.insert(out.end(), s.data->begin() + s.offset, s.data->begin() + s.offset + s.length);
  }
  return out;
}
}  // namespace

// Found by the soak/model check: a file renamed over (or unlinked) while open can no longer be
// committed, yet its node kept the committed Xet hash while truncates and writes moved its
// size: a reader built from that node (any handle without the write state) asked the old
// content for bytes it never had (EIO), or served its old bytes.
TEST_CASE("a file renamed over while open reads back exactly what its handles wrote") {
  Bucket b;
  auto old = random_bytes(300000, 21), other = random_bytes(100000, 22);
  REQUIRE(b.write_file("f.bin", old).ok());
  REQUIRE(b.write_file("g.bin", other).ok());
  uint64_t f = b.ino(*b.vfs, "f.bin");
  REQUIRE(f);
  auto rd = b.vfs->open(f, O_RDONLY);  // before any write: reads the committed content
  REQUIRE(rd.ok());
  auto wr = b.vfs->open(f, O_RDWR);
  REQUIRE(wr.ok());
  REQUIRE(b.io.run(b.vfs->rename(kRootIno, "g.bin", kRootIno, "f.bin", false, nullptr)).ok());

  std::vector<uint8_t> model = old;
  SetAttrIn in;
  in.size = 1000;  // truncate below, then write past the old size
  REQUIRE(b.io.run(b.vfs->setattr(f, in, nullptr)).ok());
  model.resize(1000);
  auto head = random_bytes(500, 23), tail = random_bytes(70000, 24);
  REQUIRE(b.vfs->write(wr->fh, 200, head).ok());
  std::copy(head.begin(), head.end(), model.begin() + 200);
  REQUIRE(b.vfs->write(wr->fh, 350000, tail).ok());
  model.resize(350000, 0);
  model.insert(model.end(), tail.begin(), tail.end());

  CHECK(b.vfs->getattr(f)->size == model.size());
  CHECK(read_handle(b, rd->fh) == model);
  REQUIRE(b.io.run(b.vfs->flush(wr->fh, nullptr)).ok());  // nothing to commit: it has no name
  b.vfs->release(wr->fh);
  CHECK(read_handle(b, rd->fh) == model);
  // A handle opened on the orphan now (open("/proc/self/fd/N")) reads the same bytes.
  auto again = b.vfs->open(f, O_RDONLY);
  REQUIRE(again.ok());
  CHECK(read_handle(b, again->fh) == model);
  b.vfs->release(again->fh);
  b.vfs->release(rd->fh);
  // With every handle closed, the node still describes the written bytes, not the old hash
  // with the new size.
  CHECK(b.vfs->getattr(f)->size == model.size());
  auto last = b.vfs->open(f, O_RDONLY);
  REQUIRE(last.ok());
  CHECK(read_handle(b, last->fh) == model);
  b.vfs->release(last->fh);
  // The bucket has g's bytes under f's name; the written orphan never reached it.
  CHECK(b.remote.committed("f.bin") == other);
  CHECK_FALSE(b.remote.committed("g.bin"));
  b.vfs->forget(f, 2);  // create and lookup
  CHECK_FALSE(b.vfs->getattr(f).ok());
  CHECK(b.vfs->dirty_files() == 0);
}

// The write state of an orphan closed dirty (no flush) outlived the node; a new node given the
// same inode number (deterministic: same path) then read and extended those stale bytes.
TEST_CASE("an unlinked file's staged bytes go with its node, not to the next file of that name") {
  Bucket b;
  auto old = random_bytes(200000, 31), other = random_bytes(120000, 32);
  REQUIRE(b.write_file("f.bin", old).ok());
  REQUIRE(b.write_file("g.bin", other).ok());
  uint64_t f = b.ino(*b.vfs, "f.bin");
  auto wr = b.vfs->open(f, O_RDWR);
  REQUIRE(wr.ok());
  REQUIRE(b.io.run(b.vfs->unlink(kRootIno, "f.bin", nullptr)).ok());
  auto junk = random_bytes(250000, 33);
  REQUIRE(b.vfs->write(wr->fh, 0, junk).ok());
  b.vfs->release(wr->fh);  // no flush: a background commit finds nothing to commit
  for (int i = 0; i < 200 && b.vfs->dirty_files() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  b.vfs->forget(f, 2);  // create and lookup
  REQUIRE_FALSE(b.vfs->getattr(f).ok());
  // f.bin comes back as a copy of g: the same path, so the same inode number.
  auto l = b.io.run(b.vfs->link(b.ino(*b.vfs, "g.bin"), kRootIno, "f.bin", nullptr));
  REQUIRE(l.ok());
  CHECK(l->attr.ino == f);
  CHECK(b.read_all(*b.vfs, f) == other);
  auto wr2 = b.vfs->open(f, O_RDWR);
  REQUIRE(wr2.ok());
  REQUIRE(b.io.run(b.vfs->flush(wr2->fh, nullptr)).ok());
  b.vfs->release(wr2->fh);
  CHECK(b.remote.committed("f.bin") == other);
  CHECK(b.read_all(*b.vfs, f) == other);
}

namespace {
struct JournaledBucket {
  TempDir dir;
  IoThreads io;
  boost::asio::thread_pool cpu{1};
  FakeRemote remote;
  ChunkCache cache{64 << 20, nullptr};
  std::unique_ptr<MetaStore> meta;
  JournaledBucket() {
    remote.writable = true;
    remote.add_dir("");
    ::mkdir((dir.path() + "/staging").c_str(), 0700);
  }
  ~JournaledBucket() { quiesce(); }
  // Every thread that may run Vfs code (io threads, and the cpu pool on which upload steps
  // resume) joined: tests call this before their Vfs is destroyed.
  void quiesce() {
    io.stop();
    cpu.join();
  }
  // `on`/`on_cpu`: run on another "process" (its own io threads and cpu pool) instead.
  std::unique_ptr<Vfs> make(bool async, IoThreads* on = nullptr, boost::asio::thread_pool* on_cpu = nullptr) {
    if (!meta) meta = MetaStore::open(dir.path(), "bucket-scope").value();
    VfsConfig c;
    c.read_only = false;
    c.staging_dir = dir.path() + "/staging";
    c.async_writeback = async;
    c.commit_retry_base_ms = 1;
    c.commit_attempts = 2;
    return std::make_unique<Vfs>(c, remote, cache, on ? on->ex() : io.ex(), meta.get(),
                                 on_cpu ? on_cpu->get_executor() : cpu.get_executor());
  }
  bool wait_committed(const std::string& path, const std::vector<uint8_t>& want, int ms = 10000) {
    for (int i = 0; i < ms / 10; ++i) {
      if (remote.committed(path) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};
}  // namespace

TEST_CASE("writeback=async acknowledges close after local durability and uploads in the background") {
  JournaledBucket b;
  auto v = b.make(true);
  b.remote.delay_ms = 300;  // a slow bucket: close must not wait for it
  auto data = random_bytes(400000, 20);
  auto c = v->create(kRootIno, "async.bin", 0644, O_WRONLY);
  REQUIRE(c.ok());
  REQUIRE(v->write(c->second.fh, 0, data).ok());
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(b.io.run(v->flush(c->second.fh, nullptr)).ok());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ms < 250);
  CHECK(b.meta->list_pending().size() == 1);  // journaled until committed
  v->release(c->second.fh);
  REQUIRE(b.wait_committed("async.bin", data));
  for (int i = 0; i < 200 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.meta->list_pending().empty());
  b.remote.delay_ms = 0;
  b.quiesce();
}

TEST_CASE("writeback=sync: a close that failed still gets its data committed in the background") {
  JournaledBucket b;
  auto v = b.make(false);
  b.remote.fail_commit = 1000;  // the bucket is down while the file is closed
  auto data = random_bytes(300000, 23);
  auto c = v->create(kRootIno, "kept.bin", 0644, O_WRONLY);
  REQUIRE(c.ok());
  REQUIRE(v->write(c->second.fh, 0, data).ok());
  Status st = b.io.run(v->flush(c->second.fh, nullptr));
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Errc::server_error);  // not acknowledged
  CHECK(b.meta->list_pending().size() == 1);  // but journaled
  v->release(c->second.fh);
  // The bucket stays down past the first background tries (journaled at the close, queued again
  // at the release).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // No further close, fsync or unmount: the mount retries by itself once the bucket is back.
  b.remote.fail_commit = 0;
  REQUIRE(b.wait_committed("kept.bin", data));
  for (int i = 0; i < 200 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.meta->list_pending().empty());
  b.quiesce();
}

TEST_CASE("writeback=sync: a close the bucket refused is retried after the release, with backoff") {
  // Not retryable at close (403: close reports it and nothing is journaled), but the bytes stay
  // dirty in the mount: once the last handle is gone they are retried in the background until
  // the bucket takes them (a permission fixed on the server side), not tried once more.
  JournaledBucket b;
  auto v = b.make(false);
  b.remote.refuse("refused.bin");
  auto data = random_bytes(200000, 29);
  auto c = v->create(kRootIno, "refused.bin", 0644, O_WRONLY);
  REQUIRE(c.ok());
  REQUIRE(v->write(c->second.fh, 0, data).ok());
  Status st = b.io.run(v->flush(c->second.fh, nullptr));
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Errc::forbidden);
  v->release(c->second.fh);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past release's first try
  b.remote.refuse("");
  REQUIRE(b.wait_committed("refused.bin", data));
  CHECK(v->dirty_files() == 0);
  b.quiesce();
}

TEST_CASE("writeback=async commits a burst of small files together: few batches, few shards, every byte") {
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer a group commit of hundreds of files took over a minute in CI (the
  // waits below timed out); not yet understood, so the plain and ASan builds cover this.
  WARN("skipped under ThreadSanitizer (group commits of many files are too slow there)");
  return;
#endif
  JournaledBucket b;
  auto v = b.make(true);
  const int n = 300;
  std::vector<std::vector<uint8_t>> files;
  SECTION("all groups succeed") {}
  SECTION("the first group's batch fails: its files are retried, nothing is lost") { b.remote.fail_commit = 1; }
  for (int i = 0; i < n; ++i) {
    files.push_back(random_bytes(4096 + i, 1000 + i));
    auto c = v->create(kRootIno, "small-" + std::to_string(1000 + i), 0644, O_WRONLY);
    REQUIRE(c.ok());
    REQUIRE(v->write(c->second.fh, 0, files.back()).ok());
    REQUIRE(b.io.run(v->flush(c->second.fh, nullptr)).ok());
    v->release(c->second.fh);
  }
  // A bound against hangs, not a speed check (sanitizer builds are several times slower).
  for (int i = 0; i < n; ++i) REQUIRE(b.wait_committed("small-" + std::to_string(1000 + i), files[i], 60000));
  // One batch and one shard per group (a group gathers the closes of 50 ms, or of the
  // previous group's upload): far fewer than one per file.
  INFO("batches " << b.remote.commit_calls << ", shards " << b.remote.shard_calls << ", xorbs " << b.remote.xorb_calls);
  CHECK(b.remote.commit_calls < n / 10);
  CHECK(b.remote.shard_calls < n / 10);
  CHECK(b.remote.xorb_calls < n / 10);
  for (int i = 0; i < 300 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.meta->list_pending().empty());
  CHECK(v->dirty_files() == 0);
  b.quiesce();
}

TEST_CASE("writeback=async: a file the bucket keeps refusing does not hold back the others") {
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer a group commit of hundreds of files took over a minute in CI (the
  // waits below timed out); not yet understood, so the plain and ASan builds cover this.
  WARN("skipped under ThreadSanitizer (group commits of many files are too slow there)");
  return;
#endif
  JournaledBucket b;
  auto v = b.make(true);
  b.remote.refuse("small-1007");
  std::vector<std::vector<uint8_t>> files;
  for (int i = 0; i < 40; ++i) {
    files.push_back(random_bytes(3000 + i, 2000 + i));
    auto c = v->create(kRootIno, "small-" + std::to_string(1000 + i), 0644, O_WRONLY);
    REQUIRE(c.ok());
    REQUIRE(v->write(c->second.fh, 0, files.back()).ok());
    REQUIRE(b.io.run(v->flush(c->second.fh, nullptr)).ok());
    v->release(c->second.fh);
  }
  // Its group fails; the others land (its group's halves), and the later groups are not
  // poisoned by it.
  for (int i = 0; i < 40; ++i) {
    if (i == 7) continue;
    REQUIRE(b.wait_committed("small-" + std::to_string(1000 + i), files[i]));
  }
  CHECK_FALSE(b.remote.committed("small-1007"));
  // Kept, journaled and retried: never dropped (the others settle locally meanwhile).
  // A commit marks its files clean before it drops their journal entries: wait for both.
  for (int i = 0; i < 1000 && (v->dirty_files() > 1 || b.meta->list_pending().size() > 1); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(v->dirty_files() == 1);
  CHECK(b.meta->list_pending().size() == 1);
  // The bucket accepts it again: it lands (the retry backs off from 1 s).
  b.remote.refuse("");
  REQUIRE(b.wait_committed("small-1007", files[7], 15000));
  b.quiesce();
}

TEST_CASE("writeback=async: a commit in flight for a removed file never lands on the next file of that name") {
  JournaledBucket b;
  auto v = b.make(true);
  auto v1 = random_bytes(150000, 70), v2 = random_bytes(90000, 71);
  auto c = v->create(kRootIno, "f", 0644, O_WRONLY);
  REQUIRE(c.ok());
  uint64_t ino = c->first.attr.ino;
  REQUIRE(v->write(c->second.fh, 0, v1).ok());
  // While v1 uploads in the background: rm f, the kernel forgets it (its number is free
  // again), and a new f (same path, so the same inode number) is written and closed. The next
  // batch is recorded: it must not be v1's commit landing on the new f.
  std::vector<CommitOp> next_batch;
  std::atomic<bool> side_ok{false};
  b.remote.before_shard = [&] {
    side_ok = std::async(std::launch::async, [&]() -> bool {
      if (!b.io.run(v->unlink(kRootIno, "f", nullptr)).ok()) return false;
      v->forget(ino, 1);  // create's reference
      auto c2 = v->create(kRootIno, "f", 0644, O_WRONLY);
      if (!c2.ok() || c2->first.attr.ino != ino) return false;  // the same number: the point of this test
      if (!v->write(c2->second.fh, 0, v2).ok()) return false;
      b.remote.before_commit = [&](const std::vector<CommitOp>& ops) { next_batch = ops; };
      bool ok = b.io.run(v->flush(c2->second.fh, nullptr)).ok();
      v->release(c2->second.fh);
      return ok;
    }).get();
  };
  REQUIRE(b.io.run(v->flush(c->second.fh, nullptr)).ok());
  v->release(c->second.fh);
  REQUIRE(b.wait_committed("f", v2));
  for (int i = 0; i < 500 && v->dirty_files() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(side_ok);
  REQUIRE(v->dirty_files() == 0);
  auto want = b.remote.committed_hash("f");
  REQUIRE(want);
  for (auto& op : next_batch) {
    INFO(op.path);
    CHECK(op.hash.hex() == *want);  // only v2 is ever sent for the new f
  }
  // The journal entry is deleted just after the file is marked clean (outside the VFS lock):
  // give it a moment under a loaded machine.
  for (int i = 0; i < 500 && !b.meta->list_pending().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.meta->list_pending().empty());
  CHECK(v->getattr(ino)->size == v2.size());
  b.quiesce();
}

TEST_CASE("after a crash, the next mount resumes journaled uploads") {
  JournaledBucket b;
  auto data = random_bytes(700000, 21);
  std::string staging;
  {
    // The first "process": its io threads and cpu pool die with it (a cpu task that outlived
    // its io_context would resume a destroyed coroutine).
    IoThreads process;
    boost::asio::thread_pool process_cpu(1);
    auto v = b.make(true, &process, &process_cpu);
    b.remote.fail_commit = 1 << 30;  // the bucket refuses everything: uploads cannot finish
    auto c = v->create(kRootIno, "ckpt.bin", 0644, O_WRONLY);
    REQUIRE(c.ok());
    REQUIRE(v->write(c->second.fh, 0, data).ok());
    REQUIRE(process.run(v->flush(c->second.fh, nullptr)).ok());  // acknowledged
    auto pend = b.meta->list_pending();
    REQUIRE(pend.size() == 1);
    staging = pend[0].staging_path;
    // "kill -9": the process stops dead without committing; only the journal remembers.
    process.stop();
    process_cpu.stop();
    process_cpu.join();
    v.reset();
  }
  CHECK(::access(staging.c_str(), F_OK) == 0);  // the staged bytes survived
  CHECK_FALSE(b.remote.committed("ckpt.bin"));
  b.remote.fail_commit = 0;
  auto v = b.make(true);
  REQUIRE(b.io.run(v->recover_journal()).ok());
  REQUIRE(b.wait_committed("ckpt.bin", data));
  // Readable through the new mount meanwhile and afterwards.
  uint64_t ino = 0;
  for (int i = 0; i < 100 && !ino; ++i) {
    auto r = b.io.run(v->lookup(kRootIno, "ckpt.bin", nullptr));
    if (r.ok()) ino = r->attr.ino;
  }
  REQUIRE(ino);
  CHECK(v->getattr(ino)->size == data.size());
  for (int i = 0; i < 200 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.meta->list_pending().empty());
  for (int i = 0; i < 200 && ::access(staging.c_str(), F_OK) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(::access(staging.c_str(), F_OK) != 0);  // cleaned up once committed
  b.quiesce();
}

TEST_CASE("an interrupted directory rename is replayed from the journal") {
  JournaledBucket b;
  auto data = random_bytes(5000, 22);
  {
    auto v = b.make(false);
    REQUIRE(v->mkdir(kRootIno, "old", 0755).ok());
    auto lo = b.io.run(v->lookup(kRootIno, "old", nullptr));
    INFO((lo.ok() ? std::string("ok") : lo.error().describe()));
    REQUIRE(lo.ok());
    auto old_dir = lo->attr.ino;
    auto c = v->create(old_dir, "f.bin", 0644, O_WRONLY);
    REQUIRE(v->write(c->second.fh, 0, data).ok());
    REQUIRE(b.io.run(v->flush(c->second.fh, nullptr)).ok());
    v->release(c->second.fh);
  }
  REQUIRE(b.remote.committed("old/f.bin") == data);
  // A rename journaled but never executed (the process died before its batches).
  auto hash = xet::Hash::from_hex(std::string(64, '0')).value();
  MetaStore::PendingOps ops;
  // Reuse the committed content hash of old/f.bin through a fresh lookup of the fake.
  auto v = b.make(false);
  uint64_t od = b.io.run(v->lookup(kRootIno, "old", nullptr))->attr.ino;
  uint64_t fi = b.io.run(v->lookup(od, "f.bin", nullptr))->attr.ino;
  std::string hex = v->getxattr(fi, "user.hf.xet_hash").value();
  ops.lines.emplace_back(0, "new/f.bin", hex, 1700000000000);
  ops.lines.emplace_back(1, "old/f.bin", "", 0);
  REQUIRE(b.meta->put_ops(ops).ok());
  REQUIRE(b.io.run(v->recover_journal()).ok());
  CHECK(b.remote.committed("new/f.bin") == data);
  CHECK_FALSE(b.remote.committed("old/f.bin"));
  CHECK(b.meta->list_ops().empty());
  (void)hash;
  b.quiesce();
}

TEST_CASE("writes during a commit keep the file's size; the commit never shrinks it to its snapshot") {
  Bucket b;
  auto head = random_bytes(1000, 30), tail = random_bytes(2000, 31);
  auto c = b.vfs->create(kRootIno, "grow.bin", 0644, O_WRONLY);
  REQUIRE(c.ok());
  uint64_t fh = c->second.fh, ino = c->first.attr.ino;
  REQUIRE(b.vfs->write(fh, 0, head).ok());
  // The application keeps writing while the close of another descriptor commits.
  b.remote.before_commit = [&](const std::vector<CommitOp>&) { REQUIRE(b.vfs->write(fh, head.size(), tail).ok()); };
  REQUIRE(b.io.run(b.vfs->flush(fh, nullptr)).ok());
  CHECK(b.remote.committed("grow.bin") == head);  // the snapshot the commit started with
  CHECK(b.vfs->getattr(ino)->size == head.size() + tail.size());
  auto all = head;
  all.insert(all.end(), tail.begin(), tail.end());
  REQUIRE(b.io.run(b.vfs->flush(fh, nullptr)).ok());
  CHECK(b.remote.committed("grow.bin") == all);
  CHECK(b.vfs->getattr(ino)->size == all.size());
  b.vfs->release(fh);
}

TEST_CASE("a journaled file renamed over is not resumed over its replacement after a crash") {
  JournaledBucket b;
  auto old_f = random_bytes(300000, 40), new_g = random_bytes(200000, 41);
  {
    IoThreads process;
    boost::asio::thread_pool process_cpu(1);
    auto v = b.make(true, &process, &process_cpu);
    // g is committed.
    auto g = v->create(kRootIno, "g", 0644, O_WRONLY);
    REQUIRE(g.ok());
    REQUIRE(v->write(g->second.fh, 0, new_g).ok());
    REQUIRE(process.run(v->flush(g->second.fh, nullptr)).ok());
    v->release(g->second.fh);
    REQUIRE(b.wait_committed("g", new_g));
    for (int i = 0; i < 500 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(b.meta->list_pending().empty());
    // f is acknowledged (journaled) but its upload cannot finish; batches still work.
    b.remote.fail_put_xorb = 1 << 30;
    auto f = v->create(kRootIno, "f", 0644, O_WRONLY);
    REQUIRE(f.ok());
    REQUIRE(v->write(f->second.fh, 0, old_f).ok());
    REQUIRE(process.run(v->flush(f->second.fh, nullptr)).ok());
    v->release(f->second.fh);
    REQUIRE(b.meta->list_pending().size() == 1);
    // mv g f: the replaced f's pending upload has nowhere to go any more.
    REQUIRE(process.run(v->rename(kRootIno, "g", kRootIno, "f", false, nullptr)).ok());
    CHECK(b.remote.committed("f") == new_g);
    CHECK_FALSE(b.remote.committed("g"));
    CHECK(b.meta->list_pending().empty());
    // "kill -9".
    process.stop();
    process_cpu.stop();
    process_cpu.join();
    v.reset();
  }
  b.remote.fail_put_xorb = 0;
  auto v = b.make(true);
  REQUIRE(b.io.run(v->recover_journal()).ok());
  // Give a (wrongly) resumed upload the time to land.
  for (int i = 0; i < 100 && !b.meta->list_pending().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(b.remote.committed("f") == new_g);
  CHECK(b.meta->list_pending().empty());
  b.quiesce();
}

TEST_CASE("a commit racing a rename targets the file's name at the time of its batch") {
  Bucket b;
  auto a = random_bytes(100000, 50), g_bytes = random_bytes(80000, 51), c_bytes = random_bytes(90000, 52);
  SECTION("renamed over during the upload: the replaced file's bytes never land on the new file") {
    REQUIRE(b.write_file("g", g_bytes).ok());
    auto f = b.vfs->create(kRootIno, "f", 0644, O_WRONLY);
    REQUIRE(f.ok());
    REQUIRE(b.vfs->write(f->second.fh, 0, a).ok());
    // close(f) uploads; meanwhile (another thread) mv g f completes.
    b.remote.before_shard = [&] {
      auto st = std::async(std::launch::async, [&] {
        return b.io.run(b.vfs->rename(kRootIno, "g", kRootIno, "f", false, nullptr));
      }).get();
      REQUIRE(st.ok());
    };
    REQUIRE(b.io.run(b.vfs->flush(f->second.fh, nullptr)).ok());
    b.vfs->release(f->second.fh);
    CHECK(b.remote.committed("f") == g_bytes);
    CHECK_FALSE(b.remote.committed("g"));
  }
  SECTION("renamed during the upload: the new bytes go to the new name, the old one stays gone") {
    REQUIRE(b.write_file("f", a).ok());
    uint64_t ino = b.ino(*b.vfs, "f");
    REQUIRE(ino);
    auto o = b.vfs->open(ino, O_WRONLY);
    REQUIRE(o.ok());
    REQUIRE(b.vfs->write(o->fh, 0, c_bytes).ok());
    b.remote.before_shard = [&] {
      auto st = std::async(std::launch::async, [&] {
        return b.io.run(b.vfs->rename(kRootIno, "f", kRootIno, "h", false, nullptr));
      }).get();
      REQUIRE(st.ok());
    };
    REQUIRE(b.io.run(b.vfs->flush(o->fh, nullptr)).ok());
    b.vfs->release(o->fh);
    auto want = c_bytes;
    want.insert(want.end(), a.begin() + c_bytes.size(), a.end());
    CHECK_FALSE(b.remote.committed("f"));
    CHECK(b.remote.committed("h") == want);
  }
}

TEST_CASE("an mtime change racing a commit of new content never puts the old content back") {
  Bucket b;
  auto a = random_bytes(100000, 60), c_bytes = random_bytes(100000, 61);
  REQUIRE(b.write_file("f", a).ok());
  uint64_t ino = b.ino(*b.vfs, "f");
  REQUIRE(ino);
  // touch -m f: its batch (old content, new mtime) is held in flight while another thread
  // writes f and closes it. That commit must not land before the touch's batch, or the touch
  // would put the old bytes back over the new ones.
  std::future<Status> writer;
  b.remote.before_commit = [&](const std::vector<CommitOp>&) {
    writer = std::async(std::launch::async, [&]() -> Status {
      auto o = b.vfs->open(ino, O_WRONLY);
      if (!o.ok()) return std::move(o).error();
      if (auto w = b.vfs->write(o->fh, 0, c_bytes); !w.ok()) return std::move(w).error();
      auto st = b.io.run(b.vfs->flush(o->fh, nullptr));
      b.vfs->release(o->fh);
      return st;
    });
    // Long enough for the writer's commit to finish if nothing orders it after this batch.
    (void)writer.wait_for(std::chrono::milliseconds(700));
  };
  SetAttrIn in;
  in.mtime_ns = int64_t{1700000000} * 1000000000;
  REQUIRE(b.io.run(b.vfs->setattr(ino, in, nullptr)).ok());
  REQUIRE(writer.valid());
  REQUIRE(writer.get().ok());
  CHECK(b.remote.committed("f") == c_bytes);
}
