#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "fs/inode_table.h"

using namespace hf::fs;

static ListedEntry file(std::string name, uint64_t size, uint8_t id = 1) {
  ListedEntry e;
  e.name = std::move(name);
  e.kind = NodeKind::file;
  e.size = size;
  e.content.source = Content::Source::xet;
  e.content.id.fill(id);
  return e;
}
static ListedEntry dir(std::string name) {
  ListedEntry e;
  e.name = std::move(name);
  e.kind = NodeKind::dir;
  return e;
}

TEST_CASE("listing, lookup, paths and deterministic inode numbers") {
  InodeTableOptions o;
  o.uid = 7;
  InodeTable t(o);
  CHECK(t.lookup(kRootIno, "a").state == InodeTable::ChildState::unknown);
  t.apply_listing(kRootIno, {file("a.bin", 10), dir("sub")});
  auto a = t.lookup(kRootIno, "a.bin");
  REQUIRE(a.state == InodeTable::ChildState::found);
  CHECK(a.info.attr.size == 10);
  CHECK(a.info.attr.uid == 7);
  CHECK(a.info.attr.perm == 0444);
  CHECK(t.lookup(kRootIno, "missing").state == InodeTable::ChildState::absent);
  auto sub = t.lookup(kRootIno, "sub");
  REQUIRE(sub.state == InodeTable::ChildState::found);
  CHECK(sub.info.attr.kind == NodeKind::dir);
  CHECK(t.lookup(sub.info.attr.ino, "x").state == InodeTable::ChildState::unknown);
  t.apply_listing(sub.info.attr.ino, {file("deep.txt", 3)});
  auto deep = t.lookup(sub.info.attr.ino, "deep.txt");
  CHECK(t.path(deep.info.attr.ino) == std::optional<std::string>("sub/deep.txt"));
  CHECK(t.get(kRootIno)->attr.nlink == 3);  // 2 + one subdirectory

  // Same view, another table: same numbers (stable across mounts).
  InodeTable t2(o);
  t2.apply_listing(kRootIno, {dir("sub"), file("a.bin", 10)});
  CHECK(t2.lookup(kRootIno, "a.bin").info.attr.ino == a.info.attr.ino);
  CHECK(t2.lookup(kRootIno, "sub").info.attr.ino == sub.info.attr.ino);
}

TEST_CASE("invalid server names are never inserted") {
  InodeTable t({});
  t.apply_listing(kRootIno, {file("", 1), file(".", 1), file("..", 1), file("a/b", 1), file(std::string("n\0ul", 4), 1),
                             file(std::string(256, 'x'), 1), file("ok", 1), file(std::string(255, 'y'), 1)});
  auto snap = t.snapshot(kRootIno);
  REQUIRE(snap);
  REQUIRE(snap->entries.size() == 2);
  CHECK(snap->entries[0].name == "ok");
  CHECK(snap->entries[1].name == std::string(255, 'y'));
}

TEST_CASE("relisting keeps inode numbers and reports changes") {
  InodeTable t({});
  t.apply_listing(kRootIno, {file("keep", 1, 1), file("change", 1, 1), file("gone", 1, 1), dir("kind")});
  uint64_t keep = t.lookup(kRootIno, "keep").info.attr.ino;
  uint64_t change = t.lookup(kRootIno, "change").info.attr.ino;
  auto diff = t.apply_listing(kRootIno, {file("keep", 1, 1), file("change", 2, 9), file("new", 1, 1), file("kind", 5)});
  CHECK(t.lookup(kRootIno, "keep").info.attr.ino == keep);
  CHECK(t.lookup(kRootIno, "change").info.attr.ino == change);
  CHECK(t.lookup(kRootIno, "change").info.attr.size == 2);
  CHECK(diff.changed == std::vector<uint64_t>{change});
  CHECK(diff.added.size() == 2);    // new, and kind (re-created as a file)
  CHECK(diff.removed.size() == 2);  // gone, and kind (the directory)
  CHECK(t.lookup(kRootIno, "gone").state == InodeTable::ChildState::absent);
  CHECK(t.lookup(kRootIno, "kind").info.attr.kind == NodeKind::file);
}

TEST_CASE("orphans live until the kernel forgets them") {
  InodeTable t({});
  t.apply_listing(kRootIno, {file("f", 1), dir("d")});
  uint64_t f = t.lookup(kRootIno, "f").info.attr.ino;
  uint64_t d = t.lookup(kRootIno, "d").info.attr.ino;
  t.apply_listing(d, {file("inner", 4)});
  uint64_t inner = t.lookup(d, "inner").info.attr.ino;
  t.add_lookup(f, 2);
  t.add_lookup(inner, 1);
  t.apply_listing(kRootIno, {});  // both removed remotely
  REQUIRE(t.get(f));              // still referenced by the kernel
  CHECK_FALSE(t.path(f));         // but no longer reachable by path
  CHECK_FALSE(t.get(d));          // nlookup 0: freed at once
  REQUIRE(t.get(inner));          // its child is still referenced
  t.forget(f, 1);
  CHECK(t.get(f));
  t.forget(f, 1);
  CHECK_FALSE(t.get(f));
  t.forget(inner, 1);
  CHECK_FALSE(t.get(inner));
  CHECK(t.size() == 1);  // only the root
}

TEST_CASE("lookup counts match a reference model under random operations") {
  std::mt19937 rng(42);
  InodeTable t({});
  std::map<uint64_t, uint64_t> model;  // ino -> expected nlookup
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back(fmt::format("f{}", i));
  auto relist = [&] {
    std::vector<ListedEntry> es;
    for (auto& n : names) {
      if (rng() % 3) es.push_back(file(n, rng() % 100, static_cast<uint8_t>(rng())));
    }
    t.apply_listing(kRootIno, std::move(es));
  };
  relist();
  for (int step = 0; step < 5000; ++step) {
    int op = rng() % 10;
    if (op == 0) {
      relist();
    } else if (op < 6) {
      auto r = t.lookup(kRootIno, names[rng() % names.size()]);
      if (r.state == InodeTable::ChildState::found) {
        t.add_lookup(r.info.attr.ino);
        model[r.info.attr.ino]++;
      }
    } else if (!model.empty()) {
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      uint64_t n = 1 + rng() % it->second;
      t.forget(it->first, n);
      it->second -= n;
      if (it->second == 0) model.erase(it);
    }
    // Every inode the kernel still references must be resolvable.
    for (auto& [ino, n] : model) REQUIRE(t.get(ino));
  }
}

TEST_CASE("concurrent lookups and relistings from real threads") {
  InodeTable t({});
  std::vector<ListedEntry> es;
  for (int i = 0; i < 200; ++i) es.push_back(file("n" + std::to_string(i), i));
  t.apply_listing(kRootIno, es);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> found{0}, bad_size{0}, no_snapshot{0};
  std::vector<std::thread> th;
  // Catch2 assertions are not thread-safe: the threads count, the main thread checks.
  for (int k = 0; k < 4; ++k) {
    th.emplace_back([&, k] {
      uint64_t local = 0;
      for (int i = 0; !stop; ++i) {
        auto r = t.lookup(kRootIno, "n" + std::to_string((i * 7 + k) % 200));
        if (r.state == InodeTable::ChildState::found) {
          if (r.info.attr.size != static_cast<uint64_t>(std::stoi(r.info.name.substr(1)))) bad_size++;
          ++local;
        }
        if (!t.snapshot(kRootIno)) no_snapshot++;
      }
      found += local;
    });
  }
  for (int round = 0; round < 200; ++round) t.apply_listing(kRootIno, es);
  stop = true;
  for (auto& x : th) x.join();
  CHECK(found > 0);
  CHECK(bad_size == 0);
  CHECK(no_snapshot == 0);
}

TEST_CASE("a listing requested before a local change does not undo it") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("a", 10, 1), dir("d")});
  uint64_t a = t.lookup(kRootIno, "a").info.attr.ino;
  // A poll starts listing the root; meanwhile a local commit gives "a" new content and a new
  // file is created and committed.
  uint64_t since = t.epoch();
  Content fresh;
  fresh.source = Content::Source::xet;
  fresh.id.fill(9);
  t.set_content(a, fresh, 20, 0);
  REQUIRE(t.create(kRootIno, "new", InodeTable::NewNode{}, false).ok());
  // The listing it gets back predates both: applying it would revert "a" and drop "new".
  ListingDiff stale = t.apply_listing(kRootIno, {file("a", 10, 1), dir("d")}, since);
  CHECK(stale.skipped);
  CHECK(t.get(a)->content.id == fresh.id);
  CHECK(t.get(a)->attr.size == 20);
  CHECK(t.lookup(kRootIno, "new").state == InodeTable::ChildState::found);
  // A listing requested after the changes applies normally.
  ListingDiff ok = t.apply_listing(kRootIno, {file("a", 20, 9), dir("d"), file("new", 0, 3)}, t.epoch());
  CHECK_FALSE(ok.skipped);
  CHECK(t.lookup(kRootIno, "new").info.attr.size == 0);
  // Changes elsewhere do not hold back this directory's listing.
  uint64_t d = t.lookup(kRootIno, "d").info.attr.ino;
  t.apply_listing(d, {file("x", 1, 4)});
  uint64_t since2 = t.epoch();
  REQUIRE(t.create(d, "y", InodeTable::NewNode{}, false).ok());
  CHECK_FALSE(t.apply_listing(kRootIno, {file("a", 20, 9), dir("d"), file("new", 0, 3), file("b", 5, 5)}, since2).skipped);
  CHECK(t.apply_listing(d, {file("x", 1, 4)}, since2).skipped);
}

TEST_CASE("references to freed inodes are refused; a count mismatch never aborts the mount") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("a", 1, 1)});
  uint64_t a = t.lookup(kRootIno, "a").info.attr.ino;
  CHECK(t.add_lookup(a));
  t.apply_listing(kRootIno, {});  // removed remotely: an orphan while the kernel knows it
  t.forget(a, 1);                 // freed now
  CHECK_FALSE(t.get(a));
  CHECK_FALSE(t.add_lookup(a));   // a stale readdirplus entry must go out without a reference
  // The same path comes back: the same deterministic number, a fresh count.
  t.apply_listing(kRootIno, {file("a", 2, 2)});
  CHECK(t.lookup(kRootIno, "a").info.attr.ino == a);
  CHECK(t.add_lookup(a));
  t.forget(a, 2);  // one more than counted: logged and clamped, the process lives on
  CHECK(t.get(a));  // still listed: only orphans are freed
  CHECK(t.add_lookup(a));
  t.forget(a, 1);
}

// Found by the soak: readdirplus counted the inode a directory handle's snapshot held for a
// name, although a rename had since moved that node to another name (and orphaned the target).
TEST_CASE("lookup_counted counts the node a name has now, under one lock") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("f", 1, 1), file("g", 2, 2)});
  uint64_t f = t.lookup(kRootIno, "f").info.attr.ino, g = t.lookup(kRootIno, "g").info.attr.ino;
  REQUIRE(t.add_lookup(f));
  REQUIRE(t.add_lookup(g));
  auto snap = t.snapshot(kRootIno);  // what an open directory handle lists from
  REQUIRE(t.rename(kRootIno, "f", kRootIno, "g", false).ok());
  REQUIRE(snap->entries.size() == 2);
  // The snapshot's "f" is gone, its "g" is now the moved node (the old g is an orphan).
  CHECK(t.lookup_counted(kRootIno, snap->entries[0].name).state == InodeTable::ChildState::absent);
  auto now_g = t.lookup_counted(kRootIno, snap->entries[1].name);
  REQUIRE(now_g.state == InodeTable::ChildState::found);
  CHECK(now_g.info.attr.ino == f);
  CHECK(now_g.info.attr.size == 1);
  t.forget(f, 2);  // both references were counted
  CHECK(t.get(f));
  t.forget(g, 1);  // the orphan goes with its last reference
  CHECK_FALSE(t.get(g));
  // An unlisted directory: unknown, nothing counted.
  REQUIRE(t.create(kRootIno, "d", InodeTable::NewNode{NodeKind::dir}, false).ok());
  uint64_t d = t.lookup(kRootIno, "d").info.attr.ino;
  CHECK(t.lookup_counted(d, "x").state == InodeTable::ChildState::absent);  // a new directory is listed (empty)
}

TEST_CASE("listings wait while a local change of the directory is in progress") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("f", 1, 1), file("renamed", 2, 2)});
  // A rename committed remotely, not yet applied here: a listing taken now already shows the
  // result (f gone) even though it was requested after the change began.
  t.begin_local_change(kRootIno);
  uint64_t since = t.epoch();
  CHECK(t.apply_listing(kRootIno, {file("renamed", 1, 1)}, since).skipped);
  CHECK(t.lookup(kRootIno, "f").state == InodeTable::ChildState::found);
  REQUIRE(t.rename(kRootIno, "f", kRootIno, "renamed", false).ok());  // the local mirror works
  t.end_local_change(kRootIno);
  CHECK(t.apply_listing(kRootIno, {file("renamed", 1, 1)}, since).skipped);  // still older
  CHECK_FALSE(t.apply_listing(kRootIno, {file("renamed", 1, 1)}, t.epoch()).skipped);
}

// link() adds a non-local node and hands it to the kernel: counted separately, a relisting in
// between freed it and the kernel held an entry for a number the table no longer knew.
TEST_CASE("create counts the kernel's reference under the same lock") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("f", 1, 1)});
  InodeTable::NewNode nn;
  nn.size = 1;
  auto counted = t.create(kRootIno, "copy", nn, false, 1);
  auto uncounted = t.create(kRootIno, "other", nn, false);
  REQUIRE(counted.ok());
  REQUIRE(uncounted.ok());
  t.apply_listing(kRootIno, {file("f", 1, 1)});  // a listing that predates both: they go
  CHECK(t.lookup(kRootIno, "copy").state == InodeTable::ChildState::absent);
  CHECK(t.get(counted->attr.ino));            // an orphan the kernel still knows
  CHECK_FALSE(t.get(uncounted->attr.ino));    // nobody knew it: freed
  CHECK(t.forget(counted->attr.ino, 1));      // the last reference frees it
  CHECK_FALSE(t.get(counted->attr.ino));
  uint64_t f = t.lookup_counted(kRootIno, "f").info.attr.ino;
  CHECK_FALSE(t.forget(f, 1));  // named nodes stay
  CHECK(t.get(f));
}

TEST_CASE("a written orphan's content is its staged file; a late commit does not put a hash back") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("f", 100, 1)});
  uint64_t f = t.lookup_counted(kRootIno, "f").info.attr.ino;
  Content staged;
  staged.source = Content::Source::local;
  staged.id.fill(7);
  t.set_written(f, 50, 0, staged);  // named: the content stays the committed one until a commit
  CHECK(t.get(f)->content.source == Content::Source::xet);
  CHECK(t.is_local(f));
  REQUIRE(t.remove(kRootIno, "f").ok());
  t.set_written(f, 300, 0, staged);
  CHECK(t.get(f)->content.same_as(staged));
  CHECK(t.get(f)->attr.size == 300);
  Content late;
  late.source = Content::Source::xet;
  late.id.fill(8);
  t.set_content(f, late, 50, 0);  // a commit that started before the unlink
  CHECK(t.get(f)->content.same_as(staged));
  CHECK(t.get(f)->attr.size == 300);
  CHECK(t.forget(f, 1));
}

TEST_CASE("etags and symlink targets come back exactly as listed, whatever their form") {
  InodeTable t(InodeTableOptions{});
  // Stored packed when they are lowercase hex of up to 32 bytes, as text otherwise.
  const std::vector<std::string> etags = {
      "",
      "0123456789abcdef0123456789abcdef01234567",                          // git blob sha1
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  // sha256
      "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",  // uppercase: text
      "abc",                                                               // odd length
      "\"W/etag-with-quotes\"",
      std::string(66, 'a'),  // hex but longer than 32 bytes
      "00",
  };
  std::vector<ListedEntry> entries;
  for (size_t i = 0; i < etags.size(); ++i) {
    ListedEntry e = file(fmt::format("f{}", i), i, static_cast<uint8_t>(i));
    e.content.etag = etags[i];
    e.content.rev = static_cast<uint32_t>(100 + i);
    entries.push_back(e);
  }
  ListedEntry link;
  link.name = "link";
  link.kind = NodeKind::symlink;
  link.symlink_target = "f1";
  entries.push_back(link);
  t.apply_listing(kRootIno, entries);
  for (size_t i = 0; i < etags.size(); ++i) {
    auto r = t.lookup(kRootIno, fmt::format("f{}", i));
    REQUIRE(r.state == InodeTable::ChildState::found);
    CHECK(r.info.content.etag == etags[i]);
    CHECK(r.info.content.rev == 100 + i);
    CHECK(r.info.content.source == Content::Source::xet);
    CHECK(r.info.content.id[0] == i);
    CHECK(r.info.symlink_target.empty());
  }
  auto l = t.lookup(kRootIno, "link");
  REQUIRE(l.state == InodeTable::ChildState::found);
  CHECK(l.info.symlink_target == "f1");
  CHECK(l.info.attr.size == 2);

  // A relisting that changes only the etag of a file and the target of the link.
  entries[1].content.etag = "ffffffffffffffffffffffffffffffffffffffff";
  entries.back().symlink_target = "";
  t.apply_listing(kRootIno, entries);
  CHECK(t.lookup(kRootIno, "f1").info.content.etag == "ffffffffffffffffffffffffffffffffffffffff");
  CHECK(t.lookup(kRootIno, "link").info.symlink_target.empty());
}

TEST_CASE("a directory snapshot is shared while held and rebuilt after it is released") {
  InodeTable t(InodeTableOptions{});
  t.apply_listing(kRootIno, {file("a", 1), file("b", 2)});
  auto s1 = t.snapshot(kRootIno);
  auto s2 = t.snapshot(kRootIno);
  REQUIRE(s1);
  CHECK(s1.get() == s2.get());  // open handles share one copy
  std::weak_ptr<const DirSnapshot> weak = s1;
  s1.reset();
  s2.reset();
  CHECK(weak.expired());  // nothing keeps the entries once the handles are gone
  auto s3 = t.snapshot(kRootIno);
  REQUIRE(s3);
  REQUIRE(s3->entries.size() == 2);
  CHECK(s3->entries[0].name == "a");
  CHECK(s3->entries[1].attr.size == 2);
}
