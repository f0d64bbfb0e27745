#include "base/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

#include "base/text.h"

namespace hf::log {
namespace detail {
int g_level = static_cast<int>(Level::info);
}

namespace {

enum class SinkKind { stderr_plain, stderr_journal, syslog, file };

std::mutex g_mu;  // guards the sink switch, not the writes
std::atomic<SinkKind> g_sink{SinkKind::stderr_plain};
std::atomic<int> g_fd{2};
std::atomic<bool> g_journal_checked{false};  // read by every write, from any thread

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long dev = 0, ino = 0;
  if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void set_level(Level l) { detail::g_level = static_cast<int>(l); }
Level level() { return static_cast<Level>(detail::g_level); }

std::string_view level_name(Level l) {
  switch (l) {
    case Level::error: return "error";
    case Level::warn: return "warn";
    case Level::info: return "info";
    case Level::debug: return "debug";
    case Level::trace: return "trace";
  }
  return "info";
}

Result<Level> parse_level(std::string_view s) {
  std::string l = to_lower(s);
  if (l == "error") return Level::error;
  if (l == "warn" || l == "warning") return Level::warn;
  if (l == "info") return Level::info;
  if (l == "debug") return Level::debug;
  if (l == "trace") return Level::trace;
  return Error(Errc::invalid_argument,
               fmt::format("unknown log level '{}' (use error, warn, info, debug or trace)", s));
}

namespace {
void use_stderr_locked() {
  g_fd = 2;
  g_sink = stderr_is_journal() ? SinkKind::stderr_journal : SinkKind::stderr_plain;
  g_journal_checked = true;
}
}  // namespace

void use_stderr() {
  std::lock_guard lk(g_mu);
  use_stderr_locked();
}

void use_syslog(const char* ident) {
  std::lock_guard lk(g_mu);
  openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  g_sink = SinkKind::syslog;
  g_journal_checked = true;  // an explicit sink: the first write must not reset it to stderr
}

Status use_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error(Errc::io, fmt::format("cannot open log file {}: {}", path, std::strerror(errno)));
  }
  std::lock_guard lk(g_mu);
  int old = g_fd.exchange(fd);
  if (old > 2) ::close(old);
  g_sink = SinkKind::file;
  g_journal_checked = true;  // an explicit sink: the first write must not reset it to stderr
  return {};
}

void write(Level l, std::string_view component, std::string_view msg) {
  if (!g_journal_checked.load(std::memory_order_acquire)) {
    // The first write picks the default sink, unless another thread chose one meanwhile.
    std::lock_guard lk(g_mu);
    if (!g_journal_checked.load(std::memory_order_relaxed)) use_stderr_locked();
  }
  SinkKind sink = g_sink.load(std::memory_order_relaxed);
  // Keep log lines single-line even if a message embeds server text with newlines.
  std::string clean;
  clean.reserve(msg.size());
  for (char c : msg) clean.push_back((c == '\n' || c == '\r') ? ' ' : c);

  if (sink == SinkKind::syslog) {
    syslog(static_cast<int>(l) > 7 ? LOG_DEBUG : static_cast<int>(l), "%.*s: %s",
           static_cast<int>(component.size()), component.data(), clean.c_str());
    return;
  }
  std::string line;
  if (sink == SinkKind::stderr_journal) {
    line = fmt::format("<{}>{}: {}\n", std::min(static_cast<int>(l), 7), component, clean);
  } else {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    struct tm tm {};
    gmtime_r(&t, &tm);
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    line = fmt::format("{}.{:03d}Z {:5} {}: {}\n", ts, static_cast<int>(ms), level_name(l), component, clean);
  }
  write_all(g_fd.load(std::memory_order_relaxed), line.data(), line.size());
}

}  // namespace hf::log
