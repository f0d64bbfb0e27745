#include "cache/chunk_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "test/unit/cache/test_util.h"

using hf::Errc;
using hf::cache::ChunkBytes;
using hf::cache::DiskChunkStore;
using hf::cache::DiskChunkStoreOptions;
using hf::cache::Key32;
using namespace hf::cache::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<DiskChunkStore> open_store(const std::string& dir, uint64_t max = 1ull << 30,
                                           std::chrono::seconds interval = 3600s) {
  DiskChunkStoreOptions o;
  o.dir = dir;
  o.max_bytes = max;
  o.evict_interval = interval;
  auto r = DiskChunkStore::open(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::string hex(const Key32& k) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t b : k) {
    s.push_back(d[b >> 4]);
    s.push_back(d[b & 15]);
  }
  return s;
}

std::string run_path(const std::string& dir, const Key32& k, uint64_t first, uint64_t end) {
  std::string h = hex(k);
  return dir + "/chunks/v1/" + h.substr(0, 2) + "/" + h + "/" + std::to_string(first) + "-" +
         std::to_string(end) + ".run";
}

std::vector<std::string> list_runs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir + "/chunks/v1", ec), end;
  for (; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(it->path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Bytes of disk actually allocated under <dir>/chunks/{v1,tmp} (st_blocks), tolerant of files
// vanishing during the walk.
uint64_t disk_blocks(const std::string& dir) {
  uint64_t total = 0;
  for (const char* sub : {"/chunks/v1", "/chunks/tmp"}) {
    std::error_code ec;
    fs::recursive_directory_iterator it(dir + sub, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
        total += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

// Sum of the apparent sizes of the runs, rounded up to 4 KiB (the store's documented charge).
uint64_t charged_size(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& p : list_runs(dir)) {
    std::error_code ec;
    uint64_t sz = fs::file_size(p, ec);
    if (!ec) total += (sz + 4095) / 4096 * 4096;
  }
  return total;
}

std::vector<uint8_t> read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_file(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Independent parser of the run format documented in chunk_store.h.
struct ParsedRun {
  Key32 key{};
  uint32_t first = 0, count = 0;
  std::vector<std::vector<uint8_t>> chunks;
};
std::optional<ParsedRun> parse_run(const std::vector<uint8_t>& f) {
  if (f.size() < 64) return std::nullopt;
  const uint8_t magic[8] = {'H', 'F', 'R', 'U', 'N', 0, 1, 1};  // magic (7) + version 1
  if (std::memcmp(f.data(), magic, 8) != 0) return std::nullopt;
  if (XXH3_64bits(f.data(), 56) != le(f.data() + 56, 8)) return std::nullopt;
  if (le(f.data() + 48, 8) != f.size()) return std::nullopt;
  ParsedRun r;
  std::memcpy(r.key.data(), f.data() + 8, 32);
  r.first = static_cast<uint32_t>(le(f.data() + 40, 4));
  r.count = static_cast<uint32_t>(le(f.data() + 44, 4));
  size_t tbl = size_t{r.count} * 24;
  if (64 + tbl + 8 > f.size()) return std::nullopt;
  if (XXH3_64bits(f.data() + 64, tbl) != le(f.data() + 64 + tbl, 8)) return std::nullopt;
  uint64_t off = 64 + tbl + 8;
  for (uint32_t i = 0; i < r.count; ++i) {
    const uint8_t* e = f.data() + 64 + size_t{i} * 24;
    uint64_t len = le(e, 4);
    if (le(e + 8, 8) != off || off + len > f.size()) return std::nullopt;
    std::vector<uint8_t> c(f.begin() + static_cast<long>(off), f.begin() + static_cast<long>(off + len));
    if (XXH3_64bits(c.data(), c.size()) != le(e + 16, 8)) return std::nullopt;
    r.chunks.push_back(std::move(c));
    off += len;
  }
  if (off != f.size()) return std::nullopt;
  return r;
}

}  // namespace

TEST_CASE("disk store: round trip and the documented on-disk format", "[cache][disk]") {
  TempDir td;
  auto s = open_store(td.path());
  const Key32 k = xorb_key(1);
  auto run = make_run(1, 10, 5);
  REQUIRE(s->put_run(k, 10, run).ok());

  for (uint32_t i = 10; i < 15; ++i) {
    auto r = s->get(k, i);
    REQUIRE(r.ok());
    REQUIRE(*r);
    CHECK(**r == chunk_content(1, i));
  }
  CHECK(*s->get(k, 9) == nullptr);
  CHECK(*s->get(k, 15) == nullptr);
  CHECK(*s->get(xorb_key(2), 10) == nullptr);
  CHECK(s->contains(k, 12));
  CHECK_FALSE(s->contains(k, 15));

  // The file sits at the documented path and parses per the documented layout.
  const std::string p = run_path(td.path(), k, 10, 15);
  REQUIRE(fs::exists(p));
  CHECK((fs::status(p).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  CHECK((fs::status(td.path() + "/chunks").permissions() & fs::perms::all) == fs::perms::owner_all);
  auto parsed = parse_run(read_file(p));
  REQUIRE(parsed);
  CHECK(parsed->key == k);
  CHECK(parsed->first == 10);
  REQUIRE(parsed->count == 5);
  for (uint32_t i = 0; i < 5; ++i) CHECK(parsed->chunks[i] == chunk_content(1, 10 + i));

  auto st = s->stats();
  CHECK(st.runs_written == 1);
  CHECK(st.bytes_written == fs::file_size(p));
  CHECK(st.hits == 5);
  CHECK(st.misses == 3);
  CHECK(s->used_bytes() == (fs::file_size(p) + 4095) / 4096 * 4096);

  // A second put of a covered range is a no-op.
  REQUIRE(s->put_run(k, 11, make_run(1, 11, 2)).ok());
  CHECK(s->stats().runs_written == 1);

  // A reopened store finds the run by listing the directory.
  s.reset();
  s = open_store(td.path());
  auto again = s->get(k, 13);
  REQUIRE(again.ok());
  REQUIRE(*again);
  CHECK(**again == chunk_content(1, 13));
}

TEST_CASE("disk store: get_range spans adjacent runs and stops at the first gap", "[cache][disk]") {
  TempDir td;
  auto s = open_store(td.path());
  const Key32 k = xorb_key(5);
  REQUIRE(s->put_run(k, 0, make_run(5, 0, 4)).ok());
  REQUIRE(s->put_run(k, 4, make_run(5, 4, 3)).ok());
  REQUIRE(s->put_run(k, 8, make_run(5, 8, 2)).ok());  // gap at 7

  std::vector<ChunkBytes> out;
  REQUIRE(s->get_range(k, 1, 10, out).ok());
  REQUIRE(out.size() == 6);  // 1..6
  for (uint32_t i = 0; i < 6; ++i) CHECK(*out[i] == chunk_content(5, 1 + i));
  REQUIRE(s->get_range(k, 8, 10, out).ok());
  REQUIRE(out.size() == 2);
  CHECK(*out[1] == chunk_content(5, 9));
  REQUIRE(s->get_range(k, 7, 9, out).ok());
  CHECK(out.empty());
  REQUIRE(s->get_range(k, 3, 3, out).ok());
  CHECK(out.empty());
  CHECK(s->get_range(k, 5, 3, out).code() == Errc::invalid_argument);

  // A run of more chunks than IOV_MAX goes through several preadv batches.
  const Key32 big = xorb_key(6);
  REQUIRE(s->put_run(big, 0, make_run(6, 0, 2500, 300)).ok());
  REQUIRE(s->get_range(big, 0, 2500, out).ok());
  REQUIRE(out.size() == 2500);
  bool all_equal = true;
  for (uint32_t i = 0; i < 2500; ++i) all_equal = all_equal && *out[i] == chunk_content(6, i, 300);
  CHECK(all_equal);
}

TEST_CASE("disk store: invalid arguments and a disabled store", "[cache][disk]") {
  TempDir td;
  auto s = open_store(td.path());
  const Key32 k = xorb_key(1);
  std::vector<ChunkBytes> none;
  auto e = s->put_run(k, 0, none);
  CHECK(e.code() == Errc::invalid_argument);
  std::vector<ChunkBytes> with_null{make_chunk(1, 0), nullptr};
  e = s->put_run(k, 0, with_null);
  CHECK(e.code() == Errc::invalid_argument);
  CHECK(e.error().message.find("null") != std::string::npos);
  CHECK(s->put_run(k, 0xffffffffu, make_run(1, 0, 2)).code() == Errc::invalid_argument);
  CHECK(s->put_run(k, 0xffffffffu, make_run(1, 0, 1)).ok());  // the last index is legal
  CHECK(**s->get(k, 0xffffffffu) == chunk_content(1, 0));
  CHECK(list_runs(td.path()).size() == 1);

  TempDir off_dir;
  DiskChunkStoreOptions o;
  o.dir = off_dir.path() + "/cache";
  o.max_bytes = 0;
  auto off = DiskChunkStore::open(o);
  REQUIRE(off.ok());
  CHECK((*off)->put_run(k, 0, make_run(1, 0, 2)).ok());
  CHECK(*(*off)->get(k, 0) == nullptr);
  CHECK_FALSE(fs::exists(o.dir));  // disabled: nothing on disk
}

TEST_CASE("disk store: durable mode (fsync) stores and reads the same way", "[cache][disk]") {
  TempDir td;
  DiskChunkStoreOptions o;
  o.dir = td.path();
  o.fsync = true;
  auto s = DiskChunkStore::open(o);
  REQUIRE(s.ok());
  REQUIRE((*s)->put_run(xorb_key(1), 3, make_run(1, 3, 4)).ok());
  auto parsed = parse_run(read_file(run_path(td.path(), xorb_key(1), 3, 7)));
  REQUIRE(parsed);
  CHECK(parsed->chunks[3] == chunk_content(1, 6));
  CHECK(**(*s)->get(xorb_key(1), 6) == chunk_content(1, 6));
}

TEST_CASE("disk store: a run larger than the bound is skipped, not written", "[cache][disk]") {
  TempDir td;
  auto s = open_store(td.path(), 64 * 1024);
  const Key32 k = xorb_key(2);
  REQUIRE(s->put_run(k, 0, make_run(2, 0, 20, 8000)).ok());  // ~80 KiB > 64 KiB
  CHECK(s->stats().puts_skipped_full == 1);
  CHECK(s->stats().runs_written == 0);
  CHECK(*s->get(k, 0) == nullptr);
  CHECK(list_runs(td.path()).empty());
  CHECK(s->used_bytes() == 0);
}

TEST_CASE("disk store: two instances share the usage counter and find each other's runs",
          "[cache][disk]") {
  TempDir td;
  auto a = open_store(td.path());
  auto b = open_store(td.path());
  const Key32 k = xorb_key(9);
  CHECK(*b->get(k, 0) == nullptr);  // b has now listed the (absent) directory
  REQUIRE(a->put_run(k, 0, make_run(9, 0, 3)).ok());
  CHECK(b->used_bytes() == a->used_bytes());
  CHECK(a->used_bytes() > 0);
  std::this_thread::sleep_for(120ms);  // past the re-list interval
  auto r = b->get(k, 2);
  REQUIRE(r.ok());
  REQUIRE(*r);
  CHECK(**r == chunk_content(9, 2));
}

TEST_CASE("disk store: a damaged usage state is rebuilt from the runs on open", "[cache][disk]") {
  TempDir td;
  {
    auto s = open_store(td.path());
    for (uint64_t id = 0; id < 5; ++id) REQUIRE(s->put_run(xorb_key(id), 0, make_run(id, 0, 3)).ok());
  }
  const uint64_t expect = charged_size(td.path());
  REQUIRE(expect > 0);
  for (int variant = 0; variant < 2; ++variant) {
    INFO("variant " << variant);
    // 0: zeroed (lost) state; 1: garbage.
    std::vector<uint8_t> junk(4096, 0);
    uint64_t seed = 3;
    if (variant == 1)
      for (auto& b : junk) b = static_cast<uint8_t>(splitmix64(seed));
    write_file(td.path() + "/chunks/state", junk);
    auto s = open_store(td.path());
    CHECK(s->used_bytes() == expect);
    CHECK(**s->get(xorb_key(4), 2) == chunk_content(4, 2));
  }
}

TEST_CASE("disk store: reference model", "[cache][disk][model]") {
  const bool big = GENERATE(true, false);
  INFO("big bound: " << big);
  TempDir td;
  const uint64_t max = big ? (1ull << 30) : 160 * 1024;
  auto s = open_store(td.path(), max);
  constexpr uint32_t kLen = 3000;
  // Model: chunks put (content is a pure function of the key). `guaranteed`: must be a hit
  // (only with the big bound, where nothing is ever evicted).
  std::map<std::pair<uint64_t, uint32_t>, bool> model;
  uint64_t seed = big ? 42 : 4242;
  uint64_t hits = 0, evict_calls = 0;
  for (int op = 0; op < 10000; ++op) {
    uint64_t r = splitmix64(seed);
    const uint64_t id = r % 12;
    const uint32_t idx = static_cast<uint32_t>((r >> 8) % 64);
    const int kind = static_cast<int>((r >> 20) % 100);
    const Key32 k = xorb_key(id);
    INFO("op " << op << " kind " << kind << " xorb " << id << " index " << idx);
    if (kind < 30) {
      const uint32_t count = 1 + static_cast<uint32_t>((r >> 32) % 6);
      const uint64_t skipped = s->stats().puts_skipped_full;
      REQUIRE(s->put_run(k, idx, make_run(id, idx, count, kLen)).ok());
      const bool stored = s->stats().puts_skipped_full == skipped;
      for (uint32_t i = idx; i < idx + count; ++i) {
        bool& g = model[{id, i}];
        g = g || (big && stored);
      }
      if (big) REQUIRE(stored);
    } else if (kind < 75) {
      auto got = s->get(k, idx);
      REQUIRE(got.ok());
      auto m = model.find({id, idx});
      if (*got) {
        REQUIRE(m != model.end());  // never invent data
        REQUIRE(**got == chunk_content(id, idx, kLen));
        ++hits;
      } else if (m != model.end()) {
        REQUIRE_FALSE(m->second);
      }
    } else if (kind < 85) {
      const uint32_t len = 1 + static_cast<uint32_t>((r >> 32) % 10);
      std::vector<ChunkBytes> out;
      REQUIRE(s->get_range(k, idx, idx + len, out).ok());
      REQUIRE(out.size() <= len);
      for (uint32_t i = 0; i < out.size(); ++i) {
        REQUIRE(model.count({id, idx + i}));
        REQUIRE(*out[i] == chunk_content(id, idx + i, kLen));
      }
      // Everything guaranteed from idx on must have been returned.
      uint32_t guaranteed_prefix = 0;
      while (guaranteed_prefix < len) {
        auto m = model.find({id, idx + guaranteed_prefix});
        if (m == model.end() || !m->second) break;
        ++guaranteed_prefix;
      }
      REQUIRE(out.size() >= guaranteed_prefix);
    } else if (kind < 90) {
      auto m = model.find({id, idx});
      bool c = s->contains(k, idx);
      if (m == model.end()) REQUIRE_FALSE(c);
      else if (m->second) REQUIRE(c);
    } else if (kind < 96) {
      s->evict_now();
      ++evict_calls;
      REQUIRE(s->used_bytes() <= max);
      if (big) REQUIRE(s->stats().runs_evicted == 0);
    } else {
      s.reset();
      s = open_store(td.path(), max);
    }
  }
  CHECK(hits > (big ? 2000u : 200u));
  CHECK(evict_calls > 0);
  s->evict_now();
  CHECK(s->used_bytes() == charged_size(td.path()));  // reconciled with what is on disk
  if (!big) CHECK(charged_size(td.path()) <= max);
}

TEST_CASE("disk store: corruption is detected, dropped, counted and never returned",
          "[cache][disk][corrupt]") {
  TempDir td;
  const Key32 k = xorb_key(3);
  const uint32_t first = 10, count = 4;
  auto chunks = make_run(3, first, count);
  const std::string p = run_path(td.path(), k, first, first + count);
  // Offset of chunk 12's last byte, computed from the documented layout.
  uint64_t data_start = 64 + 24 * count + 8;
  uint64_t chunk12_last = data_start + chunks[0]->size() + chunks[1]->size() + chunks[2]->size() - 1;

  struct Case {
    const char* name;
    bool fresh_store;  // the table is loaded from disk (true) or was cached by the writer
    uint32_t probe;    // the chunk read first
    std::function<void(std::vector<uint8_t>&)> damage;
  };
  std::vector<Case> cases = {
      {"data byte, cached table", false, first + 2, [&](auto& b) { b[chunk12_last] ^= 0x01; }},
      {"data byte, fresh store", true, first + 2, [&](auto& b) { b[chunk12_last] ^= 0x80; }},
      {"header byte", true, first + 2, [&](auto& b) { b[41] ^= 0x01; }},
      {"table byte", true, first + 2, [&](auto& b) { b[64 + 24 + 20] ^= 0x10; }},
      {"truncated", true, first + 2, [&](auto& b) { b.resize(b.size() / 2); }},
      {"truncated by one byte, cached table", false, first + 3, [&](auto& b) { b.pop_back(); }},
      {"header only", true, first + 2, [&](auto& b) { b.resize(10); }},
      {"garbage", true, first + 2,
       [&](auto& b) {
         uint64_t s = 99;
         for (auto& x : b) x = static_cast<uint8_t>(splitmix64(s));
       }},
      {"empty", true, first + 2, [&](auto& b) { b.clear(); }},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      auto s = open_store(td.path());
      REQUIRE(s->put_run(k, first, chunks).ok());
      auto bytes = read_file(p);
      c.damage(bytes);
      write_file(p, bytes);
      if (c.fresh_store) {
        s.reset();
        s = open_store(td.path());
      }
      const uint32_t probe = c.probe;
      auto r = s->get(k, probe);
      REQUIRE(r.ok());
      CHECK(*r == nullptr);
      CHECK_FALSE(fs::exists(p));
      CHECK(s->stats().corrupt_dropped == 1);
      // The other chunks of the dropped run are misses now, not errors.
      CHECK(*s->get(k, first) == nullptr);
      // The store recovers: the range can be stored and read again.
      REQUIRE(s->put_run(k, first, chunks).ok());
      auto again = s->get(k, probe);
      REQUIRE(again.ok());
      REQUIRE(*again);
      CHECK(**again == chunk_content(3, probe));
    }
  }
}

TEST_CASE("disk store: random damage anywhere in a run never yields wrong bytes",
          "[cache][disk][corrupt]") {
  // Every byte of a run is covered by a checksum (header, table or chunk), so any change is
  // detected when the whole run is loaded and read; wrong bytes are never returned.
  TempDir td;
  auto s = open_store(td.path());
  uint64_t seed = 31337;
  int dropped_runs = 0;
  for (uint64_t it = 0; it < 200; ++it) {
    const uint64_t id = 1000 + it;
    const Key32 k = xorb_key(id);
    const uint32_t count = 1 + static_cast<uint32_t>(splitmix64(seed) % 5);
    REQUIRE(s->put_run(k, 0, make_run(id, 0, count, 2000)).ok());
    const std::string p = run_path(td.path(), k, 0, count);
    auto bytes = read_file(p);
    const auto original = bytes;
    switch (splitmix64(seed) % 4) {
      case 0:
      case 1: {  // flip 1..3 bytes
        int flips = 1 + static_cast<int>(splitmix64(seed) % 3);
        for (int f = 0; f < flips; ++f)
          bytes[splitmix64(seed) % bytes.size()] ^= static_cast<uint8_t>(1 + splitmix64(seed) % 255);
        break;
      }
      case 2:  // truncate
        bytes.resize(splitmix64(seed) % bytes.size());
        break;
      default:  // append junk
        bytes.resize(bytes.size() + 1 + splitmix64(seed) % 100, 0x5a);
    }
    write_file(p, bytes);
    // Half the time the store reloads (and verifies) header and table; otherwise it keeps the
    // table it wrote and only the chunk checksums (verified on every read) stand guard.
    const bool reopened = splitmix64(seed) % 2 == 0;
    if (reopened) {
      s.reset();
      s = open_store(td.path());
    }
    std::vector<ChunkBytes> out;
    REQUIRE(s->get_range(k, 0, count, out).ok());
    for (uint32_t i = 0; i < out.size(); ++i) REQUIRE(*out[i] == chunk_content(id, i, 2000));
    if (bytes != original && reopened) {
      CHECK(out.size() < count);
      CHECK_FALSE(fs::exists(p));
      ++dropped_runs;
    }
  }
  CHECK(s->stats().corrupt_dropped > 0);
  CHECK(dropped_runs > 60);
}

TEST_CASE("disk store: a corrupt run falls back to another covering run", "[cache][disk][corrupt]") {
  TempDir td;
  auto s = open_store(td.path());
  const Key32 k = xorb_key(4);
  REQUIRE(s->put_run(k, 0, make_run(4, 0, 4)).ok());  // [0,4)
  REQUIRE(s->put_run(k, 2, make_run(4, 2, 4)).ok());  // [2,6): preferred for index 2 (longer reach)
  const std::string bad = run_path(td.path(), k, 2, 6);
  auto bytes = read_file(bad);
  bytes.back() ^= 0xff;  // corrupt chunk 5
  bytes[64 + 4 * 24 + 8] ^= 0xff;  // and chunk 2's first byte
  write_file(bad, bytes);
  auto r = s->get(k, 2);
  REQUIRE(r.ok());
  REQUIRE(*r);
  CHECK(**r == chunk_content(4, 2));
  CHECK_FALSE(fs::exists(bad));
  CHECK(s->stats().corrupt_dropped == 1);
  CHECK(*s->get(k, 5) == nullptr);
}

TEST_CASE("disk store: a file with a valid name but another xorb's content is dropped",
          "[cache][disk][corrupt]") {
  TempDir td;
  auto s = open_store(td.path());
  const Key32 a = xorb_key(1), b = xorb_key(2);
  REQUIRE(s->put_run(a, 0, make_run(1, 0, 2)).ok());
  const std::string dst = run_path(td.path(), b, 0, 2);
  fs::create_directories(fs::path(dst).parent_path());
  fs::copy_file(run_path(td.path(), a, 0, 2), dst);
  CHECK(*s->get(b, 1) == nullptr);
  CHECK_FALSE(fs::exists(dst));
  CHECK(s->stats().corrupt_dropped == 1);
  CHECK(**s->get(a, 1) == chunk_content(1, 1));
}

TEST_CASE("disk store: kill -9 while writing leaves a consistent cache", "[cache][disk][crash]") {
  TempDir td;
  std::map<std::string, uint64_t> id_of_hex;
  for (uint64_t id = 0; id < 16; ++id) id_of_hex[hex(xorb_key(id))] = id;
  uint64_t seed = 7;
  uint64_t total_hits = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      DiskChunkStoreOptions o;
      o.dir = td.path();
      o.max_bytes = 1ull << 30;
      auto st = DiskChunkStore::open(o);
      if (!st.ok()) ::_exit(2);
      uint64_t s = 1000 + static_cast<uint64_t>(round);
      for (int i = 0; i < 100000; ++i) {
        uint64_t r = splitmix64(s);
        uint64_t id = r % 16;
        uint32_t first = static_cast<uint32_t>((r >> 8) % 200);
        uint32_t count = 1 + static_cast<uint32_t>((r >> 16) % 16);
        (void)(*st)->put_run(xorb_key(id), first, make_run(id, first, count, 20000));
      }
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + splitmix64(seed) % 150));
    ::kill(pid, SIGKILL);
    REQUIRE(wait_child(pid) == 128 + SIGKILL);

    auto s = open_store(td.path());
    // open() removed the dead writer's staging area: only this instance's remains (empty).
    std::vector<std::string> tmp_entries;
    for (auto& e : fs::directory_iterator(td.path() + "/chunks/tmp")) {
      tmp_entries.push_back(e.path().filename().string());
      if (e.is_directory()) CHECK(fs::is_empty(e.path()));
    }
    CHECK(tmp_entries.size() == 2);  // <id>.lock and <id>/
    // Every run file is complete: each chunk reads back as the model says.
    uint64_t hits = 0, files = 0;
    for (const auto& p : list_runs(td.path())) {
      ++files;
      fs::path fp(p);
      const std::string xhex = fp.parent_path().filename().string();
      REQUIRE(id_of_hex.count(xhex));
      const uint64_t id = id_of_hex[xhex];
      const std::string name = fp.filename().string();
      const uint32_t first = static_cast<uint32_t>(std::stoul(name.substr(0, name.find('-'))));
      const uint32_t end = static_cast<uint32_t>(std::stoul(name.substr(name.find('-') + 1)));
      auto parsed = parse_run(read_file(p));
      REQUIRE(parsed);  // never a partial file under a run name
      CHECK(parsed->first == first);
      CHECK(parsed->first + parsed->count == end);
      std::vector<ChunkBytes> out;
      REQUIRE(s->get_range(xorb_key(id), first, end, out).ok());
      REQUIRE(out.size() == end - first);
      for (uint32_t i = 0; i < out.size(); ++i) REQUIRE(*out[i] == chunk_content(id, first + i, 20000));
      hits += out.size();
    }
    CHECK(s->stats().corrupt_dropped == 0);
    total_hits += hits;
    // A killed writer may leak a reservation; a reconcile pass makes the counter exact.
    s->evict_now();
    CHECK(s->used_bytes() == charged_size(td.path()));
    INFO("round " << round << ": " << files << " runs");
  }
  CHECK(total_hits > 0);
}

TEST_CASE("disk store: the bound holds under 8 concurrent writers and reads stay correct",
          "[cache][disk][evict]") {
  TempDir td;
  const uint64_t max = 512 * 1024;
  auto s = open_store(td.path(), max, 1s);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> peak_used{0}, peak_disk{0}, wrong{0}, hits{0}, undercounts{0}, samples{0};
  // The monitor pauses the writers between operations to measure the disk at a quiescent
  // point (a directory walk is not a snapshot while files come and go).
  std::mutex pm;
  std::condition_variable pcv;
  bool pausing = false;
  int active = 0;
  std::thread monitor([&] {
    while (!stop.load()) {
      uint64_t u = s->used_bytes();
      if (u > peak_used.load()) peak_used.store(u);
      {
        std::unique_lock lk(pm);
        pausing = true;
        pcv.wait(lk, [&] { return active == 0; });
      }
      // Only the background evictor may run now, and it only removes files: the counter read
      // before the walk bounds what the walk can find.
      const uint64_t counter = s->used_bytes();
      const uint64_t d = disk_blocks(td.path());
      if (d > counter) undercounts++;
      if (d > peak_disk.load()) peak_disk.store(d);
      samples++;
      {
        std::lock_guard lk(pm);
        pausing = false;
      }
      pcv.notify_all();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      uint64_t seed = 100 + static_cast<uint64_t>(t);
      for (int i = 0; i < 400; ++i) {
        {
          std::unique_lock lk(pm);
          pcv.wait(lk, [&] { return !pausing; });
          ++active;
        }
        struct Done {
          std::mutex& m;
          std::condition_variable& cv;
          int& n;
          ~Done() {
            {
              std::lock_guard lk(m);
              --n;
            }
            cv.notify_all();
          }
        } done{pm, pcv, active};
        uint64_t r = splitmix64(seed);
        uint64_t id = r % 32;
        uint32_t first = static_cast<uint32_t>((r >> 8) % 64);
        uint32_t count = 1 + static_cast<uint32_t>((r >> 16) % 8);
        if ((r >> 24) % 2 == 0) {
          if (!s->put_run(xorb_key(id), first, make_run(id, first, count, 8000)).ok()) wrong++;
        } else {
          std::vector<ChunkBytes> out;
          if (!s->get_range(xorb_key(id), first, first + count, out).ok()) wrong++;
          for (uint32_t j = 0; j < out.size(); ++j)
            if (*out[j] != chunk_content(id, first + j, 8000)) wrong++;
          hits += out.size();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  stop = true;
  monitor.join();
  CHECK(wrong.load() == 0);
  CHECK(hits.load() > 0);
  CHECK(peak_used.load() <= max);
  CHECK(peak_disk.load() <= max);
  CHECK(peak_disk.load() > max / 2);  // the workload did fill the cache
  CHECK(undercounts.load() == 0);
  CHECK(samples.load() > 2);
  auto st = s->stats();
  CHECK(st.runs_evicted > 0);
  CHECK(st.runs_written > 20);
  // Quiescent: the counter may overcount (leaked reservations) but never undercount.
  CHECK(s->used_bytes() >= charged_size(td.path()));
  s->evict_now();
  CHECK(s->used_bytes() == charged_size(td.path()));
  CHECK(s->used_bytes() <= max / 10 * 9);
}

TEST_CASE("disk store: eviction removes the least recently used runs", "[cache][disk][evict]") {
  TempDir td;
  // Four runs of one 8000-byte chunk: 64 + 24 + 8 + 8000 = 8096 bytes, charged 8192 each.
  {
    auto s = open_store(td.path());
    for (uint64_t id = 0; id < 4; ++id) {
      std::vector<ChunkBytes> one{
          std::make_shared<const std::vector<uint8_t>>(8000, static_cast<uint8_t>(id))};
      REQUIRE(s->put_run(xorb_key(id), 0, one).ok());
    }
  }
  // Ages: run 0 oldest ... run 3 newest.
  const auto now = std::chrono::system_clock::now();
  for (uint64_t id = 0; id < 4; ++id) {
    struct timespec ts[2];
    auto t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() -
             1000 + static_cast<long>(id) * 100;
    ts[0] = ts[1] = {t, 0};
    REQUIRE(::utimensat(AT_FDCWD, run_path(td.path(), xorb_key(id), 0, 1).c_str(), ts, 0) == 0);
  }
  // Bound 20 KiB: low watermark 18 KiB, so two of the four 8 KiB runs must go.
  auto s = open_store(td.path(), 20 * 1024);
  CHECK(s->used_bytes() == 4 * 8192);
  auto r0 = s->get(xorb_key(0), 0);  // reading run 0 makes it the most recently used
  REQUIRE(*r0);
  s->evict_now();
  CHECK(fs::exists(run_path(td.path(), xorb_key(0), 0, 1)));
  CHECK_FALSE(fs::exists(run_path(td.path(), xorb_key(1), 0, 1)));
  CHECK_FALSE(fs::exists(run_path(td.path(), xorb_key(2), 0, 1)));
  CHECK(fs::exists(run_path(td.path(), xorb_key(3), 0, 1)));
  CHECK(s->used_bytes() == 2 * 8192);
  CHECK(s->stats().runs_evicted == 2);
  CHECK(s->stats().bytes_evicted == 2 * 8096);
  CHECK(*s->get(xorb_key(1), 0) == nullptr);
  CHECK(**s->get(xorb_key(3), 0) == std::vector<uint8_t>(8000, 3));
}

TEST_CASE("disk store: an fd opened before eviction still reads the evicted run",
          "[cache][disk][evict]") {
  TempDir td;
  auto reader = open_store(td.path());
  const Key32 k = xorb_key(8);
  REQUIRE(reader->put_run(k, 0, make_run(8, 0, 6)).ok());
  const std::string p = run_path(td.path(), k, 0, 6);
  const auto before = read_file(p);
  int raw = ::open(p.c_str(), O_RDONLY);
  REQUIRE(raw >= 0);
  REQUIRE(**reader->get(k, 1) == chunk_content(8, 1));  // reader now has the run's fd cached

  {
    auto evictor = open_store(td.path(), 4096);  // another instance, as another process would
    evictor->evict_now();
    CHECK(evictor->stats().runs_evicted == 1);
  }
  CHECK_FALSE(fs::exists(p));

  // The raw fd still reads the complete, valid run: eviction unlinks, never rewrites.
  std::vector<uint8_t> after(before.size() + 1);
  ssize_t n = ::pread(raw, after.data(), after.size(), 0);
  ::close(raw);
  REQUIRE(n == static_cast<ssize_t>(before.size()));
  after.resize(static_cast<size_t>(n));
  CHECK(after == before);
  auto parsed = parse_run(after);
  REQUIRE(parsed);
  CHECK(parsed->chunks[5] == chunk_content(8, 5));

  // The reader's cached fd serves the unlinked run correctly...
  auto r = reader->get(k, 4);
  REQUIRE(r.ok());
  REQUIRE(*r);
  CHECK(**r == chunk_content(8, 4));
  // ...until it notices (within about a second) that the file was unlinked and lets it go.
  std::this_thread::sleep_for(1100ms);
  CHECK(*reader->get(k, 4) == nullptr);
}

TEST_CASE("disk store: stale tmp data of dead processes is removed on open, live data is not",
          "[cache][disk][crash]") {
  TempDir td;
  auto live = open_store(td.path());
  const std::string tmp = td.path() + "/chunks/tmp";
  // A dead process's staging area: its lock file exists but nobody holds the flock.
  fs::create_directories(tmp + "/00000000deadbeef");
  write_file(tmp + "/00000000deadbeef/17", std::vector<uint8_t>(5000, 1));
  write_file(tmp + "/00000000deadbeef.lock", {});
  auto before = std::vector<std::string>();
  for (auto& e : fs::directory_iterator(tmp)) before.push_back(e.path().filename().string());
  CHECK(before.size() == 4);

  auto other = open_store(td.path());
  CHECK_FALSE(fs::exists(tmp + "/00000000deadbeef"));
  CHECK_FALSE(fs::exists(tmp + "/00000000deadbeef.lock"));
  size_t remaining = 0;
  for (auto& e : fs::directory_iterator(tmp)) {
    (void)e;
    ++remaining;
  }
  CHECK(remaining == 4);  // live's and other's lock + dir
  REQUIRE(live->put_run(xorb_key(1), 0, make_run(1, 0, 2)).ok());
  CHECK(**other->get(xorb_key(1), 1) == chunk_content(1, 1));
  other.reset();
  live.reset();
  CHECK(fs::is_empty(tmp));  // each instance removes its own staging area on close
}

TEST_CASE("disk store: two processes share one cache directory", "[cache][disk][multiprocess]") {
  TempDir td;
  int to_child[2], to_parent[2];
  REQUIRE(::pipe(to_child) == 0);
  REQUIRE(::pipe(to_parent) == 0);
  auto send = [](int fd) { char c = 1; return ::write(fd, &c, 1) == 1; };
  auto recv = [](int fd) { char c; return ::read(fd, &c, 1) == 1; };
  const uint64_t small = 256 * 1024;

  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: phase 1 writes runs the parent must discover; phase 2 churns with evictions.
    int bad = 0;
    if (!recv(to_child[0])) ::_exit(10);
    {
      DiskChunkStoreOptions o;
      o.dir = td.path();
      auto st = DiskChunkStore::open(o);
      if (!st.ok()) ::_exit(11);
      for (uint64_t id = 100; id < 105; ++id)
        if (!(*st)->put_run(xorb_key(id), 0, make_run(id, 0, 8)).ok()) ++bad;
    }
    if (!send(to_parent[1]) || !recv(to_child[0])) ::_exit(12);
    {
      DiskChunkStoreOptions o;
      o.dir = td.path();
      o.max_bytes = small;
      auto st = DiskChunkStore::open(o);
      if (!st.ok()) ::_exit(13);
      uint64_t seed = 555;
      for (int i = 0; i < 300; ++i) {
        uint64_t r = splitmix64(seed);
        uint64_t id = r % 16;
        uint32_t first = static_cast<uint32_t>((r >> 8) % 32);
        uint32_t count = 1 + static_cast<uint32_t>((r >> 16) % 6);
        if (!(*st)->put_run(xorb_key(id), first, make_run(id, first, count, 6000)).ok()) ++bad;
        std::vector<ChunkBytes> out;
        if (!(*st)->get_range(xorb_key(id), first, first + count, out).ok()) ++bad;
        for (uint32_t j = 0; j < out.size(); ++j)
          if (*out[j] != chunk_content(id, first + j, 6000)) ++bad;
        if (i % 25 == 0) (*st)->evict_now();
        if ((*st)->used_bytes() > small) ++bad;
      }
    }
    ::_exit(bad == 0 ? 0 : 1);
  }

  {
    auto s = open_store(td.path());
    CHECK(*s->get(xorb_key(100), 0) == nullptr);  // listed: nothing there yet
    REQUIRE(send(to_child[1]));
    REQUIRE(recv(to_parent[0]));
    std::this_thread::sleep_for(120ms);  // past the re-list interval
    for (uint64_t id = 100; id < 105; ++id) {
      CHECK(s->contains(xorb_key(id), 7));
      std::vector<ChunkBytes> out;
      REQUIRE(s->get_range(xorb_key(id), 0, 8, out).ok());
      REQUIRE(out.size() == 8);
      for (uint32_t j = 0; j < 8; ++j) CHECK(*out[j] == chunk_content(id, j));
    }
  }
  auto s = open_store(td.path(), small);
  s->evict_now();  // phase 1 left more than `small` behind
  REQUIRE(s->used_bytes() <= small);
  REQUIRE(send(to_child[1]));
  uint64_t seed = 777, wrong = 0, over = 0;
  for (int i = 0; i < 300; ++i) {
    uint64_t r = splitmix64(seed);
    uint64_t id = r % 16;
    uint32_t first = static_cast<uint32_t>((r >> 8) % 32);
    uint32_t count = 1 + static_cast<uint32_t>((r >> 16) % 6);
    REQUIRE(s->put_run(xorb_key(id), first, make_run(id, first, count, 6000)).ok());
    std::vector<ChunkBytes> out;
    REQUIRE(s->get_range(xorb_key(id), first, first + count, out).ok());
    for (uint32_t j = 0; j < out.size(); ++j)
      if (*out[j] != chunk_content(id, first + j, 6000)) ++wrong;
    if (i % 30 == 0) s->evict_now();
    if (s->used_bytes() > small) ++over;
  }
  CHECK(wait_child(pid) == 0);
  CHECK(wrong == 0);
  CHECK(over == 0);
  CHECK(s->stats().corrupt_dropped == 0);
  s->evict_now();
  CHECK(s->used_bytes() == charged_size(td.path()));
  CHECK(charged_size(td.path()) <= small);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
}
