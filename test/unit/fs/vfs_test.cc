#include <catch2/catch.hpp>

#include <fcntl.h>

#include <filesystem>

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

VfsConfig config() {
  VfsConfig c;
  c.source = "hf://acme/tiny";
  c.reader.retry_base_ms = 1;
  c.reader.max_attempts = 2;
  return c;
}

// Looks a path up component by component through the async API, like the kernel would.
Result<EntryOut> walk(IoThreads& io, Vfs& v, const std::string& path) {
  uint64_t ino = kRootIno;
  EntryOut e;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    std::string name = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    auto r = io.run(v.lookup(ino, name, nullptr));
    if (!r.ok()) return r;
    if (r->attr.ino == 0) return Error(Errc::not_found, "negative entry for " + name);
    e = *r;
    ino = e.attr.ino;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return e;
}

Result<std::vector<uint8_t>> read_all(IoThreads& io, Vfs& v, uint64_t ino) {
  auto o = v.open(ino, O_RDONLY);
  if (!o.ok()) return std::move(o).error();
  std::vector<uint8_t> out;
  for (uint64_t off = 0;; off += 128 << 10) {
    auto r = io.run(v.read(o->fh, off, 128 << 10, nullptr));
    if (!r.ok()) {
      v.release(o->fh);
      return std::move(r).error();
    }
    auto part = flatten(*r);
    if (part.empty()) break;
    out.insert(out.end(), part.begin(), part.end());
  }
  v.release(o->fh);
  return out;
}

}  // namespace

TEST_CASE("lookup, negative entries, readdir snapshots and attributes") {
  IoThreads io;
  FakeRemote remote;
  auto model = random_bytes(500000, 1);
  remote.add_xet_file("model.safetensors", model);
  remote.add_http_file("config.json", {'{', '}'});
  remote.add_xet_file("sub/deep/w.bin", random_bytes(70000, 2));
  ChunkCache cache(64 << 20, nullptr);
  VfsConfig cfg = config();
  cfg.table.uid = 1234;
  Vfs v(cfg, remote, cache, io.ex());

  // Not listed yet: the fast path declines; the async path lists once.
  CHECK_FALSE(v.lookup_fast(kRootIno, "model.safetensors"));
  auto m = walk(io, v, "model.safetensors");
  REQUIRE(m.ok());
  CHECK(m->attr.size == model.size());
  CHECK(m->attr.uid == 1234);
  CHECK(m->attr.perm == 0444);
  // Now a miss is answered from memory, as a cacheable negative entry.
  auto neg = v.lookup_fast(kRootIno, "README.md");
  REQUIRE(neg);
  REQUIRE(neg->ok());
  CHECK((*neg)->attr.ino == 0);
  CHECK((*neg)->entry_timeout > 0);
  CHECK(remote.list_calls.load() == 1);

  auto deep = walk(io, v, "sub/deep/w.bin");
  REQUIRE(deep.ok());
  CHECK(v.getattr(deep->attr.ino)->size == 70000);

  auto d = v.opendir_fast(kRootIno);
  REQUIRE(d);
  REQUIRE(d->ok());
  auto snap = v.dir_snapshot((*d)->fh);
  REQUIRE(snap);
  std::vector<std::string> names;
  for (auto& e : snap->entries) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"config.json", "model.safetensors", "sub"});
  v.releasedir((*d)->fh);

  // Files under a file, and files opened for writing, are refused with the right causes.
  CHECK(io.run(v.lookup(m->attr.ino, "x", nullptr)).code() == Errc::not_dir);
  CHECK(v.open(m->attr.ino, O_WRONLY).code() == Errc::read_only);
  CHECK(v.open(m->attr.ino, O_RDONLY | O_TRUNC).code() == Errc::read_only);
  CHECK(v.open(kRootIno, O_RDONLY).code() == Errc::is_dir);
  CHECK(v.lookup_fast(kRootIno, std::string(256, 'a'))->code() == Errc::name_too_long);
  io.stop();
}

TEST_CASE("reads through the VFS return exact bytes for Xet, HTTP and empty files") {
  IoThreads io;
  FakeRemote remote;
  auto model = random_bytes(3 << 20, 3);
  auto cfgjson = random_bytes(5000, 4);
  remote.add_xet_file("m.bin", model);
  remote.add_http_file("config.json", cfgjson);
  remote.add_http_file("empty.txt", {});
  ChunkCache cache(64 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  auto a = read_all(io, v, walk(io, v, "m.bin")->attr.ino);
  REQUIRE(a.ok());
  CHECK(sha256(a->data(), a->size()) == sha256(model.data(), model.size()));
  auto b = read_all(io, v, walk(io, v, "config.json")->attr.ino);
  REQUIRE(b.ok());
  CHECK(*b == cfgjson);
  auto c = read_all(io, v, walk(io, v, "empty.txt")->attr.ino);
  REQUIRE(c.ok());
  CHECK(c->empty());
  io.stop();
}

TEST_CASE("xattrs describe the content and its cache state") {
  IoThreads io;
  FakeRemote remote;
  auto data = random_bytes(400000, 5);
  xet::Hash h = remote.add_xet_file("w.bin", data);
  ChunkCache cache(64 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  uint64_t ino = walk(io, v, "w.bin")->attr.ino;
  CHECK(v.getxattr(ino, "user.hf.xet_hash").value() == h.hex());
  CHECK(v.getxattr(ino, "user.hf.source").value() == "hf://acme/tiny");
  CHECK(v.getxattr(ino, "user.hf.revision").value() == remote.revision());
  CHECK(v.getxattr(ino, "user.hf.cached_bytes").value() == "0");
  CHECK(v.getxattr(ino, "user.nope").code() == Errc::no_data);
  REQUIRE(read_all(io, v, ino).ok());
  CHECK(v.getxattr(ino, "user.hf.cached_bytes").value() == std::to_string(data.size()));
  auto names = v.listxattr(ino).value();
  CHECK(std::find(names.begin(), names.end(), "user.hf.xet_hash") != names.end());
  CHECK(v.listxattr(kRootIno)->size() == 2);
  io.stop();
}

TEST_CASE("hostile listings: bad names and entries are skipped, the rest is served") {
  IoThreads io;
  FakeRemote remote;
  std::vector<RemoteEntry> es;
  for (std::string n : {std::string("ok.txt"), std::string(".."), std::string("."), std::string("a/b"),
                        std::string("nul\0x", 5), std::string(300, 'z'), std::string("dup")}) {
    RemoteEntry e;
    e.name = n;
    e.size = 1;
    e.oid = "1234";
    es.push_back(e);
  }
  RemoteEntry bad;
  bad.name = "badhash";
  bad.size = 10;
  bad.xet_hash = "not-hex";
  es.push_back(bad);
  RemoteEntry dup;  // a directory with the same name as a file: the first wins
  dup.name = "dup";
  dup.is_dir = true;
  es.push_back(dup);
  remote.set_dir_entries("", es);
  ChunkCache cache(1 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  REQUIRE(io.run(v.ensure_listed(kRootIno, nullptr)).ok());
  auto snap = v.table().snapshot(kRootIno);
  std::vector<std::string> names;
  for (auto& e : snap->entries) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"dup", "ok.txt"});
  CHECK(snap->entries[0].attr.kind == NodeKind::file);
  CHECK(v.stats().skipped_names.load() == 6);
  io.stop();
}

TEST_CASE("one content listed with two sizes: each file keeps its own size and bytes") {
  IoThreads io;
  FakeRemote remote;
  auto data = random_bytes(300000, 8);
  xet::Hash h = remote.add_xet_file("real.bin", data);
  // A hostile or inconsistent listing: the same Xet hash under a larger size, listed first.
  RemoteEntry liar;
  liar.name = "liar.bin";
  liar.size = data.size() * 2;
  liar.xet_hash = h.hex();
  RemoteEntry real;
  real.name = "real.bin";
  real.size = data.size();
  real.xet_hash = h.hex();
  remote.set_dir_entries("", {liar, real});
  ChunkCache cache(64 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  auto bad = read_all(io, v, walk(io, v, "liar.bin")->attr.ino);
  CHECK_FALSE(bad.ok());  // the content ends before its listed size: an error, never made-up bytes
  auto good = read_all(io, v, walk(io, v, "real.bin")->attr.ino);
  REQUIRE(good.ok());
  CHECK(*good == data);
  io.stop();
}

TEST_CASE("a listing the server answers with an oversized body is an I/O error, not EFBIG") {
  IoThreads io;
  FakeRemote remote;
  remote.add_http_file("d/x.txt", {'x'});
  ChunkCache cache(1 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  auto d = walk(io, v, "d");
  REQUIRE(d.ok());
  remote.fail_list_code = Errc::too_large;
  remote.fail_list = 1;
  auto st = io.run(v.ensure_listed(d->attr.ino, nullptr));
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Errc::io);
  CHECK_THAT(st.error().message, Catch::Contains("injected listing failure"));
  io.stop();
}

TEST_CASE("a remount serves listings and cached bytes with the network gone") {
  TempDir dir;
  auto data = random_bytes(2 << 20, 6);
  uint64_t ino1 = 0;
  {
    IoThreads io;
    FakeRemote remote;
    remote.add_xet_file("sub/w.bin", data);
    auto meta = MetaStore::open(dir.path(), "scope").value();
    cache::DiskChunkStoreOptions dso;
    dso.dir = dir.path();
    dso.max_bytes = 1ull << 30;
    ChunkCache cache(64 << 20, cache::DiskChunkStore::open(dso).value());
    Vfs v(config(), remote, cache, io.ex(), meta.get());
    ino1 = walk(io, v, "sub/w.bin")->attr.ino;
    auto got = read_all(io, v, ino1);
    REQUIRE(got.ok());
    cache.flush();
    io.stop();
  }
  IoThreads io;
  FakeRemote remote;  // knows nothing and fails everything
  remote.fail_list = 1 << 30;
  remote.fail_reconstruct = 1 << 30;
  remote.fail_fetch = 1 << 30;
  auto meta = MetaStore::open(dir.path(), "scope").value();
  cache::DiskChunkStoreOptions dso;
  dso.dir = dir.path();
  dso.max_bytes = 1ull << 30;
  ChunkCache cache(64 << 20, cache::DiskChunkStore::open(dso).value());
  Vfs v(config(), remote, cache, io.ex(), meta.get());
  auto e = walk(io, v, "sub/w.bin");
  REQUIRE(e.ok());
  CHECK(e->attr.ino == ino1);  // same inode number across mounts
  auto got = read_all(io, v, e->attr.ino);
  REQUIRE(got.ok());
  CHECK(sha256(got->data(), got->size()) == sha256(data.data(), data.size()));
  CHECK(remote.list_calls.load() == 0);
  CHECK(remote.fetch_calls.load() == 0);
  CHECK(v.stats().listings_from_store.load() == 2);
  // Uncached names still answer from the stored listing (negative entry), not the network.
  auto miss = io.run(v.lookup(kRootIno, "nothing-here", nullptr));
  REQUIRE(miss.ok());
  CHECK(miss->attr.ino == 0);
  io.stop();
}

TEST_CASE("a moved branch is followed: changes appear, open files keep their bytes, kernel caches are invalidated") {
  IoThreads io;
  FakeRemote remote;
  auto v1 = random_bytes(300000, 11);
  auto keep = random_bytes(1000, 12);
  remote.add_xet_file("model.bin", v1);
  remote.add_xet_file("keep.bin", keep);
  remote.add_xet_file("gone.bin", random_bytes(500, 13));
  ChunkCache cache(64 << 20, nullptr);
  Vfs v(config(), remote, cache, io.ex());
  std::vector<Invalidation> seen;
  std::mutex seen_mu;
  v.set_invalidator([&](std::vector<Invalidation> inv) {
    std::lock_guard lk(seen_mu);
    seen.insert(seen.end(), inv.begin(), inv.end());
  });
  uint64_t model = walk(io, v, "model.bin")->attr.ino;
  uint64_t keep_ino = walk(io, v, "keep.bin")->attr.ino;
  auto open_old = v.open(model, O_RDONLY);  // held open across the change
  REQUIRE(open_old.ok());

  CHECK_FALSE(io.run(v.poll_once(nullptr)).value());  // nothing moved yet

  // The branch moves: model.bin changes, gone.bin disappears, new.bin appears.
  auto v2 = random_bytes(400000, 14);
  remote.remove_file("model.bin");
  remote.remove_file("gone.bin");
  remote.add_xet_file("model.bin", v2);
  remote.add_xet_file("new.bin", random_bytes(700, 15));
  remote.set_head("2222222222222222222222222222222222222222");
  REQUIRE(io.run(v.poll_once(nullptr)).value());
  CHECK(v.revision() == "2222222222222222222222222222222222222222");

  CHECK(walk(io, v, "model.bin")->attr.ino == model);  // same inode, new content
  CHECK(v.getattr(model)->size == v2.size());
  CHECK(walk(io, v, "keep.bin")->attr.ino == keep_ino);
  CHECK(walk(io, v, "new.bin").ok());
  CHECK(io.run(v.lookup(kRootIno, "gone.bin", nullptr))->attr.ino == 0);

  // The handle opened before the change still reads the old bytes...
  std::vector<uint8_t> old_bytes;
  for (uint64_t off = 0; off < v1.size(); off += 65536) {
    auto r = io.run(v.read(open_old->fh, off, 65536, nullptr));
    REQUIRE(r.ok());
    old_bytes.insert(old_bytes.end(), r->slices[0].data->begin() + r->slices[0].offset,
                     r->slices[0].data->begin() + r->slices[0].offset + r->slices[0].length);
    for (size_t i = 1; i < r->slices.size(); ++i) {
      auto& s = r->slices[i];
      old_bytes.insert(old_bytes.end(), s.data->begin() + s.offset, s.data->begin() + s.offset + s.length);
    }
  }
  CHECK(old_bytes == v1);
  v.release(open_old->fh);
  // ...and a new open reads the new ones, with the kernel told to drop its pages.
  auto reopened = v.open(model, O_RDONLY);
  REQUIRE(reopened.ok());
  CHECK_FALSE(reopened->keep_cache);
  v.release(reopened->fh);

  std::lock_guard lk(seen_mu);
  auto has = [&](Invalidation::Kind k, uint64_t ino, const std::string& name) {
    for (auto& i : seen) {
      if (i.kind == k && i.ino == ino && i.name == name) return true;
    }
    return false;
  };
  CHECK(has(Invalidation::Kind::entry, kRootIno, "gone.bin"));
  CHECK(has(Invalidation::Kind::entry, kRootIno, "new.bin"));
  CHECK(has(Invalidation::Kind::inode_attrs, model, ""));  // open at the time: attributes only
  CHECK_FALSE(has(Invalidation::Kind::inode_pages, model, ""));
  CHECK(has(Invalidation::Kind::inode_pages, kRootIno, ""));
  CHECK_FALSE(has(Invalidation::Kind::inode_pages, keep_ino, ""));
  io.stop();
}
