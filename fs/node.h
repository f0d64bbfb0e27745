// Plain value types of the filesystem core (no libfuse, no network).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace hf::fs {

constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID

enum class NodeKind : uint8_t { file, dir, symlink };

// Where a file's bytes come from. Content is immutable for a given (source, id): the chunk
// caches key on it, and the kernel page cache is kept across opens while it is unchanged.
struct Content {
  enum class Source : uint8_t {
    empty,  // zero-length file, no request needed
    xet,    // CAS reconstruction by xet file hash (`id` = raw hash bytes)
    http,   // plain git blob or LFS-without-xet: HTTP Range on the resolve URL
            // (`id` = SHA-256 of "git:<oid>" or "lfs:<sha256>", a stable content key)
    local,  // bytes live in a local staging file (bucket writes)
  };
  Source source = Source::empty;
  std::array<uint8_t, 32> id{};
  std::string etag;  // git blob sha1 or LFS sha256 (hex), for xattrs and change detection
  uint32_t rev = 0;  // index of the revision the entry was listed at (the VFS's revision table)

  bool same_as(const Content& o) const { return source == o.source && id == o.id; }
};

// Attributes as the core reports them; the FUSE layer converts to struct stat.
struct Attr {
  uint64_t ino = 0;
  NodeKind kind = NodeKind::file;
  uint32_t perm = 0444;  // permission bits only (type comes from kind)
  uint32_t nlink = 1;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};

// A copy of one node's state, safe to use without locks.
struct NodeInfo {
  Attr attr;
  uint64_t parent = 0;
  std::string name;
  Content content;
  std::string symlink_target;
};

}  // namespace hf::fs
