#include "fs/hub_remote.h"

#include "base/clock.h"
#include "base/log.h"

namespace hf::fs {

namespace {
bool connection_failure(Errc c) { return c == Errc::network || c == Errc::tls || c == Errc::timed_out; }
}  // namespace

HubRemote::HubRemote(hub::HubClient& hub, xet::CasClient& cas, hub::RepoRef repo, std::string subfolder,
                     std::string revision, std::string branch, bool writable)
    : hub_(hub),
      cas_(cas),
      repo_(std::move(repo)),
      subfolder_(std::move(subfolder)),
      branch_(std::move(branch)),
      writable_(writable),
      rev_(std::move(revision)) {}

std::string HubRemote::revision() const {
  std::lock_guard lk(mu_);
  return rev_;
}

void HubRemote::set_revision(std::string rev) {
  std::lock_guard lk(mu_);
  rev_ = std::move(rev);
}

bool HubRemote::offline() const {
  std::lock_guard lk(mu_);
  return offline_until_ns_ > mono_ns();
}

Status HubRemote::gate() {
  std::lock_guard lk(mu_);
  int64_t now = mono_ns();
  if (offline_until_ns_ > now) {
    return Error(Errc::offline, "the Hub is unreachable (retrying in the background)");
  }
  return {};
}

template <class T>
T HubRemote::note(T r) {
  std::lock_guard lk(mu_);
  if (!r.ok() && connection_failure(r.code())) {
    // Back off 1 s, 2 s, ... 30 s between probes while the failures continue.
    offline_backoff_ms_ = offline_backoff_ms_ ? std::min(offline_backoff_ms_ * 2, 30000) : 1000;
    offline_until_ns_ = mono_ns() + int64_t{offline_backoff_ms_} * 1000000;
    HF_LOG_WARN("remote", "cannot reach the Hub ({}); failing fast for {} ms", r.error().message, offline_backoff_ms_);
  } else if (r.ok() && offline_backoff_ms_) {
    HF_LOG_INFO("remote", "the Hub is reachable again");
    offline_backoff_ms_ = 0;
    offline_until_ns_ = 0;
  }
  return r;
}

std::string HubRemote::repo_path(const std::string& rel) const {
  if (subfolder_.empty()) return rel;
  if (rel.empty()) return subfolder_;
  return subfolder_ + "/" + rel;
}

Task<Result<std::string>> HubRemote::probe_revision(CancelPtr) {
  HF_CO_TRY(gate());
  if (repo_.type == hub::RepoType::bucket) {
    auto b = note(co_await hub_.bucket_info(repo_));
    if (!b.ok()) co_return std::move(b).error();
    co_return std::to_string(b->updated_at_ns);
  }
  auto r = note(co_await hub_.repo_info(repo_, branch_));
  if (!r.ok()) co_return std::move(r).error();
  co_return r->sha;
}

Task<Result<std::vector<RemoteEntry>>> HubRemote::list_dir(std::string rev, std::string dir, CancelPtr) {
  HF_CO_TRY(gate());
  std::string path = repo_path(dir);
  std::string prefix = path.empty() ? std::string() : path + "/";
  std::vector<RemoteEntry> out;
  size_t outside = 0;
  Status st = note(co_await hub_.list_tree(repo_, rev, path, false, [&](std::vector<hub::TreeEntry>&& page) -> Status {
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
  }));
  if (!st.ok()) co_return st.error();
  if (outside) {
    HF_LOG_WARN("listing", "ignored {} entries outside '{}' returned by the server", outside, path.empty() ? "/" : path);
  }
  co_return out;
}

Task<Result<xet::Reconstruction>> HubRemote::reconstruct(xet::Hash file, uint64_t start, uint64_t end_incl,
                                                         CancelPtr cancel) {
  HF_CO_TRY(gate());
  co_return note(co_await cas_.get_reconstruction(file, xet::ByteRangeIncl{start, end_incl}, cancel));
}

Task<Result<xet::RangeFetchReport>> HubRemote::fetch_chunks(std::string url, xet::FetchRange range, ChunkSink sink, CancelPtr cancel) {
  HF_CO_TRY(gate());
  co_return note(co_await cas_.fetch_chunks(url, range, std::move(sink), cancel));
}

Task<Status> HubRemote::download(std::string rev, std::string path, uint64_t offset, uint64_t length, ByteSink sink,
                                 CancelPtr cancel) {
  HF_CO_TRY(gate());
  // The Hub client follows the resolve redirects and clips a 200 (Range ignored) to the range.
  http::StreamHandler h;
  h.on_head = [](const http::ResponseHead&) -> Status { return {}; };
  h.on_data = [&](std::span<const uint8_t> data) -> Status { return sink(data); };
  auto r = note(co_await hub_.download(repo_, rev, repo_path(path), offset, length, std::move(h), cancel));
  if (!r.ok()) co_return std::move(r).error();
  co_return Status{};
}

Task<Status> HubRemote::commit(std::vector<CommitOp> ops, CancelPtr) {
  if (!writable_) co_return Error(Errc::read_only, "read-only mount");
  HF_CO_TRY(gate());
  std::vector<hub::BatchOp> batch;
  batch.reserve(ops.size());
  if (log::level() >= log::Level::debug) {
    std::string lines;
    const size_t shown = log::level() >= log::Level::trace ? ops.size() : 8;
    for (size_t i = 0; i < ops.size() && i < shown; ++i) {
      lines += fmt::format("{}{} {}", i ? ", " : "", ops[i].kind == CommitOp::Kind::add ? "add" : "del", ops[i].path);
    }
    HF_LOG_DEBUG("remote", "batch of {} operation(s): {}{}", ops.size(), lines, ops.size() > shown ? ", ..." : "");
  }
  for (auto& o : ops) {
    hub::BatchOp b;
    b.kind = o.kind == CommitOp::Kind::add ? hub::BatchOp::add : hub::BatchOp::del;
    b.path = repo_path(o.path);
    if (o.kind == CommitOp::Kind::add) {
      b.xet_hash = o.hash.hex();
      b.mtime_ms = o.mtime_ms;
    }
    batch.push_back(std::move(b));
  }
  auto r = note(co_await hub_.bucket_batch(repo_, batch));
  if (!r.ok()) co_return std::move(r).error();
  if (!r->all_succeeded()) {
    // Per-line failures are failures: never report a partially applied batch as success.
    std::string first = r->failed.empty() ? std::string("unknown path")
                                          : r->failed.front().first + ": " + r->failed.front().second;
    co_return Error(Errc::io, fmt::format("bucket batch: {} of {} operations failed (first: {})",
                                          r->processed - r->succeeded, r->processed, first));
  }
  co_return Status{};
}

Task<Status> HubRemote::put_xorb(xet::Hash hash, std::shared_ptr<const std::string> serialized) {
  HF_CO_TRY(gate());
  auto r = note(co_await cas_.upload_xorb(hash, std::move(serialized)));
  if (!r.ok()) co_return std::move(r).error();
  co_return Status{};
}

Task<Status> HubRemote::put_shard(std::shared_ptr<const std::string> shard) {
  HF_CO_TRY(gate());
  co_return note(co_await cas_.upload_shard(std::move(shard)));
}

Task<std::optional<xet::Shard>> HubRemote::query_dedup(xet::Hash chunk) {
  if (!gate().ok()) co_return std::nullopt;
  auto r = co_await cas_.query_dedup(chunk);
  if (!r) co_return std::nullopt;
  co_return std::move(*r);
}

}  // namespace hf::fs
