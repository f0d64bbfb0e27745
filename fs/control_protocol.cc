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

void write_mount_status(JsonWriter& w, const MountStatus& s) {
  w.begin_object();
  w.kv("source", s.source).kv("mountpoint", s.mountpoint).kv("revision", s.revision).kv("commit", s.commit);
  w.kv("endpoint", s.endpoint).kv("cache_dir", s.cache_dir);
  w.kv("read_only", s.read_only).kv("pinned", s.pinned).kv("offline", s.offline);
  w.kv("pid", s.pid).kv("started_at_ns", s.started_at_ns);
  w.kv("bytes_fetched", s.bytes_fetched).kv("bytes_served", s.bytes_served);
  w.kv("cache_hits", s.cache_hits).kv("cache_misses", s.cache_misses).kv("cache_disk_hits", s.cache_disk_hits);
  w.kv("cache_disk_bytes", s.cache_disk_bytes).kv("cache_memory_bytes", s.cache_memory_bytes);
  w.kv("cache_writes_dropped", s.cache_writes_dropped);
  w.kv("http_requests", s.http_requests).kv("http_in_flight", s.http_in_flight);
  w.kv("http_errors", s.http_errors).kv("http_retries", s.http_retries).kv("read_errors", s.read_errors);
  w.kv("dirty_files", s.dirty_files).kv("commits", s.commits).kv("commit_failures", s.commit_failures);
  w.kv("uploaded_bytes", s.uploaded_bytes);
  w.kv("rss_bytes", s.rss_bytes).kv("heap_in_use_bytes", s.heap_in_use_bytes);
  w.kv("heap_free_bytes", s.heap_free_bytes).kv("db_memory_bytes", s.db_memory_bytes);
  w.end_object();
}

}  // namespace hf::fs
