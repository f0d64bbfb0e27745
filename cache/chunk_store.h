// DiskChunkStore: the content-addressed on-disk cache of decoded Xet chunks.
//
// One cache directory is shared by every file, repo and mount that uses it, including several
// processes at once; there is no daemon. Chunks are keyed by (xorb key, chunk index), so a chunk
// shared by two files is stored and downloaded once.
//
// Layout (all created 0700, files 0600):
//   <dir>/chunks/v1/<xx>/<xorb-hex>/<first>-<end>.run   runs (xx = first 2 hex chars)
//   <dir>/chunks/tmp/<instance>.lock + <instance>/      per-process staging for new runs
//   <dir>/chunks/evict.lock                             flock: one evictor at a time
//   <dir>/chunks/state                                  shared usage counter (mmap, 4 KiB)
//
// A *run* holds the consecutive decoded chunks [first, end) of one xorb, written by one fetch.
// Why runs instead of one file per chunk: a cold sequential read produces 1-16 MiB of
// consecutive chunks at once; one file per fetch costs one create, a few pwritev and one rename
// instead of hundreds of each, keeps the file count (and eviction scans) small, and lets a sequential
// re-read fetch many chunks with one preadv. Overlapping runs (two processes fetched the same
// range) are legal; lookups pick any run that covers the index.
//
// Run file format (little-endian):
//   header, 64 bytes: magic "HFRUN\0\1" (7) | format version u8 = 1 | xorb key (32) |
//     first u32 | count u32 | file size u64 | XXH3-64 of bytes [0, 56)
//   entry table, count x 24 bytes: raw length u32 | reserved u32 (0) | file offset u64 |
//     XXH3-64 of the chunk bytes
//   XXH3-64 of the entry table (8)
//   chunk data, back to back (entry i's offset = end of entry i-1)
// Every read verifies the chunk's XXH3-64; the header and table are verified when first loaded
// by a process (and the file size must match), then kept in memory. Any mismatch or structural error unlinks the run and the
// lookup returns a miss: corrupt bytes never reach a caller.
//
// Crash safety: a run is written under tmp/ and rename()d into place (RENAME_NOREPLACE), so
// after kill -9 a run is complete or absent; stale tmp/ directories of dead processes (their
// flock is gone) are removed by the next open(). No fsync by default: power loss can leave a
// torn or zero-filled run, which the checksums reject (and delete) on first read. With
// `fsync = true` the data is fdatasync()ed before the rename and the directory after it.
//
// Write path cost: put_run checksums and writes the chunk data straight from the caller's
// buffers in 256 KiB pwritev groups (each group is hashed while still in the CPU cache), then
// the header and table, then one rename: about one write of the data plus XXH3.
//
// Discovery across processes: each process keeps an in-memory index of the runs of each xorb,
// built lazily by listing the xorb's directory; on a miss the directory is listed again, at
// most once per 100 ms per xorb, so runs written by other processes are found.
//
// Size bound and eviction: usage (file sizes rounded up to 4 KiB) is tracked in a counter
// shared by all processes through an mmap()ed file. put_run reserves its size in that counter
// (compare-and-swap against max_bytes) *before* writing, and does not write (returns ok,
// counted in puts_skipped_full) if the reservation would exceed max_bytes; so concurrent fills
// from all processes stay within the bound. When usage passes 95% of the bound the background
// evictor is woken (it also runs every evict_interval); it takes a non-blocking flock on
// evict.lock (another process is evicting -> skip), scans all runs (size, mtime), lowers the
// shared counter to what the scan found (never raises it: the scan can only overcount, so this
// releases reservations leaked by killed writers without risking an undercount), and unlinks
// the least recently used runs until usage <= 90%. "Last use" is the run's mtime, bumped with
// futimens() on read at most once per 60 s per run. Eviction only unlinks: a run that a reader
// has open stays readable through its fd, so in-flight reads never lose data. Open fds of runs
// that another process unlinked are noticed (st_nlink == 0, checked at most once per second)
// and closed so their space is released. max_bytes = 0 disables the store (every lookup
// misses, puts are no-ops, nothing is created on disk).
// The counter is rebuilt from a full scan when the state file is missing or damaged, and on the
// first open after a reboot (the boot id is recorded in it), since a power loss can leave the
// file older than the runs.
// Accounting invariant: the counter never undercounts what is on disk. Only the flock holder
// decrements it (its own unlinks, the reconcile); a file removed elsewhere (failed or duplicate
// write, corrupt drop) leaks its reservation until the next reconcile, which errs on the safe
// side (earlier eviction), never over the bound.
//
// Thread-safety: all members are thread-safe. Lock order: shard mutex and run mutex are never
// held together with I/O except the run mutex around its one-time header/table load; the fd
// cache mutex is a leaf. Errors: lookups never fail on cache content (anything wrong is a
// miss); they return an error only for invalid arguments. put_run errors (e.g. ENOSPC) are
// informational: the caller may ignore them, the store stays consistent.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "cache/chunk_types.h"

namespace hf::cache {

struct DiskChunkStoreOptions {
  std::string dir;                      // cache directory; <dir>/chunks is created
  uint64_t max_bytes = 10ull << 30;     // 0 disables the disk cache
  bool fsync = false;                   // durable runs (fdatasync + dir fsync); slower
  std::chrono::seconds evict_interval{30};  // background check period
};

class DiskChunkStore {
 public:
  // Limits enforced on writes and on everything parsed from disk.
  static constexpr uint32_t kMaxRunChunks = 65536;
  static constexpr uint32_t kMaxChunkBytes = 16u << 20;
  static constexpr uint64_t kMaxRunBytes = 1ull << 30;

  // Creates the directories (0700), removes stale tmp data of dead processes, and starts the
  // evictor thread. Fails with Errc::io / permission_denied if the directory is unusable.
  static Result<std::unique_ptr<DiskChunkStore>> open(DiskChunkStoreOptions opts);
  ~DiskChunkStore();  // stops the evictor thread; removes this process's tmp dir
  DiskChunkStore(const DiskChunkStore&) = delete;
  DiskChunkStore& operator=(const DiskChunkStore&) = delete;

  // Stores chunks [first_index, first_index + chunks.size()) of `xorb` as one run. No-op if a
  // known run already covers that range, or (counted as skipped) if it would exceed the bound.
  // Errors: invalid_argument (empty, null chunk, too large, index overflow); io / no_space from
  // the file system (nothing is left behind).
  Status put_run(const Key32& xorb, uint32_t first_index, std::span<const ChunkBytes> chunks);

  // nullptr = miss (including a corrupt entry that was just dropped).
  Result<ChunkBytes> get(const Key32& xorb, uint32_t index);

  // Clears `out`, then appends chunks first, first+1, ... up to end or the first missing index.
  // One preadv per covering run: the fast path for sequential re-reads.
  Status get_range(const Key32& xorb, uint32_t first, uint32_t end, std::vector<ChunkBytes>& out);

  // Whether a known run covers the chunk (may list the directory; does not verify data).
  bool contains(const Key32& xorb, uint32_t index);

  // Usage estimate of the whole cache directory (all processes), in bytes.
  uint64_t used_bytes() const;
  uint64_t max_bytes() const { return opts_.max_bytes; }

  struct Stats {
    uint64_t hits = 0, misses = 0, corrupt_dropped = 0, runs_written = 0, bytes_written = 0,
             puts_skipped_full = 0, runs_evicted = 0, bytes_evicted = 0;
  };
  Stats stats() const;

  // Synchronous eviction pass (waits for another process's pass): reconciles the usage counter
  // with a full scan and, if usage > 90% of the bound, unlinks least recently used runs until
  // it is <= 90%. For tests and `cache prune`.
  void evict_now();

  struct Impl;  // public only so the implementation's helpers can name it

 private:
  explicit DiskChunkStore(DiskChunkStoreOptions opts);
  void evictor_loop();

  DiskChunkStoreOptions opts_;
  std::unique_ptr<Impl> impl_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool stop_ = false;
  bool wake_ = false;
  std::thread evictor_;
};

}  // namespace hf::cache
