// Helpers shared by the cache unit tests.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cache/chunk_types.h"

namespace hf::cache::test {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/hf-cache-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) std::abort();
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Deterministic xorb key number `id`.
inline Key32 xorb_key(uint64_t id) {
  Key32 k;
  uint64_t s = id * 7919 + 1;
  for (size_t i = 0; i < k.size(); i += 8) {
    uint64_t v = splitmix64(s);
    for (size_t j = 0; j < 8; ++j) k[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return k;
}

// The content of chunk `index` of xorb `id` is a pure function of both (as for real
// content-addressed chunks), of length 1..max_len.
inline std::vector<uint8_t> chunk_content(uint64_t id, uint32_t index, uint32_t max_len = 9000) {
  uint64_t s = (id << 32) ^ index ^ 0x5bd1e995ull;
  size_t len = 1 + splitmix64(s) % max_len;
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; i += 8) {
    uint64_t r = splitmix64(s);
    for (size_t j = 0; j < 8 && i + j < len; ++j) v[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  return v;
}

inline ChunkBytes make_chunk(uint64_t id, uint32_t index, uint32_t max_len = 9000) {
  return std::make_shared<const std::vector<uint8_t>>(chunk_content(id, index, max_len));
}

inline std::vector<ChunkBytes> make_run(uint64_t id, uint32_t first, uint32_t count,
                                        uint32_t max_len = 9000) {
  std::vector<ChunkBytes> v;
  for (uint32_t i = 0; i < count; ++i) v.push_back(make_chunk(id, first + i, max_len));
  return v;
}

// Waits for a child and returns its exit code, or 128 + signal.
inline int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace hf::cache::test
