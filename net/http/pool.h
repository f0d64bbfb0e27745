// Internal: connections and the per-host connection pool of http::Client.
//
// Thread-safety: Pool is internally synchronized (one mutex; never held while calling out,
// except for closing sockets). A Connection is used by one request at a time; ownership moves
// between requests through the pool (unique_ptr), which orders the accesses.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "net/http/tls_stream.h"

namespace hf::http::detail {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Connection {
  Connection(const net::any_io_executor& ex, size_t head_limit) : sock(ex), buf(head_limit) {}

  std::string key;                                      // pool key
  tcp::socket sock;                                     // the socket while plain (moved into `tls` for https)
  std::unique_ptr<TlsStream> tls;                       // set for https
  boost::beast::flat_buffer buf;                        // response bytes read but not yet parsed
  std::unique_ptr<uint8_t[]> scratch;                   // body read buffer, allocated on first use
  size_t scratch_size = 0;
  Clock::time_point idle_since{};
  Clock::duration max_idle = Clock::duration::max();    // from the server's Keep-Alive: timeout=N
  bool reused = false;                                  // has served a request before

  tcp::socket& lowest() { return tls ? tls->next_layer() : sock; }
  void close();
  uint8_t* scratch_buf(size_t n);
  // Non-blocking check that the server has not closed the idle connection (or sent stray bytes).
  bool looks_alive();
};

// A request waiting for a connection slot. The pool hands over a connection (or the right to
// open one) and wakes the waiter by cancelling `timer` on the waiter's own executor.
struct Waiter {
  explicit Waiter(const net::any_io_executor& ex) : timer(ex) { timer.expires_at(Clock::time_point::max()); }
  net::steady_timer timer;
  std::unique_ptr<Connection> conn;  // guarded by Pool::mu_
  bool may_create = false;           // guarded by Pool::mu_
  bool woken = false;                // guarded by Pool::mu_
};

class Pool {
 public:
  Pool(size_t cap_per_host, Clock::duration keepalive) : cap_(cap_per_host ? cap_per_host : 1), keepalive_(keepalive) {}

  struct Grant {
    std::unique_ptr<Connection> conn;  // an idle connection to reuse
    bool create = false;               // a slot was reserved: open a new connection
    std::shared_ptr<Waiter> wait;      // queue position: wait, then collect()
    bool closed = false;               // the pool was shut down
  };
  Grant acquire(const std::string& key, const net::any_io_executor& ex);
  // After the waiter's timer completed: what it was given (empty if it was woken by an abort,
  // in which case it is removed from the queue).
  Grant collect(const std::string& key, const std::shared_ptr<Waiter>& w);
  // Returns a slot. `c` null = a reserved slot whose connection was never opened.
  void give_back(const std::string& key, std::unique_ptr<Connection> c, bool reusable);
  void close_all();
  size_t idle_count(const std::string& key);

 private:
  struct HostPool {
    std::deque<std::unique_ptr<Connection>> idle;  // most recently used at the back
    size_t busy = 0;                               // connections in use or being opened
    std::deque<std::shared_ptr<Waiter>> waiters;   // FIFO
  };
  void sweep_locked(HostPool& hp, Clock::time_point now);
  static void wake(const std::shared_ptr<Waiter>& w);

  std::mutex mu_;
  std::unordered_map<std::string, HostPool> hosts_;
  size_t cap_;
  Clock::duration keepalive_;
  bool closed_ = false;
};

}  // namespace hf::http::detail
