// Replays the committed fuzz corpus of the filesystem parsers (test/fuzz/corpus/{mount_config,
// meta_entries,control_request}) through the fuzz harness invariants, plus deterministic random
// mutations of each seed, so every build exercises them without clang/libFuzzer.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "test/fuzz/fs_harness.h"

namespace {

std::vector<std::string> corpus(const std::string& target) {
  std::vector<std::string> out;
  const char* root = std::getenv("HF_SOURCE_ROOT");
  std::filesystem::path dir = std::filesystem::path(root ? root : ".") / "test" / "fuzz" / "corpus" / target;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

template <class Fn>
size_t replay(const std::string& target, Fn fn, std::vector<std::string> extra, int mutations) {
  auto seeds = corpus(target);
  size_t from_disk = seeds.size();
  for (auto& e : extra) seeds.push_back(std::move(e));
  std::mt19937_64 rng(4321);
  for (const auto& s : seeds) {
    INFO(target << " seed of " << s.size() << " bytes");
    REQUIRE(fn(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    for (int i = 0; i < mutations; ++i) {
      std::string m = s;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits; ++k) {
        size_t pos = m.empty() ? 0 : rng() % (m.size() + 1);
        switch (rng() % 4) {
          case 0: if (!m.empty() && pos < m.size()) m[pos] = static_cast<char>(rng()); break;
          case 1: m.insert(pos, 1, static_cast<char>(rng())); break;
          case 2: if (pos < m.size()) m.erase(pos, 1 + rng() % 8); break;
          default: m.insert(pos, s.substr(rng() % (s.size() + 1), rng() % 16)); break;
        }
      }
      INFO("mutation " << i);
      REQUIRE(fn(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
    }
  }
  return from_disk;
}

}  // namespace

TEST_CASE("fuzz corpus: mount options", "[fuzz][fs]") {
  replay("mount_config", hf::fs_fuzz::mount_args,
         {std::string("\0acme/x\0/m\0-o\0suid,dev,allow_other", 32), std::string("\3a/b\0\0", 6)}, 300);
}

TEST_CASE("fuzz corpus: cached listing pages", "[fuzz][fs]") {
  replay("meta_entries", hf::fs_fuzz::meta_entries, {std::string("\1\0\0\0\0", 5), std::string(100, '\xff')}, 500);
}

TEST_CASE("fuzz corpus: control requests", "[fuzz][fs]") {
  replay("control_request", hf::fs_fuzz::control_request,
         {R"({"op":"warm","paths":["a/../b"]})", R"({"op":"warm","paths":["./x/./y//"]})"}, 500);
}
