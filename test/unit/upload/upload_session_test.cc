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

#include "base/sha256.h"
#include "net/xet/upload/upload_session.h"

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
