// Pure parsers of net/http: URLs, headers, Link, Retry-After / RateLimit, NO_PROXY.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>

#include "net/http/headers.h"
#include "net/http/link_header.h"
#include "net/http/proxy.h"
#include "net/http/retry.h"
#include "net/http/url.h"

using namespace hf;
using namespace hf::http;
using std::chrono::milliseconds;

TEST_CASE("Url::parse accepts http/https and normalises", "[http][url]") {
  auto u = Url::parse("HTTPS://Example.COM/a/b?x=1#frag");
  REQUIRE(u.ok());
  CHECK(u->scheme == "https");
  CHECK(u->host == "example.com");
  CHECK(u->port == 443);
  CHECK(u->target == "/a/b?x=1");
  CHECK(u->path() == "/a/b");
  CHECK(u->query() == "x=1");
  CHECK(u->str() == "https://example.com/a/b?x=1");
  CHECK(u->str_no_query() == "https://example.com/a/b");
  CHECK(u->host_port() == "example.com");
  CHECK(u->authority() == "example.com:443");

  auto v = Url::parse("http://127.0.0.1:8080");
  REQUIRE(v.ok());
  CHECK(v->port == 8080);
  CHECK(v->target == "/");
  CHECK(v->origin() == "http://127.0.0.1:8080");
  CHECK(v->is_ip_literal());

  auto q = Url::parse("http://h?only=query");
  REQUIRE(q.ok());
  CHECK(q->target == "/?only=query");

  auto six = Url::parse("http://[::1]:9000/x");
  REQUIRE(six.ok());
  CHECK(six->host == "::1");
  CHECK(six->port == 9000);
  CHECK(six->host_port() == "[::1]:9000");
  CHECK(six->is_ip_literal());

  auto creds = Url::parse("http://user:p%40ss@proxy:3128");
  REQUIRE(creds.ok());
  CHECK(creds->userinfo == "user:p%40ss");
  CHECK(creds->host == "proxy");
  CHECK(creds->str() == "http://proxy:3128/");  // never printed
}

TEST_CASE("Url::parse escapes unsafe target bytes and rejects bad input", "[http][url]") {
  auto u = Url::parse("http://h/a b\r\nX-Injected: 1");
  REQUIRE(u.ok());
  CHECK(u->target == "/a%20b%0D%0AX-Injected:%201");
  CHECK(Url::parse("ftp://h/").code() == Errc::invalid_argument);
  CHECK(Url::parse("file:///etc/passwd").error().message.find("file") != std::string::npos);
  CHECK(!Url::parse("http://").ok());
  CHECK(!Url::parse("http://h:0/").ok());
  CHECK(!Url::parse("http://h:65536/").ok());
  CHECK(!Url::parse("http://h:12x/").ok());
  CHECK(!Url::parse("/relative").ok());
  CHECK(!Url::parse("http://[::1/").ok());
  CHECK(!Url::parse("http://[zz::1]/").ok());
  CHECK(!Url::parse("http://a b/").ok());
}

TEST_CASE("Url::resolve follows RFC 3986 section 5.4 examples", "[http][url]") {
  // Base and expectations from RFC 3986 §5.4.1 (http scheme variant; fragments dropped).
  auto base = Url::parse("http://a/b/c/d;p?q");
  REQUIRE(base.ok());
  auto r = [&](std::string_view ref) {
    auto x = base->resolve(ref);
    REQUIRE(x.ok());
    return x->str();
  };
  CHECK(r("g") == "http://a/b/c/g");
  CHECK(r("./g") == "http://a/b/c/g");
  CHECK(r("g/") == "http://a/b/c/g/");
  CHECK(r("/g") == "http://a/g");
  CHECK(r("//g") == "http://g/");
  CHECK(r("?y") == "http://a/b/c/d;p?y");
  CHECK(r("g?y") == "http://a/b/c/g?y");
  CHECK(r("#s") == "http://a/b/c/d;p?q");
  CHECK(r("g#s") == "http://a/b/c/g");
  CHECK(r(";x") == "http://a/b/c/;x");
  CHECK(r(".") == "http://a/b/c/");
  CHECK(r("./") == "http://a/b/c/");
  CHECK(r("..") == "http://a/b/");
  CHECK(r("../") == "http://a/b/");
  CHECK(r("../g") == "http://a/b/g");
  CHECK(r("../..") == "http://a/");
  CHECK(r("../../g") == "http://a/g");
  CHECK(r("../../../g") == "http://a/g");
  CHECK(r("/./g") == "http://a/g");
  CHECK(r("/../g") == "http://a/g");
  CHECK(r("g.") == "http://a/b/c/g.");
  CHECK(r("..g") == "http://a/b/c/..g");
  CHECK(r("./g/.") == "http://a/b/c/g/");
  CHECK(r("g/../h") == "http://a/b/c/h");
  CHECK(r("https://other:8443/x?y") == "https://other:8443/x?y");
  CHECK(r("/api/resolve-cache/models/a/b?etag=%22x%22") == "http://a/api/resolve-cache/models/a/b?etag=%22x%22");

  auto bad = base->resolve("file:///etc/passwd");
  REQUIRE(!bad.ok());
  CHECK(bad.code() == Errc::protocol);
  CHECK(bad.error().message.find("'file'") != std::string::npos);
  CHECK(base->resolve("javascript:alert(1)").code() == Errc::protocol);
  CHECK(base->resolve("").code() == Errc::protocol);
}

TEST_CASE("remove_dot_segments matches RFC 3986 5.2.4 walkthroughs", "[http][url]") {
  CHECK(remove_dot_segments("/a/b/c/./../../g") == "/a/g");
  CHECK(remove_dot_segments("mid/content=5/../6") == "/mid/6");
  CHECK(remove_dot_segments("/..") == "/");
}

TEST_CASE("Headers is an ordered case-insensitive multimap", "[http][headers]") {
  Headers h;
  h.add("Content-Type", "text/plain");
  h.add("X-A", "1");
  h.add("x-a", "2");
  CHECK(h.size() == 3);
  CHECK(h.get("content-type") == std::optional<std::string_view>("text/plain"));
  CHECK(h.get("X-A") == std::optional<std::string_view>("1"));
  CHECK(h.get_all("X-a") == std::vector<std::string_view>{"1", "2"});
  CHECK(!h.get("missing"));
  h.set("X-A", "3");
  CHECK(h.get_all("x-a") == std::vector<std::string_view>{"3"});
  CHECK(h.size() == 2);
  CHECK(h.begin()->first == "Content-Type");
  CHECK(h.remove("CONTENT-TYPE") == 1);
  CHECK(h.size() == 1);
  CHECK(valid_header_name("X-Xet-Hash"));
  CHECK(!valid_header_name("Bad Name"));
  CHECK(!valid_header_name(""));
  CHECK(valid_header_value("Bearer abc"));
  CHECK(!valid_header_value("a\r\nInjected: 1"));
}

TEST_CASE("Link header parsing", "[http][link]") {
  // Real capture from hub-api.md §3.2 plus a second relation, and a quoted comma.
  std::string v =
      "<https://huggingface.co/api/models/h94/IP-Adapter/tree/main?expand=false&limit=2&cursor=ZXlK%3D>; rel=\"next\", "
      "<http://127.0.0.1:8081/v1/reconstructions/abc>; rel=\"xet-reconstruction-info\"";
  auto links = parse_link_header(v);
  REQUIRE(links.size() == 2);
  CHECK(links[0].url == "https://huggingface.co/api/models/h94/IP-Adapter/tree/main?expand=false&limit=2&cursor=ZXlK%3D");
  CHECK(links[0].rel == "next");
  CHECK(links[1].rel == "xet-reconstruction-info");
  CHECK(find_link({v}, "NEXT") == std::optional<std::string>(links[0].url));
  CHECK(!find_link({v}, "prev"));
  auto odd = parse_link_header("<a,b>; title=\"x, y; z\"; rel=next , garbage, <c>;rel=\"prev next\"");
  REQUIRE(odd.size() == 2);
  CHECK(odd[0].url == "a,b");
  CHECK(odd[0].rel == "next");
  CHECK(find_link({"<a>; rel=prev", "<c>;rel=\"prev next\""}, "next") == std::optional<std::string>("c"));
  CHECK(parse_link_header("").empty());
  CHECK(parse_link_header("<unterminated").empty());
}

TEST_CASE("Retry hints: Retry-After, HTTP dates and RateLimit", "[http][retry]") {
  // RFC 9110 §5.6.7 example date: Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == std::optional<int64_t>(784111777));
  CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == std::optional<int64_t>(784111777));
  CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == std::optional<int64_t>(784111777));
  CHECK(parse_http_date("Tue, 18 Jun 2019 09:06:51 GMT") == std::optional<int64_t>(1560848811));
  CHECK(!parse_http_date("yesterday"));
  CHECK(!parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));

  CHECK(parse_retry_after("120", 0) == std::optional<milliseconds>(120000));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", 784111777) == std::optional<milliseconds>(10000));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800) == std::optional<milliseconds>(0));
  CHECK(!parse_retry_after("-1", 0));
  CHECK(!parse_retry_after("soon", 0));

  CHECK(parse_ratelimit_wait("\"api\";r=0;t=42") == std::optional<milliseconds>(43000));
  CHECK(!parse_ratelimit_wait("\"api\";r=12;t=42"));
  CHECK(parse_ratelimit_wait("\"resolvers\";r=5;t=10, \"api\";r=0;t=3") == std::optional<milliseconds>(4000));
  CHECK(parse_ratelimit_wait("\"api\" ; r = 0 ; t = 0") == std::optional<milliseconds>(1000));
  CHECK(!parse_ratelimit_wait("garbage"));

  CHECK(retryable_status(503));
  CHECK(retryable_status(429));
  CHECK(retryable_status(408));
  CHECK(!retryable_status(501));
  CHECK(!retryable_status(404));
  CHECK(!retryable_status(403));
}

TEST_CASE("Backoff is full-jitter exponential, capped", "[http][retry]") {
  RetryPolicy p;
  p.base_delay = milliseconds(100);
  p.max_delay = milliseconds(1000);
  for (int retry = 1; retry <= 8; ++retry) {
    int64_t cap = std::min<int64_t>(1000, 100ll << (retry - 1));
    int64_t maxseen = 0;
    for (int i = 0; i < 300; ++i) {
      auto d = backoff_delay(p, retry).count();
      REQUIRE(d >= 0);
      REQUIRE(d < cap);
      maxseen = std::max(maxseen, d);
    }
    CHECK(maxseen > cap / 2);  // jitter spreads over the whole window (p(fail) ~ 2^-300)
  }
  p.base_delay = milliseconds(0);
  CHECK(backoff_delay(p, 3).count() == 0);
}

TEST_CASE("NO_PROXY matching", "[http][proxy]") {
  auto url = [](const char* s) { return *Url::parse(s); };
  NoProxy np("localhost, .internal.example, example.org:8080, 10.0.0.0/8, 192.168.1.5, [::1], fd00::/8");
  CHECK(np.matches(url("http://localhost/")));
  CHECK(np.matches(url("http://a.internal.example/")));
  CHECK(np.matches(url("http://internal.example/")));
  CHECK(!np.matches(url("http://notinternal.example/")));
  CHECK(np.matches(url("http://example.org:8080/")));
  CHECK(!np.matches(url("http://example.org/")));
  CHECK(np.matches(url("http://www.example.org:8080/")));
  CHECK(np.matches(url("http://10.1.2.3/")));
  CHECK(!np.matches(url("http://11.1.2.3/")));
  CHECK(np.matches(url("http://192.168.1.5:99/")));
  CHECK(!np.matches(url("http://192.168.1.6/")));
  CHECK(np.matches(url("http://[::1]:8000/")));
  CHECK(np.matches(url("http://[fd12::5]/")));
  CHECK(!np.matches(url("http://[fe80::1]/")));
  CHECK(!np.matches(url("https://huggingface.co/")));
  CHECK(NoProxy("*").matches(url("https://huggingface.co/")));
  CHECK(NoProxy("").empty());

  ProxyConfig pc("http://u:p@proxy.local:3128", "localhost");
  REQUIRE(pc.error().empty());
  const Url* p = pc.proxy_for(url("https://huggingface.co/x"));
  REQUIRE(p != nullptr);
  CHECK(p->host == "proxy.local");
  CHECK(p->port == 3128);
  CHECK(pc.proxy_for(url("http://localhost:1/")) == nullptr);
  CHECK(proxy_authorization(*p) == "Basic dTpw");  // base64("u:p")
  CHECK(!ProxyConfig("https://secure-proxy:443", "").error().empty());
}

TEST_CASE("Proxy configuration from the environment", "[http][proxy]") {
  setenv("https_proxy", "proxy-a:1080", 1);
  setenv("http_proxy", "http://proxy-b:3128", 1);
  setenv("no_proxy", "hub.local", 1);
  auto pc = ProxyConfig::from_env();
  unsetenv("https_proxy");
  unsetenv("http_proxy");
  unsetenv("no_proxy");
  auto https = pc.proxy_for(*Url::parse("https://huggingface.co/"));
  REQUIRE(https);
  CHECK(https->host == "proxy-a");
  CHECK(https->port == 1080);
  auto http = pc.proxy_for(*Url::parse("http://example.com/"));
  REQUIRE(http);
  CHECK(http->host == "proxy-b");
  CHECK(pc.proxy_for(*Url::parse("https://hub.local/")) == nullptr);
}
