// fs::Remote backed by the real protocol clients: the Hub API (listings, plain downloads,
// bucket batches) and the Xet CAS (reconstruction, presigned xorb ranges, uploads). Handles the
// subfolder prefix and keeps only direct children of a listed directory (a hostile or quirky
// server cannot inject deeper paths, "..", or entries outside the mount's view).
//
// Offline fast-fail: after a connection-level failure (network, TLS, timeout) the remote
// reports Errc::offline for a short back-off window instead of letting every operation wait
// for its own timeouts, then lets one request through to probe; the first success clears it.
// So an unreachable Hub costs one timeout, not one per read, and the mount recovers by itself.
//
// Thread-safety: as fs::Remote. The clients it borrows must outlive it.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "fs/remote.h"
#include "net/hub/client.h"
#include "net/xet/client/cas_client.h"

namespace hf::fs {

class HubRemote : public Remote, public xet::UploadSink {
 public:
  // `revision`: the commit (repos) or change marker (buckets) the view starts at; `branch`: what
  // the user asked for (probed for changes).
  HubRemote(hub::HubClient& hub, xet::CasClient& cas, hub::RepoRef repo, std::string subfolder, std::string revision,
            std::string branch, bool writable);

  std::string revision() const override;
  void set_revision(std::string rev) override;
  Task<Result<std::string>> probe_revision(CancelPtr cancel) override;

  Task<Result<std::vector<RemoteEntry>>> list_dir(std::string rev, std::string dir, CancelPtr cancel) override;
  Task<Result<xet::Reconstruction>> reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl,
                                                CancelPtr cancel) override;
  Task<Result<xet::RangeFetchReport>> fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink, CancelPtr cancel) override;
  Task<Status> download(std::string rev, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                        CancelPtr cancel) override;

  xet::UploadSink* upload_sink() override { return writable_ ? this : nullptr; }
  Task<Status> commit(std::vector<CommitOp> ops, CancelPtr cancel) override;
  Task<Status> put_xorb(xet::Hash hash, std::shared_ptr<const std::string> serialized) override;
  Task<Status> put_shard(std::shared_ptr<const std::string> shard) override;
  // Never fails and never changes the offline state: a dedup miss only costs bytes.
  Task<std::optional<xet::Shard>> query_dedup(xet::Hash chunk) override;

  // Joins the mount-relative path to the repository path ("" stays the subfolder itself).
  std::string repo_path(const std::string& rel) const;
  bool offline() const;

 private:
  // Offline bookkeeping around every network call.
  Status gate();
  template <class T>
  T note(T r);

  hub::HubClient& hub_;
  xet::CasClient& cas_;
  hub::RepoRef repo_;
  std::string subfolder_;
  std::string branch_;
  bool writable_;
  mutable std::mutex mu_;
  std::string rev_;
  int64_t offline_until_ns_ = 0;
  int offline_backoff_ms_ = 0;
};

}  // namespace hf::fs
