#include "net/http/link_header.h"

#include "base/text.h"

namespace hf::http {
namespace {
constexpr size_t kMaxLinks = 64;

bool is_ws(char c) { return c == ' ' || c == '\t'; }
}  // namespace

std::vector<LinkValue> parse_link_header(std::string_view v) {
  std::vector<LinkValue> out;
  size_t i = 0;
  const size_t n = v.size();
  while (i < n && out.size() < kMaxLinks) {
    while (i < n && (is_ws(v[i]) || v[i] == ',')) ++i;
    if (i >= n) break;
    bool good = true;
    LinkValue lv;
    if (v[i] != '<') {
      good = false;
    } else {
      size_t close = v.find('>', i + 1);
      if (close == std::string_view::npos) break;
      lv.url = std::string(v.substr(i + 1, close - i - 1));
      i = close + 1;
    }
    // Parameters until the next top-level comma. Quoted strings may contain ',' and ';'.
    while (i < n && v[i] != ',') {
      while (i < n && is_ws(v[i])) ++i;
      if (i < n && v[i] == ';') {
        ++i;
        continue;
      }
      if (i >= n || v[i] == ',') break;
      size_t ks = i;
      while (i < n && v[i] != '=' && v[i] != ';' && v[i] != ',') ++i;
      std::string_view key = trim(v.substr(ks, i - ks));
      std::string value;
      if (i < n && v[i] == '=') {
        ++i;
        while (i < n && is_ws(v[i])) ++i;
        if (i < n && v[i] == '"') {
          ++i;
          while (i < n && v[i] != '"') {
            if (v[i] == '\\' && i + 1 < n) ++i;
            value.push_back(v[i]);
            ++i;
          }
          if (i < n) ++i;  // closing quote
        } else {
          size_t vs = i;
          while (i < n && v[i] != ';' && v[i] != ',') ++i;
          value = std::string(trim(v.substr(vs, i - vs)));
        }
      }
      if (iequals(key, "rel") && lv.rel.empty()) lv.rel = std::move(value);
    }
    if (good) out.push_back(std::move(lv));
  }
  return out;
}

std::optional<std::string> find_link(const std::vector<std::string_view>& values, std::string_view rel) {
  for (auto v : values) {
    for (auto& l : parse_link_header(v)) {
      for (auto r : split(l.rel, ' ')) {
        if (!r.empty() && iequals(r, rel)) return l.url;
      }
    }
  }
  return std::nullopt;
}

}  // namespace hf::http
