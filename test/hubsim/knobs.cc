#include "test/hubsim/knobs.h"

#include <algorithm>
#include <cmath>

#include "base/clock.h"
#include "base/json_writer.h"
#include "test/hubsim/json_util.h"

namespace hf::hubsim {

Result<Knobs> parse_knobs_json(std::string_view json, const Knobs& base) {
  simdjson::dom::parser parser;
  HF_ASSIGN_OR_RETURN(auto doc, parse_json(parser, json));
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return make_error(Errc::invalid_argument, "config must be a JSON object");
  Knobs k = base;
  for (auto field : obj) {
    std::string_view key = field.key;
    auto bad = [&] { return make_error(Errc::invalid_argument, "bad value for config key '" + std::string(key) + "'"); };
    auto u32 = [&](uint32_t& dst) -> Status {
      auto v = json_size_value(field.value);
      if (!v || *v > UINT32_MAX) return bad();
      dst = static_cast<uint32_t>(*v);
      return {};
    };
    auto u64 = [&](uint64_t& dst) -> Status {
      auto v = json_size_value(field.value);
      if (!v) return bad();
      dst = *v;
      return {};
    };
    auto flag = [&](bool& dst) -> Status {
      auto v = json_bool_value(field.value);
      if (!v) return bad();
      dst = *v;
      return {};
    };
    if (key == "latency_ms") { HF_TRY(u32(k.latency_ms)); }
    else if (key == "first_byte_latency_ms") { HF_TRY(u32(k.first_byte_latency_ms)); }
    else if (key == "bandwidth") { HF_TRY(u64(k.bandwidth)); }
    else if (key == "conn_bandwidth") { HF_TRY(u64(k.conn_bandwidth)); }
    else if (key == "token_ttl_s" || key == "token_ttl") { HF_TRY(u32(k.token_ttl_s)); }
    else if (key == "url_ttl_s" || key == "url_ttl") { HF_TRY(u32(k.url_ttl_s)); }
    else if (key == "page_size") { HF_TRY(u32(k.page_size)); }
    else if (key == "resolve_307") { HF_TRY(flag(k.resolve_307)); }
    else if (key == "batch_fail_200") { HF_TRY(flag(k.batch_fail_200)); }
    else if (key == "v2_reconstructions") { HF_TRY(flag(k.v2_reconstructions)); }
    else if (key == "v2_shards") { HF_TRY(flag(k.v2_shards)); }
    else if (key == "max_ranges_per_fetch") {
      HF_TRY(u32(k.max_ranges_per_fetch));
      if (k.max_ranges_per_fetch == 0) return bad();
    } else {
      return make_error(Errc::invalid_argument, "unknown config key '" + std::string(key) + "'");
    }
  }
  return k;
}

std::string knobs_to_json(const Knobs& k) {
  JsonWriter w;
  w.begin_object();
  w.kv("latency_ms", k.latency_ms);
  w.kv("first_byte_latency_ms", k.first_byte_latency_ms);
  w.kv("bandwidth", k.bandwidth);
  w.kv("conn_bandwidth", k.conn_bandwidth);
  w.kv("token_ttl_s", k.token_ttl_s);
  w.kv("url_ttl_s", k.url_ttl_s);
  w.kv("page_size", k.page_size);
  w.kv("resolve_307", k.resolve_307);
  w.kv("batch_fail_200", k.batch_fail_200);
  w.kv("v2_reconstructions", k.v2_reconstructions);
  w.kv("v2_shards", k.v2_shards);
  w.kv("max_ranges_per_fetch", k.max_ranges_per_fetch);
  w.end_object();
  return w.take();
}

std::string_view fault_kind_name(FaultKind k) {
  switch (k) {
    case FaultKind::none: return "none";
    case FaultKind::status500: return "500";
    case FaultKind::status503: return "503";
    case FaultKind::status429: return "429";
    case FaultKind::reset: return "reset";
    case FaultKind::stall: return "stall";
    case FaultKind::truncate: return "truncate";
    case FaultKind::corrupt: return "corrupt";
  }
  return "none";
}

static std::optional<FaultKind> parse_fault_kind(std::string_view s) {
  for (FaultKind k : {FaultKind::status500, FaultKind::status503, FaultKind::status429, FaultKind::reset,
                      FaultKind::stall, FaultKind::truncate, FaultKind::corrupt}) {
    if (s == fault_kind_name(k)) return k;
  }
  return std::nullopt;
}

static bool valid_fault_route(std::string_view r) {
  static constexpr std::string_view kRoutes[] = {"xorb",  "reconstruction", "tree",  "resolve",     "token",
                                                 "batch", "shard",          "xorb_upload", "any", "paths_info",
                                                 "repo_info", "bucket", "dedup", "other"};
  return std::find(std::begin(kRoutes), std::end(kRoutes), r) != std::end(kRoutes);
}

Result<std::vector<FaultRule>> parse_faults_json(std::string_view json) {
  simdjson::dom::parser parser;
  HF_ASSIGN_OR_RETURN(auto doc, parse_json(parser, json));
  simdjson::dom::array arr;
  simdjson::dom::object wrapper;
  if (!doc.get_object().get(wrapper)) {
    // Also accept {"rules": [...]}.
    if (wrapper["rules"].get_array().get(arr))
      return make_error(Errc::invalid_argument, "faults must be a JSON array of rules");
  } else if (doc.get_array().get(arr)) {
    return make_error(Errc::invalid_argument, "faults must be a JSON array of rules");
  }
  std::vector<FaultRule> rules;
  for (auto el : arr) {
    if (rules.size() >= 256) return make_error(Errc::too_large, "too many fault rules (max 256)");
    simdjson::dom::object o;
    if (el.get_object().get(o)) return make_error(Errc::invalid_argument, "fault rule must be an object");
    FaultRule r;
    bool have_kind = false;
    for (auto f : o) {
      std::string_view key = f.key;
      if (key == "route") {
        auto s = json_string_value(f.value);
        if (!s || !valid_fault_route(*s)) return make_error(Errc::invalid_argument, "bad fault route");
        r.route = std::string(*s);
      } else if (key == "kind") {
        std::optional<FaultKind> k;
        if (auto s = json_string_value(f.value)) k = parse_fault_kind(*s);
        else if (auto n = json_size_value(f.value)) k = parse_fault_kind(std::to_string(*n));
        if (!k) return make_error(Errc::invalid_argument, "bad fault kind");
        r.kind = *k;
        have_kind = true;
      } else if (key == "rate") {
        auto d = json_double_value(f.value);
        if (!d) {
          if (auto u = json_size_value(f.value)) d = static_cast<double>(*u);
        }
        if (!d || *d < 0 || *d > 1 || std::isnan(*d)) return make_error(Errc::invalid_argument, "fault rate must be in [0,1]");
        r.rate = *d;
      } else if (key == "count") {
        auto u = json_size_value(f.value);
        if (!u) return make_error(Errc::invalid_argument, "bad fault count");
        r.count = *u;
      } else if (key == "retry_after") {
        auto u = json_size_value(f.value);
        if (!u || *u > 86400) return make_error(Errc::invalid_argument, "bad retry_after");
        r.retry_after = static_cast<uint32_t>(*u);
      } else if (key == "stall_ms") {
        auto u = json_size_value(f.value);
        if (!u || *u > 3600000) return make_error(Errc::invalid_argument, "bad stall_ms");
        r.stall_ms = static_cast<uint32_t>(*u);
      } else {
        return make_error(Errc::invalid_argument, "unknown fault rule key '" + std::string(key) + "'");
      }
    }
    if (!have_kind) return make_error(Errc::invalid_argument, "fault rule needs a kind");
    if (r.count == 0 && r.rate == 0) r.rate = 1.0;  // a rule with neither fires always
    rules.push_back(std::move(r));
  }
  return rules;
}

void Faults::set(std::vector<FaultRule> rules) {
  std::lock_guard lk(mu_);
  rules_ = std::move(rules);
}

std::optional<FaultRule> Faults::pick(std::string_view route) {
  std::lock_guard lk(mu_);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->route != "any" && it->route != route) continue;
    if (it->count > 0) {
      FaultRule r = *it;
      if (--it->count == 0 && it->rate == 0) rules_.erase(it);
      return r;
    }
    if (it->rate > 0) {
      double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
      if (u < it->rate) return *it;
    }
  }
  return std::nullopt;
}

std::string Faults::to_json() const {
  std::lock_guard lk(mu_);
  JsonWriter w;
  w.begin_array();
  for (const auto& r : rules_) {
    w.begin_object();
    w.kv("route", r.route);
    w.kv("kind", fault_kind_name(r.kind));
    w.kv("rate", r.rate);
    w.kv("count", r.count);
    w.kv("retry_after", r.retry_after);
    w.kv("stall_ms", r.stall_ms);
    w.end_object();
  }
  w.end_array();
  return w.take();
}

void TokenBucket::set_rate(uint64_t bytes_per_s) {
  std::lock_guard lk(mu_);
  rate_.store(bytes_per_s, std::memory_order_relaxed);
  tokens_ = 0;
  last_ns_ = mono_ns();
}

int64_t TokenBucket::reserve(uint64_t n) {
  uint64_t rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0) return 0;
  std::lock_guard lk(mu_);
  int64_t now = mono_ns();
  // Burst capacity: 20 ms worth of bytes (at least 16 KiB) so that an idle link does not
  // accumulate an unbounded burst.
  double cap = std::max(16384.0, static_cast<double>(rate) * 0.02);
  tokens_ = std::min(cap, tokens_ + static_cast<double>(now - last_ns_) * static_cast<double>(rate) / 1e9);
  last_ns_ = now;
  tokens_ -= static_cast<double>(n);
  if (tokens_ >= 0) return 0;
  return static_cast<int64_t>(-tokens_ * 1e9 / static_cast<double>(rate));
}

void Stats::record(std::string_view route, int status, uint64_t bytes_out, uint64_t bytes_in) {
  std::lock_guard lk(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), RouteStats{}).first;
  it->second.requests++;
  it->second.bytes_out += bytes_out;
  it->second.bytes_in += bytes_in;
  statuses_[status]++;
}

void Stats::record_fault(FaultKind k) {
  std::lock_guard lk(mu_);
  faults_[std::string(fault_kind_name(k))]++;
  faults_total_++;
}

uint64_t Stats::requests(std::string_view route) const {
  std::lock_guard lk(mu_);
  auto it = routes_.find(route);
  return it == routes_.end() ? 0 : it->second.requests;
}

uint64_t Stats::bytes(std::string_view route) const {
  std::lock_guard lk(mu_);
  auto it = routes_.find(route);
  return it == routes_.end() ? 0 : it->second.bytes_out;
}

uint64_t Stats::bytes_in(std::string_view route) const {
  std::lock_guard lk(mu_);
  auto it = routes_.find(route);
  return it == routes_.end() ? 0 : it->second.bytes_in;
}

uint64_t Stats::status_count(int status) const {
  std::lock_guard lk(mu_);
  auto it = statuses_.find(status);
  return it == statuses_.end() ? 0 : it->second;
}

uint64_t Stats::faults_injected() const {
  std::lock_guard lk(mu_);
  return faults_total_;
}

std::string Stats::to_json() const {
  std::lock_guard lk(mu_);
  JsonWriter w;
  w.begin_object();
  uint64_t total = 0, bytes = 0;
  for (const auto& [k, v] : routes_) {
    total += v.requests;
    bytes += v.bytes_out;
  }
  w.kv("requests_total", total);
  w.kv("bytes_out_total", bytes);
  w.key("requests").begin_object();
  for (const auto& [k, v] : routes_) w.kv(k, v.requests);
  w.end_object();
  w.key("bytes").begin_object();
  for (const auto& [k, v] : routes_) w.kv(k, v.bytes_out);
  w.end_object();
  w.key("bytes_in").begin_object();
  for (const auto& [k, v] : routes_) w.kv(k, v.bytes_in);
  w.end_object();
  w.key("status").begin_object();
  for (const auto& [k, v] : statuses_) w.kv(std::to_string(k), v);
  w.end_object();
  w.kv("faults_injected", faults_total_);
  w.key("faults").begin_object();
  for (const auto& [k, v] : faults_) w.kv(k, v);
  w.end_object();
  w.kv("active_connections", static_cast<int64_t>(active_.load()));
  w.kv("total_connections", total_conns_.load());
  w.end_object();
  return w.take();
}

void Stats::reset() {
  std::lock_guard lk(mu_);
  routes_.clear();
  statuses_.clear();
  faults_.clear();
  faults_total_ = 0;
  total_conns_.store(0);
}

}  // namespace hf::hubsim
