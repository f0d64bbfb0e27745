// KvStore: a thin RocksDB wrapper for persistent metadata (inode table, listings, plans, the
// write journal). No RocksDB type appears in this header.
//
// Durability: the WAL is always on. Writes default to sync=false: the WAL record is written to
// the page cache before the call returns, so a kill -9 of the process loses nothing; a power
// loss may lose the last writes, which is fine for cached metadata. Data that must survive power
// loss (the write journal) commits with sync=true (fsync of the WAL).
//
// Single writer: RocksDB allows one process to open a DB read-write. open() of a DB held by
// another process (or by another KvStore in this one) fails with Errc::busy; that caller can
// use open_secondary(), a read-only view that follows the primary through try_catch_up().
//
// Column families are named; the ones listed in KvOptions are created if missing, and any
// others already in the DB are opened too (RocksDB requires it). "default" always exists.
//
// Errors: every RocksDB status is converted at this boundary: IOError -> io (no_space when the
// disk is full), Corruption -> corrupt, Busy -> busy, TryAgain -> again, TimedOut -> timed_out,
// NotSupported -> unsupported, InvalidArgument -> invalid_argument; NotFound from get() is an
// empty optional. An unknown column family name is invalid_argument. Writes on a secondary
// return read_only.
//
// Thread-safety: every member is thread-safe (a WriteBatch is not: one thread builds it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hf::cache {

struct KvColumnFamily {
  std::string name;
  // Keys of this family share a fixed-length prefix worth indexing (e.g. an 8-byte parent inode
  // before a name): enables prefix bloom filters and prefix seeks. 0 = none.
  size_t fixed_prefix_len = 0;
};

struct KvOptions {
  std::vector<KvColumnFamily> column_families;  // "default" is implicit
  bool create_if_missing = true;
  uint64_t block_cache_bytes = 32ull << 20;     // shared by all column families
  uint64_t write_buffer_bytes = 4ull << 20;     // per memtable; metadata is small
  int max_open_files = 256;                     // bounded fd use
};

class KvStore {
 public:
  // Opens (creating the directory and missing column families) read-write.
  // Errc::busy if another process or KvStore holds the DB.
  static Result<std::unique_ptr<KvStore>> open(const std::string& path, KvOptions opts = {});
  // Read-only secondary instance following the primary at `path`; `secondary_dir` (created if
  // missing) holds this instance's info log. Opens every column family of the DB.
  static Result<std::unique_ptr<KvStore>> open_secondary(const std::string& path,
                                                         const std::string& secondary_dir,
                                                         KvOptions opts = {});
  ~KvStore();  // flushes nothing extra: the WAL already has every acknowledged write
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  bool is_secondary() const;
  // Bytes RocksDB holds in memory for this DB: memtables, table readers (index and filter
  // blocks outside the block cache) and the block cache. Approximate; thread-safe.
  uint64_t memory_bytes() const;
  std::vector<std::string> column_families() const;

  Result<std::optional<std::string>> get(std::string_view cf, std::string_view key) const;
  Status put(std::string_view cf, std::string_view key, std::string_view value, bool sync = false);
  Status del(std::string_view cf, std::string_view key, bool sync = false);

  // Calls fn(key, value) for every key starting with `prefix`, in key order, until it returns
  // false. The views are valid only during the call. Reads a consistent snapshot.
  Status scan_prefix(std::string_view cf, std::string_view prefix,
                     const std::function<bool(std::string_view key, std::string_view value)>& fn) const;
  // Deletes every key starting with `prefix` (a range tombstone; O(1) for non-empty prefixes
  // that have a successor, otherwise key by key).
  Status delete_prefix(std::string_view cf, std::string_view prefix, bool sync = false);

  // Atomic group of writes. Errors found while building (unknown column family) are reported by
  // commit(); nothing is written then.
  class WriteBatch {
   public:
    ~WriteBatch();
    WriteBatch(WriteBatch&&) noexcept;
    WriteBatch& operator=(WriteBatch&&) noexcept;
    void put(std::string_view cf, std::string_view key, std::string_view value);
    void del(std::string_view cf, std::string_view key);
    void delete_prefix(std::string_view cf, std::string_view prefix);
    size_t count() const;
    Status commit(bool sync = false);  // the batch is empty afterwards (also on error)

   private:
    friend class KvStore;
    struct Impl;
    explicit WriteBatch(KvStore* store);
    std::unique_ptr<Impl> impl_;
  };
  WriteBatch batch();

  // Secondary only: replays the primary's new WAL/manifest entries. Primary: no-op.
  Status try_catch_up();
  // Full manual compaction of every column family.
  Status compact();
  // Approximate bytes on disk plus in memtables, of one column family or (empty) of all.
  Result<uint64_t> approximate_size(std::string_view cf = {}) const;

  struct Impl;

 private:
  explicit KvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hf::cache
