// Storage Bucket routes (hub-api.md §7): create/info/delete/list, tree with the raw-prefix
// quirk, paths-info, xet tokens, NDJSON batch, and HEAD/GET resolve.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/text.h"
#include "test/hubsim/core.h"
#include "test/hubsim/json_util.h"
#include "test/hubsim/route_util.h"

namespace hf::hubsim {

namespace {

Response bucket_not_found(const Caller& c) {
  return error_response(c.is_user() ? 404 : 401, "RepoNotFound", "Bucket not found");
}

void write_bucket_info(JsonWriter& w, const Bucket& b) {
  w.begin_object();
  w.kv("_id", b.mongo_id);
  w.kv("id", b.id);
  w.kv("author", b.id.substr(0, b.id.find('/')));
  w.kv("private", b.is_private);
  w.kv("createdAt", format_iso8601(b.created_ns));
  w.kv("updatedAt", format_iso8601(b.updated_ns));
  w.kv("size", b.total_size);
  w.kv("totalFiles", static_cast<uint64_t>(b.files.size()));
  w.kv("region", "us");
  w.end_object();
}

void write_bucket_file(JsonWriter& w, std::string_view path, const BucketFile& f) {
  w.begin_object();
  w.kv("type", "file");
  w.kv("path", path);
  w.kv("size", f.size);
  w.kv("xetHash", f.xet_hash);
  if (f.mtime_ms >= 0) w.kv("mtime", format_iso8601(f.mtime_ms * 1000000));
  w.kv("uploadedAt", format_iso8601(f.uploaded_ns));
  w.end_object();
}

void touch(Bucket& b) { b.updated_ns = std::max(now_unix_ns(), (b.updated_ns / 1000000 + 1) * 1000000); }

}  // namespace

Response Server::Core::route_api_bucket(Request& req, const Caller& caller, std::vector<std::string_view>& segs) {
  std::string route = "bucket";
  if (segs.size() >= 3) {
    if (segs[2] == "tree") route = "tree";
    else if (segs[2] == "paths-info") route = "paths_info";
    else if (segs[2] == "batch") route = "batch";
    else if (segs[2] == "xet-read-token" || segs[2] == "xet-write-token") route = "token";
  }
  auto finish = [&](Response r) {
    r.route = route;
    return r;
  };
  if (segs.empty()) return finish(error_response(404, "", "Sorry, we can't find the page you are looking for."));
  std::string ns(segs[0]);
  if (ns == "me") {
    if (!caller.is_user()) return finish(error_response(401, "", "Invalid username or password."));
    ns = caller.name;
  }
  bool may_write = caller.is_user() || user_tokens_.empty();
  auto q = Query::parse(req.query);
  if (!q.ok()) return finish(error_response(400, "", "Invalid query string"));
  const Query& query = q.value();

  // GET /api/buckets/{ns}: the namespace's buckets.
  if (segs.size() == 1) {
    if (req.method != "GET") return finish(error_response(405, "", "Method not allowed"));
    std::shared_lock lk(state_mu_);
    JsonWriter w;
    w.begin_array();
    std::string prefix = ns + "/";
    auto search = query.get("search").value_or("");
    for (auto it = buckets_.lower_bound(prefix); it != buckets_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second.is_private && !caller.is_user()) continue;
      if (!search.empty() && it->first.find(search) == std::string::npos) continue;
      write_bucket_info(w, it->second);
    }
    w.end_array();
    return finish(json_response(w.take()));
  }
  std::string id = fmt::format("{}/{}", ns, segs[1]);

  if (segs.size() == 2) {
    if (req.method == "POST") {
      if (!may_write) return finish(error_response(401, "", "Invalid username or password."));
      bool priv = false;
      if (!trim(req.body).empty()) {
        simdjson::dom::parser parser;
        auto doc = parse_json(parser, req.body);
        if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
        simdjson::dom::element pv;
        if (!doc.value()["private"].get(pv)) priv = json_bool_value(pv).value_or(false);
      }
      std::unique_lock lk(state_mu_);
      if (buckets_.count(id)) return finish(error_response(409, "", "You already created this bucket"));
      lk.unlock();
      auto st = add_bucket(id, "", priv);
      if (!st.ok()) {
        if (st.code() == Errc::exists) return finish(error_response(409, "", "You already created this bucket"));
        return finish(error_response(400, "", st.error().message));
      }
      JsonWriter w;
      w.begin_object();
      w.kv("url", fmt::format("{}/buckets/{}", base_url(), id));
      w.kv("id", id);
      w.kv("name", std::string(segs[1]));
      w.end_object();
      return finish(json_response(w.take()));
    }
    if (req.method == "DELETE") {
      if (!may_write) return finish(error_response(401, "", "Invalid username or password."));
      std::unique_lock lk(state_mu_);
      auto it = buckets_.find(id);
      if (it == buckets_.end() || (it->second.is_private && !caller.is_user())) return finish(bucket_not_found(caller));
      buckets_.erase(it);
      persist_buckets_locked();
      return finish(json_response("{}"));
    }
    if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
    std::shared_lock lk(state_mu_);
    auto it = buckets_.find(id);
    if (it == buckets_.end() || (it->second.is_private && !caller.is_user())) return finish(bucket_not_found(caller));
    JsonWriter w;
    write_bucket_info(w, it->second);
    return finish(json_response(w.take()));
  }

  std::string_view sub = segs[2];

  // ---- batch (write) ----
  if (sub == "batch") {
    if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
    if (!may_write) return finish(error_response(401, "", "Invalid username or password."));
    struct Op {
      enum Kind { add, copy, del, bad } kind = bad;
      std::string path, hash, error, src_type, src_id, content_type;
      int64_t mtime_ms = -1;
    };
    std::vector<Op> ops;
    simdjson::dom::parser parser;
    for (auto line : split(req.body, '\n')) {
      line = trim(line);
      if (line.empty()) continue;
      if (ops.size() >= 100000) return finish(error_response(400, "", "Too many operations in one batch"));
      Op op;
      auto doc = parse_json(parser, line);
      if (!doc.ok()) {
        op.error = "Invalid JSON line";
        ops.push_back(std::move(op));
        continue;
      }
      auto str = [&](const char* key) -> std::string {
        std::string_view s;
        return doc.value()[key].get_string().get(s) ? std::string() : std::string(s);
      };
      std::string type = str("type");
      op.path = str("path");
      op.hash = str("xetHash");
      op.src_type = str("sourceRepoType");
      op.src_id = str("sourceRepoId");
      op.content_type = str("contentType");
      simdjson::dom::element mv;
      if (!doc.value()["mtime"].get(mv)) {
        if (auto v = json_size_value(mv)) op.mtime_ms = static_cast<int64_t>(*v);
      }
      if (type == "addFile") op.kind = Op::add;
      else if (type == "copyFile") op.kind = Op::copy;
      else if (type == "deleteFile") op.kind = Op::del;
      else op.error = fmt::format("Unknown operation type '{}'", type);
      ops.push_back(std::move(op));
    }
    std::unique_lock lk(state_mu_);
    auto it = buckets_.find(id);
    if (it == buckets_.end() || (it->second.is_private && !caller.is_user())) return finish(bucket_not_found(caller));
    Bucket& b = it->second;
    uint64_t ok = 0;
    std::vector<std::pair<std::string, std::string>> failed;
    int64_t now = now_unix_ns();
    for (auto& op : ops) {
      if (op.kind == Op::bad) {
        failed.emplace_back(op.path, op.error);
        continue;
      }
      if (auto st = validate_repo_path(op.path); !st.ok()) {
        failed.emplace_back(op.path, "Invalid path: " + st.error().message);
        continue;
      }
      if (op.kind == Op::del) {
        b.erase(op.path);  // deleting a missing path is a no-op, so a batch can be retried
        ++ok;
        continue;
      }
      auto h = xet::Hash::from_hex(op.hash);
      if (!h.ok()) {
        failed.emplace_back(op.path, "Invalid xetHash");
        continue;
      }
      FilePtr f = cas_.file(h.value());
      if (!f) {
        failed.emplace_back(op.path, "Xet file not found");
        continue;
      }
      if (op.kind == Op::copy) {
        bool src_ok = false;
        if (op.src_type == "bucket") {
          auto s = buckets_.find(op.src_id);
          src_ok = s != buckets_.end() && (!s->second.is_private || caller.is_user());
        } else if (auto t = parse_repo_type(op.src_type); t.ok()) {
          const Repo* r = find_repo(t.value(), op.src_id);
          src_ok = r && (!r->flags.is_private || caller.is_user());
        }
        if (!src_ok) {
          failed.emplace_back(op.path, "Source repository not found");
          continue;
        }
      }
      BucketFile bf;
      bf.size = f->size;
      bf.xet_hash = f->hash.hex();
      bf.mtime_ms = op.mtime_ms;
      bf.uploaded_ns = now;
      bf.content_type = op.content_type;
      b.put(op.path, std::move(bf));
      ++ok;
    }
    if (ok > 0) {
      touch(b);
      persist_buckets_locked();
    }
    lk.unlock();
    JsonWriter w;
    w.begin_object();
    w.kv("success", failed.empty());
    w.kv("processed", static_cast<uint64_t>(ops.size()));
    w.kv("succeeded", ok);
    w.key("failed").begin_array();
    for (const auto& [p, e] : failed) w.begin_object().kv("path", p).kv("error", e).end_object();
    w.end_array();
    w.end_object();
    int status = failed.empty() || knobs().batch_fail_200 ? 200 : 422;
    return finish(json_response(w.take(), status));
  }

  std::shared_lock lk(state_mu_);
  auto it = buckets_.find(id);
  if (it == buckets_.end() || (it->second.is_private && !caller.is_user())) return finish(bucket_not_found(caller));
  const Bucket& b = it->second;

  // ---- tokens ----
  if (sub == "xet-read-token" || sub == "xet-write-token") {
    if (req.method != "GET") return finish(error_response(405, "", "Method not allowed"));
    bool write = sub == "xet-write-token";
    if (write && !may_write) return finish(error_response(401, "", "Invalid username or password."));
    Response r;
    std::string body = token_response_json(write ? TokenScope::write : TokenScope::read, r);
    r.set_body(std::move(body), "application/json; charset=utf-8");
    return finish(std::move(r));
  }

  // ---- tree ----
  if (sub == "tree") {
    if (req.method != "GET") return finish(error_response(405, "", "Method not allowed"));
    auto dp = decode_path_tail(segs, 3);
    if (!dp.ok()) return finish(error_response(400, "", "Invalid path encoding"));
    std::string prefix = std::move(dp).value();
    bool recursive = query.flag("recursive");
    uint64_t limit = 5000;
    if (auto l = query.get("limit")) {
      auto v = parse_u64(*l);
      if (!v) return finish(error_response(400, "", "Invalid limit"));
      if (*v > 0) limit = std::min<uint64_t>(*v, 10000);
    }
    if (uint32_t ps = knobs().page_size; ps > 0) limit = std::min<uint64_t>(limit, ps);
    std::string cursor_key;
    if (auto cur = query.get("cursor")) {
      auto d = base64url_decode(*cur);
      if (!d) return finish(error_response(400, "", "Invalid cursor"));
      cursor_key = std::move(*d);
    }
    BucketListPage page = list_bucket(b, prefix, recursive, cursor_key, static_cast<size_t>(limit));
    JsonWriter w;
    w.begin_array();
    for (const auto& e : page.entries) {
      if (e.is_dir) {
        w.begin_object();
        w.kv("type", "directory");
        w.kv("path", e.path);
        w.kv("uploadedAt", format_iso8601(e.uploaded_ns));
        w.end_object();
      } else {
        write_bucket_file(w, e.path, *e.file);
      }
    }
    w.end_array();
    Response r = json_response(w.take());
    if (!page.next_key.empty()) {
      std::string qs = query_without(req.query, "cursor");
      r.set_header("Link", fmt::format("<{}{}?{}{}cursor={}>; rel=\"next\"", base_url(), req.path, qs,
                                       qs.empty() ? "" : "&", url_encode_component(base64url_encode(page.next_key))));
    }
    return finish(std::move(r));
  }

  // ---- paths-info ----
  if (sub == "paths-info") {
    if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
    std::vector<std::string> paths;
    std::string_view body = trim(req.body);
    if (!body.empty() && body.front() == '{') {
      simdjson::dom::parser parser;
      auto doc = parse_json(parser, req.body);
      if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
      simdjson::dom::element pv;
      if (doc.value()["paths"].get(pv)) return finish(error_response(400, "", "\"paths\" is required"));
      if (auto s = json_string_value(pv)) {
        paths.emplace_back(*s);
      } else {
        simdjson::dom::array arr;
        if (pv.get_array().get(arr)) return finish(error_response(400, "", "\"paths\" must be an array"));
        for (auto el : arr) {
          auto s = json_string_value(el);
          if (!s) return finish(error_response(400, "", "\"paths\" must contain strings"));
          paths.emplace_back(*s);
        }
      }
    } else {
      auto form = Query::parse(req.body);
      if (!form.ok()) return finish(error_response(400, "", "Invalid body"));
      for (auto p : form->all("paths")) paths.emplace_back(p);
    }
    if (paths.size() > 100000) return finish(error_response(400, "", "Too many paths"));
    JsonWriter w;
    w.begin_array();
    std::set<std::string_view> seen;
    for (const auto& p : paths) {
      if (!seen.insert(p).second) continue;
      auto f = b.files.find(p);
      if (f != b.files.end()) write_bucket_file(w, f->first, f->second);
    }
    w.end_array();
    return finish(json_response(w.take()));
  }

  return finish(error_response(404, "", "Sorry, we can't find the page you are looking for."));
}

Response Server::Core::route_bucket_resolve(Request& req, const Caller& caller, std::vector<std::string_view>& segs) {
  auto finish = [](Response r) {
    r.route = "resolve";
    return r;
  };
  // {ns}/{name}/resolve/{path...}
  if (segs.size() < 4 || segs[2] != "resolve")
    return finish(error_response(404, "", "Sorry, we can't find the page you are looking for."));
  if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
  std::string id = fmt::format("{}/{}", segs[0], segs[1]);
  auto dp = decode_path_tail(segs, 3);
  if (!dp.ok()) return finish(error_response(400, "", "Invalid path encoding"));
  std::shared_lock lk(state_mu_);
  auto it = buckets_.find(id);
  if (it == buckets_.end() || (it->second.is_private && !caller.is_user())) return finish(bucket_not_found(caller));
  auto f = it->second.files.find(dp.value());
  if (f == it->second.files.end()) return finish(error_response(404, "EntryNotFound", "Entry not found"));
  const BucketFile& bf = f->second;
  std::string base = base_url();
  Response r;
  r.status = 302;
  r.set_header("Location", fmt::format("{}/_cdn/xet/{}", base, bf.xet_hash));
  r.set_header("X-Xet-Hash", bf.xet_hash);
  r.set_header("X-Linked-Size", std::to_string(bf.size));
  r.set_header("X-Linked-ETag", fmt::format("\"{}\"", bf.xet_hash));
  r.set_header("ETag", fmt::format("\"{}\"", bf.xet_hash));
  r.set_header("Accept-Ranges", "bytes");
  r.set_header("Last-Modified",
               format_http_date((bf.mtime_ms >= 0 ? bf.mtime_ms * 1000000 : bf.uploaded_ns) / 1000000000));
  r.set_header("Link", fmt::format("<{}/api/buckets/{}/xet-read-token>; rel=\"xet-auth\", <{}/v1/reconstructions/{}>; "
                                   "rel=\"xet-reconstruction-info\"",
                                   base, id, cas_url(), bf.xet_hash));
  if (!bf.content_type.empty()) r.set_header("Content-Type", bf.content_type);
  // HEAD: clients read the size from Content-Length of the unfollowed response (hub-api §7.3).
  if (req.is_head()) r.content_length = bf.size;
  return finish(std::move(r));
}

}  // namespace hf::hubsim
