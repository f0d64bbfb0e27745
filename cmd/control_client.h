// The front-end side of the control channel (protocol: fs/control.h): one synchronous request
// per connection, as `hf-mount status|warm|stop` need. Not thread-safe per call (each call owns
// its own connection); different calls may run concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "fs/control.h"

namespace hf::cmd {

struct WarmProgress {
  uint64_t done_bytes = 0, total_bytes = 0, files_done = 0, files_total = 0;
};

// Replies are bounded like requests.
inline constexpr size_t kMaxReplyBytes = 1 << 20;

// Sends `request` (one JSON line, without the newline) to the first of `candidates` that exists
// and returns the reply lines one by one through `on_line` until the connection ends or
// `on_line` returns false. `timeout` bounds the wait for each line (0 = no bound).
// Errors: not_found (no socket at any candidate), permission_denied (EACCES/EPERM), network
// (refused: a stale socket of a dead mount), timed_out, too_large (reply line > 1 MiB), io.
Status control_exchange(const std::vector<std::string>& candidates, std::string_view request,
                        std::chrono::milliseconds timeout, const std::function<bool(std::string_view)>& on_line);

// The error carried by a {"ok":false,...} reply; ok for {"ok":true,...}; protocol error for
// anything else.
Status reply_status(std::string_view line);
// Parses {"ok":true,"status":{...}}.
Result<fs::MountStatus> parse_status_reply(std::string_view line);
// Parses {"progress":{...}}; nullopt for any other line.
std::optional<WarmProgress> parse_progress_line(std::string_view line);

Result<fs::MountStatus> query_status(const std::vector<std::string>& candidates,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
Status request_warm(const std::vector<std::string>& candidates, const std::vector<std::string>& paths,
                    const std::function<void(const WarmProgress&)>& on_progress);
Status request_flush(const std::vector<std::string>& candidates);

// Errc from its errc_name(); Errc::internal for an unknown name.
Errc errc_from_name(std::string_view name);

}  // namespace hf::cmd
