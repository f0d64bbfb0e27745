#include "fs/hub_remote.h"

#include "base/log.h"

namespace hf::fs {

HubRemote::HubRemote(hub::HubClient& hub, xet::CasClient& cas, hub::RepoRef repo, std::string subfolder,
                     std::string revision)
    : hub_(hub), cas_(cas), repo_(std::move(repo)), subfolder_(std::move(subfolder)), rev_(std::move(revision)) {}

std::string HubRemote::revision() const {
  std::lock_guard lk(mu_);
  return rev_;
}

void HubRemote::set_revision(std::string rev) {
  std::lock_guard lk(mu_);
  rev_ = std::move(rev);
}

std::string HubRemote::repo_path(const std::string& rel) const {
  if (subfolder_.empty()) return rel;
  if (rel.empty()) return subfolder_;
  return subfolder_ + "/" + rel;
}

Task<Result<std::vector<RemoteEntry>>> HubRemote::list_dir(std::string rev, std::string dir, CancelPtr) {
  std::string path = repo_path(dir);
  std::string prefix = path.empty() ? std::string() : path + "/";
  std::vector<RemoteEntry> out;
  size_t outside = 0;
  Status st = co_await hub_.list_tree(repo_, rev, path, false, [&](std::vector<hub::TreeEntry>&& page) -> Status {
    for (auto& e : page) {
      // Only direct children of `path`: the entry path must be prefix + one component.
      if (e.path.size() <= prefix.size() || e.path.compare(0, prefix.size(), prefix) != 0 ||
          e.path.find('/', prefix.size()) != std::string::npos) {
        ++outside;
        continue;
      }
      RemoteEntry r;
      r.name = e.path.substr(prefix.size());
      r.is_dir = e.is_dir;
      r.size = e.size;
      r.mtime_ns = e.mtime_ns;
      r.xet_hash = std::move(e.xet_hash);
      r.oid = std::move(e.oid);
      r.lfs_sha256 = std::move(e.lfs_sha256);
      out.push_back(std::move(r));
    }
    return {};
  });
  if (!st.ok()) co_return st.error();
  if (outside) {
    HF_LOG_WARN("listing", "ignored {} entries outside '{}' returned by the server", outside, path.empty() ? "/" : path);
  }
  co_return out;
}

Task<Result<xet::Reconstruction>> HubRemote::reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl,
                                                         CancelPtr cancel) {
  co_return co_await cas_.get_reconstruction(file, xet::ByteRangeIncl{start, end_incl}, cancel);
}

Task<Status> HubRemote::fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink, CancelPtr cancel) {
  co_return co_await cas_.fetch_chunks(url, range, std::move(sink), cancel);
}

Task<Status> HubRemote::download(std::string rev, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                                 CancelPtr) {
  // A server that ignores Range answers 200 with the whole body: skip to `offset` ourselves.
  uint64_t skip = 0, remaining = length;
  bool whole_body = false;
  http::StreamHandler h;
  h.on_head = [&](const http::ResponseHead& head) -> Status {
    if (head.status == 200) {
      whole_body = true;
      skip = offset;
    } else if (head.status != 206) {
      return Error(Errc::http_status, fmt::format("download of '{}' answered HTTP {}", path, head.status));
    }
    return {};
  };
  h.on_data = [&](std::span<const uint8_t> data) -> Status {
    if (skip) {
      size_t n = std::min<uint64_t>(skip, data.size());
      data = data.subspan(n);
      skip -= n;
    }
    if (data.size() > remaining) data = data.first(remaining);
    remaining -= data.size();
    if (!data.empty()) HF_TRY(sink(data));
    // Stop reading a whole-file answer once the range is complete (drops that connection).
    if (whole_body && remaining == 0) return Error(Errc::cancelled, "range complete");
    return {};
  };
  auto r = co_await hub_.download(repo_, rev, repo_path(path), offset, length, std::move(h));
  if (!r.ok() && !(r.code() == Errc::cancelled && remaining == 0)) co_return std::move(r).error();
  co_return Status{};
}

}  // namespace hf::fs
