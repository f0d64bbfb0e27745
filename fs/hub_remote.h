// fs::Remote backed by the real protocol clients: the Hub API (listings, plain downloads) and
// the Xet CAS (reconstruction, presigned xorb ranges). Handles the subfolder prefix and keeps
// only direct children of a listed directory (a hostile or quirky server cannot inject deeper
// paths, "..", or entries outside the mount's view).
//
// Thread-safety: as fs::Remote. The clients it borrows must outlive it.
#pragma once

#include <mutex>
#include <string>

#include "fs/remote.h"
#include "net/hub/hub_client.h"
#include "net/xet/client/cas_client.h"

namespace hf::fs {

class HubRemote : public Remote {
 public:
  HubRemote(hub::HubClient& hub, xet::CasClient& cas, hub::RepoRef repo, std::string subfolder, std::string revision);

  std::string revision() const override;
  void set_revision(std::string rev);

  Task<Result<std::vector<RemoteEntry>>> list_dir(std::string rev, std::string dir, CancelPtr cancel) override;
  Task<Result<xet::Reconstruction>> reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl,
                                                CancelPtr cancel) override;
  Task<Status> fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink, CancelPtr cancel) override;
  Task<Status> download(std::string rev, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                        CancelPtr cancel) override;

  // Joins the mount-relative path to the repository path ("" stays the subfolder itself).
  std::string repo_path(const std::string& rel) const;

 private:
  hub::HubClient& hub_;
  xet::CasClient& cas_;
  hub::RepoRef repo_;
  std::string subfolder_;
  mutable std::mutex mu_;
  std::string rev_;
};

}  // namespace hf::fs
