// Control routes under /_sim (no authentication; test-only):
//   GET|POST /_sim/config            knobs (JSON object, see knobs.h)
//   GET|POST|DELETE /_sim/faults     fault rules (JSON array, see knobs.h)
//   GET /_sim/stats, POST /_sim/stats/reset
//   POST /_sim/repos/{type}/{ns}/{name}          create {"private","gated","legacy_lfs","files":[...]}
//   POST /_sim/repos/{type}/{ns}/{name}/commit   {"branch","message","parent","files":[...],"delete":[...]}
//   POST /_sim/repos/{type}/{ns}/{name}/tag      {"tag","revision"}
//   POST /_sim/repos/{type}/{ns}/{name}/pr       {"revision"} -> {"num","ref","sha"}
//   POST /_sim/repos/{type}/{ns}/{name}/flags    {"private","gated"}
//   POST /_sim/buckets/{ns}/{name}               create {"private"}
//   PUT|DELETE /_sim/buckets/{ns}/{name}/files/{path...}   body = file bytes (server-side upload)
// A file entry: {"path", and one of "content" (base64), "text" (UTF-8) or "synthetic" (spec)}.
#include <fmt/format.h>

#include "base/json_writer.h"
#include "base/text.h"
#include "test/hubsim/core.h"
#include "test/hubsim/json_util.h"
#include "test/hubsim/route_util.h"

namespace hf::hubsim {

namespace {

Response status_error(const Error& e) {
  int status = 400;
  switch (e.code) {
    case Errc::repo_not_found:
    case Errc::revision_not_found:
    case Errc::entry_not_found:
    case Errc::not_found: status = 404; break;
    case Errc::exists: status = 409; break;
    default: break;
  }
  return error_response(status, "", e.message);
}

Result<std::vector<FileSpec>> parse_file_list(simdjson::dom::element doc) {
  std::vector<FileSpec> out;
  simdjson::dom::array arr;
  if (doc["files"].get_array().get(arr)) return out;
  for (auto el : arr) {
    FileSpec f;
    std::string_view s;
    if (el["path"].get_string().get(s)) return make_error(Errc::invalid_argument, "file entries need a \"path\"");
    f.path = std::string(s);
    if (!el["content"].get_string().get(s)) {
      auto d = base64_decode(s);
      if (!d) return make_error(Errc::invalid_argument, "bad base64 content for " + f.path);
      f.bytes = std::move(*d);
    } else if (!el["text"].get_string().get(s)) {
      f.bytes = std::string(s);
    } else if (!el["synthetic"].get_string().get(s)) {
      f.synthetic = std::string(s);
    } else {
      return make_error(Errc::invalid_argument, "file " + f.path + " needs content, text or synthetic");
    }
    out.push_back(std::move(f));
  }
  return out;
}

bool json_flag(simdjson::dom::element doc, const char* key, bool dflt) {
  bool b;
  if (!doc[key].get_bool().get(b)) return b;
  return dflt;
}

std::string json_str(simdjson::dom::element doc, const char* key) {
  std::string_view s;
  if (!doc[key].get_string().get(s)) return std::string(s);
  return {};
}

}  // namespace

Response Server::Core::route_sim(Request& req, std::vector<std::string_view>& segs) {
  auto finish = [](Response r) {
    r.route = "sim";
    return r;
  };
  std::string_view s1 = segs.size() > 1 ? segs[1] : "";
  simdjson::dom::parser parser;
  auto body_doc = [&]() -> Result<simdjson::dom::element> {
    std::string_view b = trim(req.body);
    return parse_json(parser, b.empty() ? std::string_view("{}") : std::string_view(req.body));
  };

  if (s1 == "config" && segs.size() == 2) {
    if (req.method == "POST" || req.method == "PUT") {
      auto k = parse_knobs_json(req.body, knobs());
      if (!k.ok()) return finish(error_response(400, "", k.error().message));
      set_knobs(k.value());
    }
    return finish(json_response(knobs_to_json(knobs())));
  }
  if (s1 == "faults" && segs.size() == 2) {
    if (req.method == "DELETE") {
      faults_.clear();
    } else if (req.method == "POST" || req.method == "PUT") {
      auto rules = parse_faults_json(req.body);
      if (!rules.ok()) return finish(error_response(400, "", rules.error().message));
      faults_.set(std::move(rules).value());
    }
    return finish(json_response(faults_.to_json()));
  }
  if (s1 == "stats") {
    if (segs.size() == 3 && segs[2] == "reset" && req.method == "POST") {
      stats_.reset();
      return finish(json_response("{}"));
    }
    return finish(json_response(stats_.to_json()));
  }

  if (s1 == "repos" && segs.size() >= 5) {
    auto type = parse_repo_type(segs[2]);
    if (!type.ok()) return finish(error_response(400, "", type.error().message));
    std::string id = fmt::format("{}/{}", segs[3], segs[4]);
    std::string_view action = segs.size() > 5 ? segs[5] : "";
    if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
    auto doc = body_doc();
    if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
    auto d = doc.value();
    if (action.empty()) {
      RepoFlags flags;
      flags.is_private = json_flag(d, "private", false);
      flags.gated = json_flag(d, "gated", false);
      flags.legacy_lfs = json_flag(d, "legacy_lfs", false);
      auto files = parse_file_list(d);
      if (!files.ok()) return finish(error_response(400, "", files.error().message));
      if (auto st = add_repo(type.value(), id, std::move(files).value(), flags); !st.ok())
        return finish(status_error(st.error()));
      auto sha = resolve_revision(type.value(), id, "main");
      return finish(json_response(fmt::format("{{\"id\":\"{}\",\"sha\":\"{}\"}}", id, sha.ok() ? sha.value() : "")));
    }
    if (action == "commit") {
      CommitRequest cr;
      if (auto b = json_str(d, "branch"); !b.empty()) cr.branch = b;
      cr.message = json_str(d, "message");
      cr.parent_revision = json_str(d, "parent");
      auto files = parse_file_list(d);
      if (!files.ok()) return finish(error_response(400, "", files.error().message));
      cr.add = std::move(files).value();
      simdjson::dom::array del;
      if (!d["delete"].get_array().get(del)) {
        for (auto el : del) {
          auto s = json_string_value(el);
          if (!s) return finish(error_response(400, "", "\"delete\" must contain strings"));
          cr.remove.emplace_back(*s);
        }
      }
      auto sha = commit(type.value(), id, cr);
      if (!sha.ok()) return finish(status_error(sha.error()));
      JsonWriter w;
      w.begin_object().kv("sha", sha.value()).kv("commitOid", sha.value()).kv("branch", cr.branch).end_object();
      return finish(json_response(w.take()));
    }
    if (action == "tag") {
      auto st = create_tag(type.value(), id, json_str(d, "tag"), json_str(d, "revision"));
      if (!st.ok()) return finish(status_error(st.error()));
      return finish(json_response("{}"));
    }
    if (action == "pr") {
      auto n = create_pr(type.value(), id, json_str(d, "revision"));
      if (!n.ok()) return finish(status_error(n.error()));
      auto sha = resolve_revision(type.value(), id, fmt::format("refs/pr/{}", n.value()));
      JsonWriter w;
      w.begin_object()
          .kv("num", n.value())
          .kv("ref", fmt::format("refs/pr/{}", n.value()))
          .kv("sha", sha.ok() ? sha.value() : "")
          .end_object();
      return finish(json_response(w.take()));
    }
    if (action == "flags") {
      RepoFlags flags;
      flags.is_private = json_flag(d, "private", false);
      flags.gated = json_flag(d, "gated", false);
      auto st = set_repo_flags(type.value(), id, flags);
      if (!st.ok()) return finish(status_error(st.error()));
      return finish(json_response("{}"));
    }
    return finish(error_response(404, "", "Unknown control route"));
  }

  if (s1 == "buckets" && segs.size() >= 4) {
    std::string id = fmt::format("{}/{}", segs[2], segs[3]);
    if (segs.size() == 4) {
      if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
      auto doc = body_doc();
      if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
      if (auto st = add_bucket(id, "", json_flag(doc.value(), "private", false)); !st.ok())
        return finish(status_error(st.error()));
      return finish(json_response("{}"));
    }
    if (segs[4] == "files" && segs.size() >= 6) {
      auto path = decode_path_tail(segs, 5);
      if (!path.ok()) return finish(error_response(400, "", "Invalid path encoding"));
      if (req.method == "PUT" || req.method == "POST") {
        int64_t mtime = -1;
        auto q = Query::parse(req.query);
        if (q.ok()) {
          if (auto m = q->get("mtime")) mtime = parse_i64(*m).value_or(-1);
        }
        auto st = bucket_put(id, path.value(), std::move(req.body), mtime);
        if (!st.ok()) return finish(status_error(st.error()));
        return finish(json_response("{}"));
      }
      if (req.method == "DELETE") {
        auto st = bucket_delete(id, path.value());
        if (!st.ok()) return finish(status_error(st.error()));
        return finish(json_response("{}"));
      }
      return finish(error_response(405, "", "Method not allowed"));
    }
  }
  return finish(error_response(404, "", "Unknown control route"));
}

}  // namespace hf::hubsim
