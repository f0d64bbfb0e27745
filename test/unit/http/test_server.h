// Scriptable loopback HTTP/HTTPS server, test PKI and CONNECT proxy for client tests.
//
// The server runs one thread per connection with blocking I/O, so a script can sleep, stall
// mid-body, reset or truncate at will. Every request is recorded. stop() (and the destructor)
// unblocks every connection and joins all threads; stalls end at stop().
// Thread-safe: accessors may be called from any thread while the server runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/http/headers.h"

namespace hf::test {

// A CA and leaf certificates generated in memory with OpenSSL (EC P-256).
class TestPki {
 public:
  TestPki();  // creates a fresh CA
  struct Leaf {
    std::string cert_pem, key_pem;
  };
  Leaf issue(const std::vector<std::string>& dns_names, const std::vector<std::string>& ips) const;
  const std::string& ca_pem() const { return ca_cert_pem_; }
  // Writes the CA certificate to a temporary file and returns its path (removed by the dtor).
  const std::string& ca_file();
  ~TestPki();

 private:
  std::string ca_cert_pem_, ca_key_pem_, ca_file_;
};

struct ReceivedRequest {
  std::string method, target;
  http::Headers headers;
  std::string body;
  int connection = 0;  // 1-based index of the accepted connection it arrived on
};

// Low-level access for scripted replies.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual bool write(std::string_view bytes) = 0;  // false once the peer is gone
  // Sleeps; returns false early when the server stops.
  virtual bool sleep(std::chrono::milliseconds d) = 0;
  virtual void reset() = 0;  // abortive close (RST)
  virtual void close() = 0;  // orderly close (FIN)
};

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<uint64_t> content_length;  // announced length (default: body.size())
  bool chunked = false;                    // send the body chunked, `chunk_size` per chunk
  size_t chunk_size = 1000;
  std::chrono::milliseconds head_delay{0}; // before anything is sent
  std::optional<size_t> stall_after;       // send this many body bytes, then stall ...
  std::chrono::milliseconds stall_for{-1}; // ... this long (-1: until the server stops), then go on
  enum class End { keep, close, reset } end = End::keep;  // after the reply
  bool close_without_reply = false;        // FIN instead of a response
  bool reset_without_reply = false;        // RST instead of a response
  std::string raw;                         // sent verbatim instead of a built response
  std::function<void(Conn&)> custom;       // full control (replaces everything above)
};

using Handler = std::function<Reply(const ReceivedRequest&)>;

class TestServer {
 public:
  struct Options {
    bool tls = false;
    TestPki::Leaf cert;          // for tls
    bool http10 = false;         // answer with HTTP/1.0
  };
  explicit TestServer(Handler h) : TestServer(std::move(h), Options{}) {}
  TestServer(Handler h, Options o);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  // "http(s)://<host>:<port><path>"
  std::string url(std::string_view path, std::string_view host = "127.0.0.1") const;
  int connections() const { return accepted_.load(); }
  int max_concurrent() const { return max_active_.load(); }
  std::vector<ReceivedRequest> requests() const;
  size_t request_count() const;
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0}, active_{0}, max_active_{0};
  friend struct Impl;
};

// Minimal forward proxy: CONNECT tunnels (counted), and plain-http absolute-form requests,
// which it answers itself with 200 "proxied <target>" (recording the request).
class TestProxy {
 public:
  TestProxy();
  ~TestProxy();
  uint16_t port() const { return port_; }
  std::string url() const;
  int connects() const { return connects_.load(); }
  std::vector<ReceivedRequest> requests() const;  // CONNECT and absolute-form requests
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int> connects_{0};
};

}  // namespace hf::test
