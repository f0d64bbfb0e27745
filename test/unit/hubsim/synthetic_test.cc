// Synthetic content: the counter-based generator, spec parsing, safetensors headers, and
// synthetic repos read back through the bridge and the CAS (with real and fast hashing).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstring>
#include <set>

#include "base/clock.h"
#include "base/sha256.h"
#include "net/xet/chunker.h"
#include "test/hubsim/synthetic.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

namespace {

std::string gen(uint64_t seed, uint64_t off, size_t n) {
  std::string s(n, '\0');
  synth_fill(seed, off, reinterpret_cast<uint8_t*>(s.data()), n);
  return s;
}

}  // namespace

TEST_CASE("synthetic: any offset is produced directly and consistently", "[hubsim][synthetic]") {
  std::string whole = gen(7, 0, 100000);
  for (uint64_t off : {0ull, 1ull, 7ull, 8ull, 9ull, 4095ull, 65537ull, 99990ull}) {
    for (size_t n : {size_t{1}, size_t{3}, size_t{8}, size_t{10}}) {
      if (off + n > whole.size()) continue;
      CHECK(gen(7, off, n) == whole.substr(off, n));
    }
  }
  CHECK(gen(8, 0, 64) != whole.substr(0, 64));  // seeds differ
  // Incompressible-looking: every byte value occurs, roughly uniformly.
  std::array<size_t, 256> hist{};
  for (unsigned char ch : whole) hist[ch]++;
  for (size_t h : hist) {
    CHECK(h > 250);
    CHECK(h < 550);
  }
  // Fast enough to serve benchmarks: at least 1 GB/s even on a busy test machine.
  std::vector<uint8_t> buf(64u << 20);
  int64_t t0 = mono_ns();
  synth_fill(1, 0, buf.data(), buf.size());
  double gbps = static_cast<double>(buf.size()) / static_cast<double>(mono_ns() - t0);
  INFO("generator: " << gbps << " GB/s");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(gbps > 1.0);  // sanitizer instrumentation makes this meaningless
#endif
}

TEST_CASE("synthetic: spec parsing", "[hubsim][synthetic]") {
  auto files = parse_synthetic_spec("files=50,size=4K-1M,dirs=5x2,seed=1; file=model.safetensors:2G:seed=7:safetensors");
  REQUIRE(files.ok());
  REQUIRE(files->size() == 51);
  std::set<std::string> dirs;
  for (size_t i = 0; i < 50; ++i) {
    const auto& f = (*files)[i];
    CHECK(f.size >= 4096);
    CHECK(f.size <= 1u << 20);
    CHECK(!f.real_hash);
    dirs.insert(f.path.substr(0, f.path.rfind('/')));
    CHECK(f.path.ends_with(fmt::format("f{}.bin", i)));
  }
  CHECK(dirs.size() == 10);  // 5 x 2 leaf directories
  const auto& big = files->back();
  CHECK(big.path == "model.safetensors");
  CHECK(big.size == 2ull << 30);
  CHECK(big.seed == 7);
  CHECK(big.safetensors);
  CHECK(big.real_hash);
  CHECK(parse_synthetic_spec("files=1,size=2-1").code() == Errc::invalid_argument);
  CHECK(parse_synthetic_spec("bogus=1").code() == Errc::invalid_argument);
  CHECK(parse_synthetic_spec("file=x").code() == Errc::invalid_argument);
  CHECK(parse_synthetic_file("x", "10M:seed=x").code() == Errc::invalid_argument);
  auto same = parse_synthetic_spec("files=3,size=1K-9K,seed=5");
  auto again = parse_synthetic_spec("files=3,size=1K-9K,seed=5");
  for (size_t i = 0; i < 3; ++i) CHECK((*same)[i].size == (*again)[i].size);
}

TEST_CASE("synthetic: safetensors header layout", "[hubsim][synthetic]") {
  for (uint64_t size : {uint64_t{4096}, uint64_t{100} << 20, (uint64_t{300} << 20) + 12345}) {
    auto h = safetensors_header(size);
    REQUIRE(h.ok());
    const std::string& s = h.value();
    uint64_t n = 0;
    std::memcpy(&n, s.data(), 8);
    REQUIRE(s.size() == 8 + n);
    CHECK(n % 8 == 0);
    simdjson::dom::parser p;
    auto doc = parse_json_or_fail(p, s.substr(8));
    uint64_t expect = 0, data = size - 8 - n;
    size_t tensors = 0;
    for (auto [key, v] : doc.get_object()) {
      if (key == "__metadata__") {
        CHECK(str(v, "format") == "pt");
        continue;
      }
      ++tensors;
      auto offs = v["data_offsets"];
      uint64_t a = offs.at(0).get_uint64().value(), b = offs.at(1).get_uint64().value();
      CHECK(a == expect);
      uint64_t elems = 1;
      for (auto d : v["shape"].get_array()) elems *= d.get_uint64().value();
      uint64_t width = str(v, "dtype") == "BF16" ? 2 : 1;
      CHECK(elems * width == b - a);
      expect = b;
    }
    CHECK(expect == data);  // tensors cover the data exactly
    CHECK(tensors >= 1);
  }
  CHECK(!safetensors_header(10).ok());
}

TEST_CASE("synthetic: repos read back through the bridge and the CAS", "[hubsim][synthetic]") {
  Fixture fx;
  REQUIRE(fx.srv->add_synthetic_repo(RepoType::model, "bench/big",
                                     "file=model.safetensors:24M:seed=7:safetensors;file=raw.bin:3M:seed=9")
              .ok());
  REQUIRE(fx.srv->add_synthetic_repo(RepoType::dataset, "bench/many", "files=40,size=1K-300K,dirs=2x2,seed=3").ok());
  fx.start();
  const TestClient& c = *fx.client;

  SECTION("hash=real: hashes and SHA-256 agree with the bytes") {
    auto h = c.head("/bench/big/resolve/main/raw.bin");
    REQUIRE(h.status == 302);
    std::string bytes = gen(9, 0, 3u << 20);
    CHECK(h.header("x-linked-etag") == "\"" + sha256_hex(bytes) + "\"");
    // Independent file hash: chunk the generated bytes and aggregate.
    xet::ChunkStream cs;
    std::vector<xet::HashSize> leaves;
    for (const auto& ch : cs.feed({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}))
      leaves.push_back({ch.hash, ch.data.size()});
    for (const auto& ch : cs.finish()) leaves.push_back({ch.hash, ch.data.size()});
    CHECK(h.header("x-xet-hash") == xet::file_hash(leaves).hex());
    std::string tok = fetch_token(c, "/api/models/bench/big/xet-read-token/main");
    auto got = read_via_cas(c, fx.base + "/cas", tok, h.header("x-xet-hash"));
    REQUIRE(got.ok());
    CHECK(got.value() == bytes);
    // The safetensors file starts with its header, then generated data.
    auto st = c.get_follow("/bench/big/resolve/main/model.safetensors", {{"Range", "bytes=0-7"}});
    REQUIRE(st.status == 206);
    uint64_t n = 0;
    std::memcpy(&n, st.body.data(), 8);
    auto hdr = safetensors_header(24u << 20);
    REQUIRE(hdr.ok());
    CHECK(n + 8 == hdr->size());
    auto tail = c.get_follow("/bench/big/resolve/main/model.safetensors", {{"Range", "bytes=20000000-20000099"}});
    CHECK(tail.body == gen(7, 20000000 - hdr->size(), 100));
    auto whole = read_via_cas(c, fx.base + "/cas", tok,
                              c.head("/bench/big/resolve/main/model.safetensors").header("x-xet-hash"),
                              {false, true, std::make_pair(0ull, (24ull << 20) - 1)});
    REQUIRE(whole.ok());
    CHECK(whole->substr(0, hdr->size()) == hdr.value());
    CHECK(whole->substr(hdr->size()) == gen(7, 0, (24u << 20) - hdr->size()));
  }
  SECTION("hash=fast: bytes are still served consistently") {
    simdjson::dom::parser p;
    auto tree = parse_json_or_fail(p, c.get("/api/datasets/bench/many/tree/main?recursive=true").body);
    auto spec = parse_synthetic_spec("files=40,size=1K-300K,dirs=2x2,seed=3");
    REQUIRE(spec.ok());
    std::map<std::string, SynthFile> by_path;
    for (const auto& f : spec.value()) by_path[f.path] = f;
    std::string tok = fetch_token(c, "/api/datasets/bench/many/xet-read-token/main");
    size_t files = 0;
    for (auto e : tree.get_array()) {
      if (str(e, "type") != "file") continue;
      const SynthFile& f = by_path.at(str(e, "path"));
      CHECK(num(e, "size") == f.size);
      if (files++ % 8 != 0) continue;  // read a sample
      auto got = read_via_cas(c, fx.base + "/cas", tok, str(e, "xetHash"));
      REQUIRE(got.ok());
      CHECK(got.value() == gen(f.seed, 0, f.size));
    }
    CHECK(files == 40);
  }
}
