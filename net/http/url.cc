#include "net/http/url.h"

#include <fmt/format.h>

#include <arpa/inet.h>

#include "base/text.h"

namespace hf::http {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Bytes that may not appear raw in an HTTP request target.
bool needs_escape(unsigned char c) {
  if (c <= 0x20 || c >= 0x7f) return true;
  switch (c) {
    case '"': case '<': case '>': case '\\': case '^': case '`': case '{': case '|': case '}':
      return true;
    default:
      return false;
  }
}

std::string escape_target(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

// Length of a "scheme:" prefix (without the colon), or 0 when `s` does not start with one.
size_t scheme_length(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return 0;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == ':') return i;
    if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')) return 0;
  }
  return 0;
}

std::string_view strip_fragment(std::string_view s) {
  size_t h = s.find('#');
  return h == std::string_view::npos ? s : s.substr(0, h);
}

bool valid_reg_name_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%' ||
         c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
         c == '+' || c == ',' || c == ';' || c == '=';
}

}  // namespace

Result<Url> Url::parse(std::string_view in) {
  std::string_view s = strip_fragment(trim(in));
  size_t sl = scheme_length(s);
  if (sl == 0) return make_error(Errc::invalid_argument, "not an absolute URL (no scheme)");
  std::string scheme = to_lower(s.substr(0, sl));
  if (scheme != "http" && scheme != "https")
    return make_error(Errc::invalid_argument,
                      fmt::format("unsupported URL scheme '{}' (only http and https)", scheme));
  s.remove_prefix(sl + 1);
  if (s.substr(0, 2) != "//") return make_error(Errc::invalid_argument, "URL has no '//' authority");
  s.remove_prefix(2);
  size_t auth_end = s.find_first_of("/?");
  std::string_view auth = s.substr(0, auth_end);
  std::string_view rest = auth_end == std::string_view::npos ? std::string_view() : s.substr(auth_end);

  Url u;
  u.scheme = std::move(scheme);
  size_t at = auth.rfind('@');
  if (at != std::string_view::npos) {
    u.userinfo = std::string(auth.substr(0, at));
    auth.remove_prefix(at + 1);
  }
  for (char c : u.userinfo) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return make_error(Errc::invalid_argument, "control character in URL user info");
  }
  std::string_view port_str;
  if (!auth.empty() && auth[0] == '[') {
    size_t close = auth.find(']');
    if (close == std::string_view::npos) return make_error(Errc::invalid_argument, "unterminated IPv6 literal in URL");
    std::string_view lit = auth.substr(1, close - 1);
    // Zone ids ("fe80::1%25eth0") are not supported: they never name a remote Hub.
    for (char c : lit) {
      if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return make_error(Errc::invalid_argument, "invalid IPv6 literal in URL");
    }
    in6_addr a6{};
    std::string lits(lit);
    if (inet_pton(AF_INET6, lits.c_str(), &a6) != 1)
      return make_error(Errc::invalid_argument, "invalid IPv6 literal in URL");
    u.host = to_lower(lit);
    std::string_view after = auth.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return make_error(Errc::invalid_argument, "garbage after IPv6 literal in URL");
      port_str = after.substr(1);
      if (port_str.empty()) port_str = std::string_view();
    }
  } else {
    size_t colon = auth.rfind(':');
    std::string_view host = auth;
    if (colon != std::string_view::npos) {
      host = auth.substr(0, colon);
      port_str = auth.substr(colon + 1);
    }
    for (char c : host) {
      if (!valid_reg_name_char(c))
        return make_error(Errc::invalid_argument, "invalid character in URL host");
    }
    u.host = to_lower(host);
  }
  if (u.host.empty()) return make_error(Errc::invalid_argument, "URL has an empty host");
  if (!port_str.empty()) {
    auto p = parse_u64(port_str);
    if (!p || *p == 0 || *p > 65535) return make_error(Errc::invalid_argument, "invalid port in URL");
    u.port = static_cast<uint16_t>(*p);
  } else {
    u.port = u.is_https() ? 443 : 80;
  }
  if (rest.empty() || rest[0] == '?') {
    u.target = "/";
    u.target += escape_target(rest);
  } else {
    u.target = escape_target(rest);
  }
  return u;
}

std::string remove_dot_segments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  while (!in.empty()) {
    if (in.substr(0, 3) == "../") {
      in.remove_prefix(3);
    } else if (in.substr(0, 2) == "./") {
      in.remove_prefix(2);
    } else if (in.substr(0, 3) == "/./") {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.substr(0, 4) == "/../" || in == "/..") {
      if (in == "/..") in = "/"; else in.remove_prefix(3);
      size_t slash = out.rfind('/');
      out.resize(slash == std::string::npos ? 0 : slash);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t start = in[0] == '/' ? 1 : 0;
      size_t next = in.find('/', start);
      std::string_view seg = in.substr(0, next);
      out.append(seg);
      in.remove_prefix(seg.size());
    }
  }
  if (out.empty() || out[0] != '/') out.insert(out.begin(), '/');
  return out;
}

Result<Url> Url::resolve(std::string_view location) const {
  std::string_view loc = strip_fragment(trim(location));
  if (trim(location).empty()) return make_error(Errc::protocol, "empty redirect location");
  size_t sl = scheme_length(loc);
  if (sl != 0) {
    std::string scheme = to_lower(loc.substr(0, sl));
    if (scheme != "http" && scheme != "https")
      return make_error(Errc::protocol, fmt::format("redirect to unsupported scheme '{}'", scheme));
    auto r = Url::parse(loc);
    if (!r) return make_error(Errc::protocol, "invalid redirect location: " + r.error().message);
    r->userinfo.clear();
    return r;
  }
  if (loc.substr(0, 2) == "//") {
    auto r = Url::parse(scheme + ":" + std::string(loc));
    if (!r) return make_error(Errc::protocol, "invalid redirect location: " + r.error().message);
    r->userinfo.clear();
    return r;
  }
  Url u = *this;
  u.userinfo.clear();
  if (loc.empty()) return u;  // fragment-only reference: same resource
  if (loc[0] == '?') {
    u.target = std::string(path()) + escape_target(loc);
    return u;
  }
  std::string_view lpath = loc, lquery;
  size_t q = loc.find('?');
  if (q != std::string_view::npos) {
    lpath = loc.substr(0, q);
    lquery = loc.substr(q);
  }
  std::string merged;
  if (!lpath.empty() && lpath[0] == '/') {
    merged = std::string(lpath);
  } else {
    std::string_view base = path();
    size_t slash = base.rfind('/');
    merged = std::string(base.substr(0, slash == std::string_view::npos ? 0 : slash + 1));
    merged += lpath;
    if (merged.empty() || merged[0] != '/') merged.insert(merged.begin(), '/');
  }
  u.target = escape_target(remove_dot_segments(merged)) + escape_target(lquery);
  return u;
}

bool Url::is_ip_literal() const {
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

static std::string bracket(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string Url::host_port() const {
  if (has_default_port()) return bracket(host);
  return fmt::format("{}:{}", bracket(host), port);
}

std::string Url::authority() const { return fmt::format("{}:{}", bracket(host), port); }

std::string Url::origin() const { return scheme + "://" + host_port(); }

std::string Url::str() const { return origin() + target; }

std::string Url::str_no_query() const { return origin() + std::string(path()); }

std::string_view Url::path() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view Url::query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

}  // namespace hf::http
