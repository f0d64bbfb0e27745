// Parsing of control-channel requests (protocol: fs/control.h). Pure functions without Asio,
// so the parser of this untrusted input (any local process of the owner may connect) can be
// fuzzed with clang. Thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/json_writer.h"
#include "base/result.h"
#include "fs/control.h"

namespace hf::fs {

struct ControlRequest {
  std::string op;                  // "status", "warm", "flush" or anything else (unknown op)
  std::vector<std::string> paths;  // warm: normalized mount-relative paths ("" = the root)
};

inline constexpr size_t kMaxWarmPaths = 100000;

// One request line (without the newline). Errors: invalid_argument (malformed JSON, wrong
// shapes, a path with ".." or NUL), too_large (more than kMaxWarmPaths paths), internal.
// Nesting is bounded (16 levels); the caller bounds the line length.
Result<ControlRequest> parse_control_request(std::string_view line);

// A request path relative to the mount root: "", "." and "/" mean the root; "a//b/./c" ->
// "a/b/c"; ".." and NUL are refused.
Result<std::string> normalize_request_path(std::string_view p);

// A MountStatus as the JSON object the status reply carries (and `hf-mount status --json`
// prints): one writer, so the server and the client's output never drift apart.
void write_mount_status(JsonWriter& w, const MountStatus& s);

}  // namespace hf::fs
