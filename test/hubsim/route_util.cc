#include "test/hubsim/route_util.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/json_writer.h"
#include "base/text.h"

namespace hf::hubsim {

Response error_response(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  if (!code.empty()) r.set_header("X-Error-Code", std::string(code));
  r.set_header("X-Error-Message", std::string(message));
  std::string body = "{\"error\":";
  JsonWriter::append_quoted(body, message);
  body += "}";
  r.set_body(std::move(body), "application/json; charset=utf-8");
  return r;
}

Response json_response(std::string body, int status) {
  Response r;
  r.status = status;
  r.set_body(std::move(body), "application/json; charset=utf-8");
  return r;
}

Response text_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.set_body(std::move(body), "text/plain; charset=utf-8");
  return r;
}

Result<Query> Query::parse(std::string_view raw) {
  Query q;
  if (raw.empty()) return q;
  HF_ASSIGN_OR_RETURN(q.items_, parse_query(raw));
  return q;
}

std::optional<std::string_view> Query::get(std::string_view key) const {
  for (const auto& [k, v] : items_)
    if (k == key) return std::string_view(v);
  return std::nullopt;
}

std::vector<std::string_view> Query::all(std::string_view key) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : items_)
    if (k == key) out.push_back(v);
  return out;
}

bool Query::flag(std::string_view key) const {
  auto v = get(key);
  return v && (iequals(*v, "true") || *v == "1");
}

std::string query_without(std::string_view raw_query, std::string_view drop_key) {
  std::string out;
  for (auto part : split(raw_query, '&')) {
    if (part.empty()) continue;
    auto key = part.substr(0, part.find('='));
    auto dk = url_decode(key, true);
    if (dk.ok() && dk.value() == drop_key) continue;
    if (!out.empty()) out += '&';
    out += part;
  }
  return out;
}

static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static std::string b64_encode(std::string_view s, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((s.size() + 2) / 3 * 4);
  size_t i = 0;
  while (i + 3 <= s.size()) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
    i += 3;
  }
  size_t rem = s.size() - i;
  if (rem == 1) {
    uint32_t v = uint8_t(s[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rem == 2) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

static std::optional<std::string> b64_decode(std::string_view s, bool url) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == (url ? '-' : '+')) v = 62;
    else if (c == (url ? '_' : '/')) v = 63;
    else if (c == '\n' || c == '\r') continue;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // a dangling 6-bit group is not valid base64
  return out;
}

std::string base64url_encode(std::string_view s) { return b64_encode(s, kB64Url, false); }
std::optional<std::string> base64url_decode(std::string_view s) { return b64_decode(s, true); }
std::string base64_encode(std::string_view s) { return b64_encode(s, kB64, true); }
std::optional<std::string> base64_decode(std::string_view s) { return b64_decode(s, false); }

RangeRequest parse_range(std::string_view header, uint64_t size) {
  RangeRequest r;
  header = trim(header);
  if (header.empty()) return r;
  if (!header.starts_with("bytes=")) {
    r.kind = RangeRequest::invalid;
    return r;
  }
  auto spec = header.substr(6);
  if (spec.find(',') != std::string_view::npos) {
    r.kind = RangeRequest::multi;
    return r;
  }
  spec = trim(spec);
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) {
    r.kind = RangeRequest::invalid;
    return r;
  }
  auto a = spec.substr(0, dash), b = spec.substr(dash + 1);
  if (a.empty()) {  // suffix: last N bytes
    auto n = parse_u64(b);
    if (!n) {
      r.kind = RangeRequest::invalid;
      return r;
    }
    if (*n == 0 || size == 0) {
      r.kind = RangeRequest::unsatisfiable;
      return r;
    }
    r.kind = RangeRequest::ok;
    r.start = size - std::min(*n, size);
    r.end = size - 1;
    return r;
  }
  auto s = parse_u64(a);
  if (!s) {
    r.kind = RangeRequest::invalid;
    return r;
  }
  uint64_t e = UINT64_MAX;
  if (!b.empty()) {
    // Huge ends (XC sends 2^64-2) may overflow parse_u64 only beyond 2^64-1: clamp either way.
    auto ev = parse_u64(b);
    if (!ev) {
      bool digits = std::all_of(b.begin(), b.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) {
        r.kind = RangeRequest::invalid;
        return r;
      }
    } else {
      e = *ev;
    }
    if (e < *s) {
      r.kind = RangeRequest::invalid;
      return r;
    }
  }
  if (*s >= size) {
    r.kind = RangeRequest::unsatisfiable;
    r.start = *s;
    return r;
  }
  r.kind = RangeRequest::ok;
  r.start = *s;
  r.end = std::min(e, size - 1);
  return r;
}

static bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  if (etag.empty() || if_none_match.empty()) return false;
  if (trim(if_none_match) == "*") return true;
  for (auto part : split(if_none_match, ',')) {
    part = trim(part);
    if (part.starts_with("W/")) part.remove_prefix(2);
    if (part.size() >= 2 && part.front() == '"' && part.back() == '"') part = part.substr(1, part.size() - 2);
    if (part == etag) return true;
  }
  return false;
}

Response bytes_response(const Request& req, SourcePtr src, std::string_view etag, std::string_view content_type) {
  Response r;
  uint64_t size = src->size();
  r.set_header("Accept-Ranges", "bytes");
  r.set_header("Content-Type", std::string(content_type));
  if (!etag.empty()) r.set_header("ETag", fmt::format("\"{}\"", etag));
  if (etag_matches(req.header("if-none-match"), etag)) {
    r.status = 304;
    r.content_length = 0;
    return r;
  }
  auto range = parse_range(req.header("range"), size);
  switch (range.kind) {
    case RangeRequest::ok:
      r.status = 206;
      r.set_header("Content-Range", fmt::format("bytes {}-{}/{}", range.start, range.end, size));
      r.add_body(std::move(src), range.start, range.end - range.start + 1);
      return r;
    case RangeRequest::unsatisfiable: {
      Response e = error_response(416, "", "Requested Range Not Satisfiable");
      e.set_header("Content-Range", fmt::format("bytes */{}", size));
      return e;
    }
    default:  // none, multi, invalid: the whole body (RFC 9110 allows ignoring Range)
      r.status = 200;
      r.add_body(std::move(src), 0, size);
      return r;
  }
}

Result<std::string> decode_path_tail(const std::vector<std::string_view>& segs, size_t from) {
  std::string raw;
  for (size_t i = from; i < segs.size(); ++i) {
    if (i > from) raw += '/';
    raw += segs[i];
  }
  return url_decode(raw, false);
}

}  // namespace hf::hubsim
