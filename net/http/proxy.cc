#include "net/http/proxy.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/text.h"

namespace hf::http {
namespace {

const char* env(const char* a, const char* b) {
  const char* v = std::getenv(a);
  if (v && *v) return v;
  v = b ? std::getenv(b) : nullptr;
  return (v && *v) ? v : nullptr;
}

bool parse_ip(const std::string& s, unsigned char* out, int* family) {
  if (inet_pton(AF_INET, s.c_str(), out) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

bool prefix_equal(const unsigned char* a, const unsigned char* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
  int rem = bits % 8;
  if (rem == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rem));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

NoProxy::NoProxy(std::string_view spec) {
  for (auto raw : split(spec, ',')) {
    auto item = trim(raw);
    if (item.empty()) continue;
    if (item == "*") {
      all_ = true;
      continue;
    }
    Entry e;
    std::string_view host = item;
    std::string_view port;
    if (host[0] == '[') {
      size_t close = host.find(']');
      if (close == std::string_view::npos) continue;
      if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
      host = host.substr(1, close - 1);
    } else if (std::count(host.begin(), host.end(), ':') == 1) {
      size_t colon = host.find(':');
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
    if (!port.empty()) {
      auto p = parse_u64(port);
      if (!p || *p == 0 || *p > 65535) continue;
      e.port = static_cast<int>(*p);
    }
    std::string h = to_lower(host);
    size_t slash = h.find('/');
    if (slash != std::string::npos) {
      auto bits = parse_u64(std::string_view(h).substr(slash + 1));
      h.resize(slash);
      if (!bits || !parse_ip(h, e.addr, &e.family)) continue;
      int maxbits = e.family == AF_INET ? 32 : 128;
      if (static_cast<int>(*bits) > maxbits) continue;
      e.is_ip = true;
      e.prefix = static_cast<int>(*bits);
    } else if (parse_ip(h, e.addr, &e.family)) {
      e.is_ip = true;
    } else {
      while (!h.empty() && (h[0] == '.' || h[0] == '*')) h.erase(0, 1);
      if (h.empty()) continue;
    }
    e.host = std::move(h);
    entries_.push_back(std::move(e));
  }
}

bool NoProxy::matches(const Url& t) const {
  if (all_) return true;
  unsigned char addr[16] = {};
  int family = 0;
  bool target_ip = parse_ip(t.host, addr, &family);
  for (const auto& e : entries_) {
    if (e.port != 0 && e.port != t.port) continue;
    if (e.is_ip) {
      if (!target_ip || family != e.family) continue;
      int bits = e.prefix >= 0 ? e.prefix : (family == AF_INET ? 32 : 128);
      if (prefix_equal(addr, e.addr, bits)) return true;
    } else if (!target_ip) {
      if (t.host == e.host) return true;
      if (t.host.size() > e.host.size() && t.host.compare(t.host.size() - e.host.size(), e.host.size(), e.host) == 0 &&
          t.host[t.host.size() - e.host.size() - 1] == '.')
        return true;
    }
  }
  return false;
}

void ProxyConfig::set(std::optional<Url>& slot, std::string_view spec) {
  spec = trim(spec);
  if (spec.empty()) return;
  std::string s(spec);
  if (s.find("://") == std::string::npos) s = "http://" + s;
  auto u = Url::parse(s);
  if (!u) {
    error_ = "invalid proxy URL: " + u.error().message;
    return;
  }
  if (u->scheme != "http") {
    error_ = "only http:// proxies are supported";
    return;
  }
  slot = std::move(*u);
}

ProxyConfig::ProxyConfig(std::string_view proxy, std::string_view no_proxy) : no_proxy_(no_proxy) {
  set(http_, proxy);
  set(https_, proxy);
}

ProxyConfig ProxyConfig::from_env() {
  ProxyConfig c;
  const char* all = env("all_proxy", "ALL_PROXY");
  const char* h = env("http_proxy", "HTTP_PROXY");
  const char* hs = env("https_proxy", "HTTPS_PROXY");
  if (h || all) c.set(c.http_, h ? h : all);
  if (hs || all) c.set(c.https_, hs ? hs : all);
  if (const char* np = env("no_proxy", "NO_PROXY")) c.no_proxy_ = NoProxy(np);
  return c;
}

const Url* ProxyConfig::proxy_for(const Url& target) const {
  const auto& slot = target.is_https() ? https_ : http_;
  if (!slot || no_proxy_.matches(target)) return nullptr;
  return &*slot;
}

std::string proxy_authorization(const Url& proxy) {
  if (proxy.userinfo.empty()) return {};
  std::string_view ui = proxy.userinfo;
  size_t colon = ui.find(':');
  auto user = url_decode(ui.substr(0, colon));
  auto pass = url_decode(colon == std::string_view::npos ? std::string_view() : ui.substr(colon + 1));
  std::string plain = (user ? *user : std::string(ui.substr(0, colon))) + ":" + (pass ? *pass : std::string());
  std::string out(4 * ((plain.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

}  // namespace hf::http
