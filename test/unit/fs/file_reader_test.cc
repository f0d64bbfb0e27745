#include <catch2/catch.hpp>

#include <cstring>

#include "base/sha256.h"
#include "fake_remote.h"
#include "fs/file_reader.h"
#include "harness.h"

using namespace hf;
using namespace hf::fs;
using namespace hf::fs::testing;

namespace {

struct Fixture {
  IoThreads io{2};
  FakeRemote remote;
  ChunkCache cache{256ull << 20, nullptr};
  ReaderConfig cfg;
  ReaderStats stats;

  ~Fixture() { io.stop(); }  // before the remote and cache that background fetches use
  Fixture() {
    cfg.retry_base_ms = 1;
    cfg.first_segment = 256 << 10;
    cfg.segment = 1 << 20;
    cfg.initial_window = 1 << 20;
    cfg.max_window = 4 << 20;
  }

  std::shared_ptr<FileReader> xet_reader(const std::vector<uint8_t>& data, size_t per_xorb = 4) {
    xet::Hash h = remote.add_xet_file("f.bin", data, per_xorb);
    Content c;
    c.source = Content::Source::xet;
    c.id = h.bytes;
    return std::make_shared<FileReader>(io.ex(), remote, cache, cfg, stats, c, data.size(), "rev", "f.bin");
  }

  Result<std::vector<uint8_t>> read(FileReader& r, uint64_t off, uint64_t len, StreamState* s = nullptr,
                                    CancelPtr cancel = {}) {
    auto res = io.run(r.read(off, len, s, cancel));
    if (!res.ok()) return std::move(res).error();
    return flatten(*res);
  }
};

}  // namespace

TEST_CASE("sequential read of a multi-xorb file returns the exact bytes") {
  Fixture fx;
  auto data = random_bytes(3 << 20, 1);
  auto r = fx.xet_reader(data);
  StreamState s;
  Sha256 h;
  for (uint64_t off = 0; off < data.size(); off += 128 << 10) {
    auto part = fx.read(*r, off, 128 << 10, &s);
    REQUIRE(part.ok());
    h.update(part->data(), part->size());
  }
  CHECK(h.finish() == sha256(data.data(), data.size()));
  // Segments are cut at file offsets, not chunk boundaries, so the chunk straddling a segment
  // boundary is fetched by both neighbours (at most one chunk, <= 128 KiB, per segment). Beyond
  // that nothing is downloaded twice.
  uint64_t segments = fx.stats.segments.load();
  CHECK(fx.remote.fetched_bytes.load() <= data.size() + segments * 131072);
  CHECK(fx.remote.fetched_bytes.load() >= data.size());
  // Reads past the end are empty; reads across the end are short.
  CHECK(fx.read(*r, data.size(), 10)->empty());
  CHECK(fx.read(*r, data.size() - 5, 10)->size() == 5);
}

TEST_CASE("random reads match the source at every offset") {
  Fixture fx;
  auto data = random_bytes((2 << 20) + 12345, 2);
  auto r = fx.xet_reader(data, 3);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % data.size();
    uint64_t len = 1 + rng() % (300 << 10);
    auto part = fx.read(*r, off, len);
    REQUIRE(part.ok());
    uint64_t n = std::min<uint64_t>(len, data.size() - off);
    REQUIRE(part->size() == n);
    REQUIRE(std::memcmp(part->data(), data.data() + off, n) == 0);
  }
  // Now everything is cached: the local path serves all of it without the network.
  uint64_t calls = fx.remote.fetch_calls.load();
  ReadData d;
  REQUIRE(r->try_read_local(0, data.size(), d));
  CHECK(flatten(d) == data);
  CHECK(fx.remote.fetch_calls.load() == calls);
  CHECK(r->cached_bytes() == data.size());
}

TEST_CASE("eight threads reading one file share fetches and get correct bytes") {
  Fixture fx;
  auto data = random_bytes(6 << 20, 3);
  auto r = fx.xet_reader(data, 8);
  fx.remote.delay_ms = 2;  // keep segments in flight long enough to be shared
  std::vector<std::thread> th;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    th.emplace_back([&, t] {
      StreamState s;
      // Overlapping strided regions: every thread touches every part of the file.
      for (uint64_t off = (t % 4) * 64 * 1024; off < data.size(); off += 512 << 10) {
        auto part = fx.read(*r, off, 200 << 10, &s);
        if (!part.ok() || std::memcmp(part->data(), data.data() + off, part->size()) != 0) bad++;
      }
    });
  }
  for (auto& x : th) x.join();
  CHECK(bad == 0);
  // Single-flight: far fewer bytes than 8 independent readers would have pulled.
  CHECK(fx.remote.fetched_bytes.load() <= data.size() * 3 / 2);
}

TEST_CASE("transient fetch failures are retried; persistent ones fail only that read") {
  Fixture fx;
  auto data = random_bytes(1 << 20, 4);
  auto r = fx.xet_reader(data);
  fx.remote.fail_fetch = 2;
  auto ok = fx.read(*r, 0, 4096);
  REQUIRE(ok.ok());
  CHECK(std::memcmp(ok->data(), data.data(), 4096) == 0);
  CHECK(fx.stats.segment_retries.load() >= 1);

  fx.remote.fail_fetch = 1000;
  auto bad = fx.read(*r, 700 << 10, 4096);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == Errc::network);
  CHECK_THAT(bad.error().message, Catch::Contains("reset"));
  fx.remote.fail_fetch = 0;  // the server recovers: so does the file
  auto again = fx.read(*r, 700 << 10, 4096);
  REQUIRE(again.ok());
  CHECK(std::memcmp(again->data(), data.data() + (700 << 10), 4096) == 0);
}

TEST_CASE("expired presigned URLs trigger a fresh reconstruction") {
  Fixture fx;
  auto data = random_bytes(1 << 20, 5);
  auto r = fx.xet_reader(data);
  fx.remote.expire_fetch = 1;
  auto ok = fx.read(*r, 100, 5000);
  REQUIRE(ok.ok());
  CHECK(std::memcmp(ok->data(), data.data() + 100, 5000) == 0);
  CHECK(fx.remote.reconstruct_calls.load() >= 2);
}

TEST_CASE("a body cut inside a chunk is an error, never short data") {
  Fixture fx;
  fx.cfg.max_attempts = 1;
  auto data = random_bytes(1 << 20, 6);
  auto r = fx.xet_reader(data, 16);
  fx.remote.truncate_fetch = 1;
  auto bad = fx.read(*r, 0, 1 << 20);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == Errc::protocol);
  auto good = fx.read(*r, 0, 1 << 20);
  REQUIRE(good.ok());
  CHECK(*good == data);
}

TEST_CASE("cancellation ends a waiting read promptly") {
  Fixture fx;
  auto data = random_bytes(1 << 20, 7);
  auto r = fx.xet_reader(data);
  fx.remote.delay_ms = 3000;
  auto cancel = make_cancel();
  std::thread killer([cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel->cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto res = fx.read(*r, 0, 4096, nullptr, cancel);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  killer.join();
  REQUIRE_FALSE(res.ok());
  CHECK(res.code() == Errc::cancelled);
  CHECK(ms < 1500);
  fx.remote.delay_ms = 0;
}

TEST_CASE("sequential streams prefetch ahead in few reconstruction queries") {
  Fixture fx;
  fx.cfg.segment = 2 << 20;
  fx.cfg.max_window = 8 << 20;
  auto data = random_bytes(16 << 20, 8);
  auto r = fx.xet_reader(data, 64);
  StreamState s;
  int fast = 0;
  for (uint64_t off = 0; off < data.size(); off += 128 << 10) {
    ReadData d;
    if (r->try_read_local(off, 128 << 10, d, &s)) {
      ++fast;
      continue;
    }
    REQUIRE(fx.read(*r, off, 128 << 10, &s).ok());
  }
  // 128 reads of 128 KiB; with prefetch most are served from cache without waiting.
  CHECK(fast > 64);
  CHECK(fx.remote.reconstruct_calls.load() <= 16);
}

TEST_CASE("streams sharing a file's in-flight cap keep prefetching and miss in whole segments") {
  // Four sequential readers on disjoint quarters of one file, with room for only two segments
  // in flight: prefetch is held back most of the time. What it could not issue must be issued
  // by later reads, and a stream's misses must fetch a segment, not first_segment: before,
  // the readers fell back to 256 KiB demand fetches (a round trip each; 8 readers under 20 ms
  // latency ran at half the speed of one).
  Fixture fx;
  fx.cfg.max_segments_in_flight = 2;
  auto data = random_bytes(16 << 20, 21);
  auto r = fx.xet_reader(data, 16);
  fx.remote.delay_ms = 3;
  const uint64_t quarter = data.size() / 4;
  std::vector<std::thread> th;
  std::vector<std::string> got(4);
  std::atomic<int> errors{0};
  for (int t = 0; t < 4; ++t) {
    th.emplace_back([&, t] {
      StreamState s;
      std::vector<uint8_t> mine;
      for (uint64_t off = t * quarter; off < (t + 1) * quarter; off += 128 << 10) {
        auto part = fx.read(*r, off, 128 << 10, &s);
        if (!part.ok()) {
          errors++;
          return;
        }
        mine.insert(mine.end(), part->begin(), part->end());
      }
      got[t] = sha256_hex(mine.data(), mine.size());
    });
  }
  for (auto& x : th) x.join();
  REQUIRE(errors == 0);
  for (int t = 0; t < 4; ++t) CHECK(got[t] == sha256_hex(data.data() + t * quarter, quarter));
  // Per stream: one 256 KiB first fetch, then 1 MiB segments (4 per quarter), whether started
  // by prefetch or by a miss; a few more where segments were cut short by a neighbour. With
  // 256 KiB misses it took 40-50.
  CHECK(fx.remote.reconstruct_calls.load() <= 30);
  CHECK(fx.remote.fetched_bytes.load() <= data.size() * 11 / 10);
}

TEST_CASE("non-Xet content is read by HTTP ranges in blocks") {
  Fixture fx;
  fx.cfg.http_block = 64 << 10;
  auto data = random_bytes(300000, 9);
  fx.remote.add_http_file("cfg/config.json", data);
  Content c;
  c.source = Content::Source::http;
  c.id = sha256("git:x");
  auto r = std::make_shared<FileReader>(fx.io.ex(), fx.remote, fx.cache, fx.cfg, fx.stats, c, data.size(), "rev",
                                        "cfg/config.json");
  auto part = fx.read(*r, 70000, 100000);
  REQUIRE(part.ok());
  CHECK(std::memcmp(part->data(), data.data() + 70000, 100000) == 0);
  auto all = fx.read(*r, 0, data.size());
  REQUIRE(all.ok());
  CHECK(*all == data);
  CHECK(fx.remote.fetched_bytes.load() == data.size());
}

TEST_CASE("reads succeed even when the cache cannot hold what they fetched") {
  Fixture fx;
  ChunkCache tiny(64 << 10, nullptr);  // smaller than one segment
  auto data = random_bytes(4 << 20, 13);
  xet::Hash h = fx.remote.add_xet_file("t.bin", data, 8);
  Content c;
  c.source = Content::Source::xet;
  c.id = h.bytes;
  auto r = std::make_shared<FileReader>(fx.io.ex(), fx.remote, tiny, fx.cfg, fx.stats, c, data.size(), "rev", "t.bin");
  std::vector<std::thread> th;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    th.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 20; ++i) {
        uint64_t off = rng() % data.size(), len = 1 + rng() % (1 << 20);
        auto part = fx.read(*r, off, len);
        if (!part.ok() || part->size() != std::min<uint64_t>(len, data.size() - off) ||
            std::memcmp(part->data(), data.data() + off, part->size()) != 0)
          bad++;
      }
    });
  }
  for (auto& x : th) x.join();
  CHECK(bad == 0);
}

TEST_CASE("a whole-file fetch is checked against the Xet file hash: corrupted bytes are never served") {
  Fixture fx;
  auto data = random_bytes(200 << 10, 31);  // below first_segment: always fetched whole
  auto r = fx.xet_reader(data, 2);
  fx.remote.corrupt_fetch = 1;  // one flipped byte in an uncompressed chunk: decodes fine
  auto ok = fx.read(*r, 150 << 10, 4096);  // a read in the middle still fetches the whole file
  REQUIRE(ok.ok());
  CHECK(std::memcmp(ok->data(), data.data() + (150 << 10), 4096) == 0);
  CHECK(fx.stats.verify_failures.load() == 1);
  auto all = fx.read(*r, 0, data.size());
  REQUIRE(all.ok());
  CHECK(*all == data);

  // Corrupted every time: a clean error, and nothing wrong reaches the cache.
  Fixture fy;
  fy.cfg.max_attempts = 2;
  auto r2 = fy.xet_reader(data, 2);
  fy.remote.corrupt_fetch = 1000;
  auto bad = fy.read(*r2, 0, 4096);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == Errc::corrupt);
  CHECK_THAT(bad.error().message, Catch::Contains("Xet file hash"));
  fy.remote.corrupt_fetch = 0;
  auto good = fy.read(*r2, 0, data.size());
  REQUIRE(good.ok());
  CHECK(*good == data);
}

TEST_CASE("a downloaded range that holds a whole xorb is checked against the xorb hash and refetched") {
  Fixture fx;
  auto data = random_bytes(3 << 20, 41);  // many segments; xorbs of 4 chunks (~256 KiB) lie inside them
  auto r = fx.xet_reader(data, 4);
  fx.remote.corrupt_whole_fetch = 1;  // a flipped byte that decodes fine: only the xorb hash sees it
  StreamState s;
  Sha256 h;
  for (uint64_t off = 0; off < data.size(); off += 128 << 10) {
    auto part = fx.read(*r, off, 128 << 10, &s);
    REQUIRE(part.ok());
    h.update(part->data(), part->size());
  }
  CHECK(fx.remote.corrupt_whole_fetch.load() == 0);  // the fault fired
  CHECK(h.finish() == sha256(data.data(), data.size()));
  CHECK(fx.stats.verify_failures.load() == 1);
  CHECK(fx.stats.segment_retries.load() >= 1);
  CHECK(fx.stats.xorbs_verified.load() >= 3);
}

TEST_CASE("a range that only looks like a whole xorb is served after one consistent refetch") {
  // The stated object size makes every [0, n) range look whole (what a legacy footer could do):
  // the hash cannot match, the refetch brings the same bytes, and they are served.
  Fixture fx;
  auto data = random_bytes(2 << 20, 42);
  auto r = fx.xet_reader(data, 8);
  fx.remote.claim_ranges_whole = true;
  auto head = fx.read(*r, 0, 4096);  // the first segment ends inside the first xorb: chunks [0, k)
  REQUIRE(head.ok());
  CHECK(std::memcmp(head->data(), data.data(), 4096) == 0);
  CHECK(fx.stats.verify_failures.load() == 2);  // both fetches of that range
  CHECK(fx.stats.segment_retries.load() == 1);
  auto all = fx.read(*r, 0, data.size());
  REQUIRE(all.ok());
  CHECK(*all == data);
  CHECK(fx.stats.segment_failures.load() == 0);
}

TEST_CASE("a whole plain file is checked against its git blob id") {
  Fixture fx;
  auto data = random_bytes(100000, 32);
  fx.remote.add_http_file("cfg.json", data);
  Content c;
  c.source = Content::Source::http;
  c.id = sha256("git:cfg");
  c.etag = FakeRemote::git_blob_id(data);
  auto r = std::make_shared<FileReader>(fx.io.ex(), fx.remote, fx.cache, fx.cfg, fx.stats, c, data.size(), "rev",
                                        "cfg.json");
  fx.remote.corrupt_download = 1;
  auto ok = fx.read(*r, 0, data.size());
  REQUIRE(ok.ok());
  CHECK(*ok == data);
  CHECK(fx.stats.verify_failures.load() == 1);
}

TEST_CASE("remote 'not found' answers are retried and reach readers as I/O errors, never ENOENT") {
  Fixture fx;
  auto data = random_bytes(1 << 20, 33);
  auto r = fx.xet_reader(data);
  fx.remote.missing_fetch = 1;  // a presigned URL that 404s once: fresh URLs fix it
  auto ok = fx.read(*r, 0, 4096);
  REQUIRE(ok.ok());
  CHECK(std::memcmp(ok->data(), data.data(), 4096) == 0);
  fx.remote.missing_fetch = 1000;
  auto bad = fx.read(*r, 800 << 10, 4096);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == Errc::io);
  CHECK_THAT(bad.error().message, Catch::Contains("404"));
}
