// Xet CAS client (xet-protocol.md §7): reconstruction queries, presigned-URL chunk fetches
// decoded while streaming, xorb/shard uploads, global-dedup queries, file sizes.
//
// Auth: `Authorization: Bearer <CAS token>` on every CAS endpoint, never on presigned
// transfer URLs (§7.1, §8.3); the Hub token never reaches the CAS. The CAS base URL is the
// `casUrl` of the first token (later refreshes do not move it, like XC).
//
// Retries (§7.12, with our own delays from CasOptions::retry instead of XC's 3..243 s):
// 5xx except 501, 408, 429 and transport errors are retried by http::Client; 501 and other
// 4xx are final; the dedup query makes a single attempt. A 401 invalidates the token and is
// retried once with a fresh one. A presigned range that fails mid-body is resumed from the
// last complete chunk (up to `fetch_resumes` times); its 403 is final here (Errc::forbidden:
// the caller re-queries the reconstruction for fresh URLs, §7.3).
//
// Threading: thread-safe; the http::Client and the TokenSource must outlive the CasClient.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "base/cancel.h"
#include "base/result.h"
#include "net/http/client.h"
#include "net/xet/client/token_source.h"
#include "net/xet/hash.h"
#include "net/xet/reconstruction.h"
#include "net/xet/shard.h"

namespace hf::xet {

struct CasOptions {
  // 0: v2 first, v1 after a 404/501 (remembered for the client's lifetime); 1 or 2: forced.
  // $HF_XET_CLIENT_RECONSTRUCTION_API_VERSION overrides 0.
  int reconstruction_api = 0;
  // Same for shard uploads (v2 NDJSON stream, else v1); $HF_XET_CLIENT_SHARD_API_VERSION.
  int shard_api = 0;
  // fetch_multi() asks for all ranges of a URL in one multipart/byteranges request instead of
  // one request per range; $HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING=true enables it.
  bool multirange = false;
  http::RetryPolicy retry{5, std::chrono::milliseconds(300), std::chrono::milliseconds(8000),
                          std::chrono::milliseconds(120000)};
  int fetch_resumes = 3;
  std::string dedup_prefix = "default";  // XC since 2026-03; HD documents "default-merkledb" (§12.7)
  std::string session_id;                // X-Xet-Session-Id, empty = not sent
};

using ChunkFn = std::function<Status(uint32_t chunk_index, std::span<const uint8_t> raw)>;

class CasClient {
 public:
  CasClient(http::Client& http, std::shared_ptr<TokenSource> tokens, CasOptions opts = {});

  // GET /v2 (or /v1) /reconstructions/{file} with an optional inclusive byte range.
  // 416 -> Errc::out_of_range (range starts at or past EOF); 404 -> Errc::not_found.
  boost::asio::awaitable<Result<Reconstruction>> get_reconstruction(const Hash& file, std::optional<ByteRangeIncl> range,
                                                                    CancelPtr cancel = {});

  // GETs one FetchRange of a presigned URL (no Authorization) and decodes the chunk records
  // while streaming (memory: one record). Calls on_chunk(index, raw) in order for every chunk of
  // r.chunks; the body must hold exactly that many records and end at a record boundary.
  // 403 -> Errc::forbidden ("presigned URL expired or out of range"). On success, reports the
  // stored object's size when the server stated it (see covers_whole_xorb).
  boost::asio::awaitable<Result<RangeFetchReport>> fetch_chunks(const std::string& url, const FetchRange& r,
                                                                ChunkFn on_chunk, CancelPtr cancel = {});
  // All ranges of one XorbFetch: one multi-range request when multirange is enabled (parts
  // decoded as they stream, in ascending order), else one request per range in order.
  boost::asio::awaitable<Status> fetch_multi(const XorbFetch& f, ChunkFn on_chunk, CancelPtr cancel = {});

  // POST /v1/xorbs/default/{hash}; returns was_inserted (false: already stored).
  boost::asio::awaitable<Result<bool>> upload_xorb(const Hash& xorb, std::shared_ptr<const std::string> serialized);
  // POST /v2/shards (read to the terminal NDJSON frame; a retryable error frame re-uploads),
  // falling back to /v1/shards on 404/501 (remembered).
  boost::asio::awaitable<Status> upload_shard(std::shared_ptr<const std::string> shard);
  // GET /v1/chunks/{prefix}/{chunk}: the dedup shard, or nullopt when the chunk is unknown
  // (404) or the query failed in any other way (logged at debug; dedup is an optimisation).
  // Only cancellation is returned as an error.
  boost::asio::awaitable<Result<std::optional<Shard>>> query_dedup(const Hash& chunk, CancelPtr cancel = {});
  // HEAD /v1/files/{file} -> Content-Length. 404 -> Errc::not_found.
  boost::asio::awaitable<Result<uint64_t>> file_size(const Hash& file, CancelPtr cancel = {});

  bool using_v1_reconstruction() const { return recon_v1_.load(); }

 private:
  boost::asio::awaitable<Result<http::Response>> cas_call(http::Request req, const char* what);
  boost::asio::awaitable<Status> fetch_once(const std::string& url, const FetchRange& r, uint64_t byte_offset,
                                            uint32_t first_chunk, const ChunkFn& on_chunk, uint64_t* consumed,
                                            uint32_t* chunks_done, bool* transient, RangeFetchReport* report,
                                            CancelPtr cancel);
  boost::asio::awaitable<Status> shard_v2(std::shared_ptr<const std::string> shard, bool* fallback, bool* retryable);

  http::Client& http_;
  std::shared_ptr<TokenSource> tokens_;
  CasOptions opts_;
  std::mutex mu_;
  std::string cas_url_;  // guarded by mu_: pinned from the first token
  std::atomic<bool> recon_v1_{false};
  std::atomic<bool> shard_v1_{false};
};

}  // namespace hf::xet
