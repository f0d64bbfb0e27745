// A string that must never reach a log, an error message, a process title or status output.
// fmt formatting prints "<redacted>"; the value is only reachable through reveal().
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

namespace hf {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string v) : v_(std::move(v)) {}
  bool empty() const { return v_.empty(); }
  const std::string& reveal() const { return v_; }
  bool operator==(const Secret& o) const { return v_ == o.v_; }

 private:
  std::string v_;
};

}  // namespace hf

template <>
struct fmt::formatter<hf::Secret> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const hf::Secret&, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format("<redacted>", ctx);
  }
};
