// The Xet upload pipeline (spec §9): content-defined chunking, dedup, xorb packing within the
// size limits, pipelined xorb uploads, and the shard that registers the files.
//
//   add_file(content) ... add_file(content)   chunk + hash + place every chunk, in order:
//                                              1. at a known position (`KnownAt`: unchanged
//                                                 ranges of a file being rewritten),
//                                              2. already placed in this session (local dedup),
//                                              3. otherwise appended to the open xorb; a full
//                                                 xorb is sealed and uploaded in the background
//                                                 while chunking continues (bounded in flight).
//   finish()                                   seal the last xorb, wait for every xorb upload,
//                                              then POST the shard(s): only after that are the
//                                              files' hashes usable (e.g. in a bucket batch).
//
// CPU work (chunking, hashing, compression) runs on the `cpu` executor; uploads on `io`.
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
#include "net/xet/hash.h"
#include "net/xet/shard.h"
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
};

struct ChunkLocation {
  Hash xorb;
  uint32_t index = 0;
};

enum class CompressionPolicy { automatic, none, lz4, bg4 };

struct UploadOptions {
  CompressionPolicy compression = CompressionPolicy::automatic;
  size_t max_inflight_xorbs = 3;      // bounds memory: each is up to 64 MiB
  size_t read_block = 4 << 20;
  size_t max_xorb_chunks = kMaxXorbChunks;  // smaller values in tests
  size_t max_xorb_bytes = kMaxXorbRawBytes;
  size_t max_shard_bytes = 64ull << 20;
  bool sha256 = false;                // repos need it; buckets do not
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
};

struct UploadStats {
  uint64_t xorbs = 0, xorb_bytes = 0, shards = 0, shard_bytes = 0, new_bytes = 0, dedup_bytes = 0;
};

class UploadSession {
 public:
  UploadSession(UploadSink& sink, boost::asio::any_io_executor io, boost::asio::any_io_executor cpu,
                UploadOptions opts = {});
  ~UploadSession();

  Task<Result<FileUploadResult>> add_file(ReadFn read, KnownAt known = {});
  Task<Status> finish();

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

  Task<Result<FileUploadResult>> process(ReadFn read, KnownAt known);
  Status place(std::span<const uint8_t> data, const Hash& h, uint64_t offset, const KnownAt& known,
               PendingFile& file, FileUploadResult& res);
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
  std::deque<SharedResultPtr<Status>> uploads_;  // in flight, oldest first
  std::atomic<bool> failed_{false};
  Status first_error_;
  UploadStats stats_;
};

}  // namespace hf::xet
