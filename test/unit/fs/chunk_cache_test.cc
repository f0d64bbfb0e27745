// ChunkCache: the memory tier in front of the disk store, as the read path uses it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>

#include "base/sha256.h"
#include "fs/chunk_cache.h"
#include "net/xet/hash.h"
#include "net/xet/xorb.h"
#include "test/unit/cache/test_util.h"

using namespace hf;
using namespace hf::fs;
using namespace hf::cache::test;

namespace {

std::unique_ptr<cache::DiskChunkStore> open_disk(const std::string& dir) {
  cache::DiskChunkStoreOptions o;
  o.dir = dir;
  o.max_bytes = 64ull << 20;
  auto r = cache::DiskChunkStore::open(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace

TEST_CASE("chunk cache: get_range takes memory first, the rest from disk, and stops at the first miss") {
  TempDir td;
  const cache::Key32 k = xorb_key(5);
  {
    ChunkCache writer(64ull << 20, open_disk(td.path()));
    writer.insert_run(k, 0, make_run(5, 0, 8));    // chunks 0..7
    writer.insert_run(k, 10, make_run(5, 10, 4));  // chunks 10..13 (8 and 9 are missing)
    writer.flush();
  }
  // A new process: empty memory, same disk (the remount case).
  ChunkCache c(64ull << 20, open_disk(td.path()));
  REQUIRE(c.get(k, 2));  // one chunk promoted to memory
  std::vector<ChunkBytes> out;
  c.get_range(k, 2, 8, out);
  REQUIRE(out.size() == 6);
  for (uint32_t i = 0; i < out.size(); ++i) CHECK(*out[i] == chunk_content(5, 2 + i));
  auto s = c.stats();
  CHECK(s.mem_hits == 1);
  CHECK(s.disk_hits == 6);  // chunk 2 by get(), 3..7 by the range read

  // The range read did not promote what it read (a streaming re-read must not flush the
  // memory tier): a second pass takes 2 from memory (get() promoted it), the rest from disk.
  c.get_range(k, 0, 8, out);
  REQUIRE(out.size() == 8);
  CHECK(c.stats().mem_hits == 2);
  CHECK(c.stats().disk_hits == 13);  // 0, 1 and 3..7 again
  for (uint32_t i = 0; i < 8; ++i) CHECK(*out[i] == chunk_content(5, i));

  // Stops at the hole: 6, 7 and nothing past 8.
  c.get_range(k, 6, 14, out);
  REQUIRE(out.size() == 2);
  CHECK(*out[1] == chunk_content(5, 7));
  // A range that starts in the hole is empty; one after it is served.
  c.get_range(k, 8, 12, out);
  CHECK(out.empty());
  c.get_range(k, 10, 14, out);
  REQUIRE(out.size() == 4);
  CHECK(*out[3] == chunk_content(5, 13));
}

TEST_CASE("chunk cache: a corrupted disk run is never returned by get_range") {
  TempDir td;
  const cache::Key32 k = xorb_key(6);
  {
    ChunkCache writer(64ull << 20, open_disk(td.path()));
    writer.insert_run(k, 0, make_run(6, 0, 6));
    writer.flush();
  }
  // Flip the last byte of the run file (inside the last chunk's data).
  std::string run;
  for (auto& e : std::filesystem::recursive_directory_iterator(td.path()))
    if (e.path().extension() == ".run") run = e.path().string();
  REQUIRE(!run.empty());
  {
    std::fstream f(run, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char ch;
    f.get(ch);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(ch ^ 0x40));
  }
  ChunkCache c(64ull << 20, open_disk(td.path()));
  std::vector<ChunkBytes> out;
  c.get_range(k, 0, 6, out);
  // The chunks verified before the damaged one may be served; the damaged one never is.
  REQUIRE(out.size() < 6);
  for (uint32_t i = 0; i < out.size(); ++i) CHECK(*out[i] == chunk_content(6, i));
  CHECK_FALSE(std::filesystem::exists(run));
  CHECK(c.get(k, 5) == nullptr);
}

TEST_CASE("chunk cache: an uploaded xorb is kept on disk only, decoded, and a broken body is ignored") {
  TempDir td;
  const cache::Key32 k = xorb_key(7);
  xet::XorbBuilder xb;
  const xet::Compression schemes[] = {xet::Compression::none, xet::Compression::lz4, xet::Compression::bg4_lz4};
  for (uint32_t i = 0; i < 9; ++i) {
    auto raw = chunk_content(7, i);
    if (i % 2) std::fill(raw.begin(), raw.begin() + static_cast<long>(raw.size() / 2), uint8_t{0});  // compressible
    REQUIRE(xb.add(raw, xet::chunk_hash(raw), schemes[i % 3]).ok());
  }
  std::vector<uint8_t> body = xb.serialized();
  auto footer = xet::serialize_footer(xb.footer());
  REQUIRE(footer.ok());
  body.insert(body.end(), footer->begin(), footer->end());  // the stored form: footer after the records

  ChunkCache c(64ull << 20, open_disk(td.path()));
  c.insert_uploaded_xorb(k, body);
  c.flush();
  CHECK(c.stats().mem_bytes == 0);  // writing does not push readers' data out of memory
  std::vector<ChunkBytes> out;
  c.get_range(k, 0, 9, out);
  REQUIRE(out.size() == 9);
  for (uint32_t i = 0; i < 9; ++i) {
    auto raw = chunk_content(7, i);
    if (i % 2) std::fill(raw.begin(), raw.begin() + static_cast<long>(raw.size() / 2), uint8_t{0});
    CHECK(*out[i] == raw);
  }

  // A body cut inside a record stores nothing (never a partial or shifted run).
  const cache::Key32 k2 = xorb_key(8);
  c.insert_uploaded_xorb(k2, std::span(xb.serialized()).first(xb.serialized().size() - 3));
  c.flush();
  CHECK(c.get(k2, 0) == nullptr);
}

TEST_CASE("chunk cache: runs the disk writer cannot take are dropped, counted, and still served from memory") {
  TempDir td;
  const cache::Key32 k = xorb_key(8);
  // A queue bound below one run's size: every run is dropped instead of waiting for the disk.
  ChunkCache c(64ull << 20, open_disk(td.path()), 1024);
  c.insert_run(k, 0, make_run(8, 0, 4));
  c.insert_run(k, 4, make_run(8, 4, 4));
  c.flush();
  auto s = c.stats();
  CHECK(s.runs_dropped == 2);
  CHECK(s.runs_queued == 0);
  CHECK(s.disk_bytes == 0);
  for (uint32_t i = 0; i < 8; ++i) {
    auto b = c.get(k, i);
    REQUIRE(b);
    CHECK(*b == chunk_content(8, i));
  }
  // Nothing reached the disk: a remount would fetch these again.
  ChunkCache fresh(64ull << 20, open_disk(td.path()));
  CHECK_FALSE(fresh.get(k, 0));
}

TEST_CASE("chunk cache: a producer that waits for disk room loses no run to a disk slower than it") {
  TempDir td;
  // Room for about two runs: a producer that does not wait outruns the writer (an insert is a
  // few microseconds, a run file create + write + rename much more) and runs get dropped.
  ChunkCache c(64ull << 20, open_disk(td.path()), 2 * 4 * 9000);
  constexpr uint32_t kRuns = 64;
  for (uint32_t r = 0; r < kRuns; ++r) {
    std::promise<void> room;
    auto ready = room.get_future();
    c.when_disk_room([&room] { room.set_value(); });
    REQUIRE(ready.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    c.insert_run(xorb_key(100 + r), 0, make_run(100 + r, 0, 4));
  }
  c.flush();
  auto s = c.stats();
  CHECK(s.runs_dropped == 0);
  CHECK(s.runs_queued == kRuns);
  // All of it on disk: a fresh cache over the same directory (a remount) has every chunk.
  ChunkCache fresh(1, open_disk(td.path()));
  for (uint32_t r = 0; r < kRuns; ++r) {
    for (uint32_t i = 0; i < 4; ++i) {
      auto b = fresh.get(xorb_key(100 + r), i);
      REQUIRE(b);
      const auto want = chunk_content(100 + r, i);
      CHECK(sha256_hex(b->data(), b->size()) == sha256_hex(want.data(), want.size()));
    }
  }
}

TEST_CASE("chunk cache: without a disk store, or at teardown, a room waiter is called and never lost") {
  ChunkCache memory_only(1 << 20, nullptr);
  bool called = false;
  memory_only.when_disk_room([&] { called = true; });
  CHECK(called);  // inline: nothing to wait for

  TempDir td;
  std::atomic<int> calls{0};
  {
    ChunkCache c(64ull << 20, open_disk(td.path()), 9000);
    c.insert_run(xorb_key(7), 0, make_run(7, 0, 4));  // over half the queue bound, if still queued
    for (int i = 0; i < 8; ++i) c.when_disk_room([&] { calls.fetch_add(1); });
  }  // the destructor drains the queue and calls whoever still waits
  CHECK(calls.load() == 8);
}
