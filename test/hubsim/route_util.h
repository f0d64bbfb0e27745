// Helpers shared by the route handlers: error/JSON responses, query parameters, cursors,
// HTTP Range parsing and ranged byte responses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "test/hubsim/http_types.h"

namespace hf::hubsim {

// Hub-style error: X-Error-Code (when non-empty), X-Error-Message and {"error": message}.
Response error_response(int status, std::string_view code, std::string_view message);
Response json_response(std::string body, int status = 200);
Response text_response(int status, std::string body);

// Parsed query string: decoded (key, value) pairs in order.
class Query {
 public:
  Query() = default;
  static Result<Query> parse(std::string_view raw);
  std::optional<std::string_view> get(std::string_view key) const;
  std::vector<std::string_view> all(std::string_view key) const;
  bool flag(std::string_view key) const;  // "true" / "1" (case-insensitive)
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Rebuilds a raw query string without `drop_key` (keeps the client's encoding).
std::string query_without(std::string_view raw_query, std::string_view drop_key);

// Base64url without padding (opaque pagination cursors).
std::string base64url_encode(std::string_view s);
std::optional<std::string> base64url_decode(std::string_view s);
std::string base64_encode(std::string_view s);
std::optional<std::string> base64_decode(std::string_view s);

// A single "Range: bytes=..." request against a body of `size` bytes.
struct RangeRequest {
  enum Kind { none, ok, unsatisfiable, multi, invalid } kind = none;
  uint64_t start = 0, end = 0;  // inclusive, valid for ok
};
// Supports "bytes=S-E" (E clamped), "bytes=S-", "bytes=-N". Several ranges -> multi.
RangeRequest parse_range(std::string_view header, uint64_t size);

// 200/206/416 response for `src` (whole or ranged per the Range header), with ETag and
// conditional If-None-Match (304) support. `etag` is the unquoted value ("" = none).
Response bytes_response(const Request& req, SourcePtr src, std::string_view etag, std::string_view content_type);

// Joins raw path segments with '/' and percent-decodes the result (so "%2F" inside a segment
// becomes a path separator). Errc::invalid_argument on malformed escapes.
Result<std::string> decode_path_tail(const std::vector<std::string_view>& segs, size_t from);

}  // namespace hf::hubsim
