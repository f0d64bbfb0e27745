#include "cache/kv_store.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "test/unit/cache/test_util.h"

using hf::Errc;
using hf::cache::KvOptions;
using hf::cache::KvStore;
using namespace hf::cache::test;

namespace {

KvOptions two_families() {
  KvOptions o;
  o.column_families = {{"inodes", 2}, {"plans", 0}};
  return o;
}

std::unique_ptr<KvStore> open_kv(const std::string& path, KvOptions o = two_families()) {
  auto r = KvStore::open(path, o);
  INFO((r.ok() ? std::string() : r.error().describe()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::map<std::string, std::string> scan_all(const KvStore& kv, std::string_view cf,
                                            std::string_view prefix) {
  std::map<std::string, std::string> out;
  auto st = kv.scan_prefix(cf, prefix, [&](std::string_view k, std::string_view v) {
    out.emplace(std::string(k), std::string(v));
    return true;
  });
  REQUIRE(st.ok());
  return out;
}

// Keys over a small alphabet that includes 0x00 and 0xff, so prefixes collide and successor
// computation is exercised.
std::string random_key(uint64_t& s) {
  static const char alphabet[] = {'a', 'b', '\0', '\xff'};
  size_t len = 1 + splitmix64(s) % 4;
  std::string k;
  for (size_t i = 0; i < len; ++i) k.push_back(alphabet[splitmix64(s) % 4]);
  return k;
}

}  // namespace

TEST_CASE("kv: put, get, del, families and errors", "[cache][kv]") {
  TempDir td;
  auto kv = open_kv(td.path() + "/db");
  CHECK_FALSE(kv->is_secondary());
  auto fams = kv->column_families();
  CHECK(std::find(fams.begin(), fams.end(), "default") != fams.end());
  CHECK(std::find(fams.begin(), fams.end(), "inodes") != fams.end());

  REQUIRE(kv->put("inodes", "k1", "v1").ok());
  REQUIRE(kv->put("plans", "k1", "other").ok());
  REQUIRE(kv->put("default", std::string("bin\0key", 7), std::string("\0\1\2", 3)).ok());
  CHECK(kv->get("inodes", "k1")->value() == "v1");
  CHECK(kv->get("plans", "k1")->value() == "other");
  CHECK(kv->get("default", std::string("bin\0key", 7))->value() == std::string("\0\1\2", 3));
  CHECK_FALSE(kv->get("inodes", "nope")->has_value());
  REQUIRE(kv->del("inodes", "k1").ok());
  CHECK_FALSE(kv->get("inodes", "k1")->has_value());
  CHECK(kv->del("inodes", "never-there").ok());

  auto bad = kv->get("missing", "k");
  CHECK(bad.code() == Errc::invalid_argument);
  CHECK(bad.error().message.find("missing") != std::string::npos);
  CHECK(kv->put("missing", "k", "v").code() == Errc::invalid_argument);

  // A batch with an unknown family writes nothing.
  auto b = kv->batch();
  b.put("inodes", "x", "1");
  b.put("missing", "y", "2");
  CHECK(b.commit().code() == Errc::invalid_argument);
  CHECK_FALSE(kv->get("inodes", "x")->has_value());
}

TEST_CASE("kv: batches are atomic groups; delete_prefix handles every prefix shape", "[cache][kv]") {
  TempDir td;
  auto kv = open_kv(td.path() + "/db");
  auto b = kv->batch();
  b.put("inodes", "aa1", "1");
  b.put("inodes", "aa2", "2");
  b.put("inodes", "ab1", "3");
  b.put("inodes", std::string("\xff\xff" "a", 3), "4");
  b.put("inodes", std::string("\xff\xff", 2), "5");
  b.put("inodes", "b", "6");
  b.del("inodes", "b");
  CHECK(b.count() == 7);
  REQUIRE(b.commit(/*sync=*/true).ok());
  CHECK(b.count() == 0);

  CHECK(scan_all(*kv, "inodes", "aa") ==
        std::map<std::string, std::string>{{"aa1", "1"}, {"aa2", "2"}});
  CHECK(scan_all(*kv, "inodes", "a").size() == 3);  // shorter than the 2-byte prefix extractor
  CHECK(scan_all(*kv, "inodes", "").size() == 5);

  // Early stop.
  int seen = 0;
  REQUIRE(kv->scan_prefix("inodes", "", [&](std::string_view, std::string_view) { return ++seen < 2; }).ok());
  CHECK(seen == 2);

  REQUIRE(kv->delete_prefix("inodes", "aa").ok());
  CHECK(scan_all(*kv, "inodes", "a") == std::map<std::string, std::string>{{"ab1", "3"}});
  REQUIRE(kv->delete_prefix("inodes", std::string("\xff\xff", 2)).ok());  // no successor
  CHECK(scan_all(*kv, "inodes", "").size() == 1);
  REQUIRE(kv->delete_prefix("inodes", "").ok());  // everything
  CHECK(scan_all(*kv, "inodes", "").empty());
}

TEST_CASE("kv: reference model with reopen", "[cache][kv][model]") {
  TempDir td;
  const std::string path = td.path() + "/db";
  auto kv = open_kv(path);
  const char* cfs[] = {"inodes", "plans"};
  std::map<std::string, std::string> model[2];
  uint64_t s = 2024;
  for (int op = 0; op < 10000; ++op) {
    const int c = static_cast<int>(splitmix64(s) % 2);
    const int kind = static_cast<int>(splitmix64(s) % 100);
    INFO("op " << op << " kind " << kind);
    if (kind < 35) {
      std::string k = random_key(s), v = std::to_string(splitmix64(s));
      REQUIRE(kv->put(cfs[c], k, v).ok());
      model[c][k] = v;
    } else if (kind < 45) {
      std::string k = random_key(s);
      REQUIRE(kv->del(cfs[c], k).ok());
      model[c].erase(k);
    } else if (kind < 55) {
      auto b = kv->batch();
      auto next = model[c];
      for (int i = 0; i < 5; ++i) {
        std::string k = random_key(s);
        if (splitmix64(s) % 3 == 0) {
          b.del(cfs[c], k);
          next.erase(k);
        } else {
          std::string v = "b" + std::to_string(i);
          b.put(cfs[c], k, v);
          next[k] = v;
        }
      }
      REQUIRE(b.commit(splitmix64(s) % 2 == 0).ok());
      model[c] = std::move(next);
    } else if (kind < 75) {
      std::string k = random_key(s);
      auto got = kv->get(cfs[c], k);
      REQUIRE(got.ok());
      auto m = model[c].find(k);
      if (m == model[c].end()) REQUIRE_FALSE(got->has_value());
      else REQUIRE(got->value() == m->second);
    } else if (kind < 90) {
      std::string p = random_key(s).substr(0, splitmix64(s) % 3);
      std::map<std::string, std::string> expect;
      for (auto& [k, v] : model[c])
        if (k.compare(0, p.size(), p) == 0) expect.emplace(k, v);
      REQUIRE(scan_all(*kv, cfs[c], p) == expect);
    } else if (kind < 95) {
      std::string p = random_key(s).substr(0, 1 + splitmix64(s) % 2);
      REQUIRE(kv->delete_prefix(cfs[c], p).ok());
      std::erase_if(model[c], [&](auto& kvp) { return kvp.first.compare(0, p.size(), p) == 0; });
    } else {
      std::string k = random_key(s);
      auto got = kv->get(cfs[c], k);
      REQUIRE(got.ok());
      REQUIRE(got->has_value() == model[c].count(k) > 0);
    }
    if (op % 400 == 399) {  // reopen: everything acknowledged must be there
      kv.reset();
      kv = open_kv(path);
    }
    if (op % 1000 == 500) REQUIRE(kv->compact().ok());
  }
  kv.reset();
  kv = open_kv(path);
  for (int c = 0; c < 2; ++c) CHECK(scan_all(*kv, cfs[c], "") == model[c]);
  auto size = kv->approximate_size();
  REQUIRE(size.ok());
  CHECK(*size > 0);
}

TEST_CASE("kv: new families can be added on reopen; existing ones are kept", "[cache][kv]") {
  TempDir td;
  const std::string path = td.path() + "/db";
  {
    auto kv = open_kv(path);
    REQUIRE(kv->put("plans", "p", "1").ok());
  }
  KvOptions o;
  o.column_families = {{"journal", 0}};
  auto kv = open_kv(path, o);
  auto fams = kv->column_families();
  CHECK(std::find(fams.begin(), fams.end(), "plans") != fams.end());
  CHECK(std::find(fams.begin(), fams.end(), "journal") != fams.end());
  CHECK(kv->get("plans", "p")->value() == "1");
  REQUIRE(kv->put("journal", "j", "2", /*sync=*/true).ok());
}

TEST_CASE("kv: a second writer gets busy; a secondary follows the primary",
          "[cache][kv][multiprocess]") {
  TempDir td;
  const std::string path = td.path() + "/db";
  int to_child[2], to_parent[2];
  REQUIRE(::pipe(to_child) == 0);
  REQUIRE(::pipe(to_parent) == 0);
  auto send = [](int fd, char c) { return ::write(fd, &c, 1) == 1; };
  auto recv = [](int fd) {
    char c = 0;
    return ::read(fd, &c, 1) == 1 ? c : char(0);
  };

  // Fork before the parent touches RocksDB, so the child starts with a clean library state.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (recv(to_child[0]) != 'o') ::_exit(10);
    auto w = KvStore::open(path, two_families());
    if (w.ok()) ::_exit(11);                       // must not get the write lock
    if (w.code() != Errc::busy) ::_exit(12);
    if (w.error().message.find("in use") == std::string::npos) ::_exit(13);
    auto sec = KvStore::open_secondary(path, td.path() + "/secondary", two_families());
    if (!sec.ok()) ::_exit(14);
    auto a = (*sec)->get("inodes", "a");
    if (!a.ok() || !a->has_value() || a->value() != "1") ::_exit(15);
    if ((*sec)->put("inodes", "z", "0").code() != Errc::read_only) ::_exit(16);
    if (!send(to_parent[1], 'r') || recv(to_child[0]) != 'w') ::_exit(17);
    // Before catching up the new key may be invisible; after, it must be there.
    if (!(*sec)->try_catch_up().ok()) ::_exit(18);
    auto b = (*sec)->get("inodes", "b");
    if (!b.ok() || !b->has_value() || b->value() != "2") ::_exit(19);
    auto a2 = (*sec)->get("inodes", "a");
    if (!a2.ok() || a2->has_value()) ::_exit(20);  // deleted by the primary
    ::_exit(0);
  }

  auto kv = open_kv(path);
  REQUIRE(kv->put("inodes", "a", "1").ok());
  // The same process cannot open it twice either.
  auto again = KvStore::open(path, two_families());
  CHECK(again.code() == Errc::busy);
  REQUIRE(send(to_child[1], 'o'));
  REQUIRE(recv(to_parent[0]) == 'r');
  REQUIRE(kv->put("inodes", "b", "2").ok());
  REQUIRE(kv->del("inodes", "a").ok());
  REQUIRE(send(to_child[1], 'w'));
  CHECK(wait_child(pid) == 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);

  // In-process secondary too.
  auto sec = KvStore::open_secondary(path, td.path() + "/secondary2", two_families());
  REQUIRE(sec.ok());
  CHECK((*sec)->is_secondary());
  CHECK((*sec)->get("inodes", "b")->value() == "2");
  REQUIRE(kv->put("inodes", "c", "3").ok());
  REQUIRE((*sec)->try_catch_up().ok());
  CHECK((*sec)->get("inodes", "c")->value() == "3");
  CHECK((*sec)->compact().code() == Errc::read_only);
}

TEST_CASE("kv: a damaged DB is an error, not busy (even with 'lock' in its path)", "[cache][kv]") {
  TempDir td;
  const std::string path = td.path() + "/lockdir/db";
  std::filesystem::create_directories(path);
  {
    std::ofstream f(path + "/CURRENT");
    f << "MANIFEST-999999\n";
  }
  auto r = KvStore::open(path);
  REQUIRE_FALSE(r.ok());
  INFO(r.error().describe());
  CHECK(r.code() != Errc::busy);
  CHECK((r.code() == Errc::io || r.code() == Errc::corrupt));
}

TEST_CASE("kv: open_secondary of a missing DB fails cleanly", "[cache][kv]") {
  TempDir td;
  auto sec = KvStore::open_secondary(td.path() + "/nope", td.path() + "/sec");
  REQUIRE_FALSE(sec.ok());
  CHECK(sec.error().message.find("nope") != std::string::npos);
}

TEST_CASE("kv: writes acknowledged with sync=false survive kill -9", "[cache][kv][crash]") {
  TempDir td;
  const std::string path = td.path() + "/db";
  int to_parent[2];
  REQUIRE(::pipe(to_parent) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto kv = KvStore::open(path, two_families());
    if (!kv.ok()) ::_exit(2);
    for (int i = 0; i < 1000; ++i)
      if (!(*kv)->put("plans", "key" + std::to_string(i), std::string(100, 'x') + std::to_string(i)).ok())
        ::_exit(3);
    char c = 'd';
    if (::write(to_parent[1], &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();  // killed here, never closing the DB
  }
  char c = 0;
  REQUIRE(::read(to_parent[0], &c, 1) == 1);
  ::kill(pid, SIGKILL);
  REQUIRE(wait_child(pid) == 128 + SIGKILL);
  ::close(to_parent[0]);
  ::close(to_parent[1]);
  auto kv = open_kv(path);
  auto all = scan_all(*kv, "plans", "key");
  REQUIRE(all.size() == 1000);
  CHECK(all["key999"] == std::string(100, 'x') + "999");
}
