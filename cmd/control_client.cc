#include "cmd/control_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/json_writer.h"

namespace hf::cmd {

Errc errc_from_name(std::string_view name) {
  for (int i = static_cast<int>(Errc::not_found); i <= static_cast<int>(Errc::internal); ++i) {
    if (errc_name(static_cast<Errc>(i)) == name) return static_cast<Errc>(i);
  }
  return Errc::internal;
}

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<int> connect_one(const std::string& path) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) return Error(Errc::name_too_long, "control socket path too long: " + path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Errc::io, fmt::format("socket: {}", std::strerror(errno)));
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int err = errno;
    ::close(fd);
    switch (err) {
      case ENOENT:
      case ENOTDIR:
        return Error(Errc::not_found, fmt::format("no control socket at {}", path));
      case EACCES:
      case EPERM:
        return Error(Errc::permission_denied, fmt::format("{}: permission denied (the mount belongs to another user)", path));
      case ECONNREFUSED:
        return Error(Errc::network, fmt::format("{}: connection refused (stale socket: the mount process is gone)", path));
      default:
        return Error(Errc::io, fmt::format("cannot connect to {}: {}", path, std::strerror(err)));
    }
  }
  return fd;
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error(Errc::io, fmt::format("control socket write: {}", std::strerror(errno)));
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return {};
}

simdjson::dom::element parse_or_null(simdjson::dom::parser& p, std::string_view line, bool& ok) {
  simdjson::dom::element e;
  ok = !p.parse(line.data(), line.size(), true).get(e);
  return e;
}

uint64_t u64_field(simdjson::dom::object o, std::string_view k) {
  uint64_t v = 0;
  if (o[k].get_uint64().get(v)) {
    int64_t s = 0;
    if (!o[k].get_int64().get(s) && s >= 0) return static_cast<uint64_t>(s);
    return 0;
  }
  return v;
}

int64_t i64_field(simdjson::dom::object o, std::string_view k) {
  int64_t v = 0;
  if (o[k].get_int64().get(v)) return 0;
  return v;
}

std::string str_field(simdjson::dom::object o, std::string_view k) {
  std::string_view v;
  if (o[k].get_string().get(v)) return {};
  return std::string(v);
}

bool bool_field(simdjson::dom::object o, std::string_view k) {
  bool v = false;
  if (o[k].get_bool().get(v)) return false;
  return v;
}

}  // namespace

Status control_exchange(const std::vector<std::string>& candidates, std::string_view request,
                        std::chrono::milliseconds timeout, const std::function<bool(std::string_view)>& on_line) {
  if (candidates.empty()) return Error(Errc::not_found, "no control socket");
  Result<int> fdr = Error(Errc::not_found, "no control socket");
  for (const auto& c : candidates) {
    fdr = connect_one(c);
    // Keep looking only when this candidate does not exist at all.
    if (fdr.ok() || fdr.code() != Errc::not_found) break;
  }
  if (!fdr.ok()) return std::move(fdr).error();
  Fd fd(*fdr);
  std::string req(request);
  req.push_back('\n');
  HF_TRY(write_all(fd.get(), req));

  std::string buf;
  size_t scanned = 0;
  char tmp[65536];
  for (;;) {
    // Deliver every complete line already buffered.
    size_t nl;
    while ((nl = buf.find('\n', scanned)) != std::string::npos) {
      std::string_view line(buf.data(), nl);
      if (!line.empty() && !on_line(line)) return {};
      buf.erase(0, nl + 1);
      scanned = 0;
    }
    scanned = buf.size();
    if (buf.size() > kMaxReplyBytes) return Error(Errc::too_large, "control reply line larger than 1 MiB");
    pollfd p{fd.get(), POLLIN, 0};
    int pr = ::poll(&p, 1, timeout.count() > 0 ? static_cast<int>(timeout.count()) : -1);
    if (pr < 0) {
      if (errno == EINTR) continue;
      return Error(Errc::io, fmt::format("poll: {}", std::strerror(errno)));
    }
    if (pr == 0) return Error(Errc::timed_out, "the mount did not answer in time");
    ssize_t n = ::read(fd.get(), tmp, sizeof tmp);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) break;
      return Error(Errc::io, fmt::format("control socket read: {}", std::strerror(errno)));
    }
    if (n == 0) break;
    buf.append(tmp, static_cast<size_t>(n));
  }
  if (!buf.empty()) on_line(buf);  // a last line without newline
  return {};
}

Status reply_status(std::string_view line) {
  simdjson::dom::parser p;
  bool ok = false;
  auto root = parse_or_null(p, line, ok);
  simdjson::dom::object o;
  if (!ok || root.get_object().get(o)) return Error(Errc::protocol, "malformed reply from the mount");
  bool okv = false;
  if (o["ok"].get_bool().get(okv)) return Error(Errc::protocol, "reply from the mount has no \"ok\"");
  if (okv) return {};
  std::string msg = str_field(o, "error");
  if (msg.empty()) msg = "the mount reported an error";
  return Error(errc_from_name(str_field(o, "errc")), msg);
}

Result<fs::MountStatus> parse_status_reply(std::string_view line) {
  HF_TRY(reply_status(line));
  simdjson::dom::parser p;
  bool ok = false;
  auto root = parse_or_null(p, line, ok);
  simdjson::dom::object o;
  if (!ok || root["status"].get_object().get(o)) return Error(Errc::protocol, "status reply has no \"status\" object");
  fs::MountStatus s;
  s.source = str_field(o, "source");
  s.mountpoint = str_field(o, "mountpoint");
  s.revision = str_field(o, "revision");
  s.commit = str_field(o, "commit");
  s.endpoint = str_field(o, "endpoint");
  s.cache_dir = str_field(o, "cache_dir");
  s.read_only = bool_field(o, "read_only");
  s.pinned = bool_field(o, "pinned");
  s.offline = bool_field(o, "offline");
  s.pid = i64_field(o, "pid");
  s.started_at_ns = i64_field(o, "started_at_ns");
  s.bytes_fetched = u64_field(o, "bytes_fetched");
  s.bytes_served = u64_field(o, "bytes_served");
  s.cache_hits = u64_field(o, "cache_hits");
  s.cache_misses = u64_field(o, "cache_misses");
  s.cache_disk_hits = u64_field(o, "cache_disk_hits");
  s.cache_disk_bytes = u64_field(o, "cache_disk_bytes");
  s.cache_memory_bytes = u64_field(o, "cache_memory_bytes");
  s.cache_writes_dropped = u64_field(o, "cache_writes_dropped");
  s.http_requests = u64_field(o, "http_requests");
  s.http_in_flight = u64_field(o, "http_in_flight");
  s.http_errors = u64_field(o, "http_errors");
  s.http_retries = u64_field(o, "http_retries");
  s.read_errors = u64_field(o, "read_errors");
  s.dirty_files = u64_field(o, "dirty_files");
  s.commits = u64_field(o, "commits");
  s.commit_failures = u64_field(o, "commit_failures");
  s.uploaded_bytes = u64_field(o, "uploaded_bytes");
  s.rss_bytes = u64_field(o, "rss_bytes");
  s.heap_in_use_bytes = u64_field(o, "heap_in_use_bytes");
  s.heap_free_bytes = u64_field(o, "heap_free_bytes");
  s.db_memory_bytes = u64_field(o, "db_memory_bytes");
  return s;
}

std::optional<WarmProgress> parse_progress_line(std::string_view line) {
  if (line.find("\"progress\"") == std::string_view::npos) return std::nullopt;
  simdjson::dom::parser p;
  bool ok = false;
  auto root = parse_or_null(p, line, ok);
  simdjson::dom::object o;
  if (!ok || root["progress"].get_object().get(o)) return std::nullopt;
  WarmProgress w;
  w.done_bytes = u64_field(o, "done_bytes");
  w.total_bytes = u64_field(o, "total_bytes");
  w.files_done = u64_field(o, "files_done");
  w.files_total = u64_field(o, "files_total");
  return w;
}

Result<fs::MountStatus> query_status(const std::vector<std::string>& candidates, std::chrono::milliseconds timeout) {
  std::optional<Result<fs::MountStatus>> out;
  HF_TRY(control_exchange(candidates, R"({"op":"status"})", timeout, [&](std::string_view line) {
    out = parse_status_reply(line);
    return false;
  }));
  if (!out) return Error(Errc::protocol, "the mount closed the control connection without answering");
  return std::move(*out);
}

Status request_warm(const std::vector<std::string>& candidates, const std::vector<std::string>& paths,
                    const std::function<void(const WarmProgress&)>& on_progress) {
  JsonWriter w;
  w.begin_object().kv("op", "warm").key("paths").begin_array();
  for (const auto& p : paths) w.value(p);
  w.end_array().end_object();
  std::optional<Status> result;
  HF_TRY(control_exchange(candidates, w.str(), std::chrono::milliseconds(0), [&](std::string_view line) {
    if (auto pr = parse_progress_line(line)) {
      if (on_progress) on_progress(*pr);
      return true;
    }
    result = reply_status(line);
    return false;
  }));
  if (!result) return Error(Errc::protocol, "the mount closed the control connection before warm finished");
  return std::move(*result);
}

Status request_flush(const std::vector<std::string>& candidates) {
  std::optional<Status> result;
  HF_TRY(control_exchange(candidates, R"({"op":"flush"})", std::chrono::milliseconds(0), [&](std::string_view line) {
    result = reply_status(line);
    return false;
  }));
  if (!result) return Error(Errc::protocol, "the mount closed the control connection before flush finished");
  return std::move(*result);
}

}  // namespace hf::cmd
