#include <utility>  // must precede Asio on Boost 1.74 + g++ 12 (asio#944)

#include "test/unit/hubsim/test_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>

#include "base/sha256.h"
#include "base/text.h"

namespace hf::hubsim::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string HttpResponse::header(std::string_view lname) const {
  for (const auto& [k, v] : headers)
    if (k == lname) return v;
  return {};
}

bool HttpResponse::has_header(std::string_view lname) const {
  for (const auto& [k, v] : headers)
    if (k == lname) return true;
  return false;
}

bool parse_url(std::string_view url, ParsedUrl& out) {
  size_t p = url.find("://");
  if (p == std::string_view::npos) return false;
  out.scheme = std::string(url.substr(0, p));
  auto rest = url.substr(p + 3);
  size_t slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!hostport.empty() && hostport.front() == '[') {
    size_t rb = hostport.find(']');
    out.host = std::string(hostport.substr(1, rb - 1));
    out.port = rb + 2 <= hostport.size() ? std::string(hostport.substr(rb + 2)) : "";
  } else {
    size_t c = hostport.rfind(':');
    out.host = std::string(hostport.substr(0, c));
    out.port = c == std::string_view::npos ? "" : std::string(hostport.substr(c + 1));
  }
  if (out.port.empty()) out.port = out.scheme == "https" ? "443" : "80";
  return true;
}

TestClient::TestClient(std::string base, std::string ca_file) : base_(std::move(base)), ca_file_(std::move(ca_file)) {}

namespace {

template <class Stream>
HttpResponse exchange(Stream& s, http::request<http::string_body>& req, bool head, beast::error_code& ec) {
  HttpResponse out;
  http::write(s, req, ec);
  if (ec) {
    out.error = "write: " + ec.message();
    return out;
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(4ull << 30);
  parser.header_limit(1 << 20);
  if (head) parser.skip(true);
  http::read(s, buf, parser, ec);
  if (ec && !parser.is_header_done()) {
    out.error = "read: " + ec.message();
    return out;
  }
  auto& msg = parser.get();
  out.status = static_cast<int>(msg.result_int());
  for (const auto& f : msg)
    out.headers.emplace_back(to_lower(std::string(f.name_string())), std::string(f.value()));
  out.body = std::move(msg.body());
  if (ec) {
    out.body_complete = false;
    out.error = "body: " + ec.message();
  }
  return out;
}

}  // namespace

HttpResponse TestClient::request(std::string_view method, std::string_view url, std::string_view body,
                                 const Headers& headers, int timeout_ms) const {
  ParsedUrl u;
  std::string full = url.starts_with("http://") || url.starts_with("https://") ? std::string(url) : base_ + std::string(url);
  HttpResponse out;
  if (!parse_url(full, u)) {
    out.error = "bad url";
    return out;
  }
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto results = resolver.resolve(u.host, u.port, ec);
    if (ec) {
      out.error = "resolve: " + ec.message();
      return out;
    }
    http::request<http::string_body> req;
    req.method_string(beast::string_view(method.data(), method.size()));
    req.target(u.target);
    req.version(11);
    req.set(http::field::host, u.host + ":" + u.port);
    req.set(http::field::user_agent, "hubsim-test/1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body() = std::string(body);
      req.prepare_payload();
    }
    req.keep_alive(false);
    bool is_head = method == "HEAD";
    if (u.scheme == "https") {
      net::ssl::context ctx(net::ssl::context::tls_client);
      if (!ca_file_.empty()) {
        ctx.load_verify_file(ca_file_, ec);
        if (ec) {
          out.error = "ca: " + ec.message();
          return out;
        }
        ctx.set_verify_mode(net::ssl::verify_peer);
      } else {
        ctx.set_verify_mode(net::ssl::verify_none);
      }
      beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
      beast::get_lowest_layer(s).expires_after(std::chrono::milliseconds(timeout_ms));
      if (!ca_file_.empty()) s.set_verify_callback(net::ssl::host_name_verification(u.host));
      if (u.host.find_first_not_of("0123456789.:") != std::string::npos)
        SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str());
      beast::get_lowest_layer(s).connect(results, ec);
      if (ec) {
        out.error = "connect: " + ec.message();
        return out;
      }
      s.handshake(net::ssl::stream_base::client, ec);
      if (ec) {
        out.error = "handshake: " + ec.message();
        return out;
      }
      out = exchange(s, req, is_head, ec);
      beast::error_code ignored;
      s.shutdown(ignored);
      return out;
    }
    beast::tcp_stream s(ioc);
    s.expires_after(std::chrono::milliseconds(timeout_ms));
    s.connect(results, ec);
    if (ec) {
      out.error = "connect: " + ec.message();
      return out;
    }
    out = exchange(s, req, is_head, ec);
    beast::error_code ignored;
    s.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return out;
  } catch (const std::exception& e) {
    out.error = e.what();
    return out;
  }
}

HttpResponse TestClient::get_follow(std::string_view url, const Headers& headers, int max_redirects) const {
  std::string cur(url);
  Headers h = headers;
  ParsedUrl first;
  parse_url(cur.starts_with("http") ? cur : base_ + cur, first);
  for (int i = 0;; ++i) {
    HttpResponse r = get(cur, h);
    if (r.status < 300 || r.status >= 400 || i >= max_redirects || !r.has_header("location")) return r;
    std::string loc = r.header("location");
    if (!loc.starts_with("http")) {
      ParsedUrl pu;
      parse_url(cur.starts_with("http") ? cur : base_ + cur, pu);
      loc = pu.scheme + "://" + pu.host + ":" + pu.port + loc;
    }
    ParsedUrl next;
    parse_url(loc, next);
    if (next.host != first.host || next.port != first.port) {
      std::erase_if(h, [](const auto& kv) { return iequals(kv.first, "authorization"); });
    }
    cur = loc;
  }
}

std::string sha256_of(std::string_view data) { return sha256_hex(data); }

}  // namespace hf::hubsim::test
