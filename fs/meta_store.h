// Persistent metadata of one repository (or bucket) view, in RocksDB via cache::KvStore:
// what a remount needs to come up instantly, without the network.
//
//   refs      revision -> {commit, resolved_at, last_modified, canonical id}: branch resolution
//             with its time, so an offline mount of a branch can say which commit it serves.
//   dirs      commit \0 dir-path \0 page(u32 BE) -> a page of <= 4096 validated entries;
//             commit \0 dir-path \0 FFFFFFFF -> completion marker (entry count). A listing is
//             only used if its marker exists, so a crash mid-write leaves no partial listing.
//             One directory = one contiguous key range: a single prefix scan loads it.
//   chunkmap  content-id(32) + file offset(u64 BE) -> xorb(32) + chunk index(u32) + len(u32):
//             the learned chunk layout of Xet files, so cached bytes are found after a remount
//             without asking the CAS.
//
// Inode numbers are not stored: they are a deterministic function of the path (InodeTable).
//
// Untrusted input: values are decoded with bounds checks; a malformed value is reported as a
// miss (and logged), never trusted. Values carry a format version byte.
//
// One database per (endpoint, repo type, repo id) under <cache_dir>/meta/. A second process
// mounting the same repository at the same time opens it as a read-only secondary (it then
// learns new metadata in memory only); mounts of different repositories never contend.
//
// Thread-safety: all members are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <string>
#include <vector>

#include "base/result.h"
#include "cache/kv_store.h"
#include "fs/inode_table.h"

namespace hf::fs {

struct RefRecord {
  std::string commit;
  int64_t resolved_at_ns = 0;
  int64_t last_modified_ns = 0;
  std::string repo_id;
};

struct ChunkMapEntry {
  uint64_t offset = 0;
  std::array<uint8_t, 32> xorb{};
  uint32_t index = 0;
  uint32_t len = 0;
};

class MetaStore {
 public:
  // Opens (creating) the store for `scope` (an opaque string naming endpoint + repo) under
  // `cache_dir`/meta. Falls back to a read-only secondary if another process holds it.
  static Result<std::unique_ptr<MetaStore>> open(const std::string& cache_dir, const std::string& scope);

  bool read_only() const;
  // Memory the database holds (memtables, block cache, table readers); for `status`.
  uint64_t memory_bytes() const;

  Status put_ref(const std::string& revision, const RefRecord& r);
  std::optional<RefRecord> get_ref(const std::string& revision);

  Status put_listing(const std::string& commit, const std::string& dir, const std::vector<ListedEntry>& entries);
  // nullopt: not stored (or incomplete/corrupt). Content::rev of the entries is left 0.
  std::optional<std::vector<ListedEntry>> get_listing(const std::string& commit, const std::string& dir);

  Status put_chunks(const std::array<uint8_t, 32>& content, const std::vector<ChunkMapEntry>& chunks);
  std::vector<ChunkMapEntry> get_chunks(const std::array<uint8_t, 32>& content);

  // Read-only secondaries re-read what the primary wrote since.
  void catch_up();

  // ---- Write journal (bucket mounts). Written with sync=true: it must survive power loss.
  // A file with uncommitted changes: where its staged bytes are and what they apply to.
  struct PendingFile {
    std::string path;          // mount-relative
    std::string staging_path;  // absolute
    Content base;
    uint64_t base_size = 0, base_limit = 0, size = 0;
    int64_t mtime_ns = 0;
    std::vector<std::pair<uint64_t, uint64_t>> present;  // staged ranges
  };
  // One synced write for all of them (a group commit journals and clears its files at once).
  Status put_pending(const PendingFile& p);
  Status put_pending(std::span<const PendingFile> files);
  Status delete_pending(const std::string& path);
  Status delete_pending(std::span<const std::string> paths);
  std::vector<PendingFile> list_pending();
  // A namespace change in progress (e.g. a directory rename: its add/delete lines), replayed
  // after a crash until it completes. Lines are (kind, path, xet-hex, mtime_ms).
  struct PendingOps {
    uint64_t id = 0;
    std::vector<std::tuple<int, std::string, std::string, int64_t>> lines;
  };
  Result<uint64_t> put_ops(const PendingOps& ops);  // assigns the id when 0
  Status delete_ops(uint64_t id);
  std::vector<PendingOps> list_ops();

  // Encoding of one listing page (exposed for tests and fuzzing).
  static std::string encode_entries(const ListedEntry* e, size_t n);
  static Result<std::vector<ListedEntry>> decode_entries(std::string_view v);

 private:
  explicit MetaStore(std::unique_ptr<cache::KvStore> kv) : kv_(std::move(kv)) {}
  std::unique_ptr<cache::KvStore> kv_;
};

}  // namespace hf::fs
