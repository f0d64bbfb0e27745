#include "fs/control_protocol.h"

#include <simdjson.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/text.h"

namespace hf::fs {

Result<std::string> normalize_request_path(std::string_view p) {
  std::string out;
  for (std::string_view seg : split(p, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return Error(Errc::invalid_argument, fmt::format("path '{}' leaves the mount ('..')", p));
    if (seg.find('\0') != std::string_view::npos) return Error(Errc::invalid_argument, "path contains a NUL byte");
    if (!out.empty()) out.push_back('/');
    out.append(seg);
  }
  return out;
}

Result<ControlRequest> parse_control_request(std::string_view line) {
  simdjson::dom::parser parser;
  if (parser.allocate(std::max<size_t>(line.size(), 64), 16)) {
    return Error(Errc::internal, "JSON parser allocation failed");
  }
  simdjson::dom::element root;
  if (auto e = parser.parse(line.data(), line.size(), true).get(root); e) {
    return Error(Errc::invalid_argument, fmt::format("malformed request: {}", simdjson::error_message(e)));
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) return Error(Errc::invalid_argument, "malformed request: not a JSON object");
  ControlRequest r;
  std::string_view op;
  if (obj["op"].get_string().get(op)) return Error(Errc::invalid_argument, "malformed request: missing string \"op\"");
  r.op = std::string(op);
  if (r.op == "warm") {
    simdjson::dom::array arr;
    if (obj["paths"].get_array().get(arr)) {
      return Error(Errc::invalid_argument, "malformed request: warm needs an array \"paths\"");
    }
    for (simdjson::dom::element e : arr) {
      std::string_view p;
      if (e.get_string().get(p)) return Error(Errc::invalid_argument, "malformed request: \"paths\" must hold strings");
      if (r.paths.size() >= kMaxWarmPaths) {
        return Error(Errc::too_large, fmt::format("too many paths (at most {})", kMaxWarmPaths));
      }
      HF_ASSIGN_OR_RETURN(auto norm, normalize_request_path(p));
      r.paths.push_back(std::move(norm));
    }
    if (r.paths.empty()) return Error(Errc::invalid_argument, "warm: no paths given");
  }
  return r;
}

}  // namespace hf::fs
