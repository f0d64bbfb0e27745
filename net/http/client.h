// Asynchronous HTTP/1.1 client (Beast + OpenSSL) with keep-alive pooling, TLS verification,
// redirects, retries, per-phase timeouts, proxies and cancellation.
//
// Threading: every Client member may be called from any thread. Each request runs as a
// coroutine on its own strand of the io_context given to the constructor; completion
// callbacks (`done`, StreamHandler callbacks) run on an io thread, on that strand, and must
// not block. The io_context may be run by several threads.
//
// Lifetime: the Client must outlive the io_context's run() for its requests to complete.
// Destroying (or shutdown()) cancels every request in flight: each one still completes, with
// Errc::cancelled, as long as the io_context keeps running. Requests started after shutdown
// fail immediately with Errc::cancelled.
//
// Errors: an HTTP status is never an error (any status is a Response, after retryable statuses
// have exhausted their retries). Transport failures are Errc::network (DNS, connect, reset,
// proxy), Errc::tls (handshake, certificate verification: "certificate verify failed: ..." or
// "hostname mismatch"), Errc::timed_out (message names the phase: connect, tls, send, first
// byte, idle, total deadline), Errc::protocol (malformed or oversized response head, truncated
// body, bad chunked encoding, bad redirect), Errc::cancelled, Errc::too_large (fetch() body over
// Request::max_buffered_body), Errc::invalid_argument (bad URL or header in the Request).
//
// Connection reuse: connections are pooled per (scheme, host, port, proxy), at most
// `max_connections_per_host` at a time (further requests wait FIFO for a free one, they never
// fail for lack of a connection); an idle connection is kept for `idle_keepalive`. A connection
// returns to the pool only after a complete response that allows keep-alive. Before reuse a
// pooled connection is checked with a non-blocking peek and dropped if the server closed it.
// If a reused connection still fails before any response byte arrives (the server closed it
// while our request was in flight), the request is re-sent once on a fresh connection without
// counting as a retry: for idempotent requests always, for non-idempotent ones only if not a
// single byte of the request had been written (the server cannot have seen it).
//
// Retries (idempotent requests only, see Request::idempotent): transport errors and timeouts,
// and statuses 408/429/500/502/503/504, with full-jitter exponential backoff; Retry-After and
// the Hub's `RateLimit: "api";r=0;t=N` (wait t+1 s) replace the backoff, capped by max_delay;
// no retry is started whose wait would end after `budget`. fetch() may also retry after a body
// failed mid-way (nothing was delivered yet); stream() retries only until the first on_data.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/cancel.h"
#include "base/result.h"
#include "net/http/headers.h"
#include "net/http/retry.h"
#include "net/http/url.h"

#ifndef HF_VERSION
#define HF_VERSION "0.0.0"
#endif

namespace hf::http {

struct Timeouts {
  std::chrono::milliseconds connect{10000};     // DNS + TCP connect (+ proxy CONNECT)
  std::chrono::milliseconds tls{10000};         // TLS handshake
  std::chrono::milliseconds first_byte{30000};  // request sent -> complete response head
  std::chrono::milliseconds idle{30000};        // max gap between body reads (and request writes)
  std::chrono::milliseconds total{0};           // whole request incl. retries and body; 0 = none
};

struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;                           // Host, User-Agent, Content-Length are set by the client
  std::shared_ptr<const std::string> body;   // shared so retries don't copy (xorbs up to 64 MiB)
  std::optional<Timeouts> timeouts;          // default: ClientOptions::timeouts
  std::optional<RetryPolicy> retry;          // default: ClientOptions::retry
  std::optional<bool> idempotent;            // default: GET/HEAD/PUT/DELETE/OPTIONS true, others false
  int max_redirects = 10;                    // 0 = return 3xx to the caller
  uint64_t max_buffered_body = 64ull << 20;  // fetch(): larger bodies -> Errc::too_large
  CancelPtr cancel;                          // cancel() aborts promptly with Errc::cancelled
};

struct ResponseHead {
  int status = 0;
  Headers headers;
  std::string url;                        // final URL (after redirects)
  std::optional<uint64_t> content_length;
  int attempts = 1;                       // attempts of the final request (1 + retries)
};

struct Response : ResponseHead {
  std::string body;
};

// Body pieces are only valid during the call. Returning an error aborts the request (the
// connection is dropped) and `done` receives that error.
struct StreamHandler {
  std::function<Status(const ResponseHead&)> on_head;
  std::function<Status(std::span<const uint8_t>)> on_data;
};

struct ClientOptions {
  std::string user_agent = std::string("hf-mount-cpp/") + HF_VERSION;
  size_t max_connections_per_host = 16;
  std::chrono::seconds idle_keepalive{60};
  Timeouts timeouts;
  RetryPolicy retry;
  std::string extra_ca_file;          // PEM bundle added to the system trust store; default $HF_MOUNT_CA_BUNDLE
  bool insecure_skip_verify = false;  // tests only
  bool use_env_proxy = true;          // *_proxy / NO_PROXY from the environment
  std::string proxy;                  // explicit proxy URL (overrides the environment when non-empty)
  std::string no_proxy;               // with `proxy`
  size_t max_header_bytes = 64 * 1024;
  size_t read_buffer_bytes = 256 * 1024;  // body piece size for stream()
};

constexpr size_t kLatencyBuckets = 32;  // bucket i: time to first byte in [2^i, 2^(i+1)) microseconds
constexpr size_t kErrcSlots = 64;

struct StatsSnapshot {
  uint64_t requests = 0;       // fetch()/stream() calls
  uint64_t exchanges = 0;      // request/response round trips (incl. retries and redirects)
  std::array<uint64_t, 6> responses_by_class{};  // index = status / 100 (1..5)
  uint64_t retries = 0;
  uint64_t redirects = 0;
  uint64_t stale_resends = 0;  // re-sends after a pooled connection turned out closed
  std::array<uint64_t, kErrcSlots> errors_by_errc{};  // final request errors, index = int(Errc)
  uint64_t bytes_in = 0;       // response bytes (heads and bodies)
  uint64_t bytes_out = 0;      // request bytes (heads and bodies)
  uint64_t connections_opened = 0;
  uint64_t connections_reused = 0;
  std::array<uint64_t, kLatencyBuckets> ttfb_us_log2{};

  uint64_t errors(Errc c) const { return errors_by_errc[static_cast<size_t>(c) % kErrcSlots]; }
  uint64_t errors_total() const;
};

// Lock-free counters updated by the client; read with snapshot() from any thread.
struct Stats {
  std::atomic<uint64_t> requests{0}, exchanges{0}, retries{0}, redirects{0}, stale_resends{0};
  std::array<std::atomic<uint64_t>, 6> responses_by_class{};
  std::array<std::atomic<uint64_t>, kErrcSlots> errors_by_errc{};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0}, connections_opened{0}, connections_reused{0};
  std::array<std::atomic<uint64_t>, kLatencyBuckets> ttfb_us_log2{};

  void record_ttfb(std::chrono::nanoseconds d);
  void record_error(Errc c) { errors_by_errc[static_cast<size_t>(c) % kErrcSlots].fetch_add(1, std::memory_order_relaxed); }
  StatsSnapshot snapshot() const;
};

class Client {
 public:
  Client(boost::asio::io_context& io, ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Buffers the whole body. `done` runs exactly once, on an io thread.
  void fetch(Request req, std::function<void(Result<Response>)> done);
  // Streams the body through `handler`; `done` runs exactly once, after the last on_data (or on
  // error). On success it receives the head that was passed to on_head.
  void stream(Request req, StreamHandler handler, std::function<void(Result<ResponseHead>)> done);

  // Coroutine forms; they resume on the awaiting coroutine's executor.
  boost::asio::awaitable<Result<Response>> co_fetch(Request req);
  boost::asio::awaitable<Result<ResponseHead>> co_stream(Request req, StreamHandler handler);

  StatsSnapshot stats() const;
  const ClientOptions& options() const;
  // Cancels all requests in flight, closes idle connections, refuses new requests.
  void shutdown();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace hf::http
