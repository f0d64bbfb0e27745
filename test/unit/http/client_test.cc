// http::Client against the scriptable loopback server: pooling, TLS, redirects, retries,
// timeouts, bad peers, cancellation, proxies, concurrency.
#include <utility>  // before Asio (asio#944)

#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/sha256.h"
#include "base/text.h"
#include "net/http/client.h"
#include "net/http/multipart.h"
#include "test/unit/http/test_server.h"
#include "test/unit/http/test_util.h"

using namespace hf;
using namespace hf::http;
using namespace hf::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

ClientOptions fast_opts() {
  ClientOptions o;
  o.use_env_proxy = false;
  o.retry.base_delay = 5ms;
  o.retry.max_delay = 50ms;
  o.retry.budget = 5000ms;
  o.timeouts.connect = 2000ms;
  o.timeouts.tls = 2000ms;
  o.timeouts.first_byte = 5000ms;
  o.timeouts.idle = 5000ms;
  return o;
}

Reply ok(std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Reply r;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

Reply status(int s, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Reply r;
  r.status = s;
  r.headers = std::move(headers);
  return r;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace

TEST_CASE("GET: status, headers, body, User-Agent, keep-alive reuse", "[http][client]") {
  TestServer srv([](const ReceivedRequest& r) { return ok("hello " + r.target, {{"X-Test", "yes"}}); });
  IoThreads io;
  Client c(io.io, fast_opts());
  for (int i = 0; i < 5; ++i) {
    auto r = fetch_sync(c, get(srv.url(fmt::format("/p{}?q=1", i))));
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == fmt::format("hello /p{}?q=1", i));
    CHECK(r->headers.get("x-test") == std::optional<std::string_view>("yes"));
    CHECK(r->content_length == std::optional<uint64_t>(r->body.size()));
    CHECK(r->url == srv.url(fmt::format("/p{}?q=1", i)));
    CHECK(r->attempts == 1);
  }
  CHECK(srv.connections() == 1);
  auto st = c.stats();
  CHECK(st.connections_opened == 1);
  CHECK(st.connections_reused == 4);
  CHECK(st.requests == 5);
  CHECK(st.responses_by_class[2] == 5);
  uint64_t ttfb = 0;
  for (auto v : st.ttfb_us_log2) ttfb += v;
  CHECK(ttfb == 5);
  CHECK(st.bytes_out > 5 * 20);
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 5);
  CHECK(reqs[0].headers.get("User-Agent") == std::optional<std::string_view>("hf-mount-cpp/" HF_VERSION));
  CHECK(reqs[0].headers.get("Host") == std::optional<std::string_view>(fmt::format("127.0.0.1:{}", srv.port())));
}

TEST_CASE("HTTP error statuses are responses, not transport errors", "[http][client]") {
  TestServer srv([](const ReceivedRequest& r) {
    Reply x = status(r.target == "/404" ? 404 : 500);
    x.body = "{\"error\":\"nope\"}";
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;
  Client c(io.io, o);
  auto a = fetch_sync(c, get(srv.url("/404")));
  REQUIRE(a.ok());
  CHECK(a->status == 404);
  CHECK(a->body == "{\"error\":\"nope\"}");
  auto b = fetch_sync(c, get(srv.url("/500")));
  REQUIRE(b.ok());
  CHECK(b->status == 500);
  CHECK(srv.request_count() == 2);
}

TEST_CASE("Bad requests are refused before any I/O", "[http][client]") {
  IoThreads io;
  Client c(io.io, fast_opts());
  CHECK(fetch_sync(c, get("ftp://example.com/")).code() == Errc::invalid_argument);
  CHECK(fetch_sync(c, get("not a url")).code() == Errc::invalid_argument);
  auto r = get("http://127.0.0.1:1/");
  r.headers.add("X-Evil", "a\r\nInjected: yes");
  CHECK(fetch_sync(c, r).code() == Errc::invalid_argument);
  auto m = get("http://127.0.0.1:1/");
  m.method = "GE T";
  CHECK(fetch_sync(c, m).code() == Errc::invalid_argument);
}

TEST_CASE("Connection refused is Errc::network", "[http][client]") {
  // Grab a free port, then close it so nothing listens there.
  boost::asio::io_context tmp;
  boost::asio::ip::tcp::acceptor a(tmp, {boost::asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = a.local_endpoint().port();
  a.close();
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 2;
  Client c(io.io, o);
  auto r = fetch_sync(c, get(fmt::format("http://127.0.0.1:{}/", port)));
  REQUIRE(!r.ok());
  CHECK(r.code() == Errc::network);
  CHECK(r.error().message.find("refused") != std::string::npos);
  CHECK(c.stats().retries == 1);
  CHECK(c.stats().errors(Errc::network) == 1);
}

TEST_CASE("Pool cap: concurrent requests share at most N connections, extra ones queue", "[http][client][pool]") {
  TestServer srv([](const ReceivedRequest&) {
    Reply r = ok("x");
    r.head_delay = 60ms;
    return r;
  });
  IoThreads io;
  auto o = fast_opts();
  o.max_connections_per_host = 2;
  Client c(io.io, o);
  std::vector<std::future<Result<Response>>> fs;
  for (int i = 0; i < 10; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    fs.push_back(p->get_future());
    c.fetch(get(srv.url("/slow")), [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : fs) {
    auto r = wait_for(f);
    REQUIRE(r.ok());
    CHECK(r->body == "x");
  }
  CHECK(srv.connections() == 2);
  CHECK(srv.max_concurrent() == 2);
  CHECK(c.stats().connections_opened == 2);
}

TEST_CASE("Many concurrent requests from several threads", "[http][client][pool]") {
  TestServer srv([](const ReceivedRequest& r) { return ok("echo:" + r.target); });
  IoThreads io(2);
  auto o = fast_opts();
  o.max_connections_per_host = 6;
  Client c(io.io, o);
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> callers;
  std::atomic<int> done{0};
  constexpr int kThreads = 4, kPer = 60;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        std::string path = fmt::format("/t{}/{}", t, i);
        c.fetch(get(srv.url(path)), [&, path](Result<Response> r) {
          if (r.ok() && r->status == 200 && r->body == "echo:" + path) ++good;
          else ++bad;
          ++done;
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  auto deadline = Clock::now() + 20s;
  while (done.load() < kThreads * kPer && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(good.load() == kThreads * kPer);
  CHECK(bad.load() == 0);
  CHECK(srv.connections() <= 6);
  CHECK(srv.request_count() == kThreads * kPer);
}

TEST_CASE("TLS: verified with the test CA, refused without it, hostname checked", "[http][client][tls]") {
  TestPki pki;
  TestServer::Options so;
  so.tls = true;
  so.cert = pki.issue({"localhost"}, {"127.0.0.1"});
  TestServer srv([](const ReceivedRequest& r) { return ok("secure " + r.target); }, so);
  IoThreads io;

  SECTION("trusted CA") {
    auto o = fast_opts();
    o.extra_ca_file = pki.ca_file();
    Client c(io.io, o);
    for (auto host : {"127.0.0.1", "localhost"}) {
      auto r = fetch_sync(c, get(srv.url("/a", host)));
      REQUIRE(r.ok());
      CHECK(r->body == "secure /a");
    }
    auto again = fetch_sync(c, get(srv.url("/b")));
    REQUIRE(again.ok());
    CHECK(srv.connections() == 2);  // one per host name, the second 127.0.0.1 request reused
  }
  SECTION("CA from HF_MOUNT_CA_BUNDLE") {
    setenv("HF_MOUNT_CA_BUNDLE", pki.ca_file().c_str(), 1);
    Client c(io.io, fast_opts());
    unsetenv("HF_MOUNT_CA_BUNDLE");
    auto r = fetch_sync(c, get(srv.url("/env")));
    REQUIRE(r.ok());
    CHECK(r->body == "secure /env");
  }
  SECTION("untrusted CA") {
    Client c(io.io, fast_opts());
    auto r = fetch_sync(c, get(srv.url("/a")));
    REQUIRE(!r.ok());
    CHECK(r.code() == Errc::tls);
    CHECK(r.error().message.find("certificate verify failed") != std::string::npos);
    CHECK(srv.request_count() == 0);
  }
  SECTION("insecure_skip_verify (tests only)") {
    auto o = fast_opts();
    o.insecure_skip_verify = true;
    Client c(io.io, o);
    CHECK(fetch_sync(c, get(srv.url("/a"))).ok());
  }
  SECTION("missing CA file is a clear TLS error") {
    auto o = fast_opts();
    o.extra_ca_file = "/nonexistent/ca.pem";
    Client c(io.io, o);
    auto r = fetch_sync(c, get(srv.url("/a")));
    CHECK(r.code() == Errc::tls);
    CHECK(r.error().message.find("/nonexistent/ca.pem") != std::string::npos);
  }
}

TEST_CASE("TLS: hostname mismatch is refused", "[http][client][tls]") {
  TestPki pki;
  TestServer::Options so;
  so.tls = true;
  so.cert = pki.issue({"other.example"}, {});
  TestServer srv([](const ReceivedRequest&) { return ok("x"); }, so);
  IoThreads io;
  auto o = fast_opts();
  o.extra_ca_file = pki.ca_file();
  Client c(io.io, o);
  for (auto host : {"127.0.0.1", "localhost"}) {
    auto r = fetch_sync(c, get(srv.url("/", host)));
    REQUIRE(!r.ok());
    CHECK(r.code() == Errc::tls);
    CHECK(r.error().message.find("hostname mismatch") != std::string::npos);
  }
  CHECK(srv.request_count() == 0);
}

TEST_CASE("Redirects: relative, absolute, cross-origin drops Authorization", "[http][client][redirect]") {
  TestServer other([](const ReceivedRequest& r) { return ok("other " + r.target); });
  std::string other_url = other.url("/landing?sig=secret");
  TestServer srv([&](const ReceivedRequest& r) {
    if (r.target == "/a/b") return status(301, {{"Location", "c?x=1"}});
    if (r.target == "/a/c?x=1") return status(302, {{"Location", "/final"}});
    if (r.target == "/final") return ok("final");
    if (r.target == "/cross") return status(307, {{"Location", other_url}});
    if (r.target == "/same") return status(308, {{"Location", "/final"}});
    if (r.target == "/nolocation") return status(302);
    return status(404);
  });
  IoThreads io;
  Client c(io.io, fast_opts());

  auto r = fetch_sync(c, get(srv.url("/a/b")));
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->body == "final");
  CHECK(r->url == srv.url("/final"));
  CHECK(c.stats().redirects == 2);

  auto same = get(srv.url("/same"));
  same.headers.add("Authorization", "Bearer hf_secret");
  REQUIRE(fetch_sync(c, same).ok());
  CHECK(srv.requests().back().headers.get("Authorization") == std::optional<std::string_view>("Bearer hf_secret"));

  auto cross = get(srv.url("/cross"));
  cross.headers.add("Authorization", "Bearer hf_secret");
  auto x = fetch_sync(c, cross);
  REQUIRE(x.ok());
  CHECK(x->body == "other /landing?sig=secret");
  REQUIRE(other.request_count() == 1);
  CHECK(!other.requests()[0].headers.contains("Authorization"));
  CHECK(srv.requests().back().headers.contains("Authorization"));

  auto nofollow = get(srv.url("/a/b"));
  nofollow.max_redirects = 0;
  auto n = fetch_sync(c, nofollow);
  REQUIRE(n.ok());
  CHECK(n->status == 301);
  CHECK(n->headers.get("Location") == std::optional<std::string_view>("c?x=1"));

  auto nl = fetch_sync(c, get(srv.url("/nolocation")));
  REQUIRE(nl.ok());
  CHECK(nl->status == 302);
}

TEST_CASE("Redirects: loops, limits, non-http schemes, method rewriting", "[http][client][redirect]") {
  TestServer srv([](const ReceivedRequest& r) {
    if (r.target == "/loop1") return status(302, {{"Location", "/loop2"}});
    if (r.target == "/loop2") return status(302, {{"Location", "/loop1"}});
    if (r.target.rfind("/chain/", 0) == 0) {
      int k = std::stoi(r.target.substr(7));
      return status(302, {{"Location", fmt::format("/chain/{}", k + 1)}});
    }
    if (r.target == "/file") return status(302, {{"Location", "file:///etc/passwd"}});
    if (r.target == "/see-other") return status(303, {{"Location", "/echo"}});
    if (r.target == "/temp") return status(307, {{"Location", "/echo"}});
    if (r.target == "/echo") return ok(r.method + ":" + r.body);
    return status(404);
  });
  IoThreads io;
  Client c(io.io, fast_opts());
  auto loop = fetch_sync(c, get(srv.url("/loop1")));
  REQUIRE(!loop.ok());
  CHECK(loop.code() == Errc::protocol);
  CHECK(loop.error().message.find("redirect loop") != std::string::npos);

  auto lim = get(srv.url("/chain/0"));
  lim.max_redirects = 3;
  auto l = fetch_sync(c, lim);
  REQUIRE(!l.ok());
  CHECK(l.code() == Errc::protocol);
  CHECK(l.error().message.find("too many redirects") != std::string::npos);

  auto f = fetch_sync(c, get(srv.url("/file")));
  REQUIRE(!f.ok());
  CHECK(f.code() == Errc::protocol);
  CHECK(f.error().message.find("'file'") != std::string::npos);

  Request post;
  post.method = "POST";
  post.url = srv.url("/see-other");
  post.body = std::make_shared<const std::string>("payload");
  post.headers.add("Content-Type", "text/plain");
  auto so = fetch_sync(c, post);
  REQUIRE(so.ok());
  CHECK(so->body == "GET:");
  CHECK(!srv.requests().back().headers.contains("Content-Type"));

  post.url = srv.url("/temp");
  auto t = fetch_sync(c, post);
  REQUIRE(t.ok());
  CHECK(t->body == "POST:payload");
}

TEST_CASE("Retries: 503 then success, Retry-After honoured and capped", "[http][client][retry]") {
  std::atomic<int> n{0};
  TestServer srv([&](const ReceivedRequest& r) {
    int k = n++;
    if (r.target == "/flaky") return k < 2 ? status(503, {{"Retry-After", "0"}}) : ok("finally");
    if (r.target == "/slowdown") return k == 0 ? status(429, {{"Retry-After", "1"}}) : ok("after 1s");
    if (r.target == "/capped") return k == 0 ? status(429, {{"Retry-After", "30"}}) : ok("capped");
    if (r.target == "/ratelimit") return k == 0 ? status(429, {{"RateLimit", "\"api\";r=0;t=0"}}) : ok("rl");
    return status(503);
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_delay = 5000ms;
  Client c(io.io, o);

  auto r = fetch_sync(c, get(srv.url("/flaky")));
  REQUIRE(r.ok());
  CHECK(r->body == "finally");
  CHECK(r->attempts == 3);
  CHECK(srv.request_count() == 3);
  CHECK(c.stats().retries == 2);

  n = 0;
  auto t0 = Clock::now();
  auto s = fetch_sync(c, get(srv.url("/slowdown")));
  REQUIRE(s.ok());
  CHECK(s->body == "after 1s");
  CHECK(seconds_since(t0) >= 0.95);
  CHECK(seconds_since(t0) < 3.0);

  n = 0;
  t0 = Clock::now();
  auto rl = fetch_sync(c, get(srv.url("/ratelimit")));  // t=0 -> wait t+1 = 1 s
  REQUIRE(rl.ok());
  CHECK(seconds_since(t0) >= 0.95);

  n = 0;
  auto capped = get(srv.url("/capped"));
  RetryPolicy p = o.retry;
  p.max_delay = 100ms;
  capped.retry = p;
  t0 = Clock::now();
  auto cr = fetch_sync(c, capped);
  REQUIRE(cr.ok());
  CHECK(cr->body == "capped");
  CHECK(seconds_since(t0) < 1.0);
}

TEST_CASE("Retries: exhausted attempts and budget return the last status", "[http][client][retry]") {
  TestServer srv([](const ReceivedRequest&) { return status(502); });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 3;
  Client c(io.io, o);
  auto r = fetch_sync(c, get(srv.url("/")));
  REQUIRE(r.ok());
  CHECK(r->status == 502);
  CHECK(r->attempts == 3);
  CHECK(srv.request_count() == 3);

  auto b = get(srv.url("/"));
  RetryPolicy p;
  p.max_attempts = 1000;
  p.base_delay = 20ms;
  p.max_delay = 40ms;
  p.budget = 300ms;
  b.retry = p;
  auto t0 = Clock::now();
  auto rb = fetch_sync(c, b);
  REQUIRE(rb.ok());
  CHECK(rb->status == 502);
  CHECK(seconds_since(t0) < 1.0);
}

TEST_CASE("Retries: reset before the head is retried for idempotent requests only", "[http][client][retry]") {
  std::atomic<int> n{0};
  TestServer srv([&](const ReceivedRequest& r) {
    int k = n++;
    if (r.target == "/reset-once" && k == 0) {
      Reply x;
      x.reset_without_reply = true;
      return x;
    }
    if (r.target == "/post-reset") {
      Reply x;
      x.reset_without_reply = true;
      return x;
    }
    if (r.target == "/post-503") return status(503);
    return ok("ok");
  });
  IoThreads io;
  Client c(io.io, fast_opts());
  auto r = fetch_sync(c, get(srv.url("/reset-once")));
  REQUIRE(r.ok());
  CHECK(r->body == "ok");
  CHECK(r->attempts == 2);

  Request post;
  post.method = "POST";
  post.url = srv.url("/post-503");
  post.body = std::make_shared<const std::string>("x");
  n = 0;
  auto p = fetch_sync(c, post);
  REQUIRE(p.ok());
  CHECK(p->status == 503);
  CHECK(n.load() == 1);

  post.url = srv.url("/post-reset");
  n = 0;
  auto pr = fetch_sync(c, post);
  REQUIRE(!pr.ok());
  CHECK(pr.code() == Errc::network);
  CHECK(n.load() == 1);

  post.url = srv.url("/post-503");
  post.idempotent = true;  // e.g. bucket batch: safe to repeat
  n = 0;
  auto pi = fetch_sync(c, post);
  REQUIRE(pi.ok());
  CHECK(pi->status == 503);
  CHECK(n.load() == 4);
}

TEST_CASE("Stale pooled connection: idempotent requests are re-sent, POST is not", "[http][client][pool]") {
  // The server answers the first request of each connection and closes the connection,
  // without a reply, on the second one: exactly what a keep-alive timeout race looks like.
  std::mutex mu;
  std::map<int, int> per_conn;
  TestServer srv([&](const ReceivedRequest& r) {
    std::lock_guard lk(mu);
    if (per_conn[r.connection]++ == 0) return ok("first");
    Reply x;
    x.close_without_reply = true;
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;  // the re-send is not a retry
  Client c(io.io, o);
  REQUIRE(fetch_sync(c, get(srv.url("/1"))).ok());
  auto r = fetch_sync(c, get(srv.url("/2")));
  REQUIRE(r.ok());
  CHECK(r->body == "first");
  CHECK(srv.connections() == 2);
  CHECK(c.stats().stale_resends == 1);

  Request post;
  post.method = "POST";
  post.url = srv.url("/3");
  post.body = std::make_shared<const std::string>("data");
  auto p = fetch_sync(c, post);  // reuses connection 2, which drops it: the server may have seen it
  REQUIRE(!p.ok());
  CHECK(p.code() == Errc::network);
}

TEST_CASE("Timeouts: first byte, idle mid-body, total deadline, with bounded test time", "[http][client][timeout]") {
  TestServer srv([](const ReceivedRequest& r) {
    Reply x = ok(pattern(10000));
    if (r.target == "/slow-head") x.head_delay = 5000ms;
    if (r.target == "/stall") {
      x.stall_after = 1000;
      x.stall_for = std::chrono::milliseconds(-1);
    }
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;
  Client c(io.io, o);

  auto fb = get(srv.url("/slow-head"));
  fb.timeouts = o.timeouts;
  fb.timeouts->first_byte = 200ms;
  auto t0 = Clock::now();
  auto r = fetch_sync(c, fb);
  REQUIRE(!r.ok());
  CHECK(r.code() == Errc::timed_out);
  CHECK(r.error().message.find("first byte") != std::string::npos);
  CHECK(seconds_since(t0) < 1.5);

  auto idle = get(srv.url("/stall"));
  idle.timeouts = o.timeouts;
  idle.timeouts->idle = 200ms;
  size_t got = 0;
  StreamHandler h;
  h.on_data = [&](std::span<const uint8_t> d) {
    got += d.size();
    return Status();
  };
  t0 = Clock::now();
  auto s = stream_sync(c, idle, h);
  REQUIRE(!s.ok());
  CHECK(s.code() == Errc::timed_out);
  CHECK(s.error().message.find("idle") != std::string::npos);
  CHECK(got == 1000);
  CHECK(seconds_since(t0) < 1.5);

  auto total = get(srv.url("/slow-head"));
  total.timeouts = o.timeouts;
  total.timeouts->total = 300ms;
  t0 = Clock::now();
  auto tt = fetch_sync(c, total);
  REQUIRE(!tt.ok());
  CHECK(tt.code() == Errc::timed_out);
  CHECK(tt.error().message.find("total deadline") != std::string::npos);
  CHECK(seconds_since(t0) < 1.5);

  // A timed-out first byte is retried (idempotent): the second attempt succeeds.
  std::atomic<int> n{0};
  TestServer flaky([&](const ReceivedRequest&) {
    Reply x = ok("late but fine");
    if (n++ == 0) x.head_delay = 3000ms;
    return x;
  });
  auto rt = get(flaky.url("/"));
  rt.timeouts = o.timeouts;
  rt.timeouts->first_byte = 200ms;
  RetryPolicy p = o.retry;
  p.max_attempts = 3;
  rt.retry = p;
  auto rr = fetch_sync(c, rt);
  REQUIRE(rr.ok());
  CHECK(rr->body == "late but fine");
  CHECK(rr->attempts == 2);
}

TEST_CASE("Timeouts: connect phase", "[http][client][timeout]") {
  // A listener whose accept queue is full drops further SYNs, so connect() hangs.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(lfd, 0) == 0);
  socklen_t len = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    fillers.push_back(f);
  }
  std::this_thread::sleep_for(50ms);
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;
  o.timeouts.connect = 300ms;
  Client c(io.io, o);
  auto t0 = Clock::now();
  auto r = fetch_sync(c, get(fmt::format("http://127.0.0.1:{}/", ntohs(sa.sin_port))));
  double el = seconds_since(t0);
  for (int f : fillers) ::close(f);
  ::close(lfd);
  REQUIRE(!r.ok());
  CHECK(r.code() == Errc::timed_out);
  CHECK(r.error().message.find("connect") != std::string::npos);
  CHECK(el < 1.5);
}

TEST_CASE("Bodies: chunked, truncated, HEAD, 204, interim 100, HTTP/1.0 EOF-delimited", "[http][client][body]") {
  const std::string big = pattern(300000, 7);
  TestServer srv([&](const ReceivedRequest& r) {
    Reply x;
    if (r.target == "/chunked") {
      x.body = big;
      x.chunked = true;
      x.chunk_size = 7777;
    } else if (r.target == "/truncated") {
      x.body = big.substr(0, 5000);
      x.content_length = 10000;
      x.end = Reply::End::close;
    } else if (r.target == "/chunked-truncated") {
      x.custom = [](Conn& c) {
        c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc");
        c.close();
      };
    } else if (r.target == "/bad-chunk") {
      x.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    } else if (r.target == "/head") {
      x.body = big;
    } else if (r.target == "/204") {
      x.status = 204;
    } else if (r.target == "/interim") {
      x.raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter";
    } else if (r.target == "/http10") {
      x.custom = [](Conn& c) {
        c.write("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
        c.close();
      };
    }
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;
  Client c(io.io, o);

  auto ch = fetch_sync(c, get(srv.url("/chunked")));
  REQUIRE(ch.ok());
  CHECK(sha256_hex(ch->body) == sha256_hex(big));
  CHECK(!ch->content_length);

  std::string streamed;
  size_t pieces = 0;
  StreamHandler h;
  h.on_data = [&](std::span<const uint8_t> d) {
    streamed.append(reinterpret_cast<const char*>(d.data()), d.size());
    ++pieces;
    return Status();
  };
  REQUIRE(stream_sync(c, get(srv.url("/chunked")), h).ok());
  CHECK(streamed == big);
  CHECK(pieces > 1);

  auto t = fetch_sync(c, get(srv.url("/truncated")));
  REQUIRE(!t.ok());
  CHECK(t.code() == Errc::protocol);
  CHECK(t.error().message.find("truncated: received 5000 of 10000") != std::string::npos);

  auto ct = fetch_sync(c, get(srv.url("/chunked-truncated")));
  REQUIRE(!ct.ok());
  CHECK(ct.code() == Errc::protocol);

  auto bc = fetch_sync(c, get(srv.url("/bad-chunk")));
  REQUIRE(!bc.ok());
  CHECK(bc.code() == Errc::protocol);

  int before = srv.connections();
  Request head = get(srv.url("/head"));
  head.method = "HEAD";
  auto hd = fetch_sync(c, head);
  REQUIRE(hd.ok());
  CHECK(hd->content_length == std::optional<uint64_t>(big.size()));
  CHECK(hd->body.empty());
  auto n204 = fetch_sync(c, get(srv.url("/204")));
  REQUIRE(n204.ok());
  CHECK(n204->status == 204);
  CHECK(srv.connections() == before + 1);  // HEAD and 204 kept the connection reusable

  auto in = fetch_sync(c, get(srv.url("/interim")));
  REQUIRE(in.ok());
  CHECK(in->status == 200);
  CHECK(in->body == "after");

  auto e = fetch_sync(c, get(srv.url("/http10")));
  REQUIRE(e.ok());
  CHECK(e->body == "until the end");
}

TEST_CASE("Retries: truncated bodies are retried by fetch()", "[http][client][retry]") {
  std::atomic<int> n{0};
  const std::string body = pattern(50000, 3);
  TestServer srv([&](const ReceivedRequest&) {
    Reply x;
    x.body = body;
    if (n++ == 0) {
      x.body = body.substr(0, 20000);
      x.content_length = body.size();
      x.end = Reply::End::close;
    }
    return x;
  });
  IoThreads io;
  Client c(io.io, fast_opts());
  auto r = fetch_sync(c, get(srv.url("/")));
  REQUIRE(r.ok());
  CHECK(r->body == body);
  CHECK(r->attempts == 2);
}

TEST_CASE("Hostile peers: oversized heads, endless chunks, 10^18 Content-Length", "[http][client][limits]") {
  TestServer srv([](const ReceivedRequest& r) {
    Reply x;
    if (r.target == "/big-head") {
      x.raw = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(100000, 'a') + "\r\nContent-Length: 0\r\n\r\n";
    } else if (r.target == "/endless") {
      x.custom = [](Conn& c) {
        if (!c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) return;
        std::string chunk = "10000\r\n" + std::string(0x10000, 'z') + "\r\n";
        while (c.write(chunk)) {
        }
      };
    } else if (r.target == "/huge-length") {
      x.custom = [](Conn& c) {
        if (!c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n")) return;
        std::string block(1 << 16, 'h');
        while (c.write(block)) {
        }
      };
    }
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.retry.max_attempts = 1;
  Client c(io.io, o);

  auto bh = fetch_sync(c, get(srv.url("/big-head")));
  REQUIRE(!bh.ok());
  CHECK(bh.code() == Errc::protocol);
  CHECK(bh.error().message.find("too large") != std::string::npos);

  auto en = get(srv.url("/endless"));
  en.max_buffered_body = 1 << 20;
  auto e = fetch_sync(c, en);
  REQUIRE(!e.ok());
  CHECK(e.code() == Errc::too_large);

  auto hl = get(srv.url("/huge-length"));
  auto t0 = Clock::now();
  auto h = fetch_sync(c, hl);
  REQUIRE(!h.ok());
  CHECK(h.code() == Errc::too_large);
  CHECK(seconds_since(t0) < 2.0);

  // Streaming: only the consumer decides when to stop.
  uint64_t seen = 0;
  StreamHandler sh;
  std::optional<uint64_t> announced;
  sh.on_head = [&](const ResponseHead& hd) {
    announced = hd.content_length;
    return Status();
  };
  sh.on_data = [&](std::span<const uint8_t> d) -> Status {
    seen += d.size();
    if (seen >= (8u << 20)) return make_error(Errc::cancelled, "consumer has enough");
    return {};
  };
  auto s = stream_sync(c, get(srv.url("/huge-length")), sh);
  REQUIRE(!s.ok());
  CHECK(s.code() == Errc::cancelled);
  CHECK(s.error().message == "consumer has enough");
  CHECK(announced == std::optional<uint64_t>(1000000000000000000ull));
  CHECK(seen >= (8u << 20));
  CHECK(seen < (9u << 20));

  seen = 0;
  auto se = stream_sync(c, get(srv.url("/endless")), sh);
  CHECK(se.code() == Errc::cancelled);
}

TEST_CASE("Cancellation: mid-body, in the pool queue, during backoff, shutdown", "[http][client][cancel]") {
  TestServer srv([](const ReceivedRequest& r) {
    Reply x = ok(pattern(100000));
    if (r.target == "/stall") {
      x.stall_after = 1000;
      x.stall_for = std::chrono::milliseconds(-1);
    }
    if (r.target == "/busy") x.head_delay = 3000ms;
    if (r.target == "/503") return status(503);
    return x;
  });
  IoThreads io;
  auto o = fast_opts();
  o.max_connections_per_host = 1;
  Client c(io.io, o);

  {
    auto req = get(srv.url("/stall"));
    req.cancel = make_cancel();
    auto tok = req.cancel;
    StreamHandler h;
    std::atomic<size_t> got{0};
    h.on_data = [&](std::span<const uint8_t> d) {
      if (got.fetch_add(d.size()) == 0) {
        std::thread([tok] {
          std::this_thread::sleep_for(50ms);
          tok->cancel();
        }).detach();
      }
      return Status();
    };
    auto t0 = Clock::now();
    auto r = stream_sync(c, req, h);
    REQUIRE(!r.ok());
    CHECK(r.code() == Errc::cancelled);
    CHECK(got.load() == 1000);
    CHECK(seconds_since(t0) < 1.0);
  }
  {
    // One connection, busy for 3 s: the second request waits in the queue and is cancelled.
    auto p1 = std::make_shared<std::promise<Result<Response>>>();
    auto f1 = p1->get_future();
    c.fetch(get(srv.url("/busy")), [p1](Result<Response> r) { p1->set_value(std::move(r)); });
    std::this_thread::sleep_for(100ms);
    auto req = get(srv.url("/queued"));
    req.cancel = make_cancel();
    auto p2 = std::make_shared<std::promise<Result<Response>>>();
    auto f2 = p2->get_future();
    c.fetch(req, [p2](Result<Response> r) { p2->set_value(std::move(r)); });
    std::this_thread::sleep_for(50ms);
    auto t0 = Clock::now();
    req.cancel->cancel();
    auto r2 = wait_for(f2);
    CHECK(r2.code() == Errc::cancelled);
    CHECK(seconds_since(t0) < 0.5);
    auto r1 = wait_for(f1);
    CHECK(r1.ok());
  }
  {
    auto req = get(srv.url("/503"));
    RetryPolicy p;
    p.max_attempts = 5;
    p.base_delay = 5000ms;
    p.max_delay = 5000ms;
    req.retry = p;
    req.cancel = make_cancel();
    auto tok = req.cancel;
    std::thread([tok] {
      std::this_thread::sleep_for(200ms);
      tok->cancel();
    }).detach();
    auto t0 = Clock::now();
    auto r = fetch_sync(c, req);
    CHECK(r.code() == Errc::cancelled);
    CHECK(seconds_since(t0) < 1.0);
  }
  {
    auto tok = make_cancel();
    tok->cancel();
    auto req = get(srv.url("/x"));
    req.cancel = tok;
    CHECK(fetch_sync(c, req).code() == Errc::cancelled);
  }
  {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    auto f = p->get_future();
    c.fetch(get(srv.url("/stall")), [p](Result<Response> r) { p->set_value(std::move(r)); });
    std::this_thread::sleep_for(100ms);
    c.shutdown();
    CHECK(wait_for(f).code() == Errc::cancelled);
    CHECK(fetch_sync(c, get(srv.url("/x"))).code() == Errc::cancelled);
  }
}

TEST_CASE("Destroying the client cancels requests in flight", "[http][client][cancel]") {
  TestServer srv([](const ReceivedRequest&) {
    Reply x;
    x.head_delay = 5000ms;
    return x;
  });
  IoThreads io;
  auto p = std::make_shared<std::promise<Result<Response>>>();
  auto f = p->get_future();
  {
    Client c(io.io, fast_opts());
    c.fetch(get(srv.url("/")), [p](Result<Response> r) { p->set_value(std::move(r)); });
    std::this_thread::sleep_for(100ms);
  }
  CHECK(wait_for(f, std::chrono::seconds(2)).code() == Errc::cancelled);
}

TEST_CASE("Proxies: CONNECT tunnel for https, absolute-form for http, NO_PROXY", "[http][client][proxy]") {
  TestPki pki;
  TestServer::Options so;
  so.tls = true;
  so.cert = pki.issue({"localhost"}, {"127.0.0.1"});
  TestServer srv([](const ReceivedRequest& r) { return ok("via tunnel " + r.target); }, so);
  TestProxy proxy;
  IoThreads io;

  auto o = fast_opts();
  o.extra_ca_file = pki.ca_file();
  o.proxy = "http://alice:s%3Acret@127.0.0.1:" + std::to_string(proxy.port());
  {
    Client c(io.io, o);
    for (int i = 0; i < 3; ++i) {
      auto r = fetch_sync(c, get(srv.url("/t")));
      REQUIRE(r.ok());
      CHECK(r->body == "via tunnel /t");
    }
    CHECK(proxy.connects() == 1);  // the tunnel is pooled
    auto reqs = proxy.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "CONNECT");
    CHECK(reqs[0].target == fmt::format("127.0.0.1:{}", srv.port()));
    CHECK(reqs[0].headers.get("Proxy-Authorization") == std::optional<std::string_view>("Basic YWxpY2U6czpjcmV0"));

    auto h = fetch_sync(c, get("http://hub.invalid:8080/api/x?y=1"));
    REQUIRE(h.ok());
    CHECK(h->body == "proxied http://hub.invalid:8080/api/x?y=1");
  }
  {
    auto o2 = o;
    o2.no_proxy = "127.0.0.1";
    Client direct(io.io, o2);
    auto r = fetch_sync(direct, get(srv.url("/direct")));
    REQUIRE(r.ok());
    CHECK(proxy.connects() == 1);
  }
  {
    auto o3 = fast_opts();
    o3.extra_ca_file = pki.ca_file();
    o3.use_env_proxy = true;
    setenv("HTTPS_PROXY", proxy.url().c_str(), 1);
    unsetenv("NO_PROXY");
    unsetenv("no_proxy");
    Client envc(io.io, o3);
    unsetenv("HTTPS_PROXY");
    auto r = fetch_sync(envc, get(srv.url("/env")));
    REQUIRE(r.ok());
    CHECK(proxy.connects() == 2);
  }
}

TEST_CASE("Large bodies stream in bounded pieces; fetch buffers up to the limit", "[http][client][body]") {
  const std::string big = pattern(24u << 20, 9);
  const std::string want = sha256_hex(big);
  TestServer srv([&](const ReceivedRequest&) { return ok(big); });
  IoThreads io;
  Client c(io.io, fast_opts());
  Sha256 h;
  size_t max_piece = 0, total = 0;
  StreamHandler sh;
  sh.on_data = [&](std::span<const uint8_t> d) {
    h.update(d);
    max_piece = std::max(max_piece, d.size());
    total += d.size();
    return Status();
  };
  REQUIRE(stream_sync(c, get(srv.url("/")), sh).ok());
  auto dg = h.finish();
  CHECK(hex_encode(dg.data(), dg.size()) == want);
  CHECK(total == big.size());
  CHECK(max_piece <= c.options().read_buffer_bytes);

  auto f = fetch_sync(c, get(srv.url("/")));
  REQUIRE(f.ok());
  CHECK(sha256_hex(f->body) == want);
  auto small = get(srv.url("/"));
  small.max_buffered_body = 1 << 20;
  CHECK(fetch_sync(c, small).code() == Errc::too_large);
}

TEST_CASE("Coroutine API: co_fetch and co_stream", "[http][client][coro]") {
  TestServer srv([](const ReceivedRequest& r) { return ok("coro " + r.target); });
  IoThreads io;
  Client c(io.io, fast_opts());
  auto body = run_coro(io.io, [&]() -> boost::asio::awaitable<std::string> {
    auto a = co_await c.co_fetch(get(srv.url("/one")));
    std::string out = a.ok() ? a->body : a.error().describe();
    std::string streamed;
    StreamHandler h;
    h.on_data = [&](std::span<const uint8_t> d) {
      streamed.append(reinterpret_cast<const char*>(d.data()), d.size());
      return Status();
    };
    auto b = co_await c.co_stream(get(srv.url("/two")), h);
    out += "|" + (b.ok() ? std::to_string(b->status) : b.error().describe()) + "|" + streamed;
    co_return out;
  }());
  CHECK(body == "coro /one|200|coro /two");
}

TEST_CASE("multipart/byteranges response parsed while streaming", "[http][client][multipart]") {
  const std::string data = pattern(100000, 5);
  TestServer srv([&](const ReceivedRequest& r) {
    Reply x;
    x.status = 206;
    x.headers = {{"Content-Type", "multipart/byteranges; boundary=XYZ"}};
    CHECK(r.headers.get("Range") == std::optional<std::string_view>("bytes=0-9,50000-99999"));
    x.body = "--XYZ\r\nContent-Range: bytes 0-9/100000\r\n\r\n" + data.substr(0, 10) +
             "\r\n--XYZ\r\nContent-Range: bytes 50000-99999/100000\r\n\r\n" + data.substr(50000) + "\r\n--XYZ--\r\n";
    return x;
  });
  IoThreads io;
  Client c(io.io, fast_opts());
  std::vector<std::pair<uint64_t, std::string>> parts;
  std::optional<MultipartByteranges> mp;
  StreamHandler sh;
  sh.on_head = [&](const ResponseHead& h) -> Status {
    HF_ASSIGN_OR_RETURN(auto b, MultipartByteranges::boundary_from_content_type(h.headers.get("Content-Type").value_or("")));
    mp.emplace(
        b,
        [&](const MultipartByteranges::Part& p) {
          parts.emplace_back(p.first, std::string());
          return Status();
        },
        [&](std::span<const uint8_t> d) {
          parts.back().second.append(reinterpret_cast<const char*>(d.data()), d.size());
          return Status();
        });
    return {};
  };
  sh.on_data = [&](std::span<const uint8_t> d) { return mp->feed(d); };
  auto req = get(srv.url("/xorb"));
  req.headers.add("Range", "bytes=0-9,50000-99999");
  REQUIRE(stream_sync(c, req, sh).ok());
  REQUIRE(mp->finish().ok());
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].first == 0);
  CHECK(parts[0].second == data.substr(0, 10));
  CHECK(parts[1].first == 50000);
  CHECK(parts[1].second == data.substr(50000));
}

TEST_CASE("TLS: large, chunked and truncated bodies, uploads, reuse", "[http][client][tls]") {
  TestPki pki;
  TestServer::Options so;
  so.tls = true;
  so.cert = pki.issue({"localhost"}, {"127.0.0.1"});
  const std::string big = pattern(12u << 20, 21);
  TestServer srv(
      [&](const ReceivedRequest& r) {
        Reply x;
        if (r.target == "/big") x.body = big;
        if (r.target == "/chunked") {
          x.body = big.substr(0, 1 << 20);
          x.chunked = true;
          x.chunk_size = 30000;
        }
        if (r.target == "/cut") {
          x.body = big.substr(0, 100000);
          x.content_length = 200000;
          x.end = Reply::End::close;
        }
        if (r.target == "/echo") x.body = sha256_hex(r.body);
        return x;
      },
      so);
  IoThreads io;
  auto o = fast_opts();
  o.extra_ca_file = pki.ca_file();
  o.retry.max_attempts = 1;
  Client c(io.io, o);
  Sha256 h;
  size_t total = 0;
  StreamHandler sh;
  sh.on_data = [&](std::span<const uint8_t> d) {
    h.update(d);
    total += d.size();
    return Status();
  };
  REQUIRE(stream_sync(c, get(srv.url("/big")), sh).ok());
  auto dg = h.finish();
  CHECK(total == big.size());
  CHECK(hex_encode(dg.data(), dg.size()) == sha256_hex(big));
  auto ch = fetch_sync(c, get(srv.url("/chunked")));
  REQUIRE(ch.ok());
  CHECK(ch->body == big.substr(0, 1 << 20));
  Request up;
  up.method = "PUT";
  up.url = srv.url("/echo");
  up.body = std::make_shared<const std::string>(big);
  auto u = fetch_sync(c, up);
  REQUIRE(u.ok());
  CHECK(u->body == sha256_hex(big));
  CHECK(srv.connections() == 1);  // all of the above on one TLS connection
  auto cut = fetch_sync(c, get(srv.url("/cut")));
  REQUIRE(!cut.ok());
  CHECK(cut.code() == Errc::protocol);
  CHECK(cut.error().message.find("truncated") != std::string::npos);
}

TEST_CASE("TLS: many concurrent requests on two io threads", "[http][client][tls][pool]") {
  TestPki pki;
  TestServer::Options so;
  so.tls = true;
  so.cert = pki.issue({"localhost"}, {"127.0.0.1"});
  TestServer srv([](const ReceivedRequest& r) { return ok(pattern(20000 + r.target.size() * 100, 3) + r.target); }, so);
  IoThreads io(2);
  auto o = fast_opts();
  o.extra_ca_file = pki.ca_file();
  o.max_connections_per_host = 4;
  o.timeouts.idle = 3000ms;
  o.retry.max_attempts = 1;  // a lost wakeup would surface as an idle timeout, not be retried away
  Client c(io.io, o);
  std::atomic<int> good{0}, done{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string path = fmt::format("/t{}/{}", t, i);
        c.fetch(get(srv.url(path)), [&, path](Result<Response> r) {
          if (r.ok() && r->body == pattern(20000 + path.size() * 100, 3) + path) ++good;
          ++done;
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  auto deadline = Clock::now() + 30s;
  while (done.load() < 160 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(good.load() == 160);
  CHECK(srv.connections() <= 4);
}
