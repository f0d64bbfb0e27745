// Retry policy helpers: which statuses are retryable, jittered backoff, and the server hints
// that override it (Retry-After, the Hub's RateLimit header). Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hf::http {

struct RetryPolicy {
  int max_attempts = 4;                         // total attempts, including the first (1 = no retry)
  std::chrono::milliseconds base_delay{200};    // backoff before retry k: U[0, min(max, base*2^(k-1)))
  std::chrono::milliseconds max_delay{10000};   // cap for one wait (also caps server hints)
  std::chrono::milliseconds budget{60000};      // no retry whose wait would end later than this after the start
};

// 408, 429, 500, 502, 503, 504.
bool retryable_status(int status);

// Full-jitter exponential backoff for retry number `retry` (1 = first retry).
std::chrono::milliseconds backoff_delay(const RetryPolicy& p, int retry);

// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime form) to Unix seconds.
std::optional<int64_t> parse_http_date(std::string_view s);

// Retry-After: delta-seconds or an HTTP-date (relative to `now_unix_s`; past dates give 0).
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v, int64_t now_unix_s);

// Hub rate-limit header `"api";r=0;t=42` (several comma-separated policies allowed): when a
// policy has r=0, the wait is t+1 seconds (the largest such). nullopt when no policy is
// exhausted or the header is malformed.
std::optional<std::chrono::milliseconds> parse_ratelimit_wait(std::string_view v);

}  // namespace hf::http
