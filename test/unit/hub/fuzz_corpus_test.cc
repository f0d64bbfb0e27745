// Replays the committed fuzz corpus of the net/http and net/hub parsers (test/fuzz/corpus/
// {link_header,multipart,hub_json}) through the fuzz harness invariants, plus deterministic
// random mutations of each seed, so every build exercises them without clang/libFuzzer.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "test/fuzz/net_harness.h"

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
void replay(const std::string& target, Fn fn, std::vector<std::string> extra) {
  auto seeds = corpus(target);
  for (auto& e : extra) seeds.push_back(std::move(e));
  std::mt19937_64 rng(1234);
  for (const auto& s : seeds) {
    INFO(target << " seed of " << s.size() << " bytes");
    REQUIRE(fn(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    for (int i = 0; i < 1500; ++i) {
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
}

}  // namespace

TEST_CASE("fuzz corpus: Link header", "[fuzz][http]") {
  replay("link_header", hf::net_fuzz::link_header, {"<x>; rel=next", "<>;;;,,,<", std::string(300, '<')});
}

TEST_CASE("fuzz corpus: multipart/byteranges", "[fuzz][http]") {
  replay("multipart", hf::net_fuzz::multipart,
         {std::string("\x01--B0UND\r\nContent-Range: bytes 0-0/1\r\n\r\nz\r\n--B0UND--", 51)});
}

TEST_CASE("fuzz corpus: Hub JSON", "[fuzz][hub]") {
  replay("hub_json", hf::net_fuzz::hub_json, {"[{\"type\":\"file\",\"path\":\"a\",\"size\":1}]", std::string(200, '['), "{\"error\":[\"a\",1]}"});
}
