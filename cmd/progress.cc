#include "cmd/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "base/text.h"

namespace hf::cmd {

std::string format_eta(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0 || *seconds > 360000) return "--:--";
  auto s = static_cast<int64_t>(std::ceil(*seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_uptime(int64_t s) {
  if (s < 0) s = 0;
  if (s >= 86400) return fmt::format("{}d {:02}h {:02}m", s / 86400, (s / 3600) % 24, (s / 60) % 60);
  if (s >= 3600) return fmt::format("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60);
  if (s >= 60) return fmt::format("{}m {:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string format_rate(double bps) {
  if (!std::isfinite(bps) || bps < 0) bps = 0;
  return format_size(static_cast<uint64_t>(bps)) + "/s";
}

void RateMeter::add(double t, uint64_t done) {
  samples_.emplace_back(t, done);
  // Keep one sample older than the window so the rate always spans about window_s.
  while (samples_.size() > 2 && samples_[1].first <= t - window_s_) samples_.pop_front();
}

std::optional<double> RateMeter::rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const auto& a = samples_.front();
  const auto& b = samples_.back();
  double dt = b.first - a.first;
  if (dt < 0.2) return std::nullopt;
  double db = b.second >= a.second ? static_cast<double>(b.second - a.second) : 0.0;
  return db / dt;
}

std::string render_progress(uint64_t done, uint64_t total, uint64_t files_done, uint64_t files_total,
                            std::optional<double> rate, size_t width) {
  std::string tail;
  if (total > 0) {
    uint64_t shown = std::min(done, total);
    int pct = static_cast<int>(static_cast<double>(shown) * 100.0 / static_cast<double>(total));
    std::optional<double> eta;
    if (rate && *rate > 0) eta = static_cast<double>(total - shown) / *rate;
    if (shown == total) eta = 0.0;
    tail = fmt::format(" {:3}%  {}/{}  {}  ETA {}", pct, format_size(shown), format_size(total),
                       rate ? format_rate(*rate) : std::string("--"), format_eta(eta));
  } else {
    tail = fmt::format("  {}  {}", format_size(done), rate ? format_rate(*rate) : std::string("--"));
  }
  if (files_total > 0) tail += fmt::format("  files {}/{}", files_done, files_total);

  // The bar takes what is left, between 10 and 40 columns; dropped if the line is too narrow.
  std::string line;
  if (width > tail.size() + 12) {
    size_t bar = std::min<size_t>(40, width - tail.size() - 2);
    size_t filled = total > 0 ? static_cast<size_t>(static_cast<double>(bar) * static_cast<double>(std::min(done, total)) /
                                                    static_cast<double>(total))
                              : 0;
    line = "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "]";
  }
  line += tail;
  if (line.size() > width) line.resize(width);
  return line;
}

}  // namespace hf::cmd
