#include "net/http/retry.h"

#include <algorithm>
#include <array>
#include <random>

#include "base/text.h"

namespace hf::http {

bool retryable_status(int s) {
  return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& p, int retry) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  int64_t cap = std::max<int64_t>(0, p.max_delay.count());
  int64_t d = std::max<int64_t>(0, p.base_delay.count());
  for (int i = 1; i < retry && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  if (d <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<int64_t> dist(0, d - 1);
  return std::chrono::milliseconds(dist(rng));
}

namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int month_index(std::string_view m) {
  static constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                               "jul", "aug", "sep", "oct", "nov", "dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (iequals(m, kMonths[i])) return static_cast<int>(i) + 1;
  }
  return 0;
}

std::optional<int> num(std::string_view s, size_t min_len, size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return std::nullopt;
  auto v = parse_u64(s);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

std::optional<int64_t> assemble(int year, int month, int day, std::string_view hms) {
  auto parts = split(hms, ':');
  if (parts.size() != 3 || month == 0 || day < 1 || day > 31) return std::nullopt;
  auto h = num(parts[0], 2, 2), mi = num(parts[1], 2, 2), se = num(parts[2], 2, 2);
  if (!h || !mi || !se || *h > 23 || *mi > 59 || *se > 60) return std::nullopt;
  return days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
         *h * 3600 + *mi * 60 + *se;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  for (auto w : split(s, ' ')) {
    if (!w.empty()) out.push_back(w);
  }
  return out;
}

}  // namespace

std::optional<int64_t> parse_http_date(std::string_view s) {
  s = trim(s);
  auto w = words(s);
  if (w.size() == 6 && w[0].size() == 4 && w[0].back() == ',' && iequals(w[5], "GMT")) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    auto day = num(w[1], 1, 2), year = num(w[3], 4, 4);
    if (!day || !year) return std::nullopt;
    return assemble(*year, month_index(w[2]), *day, w[4]);
  }
  if (w.size() == 4 && w[0].back() == ',' && iequals(w[3], "GMT")) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    auto dmy = split(w[1], '-');
    if (dmy.size() != 3) return std::nullopt;
    auto day = num(dmy[0], 1, 2), yy = num(dmy[2], 2, 4);
    if (!day || !yy) return std::nullopt;
    int year = *yy;
    if (dmy[2].size() == 2) year += year < 70 ? 2000 : 1900;
    return assemble(year, month_index(dmy[1]), *day, w[2]);
  }
  if (w.size() == 5) {
    // asctime: "Sun Nov  6 08:49:37 1994"
    auto day = num(w[2], 1, 2), year = num(w[4], 4, 4);
    if (!day || !year) return std::nullopt;
    return assemble(*year, month_index(w[1]), *day, w[3]);
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v, int64_t now_unix_s) {
  v = trim(v);
  if (v.empty()) return std::nullopt;
  if (auto secs = parse_u64(v)) {
    uint64_t capped = std::min<uint64_t>(*secs, 365ull * 86400);
    return std::chrono::milliseconds(static_cast<int64_t>(capped) * 1000);
  }
  auto when = parse_http_date(v);
  if (!when) return std::nullopt;
  int64_t d = std::clamp<int64_t>(*when - now_unix_s, 0, 365ll * 86400);
  return std::chrono::milliseconds(d * 1000);
}

std::optional<std::chrono::milliseconds> parse_ratelimit_wait(std::string_view v) {
  std::optional<std::chrono::milliseconds> best;
  for (auto policy : split(v, ',')) {
    std::optional<uint64_t> r, t;
    bool first = true;
    for (auto item : split(policy, ';')) {
      item = trim(item);
      if (first) {  // the quoted policy name ("api", "resolvers", ...)
        first = false;
        continue;
      }
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) continue;
      auto key = trim(item.substr(0, eq));
      auto val = parse_u64(trim(item.substr(eq + 1)));
      if (key == "r") r = val;
      if (key == "t") t = val;
    }
    if (r && t && *r == 0) {
      uint64_t secs = std::min<uint64_t>(*t, 86400) + 1;
      std::chrono::milliseconds ms(static_cast<int64_t>(secs) * 1000);
      if (!best || ms > *best) best = ms;
    }
  }
  return best;
}

}  // namespace hf::http
