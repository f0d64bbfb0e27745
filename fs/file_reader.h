// Reading one file's content: range planning, single-flight fetches, prefetch, cache fill.
//
// One FileReader exists per distinct content (xet file hash, or HTTP content key) and is shared
// by every handle and inode showing that content, so concurrent readers of one file neither
// serialise on each other nor fetch the same bytes twice.
//
// Model. The file is a sequence of chunks. For Xet content the chunk layout is learned from
// reconstruction answers (file offset -> (xorb, chunk index, length)); for HTTP content it is
// fixed-size blocks. A read looks its range up in that map and takes the bytes from the chunk
// cache (memory, then disk). Whatever is missing is fetched by *segments*: one segment = one
// reconstruction query for a file range plus the xorb range downloads it names (or one HTTP
// Range request). Segments are registered while in flight, so a read that needs bytes a
// segment is already fetching waits for it instead of fetching again (single-flight).
//
// Prefetch is per stream (one per open handle): reads that continue where the last one ended
// (within a small backward / larger forward tolerance, to absorb kernel readahead reordering)
// double a window, and the window ahead of the read is split into parallel segments; any
// other read resets the window and fetches exactly the chunks it needs.
//
// Integrity: the Xet download protocol has no per-chunk hashes, so only what breaks decoding or
// lengths is detectable in a partial range. A fetch that holds the whole file is checked
// against the content id before anything is published (Xet file hash; git blob id or LFS
// SHA-256 for plain files), and files up to `first_segment` bytes are always fetched whole, so
// small files are never served wrong. A mismatch is Errc::corrupt (retried, then EIO).
//
// Thread-safety: all public members may be called concurrently from any thread. `read` runs on
// the io executor. Lock order: FileReader::mu_ may be held while calling into ChunkCache
// (which takes only its own locks); never while awaiting.
#pragma once

#include <utility>  // before asio

#include <boost/asio/any_io_executor.hpp>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/async.h"
#include "base/cancel.h"
#include "base/result.h"
#include "fs/chunk_cache.h"
#include "fs/node.h"
#include "fs/remote.h"

namespace hf::fs {
class MetaStore;
}

namespace hf::fs {

struct ReaderConfig {
  uint64_t first_segment = 1ull << 20;      // first fetch of a cold stream: small, for latency
  uint64_t segment = 8ull << 20;            // later segments (one reconstruction query each)
  uint64_t initial_window = 8ull << 20;     // prefetch window when a stream turns sequential
  uint64_t max_window = 128ull << 20;
  uint64_t forward_tolerance = 16ull << 20; // a skip this far ahead still counts as sequential
  uint64_t backward_tolerance = 1ull << 20;
  unsigned max_segments_in_flight = 16;     // per file
  uint64_t http_block = 4ull << 20;         // block size of non-Xet content
  int max_attempts = 3;                     // per segment, for transient failures
  int retry_base_ms = 100;
};

struct ReadSlice {
  ChunkBytes data;
  uint32_t offset = 0;
  uint32_t length = 0;
};
struct ReadData {
  std::vector<ReadSlice> slices;
  uint64_t bytes = 0;
};

// Per-handle sequential-access state.
struct StreamState {
  std::mutex mu;
  bool started = false;
  uint64_t next = 0;           // end offset of the previous read
  uint64_t window = 0;         // current prefetch window
  uint64_t prefetched_to = 0;  // segments have been issued up to here
  uint64_t seq_bytes = 0;      // bytes read in the current sequential run
};

struct ReaderStats {
  std::atomic<uint64_t> segments{0}, segment_retries{0}, segment_failures{0};
  std::atomic<uint64_t> bytes_fetched{0}, reconstructions{0};
  std::atomic<int64_t> segments_in_flight{0};
  std::atomic<uint64_t> ranges_from_cache{0};
  std::atomic<uint64_t> verify_failures{0};  // whole-file or whole-xorb fetches whose hash did not match
  std::atomic<uint64_t> xorbs_verified{0};   // downloaded ranges that held a whole xorb and matched its hash
};

class FileReader : public std::enable_shared_from_this<FileReader> {
 public:
  // `rev`/`path` identify the content for HTTP downloads; unused for Xet.
  // `meta` (may be null) persists the learned chunk layout of Xet content across mounts.
  FileReader(boost::asio::any_io_executor ex, Remote& remote, ChunkCache& cache, const ReaderConfig& cfg,
             ReaderStats& stats, Content content, uint64_t size, std::string rev, std::string path,
             MetaStore* meta = nullptr);
  ~FileReader();
  // Cancels every fetch of this reader (as its destruction does): waiting reads complete with
  // Errc::cancelled. For a teardown that must let the io threads drain.
  void shutdown() { life_->cancel(); }

  uint64_t size() const { return size_; }
  const Content& content() const { return content_; }

  // Serves [off, off+len) entirely from local caches if possible (never touches the network;
  // may read the disk cache). Returns false if anything is missing. On success the read counts
  // for `stream`'s prefetch (which may start background fetches).
  bool try_read_local(uint64_t off, uint64_t len, ReadData& out, StreamState* stream = nullptr);

  // Reads [off, off+len) clipped to the file size, fetching what is missing. `stream` (may be
  // null) drives prefetch. Errors: Errc::cancelled, or the fetch failure after retries.
  Task<Result<ReadData>> read(uint64_t off, uint64_t len, StreamState* stream, CancelPtr cancel);

  struct KnownChunk {
    Key32 xorb;
    uint32_t index;
    uint32_t len;
  };
  // The chunk that starts exactly at `offset`, if the layout knows it (upload dedup).
  std::optional<KnownChunk> chunk_at(uint64_t offset);

  // Bytes of this file currently present in the chunk caches (for user.hf.cached_bytes).
  uint64_t cached_bytes();

  // Fetches the whole file into the cache (hf-mount warm). Progress via `on_bytes`.
  Task<Status> warm(std::function<void(uint64_t)> on_bytes, CancelPtr cancel);

 private:
  struct ChunkLoc {
    uint32_t len;
    uint32_t xorb;   // index into xorbs_
    uint32_t index;  // chunk index inside the xorb
  };
  struct Segment {
    uint64_t start = 0, end = 0;
    SharedResultPtr<Status> done = SharedResult<Status>::create();
    // The chunks this segment delivered, by file offset: reads waiting on the segment take
    // them from here, so a cache too small to hold them (or eviction by other readers) can
    // never make a read fail. Released with the segment.
    std::mutex mu;
    std::map<uint64_t, ChunkBytes> delivered;
  };

  // Collects cached slices for [off, end); returns the first offset that is not available.
  uint64_t assemble(uint64_t off, uint64_t end, ReadData& out, bool memory_only,
                    const std::vector<std::shared_ptr<Segment>>* pinned = nullptr);
  std::shared_ptr<Segment> segment_for(uint64_t pos, uint64_t want_end);
  // Starts segments over [from, to) that are neither in flight nor known; stops at the file's
  // in-flight cap. Returns where it stopped (`to` if it got through).
  uint64_t prefetch(uint64_t from, uint64_t to);
  std::shared_ptr<Segment> start_segment_locked(uint64_t start, uint64_t end);
  Task<void> run_segment(std::shared_ptr<Segment> seg);
  Task<void> wait_for_disk_room();
  Task<Status> fetch_xet(std::shared_ptr<Segment> seg);
  Task<Status> fetch_http(std::shared_ptr<Segment> seg);
  uint32_t xorb_slot_locked(const Key32& key);
  void learn_chunks(const Key32& xorb, uint32_t first_index, uint64_t file_offset,
                    const std::vector<ChunkBytes>& chunks, Segment* seg);
  void update_stream(StreamState* s, uint64_t off, uint64_t end);
  void load_persisted();  // once, before the first lookup of the layout

  boost::asio::any_io_executor ex_;
  Remote& remote_;
  ChunkCache& cache_;
  ReaderConfig cfg_;
  ReaderStats& stats_;
  const Content content_;
  const uint64_t size_;
  const std::string rev_, path_;
  MetaStore* meta_;
  std::once_flag persisted_once_;
  CancelPtr life_ = make_cancel();  // cancelled when the reader dies: aborts its fetches

  std::mutex mu_;
  std::map<uint64_t, ChunkLoc> chunks_;                 // file offset -> chunk
  std::vector<Key32> xorbs_;
  std::unordered_map<Key32, uint32_t, cache::Key32Hash> xorb_slots_;
  std::map<uint64_t, std::shared_ptr<Segment>> inflight_;  // by start offset
  std::unordered_map<Key32, Key32, cache::Key32Hash> xorb_mismatches_;  // xorb -> hash of what came last
};

}  // namespace hf::fs
