#include "net/hub/errors.h"

#include <fmt/format.h>

#include "base/text.h"
#include "net/hub/json.h"

namespace hf::hub {
namespace {

std::string one_line(std::string_view s, size_t max = 300) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

}  // namespace

Error hub_error(const http::ResponseHead& r, std::string_view body, const ErrorContext& ctx) {
  std::string code(r.headers.get("X-Error-Code").value_or(""));
  std::string detail = one_line(r.headers.get("X-Error-Message").value_or(""));
  if (detail.empty()) detail = parse_error_message(body);
  std::string repo = ctx.repo ? describe(*ctx.repo) : std::string("repository");
  bool bucket = ctx.repo && ctx.repo->type == RepoType::bucket;
  std::string what_repo = bucket ? fmt::format("bucket {} not found", ctx.repo->id) : fmt::format("repository {} not found", repo);
  auto with_detail = [&](std::string m) { return detail.empty() ? m : fmt::format("{} ({})", m, detail); };
  auto where = [&]() {
    return ctx.revision.empty() ? repo : fmt::format("{}@{}", repo, ctx.revision);
  };

  if (code == "RepoNotFound") return make_error(Errc::repo_not_found, what_repo);
  if (code == "RevisionNotFound")
    return make_error(Errc::revision_not_found, fmt::format("revision '{}' not found in {}", ctx.revision, repo));
  if (code == "EntryNotFound")
    return make_error(Errc::entry_not_found, fmt::format("'{}' not found in {}", ctx.path, where()));
  if (code == "GatedRepo")
    return make_error(Errc::gated, with_detail(fmt::format("access to {} is gated and has not been granted", repo)));

  switch (r.status) {
    case 401:
      if (iequals(detail, "Invalid credentials in Authorization header") || detail.find("nvalid credentials") != std::string::npos)
        return make_error(Errc::unauthorized, "the Hub token is invalid or expired (HTTP 401)");
      return make_error(Errc::unauthorized,
                        with_detail(fmt::format("unauthorized for {}: it is private or does not exist, or the token is missing (HTTP 401)", repo)));
    case 403:
      return make_error(Errc::forbidden, with_detail(fmt::format("access to {} forbidden (HTTP 403)", repo)));
    case 404:
      switch (ctx.on_404) {
        case ErrorContext::On404::revision:
          return make_error(Errc::revision_not_found, fmt::format("revision '{}' not found in {}", ctx.revision, repo));
        case ErrorContext::On404::entry:
          return make_error(Errc::entry_not_found, fmt::format("'{}' not found in {}", ctx.path, where()));
        case ErrorContext::On404::repo:
          return make_error(Errc::repo_not_found, what_repo);
      }
      break;
    case 413:
    case 507:
      return make_error(Errc::no_space, with_detail(fmt::format("{} refused: storage quota or size limit (HTTP {})", ctx.operation, r.status)));
    case 416:
      return make_error(Errc::out_of_range, fmt::format("range not satisfiable for '{}' in {}", ctx.path, where()));
    case 429:
      return make_error(Errc::rate_limited, with_detail(fmt::format("rate limited by the Hub during {} (HTTP 429)", ctx.operation)));
    default:
      break;
  }
  if (r.status >= 500)
    return make_error(Errc::server_error, with_detail(fmt::format("Hub server error during {} (HTTP {})", ctx.operation, r.status)));
  return make_error(Errc::http_status, with_detail(fmt::format("unexpected HTTP {} during {}", r.status, ctx.operation)));
}

}  // namespace hf::hub
