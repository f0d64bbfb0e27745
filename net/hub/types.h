// Value types of the Hub API client (hub-api.md). Plain data, thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/secret.h"

namespace hf::hub {

enum class RepoType { model, dataset, space, bucket };

struct RepoRef {
  RepoType type = RepoType::model;
  std::string id;  // "ns/name"; legacy one-segment ids ("gpt2") are allowed for repos, not buckets
};

// "models", "datasets", "spaces", "buckets" (the /api/{prefix}/ segment).
std::string_view api_prefix(RepoType t);
// Resolve URL prefix: "" for models, "datasets/", "spaces/", "buckets/".
std::string_view resolve_prefix(RepoType t);
std::string_view repo_type_name(RepoType t);  // "model", "dataset", "space", "bucket"
std::string describe(const RepoRef& r);       // "acme/tiny", "dataset acme/data", "bucket alice/scratch"

// Validation (Errc::invalid_argument with a message saying what is wrong).
Status validate_repo_id(const RepoRef& r);
// [A-Za-z0-9._/-], non-empty, no "..": blocks '?', '#' and traversal in URLs (hub-api.md §1.2).
Status validate_revision(std::string_view rev);
// Repo-relative path: no empty, "." or ".." components, no NUL; "" means the root.
Status validate_path(std::string_view path);

struct RepoInfo {
  std::string id, sha;
  int64_t last_modified_ns = 0;
  bool is_private = false;
  std::string gated;  // "" (not gated), "auto" or "manual"
};

struct BucketInfo {
  std::string id;
  int64_t updated_at_ns = 0, created_at_ns = 0;
  bool is_private = false;
  uint64_t size = 0, total_files = 0;
};

struct TreeEntry {
  bool is_dir = false;
  std::string path;        // full repo-relative path, as bytes (not necessarily UTF-8)
  uint64_t size = 0;
  std::string oid, xet_hash, lfs_sha256;
  int64_t mtime_ns = 0;    // lastCommit.date, bucket mtime, else 0
  int64_t uploaded_at_ns = 0;
};

struct FileMeta {
  uint64_t size = 0;
  std::string etag;         // normalised: no W/ prefix, no quotes
  std::string xet_hash;     // empty for non-xet files
  std::string commit;       // X-Repo-Commit
  std::string xet_auth_url; // token refresh route (Link rel="xet-auth" or X-Xet-Refresh-Route)
  int64_t last_modified_ns = 0;
};

struct XetToken {
  Secret access_token;
  int64_t exp_unix = 0;
  std::string cas_url;
};

struct BatchOp {
  enum Kind { add, copy, del } kind = add;
  std::string path, xet_hash;
  int64_t mtime_ms = 0;  // add: 0 = not sent
  std::string content_type, source_repo_type, source_repo_id;
};

struct BatchResult {
  uint64_t processed = 0, succeeded = 0;
  std::vector<std::pair<std::string, std::string>> failed;  // (path, error)
  bool all_succeeded() const { return failed.empty() && succeeded == processed; }
};

}  // namespace hf::hub
