// Time helpers: wall-clock conversions used by the Hub protocol (ISO-8601, HTTP-date).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hf {

// Nanoseconds since the Unix epoch.
int64_t now_unix_ns();
inline int64_t now_unix_s() { return now_unix_ns() / 1000000000; }
// Monotonic clock in nanoseconds (for timeouts and rates).
int64_t mono_ns();

// Parses "2024-02-19T10:57:45.000Z", "2024-02-19T10:57:45Z", "2024-02-19T10:57:45.123456+02:00".
// Returns nanoseconds since the epoch, or nullopt for malformed input.
std::optional<int64_t> parse_iso8601(std::string_view s);
// Formats as "2024-02-19T10:57:45.000Z" (millisecond precision, UTC).
std::string format_iso8601(int64_t unix_ns);
// RFC 7231 IMF-fixdate: "Tue, 18 Jun 2019 09:06:51 GMT".
std::string format_http_date(int64_t unix_s);

}  // namespace hf
