// HTTP header list: ordered, case-insensitive multimap. Value type, thread-compatible.
// Names and values are stored as given; lookups compare names ASCII-case-insensitively.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::http {

class Headers {
 public:
  using Field = std::pair<std::string, std::string>;
  using const_iterator = std::vector<Field>::const_iterator;

  Headers() = default;
  Headers(std::initializer_list<Field> init) : fields_(init) {}

  void add(std::string_view name, std::string_view value) { fields_.emplace_back(name, value); }
  // Replaces every field called `name` with one field (kept at the position of the first one).
  void set(std::string_view name, std::string_view value);
  // First value of `name`, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  std::vector<std::string_view> get_all(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  // Removes every field called `name`; returns how many were removed.
  size_t remove(std::string_view name);

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  void clear() { fields_.clear(); }
  void reserve(size_t n) { fields_.reserve(n); }
  const_iterator begin() const { return fields_.begin(); }
  const_iterator end() const { return fields_.end(); }

 private:
  std::vector<Field> fields_;
};

// A header name is an RFC 7230 token; a value has no CR, LF or NUL. Used to refuse header
// injection through caller-supplied headers.
bool valid_header_name(std::string_view name);
bool valid_header_value(std::string_view value);

}  // namespace hf::http
