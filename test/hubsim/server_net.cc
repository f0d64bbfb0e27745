// The network layer of the simulator: a Boost.Beast HTTP/1.1 server (plain or TLS) on a
// multi-threaded io_context, one C++20 coroutine per connection. It reads requests, hands them
// to Server::Core, and writes responses with the latency, bandwidth and fault knobs applied.
// Stored bytes are written straight from their immutable sources (no per-request copies).
#include <utility>  // must precede Asio on Boost 1.74 + g++ 12 (asio#944)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>
#include <type_traits>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/sleep.h"
#include "base/text.h"
#include "test/hubsim/core.h"
#include "test/hubsim/server_net.h"

namespace hf::hubsim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr uint64_t kMaxRequestBody = 160ull << 20;  // a 64 MiB xorb/shard plus slack
constexpr auto kIdleTimeout = std::chrono::seconds(300);
constexpr auto kWriteTimeout = std::chrono::seconds(120);

// Size of one write when no bandwidth limit applies: large writes of in-memory bytes let the
// kernel copy straight from the stored buffer with few syscalls.
constexpr size_t kMemorySlice = 16u << 20;
constexpr size_t kGeneratedSlice = 1u << 20;
// Pieces from this size on are sent with sendfile(2) when their source has a file.
constexpr uint64_t kSendfileMin = 64u << 10;
constexpr uint64_t kSendfileSlice = 2u << 20;

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// Injected latency and bandwidth pacing; most calls have nothing to wait for.
net::awaitable<void> sleep_ns(int64_t ns) {
  if (ns <= 0) co_return;
  bool slept = co_await hf::sleep_for(std::chrono::nanoseconds(ns));  // a statement: see base/sleep.h
  (void)slept;
}

std::string error_json(std::string_view msg) {
  std::string s = "{\"error\":";
  JsonWriter::append_quoted(s, msg);
  s += "}";
  return s;
}

}  // namespace

struct Server::Net::Impl {
  Core& core;
  net::io_context ioc;
  std::optional<net::ssl::context> ssl;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<uint64_t> request_ids{1};
  uint16_t port = 0;
  bool started = false;

  explicit Impl(Core& c, unsigned nthreads) : core(c), ioc(static_cast<int>(nthreads)) {}

  net::awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket sock = co_await acceptor.async_accept(net::make_strand(ioc),
                                                        net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;  // e.g. EMFILE: keep accepting
      }
      auto ex = sock.get_executor();
      net::co_spawn(ex, session(std::move(sock)), [](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            HF_LOG_WARN("hubsim", "connection error: {}", x.what());
          } catch (...) {
          }
        }
      });
    }
  }

  net::awaitable<void> session(tcp::socket sock) {
    struct ConnGuard {
      Stats& s;
      explicit ConnGuard(Stats& st) : s(st) { s.connection_opened(); }
      ~ConnGuard() { s.connection_closed(); }
    } guard(core.stats());
    beast::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    std::string remote;
    if (auto ep = sock.remote_endpoint(ec); !ec) remote = ep.address().to_string();
    beast::tcp_stream stream(std::move(sock));
    if (ssl) {
      beast::ssl_stream<beast::tcp_stream> ss(std::move(stream), *ssl);
      beast::get_lowest_layer(ss).expires_after(std::chrono::seconds(30));
      co_await ss.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return;
      bool clean = co_await serve(ss, remote);
      if (clean) {
        beast::get_lowest_layer(ss).expires_after(std::chrono::seconds(5));
        co_await ss.async_shutdown(net::redirect_error(net::use_awaitable, ec));
      }
    } else {
      bool clean = co_await serve(stream, remote);
      if (clean) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  // Serves requests until the peer closes or a fault ends the connection. Returns true when
  // the connection should be shut down gracefully.
  template <class Stream>
  net::awaitable<bool> serve(Stream& s, const std::string& remote) {
    beast::flat_buffer buf;
    TokenBucket conn_bw;
    uint64_t conn_rate = 0;
    auto& low = beast::get_lowest_layer(s);
    for (;;) {
      beast::error_code ec;
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(kMaxRequestBody);
      low.expires_after(kIdleTimeout);
      co_await http::async_read_header(s, buf, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return false;
      if (iequals(sv(parser.get()[http::field::expect]), "100-continue")) {
        static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
        co_await net::async_write(s, net::buffer(k100.data(), k100.size()), net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return false;
      }
      if (!parser.is_done()) {
        co_await http::async_read(s, buf, parser, net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::body_limit) {
          Response r;
          r.status = 413;
          r.set_body(error_json("Request body too large"), "application/json");
          co_await write_response(s, r, false, false, std::nullopt, conn_bw);
          co_return false;
        }
        if (ec) co_return false;
      }
      auto msg = parser.release();
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.split_target();
      req.headers.reserve(16);
      for (const auto& f : msg) req.headers.emplace_back(to_lower(sv(f.name_string())), std::string(sv(f.value())));
      req.body = std::move(msg.body());
      req.body_received = req.body.size();
      req.remote = remote;
      bool keep_alive = msg.keep_alive();
      int64_t t0 = mono_ns();

      Response resp = core.handle(req);
      Knobs k = core.knobs();
      if (k.conn_bandwidth != conn_rate) {
        conn_rate = k.conn_bandwidth;
        conn_bw.set_rate(conn_rate);
      }
      std::optional<FaultRule> fault = core.faults().pick(resp.route);
      if (fault) core.stats().record_fault(fault->kind);
      if (fault && fault->kind == FaultKind::reset) {
        co_await sleep_ns(int64_t{k.latency_ms} * 1000000);
        low.socket().set_option(net::socket_base::linger(true, 0), ec);
        low.socket().close(ec);
        finish_request(req, resp.route, 0, 0, t0, "reset");
        co_return false;
      }
      if (fault && (fault->kind == FaultKind::status500 || fault->kind == FaultKind::status503 ||
                    fault->kind == FaultKind::status429)) {
        Response e;
        e.route = resp.route;
        if (fault->kind == FaultKind::status500) {
          e.status = 500;
          e.set_body(error_json("Internal Error (injected)"), "application/json");
        } else if (fault->kind == FaultKind::status503) {
          e.status = 503;
          e.set_header("Retry-After", std::to_string(fault->retry_after));
          e.set_body(error_json("Service Unavailable (injected)"), "application/json");
        } else {
          e.status = 429;
          e.set_header("Retry-After", std::to_string(fault->retry_after));
          e.set_header("RateLimit", fmt::format("\"api\";r=0;t={}", fault->retry_after));
          e.set_header("RateLimit-Policy", "\"fixed window\";\"api\";q=500;w=300");
          e.set_body(error_json("You have exceeded our hourly quotas for action: api (injected)"), "application/json");
        }
        resp = std::move(e);
        fault.reset();
      }
      int64_t delay_ns = int64_t{k.latency_ms} * 1000000;
      if (resp.is_data) delay_ns += int64_t{k.first_byte_latency_ms} * 1000000;
      co_await sleep_ns(delay_ns);
      uint64_t sent = co_await write_response(s, resp, keep_alive, req.is_head(), fault, conn_bw);
      bool broken = sent == UINT64_MAX;
      finish_request(req, resp.route, resp.status, broken ? 0 : sent, t0,
                     fault ? fault_kind_name(fault->kind) : std::string_view());
      if (broken) co_return false;
      if (fault && fault->kind == FaultKind::truncate && resp.body_size() > 0 && !req.is_head()) {
        low.socket().close(ec);
        co_return false;
      }
      if (!keep_alive) co_return true;
    }
  }

  void finish_request(const Request& req, std::string_view route, int status, uint64_t bytes, int64_t t0,
                      std::string_view fault) {
    core.stats().record(route, status, bytes, std::max<uint64_t>(req.body.size(), req.body_received));
    if (core.options().log_requests) {
      double ms = static_cast<double>(mono_ns() - t0) / 1e6;
      std::string line = fmt::format("hubsim: {} {} {} {} {}B {:.1f}ms{}{}\n", req.method, route, req.path, status,
                                     bytes, ms, fault.empty() ? "" : " fault=", fault);
      ssize_t rc = ::write(2, line.data(), line.size());
      (void)rc;
    }
  }

  // Sends [offset, offset+length) of `fd` with sendfile(2), waiting for writability between
  // partial sends. Fails when the peer stops reading for kWriteTimeout, the connection breaks or
  // the file is shorter than promised.
  static net::awaitable<bool> send_file(tcp::socket& sock, int fd, uint64_t offset, uint64_t length) {
    beast::error_code ec;
    sock.native_non_blocking(true, ec);
    if (ec) co_return false;
    // The write timeout: a timer on the connection's strand cancels the wait. `state` outlives
    // this frame in the timer's handler, which does nothing once `done` is set.
    struct State {
      bool done = false;
      bool timed_out = false;
    };
    auto state = std::make_shared<State>();
    net::steady_timer timer(sock.get_executor());
    auto arm = [&] {
      timer.expires_after(kWriteTimeout);
      timer.async_wait([state, &sock](beast::error_code e) {
        if (e || state->done) return;
        state->timed_out = true;
        beast::error_code ignored;
        sock.cancel(ignored);
      });
    };
    arm();
    int one = 1, zero = 0;
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    off_t pos = static_cast<off_t>(offset);
    uint64_t left = length;
    bool ok = true;
    while (left > 0) {
      ssize_t n = ::sendfile(sock.native_handle(), fd, &pos, static_cast<size_t>(std::min<uint64_t>(left, kSendfileSlice)));
      if (n > 0) {
        left -= static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        co_await sock.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
        if (ec || state->timed_out) {
          ok = false;
          break;
        }
        arm();  // progress: the timeout counts from the last write, like the buffered path's
        continue;
      }
      ok = false;  // n == 0: the file is shorter than the range; or a socket error
      break;
    }
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    state->done = true;
    timer.cancel();
    co_return ok;
  }

  // Writes one response. Returns the number of body bytes sent, or UINT64_MAX when the
  // connection broke.
  template <class Stream>
  net::awaitable<uint64_t> write_response(Stream& s, Response& resp, bool keep_alive, bool head_only,
                                          const std::optional<FaultRule>& fault, TokenBucket& conn_bw) {
    auto& low = beast::get_lowest_layer(s);
    beast::error_code ec;
    uint64_t total = resp.body_size();
    uint64_t advertised = head_only && resp.content_length ? *resp.content_length : total;
    std::string head;
    head.reserve(512);
    head += fmt::format("HTTP/1.1 {} {}\r\n", resp.status,
                        sv(http::obsolete_reason(static_cast<http::status>(resp.status))));
    for (const auto& [k, v] : resp.headers) {
      head += k;
      head += ": ";
      head += v;
      head += "\r\n";
    }
    head += fmt::format("Content-Length: {}\r\nX-Request-Id: hubsim-{}\r\nX-Powered-By: hf-mount-hubsim\r\n", advertised,
                        request_ids.fetch_add(1));
    if (!keep_alive) head += "Connection: close\r\n";
    head += "\r\n";

    uint64_t limit = total;  // bytes to send before the fault acts
    bool stall = false, truncate = false, corrupt = false;
    uint64_t corrupt_at = UINT64_MAX;
    if (fault && !head_only && total > 0) {
      if (fault->kind == FaultKind::stall) {
        stall = true;
        limit = total / 2;
      } else if (fault->kind == FaultKind::truncate) {
        truncate = true;
        limit = total / 2;
      } else if (fault->kind == FaultKind::corrupt) {
        corrupt = true;
        corrupt_at = resp.corrupt_offsets.empty() ? total / 2 : resp.corrupt_offsets.front();
      }
    }
    std::vector<net::const_buffer> bufs;
    bufs.push_back(net::buffer(head));
    std::vector<uint8_t> scratch;
    std::vector<uint8_t> flipped;  // private copy of a slice carrying the corrupted byte
    uint64_t sent = 0;
    bool stalled = false;

    auto flush = [&](uint64_t nbytes) -> net::awaitable<bool> {
      int64_t wait = core.global_bandwidth().reserve(nbytes);
      wait = std::max(wait, conn_bw.reserve(nbytes));
      co_await sleep_ns(wait);
      low.expires_after(kWriteTimeout);
      co_await net::async_write(s, bufs, net::redirect_error(net::use_awaitable, ec));
      bufs.clear();
      co_return !ec;
    };

    if (!head_only) {
      uint64_t rate = core.global_bandwidth().rate();
      uint64_t crate = conn_bw.rate();
      uint64_t eff = rate == 0 ? crate : (crate == 0 ? rate : std::min(rate, crate));
      for (const auto& piece : resp.body) {
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
          // Large unaltered ranges over plain HTTP: sendfile from the source's file.
          if (!fault && eff == 0 && piece.length >= kSendfileMin) {
            if (int fd = piece.src->open_file(); fd >= 0) {
              if (!bufs.empty() && !co_await flush(0)) {
                ::close(fd);
                co_return UINT64_MAX;
              }
              bool ok = co_await send_file(s.socket(), fd, piece.offset, piece.length);
              ::close(fd);
              if (!ok) co_return UINT64_MAX;
              sent += piece.length;
              continue;
            }
          }
        }
        uint64_t off = piece.offset, left = piece.length;
        bool contiguous = !piece.src->contiguous().empty();
        while (left > 0) {
          if ((stall || truncate) && sent == limit) {
            if (truncate) {
              if (!bufs.empty() && !co_await flush(0)) co_return UINT64_MAX;
              co_return sent;
            }
            if (stall && !stalled) {
              if (!bufs.empty() && !co_await flush(0)) co_return UINT64_MAX;
              stalled = true;
              co_await sleep_ns(int64_t{fault->stall_ms} * 1000000);
            }
          }
          size_t slice = contiguous ? kMemorySlice : kGeneratedSlice;
          if (eff > 0) slice = static_cast<size_t>(std::clamp<uint64_t>(eff / 50, 4096, 256 * 1024));
          uint64_t cap = left;
          if ((stall && !stalled) || truncate) cap = std::min(cap, limit - sent);
          auto v = piece.src->read(off, static_cast<size_t>(std::min<uint64_t>(cap, slice)), scratch);
          if (v.empty()) co_return UINT64_MAX;  // source bug: never loop forever
          if (corrupt && corrupt_at >= sent && corrupt_at < sent + v.size()) {
            flipped.assign(v.begin(), v.end());
            flipped[corrupt_at - sent] ^= 0x5a;
            v = flipped;
            corrupt = false;
          }
          bufs.push_back(net::buffer(v.data(), v.size()));
          sent += v.size();
          off += v.size();
          left -= v.size();
          if (!co_await flush(v.size())) co_return UINT64_MAX;
        }
      }
    }
    if (!bufs.empty() && !co_await flush(0)) co_return UINT64_MAX;
    co_return sent;
  }
};

Server::Net::Net(Core& core, unsigned threads) : impl_(std::make_unique<Impl>(core, threads)), nthreads_(threads) {}

Server::Net::~Net() { stop(); }

Status Server::Net::start(const Options& o) {
  if (!impl_) return make_error(Errc::invalid_argument, "the server cannot be restarted; create a new one");
  auto& I = *impl_;
  // Parse HOST:PORT (IPv6 as [addr]:port).
  std::string host, port_s;
  const std::string& l = o.listen;
  if (!l.empty() && l.front() == '[') {
    size_t rb = l.find(']');
    if (rb == std::string::npos || rb + 1 >= l.size() || l[rb + 1] != ':')
      return make_error(Errc::invalid_argument, "bad --listen address: " + l);
    host = l.substr(1, rb - 1);
    port_s = l.substr(rb + 2);
  } else {
    size_t c = l.rfind(':');
    if (c == std::string::npos) return make_error(Errc::invalid_argument, "--listen needs HOST:PORT: " + l);
    host = l.substr(0, c);
    port_s = l.substr(c + 1);
  }
  auto port = parse_u64(port_s);
  if (!port || *port > 65535) return make_error(Errc::invalid_argument, "bad port in --listen: " + l);
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (ec) return make_error(Errc::invalid_argument, "bad host in --listen: " + host);

  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty())
      return make_error(Errc::invalid_argument, "--tls-cert and --tls-key must be given together");
    I.ssl.emplace(net::ssl::context::tls_server);
    I.ssl->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1, ec);
    I.ssl->use_certificate_chain_file(o.tls_cert, ec);
    if (ec) return make_error(Errc::tls, "cannot load TLS certificate " + o.tls_cert + ": " + ec.message());
    I.ssl->use_private_key_file(o.tls_key, net::ssl::context::pem, ec);
    if (ec) return make_error(Errc::tls, "cannot load TLS key " + o.tls_key + ": " + ec.message());
  }

  tcp::endpoint ep(addr, static_cast<uint16_t>(*port));
  I.acceptor.open(ep.protocol(), ec);
  if (!ec) I.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) I.acceptor.bind(ep, ec);
  if (!ec) I.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    I.acceptor.close(ignored);
    return make_error(Errc::network, "cannot listen on " + l + ": " + ec.message());
  }
  I.port = I.acceptor.local_endpoint(ec).port();
  port_ = I.port;
  scheme_ = I.ssl ? "https" : "http";
  host_ = addr.is_v6() ? "[" + host + "]" : host;
  if (host == "0.0.0.0") host_ = "127.0.0.1";
  if (host == "::") host_ = "[::1]";

  net::co_spawn(I.ioc, I.accept_loop(), net::detached);
  I.started = true;
  for (unsigned i = 0; i < nthreads_; ++i) {
    I.threads.emplace_back([&I] {
      for (;;) {
        try {
          I.ioc.run();
          return;
        } catch (const std::exception& e) {
          HF_LOG_ERROR("hubsim", "io thread: {}", e.what());
        }
      }
    });
  }
  return {};
}

void Server::Net::stop() {
  if (!impl_) return;
  auto& I = *impl_;
  if (!I.started) return;
  I.started = false;
  net::post(I.ioc, [&I] {
    beast::error_code ec;
    I.acceptor.close(ec);
  });
  I.ioc.stop();
  for (auto& t : I.threads) t.join();
  I.threads.clear();
  // Destroying the io_context destroys the suspended connection coroutines, closing their
  // sockets, so clients see the server go away at once.
  impl_.reset();
}

uint16_t Server::Net::port() const { return port_; }

}  // namespace hf::hubsim
