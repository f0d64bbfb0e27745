// RFC 8288 Link header parsing ("<url>; rel=\"next\", <url2>; rel=\"xet-auth\""). Pure, bounded:
// at most 64 links are returned per header value; malformed elements are skipped.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hf::http {

struct LinkValue {
  std::string url;  // as written between < >
  std::string rel;  // rel parameter (unquoted, may hold several space-separated relations)
};

std::vector<LinkValue> parse_link_header(std::string_view value);

// The URL of the first link whose rel list contains `rel` (case-insensitive), across every
// given header value.
std::optional<std::string> find_link(const std::vector<std::string_view>& values, std::string_view rel);

}  // namespace hf::http
