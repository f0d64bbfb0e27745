#include <utility>  // before Asio (asio#944)

#include "net/xet/client/cas_client.h"

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <simdjson.h>

#include <cstdlib>

#include "base/log.h"
#include "base/sleep.h"
#include "base/text.h"
#include "net/http/multipart.h"
#include "net/http/retry.h"
#include "net/xet/xorb.h"

namespace hf::xet {

namespace net = boost::asio;
using net::awaitable;

namespace {

// TOTAL of `bytes S-E/TOTAL`; nullopt for "*" or anything malformed (then nothing is inferred).
std::optional<uint64_t> content_range_total(std::string_view v) {
  size_t slash = v.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return parse_u64(trim(v.substr(slash + 1)));
}

int env_version(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return 0;
  std::string_view s = trim(v);
  return s == "1" ? 1 : s == "2" ? 2 : 0;
}

bool env_true(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return false;
  std::string s = to_lower(trim(v));
  return s == "1" || s == "true" || s == "yes" || s == "on";
}

std::string short_body(std::string_view body) {
  std::string s(body.substr(0, 200));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
  }
  return std::string(trim(s));
}

Error cas_error(int status, std::string_view body, std::string_view what) {
  std::string detail = short_body(body);
  auto msg = [&](std::string m) { return detail.empty() ? m : fmt::format("{}: {}", m, detail); };
  switch (status) {
    case 400: return make_error(Errc::protocol, msg(fmt::format("CAS rejected the {} (HTTP 400)", what)));
    case 401: return make_error(Errc::unauthorized, msg(fmt::format("CAS token rejected during {} (HTTP 401)", what)));
    case 403: return make_error(Errc::forbidden, msg(fmt::format("CAS refused the {}: token lacks the scope (HTTP 403)", what)));
    case 404: return make_error(Errc::not_found, msg(fmt::format("{}: not found in CAS (HTTP 404)", what)));
    case 413: return make_error(Errc::too_large, msg(fmt::format("{} too large for the CAS (HTTP 413)", what)));
    case 416: return make_error(Errc::out_of_range, fmt::format("{}: range not satisfiable (HTTP 416)", what));
    case 429: return make_error(Errc::rate_limited, fmt::format("CAS rate limit during {} (HTTP 429)", what));
    case 507: return make_error(Errc::no_space, msg(fmt::format("CAS out of space during {} (HTTP 507)", what)));
    default: break;
  }
  if (status >= 500) return make_error(Errc::server_error, msg(fmt::format("CAS server error during {} (HTTP {})", what, status)));
  return make_error(Errc::http_status, msg(fmt::format("unexpected HTTP {} from CAS during {}", status, what)));
}

// Progress through one FetchRange across resumptions.
struct RangeProgress {
  uint64_t consumed = 0;  // record bytes of complete chunks delivered
  uint32_t done = 0;      // chunks delivered
};

// Decodes one range's chunk records and enforces the count/boundary contract.
class RangeDecoder {
 public:
  RangeDecoder(const FetchRange& r, RangeProgress& p, const ChunkFn& fn) : r_(r), p_(p), fn_(fn) {}
  Status feed(std::span<const uint8_t> d) {
    return dec_.feed(d, [this](uint32_t, std::span<const uint8_t> raw, uint32_t rec) -> Status {
      uint32_t index = r_.chunks.start + p_.done;
      if (index >= r_.chunks.end) {
        decode_error_ = true;
        return make_error(Errc::protocol, fmt::format("fetch range returned more than the {} chunks expected",
                                                      r_.chunks.end - r_.chunks.start));
      }
      auto st = fn_(index, raw);
      if (!st) {
        consumer_error_ = true;
        return st;
      }
      ++p_.done;
      p_.consumed += rec;
      return {};
    });
  }
  // After the body ended: everything decoded and exactly at the range's end.
  Status finish() {
    auto st = dec_.finish();
    if (!st) return st;
    uint32_t want = r_.chunks.end - r_.chunks.start;
    uint64_t bytes = r_.bytes.end - r_.bytes.start + 1;
    if (p_.done != want)
      return make_error(Errc::protocol, fmt::format("fetch range returned {} chunks, expected {}", p_.done, want));
    if (p_.consumed != bytes)
      return make_error(Errc::protocol, fmt::format("fetch range body has {} bytes of chunk records, expected {}", p_.consumed, bytes));
    return {};
  }
  bool consumer_error() const { return consumer_error_; }
  bool decode_error() const { return decode_error_ || dec_failed_; }
  void mark_decode_failed() { dec_failed_ = true; }

 private:
  const FetchRange& r_;
  RangeProgress& p_;
  const ChunkFn& fn_;
  ChunkRecordDecoder dec_;
  bool consumer_error_ = false, decode_error_ = false, dec_failed_ = false;
};

}  // namespace

CasClient::CasClient(http::Client& http, std::shared_ptr<TokenSource> tokens, CasOptions opts)
    : http_(http), tokens_(std::move(tokens)), opts_(std::move(opts)) {
  if (!opts_.multirange && env_true("HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING")) opts_.multirange = true;
  if (opts_.reconstruction_api == 0) opts_.reconstruction_api = env_version("HF_XET_CLIENT_RECONSTRUCTION_API_VERSION");
  if (opts_.shard_api == 0) opts_.shard_api = env_version("HF_XET_CLIENT_SHARD_API_VERSION");
}

awaitable<Result<http::Response>> CasClient::cas_call(http::Request req, const char* what) {
  for (int auth_try = 0;; ++auth_try) {
    auto tok = co_await tokens_->get();
    if (!tok) co_return std::move(tok).error();
    std::string base;
    {
      std::lock_guard lk(mu_);
      if (cas_url_.empty()) {
        cas_url_ = tok->cas_url;
        while (!cas_url_.empty() && cas_url_.back() == '/') cas_url_.pop_back();
      }
      base = cas_url_;
    }
    http::Request r = req;  // cheap: the body is shared
    r.url = base + req.url;
    r.headers.set("Authorization", "Bearer " + tok->access_token.reveal());
    if (!opts_.session_id.empty()) r.headers.set("X-Xet-Session-Id", opts_.session_id);
    if (!r.retry) r.retry = opts_.retry;
    auto resp = co_await http_.co_fetch(std::move(r));
    if (!resp) co_return std::move(resp).error();
    if (resp->status == 401 && auth_try == 0) {
      // XC treats 401 as fatal; a fresh token costs one request and survives clock skew.
      HF_LOG_DEBUG("cas", "CAS answered 401 to {}; refreshing the token once", what);
      tokens_->invalidate();
      continue;
    }
    co_return resp;
  }
}

awaitable<Result<Reconstruction>> CasClient::get_reconstruction(const Hash& file, std::optional<ByteRangeIncl> range,
                                                                CancelPtr cancel) {
  if (range && range->end < range->start) co_return make_error(Errc::invalid_argument, "inverted reconstruction range");
  const bool automatic = opts_.reconstruction_api == 0;
  int version = automatic ? (recon_v1_.load() ? 1 : 2) : opts_.reconstruction_api;
  int parse_retries = 1;
  const std::string hex = file.hex();
  for (;;) {
    http::Request req;
    req.url = fmt::format("/v{}/reconstructions/{}", version, hex);
    if (range) req.headers.add("Range", fmt::format("bytes={}-{}", range->start, range->end));
    req.max_buffered_body = kMaxReconstructionJson;
    req.cancel = cancel;
    auto r = co_await cas_call(std::move(req), "reconstruction query");
    if (!r) co_return std::move(r).error();
    if (r->status == 200) {
      auto parsed = version == 2 ? parse_reconstruction_v2(r->body) : parse_reconstruction_v1(r->body);
      if (!parsed && parsed.code() == Errc::protocol && parse_retries-- > 0) {
        HF_LOG_DEBUG("cas", "reconstruction of {} did not parse ({}); asking again", hex, parsed.error().message);
        continue;
      }
      co_return parsed;
    }
    if (version == 2 && automatic && (r->status == 404 || r->status == 501)) {
      // v2 not supported by this CAS (or the file is missing: v1 will say so too).
      recon_v1_.store(true);
      version = 1;
      continue;
    }
    if (r->status == 416)
      co_return make_error(Errc::out_of_range, fmt::format("byte range starts at or past the end of file {}", hex));
    if (r->status == 404) co_return make_error(Errc::not_found, fmt::format("file {} not found in CAS", hex));
    co_return cas_error(r->status, r->body, "reconstruction query");
  }
}

awaitable<Status> CasClient::fetch_once(const std::string& url, const FetchRange& r, uint64_t byte_offset, uint32_t,
                                        const ChunkFn& on_chunk, uint64_t* consumed, uint32_t* chunks_done, bool* transient,
                                        RangeFetchReport* report, CancelPtr cancel) {
  *transient = false;
  RangeProgress p{*consumed, *chunks_done};
  RangeDecoder dec(r, p, on_chunk);
  const uint64_t start = r.bytes.start + byte_offset;
  const uint64_t want = r.bytes.end - start + 1;
  http::Request req;
  req.url = url;  // presigned: never an Authorization header
  req.headers.add("Range", fmt::format("bytes={}-{}", start, r.bytes.end));
  req.retry = opts_.retry;
  req.cancel = std::move(cancel);
  int status = 0;
  std::string err_body;
  uint64_t skip = 0, left = want;
  std::optional<http::MultipartByteranges> mp;
  auto feed = [&](std::span<const uint8_t> d) -> Status {
    if (skip) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(skip, d.size()));
      skip -= k;
      d = d.subspan(k);
    }
    if (d.size() > left) return make_error(Errc::protocol, "fetch range body longer than requested");
    left -= d.size();
    return dec.feed(d);
  };
  http::StreamHandler h;
  h.on_head = [&](const http::ResponseHead& head) -> Status {
    status = head.status;
    if (status / 100 != 2) return {};
    auto ct = head.headers.get("Content-Type");
    if (ct && to_lower(*ct).find("multipart/byteranges") != std::string::npos) {
      HF_ASSIGN_OR_RETURN(auto boundary, http::MultipartByteranges::boundary_from_content_type(*ct));
      mp.emplace(
          boundary,
          [&, start](const http::MultipartByteranges::Part& part) -> Status {
            if (mp->parts_seen() > 1 || part.first != start)
              return make_error(Errc::protocol, "multipart answer does not match the requested range");
            report->object_size = part.total;
            return {};
          },
          [&](std::span<const uint8_t> d) { return feed(d); });
      return {};
    }
    if (auto cr = head.headers.get("Content-Range")) {
      std::string expect = fmt::format("bytes {}-", start);
      if (trim(*cr).substr(0, expect.size()) != expect)
        return make_error(Errc::protocol, fmt::format("presigned URL answered {} for bytes {}-{}", trim(*cr), start, r.bytes.end));
      report->object_size = content_range_total(*cr);
    } else if (status == 200 && head.content_length && *head.content_length > want) {
      skip = start;  // the whole object: Range was ignored
    }
    return {};
  };
  h.on_data = [&](std::span<const uint8_t> d) -> Status {
    if (status / 100 != 2) {
      if (err_body.size() < 4096) err_body.append(reinterpret_cast<const char*>(d.data()), std::min<size_t>(d.size(), 4096));
      return {};
    }
    return mp ? mp->feed(d) : feed(d);
  };
  auto res = co_await http_.co_stream(std::move(req), std::move(h));
  *consumed = p.consumed;
  *chunks_done = p.done;
  if (!res) {
    // A consumer or decode error is final; a transport failure may be resumed.
    *transient = !dec.consumer_error() && !dec.decode_error() && res.code() != Errc::cancelled &&
                 (res.code() == Errc::network || res.code() == Errc::timed_out ||
                  (res.code() == Errc::protocol && res.error().message.find("truncated") != std::string::npos));
    co_return std::move(res).error();
  }
  if (status == 403)
    co_return make_error(Errc::forbidden, "presigned URL expired or out of range (HTTP 403)");
  if (status / 100 != 2) co_return cas_error(status, err_body, "xorb range fetch");
  if (mp) {
    auto st = mp->finish();
    if (!st) co_return st;
  }
  auto st = dec.finish();
  if (!st) {
    // Ended early at a record boundary or inside a record: fetch the rest.
    *transient = p.done < r.chunks.end - r.chunks.start && p.consumed < r.bytes.end - r.bytes.start + 1 && left > 0;
    co_return st;
  }
  co_return Status();
}

awaitable<Result<RangeFetchReport>> CasClient::fetch_chunks(const std::string& url, const FetchRange& r,
                                                            ChunkFn on_chunk, CancelPtr cancel) {
  if (r.chunks.end <= r.chunks.start || r.bytes.end < r.bytes.start)
    co_return make_error(Errc::invalid_argument, "empty or inverted fetch range");
  uint64_t consumed = 0;
  uint32_t done = 0;
  RangeFetchReport report;
  for (int attempt = 0;; ++attempt) {
    bool transient = false;
    auto st = co_await fetch_once(url, r, consumed, r.chunks.start + done, on_chunk, &consumed, &done, &transient,
                                  &report, cancel);
    if (st.ok()) co_return report;
    if (!transient || attempt >= opts_.fetch_resumes || (cancel && cancel->cancelled())) co_return std::move(st).error();
    HF_LOG_DEBUG("cas", "xorb range fetch failed after {} chunks ({}); resuming", done, st.error().message);
    co_await sleep_for(http::backoff_delay(opts_.retry, attempt + 1), cancel);
  }
}

awaitable<Status> CasClient::fetch_multi(const XorbFetch& f, ChunkFn on_chunk, CancelPtr cancel) {
  if (f.ranges.empty()) co_return Status();
  for (const auto& r : f.ranges) {
    if (r.chunks.end <= r.chunks.start || r.bytes.end < r.bytes.start)
      co_return make_error(Errc::invalid_argument, "empty or inverted fetch range");
  }
  std::vector<RangeProgress> prog(f.ranges.size());
  RangeFetchReport report;  // fetch_multi's callers only need the chunks
  if (opts_.multirange && f.ranges.size() > 1) {
    std::string spec = "bytes=";
    for (size_t i = 0; i < f.ranges.size(); ++i) {
      if (i) spec += ',';
      spec += fmt::format("{}-{}", f.ranges[i].bytes.start, f.ranges[i].bytes.end);
    }
    http::Request req;
    req.url = f.url;
    req.headers.add("Range", spec);
    req.retry = opts_.retry;
    req.cancel = cancel;
    int status = 0;
    size_t current = 0;  // the range whose part is being decoded
    std::optional<RangeDecoder> dec;
    std::optional<http::MultipartByteranges> mp;
    bool final_error = false;
    auto close_part = [&]() -> Status {
      if (!dec) return {};
      auto st = dec->finish();
      dec.reset();
      if (!st) return st;
      ++current;
      return {};
    };
    http::StreamHandler h;
    h.on_head = [&](const http::ResponseHead& head) -> Status {
      status = head.status;
      if (status != 206) return {};
      auto ct = head.headers.get("Content-Type");
      if (!ct) return make_error(Errc::protocol, "multi-range answer without Content-Type");
      HF_ASSIGN_OR_RETURN(auto boundary, http::MultipartByteranges::boundary_from_content_type(*ct));
      mp.emplace(
          boundary,
          [&](const http::MultipartByteranges::Part& part) -> Status {
            HF_TRY(close_part());
            // Parts must come in ascending order, one per requested range.
            if (current >= f.ranges.size() || part.first != f.ranges[current].bytes.start ||
                part.last != f.ranges[current].bytes.end)
              return make_error(Errc::protocol, fmt::format("unexpected multipart part bytes {}-{}", part.first, part.last));
            dec.emplace(f.ranges[current], prog[current], on_chunk);
            return {};
          },
          [&](std::span<const uint8_t> d) -> Status {
            auto st = dec->feed(d);
            if (!st && (dec->consumer_error() || dec->decode_error())) final_error = true;
            return st;
          });
      return {};
    };
    h.on_data = [&](std::span<const uint8_t> d) -> Status {
      if (status != 206 || !mp) return make_error(Errc::protocol, "multi-range request not answered with multipart/byteranges");
      return mp->feed(d);
    };
    auto res = co_await http_.co_stream(std::move(req), std::move(h));
    if (res.ok() && status == 206 && mp) {
      auto st = mp->finish();
      if (st) st = close_part();
      if (st && current == f.ranges.size()) co_return Status();
    }
    if (res.ok() && status == 403) co_return make_error(Errc::forbidden, "presigned URL expired or out of range (HTTP 403)");
    if (final_error || (!res.ok() && res.code() == Errc::cancelled)) co_return res.ok() ? Status(make_error(Errc::protocol, "multi-range decode failed")) : Status(std::move(res).error());
    HF_LOG_DEBUG("cas", "multi-range fetch incomplete ({} of {} ranges); fetching the rest one by one", current, f.ranges.size());
    // A partially decoded part keeps its progress; the rest is fetched range by range.
  }
  for (size_t i = 0; i < f.ranges.size(); ++i) {
    const auto& r = f.ranges[i];
    uint32_t count = r.chunks.end - r.chunks.start;
    if (prog[i].done == count) continue;
    for (int attempt = 0;; ++attempt) {
      bool transient = false;
      auto st = co_await fetch_once(f.url, r, prog[i].consumed, r.chunks.start + prog[i].done, on_chunk, &prog[i].consumed,
                                    &prog[i].done, &transient, &report, cancel);
      if (st.ok()) break;
      if (!transient || attempt >= opts_.fetch_resumes || (cancel && cancel->cancelled())) co_return st;
      co_await sleep_for(http::backoff_delay(opts_.retry, attempt + 1), cancel);
    }
  }
  co_return Status();
}

awaitable<Result<bool>> CasClient::upload_xorb(const Hash& xorb, std::shared_ptr<const std::string> serialized) {
  if (!serialized) co_return make_error(Errc::invalid_argument, "no xorb body");
  http::Request req;
  req.method = "POST";
  req.url = "/v1/xorbs/default/" + xorb.hex();
  req.body = std::move(serialized);
  req.idempotent = true;  // re-POSTing a xorb is safe (§9.1)
  auto r = co_await cas_call(std::move(req), "xorb upload");
  if (!r) co_return std::move(r).error();
  if (r->status != 200) co_return cas_error(r->status, r->body, "xorb upload");
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  bool inserted = true;
  if (r->body.size() > 65536 || p.parse(r->body).get(doc))
    co_return make_error(Errc::protocol, "malformed xorb upload response");
  if (bool b; !doc["was_inserted"].get_bool().get(b)) inserted = b;
  co_return inserted;
}

awaitable<Status> CasClient::shard_v2(std::shared_ptr<const std::string> shard, bool* fallback, bool* retryable) {
  *fallback = *retryable = false;
  http::Request req;
  req.method = "POST";
  req.url = "/v2/shards";
  req.body = std::move(shard);
  req.idempotent = true;
  req.max_buffered_body = 16u << 20;
  auto r = co_await cas_call(std::move(req), "shard upload");
  if (!r) co_return std::move(r).error();
  if (r->status == 404 || r->status == 501) {
    *fallback = true;
    co_return cas_error(r->status, r->body, "shard upload");
  }
  if (r->status != 200) co_return cas_error(r->status, r->body, "shard upload");
  // NDJSON frames; the last terminal frame decides. Unknown types are ignored (§7.7).
  simdjson::dom::parser p;
  for (auto line : split(r->body, '\n')) {
    line = trim(line);
    if (line.empty()) continue;
    simdjson::dom::element e;
    if (p.parse(line.data(), line.size(), true).get(e)) co_return make_error(Errc::protocol, "malformed shard upload frame");
    std::string_view type;
    if (e["type"].get_string().get(type)) continue;
    if (type == "result") co_return Status();
    if (type == "error") {
      std::string_view message;
      if (e["message"].get_string().get(message)) message = "shard rejected";
      bool retry = false;
      if (e["retryable"].get_bool().get(retry)) retry = false;
      *retryable = retry;
      co_return make_error(Errc::protocol, fmt::format("CAS rejected the shard: {}", short_body(message)));
    }
  }
  *retryable = true;
  co_return make_error(Errc::protocol, "shard upload stream ended without a result frame");
}

awaitable<Status> CasClient::upload_shard(std::shared_ptr<const std::string> shard) {
  if (!shard) co_return make_error(Errc::invalid_argument, "no shard body");
  const bool automatic = opts_.shard_api == 0;
  int version = automatic ? (shard_v1_.load() ? 1 : 2) : opts_.shard_api;
  for (int attempt = 0;; ++attempt) {
    if (version == 2) {
      bool fallback = false, retryable = false;
      auto st = co_await shard_v2(shard, &fallback, &retryable);
      if (!st && fallback && automatic) {
        shard_v1_.store(true);
        version = 1;
        continue;
      }
      if (!st && retryable && attempt < 2) {
        co_await sleep_for(http::backoff_delay(opts_.retry, attempt + 1));
        continue;
      }
      co_return st;
    }
    http::Request req;
    req.method = "POST";
    req.url = "/v1/shards";
    req.body = shard;
    req.idempotent = true;
    auto r = co_await cas_call(std::move(req), "shard upload");
    if (!r) co_return std::move(r).error();
    if (r->status != 200) co_return cas_error(r->status, r->body, "shard upload");
    co_return Status();
  }
}

awaitable<Result<std::optional<Shard>>> CasClient::query_dedup(const Hash& chunk, CancelPtr cancel) {
  http::Request req;
  req.url = fmt::format("/v1/chunks/{}/{}", opts_.dedup_prefix, chunk.hex());
  req.retry = http::RetryPolicy{1, {}, {}, {}};
  req.max_buffered_body = kMaxShardBytes;
  req.cancel = std::move(cancel);
  auto r = co_await cas_call(std::move(req), "dedup query");
  if (!r) {
    if (r.code() == Errc::cancelled) co_return std::move(r).error();
    HF_LOG_DEBUG("cas", "dedup query failed: {}", r.error().message);
    co_return std::optional<Shard>();
  }
  if (r->status != 200) {
    if (r->status != 404) HF_LOG_DEBUG("cas", "dedup query answered HTTP {}", r->status);
    co_return std::optional<Shard>();
  }
  auto s = parse_shard({reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size()});
  if (!s) {
    HF_LOG_DEBUG("cas", "dedup shard did not parse: {}", s.error().message);
    co_return std::optional<Shard>();
  }
  co_return std::optional<Shard>(std::move(*s));
}

awaitable<Result<uint64_t>> CasClient::file_size(const Hash& file, CancelPtr cancel) {
  http::Request req;
  req.method = "HEAD";
  req.url = "/v1/files/" + file.hex();
  req.cancel = std::move(cancel);
  auto r = co_await cas_call(std::move(req), "file size query");
  if (!r) co_return std::move(r).error();
  if (r->status == 404) co_return make_error(Errc::not_found, fmt::format("file {} not found in CAS", file.hex()));
  if (r->status != 200) co_return cas_error(r->status, {}, "file size query");
  if (!r->content_length) co_return make_error(Errc::protocol, "file size answer without Content-Length");
  co_return *r->content_length;
}

}  // namespace hf::xet
