// Minimal streaming JSON writer (output only; parsing uses simdjson).
// Not thread-safe; one writer per document.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hf {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b);
  JsonWriter& value(int64_t v);
  JsonWriter& value(uint64_t v);
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(unsigned v) { return value(static_cast<uint64_t>(v)); }
  JsonWriter& value(double v);
  JsonWriter& null();
  // Inserts pre-serialized JSON as a value.
  JsonWriter& raw(std::string_view json);

  template <class T>
  JsonWriter& kv(std::string_view k, const T& v) { key(k); return value(v); }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

  // Appends `s` as a quoted JSON string, escaping control characters, quotes and backslashes.
  // Invalid UTF-8 bytes are replaced with U+FFFD so output is always valid JSON.
  static void append_quoted(std::string& out, std::string_view s);

 private:
  void before_value();
  std::string out_;
  std::vector<bool> first_;  // per nesting level: no element written yet
  bool after_key_ = false;
};

}  // namespace hf
