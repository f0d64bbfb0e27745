// Hub API client (hub-api.md): repo and bucket metadata, tree listings, file HEAD/GET,
// CAS tokens and bucket batches, on top of http::Client.
//
// Threading: thread-safe; every method is a coroutine that may be awaited from any executor
// (the HTTP work runs on the http::Client's io_context). The http::Client and the TokenProvider
// must outlive the HubClient and its pending calls.
//
// Auth: `Authorization: Bearer <token>` goes only to the Hub endpoint's origin; http::Client
// drops it on cross-origin redirects (CDN, presigned storage).
//
// URLs: a revision is always one path segment ("refs/pr/1" -> "refs%2Fpr%2F1") and validated;
// paths are percent-encoded keeping '/'. Subfolder handling belongs to the caller.
//
// Errors: HTTP failures map through hub_error() (errors.h): Errc::unauthorized, forbidden,
// gated, repo_not_found, revision_not_found, entry_not_found, rate_limited, server_error,
// no_space, out_of_range, http_status, with messages naming what was not found; transport
// errors come from http::Client; malformed bodies are Errc::protocol.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/http/client.h"
#include "net/hub/token.h"
#include "net/hub/types.h"

namespace hf::hub {

template <class T>
using awaitable = boost::asio::awaitable<T>;

struct HubOptions {
  std::string endpoint;  // empty: $HF_ENDPOINT, else https://huggingface.co; trailing '/' stripped
  std::shared_ptr<TokenProvider> tokens;  // null: anonymous
  uint32_t tree_page_limit = 1000;         // repos (P8)
  uint32_t bucket_tree_page_limit = 5000;  // buckets
  size_t max_page_bytes = 64u << 20;       // per listing page / JSON response
  size_t max_pages = 100000;               // listing loop bound
  size_t paths_info_batch = 1000;
  size_t batch_ops_per_request = 1000;     // P7
};

class HubClient {
 public:
  HubClient(http::Client& http, HubOptions opts);

  const std::string& endpoint() const { return endpoint_; }

  // R1 (no revision) / R1b (/revision/{rev}). Buckets: use bucket_info().
  awaitable<Result<RepoInfo>> repo_info(const RepoRef& repo, std::optional<std::string> revision);

  // R2 / B2: lists `dir` ("" = root), following Link rel="next". Each page goes to `on_page`
  // (an error from it stops the listing and is returned). Buckets keep only strict descendants
  // of `dir` (P6); `revision` is ignored for buckets.
  awaitable<Status> list_tree(const RepoRef& repo, std::string_view revision, std::string_view dir, bool recursive,
                              std::function<Status(std::vector<TreeEntry>&&)> on_page);

  // R3 / B3: metadata for the given paths (missing paths are absent from the result), in
  // batches of `paths_info_batch`.
  awaitable<Result<std::vector<TreeEntry>>> paths_info(const RepoRef& repo, std::string_view revision,
                                                       const std::vector<std::string>& paths);

  // R4 / B4: HEAD on resolve. Follows relative and same-origin redirects that carry no file
  // metadata (the 307 to /api/resolve-cache, P3); stops at a redirect that carries X-Linked-*
  // / X-Xet-Hash or leaves the origin, and reads the metadata there (P12).
  awaitable<Result<FileMeta>> head_file(const RepoRef& repo, std::string_view revision, std::string_view path);

  // R5: GET on resolve with Range bytes=offset..offset+length-1 (length 0: to the end), following
  // redirects (no Authorization cross-origin). Body bytes go to `sink.on_data`; sink.on_head
  // sees the final 2xx head. A server that ignores Range (200) is handled by skipping and
  // truncating. HTTP errors are mapped (nothing reaches the sink).
  awaitable<Result<http::ResponseHead>> download(const RepoRef& repo, std::string_view revision, std::string_view path,
                                                 uint64_t offset, uint64_t length, http::StreamHandler sink,
                                                 CancelPtr cancel = {});

  // R6/R7/B5: CAS token from the body, falling back to X-Xet-* headers.
  awaitable<Result<XetToken>> xet_token(const RepoRef& repo, std::string_view revision, bool write);

  // B1.
  awaitable<Result<BucketInfo>> bucket_info(const RepoRef& bucket);

  // B6: NDJSON batch. Adds and copies are sent before deletes (stable order otherwise), at most
  // `batch_ops_per_request` per request; 200 and 422 are parsed and merged. Check
  // BatchResult::failed (P7): a non-empty list means not everything was applied.
  awaitable<Result<BatchResult>> bucket_batch(const RepoRef& bucket, const std::vector<BatchOp>& ops);

 private:
  awaitable<Result<http::Response>> call(http::Request req);
  Status authorize(http::Request& req);
  std::string repo_base(const RepoRef& r) const;  // {endpoint}/api/{prefix}/{id}

  http::Client& http_;
  HubOptions opts_;
  std::string endpoint_;
  std::string endpoint_origin_;
};

// NDJSON body of a batch (one line per op, each ending in "\n"). Exposed for tests.
std::string batch_ndjson(const std::vector<BatchOp>& ops);

}  // namespace hf::hub
