// Hub repository routes: repo info, refs, tree, paths-info, xet tokens, resolve (three file
// kinds), resolve-cache and the CDN bridges (hub-api.md §1-§6, §10).
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

constexpr std::string_view kExposeHeaders =
    "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,Content-Range,"
    "X-Linked-Size,X-Linked-ETag,X-Xet-Hash";

Response repo_not_found(const Caller& c) {
  return error_response(c.is_user() ? 404 : 401, "RepoNotFound", "Repository not found");
}

Response revision_not_found(std::string_view rev) {
  return error_response(404, "RevisionNotFound", fmt::format("Invalid rev id: {}", rev));
}

std::string_view author_of(std::string_view id) {
  size_t s = id.find('/');
  return s == std::string_view::npos ? id : id.substr(0, s);
}

void write_last_commit(JsonWriter& w, const CommitInfoPtr& c) {
  w.key("lastCommit").begin_object();
  w.kv("id", c->sha);
  w.kv("title", c->title);
  w.kv("date", format_iso8601(c->date_ns));
  w.end_object();
}

void write_tree_entry(JsonWriter& w, const TreeEntry& e, bool expand) {
  w.begin_object();
  w.kv("type", e.is_dir ? "directory" : "file");
  w.kv("oid", e.oid);
  w.kv("size", e.is_dir ? uint64_t{0} : e.file->size);
  if (!e.is_dir && e.file->kind != FileKind::git) {
    w.key("lfs").begin_object();
    w.kv("oid", e.file->sha256);
    w.kv("size", e.file->size);
    w.kv("pointerSize", e.file->pointer_size);
    w.end_object();
    if (e.file->kind == FileKind::xet) w.kv("xetHash", e.file->xet_hash);
  }
  w.kv("path", e.path);
  if (expand) {
    write_last_commit(w, e.last_commit);
    w.key("securityFileStatus").begin_object();
    w.kv("status", "safe");
    w.end_object();
  }
  w.end_object();
}

// Strips trailing '/' of a decoded path argument.
std::string normalize_path(std::string p) {
  while (!p.empty() && p.back() == '/') p.pop_back();
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  return p;
}

}  // namespace

Response Server::Core::route_api_repo(Request& req, const Caller& caller, RepoType type,
                                      std::vector<std::string_view>& segs) {
  std::shared_lock lk(state_mu_);
  // Repo id: NS/NAME, or a legacy one-segment alias.
  std::string id;
  const Repo* repo = nullptr;
  size_t consumed = 0;
  if (segs.size() >= 2) {
    id = fmt::format("{}/{}", segs[0], segs[1]);
    repo = find_repo(type, id);
    consumed = 2;
  }
  if (!repo && !segs.empty() && find_repo(type, segs[0])) {
    id = std::string(segs[0]);
    repo = find_repo(type, id);
    consumed = 1;
  }
  auto route_of = [&](std::string_view sub) -> std::string {
    if (sub == "tree") return "tree";
    if (sub == "paths-info") return "paths_info";
    if (sub == "xet-read-token" || sub == "xet-write-token") return "token";
    return "repo_info";
  };
  std::string_view sub = segs.size() > consumed ? segs[consumed] : std::string_view();
  if (!repo && consumed == 0) consumed = std::min<size_t>(segs.size(), 2);
  sub = segs.size() > consumed ? segs[consumed] : std::string_view();
  std::string route = route_of(sub);
  auto finish = [&](Response r) {
    r.route = route;
    return r;
  };
  if (!repo || (repo->flags.is_private && !caller.is_user())) return finish(repo_not_found(caller));
  std::vector<std::string_view> rest(segs.begin() + consumed, segs.end());
  auto q = Query::parse(req.query);
  if (!q.ok()) return finish(error_response(400, "", "Invalid query string"));
  const Query& query = q.value();
  bool get_like = req.method == "GET" || req.method == "HEAD";
  Knobs k = knobs();

  // ---- repo info ----
  if (rest.empty() || rest[0] == "revision") {
    if (!get_like) return finish(error_response(405, "", "Method not allowed"));
    CommitPtr c;
    if (rest.empty()) {
      c = repo->head();
    } else {
      if (rest.size() < 2) return finish(revision_not_found(""));
      auto rev = url_decode(rest[1]);
      if (!rev.ok() || rest.size() > 2) return finish(revision_not_found(rest.size() > 1 ? rest[1] : ""));
      c = repo->resolve(rev.value());
      if (!c) return finish(revision_not_found(rev.value()));
    }
    auto fields = query.all("expand");
    auto want = [&](std::string_view f) {
      return fields.empty() || std::find(fields.begin(), fields.end(), f) != fields.end();
    };
    bool blobs = query.flag("blobs");
    JsonWriter w;
    w.begin_object();
    w.kv("_id", repo->mongo_id);
    w.kv("id", repo->id);
    if (type == RepoType::model && fields.empty()) w.kv("modelId", repo->id);
    if (want("author")) w.kv("author", author_of(repo->id));
    if (want("sha") && c) w.kv("sha", c->info->sha);
    if (want("lastModified")) w.kv("lastModified", format_iso8601(c ? c->info->date_ns : repo->created_ns));
    if (want("createdAt")) w.kv("createdAt", format_iso8601(repo->created_ns));
    if (want("private")) w.kv("private", repo->flags.is_private);
    if (want("disabled")) w.kv("disabled", false);
    if (want("gated")) {
      w.key("gated");
      if (repo->flags.gated) w.value("manual");
      else w.value(false);
    }
    if (want("downloads")) w.kv("downloads", 0);
    if (want("likes")) w.kv("likes", 0);
    if (want("tags")) w.key("tags").begin_array().end_array();
    if (type == RepoType::space && fields.empty()) {
      w.kv("sdk", "static");
      w.kv("subdomain", fmt::format("{}", repo->id));
      w.key("runtime").begin_object().kv("stage", "RUNNING").end_object();
    }
    if (want("siblings") && c) {
      w.key("siblings").begin_array();
      for (const auto& e : c->snap->entries()) {
        if (e.is_dir) continue;
        w.begin_object();
        w.kv("rfilename", e.path);
        if (blobs) {
          w.kv("size", e.file->size);
          w.kv("blobId", e.oid);
          if (e.file->kind != FileKind::git) {
            w.key("lfs").begin_object();
            w.kv("sha256", e.file->sha256);
            w.kv("size", e.file->size);
            w.kv("pointerSize", e.file->pointer_size);
            w.end_object();
          }
        }
        w.end_object();
      }
      w.end_array();
    }
    if (want("usedStorage")) w.kv("usedStorage", c ? c->snap->total_size() : uint64_t{0});
    w.end_object();
    return finish(json_response(w.take()));
  }

  // ---- refs ----
  if (rest[0] == "refs") {
    if (!get_like) return finish(error_response(405, "", "Method not allowed"));
    JsonWriter w;
    w.begin_object();
    w.key("branches").begin_array();
    for (const auto& [name, sha] : repo->branches)
      w.begin_object().kv("name", name).kv("ref", "refs/heads/" + name).kv("targetCommit", sha).end_object();
    w.end_array();
    w.key("converts").begin_array().end_array();
    w.key("tags").begin_array();
    for (const auto& [name, sha] : repo->tags)
      w.begin_object().kv("name", name).kv("ref", "refs/tags/" + name).kv("targetCommit", sha).end_object();
    w.end_array();
    if (query.flag("include_prs")) {
      w.key("pullRequests").begin_array();
      for (size_t i = 0; i < repo->prs.size(); ++i) {
        std::string ref = fmt::format("refs/pr/{}", i + 1);
        w.begin_object().kv("name", ref).kv("ref", ref).kv("targetCommit", repo->prs[i]).end_object();
      }
      w.end_array();
    }
    w.end_object();
    return finish(json_response(w.take()));
  }

  // ---- xet tokens ----
  if (rest[0] == "xet-read-token" || rest[0] == "xet-write-token") {
    if (!get_like) return finish(error_response(405, "", "Method not allowed"));
    bool write = rest[0] == "xet-write-token";
    if (!write && repo->flags.gated)
      return finish(error_response(
          caller.is_user() ? 403 : 401, "GatedRepo",
          fmt::format("Access to {} {} is restricted and you are not in the authorized list. Visit {}/{} to ask for access.",
                      repo_type_name(type), repo->id, base_url(), repo->id)));
    if (write && !caller.is_user() && !user_tokens_.empty())
      return finish(error_response(401, "", "Invalid username or password."));
    std::string rev = "main";
    if (rest.size() >= 2) {
      auto d = url_decode(rest[1]);
      if (!d.ok() || rest.size() > 2) return finish(revision_not_found(rest[1]));
      rev = d.value();
    }
    // xet-core asks for write tokens of not-yet-existing refs ("None" + create_pr=1).
    if (!(write && (rev == "None" || query.flag("create_pr"))) && !repo->resolve(rev))
      return finish(revision_not_found(rev));
    Response r;
    std::string body = token_response_json(write ? TokenScope::write : TokenScope::read, r);
    r.set_body(std::move(body), "application/json; charset=utf-8");
    return finish(std::move(r));
  }

  // ---- tree ----
  if (rest[0] == "tree") {
    if (!get_like) return finish(error_response(405, "", "Method not allowed"));
    if (rest.size() < 2) return finish(revision_not_found(""));
    auto rev = url_decode(rest[1]);
    if (!rev.ok()) return finish(revision_not_found(rest[1]));
    CommitPtr c = repo->resolve(rev.value());
    if (!c) return finish(revision_not_found(rev.value()));
    auto dp = decode_path_tail(rest, 2);
    if (!dp.ok()) return finish(error_response(400, "", "Invalid path encoding"));
    std::string dir = normalize_path(std::move(dp).value());
    const Snapshot& snap = *c->snap;
    if (!dir.empty()) {
      const TreeEntry* e = snap.find(dir);
      if (!e) return finish(error_response(404, "EntryNotFound", fmt::format("{} does not exist on \"{}\"", dir, rev.value())));
      if (!e->is_dir) return finish(error_response(404, "EntryNotFound", fmt::format("{} is not a directory", dir)));
    }
    bool expand = query.flag("expand");
    bool recursive = query.flag("recursive");
    uint64_t cap = expand ? 100 : 1000;
    uint64_t limit = cap;
    if (auto l = query.get("limit")) {
      auto v = parse_u64(*l);
      if (!v) return finish(error_response(400, "", "Invalid limit"));
      if (*v > 0) limit = std::min(*v, cap);
    }
    if (k.page_size > 0) limit = std::min<uint64_t>(limit, k.page_size);
    std::string after;
    if (auto cur = query.get("cursor")) {
      auto d = base64url_decode(*cur);
      if (!d) return finish(error_response(400, "", "Invalid cursor"));
      after = std::move(*d);
    }
    // Candidate indices in path order.
    const auto& entries = snap.entries();
    std::vector<uint32_t> page;
    bool more = false;
    auto cmp_path = [&](uint32_t i, const std::string& p) { return entries[i].path < p; };
    if (recursive) {
      auto [b, e] = snap.subtree(dir);
      size_t i = b;
      if (!after.empty()) {
        auto it = std::upper_bound(entries.begin() + b, entries.begin() + e, after,
                                   [](const std::string& p, const TreeEntry& x) { return p < x.path; });
        i = it - entries.begin();
      }
      for (; i < e; ++i) {
        if (page.size() == limit) {
          more = true;
          break;
        }
        page.push_back(static_cast<uint32_t>(i));
      }
    } else {
      const auto* kids = snap.children(dir);
      if (kids) {
        auto it = kids->begin();
        if (!after.empty()) {
          it = std::lower_bound(kids->begin(), kids->end(), after, cmp_path);
          while (it != kids->end() && entries[*it].path == after) ++it;
        }
        for (; it != kids->end(); ++it) {
          if (page.size() == limit) {
            more = true;
            break;
          }
          page.push_back(*it);
        }
      }
    }
    JsonWriter w;
    w.begin_array();
    for (uint32_t i : page) write_tree_entry(w, entries[i], expand);
    w.end_array();
    Response r = json_response(w.take());
    if (more && !page.empty()) {
      std::string qs = query_without(req.query, "cursor");
      std::string cursor = url_encode_component(base64url_encode(entries[page.back()].path));
      r.set_header("Link", fmt::format("<{}{}?{}{}cursor={}>; rel=\"next\"", base_url(), req.path, qs,
                                       qs.empty() ? "" : "&", cursor));
    }
    return finish(std::move(r));
  }

  // ---- paths-info ----
  if (rest[0] == "paths-info") {
    if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
    if (rest.size() < 2) return finish(revision_not_found(""));
    auto rev = url_decode(rest[1]);
    if (!rev.ok()) return finish(revision_not_found(rest[1]));
    CommitPtr c = repo->resolve(rev.value());
    if (!c) return finish(revision_not_found(rev.value()));
    std::vector<std::string> paths;
    bool expand = false;
    std::string_view ct = req.header("content-type");
    std::string_view body = trim(req.body);
    if (ct.find("json") != std::string_view::npos || (!body.empty() && body.front() == '{')) {
      simdjson::dom::parser parser;
      auto doc = parse_json(parser, req.body);
      if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
      simdjson::dom::element pv;
      if (doc.value()["paths"].get(pv)) return finish(error_response(400, "", "\"paths\" is required"));
      if (auto s = json_string_value(pv)) {
        paths.emplace_back(*s);
      } else {
        simdjson::dom::array arr;
        if (pv.get_array().get(arr)) return finish(error_response(400, "", "\"paths\" must be a string or an array"));
        for (auto el : arr) {
          auto s = json_string_value(el);
          if (!s) return finish(error_response(400, "", "\"paths\" must contain strings"));
          paths.emplace_back(*s);
        }
      }
      simdjson::dom::element ev;
      if (!doc.value()["expand"].get(ev)) expand = json_bool_value(ev).value_or(false);
    } else {
      auto form = Query::parse(req.body);
      if (!form.ok()) return finish(error_response(400, "", "Invalid form body"));
      for (auto p : form->all("paths")) paths.emplace_back(p);
      expand = form->flag("expand");
    }
    if (paths.size() > 100000) return finish(error_response(400, "", "Too many paths"));
    JsonWriter w;
    w.begin_array();
    std::set<std::string> seen;
    for (auto& p : paths) {
      std::string n = normalize_path(std::move(p));
      if (n.empty() || !seen.insert(n).second) continue;
      if (const TreeEntry* e = c->snap->find(n)) write_tree_entry(w, *e, expand);
    }
    w.end_array();
    return finish(json_response(w.take()));
  }

  return finish(error_response(404, "", "Sorry, we can't find the page you are looking for."));
}

Response Server::Core::route_resolve(Request& req, const Caller& caller, RepoType type, std::string_view repo_id,
                                     std::vector<std::string_view>& tail) {
  auto finish = [](Response r) {
    r.route = "resolve";
    return r;
  };
  if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
  std::shared_lock lk(state_mu_);
  const Repo* repo = find_repo(type, repo_id);
  if (!repo || (repo->flags.is_private && !caller.is_user())) return finish(repo_not_found(caller));
  if (repo->flags.gated)
    return finish(error_response(
        caller.is_user() ? 403 : 401, "GatedRepo",
        fmt::format("Access to {} {} is restricted and you are not in the authorized list. Visit {}/{} to ask for access.",
                    repo_type_name(type), repo->id, base_url(), repo->id)));
  if (tail.empty()) return finish(revision_not_found(""));
  auto rev = url_decode(tail[0]);
  if (!rev.ok()) return finish(revision_not_found(tail[0]));
  CommitPtr c = repo->resolve(rev.value());
  if (!c) return finish(revision_not_found(rev.value()));
  auto dp = decode_path_tail(tail, 1);
  if (!dp.ok()) return finish(error_response(400, "", "Invalid path encoding"));
  std::string path = std::move(dp).value();
  const TreeEntry* e = path.empty() ? nullptr : c->snap->find(path);
  if (!e || e->is_dir) {
    Response r = error_response(404, "EntryNotFound", "Entry not found");
    r.set_header("X-Repo-Commit", c->info->sha);
    return finish(std::move(r));
  }
  const FileNode& f = *e->file;
  std::string base = base_url();
  std::string type_prefix = type == RepoType::model ? "" : std::string(repo_type_plural(type)) + "/";
  Response r;
  r.set_header("X-Repo-Commit", c->info->sha);
  r.set_header("Accept-Ranges", "bytes");
  r.set_header("Vary", "Origin, Accept");
  r.set_header("Access-Control-Expose-Headers", std::string(kExposeHeaders));
  r.set_header("Last-Modified", format_http_date(e->last_commit->date_ns / 1000000000));
  if (!caller.is_user()) r.set_header("X-HF-Warning", "unauthenticated; Authenticate to get higher rate limits");

  if (f.kind == FileKind::git) {
    Knobs k = knobs();
    if (k.resolve_307) {
      std::string enc_path = url_encode_path(path);
      std::string loc = fmt::format("/api/resolve-cache/{}/{}/{}/{}?{}=&etag=%22{}%22", repo_type_plural(type), repo->id,
                                    c->info->sha, enc_path,
                                    url_encode_component(fmt::format("/{}{}/resolve/{}/{}", type_prefix, repo->id,
                                                                     rev.value(), path)),
                                    f.git_oid);
      r.status = 307;
      r.set_header("Location", loc);
      r.set_body(fmt::format("Temporary Redirect. Redirecting to {}", loc), "text/plain; charset=utf-8");
      return finish(std::move(r));
    }
    Response b = bytes_response(req, f.content, f.git_oid, "text/plain; charset=utf-8");
    for (auto& [hk, hv] : r.headers)
      if (hk != "Accept-Ranges") b.set_header(hk, hv);
    b.is_data = true;
    return finish(std::move(b));
  }
  r.set_header("X-Linked-Size", std::to_string(f.size));
  r.set_header("X-Linked-ETag", fmt::format("\"{}\"", f.sha256));
  r.set_header("ETag", fmt::format("\"{}\"", f.sha256));
  if (f.kind == FileKind::lfs) {
    r.status = 302;
    r.set_header("Location", fmt::format("{}/_cdn/lfs/{}", base, f.sha256));
    r.set_header("Content-Type", "text/plain; charset=utf-8");
    return finish(std::move(r));
  }
  // Xet-backed.
  std::string cas = cas_url();
  r.set_header("X-Xet-Hash", f.xet_hash);
  r.set_header("Link", fmt::format("<{}/api/{}/{}/xet-read-token/{}>; rel=\"xet-auth\", <{}/v1/reconstructions/{}>; "
                                   "rel=\"xet-reconstruction-info\"",
                                   base, repo_type_plural(type), repo->id, c->info->sha, cas, f.xet_hash));
  if (req.header("accept").find("application/vnd.xet-fileinfo+json") != std::string_view::npos) {
    JsonWriter w;
    w.begin_object();
    w.kv("casUrl", cas);
    w.kv("hash", f.xet_hash);
    w.kv("refreshUrl", fmt::format("{}/api/{}/{}/xet-read-token/{}", base, repo_type_plural(type), repo->id, c->info->sha));
    w.kv("size", f.size);
    w.kv("etag", f.sha256);
    w.end_object();
    r.status = 200;
    r.set_body(w.take(), "application/vnd.xet-fileinfo+json");
    return finish(std::move(r));
  }
  r.status = 302;
  r.set_header("Location", fmt::format("{}/_cdn/xet/{}", base, f.xet_hash));
  r.set_header("Content-Type", "text/plain; charset=utf-8");
  return finish(std::move(r));
}

Response Server::Core::route_resolve_cache(Request& req, const Caller& caller, std::vector<std::string_view>& segs) {
  auto finish = [](Response r) {
    r.route = "resolve";
    return r;
  };
  if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
  // {type}s/{ns}/{name}/{sha}/{path...}
  if (segs.size() < 5) return finish(error_response(404, "EntryNotFound", "Entry not found"));
  auto type = parse_repo_type(segs[0]);
  if (!type.ok()) return finish(error_response(404, "", "Sorry, we can't find the page you are looking for."));
  std::string id = fmt::format("{}/{}", segs[1], segs[2]);
  std::shared_lock lk(state_mu_);
  const Repo* repo = find_repo(type.value(), id);
  if (!repo || (repo->flags.is_private && !caller.is_user())) return finish(repo_not_found(caller));
  if (repo->flags.gated)
    return finish(error_response(caller.is_user() ? 403 : 401, "GatedRepo",
                                 fmt::format("Access to {} is restricted.", repo->id)));
  auto rev = url_decode(segs[3]);
  CommitPtr c = rev.ok() ? repo->resolve(rev.value()) : nullptr;
  if (!c) return finish(revision_not_found(segs[3]));
  auto dp = decode_path_tail(segs, 4);
  if (!dp.ok()) return finish(error_response(400, "", "Invalid path encoding"));
  const TreeEntry* e = c->snap->find(dp.value());
  if (!e || e->is_dir || !e->file->content) {
    Response r = error_response(404, "EntryNotFound", "Entry not found");
    r.set_header("X-Repo-Commit", c->info->sha);
    return finish(std::move(r));
  }
  std::string etag = e->file->kind == FileKind::git ? e->file->git_oid : e->file->sha256;
  Response r = bytes_response(req, e->file->content, etag,
                              e->file->kind == FileKind::git ? "text/plain; charset=utf-8" : "application/octet-stream");
  r.set_header("X-Repo-Commit", c->info->sha);
  r.set_header("Last-Modified", format_http_date(e->last_commit->date_ns / 1000000000));
  r.set_header("Access-Control-Expose-Headers", std::string(kExposeHeaders));
  r.is_data = true;
  return finish(std::move(r));
}

Response Server::Core::route_bridge(Request& req, std::vector<std::string_view>& segs) {
  auto finish = [](Response r) {
    r.route = "resolve";
    r.is_data = true;
    return r;
  };
  if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
  // /_cdn/xet/{file hash} | /_cdn/lfs/{sha256}
  if (segs.size() != 3) return finish(error_response(404, "", "Not found"));
  if (segs[1] == "xet") {
    auto h = xet::Hash::from_hex(segs[2]);
    if (!h.ok()) return finish(error_response(404, "", "Not found"));
    FilePtr f = cas_.file(h.value());
    if (!f) return finish(error_response(404, "", "Not found"));
    SourcePtr src = cas_.file_source(f);
    if (!src) return finish(error_response(404, "", "Not found"));
    std::string etag = f->sha256 ? hex_encode(f->sha256->data(), 32) : f->hash.hex();
    return finish(bytes_response(req, std::move(src), etag, "application/octet-stream"));
  }
  if (segs[1] == "lfs") {
    SourcePtr src;
    {
      std::shared_lock lk(state_mu_);
      auto it = lfs_objects_.find(segs[2]);
      if (it != lfs_objects_.end()) src = it->second;
    }
    if (!src) return finish(error_response(404, "", "Not found"));
    return finish(bytes_response(req, std::move(src), segs[2], "application/octet-stream"));
  }
  return finish(error_response(404, "", "Not found"));
}

}  // namespace hf::hubsim
