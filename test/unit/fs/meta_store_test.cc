#include <catch2/catch.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <vector>

#include "cache/kv_store.h"
#include "fs/meta_store.h"
#include "test/unit/cache/test_util.h"

using namespace hf;
using namespace hf::fs;
using hf::cache::test::TempDir;

namespace {

ListedEntry entry(int i) {
  ListedEntry e;
  e.name = "file-" + std::to_string(i) + ".bin";
  e.kind = i % 7 == 0 ? NodeKind::dir : NodeKind::file;
  e.size = static_cast<uint64_t>(i) * 1000003;
  e.mtime_ns = 1700000000000000000LL + i;
  e.content.source = i % 7 == 0 ? Content::Source::empty : Content::Source::xet;
  e.content.id.fill(static_cast<uint8_t>(i));
  e.content.etag = "etag" + std::to_string(i);
  return e;
}

bool same(const ListedEntry& a, const ListedEntry& b) {
  return a.name == b.name && a.kind == b.kind && a.size == b.size && a.mtime_ns == b.mtime_ns &&
         a.content.source == b.content.source && a.content.id == b.content.id && a.content.etag == b.content.etag &&
         a.symlink_target == b.symlink_target;
}

}  // namespace

TEST_CASE("listings round-trip, across pages and reopen") {
  TempDir d;
  std::vector<ListedEntry> es;
  for (int i = 0; i < 10000; ++i) es.push_back(entry(i));
  {
    auto m = MetaStore::open(d.path(), "http://hub\nmodel\nacme/tiny").value();
    REQUIRE_FALSE(m->read_only());
    REQUIRE(m->put_listing("c1", "sub/dir", es).ok());
    REQUIRE(m->put_listing("c1", "", {}).ok());
    CHECK_FALSE(m->get_listing("c1", "sub"));       // a prefix of a stored path is not stored
    CHECK_FALSE(m->get_listing("c2", "sub/dir"));   // other commit
  }
  auto m = MetaStore::open(d.path(), "http://hub\nmodel\nacme/tiny").value();
  auto back = m->get_listing("c1", "sub/dir");
  REQUIRE(back);
  REQUIRE(back->size() == es.size());
  for (size_t i = 0; i < es.size(); ++i) REQUIRE(same((*back)[i], es[i]));
  auto empty = m->get_listing("c1", "");
  REQUIRE(empty);
  CHECK(empty->empty());
  // Rewriting a directory replaces it entirely.
  REQUIRE(m->put_listing("c1", "sub/dir", {entry(1)}).ok());
  CHECK(m->get_listing("c1", "sub/dir")->size() == 1);
}

TEST_CASE("refs and chunk maps round-trip") {
  TempDir d;
  auto m = MetaStore::open(d.path(), "scope").value();
  RefRecord r{"0123456789abcdef0123456789abcdef01234567", 111, 222, "acme/tiny"};
  REQUIRE(m->put_ref("main", r).ok());
  auto g = m->get_ref("main");
  REQUIRE(g);
  CHECK(g->commit == r.commit);
  CHECK(g->resolved_at_ns == 111);
  CHECK(g->last_modified_ns == 222);
  CHECK(g->repo_id == "acme/tiny");
  CHECK_FALSE(m->get_ref("dev"));

  std::array<uint8_t, 32> content{};
  content.fill(9);
  std::vector<ChunkMapEntry> cs;
  for (uint32_t i = 0; i < 300; ++i) {
    ChunkMapEntry e;
    e.offset = uint64_t(i) * 70000 + (i > 255 ? (1ull << 33) : 0);  // offsets beyond 4 GiB too
    e.xorb.fill(static_cast<uint8_t>(i / 10));
    e.index = i % 10;
    e.len = 70000;
    cs.push_back(e);
  }
  std::vector<ChunkMapEntry> shuffled = cs;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  REQUIRE(m->put_chunks(content, shuffled).ok());
  auto back = m->get_chunks(content);
  REQUIRE(back.size() == cs.size());
  for (size_t i = 0; i < cs.size(); ++i) {  // sorted by offset (big-endian keys)
    CHECK(back[i].offset == cs[i].offset);
    CHECK(back[i].xorb == cs[i].xorb);
    CHECK(back[i].index == cs[i].index);
    CHECK(back[i].len == cs[i].len);
  }
  content.fill(8);
  CHECK(m->get_chunks(content).empty());
}

TEST_CASE("damaged listings are ignored, never half-served") {
  TempDir d;
  std::vector<ListedEntry> es;
  for (int i = 0; i < 5000; ++i) es.push_back(entry(i));
  { REQUIRE(MetaStore::open(d.path(), "s").value()->put_listing("c", "d", es).ok()); }
  // Find the database directory and tamper with it through the raw KV API.
  std::string db;
  for (auto& p : std::filesystem::directory_iterator(d.path() + "/meta")) db = p.path();
  cache::KvOptions o;
  o.column_families = {{"refs"}, {"dirs"}, {"chunkmap"}};
  std::string marker, page1;
  {
    auto kv = cache::KvStore::open(db, o).value();
    REQUIRE(kv->scan_prefix("dirs", "", [&](std::string_view k, std::string_view v) {
      if (static_cast<uint8_t>(k.back()) == 0xFF) marker = std::string(k);
      if (k.back() == 1) page1 = std::string(k);
      (void)v;
      return true;
    }).ok());
    REQUIRE(!marker.empty());
    REQUIRE(!page1.empty());
    // A page whose content lies about its entry count.
    REQUIRE(kv->put("dirs", page1, std::string("\x01\xff\xff\xff\x7f garbage", 14)).ok());
  }
  CHECK_FALSE(MetaStore::open(d.path(), "s").value()->get_listing("c", "d"));
  {
    REQUIRE(MetaStore::open(d.path(), "s").value()->put_listing("c", "d", es).ok());
    auto kv = cache::KvStore::open(db, o).value();
    REQUIRE(kv->del("dirs", marker).ok());  // as if the process died before the marker
  }
  CHECK_FALSE(MetaStore::open(d.path(), "s").value()->get_listing("c", "d"));
}

TEST_CASE("decoding random bytes never crashes and never accepts garbage silently") {
  std::mt19937 rng(5);
  std::string good = MetaStore::encode_entries(std::vector<ListedEntry>{entry(1), entry(2)}.data(), 2);
  REQUIRE(MetaStore::decode_entries(good).ok());
  for (size_t cut = 0; cut < good.size(); ++cut) CHECK_FALSE(MetaStore::decode_entries(good.substr(0, cut)).ok());
  for (int i = 0; i < 20000; ++i) {
    std::string v(rng() % 200, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    if (!v.empty()) v[0] = 1;
    auto r = MetaStore::decode_entries(v);
    if (r.ok()) {
      for (auto& e : *r) CHECK(valid_entry_name(e.name));
    }
  }
}

// The second process of the test below: a fresh exec of this binary (hidden tag), not a fork,
// because a child forked from a multi-threaded process (RocksDB's pool) may inherit a lock some
// other thread held; it deadlocked in ASan's allocator.
TEST_CASE("meta store child: opens the store named by HF_META_CHILD_DIR", "[.meta-store-child]") {
  const char* dir = std::getenv("HF_META_CHILD_DIR");
  REQUIRE(dir != nullptr);
  auto r = MetaStore::open(dir, "shared");
  REQUIRE(r.ok());
  CHECK((*r)->read_only());
  CHECK((*r)->get_listing("c", ""));
  CHECK((*r)->put_listing("c", "x", {}).ok());  // writes are silently skipped
}

TEST_CASE("a second process opening the same store follows it read-only") {
  TempDir d;
  auto m = MetaStore::open(d.path(), "shared").value();
  REQUIRE(m->put_listing("c", "", {entry(3)}).ok());
  const std::string env = "HF_META_CHILD_DIR=" + d.path();
  char arg0[] = "unit_fs", arg1[] = "[.meta-store-child]";
  char* argv[] = {arg0, arg1, nullptr};
  std::vector<char*> envp{const_cast<char*>(env.c_str())};  // plus ours (sanitizer options...)
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // Catch's exit code: the child's failed assertions
}
