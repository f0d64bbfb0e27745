// Small helpers over simdjson's DOM API for the simulator's request bodies (bounded input:
// callers cap body sizes before parsing; simdjson bounds nesting depth itself).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/text.h"

namespace hf::hubsim {

// Maximum nesting accepted in request bodies.
inline constexpr size_t kMaxJsonDepth = 64;

// Parses `json` into `doc` (owned by `parser`). Errc::invalid_argument with simdjson's message.
inline Result<simdjson::dom::element> parse_json(simdjson::dom::parser& parser, std::string_view json) {
  simdjson::dom::element doc;
  auto err = parser.parse(json.data(), json.size()).get(doc);
  if (err) return make_error(Errc::invalid_argument, std::string("invalid JSON: ") + simdjson::error_message(err));
  return doc;
}

// Accepts a JSON number >= 0 or a string such as "50M" (parse_size).
inline std::optional<uint64_t> json_size_value(simdjson::dom::element v) {
  uint64_t u;
  if (!v.get_uint64().get(u)) return u;
  int64_t i;
  if (!v.get_int64().get(i)) return i >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(i)) : std::nullopt;
  double d;
  if (!v.get_double().get(d)) return d >= 0 && d < 1.8e19 ? std::optional<uint64_t>(static_cast<uint64_t>(d)) : std::nullopt;
  std::string_view s;
  if (!v.get_string().get(s)) return parse_size(s);
  return std::nullopt;
}

inline std::optional<bool> json_bool_value(simdjson::dom::element v) {
  bool b;
  if (!v.get_bool().get(b)) return b;
  return std::nullopt;
}

inline std::optional<std::string_view> json_string_value(simdjson::dom::element v) {
  std::string_view s;
  if (!v.get_string().get(s)) return s;
  return std::nullopt;
}

inline std::optional<double> json_double_value(simdjson::dom::element v) {
  double d;
  if (!v.get_double().get(d)) return d;
  return std::nullopt;
}

}  // namespace hf::hubsim
