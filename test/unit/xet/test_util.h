// Helpers shared by the Xet codec unit tests (test data generators from the spec).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"
#include "net/xet/hash.h"

namespace hf::xet::testing {

// Hash from its xet-hex text; aborts on a malformed literal (a bug in the test itself).
inline Hash H(std::string_view xet_hex) {
  auto r = Hash::from_hex(xet_hex);
  if (!r.ok()) std::abort();
  return *r;
}

// Hash from raw BLAKE3 output bytes written as ordinary hex.
inline Hash raw_hash(std::string_view hex) {
  auto b = hf::hex_decode(hex);
  if (!b || b->size() != 32) std::abort();
  return Hash::from_bytes(b->data());
}

inline std::vector<uint8_t> unhex(std::string_view hex) {
  std::string clean;
  for (char c : hex) {
    if (c != ' ' && c != '\n') clean.push_back(c);
  }
  auto b = hf::hex_decode(clean);
  if (!b) std::abort();
  return *b;
}

// "0000: 4846 5265 ..." dumps as printed in the spec (offset column dropped).
inline std::vector<uint8_t> from_dump(std::string_view dump) {
  std::string hex;
  size_t pos = 0;
  while (pos < dump.size()) {
    size_t eol = dump.find('\n', pos);
    if (eol == std::string_view::npos) eol = dump.size();
    std::string_view line = dump.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      for (char c : line.substr(colon + 1)) {
        if (c != ' ') hex.push_back(c);
      }
    }
    pos = eol + 1;
  }
  return unhex(hex);
}

// SplitMix64 stream used by XC/HFJS chunking tests (§2.7).
inline std::vector<uint8_t> splitmix_data(size_t n, uint64_t seed) {
  std::vector<uint8_t> out;
  out.reserve(n + 8);
  uint64_t state = seed;
  while (out.size() < n) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(z >> (8 * i)));
  }
  out.resize(n);
  return out;
}

// data[i] = (i*a + b) & 0xff
inline std::vector<uint8_t> linear_data(size_t n, uint64_t a, uint64_t b) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((i * a + b) & 0xff);
  return out;
}

// Reads a file from $HF_TEST_VECTORS (nullopt when the directory or file is absent).
inline std::optional<std::vector<uint8_t>> read_vector_file(const char* name) {
  const char* dir = std::getenv("HF_TEST_VECTORS");
  if (!dir) return std::nullopt;
  std::ifstream f(std::string(dir) + "/" + name, std::ios::binary);
  if (!f) return std::nullopt;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace hf::xet::testing
