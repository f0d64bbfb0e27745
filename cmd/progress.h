// Progress display for `hf-mount warm`: a rate estimator over a sliding window and the text of
// one progress-bar line. Pure (time is passed in) so rendering and rates have unit tests.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace hf::cmd {

// "0:07", "12:34", "1:02:03"; "--:--" for an unknown duration.
std::string format_eta(std::optional<double> seconds);
// "3h 02m 01s", "5m 03s", "42s".
std::string format_uptime(int64_t seconds);
// "350.0 MiB/s" (binary units, as format_size).
std::string format_rate(double bytes_per_s);

class RateMeter {
 public:
  explicit RateMeter(double window_s = 3.0) : window_s_(window_s) {}
  // Records that `done` bytes were complete at time `t` (seconds, monotonic).
  void add(double t, uint64_t done);
  // Bytes/s over the window; nullopt until two samples at least 0.2 s apart exist.
  std::optional<double> rate() const;

 private:
  double window_s_;
  std::deque<std::pair<double, uint64_t>> samples_;
};

// One line, at most `width` columns (no newline), e.g.
//   "[##########..........]  50%  1.0 GiB/2.0 GiB  100.0 MiB/s  ETA 0:10  files 3/10"
// total == 0 (not yet known) shows no percentage or ETA.
std::string render_progress(uint64_t done, uint64_t total, uint64_t files_done, uint64_t files_total,
                            std::optional<double> rate, size_t width);

}  // namespace hf::cmd
