#include <utility>  // before Asio (asio#944)

#include "net/hub/client.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/text.h"
#include "net/http/link_header.h"
#include "net/http/retry.h"
#include "net/http/url.h"
#include "net/hub/errors.h"
#include "net/hub/json.h"

namespace hf::hub {
namespace {

std::string normalize_etag(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && (v.substr(0, 2) == "W/" || v.substr(0, 2) == "w/")) v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return std::string(v);
}

bool is_redirect(int s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }

Result<uint64_t> header_u64(const http::Headers& h, std::string_view name) {
  auto v = h.get(name);
  if (!v) return make_error(Errc::not_found, std::string(name));
  auto n = parse_u64(trim(*v));
  if (!n) return make_error(Errc::protocol, fmt::format("malformed {} header", name));
  return *n;
}

}  // namespace

std::string batch_ndjson(const std::vector<BatchOp>& ops) {
  std::string out;
  for (const auto& op : ops) {
    JsonWriter w;
    w.begin_object();
    switch (op.kind) {
      case BatchOp::add:
        w.kv("type", "addFile").kv("path", op.path).kv("xetHash", op.xet_hash);
        if (op.mtime_ms != 0) w.kv("mtime", op.mtime_ms);
        if (!op.content_type.empty()) w.kv("contentType", op.content_type);
        break;
      case BatchOp::copy:
        w.kv("type", "copyFile").kv("path", op.path).kv("xetHash", op.xet_hash);
        w.kv("sourceRepoType", op.source_repo_type).kv("sourceRepoId", op.source_repo_id);
        break;
      case BatchOp::del:
        w.kv("type", "deleteFile").kv("path", op.path);
        break;
    }
    w.end_object();
    out += w.str();
    out += '\n';
  }
  return out;
}

HubClient::HubClient(http::Client& http, HubOptions opts) : http_(http), opts_(std::move(opts)) {
  endpoint_ = opts_.endpoint;
  if (endpoint_.empty()) {
    const char* e = std::getenv("HF_ENDPOINT");
    endpoint_ = (e && *e) ? e : "https://huggingface.co";
  }
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  if (auto u = http::Url::parse(endpoint_)) endpoint_origin_ = u->origin();
  else HF_LOG_ERROR("hub", "invalid Hub endpoint '{}': {}", endpoint_, u.error().message);
}

std::string HubClient::repo_base(const RepoRef& r) const {
  return fmt::format("{}/api/{}/{}", endpoint_, api_prefix(r.type), r.id);
}

Status HubClient::authorize(http::Request& req) {
  if (!opts_.tokens) return {};
  auto u = http::Url::parse(req.url);
  if (!u || u->origin() != endpoint_origin_) return {};  // the Hub token goes to the Hub only
  HF_ASSIGN_OR_RETURN(Secret tok, opts_.tokens->token());
  if (!tok.empty()) req.headers.set("Authorization", "Bearer " + tok.reveal());
  return {};
}

awaitable<Result<http::Response>> HubClient::call(http::Request req) {
  if (endpoint_origin_.empty()) co_return make_error(Errc::invalid_argument, fmt::format("invalid Hub endpoint '{}'", endpoint_));
  auto st = authorize(req);
  if (!st) co_return std::move(st).error();
  if (req.max_buffered_body == (64ull << 20)) req.max_buffered_body = opts_.max_page_bytes;
  co_return co_await http_.co_fetch(std::move(req));
}

awaitable<Result<RepoInfo>> HubClient::repo_info(const RepoRef& repo, std::optional<std::string> revision) {
  HF_CO_TRY(validate_repo_id(repo));
  if (repo.type == RepoType::bucket) co_return make_error(Errc::invalid_argument, "repo_info() on a bucket: use bucket_info()");
  std::string url = repo_base(repo);
  if (revision) {
    HF_CO_TRY(validate_revision(*revision));
    url += "/revision/" + url_encode_component(*revision);
  }
  http::Request req;
  req.url = std::move(url);
  auto r = co_await call(std::move(req));
  if (!r) co_return std::move(r).error();
  if (r->status != 200) {
    ErrorContext ctx{&repo, revision ? std::string_view(*revision) : std::string_view(), {},
                     revision ? ErrorContext::On404::revision : ErrorContext::On404::repo, "repository info"};
    // A bare 404 on /revision/{rev} may also be a missing repo; the Hub sends X-Error-Code.
    co_return hub_error(*r, r->body, ctx);
  }
  co_return parse_repo_info(r->body, opts_.max_page_bytes);
}

awaitable<Status> HubClient::list_tree(const RepoRef& repo, std::string_view revision, std::string_view dir, bool recursive,
                                       std::function<Status(std::vector<TreeEntry>&&)> on_page) {
  HF_CO_TRY(validate_repo_id(repo));
  HF_CO_TRY(validate_path(dir));
  const bool bucket = repo.type == RepoType::bucket;
  std::string url = repo_base(repo) + "/tree";
  if (!bucket) {
    HF_CO_TRY(validate_revision(revision));
    url += "/" + url_encode_component(revision);
  }
  if (!dir.empty()) url += "/" + url_encode_path(dir);
  url += fmt::format("?recursive={}&limit={}", recursive ? "true" : "false",
                     bucket ? opts_.bucket_tree_page_limit : opts_.tree_page_limit);
  const std::string prefix = dir.empty() ? std::string() : std::string(dir) + "/";
  std::set<std::string> seen;
  ErrorContext ctx{&repo, bucket ? std::string_view() : revision, dir, ErrorContext::On404::entry, "tree listing"};
  for (size_t page = 0;; ++page) {
    if (page >= opts_.max_pages) co_return make_error(Errc::protocol, "tree listing exceeds the page limit");
    if (!seen.insert(url).second) co_return make_error(Errc::protocol, "tree listing pagination loops (repeated next link)");
    http::Request req;
    req.url = url;
    auto r = co_await call(std::move(req));
    if (!r) co_return std::move(r).error();
    if (r->status != 200) co_return hub_error(*r, r->body, ctx);
    auto entries = parse_tree_entries(r->body, opts_.max_page_bytes);
    if (!entries) co_return std::move(entries).error();
    if (bucket) {
      // Raw-prefix matching returns siblings like "foo.tmp" for "foo" (P6): keep strict descendants.
      std::erase_if(*entries, [&](const TreeEntry& e) {
        return e.path.size() <= prefix.size() || e.path.compare(0, prefix.size(), prefix) != 0;
      });
    }
    auto st = on_page(std::move(*entries));
    if (!st) co_return st;
    auto next = http::find_link(r->headers.get_all("Link"), "next");
    if (!next) co_return Status();
    auto cur = http::Url::parse(url);
    if (!cur) co_return std::move(cur).error();
    auto n = cur->resolve(*next);
    if (!n) co_return make_error(Errc::protocol, "invalid next link in tree listing: " + n.error().message);
    url = n->str();
  }
}

awaitable<Result<std::vector<TreeEntry>>> HubClient::paths_info(const RepoRef& repo, std::string_view revision,
                                                                const std::vector<std::string>& paths) {
  HF_CO_TRY(validate_repo_id(repo));
  const bool bucket = repo.type == RepoType::bucket;
  std::string url = repo_base(repo) + "/paths-info";
  if (!bucket) {
    HF_CO_TRY(validate_revision(revision));
    url += "/" + url_encode_component(revision);
  }
  for (const auto& p : paths) HF_CO_TRY(validate_path(p));
  std::vector<TreeEntry> out;
  ErrorContext ctx{&repo, bucket ? std::string_view() : revision, {}, ErrorContext::On404::repo, "paths-info"};
  const size_t batch = std::max<size_t>(1, opts_.paths_info_batch);
  for (size_t start = 0; start < paths.size(); start += batch) {
    JsonWriter w;
    w.begin_object().key("paths").begin_array();
    for (size_t i = start; i < std::min(paths.size(), start + batch); ++i) w.value(paths[i]);
    w.end_array();
    if (!bucket) w.kv("expand", false);
    w.end_object();
    http::Request req;
    req.method = "POST";
    req.url = url;
    req.idempotent = true;  // a read
    req.headers.add("Content-Type", "application/json");
    req.body = std::make_shared<const std::string>(w.take());
    auto r = co_await call(std::move(req));
    if (!r) co_return std::move(r).error();
    if (r->status != 200) co_return hub_error(*r, r->body, ctx);
    auto entries = parse_tree_entries(r->body, opts_.max_page_bytes);
    if (!entries) co_return std::move(entries).error();
    for (auto& e : *entries) out.push_back(std::move(e));
  }
  co_return out;
}

awaitable<Result<FileMeta>> HubClient::head_file(const RepoRef& repo, std::string_view revision, std::string_view path) {
  HF_CO_TRY(validate_repo_id(repo));
  HF_CO_TRY(validate_path(path));
  if (path.empty()) co_return make_error(Errc::invalid_argument, "head_file() needs a file path");
  const bool bucket = repo.type == RepoType::bucket;
  std::string url = fmt::format("{}/{}{}/resolve/", endpoint_, resolve_prefix(repo.type), repo.id);
  if (!bucket) {
    HF_CO_TRY(validate_revision(revision));
    url += url_encode_component(revision) + "/";
  }
  url += url_encode_path(path);
  ErrorContext ctx{&repo, bucket ? std::string_view() : revision, path, ErrorContext::On404::entry, "file metadata"};
  for (int hop = 0;; ++hop) {
    if (hop > 5) co_return make_error(Errc::protocol, "too many redirects resolving file metadata");
    http::Request req;
    req.method = "HEAD";
    req.url = url;
    req.max_redirects = 0;
    req.headers.add("Accept-Encoding", "identity");
    auto r = co_await call(std::move(req));
    if (!r) co_return std::move(r).error();
    const auto& h = r->headers;
    const bool redirect = is_redirect(r->status);
    if (!redirect && r->status / 100 != 2) co_return hub_error(*r, {}, ctx);
    bool has_meta = h.contains("X-Linked-Size") || h.contains("X-Xet-Hash");
    if (redirect && !has_meta) {
      auto loc = h.get("Location");
      if (!loc) co_return make_error(Errc::protocol, fmt::format("HTTP {} without Location for '{}'", r->status, path));
      auto cur = http::Url::parse(url);
      if (!cur) co_return std::move(cur).error();
      auto next = cur->resolve(*loc);
      if (!next) co_return std::move(next).error();
      if (next->origin() == endpoint_origin_) {  // relative or same-origin: resolve-cache (P3)
        url = next->str();
        continue;
      }
      co_return make_error(Errc::protocol,
                           fmt::format("'{}' redirects to another host without X-Linked-Size", path));
    }
    FileMeta m;
    auto linked = header_u64(h, "X-Linked-Size");
    if (linked.ok()) {
      m.size = *linked;
    } else if (linked.code() == Errc::protocol) {
      co_return std::move(linked).error();
    } else if (r->content_length && (!redirect || (bucket && h.contains("X-Xet-Hash")))) {
      // Never from a repo redirect's own body (P3); bucket HEADs carry the file size in
      // Content-Length, which is what huggingface_hub and the Rust client read (§7.3).
      m.size = *r->content_length;
    } else {
      co_return make_error(Errc::protocol, fmt::format("no size for '{}' in the HEAD response", path));
    }
    if (auto e = h.get("X-Linked-Etag")) m.etag = normalize_etag(*e);
    else if (auto e2 = h.get("ETag")) m.etag = normalize_etag(*e2);
    m.xet_hash = std::string(trim(h.get("X-Xet-Hash").value_or("")));
    m.commit = std::string(trim(h.get("X-Repo-Commit").value_or("")));
    if (auto auth = http::find_link(h.get_all("Link"), "xet-auth")) m.xet_auth_url = *auth;
    else if (auto route = h.get("X-Xet-Refresh-Route")) m.xet_auth_url = std::string(trim(*route));
    // Point refresh routes at the configured endpoint (mirrors, emulators).
    static constexpr std::string_view kHub = "https://huggingface.co";
    if (m.xet_auth_url.rfind(kHub, 0) == 0 && endpoint_ != kHub) m.xet_auth_url = endpoint_ + m.xet_auth_url.substr(kHub.size());
    else if (!m.xet_auth_url.empty() && m.xet_auth_url[0] == '/') m.xet_auth_url = endpoint_ + m.xet_auth_url;
    if (auto lm = h.get("Last-Modified")) {
      if (auto t = http::parse_http_date(*lm)) m.last_modified_ns = *t * 1000000000;
    }
    co_return m;
  }
}

awaitable<Result<http::ResponseHead>> HubClient::download(const RepoRef& repo, std::string_view revision, std::string_view path,
                                                          uint64_t offset, uint64_t length, http::StreamHandler sink,
                                                          CancelPtr cancel) {
  HF_CO_TRY(validate_repo_id(repo));
  HF_CO_TRY(validate_path(path));
  const bool bucket = repo.type == RepoType::bucket;
  std::string url = fmt::format("{}/{}{}/resolve/", endpoint_, resolve_prefix(repo.type), repo.id);
  if (!bucket) {
    HF_CO_TRY(validate_revision(revision));
    url += url_encode_component(revision) + "/";
  }
  url += url_encode_path(path);
  http::Request req;
  req.url = std::move(url);
  req.cancel = std::move(cancel);
  req.headers.add("Accept-Encoding", "identity");
  const bool ranged = offset > 0 || length > 0;
  if (ranged) {
    if (length > 0 && offset > UINT64_MAX - length) co_return make_error(Errc::invalid_argument, "range overflows");
    req.headers.add("Range", length ? fmt::format("bytes={}-{}", offset, offset + length - 1) : fmt::format("bytes={}-", offset));
  }
  // Shared state of the wrapped sink: error responses are collected (bounded), a 200 answer to
  // a ranged request is skipped/truncated into the requested window.
  struct State {
    int status = 0;
    std::string error_body;
    uint64_t skip = 0, left = UINT64_MAX;
    bool done = false;
  };
  auto st = std::make_shared<State>();
  http::StreamHandler wrapped;
  wrapped.on_head = [st, sink, ranged, offset, length](const http::ResponseHead& h) -> Status {
    st->status = h.status;
    if (h.status / 100 != 2) return {};
    if (h.status == 200 && ranged) {
      st->skip = offset;
      if (length) st->left = length;
      // The sink sees the window it asked for, as if the server had honoured Range.
      http::ResponseHead shown = h;
      shown.status = 206;
      uint64_t total = h.content_length.value_or(0);
      uint64_t end = length ? offset + length - 1 : (total ? total - 1 : offset);
      if (total && end >= total) end = total - 1;
      shown.content_length = total > offset ? std::optional<uint64_t>(end - offset + 1) : std::optional<uint64_t>(0);
      shown.headers.set("Content-Range", total ? fmt::format("bytes {}-{}/{}", offset, end, total) : fmt::format("bytes {}-{}/*", offset, end));
      shown.headers.set("Content-Length", std::to_string(*shown.content_length));
      return sink.on_head ? sink.on_head(shown) : Status();
    } else if (h.status == 206 && ranged) {
      auto cr = h.headers.get("Content-Range");
      std::string expect = fmt::format("bytes {}-", offset);
      if (!cr || trim(*cr).substr(0, expect.size()) != expect)
        return make_error(Errc::protocol, "206 response for a different range than requested");
    }
    return sink.on_head ? sink.on_head(h) : Status();
  };
  wrapped.on_data = [st, sink](std::span<const uint8_t> d) -> Status {
    if (st->status / 100 != 2) {
      if (st->error_body.size() < 64 * 1024)
        st->error_body.append(reinterpret_cast<const char*>(d.data()), std::min<size_t>(d.size(), 64 * 1024));
      return {};
    }
    if (st->done) return make_error(Errc::cancelled, "requested range complete");
    if (st->skip) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(st->skip, d.size()));
      st->skip -= k;
      d = d.subspan(k);
    }
    if (d.size() > st->left) d = d.first(static_cast<size_t>(st->left));
    st->left -= d.size();
    if (st->left == 0) st->done = true;
    if (d.empty() || !sink.on_data) return {};
    return sink.on_data(d);
  };
  auto auth = authorize(req);
  if (!auth) co_return std::move(auth).error();
  auto r = co_await http_.co_stream(std::move(req), std::move(wrapped));
  if (!r) {
    // The window was complete and the rest of a 200 body was cut off on purpose.
    if (st->done && r.code() == Errc::cancelled && st->status == 200) {
      http::ResponseHead h;
      h.status = 206;
      h.content_length = length;
      co_return h;
    }
    co_return std::move(r).error();
  }
  if (r->status / 100 != 2) {
    ErrorContext ctx{&repo, bucket ? std::string_view() : revision, path, ErrorContext::On404::entry, "download"};
    co_return hub_error(*r, st->error_body, ctx);
  }
  co_return r;
}

awaitable<Result<XetToken>> HubClient::xet_token(const RepoRef& repo, std::string_view revision, bool write) {
  HF_CO_TRY(validate_repo_id(repo));
  const bool bucket = repo.type == RepoType::bucket;
  std::string url = repo_base(repo) + (write ? "/xet-write-token" : "/xet-read-token");
  if (!bucket) {
    HF_CO_TRY(validate_revision(revision));
    url += "/" + url_encode_component(revision);
  }
  http::Request req;
  req.url = std::move(url);
  auto r = co_await call(std::move(req));
  if (!r) co_return std::move(r).error();
  if (r->status != 200) {
    ErrorContext ctx{&repo, bucket ? std::string_view() : revision, {}, ErrorContext::On404::repo, "xet token"};
    co_return hub_error(*r, r->body, ctx);
  }
  auto t = parse_xet_token(r->body);
  if (t) co_return t;
  // Older Hubs put the token in headers.
  auto tok = r->headers.get("X-Xet-Access-Token");
  auto cas = r->headers.get("X-Xet-Cas-Url");
  auto exp = r->headers.get("X-Xet-Token-Expiration");
  if (tok && cas && exp) {
    auto e = parse_i64(trim(*exp));
    if (e && !trim(*tok).empty() && !trim(*cas).empty()) {
      XetToken x;
      x.access_token = Secret(std::string(trim(*tok)));
      x.cas_url = std::string(trim(*cas));
      x.exp_unix = *e;
      co_return x;
    }
  }
  co_return std::move(t).error();
}

awaitable<Result<BucketInfo>> HubClient::bucket_info(const RepoRef& bucket) {
  if (bucket.type != RepoType::bucket) co_return make_error(Errc::invalid_argument, "bucket_info() needs a bucket");
  HF_CO_TRY(validate_repo_id(bucket));
  http::Request req;
  req.url = repo_base(bucket);
  auto r = co_await call(std::move(req));
  if (!r) co_return std::move(r).error();
  if (r->status != 200) {
    ErrorContext ctx{&bucket, {}, {}, ErrorContext::On404::repo, "bucket info"};
    co_return hub_error(*r, r->body, ctx);
  }
  co_return parse_bucket_info(r->body, opts_.max_page_bytes);
}

awaitable<Result<BatchResult>> HubClient::bucket_batch(const RepoRef& bucket, const std::vector<BatchOp>& ops) {
  if (bucket.type != RepoType::bucket) co_return make_error(Errc::invalid_argument, "bucket_batch() needs a bucket");
  HF_CO_TRY(validate_repo_id(bucket));
  for (const auto& op : ops) {
    HF_CO_TRY(validate_path(op.path));
    if (op.path.empty()) co_return make_error(Errc::invalid_argument, "batch operation without a path");
    if (op.kind != BatchOp::del && op.xet_hash.empty()) co_return make_error(Errc::invalid_argument, "batch add/copy without xetHash");
  }
  // Adds and copies before deletes (P7): a rename must never lose the file in between.
  std::vector<BatchOp> ordered;
  ordered.reserve(ops.size());
  for (const auto& op : ops) if (op.kind != BatchOp::del) ordered.push_back(op);
  for (const auto& op : ops) if (op.kind == BatchOp::del) ordered.push_back(op);
  BatchResult total;
  const size_t per = std::max<size_t>(1, opts_.batch_ops_per_request);
  ErrorContext ctx{&bucket, {}, {}, ErrorContext::On404::repo, "bucket batch"};
  for (size_t start = 0; start < ordered.size(); start += per) {
    std::vector<BatchOp> chunk(ordered.begin() + static_cast<std::ptrdiff_t>(start),
                               ordered.begin() + static_cast<std::ptrdiff_t>(std::min(ordered.size(), start + per)));
    http::Request req;
    req.method = "POST";
    req.url = repo_base(bucket) + "/batch";
    req.idempotent = true;  // add/delete by path: safe to repeat (hub-api.md §9.2)
    req.headers.add("Content-Type", "application/x-ndjson");
    req.body = std::make_shared<const std::string>(batch_ndjson(chunk));
    auto r = co_await call(std::move(req));
    if (!r) co_return std::move(r).error();
    if (r->status != 200 && r->status != 422) co_return hub_error(*r, r->body, ctx);
    auto br = parse_batch_result(r->body, opts_.max_page_bytes);
    if (!br) co_return std::move(br).error();
    if (r->status == 422 && br->failed.empty()) br->failed.emplace_back("", "HTTP 422 without details");
    total.processed += br->processed;
    total.succeeded += br->succeeded;
    for (auto& f : br->failed) total.failed.push_back(std::move(f));
  }
  co_return total;
}

}  // namespace hf::hub
