// What the filesystem core needs from the remote side, as one interface.
//
// The production implementation (fs/hub_remote.h) talks to the Hub and the Xet CAS; unit tests
// plug in an in-memory fake with fault injection. Paths are relative to the mount root (the
// implementation adds a subfolder prefix); `rev` identifies the immutable revision a path was
// listed at, so an open file keeps reading the bytes it opened even after a branch moves.
//
// Thread-safety: implementations must allow concurrent calls from any thread; every coroutine
// runs on the io executor the implementation was built with. Cancellation via CancelPtr ends
// the call promptly with Errc::cancelled.
#pragma once

#include <utility>  // before asio (asio#944)

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/cancel.h"
#include "base/result.h"
#include "net/xet/hash.h"
#include "net/xet/reconstruction.h"
#include "net/xet/upload/upload_session.h"

namespace hf::fs {

template <class T>
using Task = boost::asio::awaitable<T>;

// One entry of a remote directory listing, unvalidated (names come from the server).
struct RemoteEntry {
  std::string name;  // last path component
  bool is_dir = false;
  uint64_t size = 0;
  int64_t mtime_ns = 0;     // 0 = unknown
  std::string xet_hash;     // xet-hex, empty if the file is not in Xet
  std::string oid;          // git blob/tree sha1 (repos)
  std::string lfs_sha256;   // LFS files
};

// One line of a bucket commit (hub-api §7.4): add (or replace) a path with a registered Xet
// file, or delete a path. Paths are relative to the mount root.
struct CommitOp {
  enum class Kind { add, del } kind = Kind::add;
  std::string path;
  xet::Hash hash;
  int64_t mtime_ms = 0;
};

using ChunkSink = std::function<Status(uint32_t chunk_index, std::span<const uint8_t> raw)>;
using ByteSink = std::function<Status(std::span<const uint8_t> data)>;

class Remote {
 public:
  virtual ~Remote() = default;

  // The revision tag of the current view (a commit sha for repos, a change marker for buckets).
  virtual std::string revision() const = 0;

  // Asks the Hub what the view's revision resolves to now (repos: the branch head commit;
  // buckets: the bucket's updatedAt). Used by the change poller.
  virtual Task<Result<std::string>> probe_revision(CancelPtr cancel) {
    (void)cancel;
    co_return revision();
  }
  // Makes `rev` the revision used by later calls (after the poller saw a change).
  virtual void set_revision(std::string rev) { (void)rev; }

  // Direct children of `dir` at revision `rev`.
  virtual Task<Result<std::vector<RemoteEntry>>> list_dir(std::string rev, std::string dir, CancelPtr cancel) = 0;

  // Reconstruction of file bytes [start, end_incl] (Xet §7.2; v2 with v1 fallback inside).
  virtual Task<Result<xet::Reconstruction>> reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl,
                                                        CancelPtr cancel) = 0;

  // Fetch and decode one xorb range from a presigned URL; `sink` receives every chunk of
  // `range.chunks` in order. Errc::forbidden means the URL expired: re-query reconstruction.
  // The report carries the stored object's size when the server stated it (whole-xorb checks).
  virtual Task<Result<xet::RangeFetchReport>> fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink, CancelPtr cancel) = 0;

  // Bytes [offset, offset+length) of a non-Xet file at revision `rev`.
  virtual Task<Status> download(std::string rev, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                                CancelPtr cancel) = 0;

  // ---- Write side (buckets). Read-only remotes keep the defaults.
  // Where xorbs and shards are uploaded; null if this remote cannot be written.
  virtual xet::UploadSink* upload_sink() { return nullptr; }
  // Applies the operations in order (adds before deletes is the caller's job). Any failed
  // line fails the whole call with a message naming the path: never a silent success.
  virtual Task<Status> commit(std::vector<CommitOp> ops, CancelPtr cancel) {
    (void)ops;
    (void)cancel;
    co_return Error(Errc::read_only, "this remote is read-only");
  }
};

}  // namespace hf::fs
