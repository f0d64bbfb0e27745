// Realism knobs of the hub simulator: latency, bandwidth, lifetimes, page sizes, fault
// injection and request statistics.
//
// Thread-safety: Faults, TokenBucket and Stats are internally synchronized (one mutex each, never
// held while calling out); Knobs is a plain value copied under the owner's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "test/hubsim/http_types.h"

namespace hf::hubsim {

struct Knobs {
  uint32_t latency_ms = 0;             // before every response's first byte
  uint32_t first_byte_latency_ms = 0;  // additionally before data responses (bridges, xorb ranges)
  uint64_t bandwidth = 0;              // total bytes/s across connections, 0 = unlimited
  uint64_t conn_bandwidth = 0;         // per-connection bytes/s cap, 0 = unlimited
  uint32_t token_ttl_s = 3600;         // CAS access token lifetime
  uint32_t url_ttl_s = 3600;           // presigned xorb URL lifetime
  uint32_t page_size = 0;              // forces smaller listing pages when > 0
  bool resolve_307 = true;             // plain git files: 307 to /api/resolve-cache (as the Hub)
  bool batch_fail_200 = false;         // bucket batch: report failures with 200 + success:false
  bool v2_reconstructions = true;      // false: /v2/reconstructions answers 404 (client falls back)
  bool v2_shards = true;               // false: /v2/shards answers 404
  uint32_t max_ranges_per_fetch = 64;  // v2: ranges grouped per presigned URL
};

// Parses a JSON object of knob values (same names as the fields, e.g. {"latency_ms":5,
// "bandwidth":"50M"}) on top of `base`. Unknown keys are an error.
Result<Knobs> parse_knobs_json(std::string_view json, const Knobs& base);
std::string knobs_to_json(const Knobs& k);

// One fault-injection rule. Routes: xorb (presigned range GET), reconstruction, tree, resolve
// (resolve + bridges + resolve-cache), token, batch, shard, xorb_upload, dedup (global-dedup
// queries, GET /v1/chunks/...), paths_info, repo_info, bucket, other, any.
struct FaultRule {
  std::string route = "any";
  FaultKind kind = FaultKind::status500;
  double rate = 0;          // probability per matching request (used when count == 0)
  uint64_t count = 0;       // fire on the next `count` matching requests
  uint32_t retry_after = 1; // seconds, for 429/503
  uint32_t stall_ms = 2000; // for stall
};

Result<std::vector<FaultRule>> parse_faults_json(std::string_view json);
std::string_view fault_kind_name(FaultKind k);

// The fault rules in force. pick() decides, per request, which fault (if any) applies.
class Faults {
 public:
  void set(std::vector<FaultRule> rules);
  void clear() { set({}); }
  // Returns the first rule that fires for `route` (and consumes one count from it).
  std::optional<FaultRule> pick(std::string_view route);
  std::string to_json() const;

 private:
  mutable std::mutex mu_;
  std::vector<FaultRule> rules_;
  std::mt19937_64 rng_{0x5eed};
};

// Debt-based token bucket: reserve(n) takes n tokens (possibly going negative) and returns how
// long the caller must wait before sending them. Concurrent reservers are served in order, so
// connections sharing a bucket get a fair share of the rate.
class TokenBucket {
 public:
  void set_rate(uint64_t bytes_per_s);
  uint64_t rate() const { return rate_.load(std::memory_order_relaxed); }
  // Nanoseconds to wait before sending n bytes (0 when unlimited).
  int64_t reserve(uint64_t n);

 private:
  std::mutex mu_;
  std::atomic<uint64_t> rate_{0};
  double tokens_ = 0;
  int64_t last_ns_ = 0;
};

// Request statistics by route and status.
class Stats {
 public:
  void record(std::string_view route, int status, uint64_t bytes_out, uint64_t bytes_in);
  void record_fault(FaultKind k);
  void connection_opened() { active_.fetch_add(1); total_conns_.fetch_add(1); }
  void connection_closed() { active_.fetch_sub(1); }
  int64_t active_connections() const { return active_.load(); }
  uint64_t requests(std::string_view route) const;
  uint64_t bytes(std::string_view route) const;     // response bytes sent
  uint64_t bytes_in(std::string_view route) const;  // request body bytes received
  uint64_t status_count(int status) const;
  uint64_t faults_injected() const;
  std::string to_json() const;
  void reset();

 private:
  struct RouteStats {
    uint64_t requests = 0, bytes_out = 0, bytes_in = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, RouteStats, std::less<>> routes_;
  std::map<int, uint64_t> statuses_;
  std::map<std::string, uint64_t, std::less<>> faults_;
  uint64_t faults_total_ = 0;
  std::atomic<int64_t> active_{0};
  std::atomic<uint64_t> total_conns_{0};
};

}  // namespace hf::hubsim
