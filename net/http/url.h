// Absolute http/https URLs: parsing, redirect resolution (RFC 3986 §5.2) and formatting.
// Pure value type, thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace hf::http {

struct Url {
  std::string scheme;    // "http" or "https" (lower case)
  std::string host;      // lower case; IPv6 literals without brackets ("::1")
  uint16_t port = 0;     // always set (80/443 when the URL has none)
  std::string target;    // path + query, never empty ("/" at least), no fragment
  std::string userinfo;  // "user:pass" as written (percent-encoded); used only for proxy URLs,
                         // never printed by str()/origin()

  // Parses an absolute http/https URL. Other schemes, missing hosts, bad ports and control
  // characters in the authority are Errc::invalid_argument. Bytes that may not appear in a
  // request target (space, controls, non-ASCII, "<>\^`{|}) are percent-encoded so the result
  // is always safe to put on a request line.
  static Result<Url> parse(std::string_view absolute);

  // Resolves a Location value against this URL: absolute URLs, scheme-relative ("//h/p"),
  // absolute paths, relative paths (with dot-segment removal) and query-only references.
  // A non-http(s) scheme (e.g. "file:///etc/passwd") is Errc::protocol.
  Result<Url> resolve(std::string_view location) const;

  bool is_https() const { return scheme == "https"; }
  bool has_default_port() const { return port == (is_https() ? 443 : 80); }
  bool is_ip_literal() const;           // IPv4 dotted quad or IPv6
  std::string host_port() const;        // Host header form: "[::1]:8080", "example.com" (default port omitted)
  std::string authority() const;        // always with port: "example.com:443" (CONNECT target)
  std::string origin() const;           // "https://example.com[:port]"
  std::string str() const;              // origin() + target
  std::string str_no_query() const;     // for logs: presigned URLs carry credentials in the query
  std::string_view path() const;        // target without "?query"
  std::string_view query() const;       // after '?', empty if none
  bool same_origin(const Url& o) const { return scheme == o.scheme && host == o.host && port == o.port; }
};

// Removes "." and ".." segments from an absolute path (RFC 3986 §5.2.4).
std::string remove_dot_segments(std::string_view path);

}  // namespace hf::http
