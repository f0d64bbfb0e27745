#include "net/http/headers.h"

#include <algorithm>

#include "base/text.h"

namespace hf::http {

void Headers::set(std::string_view name, std::string_view value) {
  auto first = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return iequals(f.first, name); });
  if (first == fields_.end()) {
    add(name, value);
    return;
  }
  first->second = std::string(value);
  auto tail = std::remove_if(first + 1, fields_.end(), [&](const Field& f) { return iequals(f.first, name); });
  fields_.erase(tail, fields_.end());
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (iequals(f.first, name)) return std::string_view(f.second);
  }
  return std::nullopt;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_) {
    if (iequals(f.first, name)) out.emplace_back(f.second);
  }
  return out;
}

size_t Headers::remove(std::string_view name) {
  auto tail = std::remove_if(fields_.begin(), fields_.end(), [&](const Field& f) { return iequals(f.first, name); });
  size_t n = static_cast<size_t>(fields_.end() - tail);
  fields_.erase(tail, fields_.end());
  return n;
}

bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
        case '.': case '^': case '_': case '`': case '|': case '~':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

bool valid_header_value(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

}  // namespace hf::http
