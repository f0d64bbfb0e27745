#include <utility>  // before Asio (asio#944)

#include "net/http/client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "base/clock.h"
#include "base/log.h"
#include "base/text.h"
#include "net/http/pool.h"
#include "net/http/proxy.h"

namespace hf::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;
using detail::Clock;
using detail::Connection;
using detail::Pool;
using ms = std::chrono::milliseconds;
using net::awaitable;

// ---------------------------------------------------------------------------------------------
// Stats

void Stats::record_ttfb(std::chrono::nanoseconds d) {
  uint64_t us = static_cast<uint64_t>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
  size_t b = 0;
  while (b + 1 < kLatencyBuckets && (us >> (b + 1)) != 0) ++b;
  ttfb_us_log2[b].fetch_add(1, std::memory_order_relaxed);
}

StatsSnapshot Stats::snapshot() const {
  StatsSnapshot s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.requests = ld(requests);
  s.exchanges = ld(exchanges);
  s.retries = ld(retries);
  s.redirects = ld(redirects);
  s.stale_resends = ld(stale_resends);
  for (size_t i = 0; i < responses_by_class.size(); ++i) s.responses_by_class[i] = ld(responses_by_class[i]);
  for (size_t i = 0; i < kErrcSlots; ++i) s.errors_by_errc[i] = ld(errors_by_errc[i]);
  s.bytes_in = ld(bytes_in);
  s.bytes_out = ld(bytes_out);
  s.connections_opened = ld(connections_opened);
  s.connections_reused = ld(connections_reused);
  for (size_t i = 0; i < kLatencyBuckets; ++i) s.ttfb_us_log2[i] = ld(ttfb_us_log2[i]);
  return s;
}

uint64_t StatsSnapshot::errors_total() const {
  uint64_t t = 0;
  for (auto v : errors_by_errc) t += v;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Client::Impl

namespace {
std::string tls_error_text() {
  unsigned long e = ERR_peek_last_error();
  if (e == 0) return {};
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}
}  // namespace


struct Client::Impl {
  Impl(net::io_context& io_, ClientOptions o)
      : io(io_),
        opts(std::move(o)),
        pool(opts.max_connections_per_host, std::chrono::duration_cast<Clock::duration>(opts.idle_keepalive)),
        ssl_ctx(ssl::context::tls_client) {
    if (!opts.proxy.empty()) {
      proxies = ProxyConfig(opts.proxy, opts.no_proxy);
    } else if (opts.use_env_proxy) {
      proxies = ProxyConfig::from_env();
    }
    if (!proxies.error().empty()) HF_LOG_WARN("http", "{}", proxies.error());
    init_tls();
  }

  void init_tls() {
    SSL_CTX_set_min_proto_version(ssl_ctx.native_handle(), TLS1_2_VERSION);
    // OpenSSL reads the socket itself (TlsStream): let it pull several records per recv().
    SSL_CTX_set_read_ahead(ssl_ctx.native_handle(), 1);
    SSL_CTX_set_default_read_buffer_len(ssl_ctx.native_handle(), 128 * 1024);
    error_code ec;
    // Honours SSL_CERT_FILE / SSL_CERT_DIR like every OpenSSL program.
    ssl_ctx.set_default_verify_paths(ec);
    if (ec) HF_LOG_WARN("http", "cannot load the system trust store: {}", ec.message());
    std::string extra = opts.extra_ca_file;
    if (extra.empty()) {
      if (const char* e = std::getenv("HF_MOUNT_CA_BUNDLE"); e && *e) extra = e;
    }
    if (!extra.empty()) {
      ssl_ctx.load_verify_file(extra, ec);
      if (ec) {
        std::string why = tls_error_text();
        tls_error = fmt::format("cannot load CA bundle '{}': {}", extra, why.empty() ? ec.message() : why);
        HF_LOG_WARN("http", "{}", tls_error);
      }
    }
    ssl_ctx.set_verify_mode(opts.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer);
  }

  uint64_t register_exchange(CancelPtr token) {
    std::lock_guard lk(mu);
    if (shut_down) return 0;
    uint64_t id = ++next_id;
    inflight.emplace(id, std::move(token));
    return id;
  }
  void unregister_exchange(uint64_t id) {
    std::lock_guard lk(mu);
    inflight.erase(id);
  }

  void shutdown() {
    std::vector<CancelPtr> tokens;
    {
      std::lock_guard lk(mu);
      shut_down = true;
      for (auto& [id, t] : inflight) tokens.push_back(t);
    }
    for (auto& t : tokens) t->cancel();
    pool.close_all();
  }

  net::io_context& io;
  ClientOptions opts;
  ProxyConfig proxies;
  Pool pool;
  ssl::context ssl_ctx;
  std::string tls_error;
  Stats stats;

  std::mutex mu;
  std::unordered_map<uint64_t, CancelPtr> inflight;  // guarded by mu
  uint64_t next_id = 0;                              // guarded by mu
  bool shut_down = false;                            // guarded by mu
};

namespace {

enum class Phase { none, connect, tls, send, first_byte, idle, total };

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::connect: return "connect";
    case Phase::tls: return "TLS handshake";
    case Phase::send: return "sending the request (idle)";
    case Phase::first_byte: return "first byte";
    case Phase::idle: return "idle (between body reads)";
    case Phase::total: return "total deadline";
    case Phase::none: break;
  }
  return "none";
}

bool default_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

bool valid_method(std::string_view m) { return !m.empty() && m.size() <= 32 && valid_header_name(m); }


bool is_closed_error(const error_code& ec) {
  return ec == net::error::eof || ec == bhttp::error::end_of_stream || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == ssl::error::stream_truncated || ec == net::error::connection_aborted;
}

// Maps a transport error to an Error (never for aborts: the caller checks those first).
Error io_error(const error_code& ec, std::string_view what, const std::string& peer) {
  if (ec == net::error::eof || ec == bhttp::error::end_of_stream || ec == ssl::error::stream_truncated)
    return make_error(Errc::network, fmt::format("{}: connection closed by {}", what, peer));
  if (ec == net::error::connection_reset || ec == net::error::connection_aborted)
    return make_error(Errc::network, fmt::format("{}: connection reset by {}", what, peer));
  if (ec == net::error::broken_pipe)
    return make_error(Errc::network, fmt::format("{}: connection closed by {} (broken pipe)", what, peer));
  if (ec == net::error::connection_refused)
    return make_error(Errc::network, fmt::format("{}: connection refused by {}", what, peer));
  if (ec.category() == net::error::get_ssl_category()) {
    std::string reason = ec.message();
    return make_error(Errc::tls, fmt::format("{}: TLS error with {}: {}", what, peer, reason));
  }
  if (&ec.category() == &bhttp::make_error_code(bhttp::error::need_buffer).category()) {
    if (ec == bhttp::error::partial_message)
      return make_error(Errc::protocol, fmt::format("{}: {} closed the connection in the middle of the response", what, peer));
    if (ec == bhttp::error::header_limit)
      return make_error(Errc::protocol, fmt::format("{}: response head from {} is too large", what, peer));
    return make_error(Errc::protocol, fmt::format("{}: malformed HTTP response from {}: {}", what, peer, ec.message()));
  }
  return make_error(Errc::network, fmt::format("{} {}: {}", what, peer, ec.message()));
}

bool is_redirect(int s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }

using Parser = bhttp::response_parser<bhttp::buffer_body>;

// One request: redirects, retries and the exchanges they need. Lives in a shared_ptr owned by
// its coroutine; timer and cancel handlers hold weak references. All members are used on the
// request's strand only, except `cancel_requested_`.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  enum class Mode { buffer, stream };

  Exchange(std::shared_ptr<Client::Impl> impl, net::any_io_executor ex, Request req, StreamHandler handler, Mode mode)
      : impl_(std::move(impl)),
        ex_(std::move(ex)),
        req_(std::move(req)),
        handler_(std::move(handler)),
        mode_(mode),
        watchdog_(ex_),
        sleep_(ex_) {}

  ~Exchange() {
    if (conn_) impl_->pool.give_back(conn_->key, nullptr, false);
  }

  awaitable<Result<ResponseHead>> run();
  std::string take_body() { return std::move(body_); }

  // Hooks the request's and the client's cancellation to abort(). Returns false when the
  // client was already shut down.
  bool hook_cancel();
  void unhook_cancel();

 private:
  // Transport failure of one exchange.
  struct Failure {
    Error error;
    bool retryable = false;
    bool stale = false;     // reused connection failed before any response byte
    bool sent_any = false;  // some request bytes were written
    bool transport = false; // set: this is a transport failure (not a consumer error)
  };

  void abort(Errc code, std::string msg);
  Error abort_error() const { return make_error(abort_code_, abort_msg_); }
  // After an abort by a phase timeout (not the total deadline, not a cancel), the request may
  // go on with a new exchange: clears the abort and returns true.
  bool recover_from_timeout() {
    if (!aborted_) return true;
    if (abort_code_ != Errc::timed_out || phase_ == Phase::total || cancel_requested_.load()) return false;
    aborted_ = false;
    return true;
  }
  // Retry bookkeeping: whether a wait of `delay` fits the attempt limit, budget and deadline.
  bool retry_fits(ms delay, Clock::time_point start) const;
  awaitable<void> sleep_for(ms delay);

  // Watchdog: one deadline at a time; the timer is re-armed lazily so moving the deadline
  // forward (every body read) costs no timer operation.
  void arm(Phase p, ms d);
  void touch_idle();
  void disarm() { deadline_ = Clock::time_point::max(); }
  void wait_watchdog(Clock::time_point at);
  void on_watchdog(const error_code& ec, uint64_t gen);

  awaitable<bool> exchange_head(const Url& url, const std::string& method, const Headers& headers,
                                const std::shared_ptr<const std::string>& body, Failure& f);
  awaitable<Result<std::unique_ptr<Connection>>> obtain_connection(const Url& url, const Url* proxy, const std::string& key, bool& reused);
  awaitable<Status> open_connection(Connection& c, const Url& url, const Url* proxy);
  template <class S>
  awaitable<size_t> read_head_on(S& s, error_code& ec);
  template <class S>
  awaitable<size_t> write_on(S& s, const std::string& head, const std::shared_ptr<const std::string>& body, error_code& ec);

  // Body handling. deliver() errors are final (consumer errors, too_large).
  enum class Sink { deliver, discard };
  awaitable<Result<bool>> read_body(Sink sink, uint64_t discard_limit, Failure& f);
  template <class S>
  awaitable<Result<bool>> read_body_on(S& s, Sink sink, uint64_t discard_limit, Failure& f);
  Status deliver(std::span<const uint8_t> d);
  // Bytes can be read from the current connection without waiting.
  bool more_ready() {
    if (conn_->tls && conn_->tls->has_pending()) return true;
    error_code ec;
    return conn_->lowest().available(ec) > 0 && !ec;
  }
  void release_connection(bool reusable);
  void drop_connection();
  Result<ResponseHead> finish_head(const Url& url, int attempts);

  std::shared_ptr<Client::Impl> impl_;
  net::any_io_executor ex_;
  Request req_;
  StreamHandler handler_;
  Mode mode_;
  Timeouts to_;
  RetryPolicy rp_;
  bool idempotent_ = false;

  // Abort state.
  std::atomic<bool> cancel_requested_{false};
  bool aborted_ = false;
  Errc abort_code_ = Errc::cancelled;
  std::string abort_msg_;
  CancelPtr own_cancel_ = make_cancel();
  uint64_t inflight_id_ = 0, user_hook_ = 0;

  // Watchdog.
  net::steady_timer watchdog_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point total_deadline_ = Clock::time_point::max();
  Clock::time_point wd_expiry_ = Clock::time_point::max();
  bool wd_waiting_ = false;
  uint64_t wd_gen_ = 0;
  Phase phase_ = Phase::none;
  ms idle_{0};
  std::string peer_;  // "host:port" for messages

  net::steady_timer sleep_;
  std::optional<tcp::resolver> resolver_;
  std::shared_ptr<detail::Waiter> waiter_;
  std::unique_ptr<Connection> conn_;
  std::optional<Parser> parser_;
  bool leftover_ = false;  // bytes after the end of the response: connection not reusable

  // Results.
  std::string body_;
  bool data_delivered_ = false;
  int attempt_ = 1;
};

bool Exchange::hook_cancel() {
  inflight_id_ = impl_->register_exchange(own_cancel_);
  if (inflight_id_ == 0) return false;
  std::weak_ptr<Exchange> w = weak_from_this();
  auto ex = ex_;
  auto cb = [w, ex] {
    if (auto self = w.lock()) self->cancel_requested_.store(true, std::memory_order_relaxed);
    net::post(ex, [w] {
      if (auto self = w.lock()) self->abort(Errc::cancelled, "request cancelled");
    });
  };
  own_cancel_->on_cancel(cb);
  if (req_.cancel) user_hook_ = req_.cancel->on_cancel(cb);
  return true;
}

void Exchange::unhook_cancel() {
  if (req_.cancel && user_hook_) req_.cancel->remove(user_hook_);
  if (inflight_id_) impl_->unregister_exchange(inflight_id_);
}

void Exchange::abort(Errc code, std::string msg) {
  if (aborted_) return;
  aborted_ = true;
  abort_code_ = code;
  abort_msg_ = std::move(msg);
  error_code ec;
  if (conn_) conn_->close();
  if (resolver_) resolver_->cancel();
  sleep_.cancel();
  if (waiter_) waiter_->timer.cancel();
  watchdog_.cancel();
}

void Exchange::arm(Phase p, ms d) {
  auto now = Clock::now();
  Clock::time_point dl = d.count() > 0 ? now + d : Clock::time_point::max();
  phase_ = p;
  if (total_deadline_ <= dl) {
    dl = total_deadline_;
    phase_ = Phase::total;
  }
  if (p == Phase::idle || p == Phase::send) idle_ = d;
  deadline_ = dl;
  if (dl == Clock::time_point::max()) return;
  if (!wd_waiting_ || dl < wd_expiry_) wait_watchdog(dl);
}

void Exchange::touch_idle() {
  if (phase_ != Phase::idle && phase_ != Phase::send) return;
  if (idle_.count() <= 0) return;
  auto dl = Clock::now() + idle_;
  if (dl < total_deadline_) deadline_ = dl;
}

void Exchange::wait_watchdog(Clock::time_point at) {
  wd_expiry_ = at;
  wd_waiting_ = true;
  uint64_t gen = ++wd_gen_;
  watchdog_.expires_at(at);
  std::weak_ptr<Exchange> w = weak_from_this();
  watchdog_.async_wait([w, gen](const error_code& ec) {
    if (auto self = w.lock()) self->on_watchdog(ec, gen);
  });
}

void Exchange::on_watchdog(const error_code& ec, uint64_t gen) {
  if (gen != wd_gen_) return;  // superseded by a newer wait
  wd_waiting_ = false;
  if (ec == net::error::operation_aborted || aborted_) return;
  if (deadline_ == Clock::time_point::max()) return;
  if (Clock::now() >= deadline_) {
    ms limit = phase_ == Phase::total ? to_.total
             : phase_ == Phase::connect ? to_.connect
             : phase_ == Phase::tls ? to_.tls
             : phase_ == Phase::first_byte ? to_.first_byte
             : to_.idle;
    abort(Errc::timed_out, fmt::format("timed out: {} ({} ms) for {}", phase_name(phase_), limit.count(), peer_));
    return;
  }
  wait_watchdog(deadline_);
}

// ---------------------------------------------------------------------------------------------
// Connections

awaitable<Result<std::unique_ptr<Connection>>> Exchange::obtain_connection(const Url& url, const Url* proxy,
                                                                          const std::string& key, bool& reused) {
  reused = false;
  for (;;) {
    if (aborted_) co_return abort_error();
    auto g = impl_->pool.acquire(key, ex_);
    if (g.closed) co_return make_error(Errc::cancelled, "HTTP client shut down");
    if (g.wait) {
      waiter_ = g.wait;
      error_code ec;
      if (!aborted_) co_await waiter_->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      auto w = std::move(waiter_);
      g = impl_->pool.collect(key, w);
      if (aborted_) {
        if (g.conn) impl_->pool.give_back(key, std::move(g.conn), true);
        else if (g.create) impl_->pool.give_back(key, nullptr, false);
        co_return abort_error();
      }
      if (!g.conn && !g.create) continue;  // shut down or spurious: ask again
    }
    if (g.conn) {
      reused = true;
      impl_->stats.connections_reused.fetch_add(1, std::memory_order_relaxed);
      co_return std::move(g.conn);
    }
    break;
  }
  // A slot is reserved for us; it is returned by give_back() whatever happens below.
  auto c = std::make_unique<Connection>(impl_->io.get_executor(), impl_->opts.max_header_bytes + 64 * 1024);
  c->key = key;
  conn_ = std::move(c);  // so abort() can close it while connecting
  auto st = co_await open_connection(*conn_, url, proxy);
  if (!st) {
    auto dead = std::move(conn_);
    impl_->pool.give_back(key, nullptr, false);
    if (aborted_) co_return abort_error();
    co_return std::move(st).error();
  }
  impl_->stats.connections_opened.fetch_add(1, std::memory_order_relaxed);
  co_return std::move(conn_);
}

awaitable<Status> Exchange::open_connection(Connection& c, const Url& url, const Url* proxy) {
  const Url& hop = proxy ? *proxy : url;
  arm(Phase::connect, to_.connect);
  error_code ec;
  resolver_.emplace(ex_);
  auto results = co_await resolver_->async_resolve(hop.host, std::to_string(hop.port),
                                                   net::redirect_error(net::use_awaitable, ec));
  resolver_.reset();
  if (aborted_) co_return abort_error();
  if (ec) co_return make_error(Errc::network, fmt::format("cannot resolve host '{}': {}", hop.host, ec.message()));
  co_await net::async_connect(c.sock, results, net::redirect_error(net::use_awaitable, ec));
  if (aborted_) co_return abort_error();
  if (ec) {
    if (ec == net::error::connection_refused)
      co_return make_error(Errc::network, fmt::format("connection refused by {}", hop.authority()));
    co_return make_error(Errc::network, fmt::format("cannot connect to {}: {}", hop.authority(), ec.message()));
  }
  c.sock.set_option(tcp::no_delay(true), ec);

  if (proxy && url.is_https()) {
    // Tunnel through the proxy: CONNECT host:port, expect 2xx, then TLS end to end.
    std::string head = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nUser-Agent: {1}\r\n", url.authority(), impl_->opts.user_agent);
    if (auto auth = proxy_authorization(*proxy); !auth.empty()) head += "Proxy-Authorization: " + auth + "\r\n";
    head += "\r\n";
    co_await net::async_write(c.sock, net::buffer(head), net::redirect_error(net::use_awaitable, ec));
    if (aborted_) co_return abort_error();
    if (ec) co_return io_error(ec, "proxy CONNECT", hop.authority());
    Parser p;
    p.skip(true);
    p.header_limit(static_cast<uint32_t>(impl_->opts.max_header_bytes));
    co_await bhttp::async_read_header(c.sock, c.buf, p, net::redirect_error(net::use_awaitable, ec));
    if (aborted_) co_return abort_error();
    if (ec) co_return io_error(ec, "proxy CONNECT", hop.authority());
    int status = p.get().result_int();
    if (status / 100 != 2)
      co_return make_error(Errc::network, fmt::format("proxy {} refused CONNECT to {}: HTTP {}", hop.authority(), url.authority(), status));
    if (c.buf.size() != 0) co_return make_error(Errc::protocol, "proxy sent data after its CONNECT response");
  }

  if (url.is_https()) {
    if (!impl_->tls_error.empty()) co_return make_error(Errc::tls, impl_->tls_error);
    arm(Phase::tls, to_.tls);
    c.tls = std::make_unique<detail::TlsStream>(std::move(c.sock), impl_->ssl_ctx.native_handle());
    SSL* s = c.tls->native_handle();
    if (!s) co_return make_error(Errc::tls, "cannot create a TLS session");
    bool ip = url.is_ip_literal();
    if (!ip) SSL_set_tlsext_host_name(s, url.host.c_str());  // SNI is for DNS names only (RFC 6066)
    if (!impl_->opts.insecure_skip_verify) {
      if (ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), url.host.c_str());
      else SSL_set1_host(s, url.host.c_str());
    }
    co_await c.tls->async_handshake(net::redirect_error(net::use_awaitable, ec));
    if (aborted_) co_return abort_error();
    if (ec) {
      long vr = SSL_get_verify_result(s);
      if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        co_return make_error(Errc::tls, fmt::format("hostname mismatch: the certificate of {} is not valid for '{}'", url.authority(), url.host));
      if (vr != X509_V_OK)
        co_return make_error(Errc::tls, fmt::format("certificate verify failed: {} ({})", X509_verify_cert_error_string(vr), url.authority()));
      std::string why = tls_error_text();
      co_return make_error(Errc::tls, fmt::format("TLS handshake with {} failed: {}", url.authority(), why.empty() ? ec.message() : why));
    }
  }
  disarm();
  co_return Status();
}

// ---------------------------------------------------------------------------------------------
// One exchange: send the request, read the response head.

template <class S>
awaitable<size_t> Exchange::write_on(S& s, const std::string& head, const std::shared_ptr<const std::string>& body, error_code& ec) {
  std::array<net::const_buffer, 2> bufs{net::buffer(head), body ? net::buffer(*body) : net::const_buffer()};
  size_t total = head.size() + (body ? body->size() : 0);
  auto cond = [this, total](const error_code& e, size_t n) -> size_t {
    if (e) return 0;
    touch_idle();
    return total - n;
  };
  size_t n = co_await net::async_write(s, bufs, cond, net::redirect_error(net::use_awaitable, ec));
  co_return n;
}

template <class S>
awaitable<size_t> Exchange::read_head_on(S& s, error_code& ec) {
  co_return co_await bhttp::async_read_header(s, conn_->buf, *parser_, net::redirect_error(net::use_awaitable, ec));
}

awaitable<bool> Exchange::exchange_head(const Url& url, const std::string& method, const Headers& headers,
                                        const std::shared_ptr<const std::string>& body, Failure& f) {
  f = Failure{};
  const Url* proxy = impl_->proxies.proxy_for(url);
  if (!impl_->proxies.error().empty() && (impl_->opts.use_env_proxy || !impl_->opts.proxy.empty())) {
    f.error = make_error(Errc::invalid_argument, impl_->proxies.error());
    co_return false;
  }
  std::string key = url.origin();
  if (proxy) key = (url.is_https() ? key : std::string("http://")) + "|via " + proxy->authority();
  peer_ = url.authority();

  bool reused = false;
  auto cr = co_await obtain_connection(url, proxy, key, reused);
  if (!cr) {
    f.transport = true;
    f.error = std::move(cr).error();
    f.retryable = aborted_ ? (abort_code_ == Errc::timed_out && phase_ != Phase::total)
                           : (f.error.code == Errc::network || f.error.code == Errc::timed_out);
    co_return false;
  }
  conn_ = std::move(cr).value();
  leftover_ = false;

  // Request head. Framing headers are ours; caller headers cannot inject lines (checked in run()).
  std::string head;
  head.reserve(256);
  head += method;
  head += ' ';
  if (proxy && !url.is_https()) head += url.str();  // absolute-form through an http proxy
  else head += url.target;
  head += " HTTP/1.1\r\nHost: ";
  head += url.host_port();
  head += "\r\n";
  bool has_ua = false;
  for (const auto& [k, v] : headers) {
    if (iequals(k, "host") || iequals(k, "content-length") || iequals(k, "transfer-encoding")) continue;
    if (iequals(k, "user-agent")) has_ua = true;
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  if (!has_ua) {
    head += "User-Agent: ";
    head += impl_->opts.user_agent;
    head += "\r\n";
  }
  if (proxy && !url.is_https()) {
    if (auto auth = proxy_authorization(*proxy); !auth.empty()) head += "Proxy-Authorization: " + auth + "\r\n";
  }
  if (body) {
    head += fmt::format("Content-Length: {}\r\n", body->size());
  } else if (method == "POST" || method == "PUT" || method == "PATCH") {
    head += "Content-Length: 0\r\n";
  }
  head += "\r\n";

  impl_->stats.exchanges.fetch_add(1, std::memory_order_relaxed);
  auto t0 = Clock::now();
  arm(Phase::send, to_.idle);
  error_code ec;
  size_t written = conn_->tls ? co_await write_on(*conn_->tls, head, body, ec) : co_await write_on(conn_->sock, head, body, ec);
  impl_->stats.bytes_out.fetch_add(written, std::memory_order_relaxed);
  f.sent_any = written > 0;
  if (!ec && !aborted_) {
    arm(Phase::first_byte, to_.first_byte);
    for (int interim = 0;; ++interim) {
      parser_.emplace();
      parser_->header_limit(static_cast<uint32_t>(impl_->opts.max_header_bytes));
      // Beast 1.74 compares the length with the optional (none < any value): use the max instead.
      parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (method == "HEAD") parser_->skip(true);
      size_t n = conn_->tls ? co_await read_head_on(*conn_->tls, ec) : co_await read_head_on(conn_->sock, ec);
      impl_->stats.bytes_in.fetch_add(n, std::memory_order_relaxed);
      if (ec || aborted_) break;
      int st = parser_->get().result_int();
      if (st >= 200 || st == 101 || interim >= 8) break;
      // Interim 1xx response (e.g. an unsolicited 100 Continue): the real head follows.
    }
  }
  disarm();
  f.transport = true;
  if (aborted_) {
    f.error = abort_error();
    f.retryable = abort_code_ == Errc::timed_out && phase_ != Phase::total;
    drop_connection();
    co_return false;
  }
  if (ec) {
    bool nothing_received = !parser_ || !parser_->got_some();
    f.stale = reused && nothing_received && is_closed_error(ec);
    f.error = io_error(ec, f.sent_any ? "reading the response head" : "sending the request", peer_);
    f.retryable = ec != bhttp::error::header_limit &&
                  (f.error.code == Errc::network || ec == bhttp::error::partial_message || is_closed_error(ec));
    drop_connection();
    co_return false;
  }
  auto& msg = parser_->get();
  int status = msg.result_int();
  impl_->stats.record_ttfb(Clock::now() - t0);
  impl_->stats.responses_by_class[std::clamp(status / 100, 0, 5)].fetch_add(1, std::memory_order_relaxed);
  // Keep-Alive: timeout=N from the server bounds how long the connection may sit idle.
  if (auto ka = msg.find("Keep-Alive"); ka != msg.end()) {
    for (auto part : split(std::string_view(ka->value().data(), ka->value().size()), ',')) {
      part = trim(part);
      if (part.size() > 8 && iequals(part.substr(0, 8), "timeout=")) {
        if (auto secs = parse_u64(part.substr(8)); secs && *secs > 0)
          conn_->max_idle = std::chrono::seconds(*secs > 1 ? *secs - 1 : 1);
      }
    }
  }
  co_return true;
}

// ---------------------------------------------------------------------------------------------
// Body

Status Exchange::deliver(std::span<const uint8_t> d) {
  if (d.empty()) return {};
  if (mode_ == Mode::buffer) {
    if (body_.size() + d.size() > req_.max_buffered_body)
      return make_error(Errc::too_large, fmt::format("response body exceeds {} bytes", req_.max_buffered_body));
    body_.append(reinterpret_cast<const char*>(d.data()), d.size());
    return {};
  }
  data_delivered_ = true;
  if (!handler_.on_data) return {};
  try {
    return handler_.on_data(d);
  } catch (const std::exception& e) {
    return make_error(Errc::internal, fmt::format("on_data threw: {}", e.what()));
  }
}

void Exchange::release_connection(bool reusable) {
  if (!conn_) return;
  auto key = conn_->key;
  impl_->pool.give_back(key, std::move(conn_), reusable);
}

void Exchange::drop_connection() {
  if (!conn_) return;
  conn_->close();
  release_connection(false);
}

awaitable<Result<bool>> Exchange::read_body(Sink sink, uint64_t discard_limit, Failure& f) {
  if (conn_->tls) co_return co_await read_body_on(*conn_->tls, sink, discard_limit, f);
  co_return co_await read_body_on(conn_->sock, sink, discard_limit, f);
}

// Reads the body after the head. Returns true when the body was read completely (the
// connection may be reused), false when it was abandoned (discard limit). Transport failures
// fill `f` and return an error; consumer errors are returned as-is.
template <class S>
awaitable<Result<bool>> Exchange::read_body_on(S& s, Sink sink, uint64_t discard_limit, Failure& f) {
  f = Failure{};
  Parser& p = *parser_;
  auto& buf = conn_->buf;
  const bool discard = sink == Sink::discard;
  uint64_t discarded_ = 0;
  auto put = [&](std::span<const uint8_t> d) -> Status {
    if (discard) {
      discarded_ += d.size();
      return {};
    }
    return deliver(d);
  };
  auto fail = [&](const error_code& ec, std::string what) -> Error {
    f.transport = true;
    if (aborted_) {
      f.retryable = abort_code_ == Errc::timed_out && phase_ != Phase::total;
      return abort_error();
    }
    f.error = io_error(ec, what, peer_);
    f.retryable = f.error.code == Errc::network || f.error.code == Errc::protocol;
    return f.error;
  };

  if (p.is_done()) co_return true;
  arm(Phase::idle, to_.idle);
  const size_t cap = std::max<size_t>(4096, impl_->opts.read_buffer_bytes);
  error_code ec;

  if (p.chunked()) {
    uint8_t* scratch = conn_->scratch_buf(cap);
    while (!p.is_done()) {
      if (discard && discarded_ > discard_limit) co_return false;
      touch_idle();
      p.get().body().data = scratch;
      p.get().body().size = cap;
      p.get().body().more = true;
      size_t consumed = co_await bhttp::async_read_some(s, buf, p, net::redirect_error(net::use_awaitable, ec));
      impl_->stats.bytes_in.fetch_add(consumed, std::memory_order_relaxed);
      if (ec == bhttp::error::need_buffer) ec = {};
      size_t n = cap - p.get().body().size;
      if (n) {
        auto st = put({scratch, n});
        if (!st) co_return std::move(st).error();
      }
      if (aborted_) co_return fail(ec, "reading the response body");
      if (ec) {
        if (ec == bhttp::error::partial_message || is_closed_error(ec)) {
          f.error = make_error(Errc::protocol, fmt::format("chunked response body from {} truncated", peer_));
          f.retryable = f.transport = true;
          co_return f.error;
        }
        co_return fail(ec, "reading the chunked response body");
      }
    }
    leftover_ = buf.size() != 0;
    co_return true;
  }

  std::optional<uint64_t> len;
  if (auto cl = p.content_length()) len = *cl;
  uint64_t remaining = len ? *len : std::numeric_limits<uint64_t>::max();
  uint64_t received = 0;
  if (discard && len && *len > discard_limit) co_return false;
  if (!discard && mode_ == Mode::buffer && len && *len > req_.max_buffered_body)
    co_return make_error(Errc::too_large, fmt::format("response body of {} bytes exceeds {} bytes", *len, req_.max_buffered_body));

  // Bytes that arrived together with the head.
  if (buf.size() && remaining) {
    size_t have = static_cast<size_t>(std::min<uint64_t>(buf.size(), remaining));
    auto cb = buf.cdata();
    impl_->stats.bytes_in.fetch_add(have, std::memory_order_relaxed);
    auto st = put({static_cast<const uint8_t*>(cb.data()), have});
    if (!st) co_return std::move(st).error();
    buf.consume(have);
    remaining -= have;
    received += have;
  }
  leftover_ = buf.size() != 0;

  // Known length into a buffered body: read straight into the string.
  if (!discard && mode_ == Mode::buffer && len && remaining) {
    size_t off = body_.size();
    body_.resize(off + remaining);
    size_t want = static_cast<size_t>(remaining);
    auto cond = [this, want](const error_code& e, size_t n) -> size_t {
      if (e) return 0;
      touch_idle();
      return want - n;
    };
    size_t n = co_await net::async_read(s, net::buffer(body_.data() + off, want), cond,
                                        net::redirect_error(net::use_awaitable, ec));
    impl_->stats.bytes_in.fetch_add(n, std::memory_order_relaxed);
    body_.resize(off + n);
    received += n;
    remaining -= n;
    if (ec || aborted_) {
      if (!aborted_ && (ec == net::error::eof || ec == ssl::error::stream_truncated)) {
        f.error = make_error(Errc::protocol, fmt::format("response body from {} truncated: received {} of {} bytes", peer_, received, *len));
        f.retryable = f.transport = true;
        co_return f.error;
      }
      co_return fail(ec, "reading the response body");
    }
    co_return true;
  }

  uint8_t* scratch = remaining ? conn_->scratch_buf(cap) : nullptr;
  while (remaining) {
    if (discard && discarded_ > discard_limit) co_return false;
    size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, cap));
    touch_idle();
    // Fill the piece while more bytes are already readable (fewer, larger pieces), but hand
    // over what arrived as soon as nothing more is pending: a consumer never waits for bytes
    // that are already here.
    auto cond = [this, want](const error_code& e, size_t n) -> size_t {
      if (e || n >= want) return 0;
      touch_idle();
      if (n > 0 && !more_ready()) return 0;
      return want - n;
    };
    size_t n = co_await net::async_read(s, net::buffer(scratch, want), cond, net::redirect_error(net::use_awaitable, ec));
    impl_->stats.bytes_in.fetch_add(n, std::memory_order_relaxed);
    if (n) {
      if (len) remaining -= n;
      received += n;
      auto st = put({scratch, n});
      if (!st) co_return std::move(st).error();
    }
    if (aborted_) co_return fail(ec, "reading the response body");
    if (ec) {
      if (!len && ec == net::error::eof) co_return false;  // EOF-delimited body: complete, not reusable
      if (ec == net::error::eof || ec == ssl::error::stream_truncated) {
        f.error = len ? make_error(Errc::protocol, fmt::format("response body from {} truncated: received {} of {} bytes", peer_, received, *len))
                      : make_error(Errc::protocol, fmt::format("response body from {} truncated (TLS stream ended without close_notify)", peer_));
        f.retryable = f.transport = true;
        co_return f.error;
      }
      co_return fail(ec, "reading the response body");
    }
  }
  co_return true;
}

Result<ResponseHead> Exchange::finish_head(const Url& url, int attempts) {
  ResponseHead h;
  auto& msg = parser_->get();
  h.status = msg.result_int();
  h.headers.reserve(16);
  for (const auto& fld : msg) {
    h.headers.add(std::string_view(fld.name_string().data(), fld.name_string().size()),
                  std::string_view(fld.value().data(), fld.value().size()));
  }
  h.url = url.str();
  if (!parser_->chunked()) {
    if (auto cl = parser_->content_length()) h.content_length = *cl;
  }
  h.attempts = attempts;
  return h;
}

// ---------------------------------------------------------------------------------------------
// The request loop: redirects and retries around exchanges.

bool Exchange::retry_fits(ms delay, Clock::time_point start) const {
  if (attempt_ >= rp_.max_attempts || cancel_requested_.load()) return false;
  auto now = Clock::now();
  if (now - start + delay > rp_.budget) return false;
  if (total_deadline_ != Clock::time_point::max() && now + delay >= total_deadline_) return false;
  return true;
}

awaitable<void> Exchange::sleep_for(ms delay) {
  impl_->stats.retries.fetch_add(1, std::memory_order_relaxed);
  ++attempt_;
  if (delay.count() <= 0 || aborted_) co_return;
  sleep_.expires_after(delay);
  error_code ec;
  co_await sleep_.async_wait(net::redirect_error(net::use_awaitable, ec));
}

awaitable<Result<ResponseHead>> Exchange::run() {
  try {
    auto& o = impl_->opts;
    to_ = req_.timeouts.value_or(o.timeouts);
    rp_ = req_.retry.value_or(o.retry);
    std::string method = req_.method;
    for (auto& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (!valid_method(method)) co_return make_error(Errc::invalid_argument, "invalid HTTP method");
    idempotent_ = req_.idempotent.value_or(default_idempotent(method));
    for (const auto& [k, v] : req_.headers) {
      if (!valid_header_name(k)) co_return make_error(Errc::invalid_argument, fmt::format("invalid header name '{}'", k));
      if (!valid_header_value(v)) co_return make_error(Errc::invalid_argument, fmt::format("invalid value for header '{}'", k));
    }
    auto parsed = Url::parse(req_.url);
    if (!parsed) co_return std::move(parsed).error();
    Url url = std::move(*parsed);
    url.userinfo.clear();

    const auto start = Clock::now();
    if (to_.total.count() > 0) {
      total_deadline_ = start + to_.total;
      arm(Phase::total, ms(0));
    }
    Headers headers = req_.headers;
    auto body = req_.body;
    int redirects = 0;
    bool stale_resent = false;
    std::set<std::string> visited{method + " " + url.str()};

    // Reads and drops a small unwanted body (redirect, retried status) so the connection can
    // be reused; larger or failing bodies just close the connection.
    auto discard_body = [&]() -> awaitable<void> {
      Failure df;
      auto drained = co_await read_body(Sink::discard, 64 * 1024, df);
      bool reusable = drained.ok() && *drained && parser_->keep_alive() && !parser_->need_eof() && !leftover_ && !aborted_;
      release_connection(reusable);
      (void)recover_from_timeout();
    };

    for (;;) {
      if (aborted_) co_return abort_error();
      Failure f;
      bool ok = co_await exchange_head(url, method, headers, body, f);
      if (!ok) {
        if (aborted_ && !(f.retryable && recover_from_timeout())) co_return abort_error();
        if (f.stale && !stale_resent && (idempotent_ || !f.sent_any)) {
          stale_resent = true;
          impl_->stats.stale_resends.fetch_add(1, std::memory_order_relaxed);
          HF_LOG_DEBUG("http", "pooled connection to {} was closed, re-sending", peer_);
          continue;
        }
        if (f.retryable && idempotent_) {
          ms delay = backoff_delay(rp_, attempt_);
          if (retry_fits(delay, start)) {
            HF_LOG_DEBUG("http", "{}; retrying in {} ms", f.error.message, delay.count());
            co_await sleep_for(delay);
            continue;
          }
        }
        co_return std::move(f.error);
      }
      stale_resent = false;
      int status = parser_->get().result_int();

      if (is_redirect(status) && req_.max_redirects > 0) {
        auto loc = parser_->get().find(bhttp::field::location);
        if (loc != parser_->get().end()) {
          if (++redirects > req_.max_redirects) {
            drop_connection();
            co_return make_error(Errc::protocol, fmt::format("too many redirects (more than {})", req_.max_redirects));
          }
          auto next = url.resolve(std::string_view(loc->value().data(), loc->value().size()));
          if (!next) {
            drop_connection();
            co_return std::move(next).error();
          }
          std::string next_method = method;
          if (status == 303 && method != "HEAD") next_method = "GET";
          if ((status == 301 || status == 302) && method == "POST") next_method = "GET";
          if (!visited.insert(next_method + " " + next->str()).second) {
            drop_connection();
            co_return make_error(Errc::protocol, fmt::format("redirect loop at {}", next->str_no_query()));
          }
          co_await discard_body();
          if (aborted_) co_return abort_error();
          if (next_method != method) {
            method = next_method;
            body.reset();
            headers.remove("Content-Type");
            idempotent_ = req_.idempotent.value_or(default_idempotent(method));
          }
          if (!next->same_origin(url)) {
            // Credentials never follow a redirect to another origin (CDN, presigned storage).
            headers.remove("Authorization");
            headers.remove("Cookie");
            headers.remove("Proxy-Authorization");
          }
          HF_LOG_DEBUG("http", "redirect {} -> {}", status, next->str_no_query());
          url = std::move(*next);
          attempt_ = 1;
          impl_->stats.redirects.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
      }

      if (retryable_status(status) && idempotent_) {
        std::optional<ms> hint;
        auto& msg = parser_->get();
        if (auto ra = msg.find(bhttp::field::retry_after); ra != msg.end())
          hint = parse_retry_after(std::string_view(ra->value().data(), ra->value().size()), now_unix_s());
        if (!hint) {
          if (auto rl = msg.find("RateLimit"); rl != msg.end())
            hint = parse_ratelimit_wait(std::string_view(rl->value().data(), rl->value().size()));
        }
        ms delay = hint ? std::min(*hint, rp_.max_delay) : backoff_delay(rp_, attempt_);
        if (retry_fits(delay, start)) {
          HF_LOG_DEBUG("http", "HTTP {} from {}, retrying in {} ms", status, url.str_no_query(), delay.count());
          co_await discard_body();
          if (aborted_) co_return abort_error();
          co_await sleep_for(delay);
          continue;
        }
      }

      auto head = finish_head(url, attempt_);
      if (!head) co_return std::move(head).error();
      if (mode_ == Mode::stream && handler_.on_head) {
        Status st;
        try {
          st = handler_.on_head(*head);
        } catch (const std::exception& e) {
          st = make_error(Errc::internal, fmt::format("on_head threw: {}", e.what()));
        }
        if (!st) {
          drop_connection();
          co_return std::move(st).error();
        }
      }
      Failure bf;
      size_t body_mark = body_.size();
      auto rb = co_await read_body(Sink::deliver, 0, bf);
      if (!rb) {
        drop_connection();
        if (aborted_ && !(bf.retryable && recover_from_timeout())) co_return abort_error();
        bool may_retry = bf.transport && bf.retryable && idempotent_ && (mode_ == Mode::buffer || !data_delivered_);
        if (may_retry) {
          ms delay = backoff_delay(rp_, attempt_);
          if (retry_fits(delay, start)) {
            HF_LOG_DEBUG("http", "{}; retrying in {} ms", bf.error.message, delay.count());
            body_.resize(body_mark);
            co_await sleep_for(delay);
            continue;
          }
        }
        co_return std::move(rb).error();
      }
      bool reusable = *rb && parser_->keep_alive() && !parser_->need_eof() && !leftover_ && status != 101;
      release_connection(reusable);
      disarm();
      co_return head;
    }
  } catch (const std::exception& e) {
    drop_connection();
    co_return make_error(Errc::internal, fmt::format("HTTP client internal error: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points

template <class Result_, class Done>
void deliver_safely(Done& done, Result_&& r) {
  try {
    done(std::forward<Result_>(r));
  } catch (const std::exception& e) {
    HF_LOG_ERROR("http", "completion callback threw: {}", e.what());
  } catch (...) {
    HF_LOG_ERROR("http", "completion callback threw");
  }
}

awaitable<void> run_fetch(std::shared_ptr<Exchange> x, std::shared_ptr<Client::Impl> impl,
                          std::function<void(Result<Response>)> done) {
  Result<ResponseHead> r = co_await x->run();
  x->unhook_cancel();
  if (!r) {
    impl->stats.record_error(r.code());
    deliver_safely(done, Result<Response>(std::move(r).error()));
    co_return;
  }
  Response resp;
  static_cast<ResponseHead&>(resp) = std::move(r).value();
  resp.body = x->take_body();
  deliver_safely(done, Result<Response>(std::move(resp)));
}

awaitable<void> run_stream(std::shared_ptr<Exchange> x, std::shared_ptr<Client::Impl> impl,
                           std::function<void(Result<ResponseHead>)> done) {
  Result<ResponseHead> r = co_await x->run();
  x->unhook_cancel();
  if (!r) impl->stats.record_error(r.code());
  deliver_safely(done, std::move(r));
}

void start_fetch(const std::shared_ptr<Client::Impl>& impl, Request req, std::function<void(Result<Response>)> done) {
  impl->stats.requests.fetch_add(1, std::memory_order_relaxed);
  net::any_io_executor ex = net::make_strand(impl->io);
  auto x = std::make_shared<Exchange>(impl, ex, std::move(req), StreamHandler{}, Exchange::Mode::buffer);
  if (!x->hook_cancel()) {
    net::post(ex, [done = std::move(done), impl]() mutable {
      impl->stats.record_error(Errc::cancelled);
      deliver_safely(done, Result<Response>(make_error(Errc::cancelled, "HTTP client shut down")));
    });
    return;
  }
  net::co_spawn(ex, run_fetch(std::move(x), impl, std::move(done)), net::detached);
}

void start_stream(const std::shared_ptr<Client::Impl>& impl, Request req, StreamHandler handler,
                  std::function<void(Result<ResponseHead>)> done) {
  impl->stats.requests.fetch_add(1, std::memory_order_relaxed);
  net::any_io_executor ex = net::make_strand(impl->io);
  auto x = std::make_shared<Exchange>(impl, ex, std::move(req), std::move(handler), Exchange::Mode::stream);
  if (!x->hook_cancel()) {
    net::post(ex, [done = std::move(done), impl]() mutable {
      impl->stats.record_error(Errc::cancelled);
      deliver_safely(done, Result<ResponseHead>(make_error(Errc::cancelled, "HTTP client shut down")));
    });
    return;
  }
  net::co_spawn(ex, run_stream(std::move(x), impl, std::move(done)), net::detached);
}

}  // namespace

Client::Client(net::io_context& io, ClientOptions opts) : impl_(std::make_shared<Impl>(io, std::move(opts))) {}

Client::~Client() { impl_->shutdown(); }

void Client::shutdown() { impl_->shutdown(); }

StatsSnapshot Client::stats() const { return impl_->stats.snapshot(); }

const ClientOptions& Client::options() const { return impl_->opts; }

void Client::fetch(Request req, std::function<void(Result<Response>)> done) {
  start_fetch(impl_, std::move(req), std::move(done));
}

void Client::stream(Request req, StreamHandler handler, std::function<void(Result<ResponseHead>)> done) {
  start_stream(impl_, std::move(req), std::move(handler), std::move(done));
}

awaitable<Result<Response>> Client::co_fetch(Request req) {
  auto impl = impl_;
  return net::async_initiate<const net::use_awaitable_t<>&, void(Result<Response>)>(
      [impl](auto handler, Request r) {
        using H = decltype(handler);
        auto h = std::make_shared<H>(std::move(handler));
        start_fetch(impl, std::move(r), [h](Result<Response> res) {
          auto ex = net::get_associated_executor(*h);
          net::dispatch(ex, [h, res = std::move(res)]() mutable { (*h)(std::move(res)); });
        });
      },
      net::use_awaitable, std::move(req));
}

awaitable<Result<ResponseHead>> Client::co_stream(Request req, StreamHandler handler) {
  auto impl = impl_;
  return net::async_initiate<const net::use_awaitable_t<>&, void(Result<ResponseHead>)>(
      [impl](auto h0, Request r, StreamHandler sh) {
        using H = decltype(h0);
        auto h = std::make_shared<H>(std::move(h0));
        start_stream(impl, std::move(r), std::move(sh), [h](Result<ResponseHead> res) {
          auto ex = net::get_associated_executor(*h);
          net::dispatch(ex, [h, res = std::move(res)]() mutable { (*h)(std::move(res)); });
        });
      },
      net::use_awaitable, std::move(req), std::move(handler));
}

}  // namespace hf::http
