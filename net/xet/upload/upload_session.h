// The Xet upload pipeline (spec §9): content-defined chunking, dedup, xorb packing within the
// size limits, pipelined xorb uploads, and the shard that registers the files.
//
//   add_file(content) ... add_file(content)   chunk + hash + place every chunk, in order:
//                                              1. at a known position (`KnownAt`: unchanged
//                                                 ranges of a file being rewritten),
//                                              2. already placed in this session (local dedup),
//                                              3. already in the CAS, learnt from a global-dedup
//                                                 answer (see "Global dedup" below),
//                                              4. otherwise appended to the open xorb; a full
//                                                 xorb is sealed and uploaded in the background
//                                                 while chunking continues (bounded in flight).
//   finish()                                   seal the last xorb, wait for every xorb upload,
//                                              then POST the shard(s): only after that are the
//                                              files' hashes usable (e.g. in a bucket batch).
//
// Global dedup (spec §7.4, XC's policy §9.2): the CAS is asked (`UploadSink::query_dedup`) about
// each file's first chunk (files of at least `min_dedup_file` bytes) and about chunks with
// hash % 1024 == 0 that are not deduplicated
// locally; answers are cached per session (DedupShardCache, bounded). A chunk found there is
// referenced in its existing xorb instead of being uploaded, but only where that does not
// fragment the file into short terms. XC keeps the average term length >= 8 chunks over a
// sliding window; this is the same idea over the whole file, decided per run of matches:
//   * a match that continues the previous term (same xorb, next chunk) is always taken;
//   * other matches are held back as a run of consecutive matched chunks (which may go on in
//     another xorb), taken as soon as the file with the run would still average
//     >= `min_dedup_run` chunks per term (so a first run needs 8 chunks per term, while a short
//     tail in the next xorb after long terms is taken), or at the end of the file if the run
//     is the whole file (a small file stored before is one term);
//   * a run broken by a chunk that matches nothing, ending the file without qualifying, or not
//     qualifying after 4 * min_dedup_run chunks (scattered matches; bounds the bytes held
//     back) is uploaded as new data.
// Queries never fail an upload: an error or a bad answer means "not found".
//
// CPU work (chunking, hashing, compression) runs on the `cpu` executor; uploads and dedup
// queries on `io`. The chunking pauses for one round trip per query (queries are rare: the
// first chunk of a file and about one chunk in 1024).
// Thread-safety: one session is driven by one coroutine chain at a time (calls must not
// overlap); the sink must be safe to call from the io executor.
#pragma once

#include <utility>  // before asio

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/async.h"
#include "base/result.h"
#include "net/xet/chunker.h"
#include "net/xet/hash.h"
#include "net/xet/shard.h"
#include "net/xet/upload/dedup_cache.h"
#include "net/xet/xorb.h"

namespace hf::xet {

template <class T>
using Task = boost::asio::awaitable<T>;

// Where a session sends its objects: the CAS client in production, validating fakes in tests.
class UploadSink {
 public:
  virtual ~UploadSink() = default;
  virtual Task<Status> put_xorb(Hash hash, std::shared_ptr<const std::string> serialized) = 0;
  virtual Task<Status> put_shard(std::shared_ptr<const std::string> shard) = 0;
  // Global dedup query for a raw chunk hash (§7.4): the CAS's answer shard, or nullopt when the
  // chunk is unknown or the query failed in any way (it must never fail the upload). The
  // default knows nothing (sinks without a CAS behind them).
  virtual Task<std::optional<Shard>> query_dedup(Hash chunk) {
    (void)chunk;
    co_return std::nullopt;
  }
};

using ChunkLocation = CasChunkRef;

enum class CompressionPolicy { automatic, none, lz4, bg4 };

struct UploadOptions {
  CompressionPolicy compression = CompressionPolicy::automatic;
  size_t max_inflight_xorbs = 3;      // bounds memory: each is up to 64 MiB
  size_t read_block = 4 << 20;
  size_t max_xorb_chunks = kMaxXorbChunks;  // smaller values in tests
  size_t max_xorb_bytes = kMaxXorbRawBytes;
  size_t max_shard_bytes = 64ull << 20;
  bool sha256 = false;                // repos need it; buckets do not
  // Global dedup (see the file comment). Limits are per session.
  bool global_dedup = true;
  size_t max_dedup_queries = 64;      // requests; each pauses chunking for one round trip
  // A file's first chunk is asked about only when the file has at least this many bytes: for a
  // smaller file the round trip costs more than the upload it could save (cp -r of many small
  // files would pay one round trip each).
  uint64_t min_dedup_file = 1 << 20;
  DedupCacheLimits dedup_cache{};
  uint32_t min_dedup_run = 8;         // chunks per term the file keeps on average when matching
  std::function<int64_t()> now_unix;  // for shard_key_expiry; default: wall clock seconds
};

// Returns the number of bytes read into the buffer; 0 = end of content.
using ReadFn = std::function<Result<size_t>(std::span<uint8_t> buf)>;
// A chunk already stored in the CAS for (offset, length) of this file's content, if any.
using KnownAt = std::function<std::optional<ChunkLocation>(uint64_t offset, uint32_t length)>;

struct FileUploadResult {
  Hash file_hash;
  uint64_t size = 0;
  uint64_t new_bytes = 0;    // raw bytes placed in new xorbs
  uint64_t dedup_bytes = 0;  // raw bytes referenced from existing or already-placed chunks
  uint64_t global_dedup_bytes = 0;  // part of dedup_bytes found through global-dedup answers
};

struct UploadStats {
  uint64_t xorbs = 0, xorb_bytes = 0, shards = 0, shard_bytes = 0, new_bytes = 0, dedup_bytes = 0;
  uint64_t dedup_queries = 0, dedup_answers = 0;  // answers: usable shards received
  uint64_t global_dedup_bytes = 0;
};

class UploadSession {
 public:
  UploadSession(UploadSink& sink, boost::asio::any_io_executor io, boost::asio::any_io_executor cpu,
                UploadOptions opts = {});
  ~UploadSession();

  Task<Result<FileUploadResult>> add_file(ReadFn read, KnownAt known = {});
  Task<Status> finish();
  // Waits for the xorb uploads still in flight (their results are dropped). They refer to the
  // session and the sink: a session whose add_file or finish failed is settled before it is
  // destroyed (after a successful finish there is nothing left to wait for).
  Task<void> settle();

  UploadStats stats() const { return stats_; }

 private:
  struct PlacedChunk {
    Hash hash;
    uint32_t len;
    int32_t slot;      // index into xorbs_ (new xorb), or -1 when `known` holds the location
    uint32_t index;    // chunk index inside the xorb
    Hash known;        // xorb hash of a pre-existing chunk (slot == -1)
  };
  struct XorbSlot {
    XorbInfo info;         // hash and chunk entries, filled when sealed
    bool sealed = false;
  };
  struct PendingFile {
    Hash file_hash;
    std::vector<PlacedChunk> chunks;
    std::optional<std::array<uint8_t, 32>> sha256;
  };

  // A global-dedup match not yet long enough to be taken (its bytes are kept in case it is not).
  struct RunChunk {
    Hash hash;
    std::vector<uint8_t> data;
    CasChunkRef at;
  };
  // Per-file placement state.
  struct FileCtx {
    const KnownAt* known = nullptr;
    PendingFile* file = nullptr;
    FileUploadResult* res = nullptr;
    uint64_t chunks_seen = 0;
    size_t terms = 0;                 // terms the placed chunks form so far
    std::optional<CasChunkRef> prev;  // where the file's last placed chunk is, if in an existing xorb
    std::vector<RunChunk> run;        // pending global-dedup matches, consecutive in the file
    size_t run_terms = 0;             // terms the pending run would add
    bool run_from_start = false;      // the pending run began at the file's first chunk
  };

  Task<Result<FileUploadResult>> process(ReadFn read, KnownAt known);
  Task<Status> take(const std::vector<StreamChunk>& chunks, FileCtx& f);
  Status place(const StreamChunk& c, FileCtx& f);
  Status place_local(std::span<const uint8_t> data, const Hash& h, FileCtx& f);
  void place_existing(const Hash& h, uint32_t len, const CasChunkRef& at, bool global, FileCtx& f);
  void count_term(FileCtx& f);
  Status flush_run(FileCtx& f, bool take_it);
  // XC's query policy (§9.2): is `c` a chunk the CAS may be asked about? Checked before
  // maybe_query so that most chunks cost no coroutine frame.
  bool query_candidate(const StreamChunk& c, const FileCtx& f) const;
  Task<void> maybe_query(const StreamChunk& c, FileCtx& f);
  int64_t now_unix() const;
  Status seal_open_xorb();
  Compression pick_scheme(std::span<const uint8_t> raw);
  Task<Status> drain(size_t keep);
  Result<std::vector<Shard>> build_shards();

  UploadSink& sink_;
  boost::asio::any_io_executor io_, cpu_;
  UploadOptions opts_;

  XorbBuilder open_;               // xorb being filled
  int32_t open_slot_ = -1;
  size_t group_left_ = 0;          // chunks left before re-testing compressibility
  Compression group_scheme_ = Compression::none;
  std::vector<XorbSlot> xorbs_;
  std::unordered_map<Hash, std::pair<int32_t, uint32_t>, HashHasher> placed_;  // chunk -> (slot, index)
  std::vector<PendingFile> files_;
  DedupShardCache dedup_;
  std::deque<SharedResultPtr<Status>> uploads_;  // in flight, oldest first
  std::atomic<bool> failed_{false};
  Status first_error_;
  UploadStats stats_;
};

}  // namespace hf::xet
