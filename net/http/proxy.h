// Proxy selection: HTTPS_PROXY / HTTP_PROXY / NO_PROXY semantics (curl-compatible subset).
// Immutable after construction; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/http/url.h"

namespace hf::http {

// NO_PROXY: comma-separated entries. "*" disables proxying; "example.com" and ".example.com"
// match that host and its subdomains; "host:port" only that port; IPv4/IPv6 addresses match
// exactly, "10.0.0.0/8" / "fd00::/8" by prefix; "[::1]:8080" brackets an IPv6 entry with port.
class NoProxy {
 public:
  NoProxy() = default;
  explicit NoProxy(std::string_view spec);
  bool matches(const Url& target) const;
  bool empty() const { return !all_ && entries_.empty(); }

 private:
  struct Entry {
    std::string host;   // lower case, no leading dot
    int port = 0;       // 0 = any
    bool is_ip = false;
    unsigned char addr[16] = {};
    int family = 0;     // AF_INET / AF_INET6 when is_ip
    int prefix = -1;    // CIDR prefix length, -1 = exact
  };
  bool all_ = false;
  std::vector<Entry> entries_;
};

class ProxyConfig {
 public:
  ProxyConfig() = default;
  // Explicit configuration: `proxy` applies to both schemes (empty = none).
  ProxyConfig(std::string_view proxy, std::string_view no_proxy);
  // From the environment: https_proxy/HTTPS_PROXY, http_proxy/HTTP_PROXY (lower case first, as
  // curl does), all_proxy/ALL_PROXY as a fallback, no_proxy/NO_PROXY.
  static ProxyConfig from_env();

  // The proxy to use for `target`, or nullptr for a direct connection. A proxy URL that failed
  // to parse is reported through `error()` by the client.
  const Url* proxy_for(const Url& target) const;
  // Non-empty when a configured proxy URL is unusable (bad syntax, https:// proxy).
  const std::string& error() const { return error_; }

 private:
  void set(std::optional<Url>& slot, std::string_view spec);
  std::optional<Url> http_, https_;
  NoProxy no_proxy_;
  std::string error_;
};

// "Basic <base64(user:pass)>" from a proxy URL's (percent-decoded) user info; empty when none.
std::string proxy_authorization(const Url& proxy);

}  // namespace hf::http
