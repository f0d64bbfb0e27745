// Maps a failed Hub response (status + X-Error-Code + body) to an hf::Error that says what was
// not found (hub-api.md §6.4). Pure, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "net/http/client.h"
#include "net/hub/types.h"

namespace hf::hub {

// What the request was about, so messages can name it.
struct ErrorContext {
  const RepoRef* repo = nullptr;
  std::string_view revision;   // empty for buckets / repo info without revision
  std::string_view path;       // for entry lookups
  enum class On404 { repo, revision, entry } on_404 = On404::repo;  // meaning of a bare 404
  std::string_view operation;  // "list tree", "xet token", ... (for generic statuses)
};

Error hub_error(const http::ResponseHead& r, std::string_view body, const ErrorContext& ctx);

}  // namespace hf::hub
