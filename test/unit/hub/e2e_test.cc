// End to end against the in-process Hub + CAS emulator (test/hubsim): HubClient + CasClient
// read seeded repo files (xet and plain git), and a bucket write path (UploadSession ->
// upload_xorb/upload_shard -> bucket_batch) read back; bytes compared by SHA-256.
#include <utility>  // before Asio (asio#944)

#include <catch2/catch.hpp>

#include <boost/asio/thread_pool.hpp>

#include <map>

#include "base/sha256.h"
#include "net/hub/client.h"
#include "net/xet/client/cas_client.h"
#include "net/xet/client/cas_upload_sink.h"
#include "net/xet/upload/upload_session.h"
#include "test/hubsim/server.h"
#include "test/unit/http/test_util.h"

using namespace hf;
using namespace hf::test;

namespace {

std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x >> 32);
  }
  return s;
}

// Reads [start, end] of a xet file through reconstruction + presigned fetches.
// `whole_xorbs` (optional) counts fetched ranges that hold a whole xorb whose chunks hash to its name.
boost::asio::awaitable<Result<std::string>> read_xet(xet::CasClient& cas, xet::Hash file, std::optional<xet::ByteRangeIncl> range,
                                                    int* whole_xorbs = nullptr) {
  auto rec = co_await cas.get_reconstruction(file, range);
  if (!rec) co_return std::move(rec).error();
  std::map<std::pair<std::string, uint32_t>, std::string> chunks;
  for (const auto& t : rec->terms) {
    auto loc = rec->find(t);
    if (!loc.range) co_return make_error(Errc::protocol, "term without fetch range");
    std::string xh = t.xorb.hex();
    if (chunks.count({xh, t.range.start})) continue;
    std::vector<xet::HashSize> leaves;
    auto st = co_await cas.fetch_chunks(loc.fetch->url, *loc.range, [&](uint32_t i, std::span<const uint8_t> raw) {
      chunks[{xh, i}] = std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
      leaves.push_back(xet::HashSize{xet::chunk_hash(raw), raw.size()});
      return Status();
    });
    if (!st) co_return std::move(st).error();
    if (whole_xorbs && st->object_size && xet::covers_whole_xorb(*loc.range, *st->object_size)) {
      if (!(xet::xorb_hash(leaves) == t.xorb)) co_return make_error(Errc::corrupt, "whole xorb does not match its hash");
      ++*whole_xorbs;
    }
  }
  std::string out;
  for (const auto& t : rec->terms) {
    for (uint32_t i = t.range.start; i < t.range.end; ++i) out += chunks.at({t.xorb.hex(), i});
  }
  out.erase(0, static_cast<size_t>(rec->offset_into_first_range));
  if (range) out.resize(std::min<size_t>(out.size(), range->end - range->start + 1));
  co_return out;
}

}  // namespace

TEST_CASE("E2E: repo files read through HubClient + CasClient match the seeded bytes", "[e2e][hubsim]") {
  const std::string big = random_bytes(3u << 20, 7), config = R"({"model_type":"tiny"})";
  std::string medium;
  for (int i = 0; i < 20000; ++i) medium += "row " + std::to_string(i) + ", some repetitive text\n";
  hubsim::Options so;
  hubsim::Server sim(so);
  REQUIRE(sim.add_repo(hubsim::RepoType::model, "acme/tiny",
                       {{"config.json", config, ""}, {"data/big.bin", big, ""}, {"data/medium.csv", medium, ""}})
              .ok());
  const std::string solo = random_bytes(1u << 20, 8);  // alone in its xorb
  REQUIRE(sim.add_repo(hubsim::RepoType::model, "acme/solo", {{"solo.bin", solo, ""}}).ok());
  REQUIRE(sim.start().ok());

  IoThreads io;
  http::ClientOptions ho;
  ho.use_env_proxy = false;
  http::Client http(io.io, ho);
  hub::HubOptions hubo;
  hubo.endpoint = sim.base_url();
  hub::HubClient hubc(http, hubo);
  hub::RepoRef repo{hub::RepoType::model, "acme/tiny"};

  auto info = run_coro(io.io, hubc.repo_info(repo, std::string("main")));
  REQUIRE(info.ok());
  REQUIRE(info->sha.size() == 40);

  std::map<std::string, hub::TreeEntry> files;
  REQUIRE(run_coro(io.io, hubc.list_tree(repo, info->sha, "", true, [&](std::vector<hub::TreeEntry>&& p) {
            for (auto& e : p) files[e.path] = e;
            return Status();
          })).ok());
  REQUIRE(files.count("data/big.bin"));
  REQUIRE(files.count("config.json"));
  const auto& be = files["data/big.bin"];
  CHECK(be.size == big.size());
  REQUIRE(!be.xet_hash.empty());
  CHECK(files["config.json"].xet_hash.empty());

  auto meta = run_coro(io.io, hubc.head_file(repo, "main", "data/big.bin"));
  REQUIRE(meta.ok());
  CHECK(meta->xet_hash == be.xet_hash);
  CHECK(meta->size == big.size());
  auto cmeta = run_coro(io.io, hubc.head_file(repo, "main", "config.json"));
  REQUIRE(cmeta.ok());
  CHECK(cmeta->size == config.size());

  auto tokens = std::make_shared<xet::HubTokenSource>(hubc, repo, info->sha, false);
  xet::CasClient cas(http, tokens);
  auto fh = *xet::Hash::from_hex(be.xet_hash);
  int whole_xorbs = 0;
  auto whole = run_coro(io.io, read_xet(cas, fh, std::nullopt, &whole_xorbs));
  REQUIRE(whole.ok());
  CHECK(sha256_hex(*whole) == sha256_hex(big));
  CHECK(whole_xorbs == 0);  // big.bin shares its xorb with medium.csv: a prefix, not the whole xorb
  auto part = run_coro(io.io, read_xet(cas, fh, xet::ByteRangeIncl{1000000, 1500000}));
  REQUIRE(part.ok());
  CHECK(sha256_hex(*part) == sha256_hex(big.substr(1000000, 500001)));
  auto sz = run_coro(io.io, cas.file_size(fh));
  REQUIRE(sz.ok());
  CHECK(*sz == big.size());
  CHECK(run_coro(io.io, cas.get_reconstruction(fh, xet::ByteRangeIncl{big.size(), big.size() + 10})).code() == Errc::out_of_range);

  const auto& me = files["data/medium.csv"];
  if (!me.xet_hash.empty()) {
    auto m = run_coro(io.io, read_xet(cas, *xet::Hash::from_hex(me.xet_hash), std::nullopt));
    REQUIRE(m.ok());
    CHECK(*m == medium);
  }
  {
    // A file alone in its xorb: the emulator's Content-Range total (records + V1 footer, §4.5)
    // shows the whole xorb, whose chunks then hash to its name.
    hub::RepoRef solo_repo{hub::RepoType::model, "acme/solo"};
    std::string solo_hash;
    REQUIRE(run_coro(io.io, hubc.list_tree(solo_repo, "main", "", true, [&](std::vector<hub::TreeEntry>&& p) {
              for (auto& e : p) solo_hash = e.xet_hash;
              return Status();
            })).ok());
    REQUIRE(!solo_hash.empty());
    xet::CasClient solo_cas(http, std::make_shared<xet::HubTokenSource>(hubc, solo_repo, "main", false));
    int whole = 0;
    auto got_solo = run_coro(io.io, read_xet(solo_cas, *xet::Hash::from_hex(solo_hash), std::nullopt, &whole));
    REQUIRE(got_solo.ok());
    CHECK(sha256_hex(*got_solo) == sha256_hex(solo));
    CHECK(whole == 1);
  }

  std::string got;
  http::StreamHandler sink;
  sink.on_data = [&](std::span<const uint8_t> d) {
    got.append(reinterpret_cast<const char*>(d.data()), d.size());
    return Status();
  };
  REQUIRE(run_coro(io.io, hubc.download(repo, "main", "config.json", 0, 0, sink)).ok());
  CHECK(got == config);
  got.clear();
  REQUIRE(run_coro(io.io, hubc.download(repo, "main", "config.json", 2, 5, sink)).ok());
  CHECK(got == config.substr(2, 5));
  CHECK(run_coro(io.io, hubc.head_file(repo, "main", "nope.txt")).code() == Errc::entry_not_found);
  sim.stop();
}

TEST_CASE("E2E: bucket write path (upload session -> CAS -> batch) and read back", "[e2e][hubsim][bucket]") {
  hubsim::Options so;
  hubsim::Server sim(so);
  REQUIRE(sim.add_bucket("alice/scratch").ok());
  REQUIRE(sim.start().ok());
  IoThreads io;
  boost::asio::thread_pool cpu(1);
  http::ClientOptions ho;
  ho.use_env_proxy = false;
  http::Client http(io.io, ho);
  hub::HubOptions hubo;
  hubo.endpoint = sim.base_url();
  hub::HubClient hubc(http, hubo);
  hub::RepoRef bucket{hub::RepoType::bucket, "alice/scratch"};

  auto wtok = std::make_shared<xet::HubTokenSource>(hubc, bucket, "", true);
  xet::CasClient cas(http, wtok);
  xet::CasUploadSink sink(cas);
  const std::string content = random_bytes(1u << 20, 11);
  auto result = run_coro(io.io, [&]() -> boost::asio::awaitable<Result<xet::FileUploadResult>> {
    xet::UploadSession session(sink, io.io.get_executor(), cpu.get_executor());
    size_t pos = 0;
    auto r = co_await session.add_file([&](std::span<uint8_t> buf) -> Result<size_t> {
      size_t n = std::min(buf.size(), content.size() - pos);
      std::memcpy(buf.data(), content.data() + pos, n);
      pos += n;
      return n;
    });
    if (!r) co_return r;
    auto st = co_await session.finish();
    if (!st) co_return std::move(st).error();
    co_return r;
  }());
  REQUIRE(result.ok());
  CHECK(result->size == content.size());

  hub::BatchOp add;
  add.kind = hub::BatchOp::add;
  add.path = "dir/new.bin";
  add.xet_hash = result->file_hash.hex();
  add.mtime_ms = 1771340292000;
  auto br = run_coro(io.io, hubc.bucket_batch(bucket, {add}));
  REQUIRE(br.ok());
  CHECK(br->all_succeeded());

  hub::BatchOp bogus = add;
  bogus.path = "dir/bogus.bin";
  bogus.xet_hash = std::string(64, 'a');
  auto bad = run_coro(io.io, hubc.bucket_batch(bucket, {bogus}));
  if (bad.ok()) CHECK(!bad->all_succeeded());  // unknown hash: reported in failed[] (200 or 422)

  std::vector<hub::TreeEntry> entries;
  REQUIRE(run_coro(io.io, hubc.list_tree(bucket, "", "dir", false, [&](std::vector<hub::TreeEntry>&& p) {
            for (auto& e : p) entries.push_back(std::move(e));
            return Status();
          })).ok());
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].path == "dir/new.bin");
  CHECK(entries[0].xet_hash == result->file_hash.hex());
  auto info = run_coro(io.io, hubc.bucket_info(bucket));
  REQUIRE(info.ok());
  CHECK(info->total_files == 1);

  auto back = run_coro(io.io, read_xet(cas, result->file_hash, std::nullopt));
  REQUIRE(back.ok());
  CHECK(sha256_hex(*back) == sha256_hex(content));
  sim.stop();
}
