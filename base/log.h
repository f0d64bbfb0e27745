// Process-wide logger.
//
// Thread-safe: any thread may log at any time; each line is written with one write(2)/syslog(3)
// call so lines from different threads never interleave. Messages are single lines; callers
// must never pass credentials (see base/secret.h).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "base/result.h"

namespace hf::log {

// Numeric values follow syslog priorities so they map 1:1 to journald/syslog levels.
enum class Level : int { error = 3, warn = 4, info = 6, debug = 7, trace = 8 };

void set_level(Level l);
Level level();
inline bool enabled(Level l);

// Parse "error|warn|info|debug|trace" (case-insensitive).
Result<Level> parse_level(std::string_view s);
std::string_view level_name(Level l);

// Sinks. The default is stderr; when stderr is the systemd journal ($JOURNAL_STREAM matches
// stderr) lines carry a "<N>" priority prefix instead of a timestamp.
void use_stderr();
void use_syslog(const char* ident);          // after daemonizing
Status use_file(const std::string& path);    // appends; created 0600

void write(Level l, std::string_view component, std::string_view msg);

namespace detail {
extern int g_level;
}
inline bool enabled(Level l) { return static_cast<int>(l) <= detail::g_level; }

}  // namespace hf::log

#define HF_LOG(lvl, component, ...)                                                   \
  do {                                                                                \
    if (::hf::log::enabled(lvl))                                                      \
      ::hf::log::write(lvl, component, ::fmt::format(__VA_ARGS__));                   \
  } while (0)
#define HF_LOG_ERROR(component, ...) HF_LOG(::hf::log::Level::error, component, __VA_ARGS__)
#define HF_LOG_WARN(component, ...) HF_LOG(::hf::log::Level::warn, component, __VA_ARGS__)
#define HF_LOG_INFO(component, ...) HF_LOG(::hf::log::Level::info, component, __VA_ARGS__)
#define HF_LOG_DEBUG(component, ...) HF_LOG(::hf::log::Level::debug, component, __VA_ARGS__)
#define HF_LOG_TRACE(component, ...) HF_LOG(::hf::log::Level::trace, component, __VA_ARGS__)
