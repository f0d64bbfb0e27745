// Incremental parser for `multipart/byteranges` bodies (RFC 9110 §14.6, RFC 2046 §5.1).
//
// Feed body pieces of any size (down to single bytes); the parser reports each part's
// Content-Range, then the part's data in one or more pieces, without buffering data (only
// part headers, bounded by `max_part_header`, and at most one delimiter's worth of bytes are
// held). Errors are Errc::protocol and final: feed() keeps returning the first error.
// Not thread-safe; one instance per response.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace hf::http {

class MultipartByteranges {
 public:
  struct Part {
    uint64_t first = 0;             // inclusive byte offsets from Content-Range
    uint64_t last = 0;
    std::optional<uint64_t> total;  // nullopt for "/*"
    uint64_t size() const { return last - first + 1; }
  };
  using PartFn = std::function<Status(const Part&)>;
  using DataFn = std::function<Status(std::span<const uint8_t>)>;

  // The boundary parameter of a `multipart/byteranges; boundary=...` Content-Type.
  static Result<std::string> boundary_from_content_type(std::string_view content_type);

  MultipartByteranges(std::string boundary, PartFn on_part, DataFn on_data, size_t max_part_header = 16 * 1024);

  Status feed(std::span<const uint8_t> piece);
  Status feed(std::string_view piece) {
    return feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()));
  }
  // Call at the end of the body: fails unless the closing delimiter was seen.
  Status finish();

  uint64_t parts_seen() const { return parts_; }

 private:
  enum class State { preamble, after_delimiter, headers, data, epilogue, failed };
  Status fail(std::string msg);
  // Scans for the delimiter in data/preamble state; returns bytes of `in` consumed.
  Result<size_t> scan(std::span<const uint8_t> in);
  Status emit(std::span<const uint8_t> d);
  Status on_delimiter();
  Status parse_part_headers();

  std::string delim_;  // "\r\n--" + boundary
  PartFn on_part_;
  DataFn on_data_;
  size_t max_header_;
  State state_ = State::preamble;
  std::string held_;    // bytes that may begin a delimiter (always a proper prefix of delim_)
  std::string buf_;     // after-delimiter bytes or part headers being collected
  Part part_;
  uint64_t part_bytes_ = 0;
  uint64_t parts_ = 0;
  Error error_;
};

}  // namespace hf::http
