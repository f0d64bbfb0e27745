#include "test/hubsim/core.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/text.h"
#include "test/hubsim/json_util.h"
#include "test/hubsim/route_util.h"
#include "test/hubsim/synthetic.h"

namespace hf::hubsim {

namespace fs = std::filesystem;

std::string_view repo_type_name(RepoType t) {
  switch (t) {
    case RepoType::model: return "model";
    case RepoType::dataset: return "dataset";
    case RepoType::space: return "space";
  }
  return "model";
}

std::string_view repo_type_plural(RepoType t) {
  switch (t) {
    case RepoType::model: return "models";
    case RepoType::dataset: return "datasets";
    case RepoType::space: return "spaces";
  }
  return "models";
}

Result<RepoType> parse_repo_type(std::string_view s) {
  if (s == "model" || s == "models") return RepoType::model;
  if (s == "dataset" || s == "datasets") return RepoType::dataset;
  if (s == "space" || s == "spaces") return RepoType::space;
  return make_error(Errc::invalid_argument, fmt::format("unknown repo type '{}' (model, dataset, space)", s));
}

static Status validate_repo_id(std::string_view id) {
  auto parts = split(id, '/');
  if (parts.size() != 2) return make_error(Errc::invalid_argument, fmt::format("repo id '{}' must be NS/NAME", id));
  for (auto p : parts) {
    if (p.empty() || p.size() > 96 || p == "." || p == "..")
      return make_error(Errc::invalid_argument, fmt::format("bad repo id '{}'", id));
    for (char c : p) {
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      if (!ok) return make_error(Errc::invalid_argument, fmt::format("bad character in repo id '{}'", id));
    }
  }
  return {};
}

Server::Core::Core(Options opts) : opts_(std::move(opts)) {
  knobs_ = opts_.knobs;
  global_bw_.set_rate(knobs_.bandwidth);
  for (const auto& t : opts_.tokens) {
    size_t c = t.find(':');
    if (c == std::string::npos) user_tokens_.emplace_back(t, "hubsim-user");
    else user_tokens_.emplace_back(t.substr(c + 1), t.substr(0, c));
  }
}

Status Server::Core::init() {
  if (opts_.data_dir.empty()) return {};
  std::error_code ec;
  fs::create_directories(opts_.data_dir, ec);
  if (ec) return make_error(Errc::io, "cannot create --data-dir " + opts_.data_dir + ": " + ec.message());
  // The signing secret persists so that tokens and presigned URLs survive a restart.
  fs::path sp = fs::path(opts_.data_dir) / "secret";
  {
    std::ifstream f(sp, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (s.size() >= 32) {
      signer_.set_secret(s);
    } else {
      std::ofstream o(sp, std::ios::binary | std::ios::trunc);
      o << signer_.secret();
      if (!o) return make_error(Errc::io, "cannot write " + sp.string());
    }
  }
  cas_.set_persist_dir((fs::path(opts_.data_dir) / "cas").string());
  HF_TRY(cas_.load());
  return load_buckets();
}

void Server::Core::set_base_url(std::string url) {
  std::lock_guard lk(url_mu_);
  base_url_ = std::move(url);
}

std::string Server::Core::base_url() const {
  std::lock_guard lk(url_mu_);
  return base_url_;
}

Knobs Server::Core::knobs() const {
  std::lock_guard lk(knobs_mu_);
  return knobs_;
}

void Server::Core::set_knobs(const Knobs& k) {
  std::lock_guard lk(knobs_mu_);
  if (k.bandwidth != knobs_.bandwidth) global_bw_.set_rate(k.bandwidth);
  knobs_ = k;
}

Caller Server::Core::identify(const Request& req) const {
  Caller c;
  auto auth = trim(req.header("authorization"));
  if (auth.empty()) return c;
  if (auth.size() < 7 || !iequals(auth.substr(0, 7), "bearer ")) {
    c.kind = Caller::invalid;
    return c;
  }
  auto tok = trim(auth.substr(7));
  if (tok.empty()) {
    c.kind = Caller::invalid;
    return c;
  }
  if (user_tokens_.empty()) {
    c.kind = Caller::user;
    c.name = "hubsim";
    return c;
  }
  for (const auto& [t, u] : user_tokens_) {
    if (t == tok) {
      c.kind = Caller::user;
      c.name = u;
      return c;
    }
  }
  c.kind = Caller::invalid;
  return c;
}

std::string Server::Core::repo_key(RepoType type, std::string_view id) {
  return fmt::format("{}/{}", repo_type_name(type), id);
}

const Repo* Server::Core::find_repo(RepoType type, std::string_view id) const {
  auto it = repos_.find(repo_key(type, id));
  if (it != repos_.end()) return &it->second;
  auto a = aliases_.find(repo_key(type, id));
  if (a == aliases_.end()) return nullptr;
  it = repos_.find(repo_key(type, a->second));
  return it == repos_.end() ? nullptr : &it->second;
}

Repo* Server::Core::find_repo_mut(RepoType type, std::string_view id) {
  return const_cast<Repo*>(static_cast<const Core*>(this)->find_repo(type, id));
}

// ---------------------------------------------------------------------------------------------
// Dispatch

void Server::Core::set_interceptor(Server::Interceptor f) {
  std::shared_ptr<const Server::Interceptor> p;
  if (f) p = std::make_shared<const Server::Interceptor>(std::move(f));
  std::lock_guard lk(knobs_mu_);
  interceptor_ = std::move(p);
}

Response Server::Core::handle(Request& req) {
  Response r = handle_routes(req);
  if (opts_.gc_grace_s > 0 && req.method != "GET" && req.method != "HEAD") maybe_collect_garbage();
  std::shared_ptr<const Server::Interceptor> f;
  {
    std::lock_guard lk(knobs_mu_);
    f = interceptor_;
  }
  if (f) {
    try {
      (*f)(req, r);
    } catch (...) {
      r = error_response(500, "", "interceptor threw");
    }
  }
  return r;
}

Response Server::Core::handle_routes(Request& req) {
  try {
    std::string_view path = req.path;
    if (path.empty() || path.front() != '/') return error_response(400, "", "Bad request target");
    std::vector<std::string_view> segs = split(path.substr(1), '/');
    if (!segs.empty() && segs.back().empty() && segs.size() > 1) segs.pop_back();  // trailing '/'
    std::string_view s0 = segs.empty() ? std::string_view() : segs[0];

    if (s0 == "cas") {
      segs.erase(segs.begin());
      Response r = route_cas(req, segs);
      return r;
    }
    if (s0 == "_xorb") return route_presigned(req, segs);
    if (s0 == "_cdn") return route_bridge(req, segs);
    if (s0 == "_sim") return route_sim(req, segs);
    if (s0 == "health" || s0.empty()) {
      Response r = json_response("{\"status\":\"ok\",\"server\":\"hf-mount-hubsim\"}");
      r.route = "other";
      return r;
    }

    // Everything else is the Hub: check the user token first.
    Caller caller = identify(req);
    auto deny = [&]() -> std::optional<Response> {
      if (caller.kind == Caller::invalid) {
        Response r = error_response(401, "", "Invalid credentials in Authorization header");
        return r;
      }
      if (opts_.require_token && caller.kind == Caller::anonymous) {
        Response r = error_response(401, "", "Invalid username or password.");
        return r;
      }
      return std::nullopt;
    };
    if (auto d = deny()) {
      d->route = s0 == "api" && segs.size() > 1 && segs[1] == "buckets" ? "bucket" : "other";
      return std::move(*d);
    }

    if (s0 == "api") {
      std::string_view s1 = segs.size() > 1 ? segs[1] : std::string_view();
      if (s1 == "models" || s1 == "datasets" || s1 == "spaces") {
        RepoType t = parse_repo_type(s1).value();
        std::vector<std::string_view> rest(segs.begin() + 2, segs.end());
        return route_api_repo(req, caller, t, rest);
      }
      if (s1 == "buckets") {
        std::vector<std::string_view> rest(segs.begin() + 2, segs.end());
        return route_api_bucket(req, caller, rest);
      }
      if (s1 == "whoami-v2" || s1 == "whoami") return whoami(caller);
      if (s1 == "resolve-cache") {
        std::vector<std::string_view> rest(segs.begin() + 2, segs.end());
        return route_resolve_cache(req, caller, rest);
      }
      Response r = error_response(404, "", "Sorry, we can't find the page you are looking for.");
      return r;
    }
    if (s0 == "buckets") {
      std::vector<std::string_view> rest(segs.begin() + 1, segs.end());
      return route_bucket_resolve(req, caller, rest);
    }
    // Resolve: /{ns}/{name}/resolve/..., /datasets/..., /spaces/..., legacy /{name}/resolve/...
    RepoType type = RepoType::model;
    size_t base = 0;
    if (s0 == "datasets" || s0 == "spaces") {
      type = parse_repo_type(s0).value();
      base = 1;
    }
    if (segs.size() >= base + 3 && segs[base + 2] == "resolve") {
      std::string id = fmt::format("{}/{}", segs[base], segs[base + 1]);
      std::vector<std::string_view> tail(segs.begin() + base + 3, segs.end());
      return route_resolve(req, caller, type, id, tail);
    }
    if (segs.size() >= base + 2 && segs[base + 1] == "resolve") {
      std::vector<std::string_view> tail(segs.begin() + base + 2, segs.end());
      return route_resolve(req, caller, type, segs[base], tail);
    }
    return error_response(404, "", "Sorry, we can't find the page you are looking for.");
  } catch (const std::exception& e) {
    HF_LOG_ERROR("hubsim", "handler exception: {}", e.what());
    return error_response(500, "", "Internal Error");
  }
}

Response Server::Core::whoami(const Caller& caller) {
  if (!caller.is_user()) {
    Response r = error_response(401, "", "Invalid username or password.");
    r.route = "other";
    return r;
  }
  JsonWriter w;
  w.begin_object();
  w.kv("type", "user");
  w.kv("id", sha1_hex(caller.name).substr(0, 24));
  w.kv("name", caller.name);
  w.kv("fullname", caller.name);
  w.kv("email", caller.name + "@hubsim.local");
  w.kv("emailVerified", true);
  w.kv("isPro", false);
  w.key("orgs").begin_array().end_array();
  w.key("auth").begin_object();
  w.kv("type", "access_token");
  w.key("accessToken").begin_object();
  w.kv("displayName", "hubsim");
  w.kv("role", "write");
  w.end_object();
  w.end_object();
  w.end_object();
  Response r = json_response(w.take());
  r.route = "other";
  return r;
}

std::string Server::Core::token_response_json(TokenScope scope, Response& resp) {
  Knobs k = knobs();
  int64_t exp = now_unix_s() + k.token_ttl_s;
  std::string token = signer_.make_token(scope, exp);
  std::string cas = cas_url();
  resp.set_header("X-Xet-Cas-Url", cas);
  resp.set_header("X-Xet-Access-Token", token);
  resp.set_header("X-Xet-Token-Expiration", std::to_string(exp));
  JsonWriter w;
  w.begin_object();
  w.kv("accessToken", token);
  w.kv("exp", exp);
  w.kv("casUrl", cas);
  w.end_object();
  return w.take();
}

// ---------------------------------------------------------------------------------------------
// Seeding

static bool looks_binary(std::string_view bytes) {
  return bytes.substr(0, 8000).find('\0') != std::string_view::npos;
}

Result<std::map<std::string, FileNodePtr>> Server::Core::build_file_nodes(std::vector<FileSpec>& files,
                                                                          bool legacy_lfs) {
  Packer packer(cas_, opts_.xorb_target_bytes);
  SyntheticPacker spacker(cas_, opts_.xorb_target_bytes);
  std::map<std::string, FileNodePtr> out;
  std::vector<std::pair<std::string, SourcePtr>> lfs;
  for (auto& f : files) {
    HF_TRY(validate_repo_path(f.path));
    auto node = std::make_shared<FileNode>();
    if (!f.synthetic.empty()) {
      HF_ASSIGN_OR_RETURN(auto sf, parse_synthetic_file(f.path, f.synthetic));
      HF_ASSIGN_OR_RETURN(auto packed, spacker.add(sf));
      node->size = packed.size;
      node->sha256 = packed.sha256_hex;
      node->content = packed.content;
      node->kind = legacy_lfs ? FileKind::lfs : FileKind::xet;
      if (!legacy_lfs) node->xet_hash = packed.file_hash.hex();
    } else if (f.bytes.size() < opts_.git_max_size && !looks_binary(f.bytes)) {
      node->kind = FileKind::git;
      node->size = f.bytes.size();
      node->git_oid = git_blob_oid(f.bytes);
      node->content = make_memory_source(std::move(f.bytes));
    } else if (legacy_lfs) {
      node->kind = FileKind::lfs;
      node->size = f.bytes.size();
      node->sha256 = sha256_hex(f.bytes);
      node->content = make_memory_source(std::move(f.bytes));
    } else {
      HF_ASSIGN_OR_RETURN(auto packed, packer.add({reinterpret_cast<const uint8_t*>(f.bytes.data()), f.bytes.size()}));
      node->kind = FileKind::xet;
      node->size = packed.size;
      node->sha256 = hex_encode(packed.sha256.data(), packed.sha256.size());
      node->xet_hash = packed.file_hash.hex();
      f.bytes.clear();
      f.bytes.shrink_to_fit();
    }
    if (node->kind != FileKind::git) {
      std::string ptr = lfs_pointer(node->sha256, node->size);
      node->git_oid = git_blob_oid(ptr);
      node->pointer_size = static_cast<uint32_t>(ptr.size());
      if (node->kind == FileKind::lfs) lfs.emplace_back(node->sha256, node->content);
    }
    out[f.path] = std::move(node);
  }
  HF_TRY(packer.finish());
  HF_TRY(spacker.finish());
  if (!lfs.empty()) {
    std::unique_lock lk(state_mu_);
    for (auto& [sha, src] : lfs) lfs_objects_[sha] = std::move(src);
  }
  return out;
}

static std::string make_mongo_id(uint64_t n) {
  return fmt::format("{:08x}{:016x}", static_cast<uint32_t>(now_unix_s()), n * 0x9E3779B97F4A7C15ull);
}

Status Server::Core::add_repo(RepoType type, std::string_view id, std::vector<FileSpec> files, RepoFlags flags) {
  HF_TRY(validate_repo_id(id));
  HF_ASSIGN_OR_RETURN(auto nodes, build_file_nodes(files, flags.legacy_lfs));
  int64_t now = now_unix_ns();
  auto commit = make_commit(nodes, nullptr, "Initial commit", now);
  Repo repo;
  repo.type = type;
  repo.id = std::string(id);
  repo.mongo_id = make_mongo_id(id_counter_++);
  repo.flags = flags;
  repo.created_ns = now;
  repo.branches["main"] = commit->info->sha;
  repo.commits[commit->info->sha] = commit;
  std::unique_lock lk(state_mu_);
  auto key = repo_key(type, id);
  if (repos_.count(key)) return make_error(Errc::exists, fmt::format("{} {} already exists", repo_type_name(type), id));
  repos_.emplace(key, std::move(repo));
  return {};
}

Result<std::vector<FileSpec>> read_dir_files(const std::string& dir) {
  std::vector<FileSpec> out;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return make_error(Errc::not_found, "not a directory: " + root.string());
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return make_error(Errc::io, "cannot read " + root.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return make_error(Errc::io, "cannot read " + root.string() + ": " + ec.message());
    const auto& p = it->path();
    if (it->is_directory(ec) && p.filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    std::ifstream f(p, std::ios::binary);
    if (!f) return make_error(Errc::io, "cannot read " + p.string());
    FileSpec spec;
    spec.path = fs::relative(p, root, ec).generic_string();
    spec.bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    out.push_back(std::move(spec));
  }
  std::sort(out.begin(), out.end(), [](const FileSpec& a, const FileSpec& b) { return a.path < b.path; });
  return out;
}

Status Server::Core::add_repo_from_dir(RepoType type, std::string_view id, const std::string& dir, RepoFlags flags) {
  HF_ASSIGN_OR_RETURN(auto files, read_dir_files(dir));
  return add_repo(type, id, std::move(files), flags);
}

Status Server::Core::add_synthetic_repo(RepoType type, std::string_view id, std::string_view spec, RepoFlags flags) {
  HF_ASSIGN_OR_RETURN(auto synth, parse_synthetic_spec(spec));
  std::vector<FileSpec> files;
  files.reserve(synth.size());
  for (auto& s : synth) {
    FileSpec f;
    f.path = s.path;
    f.synthetic = fmt::format("{}:seed={}{}:hash={}", s.size, s.seed, s.safetensors ? ":safetensors" : "",
                              s.real_hash ? "real" : "fast");
    files.push_back(std::move(f));
  }
  return add_repo(type, id, std::move(files), flags);
}

Status Server::Core::add_alias(RepoType type, std::string_view alias, std::string_view canonical) {
  if (alias.empty() || alias.find('/') != std::string_view::npos)
    return make_error(Errc::invalid_argument, "an alias is a one-segment id");
  std::unique_lock lk(state_mu_);
  if (!repos_.count(repo_key(type, canonical)))
    return make_error(Errc::not_found, fmt::format("{} {} does not exist", repo_type_name(type), canonical));
  aliases_[repo_key(type, alias)] = std::string(canonical);
  return {};
}

Status Server::Core::set_repo_flags(RepoType type, std::string_view id, RepoFlags flags) {
  std::unique_lock lk(state_mu_);
  Repo* r = find_repo_mut(type, id);
  if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
  r->flags.is_private = flags.is_private;
  r->flags.gated = flags.gated;
  return {};
}

Result<std::string> Server::Core::commit(RepoType type, std::string_view id, const CommitRequest& req) {
  if (req.branch.empty() || req.branch.find('/') != std::string::npos || req.branch.size() > 200)
    return make_error(Errc::invalid_argument, "bad branch name");
  std::vector<FileSpec> add = req.add;
  bool legacy = false;
  {
    std::shared_lock lk(state_mu_);
    const Repo* r = find_repo(type, id);
    if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
    legacy = r->flags.legacy_lfs;
  }
  // Content is chunked and registered before taking the write lock.
  HF_ASSIGN_OR_RETURN(auto added, build_file_nodes(add, legacy));
  std::unique_lock lk(state_mu_);
  Repo* r = find_repo_mut(type, id);
  if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
  CommitPtr parent;
  if (!req.parent_revision.empty()) {
    parent = r->resolve(req.parent_revision);
    if (!parent) return make_error(Errc::revision_not_found, "unknown parent revision " + req.parent_revision);
  } else {
    parent = r->resolve(req.branch);
    if (!parent) parent = r->head();
  }
  auto files = parent && !req.replace_all ? parent->snap->files() : std::map<std::string, FileNodePtr>{};
  for (const auto& path : req.remove) {
    size_t n = files.erase(path);
    std::string prefix = path + "/";
    for (auto it = files.lower_bound(prefix); it != files.end() && it->first.starts_with(prefix);) {
      it = files.erase(it);
      ++n;
    }
    if (n == 0) return make_error(Errc::entry_not_found, "cannot delete missing path " + path);
  }
  for (auto& [path, node] : added) files[path] = node;
  // A file cannot also be a directory.
  for (const auto& [path, node] : files) {
    auto it = files.lower_bound(path + "/");
    if (it != files.end() && it->first.starts_with(path + "/"))
      return make_error(Errc::invalid_argument, "path is both a file and a directory: " + path);
  }
  int64_t date = std::max(now_unix_ns(), (parent ? parent->info->date_ns : 0) + 1000000);
  auto c = make_commit(files, parent, req.message.empty() ? "Update files" : req.message, date);
  r->commits[c->info->sha] = c;
  r->branches[req.branch] = c->info->sha;
  return c->info->sha;
}

Status Server::Core::create_tag(RepoType type, std::string_view id, std::string_view tag, std::string_view revision) {
  if (tag.empty() || tag.find('/') != std::string_view::npos) return make_error(Errc::invalid_argument, "bad tag name");
  std::unique_lock lk(state_mu_);
  Repo* r = find_repo_mut(type, id);
  if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
  auto c = r->resolve(revision.empty() ? "main" : revision);
  if (!c) return make_error(Errc::revision_not_found, "unknown revision " + std::string(revision));
  r->tags[std::string(tag)] = c->info->sha;
  return {};
}

Result<uint64_t> Server::Core::create_pr(RepoType type, std::string_view id, std::string_view revision) {
  std::unique_lock lk(state_mu_);
  Repo* r = find_repo_mut(type, id);
  if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
  auto c = r->resolve(revision.empty() ? "main" : revision);
  if (!c) return make_error(Errc::revision_not_found, "unknown revision " + std::string(revision));
  r->prs.push_back(c->info->sha);
  return static_cast<uint64_t>(r->prs.size());
}

Result<std::string> Server::Core::resolve_revision(RepoType type, std::string_view id, std::string_view revision) const {
  std::shared_lock lk(state_mu_);
  const Repo* r = find_repo(type, id);
  if (!r) return make_error(Errc::repo_not_found, fmt::format("{} {} does not exist", repo_type_name(type), id));
  auto c = r->resolve(revision);
  if (!c) return make_error(Errc::revision_not_found, "unknown revision " + std::string(revision));
  return c->info->sha;
}

Result<std::string> Server::Core::cas_put(std::string bytes) {
  Packer packer(cas_, opts_.xorb_target_bytes);
  HF_ASSIGN_OR_RETURN(auto packed, packer.add({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  HF_TRY(packer.finish());
  return packed.file_hash.hex();
}

Status Server::Core::add_bucket(std::string_view id, const std::string& dir, bool is_private) {
  HF_TRY(validate_repo_id(id));
  std::vector<FileSpec> files;
  if (!dir.empty()) {
    HF_ASSIGN_OR_RETURN(files, read_dir_files(dir));
  }
  Packer packer(cas_, opts_.xorb_target_bytes);
  std::vector<std::pair<std::string, BucketFile>> entries;
  int64_t now = now_unix_ns();
  for (auto& f : files) {
    HF_TRY(validate_repo_path(f.path));
    HF_ASSIGN_OR_RETURN(auto packed, packer.add({reinterpret_cast<const uint8_t*>(f.bytes.data()), f.bytes.size()}));
    BucketFile bf;
    bf.size = packed.size;
    bf.xet_hash = packed.file_hash.hex();
    bf.mtime_ms = now / 1000000;
    bf.uploaded_ns = now;
    entries.emplace_back(f.path, std::move(bf));
  }
  HF_TRY(packer.finish());
  std::unique_lock lk(state_mu_);
  if (buckets_.count(id)) return make_error(Errc::exists, fmt::format("bucket {} already exists", id));
  Bucket b;
  b.id = std::string(id);
  b.mongo_id = make_mongo_id(id_counter_++);
  b.is_private = is_private;
  b.created_ns = now;
  b.updated_ns = now;
  for (auto& [p, f] : entries) b.put(p, std::move(f));
  buckets_.emplace(std::string(id), std::move(b));
  persist_buckets_locked();
  return {};
}

// Bucket mutations move updatedAt strictly forward, by at least the millisecond that the
// ISO-8601 form shows, so that every mutation is observable by a poller.
static void touch_bucket(Bucket& b) {
  b.updated_ns = std::max(now_unix_ns(), (b.updated_ns / 1000000 + 1) * 1000000);
}

Status Server::Core::bucket_put(std::string_view id, std::string_view path, std::string bytes, int64_t mtime_ms) {
  HF_TRY(validate_repo_path(path));
  HF_ASSIGN_OR_RETURN(auto hash, cas_put(std::move(bytes)));
  auto f = cas_.file(xet::Hash::from_hex(hash).value());
  std::unique_lock lk(state_mu_);
  auto it = buckets_.find(id);
  if (it == buckets_.end()) return make_error(Errc::repo_not_found, fmt::format("bucket {} does not exist", id));
  BucketFile bf;
  bf.size = f ? f->size : 0;
  bf.xet_hash = hash;
  bf.uploaded_ns = now_unix_ns();
  bf.mtime_ms = mtime_ms >= 0 ? mtime_ms : bf.uploaded_ns / 1000000;
  it->second.put(std::string(path), std::move(bf));
  touch_bucket(it->second);
  persist_buckets_locked();
  return {};
}

Status Server::Core::bucket_delete(std::string_view id, std::string_view path) {
  std::unique_lock lk(state_mu_);
  auto it = buckets_.find(id);
  if (it == buckets_.end()) return make_error(Errc::repo_not_found, fmt::format("bucket {} does not exist", id));
  if (!it->second.erase(path)) return make_error(Errc::entry_not_found, fmt::format("no file {} in bucket", path));
  touch_bucket(it->second);
  persist_buckets_locked();
  return {};
}

// ---------------------------------------------------------------------------------------------
void Server::Core::maybe_collect_garbage() {
  const int64_t grace = int64_t{opts_.gc_grace_s} * 1'000'000'000;
  const int64_t now = mono_ns();
  int64_t last = last_gc_ns_.load(std::memory_order_relaxed);
  if (now - last < std::max<int64_t>(1'000'000'000, grace / 4)) return;
  if (!last_gc_ns_.compare_exchange_strong(last, now)) return;  // another thread runs it
  if (!cas_.has_gc_candidates(now - grace)) return;
  std::unordered_set<xet::Hash, xet::HashHasher> live;
  {
    std::shared_lock lk(state_mu_);
    auto add = [&live](std::string_view hex) {
      if (hex.empty()) return;
      if (auto h = xet::Hash::from_hex(hex); h.ok()) live.insert(h.value());
    };
    for (const auto& [id, b] : buckets_)
      for (const auto& [path, f] : b.files) add(f.xet_hash);
    // Every commit of every repo stays readable by sha, so all of their files are live.
    for (const auto& [key, repo] : repos_)
      for (const auto& [sha, c] : repo.commits)
        for (const auto& e : c->snap->entries())
          if (e.file && e.file->kind == FileKind::xet) add(e.file->xet_hash);
  }
  auto r = cas_.collect_garbage(live, now - grace);
  if (r.files || r.xorbs)
    HF_LOG_INFO("hubsim", "garbage collection: {} files, {} xorbs ({} bytes) unused for {} s removed", r.files,
                r.xorbs, r.bytes, opts_.gc_grace_s);
}

// Bucket persistence: one JSON document rewritten atomically after each mutation.

void Server::Core::persist_buckets_locked() {
  if (opts_.data_dir.empty()) return;
  JsonWriter w;
  w.begin_object();
  w.key("buckets").begin_array();
  for (const auto& [id, b] : buckets_) {
    w.begin_object();
    w.kv("id", b.id);
    w.kv("mongoId", b.mongo_id);
    w.kv("private", b.is_private);
    w.kv("createdNs", b.created_ns);
    w.kv("updatedNs", b.updated_ns);
    w.key("files").begin_array();
    for (const auto& [p, f] : b.files) {
      w.begin_object();
      w.kv("path", p);
      w.kv("size", f.size);
      w.kv("xetHash", f.xet_hash);
      w.kv("mtimeMs", f.mtime_ms);
      w.kv("uploadedNs", f.uploaded_ns);
      w.kv("contentType", f.content_type);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  fs::path p = fs::path(opts_.data_dir) / "buckets.json";
  fs::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << w.str();
    if (!f) {
      HF_LOG_WARN("hubsim", "cannot write {}", tmp.string());
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) HF_LOG_WARN("hubsim", "cannot rename {}: {}", tmp.string(), ec.message());
}

Status Server::Core::load_buckets() {
  fs::path p = fs::path(opts_.data_dir) / "buckets.json";
  std::ifstream f(p, std::ios::binary);
  if (!f) return {};
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  simdjson::dom::parser parser;
  auto doc = parse_json(parser, s);
  if (!doc.ok()) return make_error(Errc::corrupt, p.string() + ": " + doc.error().message);
  simdjson::dom::array arr;
  if (doc.value()["buckets"].get_array().get(arr)) return make_error(Errc::corrupt, p.string() + ": no buckets array");
  std::unique_lock lk(state_mu_);
  for (auto bel : arr) {
    Bucket b;
    std::string_view sv;
    if (bel["id"].get_string().get(sv)) continue;
    b.id = std::string(sv);
    if (!bel["mongoId"].get_string().get(sv)) b.mongo_id = std::string(sv);
    bool pv = false;
    if (!bel["private"].get_bool().get(pv)) b.is_private = pv;
    int64_t v;
    if (!bel["createdNs"].get_int64().get(v)) b.created_ns = v;
    if (!bel["updatedNs"].get_int64().get(v)) b.updated_ns = v;
    simdjson::dom::array files;
    if (!bel["files"].get_array().get(files)) {
      for (auto fel : files) {
        BucketFile bf;
        std::string_view path, hash;
        if (fel["path"].get_string().get(path) || fel["xetHash"].get_string().get(hash)) continue;
        uint64_t size = 0;
        if (!fel["size"].get_uint64().get(size)) bf.size = size;
        bf.xet_hash = std::string(hash);
        if (!fel["mtimeMs"].get_int64().get(v)) bf.mtime_ms = v;
        if (!fel["uploadedNs"].get_int64().get(v)) bf.uploaded_ns = v;
        if (!fel["contentType"].get_string().get(sv)) bf.content_type = std::string(sv);
        b.put(std::string(path), std::move(bf));
      }
    }
    buckets_[b.id] = std::move(b);
  }
  return {};
}

}  // namespace hf::hubsim
