#include "net/hub/types.h"

#include <fmt/format.h>

#include "base/text.h"

namespace hf::hub {

std::string_view api_prefix(RepoType t) {
  switch (t) {
    case RepoType::model: return "models";
    case RepoType::dataset: return "datasets";
    case RepoType::space: return "spaces";
    case RepoType::bucket: return "buckets";
  }
  return "models";
}

std::string_view resolve_prefix(RepoType t) {
  switch (t) {
    case RepoType::model: return "";
    case RepoType::dataset: return "datasets/";
    case RepoType::space: return "spaces/";
    case RepoType::bucket: return "buckets/";
  }
  return "";
}

std::string_view repo_type_name(RepoType t) {
  switch (t) {
    case RepoType::model: return "model";
    case RepoType::dataset: return "dataset";
    case RepoType::space: return "space";
    case RepoType::bucket: return "bucket";
  }
  return "model";
}

std::string describe(const RepoRef& r) {
  if (r.type == RepoType::model) return r.id;
  return fmt::format("{} {}", repo_type_name(r.type), r.id);
}

Status validate_repo_id(const RepoRef& r) {
  auto parts = split(r.id, '/');
  if (r.id.empty() || parts.size() > 2 || (r.type == RepoType::bucket && parts.size() != 2))
    return make_error(Errc::invalid_argument,
                      fmt::format("invalid {} id '{}': expected namespace/name", repo_type_name(r.type), r.id));
  for (auto p : parts) {
    if (p.empty() || p == "." || p == ".." || p.size() > 96)
      return make_error(Errc::invalid_argument, fmt::format("invalid repository id '{}'", r.id));
    for (char c : p) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
      if (!ok) return make_error(Errc::invalid_argument, fmt::format("invalid character in repository id '{}'", r.id));
    }
  }
  return {};
}

Status validate_revision(std::string_view rev) {
  if (rev.empty()) return make_error(Errc::invalid_argument, "empty revision");
  if (rev.size() > 256) return make_error(Errc::invalid_argument, "revision too long");
  if (rev.find("..") != std::string_view::npos)
    return make_error(Errc::invalid_argument, fmt::format("invalid revision '{}': '..' is not allowed", rev));
  for (char c : rev) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' || c == '-';
    if (!ok) return make_error(Errc::invalid_argument, "invalid revision: only [A-Za-z0-9._/-] are allowed");
  }
  return {};
}

Status validate_path(std::string_view path) {
  if (path.empty()) return {};
  if (path.size() > 4096) return make_error(Errc::invalid_argument, "path too long");
  for (auto comp : split(path, '/')) {
    if (comp.empty() || comp == "." || comp == "..")
      return make_error(Errc::invalid_argument, "invalid path: empty, '.' or '..' component");
  }
  if (path.find('\0') != std::string_view::npos) return make_error(Errc::invalid_argument, "invalid path: NUL byte");
  return {};
}

}  // namespace hf::hub
