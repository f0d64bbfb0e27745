// Server::Core: the simulator minus the network. Owns the Hub state (repos, buckets), the
// CAS store, knobs, faults, stats and secrets, and turns a Request into a Response.
//
// Thread-safety: handle() runs concurrently on the io threads. Locks, in acquisition order:
//   state_mu_ (repos, aliases, buckets)  ->  CasStore's lock  ->  knobs_mu_ / Faults / Stats.
// No lock is held while a response is written; responses reference immutable sources only.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "test/hubsim/cas_store.h"
#include "test/hubsim/http_types.h"
#include "test/hubsim/knobs.h"
#include "test/hubsim/repo_model.h"
#include "test/hubsim/server.h"
#include "test/hubsim/signer.h"

namespace hf::hubsim {

// Who is calling (from the Authorization header).
struct Caller {
  enum Kind { anonymous, user, invalid } kind = anonymous;
  std::string name;
  bool is_user() const { return kind == user; }
};

class Server::Core {
 public:
  explicit Core(Options opts);

  // Loads --data-dir state (secret, xorbs, shards, buckets).
  Status init();
  void set_base_url(std::string url);
  std::string base_url() const;
  std::string cas_url() const { return base_url() + "/cas"; }

  // Never throws; unknown routes answer 404. The interceptor (if any) sees every response.
  Response handle(Request& req);
  void set_interceptor(Server::Interceptor f);

  // ---- seeding (public API of Server forwards here) ----
  Status add_repo(RepoType type, std::string_view id, std::vector<FileSpec> files, RepoFlags flags);
  Status add_repo_from_dir(RepoType type, std::string_view id, const std::string& dir, RepoFlags flags);
  Status add_synthetic_repo(RepoType type, std::string_view id, std::string_view spec, RepoFlags flags);
  Status add_alias(RepoType type, std::string_view alias, std::string_view canonical);
  Status set_repo_flags(RepoType type, std::string_view id, RepoFlags flags);
  Result<std::string> commit(RepoType type, std::string_view id, const CommitRequest& req);
  Status create_tag(RepoType type, std::string_view id, std::string_view tag, std::string_view revision);
  Result<uint64_t> create_pr(RepoType type, std::string_view id, std::string_view revision);
  Result<std::string> resolve_revision(RepoType type, std::string_view id, std::string_view revision) const;
  Status add_bucket(std::string_view id, const std::string& dir, bool is_private);
  Status bucket_put(std::string_view id, std::string_view path, std::string bytes, int64_t mtime_ms);
  Status bucket_delete(std::string_view id, std::string_view path);
  Result<std::string> cas_put(std::string bytes);

  Knobs knobs() const;
  void set_knobs(const Knobs& k);

  const Options& options() const { return opts_; }
  Faults& faults() { return faults_; }
  Stats& stats() { return stats_; }
  TokenBucket& global_bandwidth() { return global_bw_; }

 private:
  friend class RouteContext;

  Response handle_routes(Request& req);

  // Route groups (routes_*.cc).
  Response route_api_repo(Request& req, const Caller& caller, RepoType type, std::vector<std::string_view>& segs);
  Response route_resolve(Request& req, const Caller& caller, RepoType type, std::string_view repo_id,
                         std::vector<std::string_view>& tail);
  Response route_resolve_cache(Request& req, const Caller& caller, std::vector<std::string_view>& segs);
  Response route_bridge(Request& req, std::vector<std::string_view>& segs);
  Response route_api_bucket(Request& req, const Caller& caller, std::vector<std::string_view>& segs);
  Response route_bucket_resolve(Request& req, const Caller& caller, std::vector<std::string_view>& segs);
  Response route_cas(Request& req, std::vector<std::string_view>& segs);
  Response route_presigned(Request& req, std::vector<std::string_view>& segs);
  Response route_sim(Request& req, std::vector<std::string_view>& segs);
  Response whoami(const Caller& caller);

  Caller identify(const Request& req) const;
  std::string token_response_json(TokenScope scope, Response& resp);

  // Repo lookup under state_mu_ (shared): nullptr when missing. Resolves aliases.
  const Repo* find_repo(RepoType type, std::string_view id) const;
  Repo* find_repo_mut(RepoType type, std::string_view id);
  static std::string repo_key(RepoType type, std::string_view id);

  // Builds a file node from content (classification git / lfs / xet).
  Result<FileNodePtr> make_file_node(std::string_view path, std::string bytes, bool legacy_lfs, bool force_git,
                                     Packer* packer);
  Result<std::map<std::string, FileNodePtr>> build_file_nodes(std::vector<FileSpec>& files, bool legacy_lfs);

  // Runs CasStore::collect_garbage when Options::gc_grace_s is set, at most once per
  // max(1 s, grace / 4). Takes state_mu_ (shared) to build the live set: call without locks.
  void maybe_collect_garbage();

  // Persist buckets (when --data-dir is set); caller holds state_mu_.
  void persist_buckets_locked();
  Status load_buckets();

  Options opts_;
  Signer signer_;
  CasStore cas_;
  Faults faults_;
  Stats stats_;
  TokenBucket global_bw_;

  mutable std::mutex knobs_mu_;
  Knobs knobs_;
  std::shared_ptr<const Server::Interceptor> interceptor_;  // under knobs_mu_
  mutable std::mutex url_mu_;
  std::string base_url_;

  mutable std::shared_mutex state_mu_;
  std::map<std::string, Repo, std::less<>> repos_;        // repo_key -> repo
  std::map<std::string, std::string, std::less<>> aliases_;  // repo_key(alias) -> canonical id
  std::map<std::string, Bucket, std::less<>> buckets_;   // "ns/name" -> bucket
  // Content of LFS files by sha256 (the /_cdn/lfs bridge) and of synthetic xet files.
  std::map<std::string, SourcePtr, std::less<>> lfs_objects_;
  std::vector<std::pair<std::string, std::string>> user_tokens_;  // (token, user)
  std::atomic<uint64_t> id_counter_{1};
  std::atomic<int64_t> last_gc_ns_{0};
};

}  // namespace hf::hubsim
