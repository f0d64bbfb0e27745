// Replays the committed fuzz corpus (test/fuzz/corpus/<target>/*, including every crash and
// interesting input found while fuzzing) through the fuzz harnesses in the normal build, so
// regressions are caught without clang/libFuzzer.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test/fuzz/harness.h"

namespace {

namespace fs = std::filesystem;

using Harness = bool (*)(const uint8_t*, size_t);

size_t replay(const char* target, Harness h) {
  const char* root = std::getenv("HF_SOURCE_ROOT");
  fs::path dir = fs::path(root ? root : ".") / "test" / "fuzz" / "corpus" / target;
  REQUIRE(fs::is_directory(dir));
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    INFO(entry.path().string());
    CHECK(h(bytes.data(), bytes.size()));
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz corpus replay: chunk records") { CHECK(replay("chunk_records", hf::xet::fuzz::chunk_records) >= 3); }
TEST_CASE("fuzz corpus replay: xorb") { CHECK(replay("xorb", hf::xet::fuzz::xorb) >= 2); }
TEST_CASE("fuzz corpus replay: shard") { CHECK(replay("shard", hf::xet::fuzz::shard) >= 4); }
TEST_CASE("fuzz corpus replay: reconstruction") { CHECK(replay("reconstruction", hf::xet::fuzz::reconstruction) >= 6); }

TEST_CASE("fuzz harnesses accept empty and tiny inputs") {
  const uint8_t zero[4] = {};
  for (size_t n = 0; n <= 4; ++n) {
    CHECK(hf::xet::fuzz::chunk_records(zero, n));
    CHECK(hf::xet::fuzz::xorb(zero, n));
    CHECK(hf::xet::fuzz::shard(zero, n));
    CHECK(hf::xet::fuzz::reconstruction(zero, n));
  }
}
