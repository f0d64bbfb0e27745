#include "net/http/multipart.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/text.h"

namespace hf::http {

Result<std::string> MultipartByteranges::boundary_from_content_type(std::string_view ct) {
  auto params = split(ct, ';');
  if (!iequals(trim(params[0]), "multipart/byteranges"))
    return make_error(Errc::protocol, fmt::format("expected multipart/byteranges, got '{}'", trim(params[0])));
  for (size_t i = 1; i < params.size(); ++i) {
    auto p = trim(params[i]);
    size_t eq = p.find('=');
    if (eq == std::string_view::npos || !iequals(trim(p.substr(0, eq)), "boundary")) continue;
    auto v = trim(p.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (v.empty() || v.size() > 70) return make_error(Errc::protocol, "multipart boundary must be 1..70 characters");
    for (char c : v) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        return make_error(Errc::protocol, "invalid character in multipart boundary");
    }
    return std::string(v);
  }
  return make_error(Errc::protocol, "multipart/byteranges without a boundary parameter");
}

MultipartByteranges::MultipartByteranges(std::string boundary, PartFn on_part, DataFn on_data, size_t max_part_header)
    : delim_("\r\n--" + boundary), on_part_(std::move(on_part)), on_data_(std::move(on_data)), max_header_(max_part_header) {
  // The first delimiter may start the body without a preceding CRLF: pretend one was seen.
  held_ = "\r\n";
}

Status MultipartByteranges::fail(std::string msg) {
  state_ = State::failed;
  error_ = make_error(Errc::protocol, std::move(msg));
  return error_;
}

Status MultipartByteranges::emit(std::span<const uint8_t> d) {
  if (d.empty() || state_ != State::data) return {};  // preamble bytes are dropped
  if (part_bytes_ + d.size() > part_.size())
    return fail(fmt::format("multipart part longer than its Content-Range ({} bytes)", part_.size()));
  part_bytes_ += d.size();
  auto st = on_data_(d);
  if (!st) {
    state_ = State::failed;
    error_ = st.error();
  }
  return st;
}

Result<size_t> MultipartByteranges::scan(std::span<const uint8_t> in) {
  const std::string_view D = delim_;
  std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  if (!held_.empty()) {
    // A delimiter may start inside held_ and continue in `s`.
    size_t take = std::min(s.size(), D.size() - 1);
    std::string w = held_ + std::string(s.substr(0, take));
    for (size_t i = 0; i < held_.size(); ++i) {
      size_t cmp = std::min(D.size(), w.size() - i);
      if (w.compare(i, cmp, D, 0, cmp) != 0) continue;
      if (cmp == D.size()) {  // complete delimiter starting at i
        HF_TRY(emit({reinterpret_cast<const uint8_t*>(w.data()), i}));
        size_t used = i + D.size() - held_.size();
        held_.clear();
        HF_TRY(on_delimiter());
        return used;
      }
      // Partial match running to the end of w: all of `s` was taken into the window.
      HF_TRY(emit({reinterpret_cast<const uint8_t*>(w.data()), i}));
      held_ = w.substr(i);
      return s.size();
    }
    HF_TRY(emit({reinterpret_cast<const uint8_t*>(held_.data()), held_.size()}));
    held_.clear();
  }
  size_t pos = s.find(D);
  if (pos != std::string_view::npos) {
    HF_TRY(emit(in.subspan(0, pos)));
    HF_TRY(on_delimiter());
    return pos + D.size();
  }
  // Keep the longest suffix that is a proper prefix of D.
  size_t keep = 0;
  for (size_t k = std::min(D.size() - 1, s.size()); k > 0; --k) {
    if (s.substr(s.size() - k) == D.substr(0, k)) {
      keep = k;
      break;
    }
  }
  HF_TRY(emit(in.subspan(0, s.size() - keep)));
  held_ = std::string(s.substr(s.size() - keep));
  return s.size();
}

Status MultipartByteranges::on_delimiter() {
  if (state_ == State::data && part_bytes_ != part_.size())
    return fail(fmt::format("multipart part has {} bytes, Content-Range announced {}", part_bytes_, part_.size()));
  state_ = State::after_delimiter;
  buf_.clear();
  return {};
}

Status MultipartByteranges::parse_part_headers() {
  // buf_ holds "Name: value\r\n...\r\n\r\n" (or just "\r\n" when there are no headers).
  std::optional<Part> part;
  std::string_view rest = buf_;
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("malformed multipart part header");
    if (!iequals(trim(line.substr(0, colon)), "content-range")) continue;
    auto v = trim(line.substr(colon + 1));
    if (v.size() < 6 || !iequals(v.substr(0, 6), "bytes ")) return fail("multipart Content-Range is not in bytes");
    v = trim(v.substr(6));
    size_t dash = v.find('-'), slash = v.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash)
      return fail("malformed multipart Content-Range");
    auto first = parse_u64(v.substr(0, dash));
    auto last = parse_u64(v.substr(dash + 1, slash - dash - 1));
    auto total_s = v.substr(slash + 1);
    if (!first || !last || *last < *first) return fail("malformed multipart Content-Range");
    Part p{*first, *last, std::nullopt};
    if (total_s != "*") {
      auto total = parse_u64(total_s);
      if (!total || *last >= *total) return fail("malformed multipart Content-Range");
      p.total = total;
    }
    part = p;
  }
  if (!part) return fail("multipart part without Content-Range");
  part_ = *part;
  part_bytes_ = 0;
  ++parts_;
  state_ = State::data;
  auto st = on_part_(part_);
  if (!st) {
    state_ = State::failed;
    error_ = st.error();
  }
  return st;
}

Status MultipartByteranges::feed(std::span<const uint8_t> in) {
  while (!in.empty()) {
    switch (state_) {
      case State::failed:
        return error_;
      case State::epilogue:
        return {};
      case State::preamble:
      case State::data: {
        HF_ASSIGN_OR_RETURN(size_t used, scan(in));
        in = in.subspan(used);
        break;
      }
      case State::after_delimiter: {
        // "--" closes the body; otherwise optional transport padding, then CRLF.
        buf_.push_back(static_cast<char>(in[0]));
        in = in.subspan(1);
        if (buf_ == "-") break;
        if (buf_ == "--") {
          state_ = State::epilogue;
          return {};
        }
        if (buf_.size() > 256) return fail("multipart delimiter line too long");
        if (buf_.back() == '\n') {
          std::string_view line(buf_);
          line.remove_suffix(1);
          if (line.empty() || line.back() != '\r') return fail("multipart delimiter not followed by CRLF");
          line.remove_suffix(1);
          for (char c : line) {
            if (c != ' ' && c != '\t') return fail("garbage after multipart delimiter");
          }
          buf_.clear();
          state_ = State::headers;
        }
        break;
      }
      case State::headers: {
        buf_.push_back(static_cast<char>(in[0]));
        in = in.subspan(1);
        if (buf_.size() > max_header_) return fail("multipart part headers too large");
        std::string_view b(buf_);
        if (b == "\r\n" || (b.size() >= 4 && b.substr(b.size() - 4) == "\r\n\r\n")) HF_TRY(parse_part_headers());
        break;
      }
    }
  }
  return state_ == State::failed ? Status(error_) : Status();
}

Status MultipartByteranges::finish() {
  if (state_ == State::failed) return error_;
  if (state_ != State::epilogue) return fail("multipart body ended before the closing delimiter");
  return {};
}

}  // namespace hf::http
