#include <catch2/catch.hpp>

#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/clock.h"
#include "base/sha256.h"
#include "net/xet/chunker.h"
#include "net/hub/client.h"
#include "net/xet/client/cas_client.h"
#include "net/xet/client/cas_upload_sink.h"
#include "net/xet/upload/upload_session.h"
#include "test/hubsim/server.h"

using namespace hf;
using namespace hf::xet;
namespace net = boost::asio;

namespace {

// A CAS that validates like the real one (§9.4): recomputes xorb hashes, checks that every
// file in a shard reconstructs to its claimed hash, and keeps the bytes so tests can read
// files back.
class ValidatingCas : public UploadSink {
 public:
  std::atomic<int> fail_xorbs{0};
  std::atomic<int> xorb_puts{0}, shard_puts{0};

  Task<Status> put_xorb(Hash hash, std::shared_ptr<const std::string> bytes) override {
    xorb_puts++;
    if (fail_xorbs.load() > 0) {
      fail_xorbs--;
      co_return Error(Errc::server_error, "injected 503");
    }
    std::vector<uint8_t> raw;
    ParseXorbOptions o;
    o.raw_out = &raw;
    auto p = parse_xorb(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), o);
    if (!p.ok()) co_return p.error();
    if (!(p->hash == hash)) co_return Error(Errc::invalid_argument, "xorb hash mismatch");
    std::vector<std::vector<uint8_t>> chunks;
    for (auto& c : p->chunks) chunks.emplace_back(raw.begin() + c.raw_offset, raw.begin() + c.raw_offset + c.raw_len);
    std::lock_guard lk(mu_);
    xorbs_[hash.hex()] = std::move(chunks);
    co_return Status{};
  }

  Task<Status> put_shard(std::shared_ptr<const std::string> bytes) override {
    shard_puts++;
    auto s = parse_shard(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
    if (!s.ok()) co_return s.error();
    std::lock_guard lk(mu_);
    for (auto& f : s->files) {
      std::vector<HashSize> leaves;
      std::vector<uint8_t> data;
      if (f.verification.size() != f.terms.size()) co_return Error(Errc::invalid_argument, "missing verification");
      for (size_t t = 0; t < f.terms.size(); ++t) {
        auto& term = f.terms[t];
        auto it = xorbs_.find(term.xorb_hash.hex());
        if (it == xorbs_.end()) co_return Error(Errc::invalid_argument, "term references an unknown xorb");
        if (term.chunk_end > it->second.size() || term.chunk_start >= term.chunk_end) {
          co_return Error(Errc::invalid_argument, "bad chunk range");
        }
        std::vector<Hash> hs;
        uint64_t bytes_in_term = 0;
        for (uint32_t i = term.chunk_start; i < term.chunk_end; ++i) {
          auto& c = it->second[i];
          Hash h = chunk_hash(c);
          hs.push_back(h);
          leaves.push_back({h, c.size()});
          data.insert(data.end(), c.begin(), c.end());
          bytes_in_term += c.size();
        }
        if (bytes_in_term != term.unpacked_bytes) co_return Error(Errc::invalid_argument, "unpacked size mismatch");
        if (!(range_hash(hs) == f.verification[t])) co_return Error(Errc::invalid_argument, "verification mismatch");
      }
      if (!(file_hash(leaves) == f.file_hash)) {
        co_return Error(Errc::invalid_argument, "file reconstruction does not produce this hash");
      }
      files_[f.file_hash.hex()] = {std::move(data), f.terms};
    }
    co_return Status{};
  }

  std::optional<std::vector<uint8_t>> file(const Hash& h) {
    std::lock_guard lk(mu_);
    auto it = files_.find(h.hex());
    if (it == files_.end()) return std::nullopt;
    return it->second.first;
  }
  std::vector<FileTerm> terms(const Hash& h) {
    std::lock_guard lk(mu_);
    return files_.at(h.hex()).second;
  }
  std::vector<std::vector<uint8_t>> chunks(const Hash& xorb) {
    std::lock_guard lk(mu_);
    return xorbs_.at(xorb.hex());
  }
  std::vector<size_t> chunk_sizes(const Hash& xorb) {
    std::lock_guard lk(mu_);
    std::vector<size_t> out;
    for (auto& c : xorbs_.at(xorb.hex())) out.push_back(c.size());
    return out;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<std::vector<uint8_t>>> xorbs_;
  std::map<std::string, std::pair<std::vector<uint8_t>, std::vector<FileTerm>>> files_;
};

struct Env {
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> guard{io.get_executor()};
  net::thread_pool cpu{1};
  std::thread t{[this] { io.run(); }};
  ~Env() {
    guard.reset();
    io.stop();
    t.join();
    cpu.join();
  }
  template <class T>
  T run(net::awaitable<T> task) {
    std::promise<T> p;
    auto f = p.get_future();
    net::co_spawn(io, [&]() -> net::awaitable<void> { p.set_value(co_await std::move(task)); }, net::detached);
    return f.get();
  }
};

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

ReadFn reader(const std::vector<uint8_t>& data) {
  auto pos = std::make_shared<size_t>(0);
  return [&data, pos](std::span<uint8_t> buf) -> Result<size_t> {
    size_t n = std::min(buf.size(), data.size() - *pos);
    std::memcpy(buf.data(), data.data() + *pos, n);
    *pos += n;
    return n;
  };
}

}  // namespace

TEST_CASE("files upload into several xorbs and reconstruct exactly") {
  Env env;
  ValidatingCas cas;
  UploadOptions o;
  o.max_xorb_chunks = 16;  // force several xorbs
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor(), o);
  auto a = random_bytes(5 << 20, 1);
  std::vector<uint8_t> text;
  for (int i = 0; text.size() < (3 << 20); ++i) {
    std::string line = "line " + std::to_string(i) + " of a very compressible log file\n";
    text.insert(text.end(), line.begin(), line.end());
  }
  auto ra = env.run(s.add_file(reader(a)));
  auto rt = env.run(s.add_file(reader(text)));
  REQUIRE(ra.ok());
  REQUIRE(rt.ok());
  CHECK(ra->size == a.size());
  CHECK(ra->new_bytes == a.size());
  REQUIRE(env.run(s.finish()).ok());
  CHECK(cas.file(ra->file_hash) == a);
  CHECK(cas.file(rt->file_hash) == text);
  CHECK(s.stats().xorbs >= 5);
  // The log compressed: fewer bytes went up than its size.
  CHECK(s.stats().xorb_bytes < a.size() + text.size() / 2);
}

TEST_CASE("the empty file has the zero hash and no terms") {
  Env env;
  ValidatingCas cas;
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
  std::vector<uint8_t> empty;
  auto r = env.run(s.add_file(reader(empty)));
  REQUIRE(r.ok());
  CHECK(r->file_hash.is_zero());
  REQUIRE(env.run(s.finish()).ok());
  CHECK(cas.file(r->file_hash)->empty());
  CHECK(cas.xorb_puts.load() == 0);
}

TEST_CASE("identical content is deduplicated within a session") {
  Env env;
  ValidatingCas cas;
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
  auto a = random_bytes(2 << 20, 2);
  auto r1 = env.run(s.add_file(reader(a)));
  auto r2 = env.run(s.add_file(reader(a)));
  REQUIRE(r2.ok());
  CHECK(r1->file_hash == r2->file_hash);
  CHECK(r2->new_bytes == 0);
  CHECK(r2->dedup_bytes == a.size());
  REQUIRE(env.run(s.finish()).ok());
  CHECK(cas.file(r2->file_hash) == a);
}

TEST_CASE("rewriting a file with a small change uploads only the changed chunks") {
  Env env;
  ValidatingCas cas;
  auto a = random_bytes(16 << 20, 3);
  Hash ha;
  {
    UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
    ha = env.run(s.add_file(reader(a)))->file_hash;
    REQUIRE(env.run(s.finish()).ok());
  }
  // Base layout: file offset -> (xorb, index, len), as the filesystem learns it from reads.
  std::map<uint64_t, std::pair<ChunkLocation, uint32_t>> layout;
  uint64_t off = 0;
  for (auto& t : cas.terms(ha)) {
    auto sizes = cas.chunk_sizes(t.xorb_hash);
    for (uint32_t i = t.chunk_start; i < t.chunk_end; ++i) {
      layout[off] = {ChunkLocation{t.xorb_hash, i}, static_cast<uint32_t>(sizes[i])};
      off += sizes[i];
    }
  }
  auto b = a;
  uint64_t dirty = 8 << 20;
  for (uint64_t i = dirty; i < dirty + 4096; ++i) b[i] ^= 0x5a;
  KnownAt known = [&](uint64_t o, uint32_t len) -> std::optional<ChunkLocation> {
    if (o < dirty + 4096 && o + len > dirty) return std::nullopt;  // touches the edit
    auto it = layout.find(o);
    if (it == layout.end() || it->second.second != len) return std::nullopt;
    return it->second.first;
  };
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
  auto rb = env.run(s.add_file(reader(b), known));
  REQUIRE(rb.ok());
  REQUIRE(env.run(s.finish()).ok());
  CHECK(cas.file(rb->file_hash) == b);
  CHECK(rb->new_bytes <= 3 * 131072);  // the edited chunk and its CDC neighbourhood
  CHECK(rb->new_bytes > 0);
  CHECK(s.stats().xorb_bytes <= b.size() / 100);  // <= 1% of the file went up
}

TEST_CASE("a failed xorb upload fails the session and registers nothing") {
  Env env;
  ValidatingCas cas;
  cas.fail_xorbs = 100;
  UploadOptions o;
  o.max_xorb_chunks = 8;
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor(), o);
  auto a = random_bytes(4 << 20, 4);
  auto r = env.run(s.add_file(reader(a)));
  Status fin = r.ok() ? env.run(s.finish()) : Status(r.error());
  REQUIRE_FALSE(fin.ok());
  CHECK(fin.code() == Errc::server_error);
  CHECK(cas.shard_puts.load() == 0);
}

TEST_CASE("large registrations are split into several shards") {
  Env env;
  ValidatingCas cas;
  UploadOptions o;
  o.max_shard_bytes = 4096;
  o.max_xorb_chunks = 4;
  UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor(), o);
  std::vector<std::vector<uint8_t>> files;
  std::vector<Hash> hashes;
  for (int i = 0; i < 12; ++i) {
    files.push_back(random_bytes(300000 + i * 1000, 100 + i));
    hashes.push_back(env.run(s.add_file(reader(files.back())))->file_hash);
  }
  REQUIRE(env.run(s.finish()).ok());
  CHECK(cas.shard_puts.load() > 1);
  for (int i = 0; i < 12; ++i) CHECK(cas.file(hashes[i]) == files[i]);
}

// ---------------------------------------------------------------------------------------------
// Global dedup (spec §7.4, §9.2): the answer cache, the session's policy with a scripted CAS,
// and the whole path against the emulator.

namespace {

Hash xh(const char* hex) { return Hash::from_hex(hex).value(); }

// A dedup answer as the CAS sends it (§5.8 shape 2): full shard with footer, chunk hashes keyed
// with `key` (zero key: stored raw), round-tripped through the serializer and the parser.
Shard dedup_answer(std::vector<XorbInfo> xorbs, const Hash& key, uint64_t created, uint64_t expiry) {
  Shard s;
  for (auto& x : xorbs) {
    for (auto& c : x.chunks)
      if (!key.is_zero()) c.chunk_hash = hmac(c.chunk_hash, key);
    s.xorbs.push_back(std::move(x));
  }
  FullShardParams p;
  p.chunk_hash_hmac_key = key;
  p.creation_timestamp = created;
  p.key_expiry = expiry;
  p.lookup_tables = false;
  auto bytes = serialize_full_shard(s, p).value();
  return parse_shard(bytes).value();
}

XorbInfo xorb_of_chunks(const Hash& h, const std::vector<std::pair<Hash, uint32_t>>& chunks) {
  XorbInfo x;
  x.xorb_hash = h;
  uint32_t off = 0;
  for (auto& [ch, len] : chunks) {
    x.chunks.push_back({ch, off, len, 0});
    off += len;
  }
  x.num_bytes_in_xorb = off;
  return x;
}

// Chunk boundaries of `data` as (offset, hash, length).
struct ChunkAt {
  uint64_t offset;
  Hash hash;
  uint32_t len;
};
std::vector<ChunkAt> chunks_of(const std::vector<uint8_t>& data) {
  std::vector<ChunkAt> out;
  ChunkStream cs(true);
  for (auto& c : cs.feed(data)) out.push_back({c.offset, c.hash, static_cast<uint32_t>(c.data.size())});
  for (auto& c : cs.finish()) out.push_back({c.offset, c.hash, static_cast<uint32_t>(c.data.size())});
  return out;
}

Hash file_hash_of(const std::vector<uint8_t>& data) {
  std::vector<HashSize> leaves;
  for (auto& c : chunks_of(data)) leaves.push_back({c.hash, c.len});
  return file_hash(leaves);
}

}  // namespace

TEST_CASE("dedup cache: the real §11.5 answer's HMAC matching, expiry and bounds", "[dedup]") {
  // The §11.5 production answer (HFJS gpt2-64-8bits.tflite.shard; the binary is not vendored in
  // spec/vectors, so its documented facts are rebuilt here): three xorbs with these hashes and
  // chunk counts, key and timestamps from the footer, and the first real keyed chunk hashes of
  // xorb 1 (from the HFJS .shard.json). Raw chunk 9502eec1… keys to 81b34a51…, chunk 0 of xorb 1.
  const Hash key = xh("d6834b04843aaf16f29903e2428a99be635099f9ea5056cc4e95e7ec8a41509f");
  const uint64_t created = 1754059905, expiry = 1754664705;
  const Hash x0 = xh("16fe54ff57e667703a42fee0714b243eabd2d219773fb88446da2795c901dc0d");
  const Hash x1 = xh("213031765f0b4d7bc826ccd5bdda3261f624187e2997a2de61111652d31b081c");
  const Hash x2 = xh("9ef98552e37030376ff099dde26b14ecb6327bdf4635c20f341bd4746c458fdf");
  const Hash raw0 = xh("9502eec19d4b0c9f7b389228fa801f68ecdf15d69ccd1da2f9ddbd0219898335");
  const char* keyed_x1[] = {"81b34a5179857460a1a5ba079fcf7231c307a19940ccb769e49240df5ec6c466",
                            "9dca1d70a694aff1652bf62fce776a2c912ee920028734e65c188061a27ad804",
                            "b3b8498cddfd8644b77e12ff673ed556ea3d7c372e48405f5cf2567a0304eaf7"};
  REQUIRE(hmac(raw0, key) == xh(keyed_x1[0]));  // §3.6 / §11.5
  auto filler = [](int xi, uint32_t n) {
    std::vector<std::pair<Hash, uint32_t>> v;
    for (uint32_t i = 0; i < n; ++i) {
      Hash h;
      h.bytes[0] = static_cast<uint8_t>(xi);
      h.bytes[1] = static_cast<uint8_t>(i);
      h.bytes[2] = static_cast<uint8_t>(i >> 8);
      v.push_back({h, 60000});
    }
    return v;
  };
  // Entries are stored already keyed: build with a zero key, then set the real footer key.
  auto c1 = filler(1, 1062);
  for (int i = 0; i < 3; ++i) c1[i].first = xh(keyed_x1[i]);
  Shard s;
  s.xorbs = {xorb_of_chunks(x0, filler(0, 933)), xorb_of_chunks(x1, c1), xorb_of_chunks(x2, filler(2, 122))};
  FullShardParams p;
  p.chunk_hash_hmac_key = key;
  p.creation_timestamp = created;
  p.key_expiry = expiry;
  p.lookup_tables = false;
  auto bytes = serialize_full_shard(s, p).value();
  auto answer = parse_shard(bytes).value();
  REQUIRE(answer.footer);
  CHECK(answer.footer->shard_key_expiry == expiry);

  DedupShardCache cache;
  REQUIRE(cache.add(answer, created + 60).ok());
  CHECK(cache.shards() == 1);
  CHECK(cache.entries() == 933 + 1062 + 122);
  auto hit = cache.find(raw0, 60000, created + 60);
  REQUIRE(hit);
  CHECK(*hit == CasChunkRef{x1, 0});
  CHECK_FALSE(cache.find(raw0, 44970, created + 60));       // same hash, other length: not trusted
  CHECK_FALSE(cache.find(xh(keyed_x1[0]), 60000, created));  // keyed hashes are not raw hashes
  CHECK_FALSE(cache.find(raw0, 60000, expiry));              // the key has expired
  CHECK_FALSE(DedupShardCache().add(answer, expiry).ok());   // expired answers are refused

  SECTION("zero key: chunk hashes are raw") {
    Hash raw = chunk_hash(std::vector<uint8_t>(100, 7));
    DedupShardCache c;
    REQUIRE(c.add(dedup_answer({xorb_of_chunks(x2, {{raw, 100}})}, Hash::zero(), created, expiry), created).ok());
    CHECK(c.find(raw, 100, created) == CasChunkRef{x2, 0});
  }
  SECTION("no footer, nothing usable, over-long xorbs: refused") {
    Shard nofooter = answer;
    nofooter.footer.reset();
    CHECK_FALSE(DedupShardCache().add(nofooter, created).ok());
    Shard huge = answer;
    huge.xorbs = {xorb_of_chunks(x0, filler(0, kMaxXorbChunks + 1))};
    CHECK_FALSE(DedupShardCache().add(huge, created).ok());
    Shard zero_len = answer;
    zero_len.xorbs = {xorb_of_chunks(x0, {{raw0, 0}})};
    CHECK_FALSE(DedupShardCache().add(zero_len, created).ok());
  }
  SECTION("bounded: oldest answers are evicted, large answers cut at a xorb") {
    DedupShardCache c(DedupCacheLimits{2, 2000});
    REQUIRE(c.add(answer, created).ok());  // 933 + 1062 fit, the third xorb does not
    CHECK(c.entries() == 933 + 1062);
    Hash k2 = xh("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    for (int i = 0; i < 3; ++i) {
      Hash raw = chunk_hash(std::vector<uint8_t>(10, static_cast<uint8_t>(i)));
      REQUIRE(c.add(dedup_answer({xorb_of_chunks(x2, {{raw, 10}})}, k2, created, expiry), created).ok());
    }
    CHECK(c.shards() == 2);
    CHECK(c.entries() == 2);
    CHECK_FALSE(c.find(raw0, 60000, created));  // the big answer went first
  }
  SECTION("a run is kept in one xorb when several answers know the chunk") {
    Hash a = chunk_hash(std::vector<uint8_t>(10, 1)), b = chunk_hash(std::vector<uint8_t>(10, 2));
    DedupShardCache c;
    REQUIRE(c.add(dedup_answer({xorb_of_chunks(x0, {{a, 10}, {b, 10}})}, key, created, expiry), created).ok());
    REQUIRE(c.add(dedup_answer({xorb_of_chunks(x1, {{b, 10}})}, Hash::zero(), created, expiry), created).ok());
    CHECK(c.find(b, 10, created) == CasChunkRef{x1, 0});  // newest first
    CHECK(c.find(b, 10, created, CasChunkRef{x0, 0}) == CasChunkRef{x0, 1});
  }
}

namespace {

// A ValidatingCas that answers every dedup query with the xorbs of the files it was told about.
class DedupingCas : public ValidatingCas {
 public:
  std::atomic<int> queries{0};
  std::vector<XorbInfo> known;  // set before the session runs
  Hash key = xh("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  Task<std::optional<Shard>> query_dedup(Hash) override {
    queries++;
    if (known.empty()) co_return std::nullopt;
    int64_t now = now_unix_s();
    co_return dedup_answer(known, key, static_cast<uint64_t>(now), static_cast<uint64_t>(now + 3600));
  }
  void learn(const Hash& file) {
    for (auto& t : terms(file)) {
      std::vector<std::pair<Hash, uint32_t>> cs;
      for (auto& c : chunks(t.xorb_hash)) cs.push_back({chunk_hash(c), static_cast<uint32_t>(c.size())});
      known.push_back(xorb_of_chunks(t.xorb_hash, cs));
    }
  }
};

}  // namespace

TEST_CASE("global dedup policy: long runs are referenced, short ones uploaded again", "[dedup]") {
  Env env;
  DedupingCas cas;
  auto a = random_bytes(4 << 20, 50);
  Hash ha;
  {
    UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
    ha = env.run(s.add_file(reader(a)))->file_hash;
    REQUIRE(env.run(s.finish()).ok());
  }
  cas.learn(ha);
  cas.queries = 0;
  auto ca = chunks_of(a);
  REQUIRE(ca.size() > 40);
  auto slice = [&](size_t from, size_t n) {
    uint64_t begin = ca[from].offset, end = ca[from + n].offset;
    return std::vector<uint8_t>(a.begin() + static_cast<long>(begin), a.begin() + static_cast<long>(end));
  };
  auto join = [](std::initializer_list<std::vector<uint8_t>> parts) {
    std::vector<uint8_t> out;
    for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  auto upload = [&](const std::vector<uint8_t>& data, UploadStats* st) {
    UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor());
    auto r = env.run(s.add_file(reader(data)));
    REQUIRE(r.ok());
    REQUIRE(env.run(s.finish()).ok());
    CHECK(cas.file(r->file_hash) == data);
    CHECK(r->file_hash == file_hash_of(data));
    *st = s.stats();
    return *r;
  };

  UploadStats st;
  SECTION("the same file again: one query, nothing uploaded, one term per xorb") {
    auto r = upload(a, &st);
    CHECK(cas.queries.load() == 1);
    CHECK(r.global_dedup_bytes == a.size());
    CHECK(st.xorbs == 0);
    CHECK(cas.terms(r.file_hash) == cas.terms(ha));
  }
  SECTION("a 3-chunk match between new data is uploaded (no fragmenting)") {
    auto b = join({random_bytes(300000, 51), slice(10, 3), random_bytes(300000, 52)});
    auto r = upload(b, &st);
    CHECK(r.global_dedup_bytes == 0);
    CHECK(r.new_bytes == b.size());
  }
  SECTION("a 30-chunk match between new data is referenced") {
    auto mid = slice(10, 30);
    auto b = join({random_bytes(300000, 53), mid, random_bytes(300000, 54)});
    auto r = upload(b, &st);
    CHECK(r.global_dedup_bytes >= mid.size() - 2 * 131072);  // all but the resync at its start
    CHECK(r.new_bytes <= b.size() - r.global_dedup_bytes);
  }
  SECTION("a small file is not asked about by default (a round trip per small file costs more than it saves)") {
    auto b = slice(0, 3);
    REQUIRE(b.size() < UploadOptions{}.min_dedup_file);
    auto r = upload(b, &st);
    CHECK(cas.queries.load() == 0);
    CHECK(r.global_dedup_bytes == 0);
    CHECK(r.new_bytes == b.size());
  }
  SECTION("a small file equal to the start of a known one is one deduplicated term (min_dedup_file = 0)") {
    auto b = slice(0, 3);
    UploadOptions o;
    o.min_dedup_file = 0;
    UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor(), o);
    auto r = env.run(s.add_file(reader(b)));
    REQUIRE(r.ok());
    REQUIRE(env.run(s.finish()).ok());
    CHECK(cas.file(r->file_hash) == b);
    CHECK(cas.queries.load() == 1);
    CHECK(r->global_dedup_bytes == b.size());
    CHECK(cas.terms(r->file_hash).size() == 1);
  }
  SECTION("global dedup off: no query") {
    UploadOptions o;
    o.global_dedup = false;
    UploadSession s(cas, env.io.get_executor(), env.cpu.get_executor(), o);
    auto r = env.run(s.add_file(reader(a)));
    REQUIRE(r.ok());
    CHECK(r->global_dedup_bytes == 0);
    CHECK(cas.queries.load() == 0);
  }
}

namespace {

// The emulator (bucket "alice/dedup") with the production CAS client stack in front of it.
struct Sim {
  explicit Sim(Env& env) : env(env), http(env.io, http_options()), hubc(http, hub_options(start())) {}
  static http::ClientOptions http_options() {
    http::ClientOptions o;
    o.use_env_proxy = false;
    o.retry = http::RetryPolicy{2, std::chrono::milliseconds(10), std::chrono::milliseconds(50),
                                std::chrono::milliseconds(5000)};
    return o;
  }
  static hub::HubOptions hub_options(const std::string& endpoint) {
    hub::HubOptions o;
    o.endpoint = endpoint;
    return o;
  }
  std::string start() {
    REQUIRE(sim.add_bucket("alice/dedup").ok());
    REQUIRE(sim.start().ok());
    return sim.base_url();
  }
  ~Sim() { sim.stop(); }

  struct Upload {
    FileUploadResult r;
    UploadStats stats;
    uint64_t xorb_bytes_in = 0;  // xorb request bodies the emulator received
  };
  // One upload as a fresh mount would do it: new token source, CAS client and session (no
  // state shared with earlier uploads but what the CAS stores).
  Upload upload(const std::vector<uint8_t>& data, UploadOptions o = {}) {
    auto tokens = std::make_shared<HubTokenSource>(hubc, hub::RepoRef{hub::RepoType::bucket, "alice/dedup"}, "", true);
    CasClient cas(http, tokens);
    CasUploadSink sink(cas);
    uint64_t before = sim.bytes_in("xorb_upload");
    UploadSession s(sink, env.io.get_executor(), env.cpu.get_executor(), o);
    auto r = env.run(s.add_file(reader(data)));
    REQUIRE(r.ok());
    Status fin = env.run(s.finish());
    REQUIRE(fin.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // stats are recorded after the response
    return Upload{*r, s.stats(), sim.bytes_in("xorb_upload") - before};
  }
  // The file read back through reconstruction + presigned fetches (the download path).
  std::vector<uint8_t> read(const Hash& file) {
    auto tokens = std::make_shared<HubTokenSource>(hubc, hub::RepoRef{hub::RepoType::bucket, "alice/dedup"}, "", false);
    CasClient cas(http, tokens);
    return env.run([&]() -> net::awaitable<std::vector<uint8_t>> {
      std::vector<uint8_t> out;
      auto rec = co_await cas.get_reconstruction(file, std::nullopt);
      if (!rec) co_return out;
      for (const auto& t : rec->terms) {
        auto loc = rec->find(t);
        if (!loc.range) co_return std::vector<uint8_t>{};
        std::map<uint32_t, std::vector<uint8_t>> got;
        auto st = co_await cas.fetch_chunks(loc.fetch->url, *loc.range, [&](uint32_t i, std::span<const uint8_t> raw) {
          got[i].assign(raw.begin(), raw.end());
          return Status();
        });
        if (!st) co_return std::vector<uint8_t>{};
        for (uint32_t i = t.range.start; i < t.range.end; ++i) out.insert(out.end(), got[i].begin(), got[i].end());
      }
      out.erase(out.begin(), out.begin() + static_cast<long>(rec->offset_into_first_range));
      co_return out;
    }());
  }

  Env& env;
  hubsim::Server sim{hubsim::Options{}};
  http::Client http;
  hub::HubClient hubc;
};

std::string sha_hex(const std::vector<uint8_t>& v) {
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
}

}  // namespace

TEST_CASE("global dedup against the emulator: a later upload sends only what the CAS lacks", "[dedup][hubsim]") {
  Env env;
  Sim sim(env);
  UploadOptions small_xorbs;
  small_xorbs.max_xorb_chunks = 32;  // A spans several xorbs: terms cross xorb boundaries
  auto a = random_bytes(8 << 20, 60);
  // B: A with 20 KiB rewritten in the middle and 100 KiB appended; same first chunk.
  auto b = a;
  for (size_t i = 5 << 20; i < (5 << 20) + 20000; ++i) b[i] ^= 0xa5;
  auto tail = random_bytes(100000, 61);
  b.insert(b.end(), tail.begin(), tail.end());

  auto ua = sim.upload(a, small_xorbs);
  CHECK(ua.xorb_bytes_in >= a.size());
  CHECK(ua.stats.dedup_queries == 1);  // A's first chunk: unknown (404)
  CHECK(ua.stats.dedup_answers == 0);

  SECTION("B shares most chunks with A") {
    auto with = sim.upload(b, small_xorbs);
    UploadOptions off = small_xorbs;
    off.global_dedup = false;
    auto without = sim.upload(b, off);
    CHECK(with.r.file_hash == without.r.file_hash);  // the file hash covers every chunk
    CHECK(with.stats.dedup_answers >= 1);
    CHECK(with.r.global_dedup_bytes >= a.size() - 4 * 131072);
    CHECK(without.xorb_bytes_in >= b.size());
    CHECK(with.xorb_bytes_in * 20 < without.xorb_bytes_in);  // < 5% of the bytes
    WARN("B (" << b.size() << " B): xorb bytes uploaded with global dedup " << with.xorb_bytes_in << ", without "
               << without.xorb_bytes_in << " (ratio " << double(with.xorb_bytes_in) / double(without.xorb_bytes_in)
               << "), queries " << with.stats.dedup_queries);
    CHECK(sha_hex(sim.read(with.r.file_hash)) == sha_hex(b));
  }
  SECTION("the dedup query failing any way still uploads B correctly, without dedup") {
    std::string how;
    SECTION("500") {
      how = "500";
      sim.sim.set_faults({hubsim::FaultRule{"dedup", hubsim::FaultKind::status500, 1.0, 0}});
    }
    SECTION("reset") {
      how = "reset";
      sim.sim.set_faults({hubsim::FaultRule{"dedup", hubsim::FaultKind::reset, 1.0, 0}});
    }
    SECTION("404") {
      how = "404";
      sim.sim.set_interceptor([](const hubsim::Request&, hubsim::Response& r) {
        if (r.route == "dedup") {
          r.status = 404;
          r.set_body("{\"error\":\"Chunk not found\"}", "application/json");
        }
      });
    }
    SECTION("garbage shard") {
      how = "garbage";
      sim.sim.set_interceptor([](const hubsim::Request&, hubsim::Response& r) {
        if (r.route == "dedup") r.set_body(std::string(5000, '\xff'), "application/octet-stream");
      });
    }
    SECTION("truncated shard") {
      how = "truncated";
      sim.sim.set_interceptor([](const hubsim::Request&, hubsim::Response& r) {
        if (r.route != "dedup" || r.body.empty()) return;
        std::string all;
        for (auto& p : r.body) hubsim::append_source(*p.src, p.offset, p.length, all);
        r.set_body(all.substr(0, all.size() / 2), "application/octet-stream");
      });
    }
    SECTION("expired key") {
      how = "expired";
      sim.sim.set_interceptor([](const hubsim::Request&, hubsim::Response& r) {
        if (r.route != "dedup" || r.body.empty()) return;
        std::string all;
        for (auto& p : r.body) hubsim::append_source(*p.src, p.offset, p.length, all);
        uint64_t past = 1000;  // shard_key_expiry at footer + 112 (§5.7)
        std::memcpy(all.data() + all.size() - 200 + 112, &past, 8);
        r.set_body(std::move(all), "application/octet-stream");
      });
    }
    uint64_t faults_before = sim.sim.faults_injected();
    auto u = sim.upload(b, small_xorbs);
    INFO(how);
    if (how == "500" || how == "reset") CHECK(sim.sim.faults_injected() > faults_before);
    CHECK(u.stats.dedup_queries >= 1);
    CHECK(u.stats.dedup_answers == 0);
    CHECK(u.r.global_dedup_bytes == 0);
    CHECK(u.xorb_bytes_in >= b.size());
    sim.sim.clear_faults();
    sim.sim.set_interceptor({});
    CHECK(sha_hex(sim.read(u.r.file_hash)) == sha_hex(b));
  }
}
