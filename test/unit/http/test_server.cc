#include <utility>  // before Asio (asio#944)

#include "test/unit/http/test_server.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <fmt/format.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

namespace hf::test {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

// ---------------------------------------------------------------------------------------------
// PKI

namespace {

struct PkeyDel { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Del { void operator()(X509* p) const { X509_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDel>;
using X509Ptr = std::unique_ptr<X509, X509Del>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

PkeyPtr gen_key() {
  PkeyPtr k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

void add_ext(X509* x, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  check(e != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

X509Ptr make_cert(EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca, const std::string& cn, const std::string& san) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), serial >> 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 30L * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  if (!ca) {
    add_ext(x.get(), &ctx, NID_ext_key_usage, "serverAuth");
    if (!san.empty()) add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }
  check(X509_sign(x.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return x;
}

std::string to_pem(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(b);
  return s;
}

std::string to_pem(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(b);
  return s;
}

X509Ptr cert_from_pem(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509Ptr x(PEM_read_bio_X509(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  check(x != nullptr, "PEM_read_bio_X509");
  return x;
}

PkeyPtr key_from_pem(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  PkeyPtr k(PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  check(k != nullptr, "PEM_read_bio_PrivateKey");
  return k;
}

}  // namespace

TestPki::TestPki() {
  auto key = gen_key();
  auto ca = make_cert(key.get(), nullptr, key.get(), true, "hf-mount-cpp test CA", "");
  ca_cert_pem_ = to_pem(ca.get());
  ca_key_pem_ = to_pem(key.get());
}

TestPki::~TestPki() {
  if (!ca_file_.empty()) std::remove(ca_file_.c_str());
}

TestPki::Leaf TestPki::issue(const std::vector<std::string>& dns, const std::vector<std::string>& ips) const {
  std::string san;
  for (const auto& d : dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& i : ips) san += (san.empty() ? "" : ",") + std::string("IP:") + i;
  auto ca = cert_from_pem(ca_cert_pem_);
  auto ca_key = key_from_pem(ca_key_pem_);
  auto key = gen_key();
  auto leaf = make_cert(key.get(), ca.get(), ca_key.get(), false, dns.empty() ? "test" : dns[0], san);
  return Leaf{to_pem(leaf.get()), to_pem(key.get())};
}

const std::string& TestPki::ca_file() {
  if (ca_file_.empty()) {
    char tmpl[] = "/tmp/hf-test-ca-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    ca_file_ = tmpl;
    std::ofstream(ca_file_) << ca_cert_pem_;
  }
  return ca_file_;
}

// ---------------------------------------------------------------------------------------------
// Shared socket bookkeeping: stop() shuts down every live descriptor to unblock its thread.

namespace {

struct Lifecycle {
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::set<int> live;  // descriptors that stop() may shut down
  std::vector<std::thread> threads;

  void add(int fd) {
    std::lock_guard lk(mu);
    live.insert(fd);
    if (stopping) ::shutdown(fd, SHUT_RDWR);
  }
  // Closes a socket without racing stop(): the descriptor leaves `live` before it is closed,
  // so stop() never shuts down a reused descriptor number.
  void close(tcp::socket& s, bool rst) {
    std::lock_guard lk(mu);
    if (!s.is_open()) return;
    live.erase(s.native_handle());
    error_code ec;
    if (rst) s.set_option(net::socket_base::linger(true, 0), ec);
    else s.shutdown(tcp::socket::shutdown_send, ec);
    s.close(ec);
  }
  bool sleep(std::chrono::milliseconds d) {
    std::unique_lock lk(mu);
    if (d.count() < 0) {
      cv.wait(lk, [&] { return stopping; });
      return false;
    }
    return !cv.wait_for(lk, d, [&] { return stopping; });
  }
  void spawn(std::function<void()> f) {
    std::lock_guard lk(mu);
    threads.emplace_back(std::move(f));
  }
  // Returns the threads to join.
  std::vector<std::thread> stop() {
    std::lock_guard lk(mu);
    stopping = true;
    for (int fd : live) ::shutdown(fd, SHUT_RDWR);
    cv.notify_all();
    return std::move(threads);
  }
};

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct TestServer::Impl {
  TestServer* owner;
  Handler handler;
  Options opts;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::optional<ssl::context> sctx;
  Lifecycle life;
  std::thread accept_thread;
  mutable std::mutex req_mu;
  std::vector<ReceivedRequest> reqs;
  bool stopped = false;

  void accept_loop();
  void serve(std::shared_ptr<tcp::socket> sock, int id);
  template <class S>
  void serve_on(S& stream, tcp::socket& sock, int id);
};

namespace {

template <class S>
struct ConnImpl : Conn {
  ConnImpl(S& s, tcp::socket& sock, Lifecycle& life) : s_(s), sock_(sock), life_(life) {}
  bool write(std::string_view bytes) override {
    error_code ec;
    net::write(s_, net::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }
  bool sleep(std::chrono::milliseconds d) override { return life_.sleep(d); }
  void reset() override { life_.close(sock_, true); }
  void close() override { life_.close(sock_, false); }
  S& s_;
  tcp::socket& sock_;
  Lifecycle& life_;
};

}  // namespace

TestServer::TestServer(Handler h, Options o) : impl_(std::make_shared<Impl>()) {
  impl_->owner = this;
  impl_->handler = std::move(h);
  impl_->opts = std::move(o);
  if (impl_->opts.tls) {
    impl_->sctx.emplace(ssl::context::tls_server);
    const auto& c = impl_->opts.cert;
    impl_->sctx->use_certificate_chain(net::buffer(c.cert_pem));
    impl_->sctx->use_private_key(net::buffer(c.key_pem), ssl::context::pem);
  }
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen(256);
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->accept_thread = std::thread([impl = impl_] { impl->accept_loop(); });
}

TestServer::~TestServer() { stop(); }

void TestServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  auto threads = impl_->life.stop();
  impl_->accept_thread.join();
  // Threads spawned after stop() started (none: accept_loop checks `stopping`) are joined too.
  for (auto& t : threads) t.join();
  auto late = impl_->life.stop();
  for (auto& t : late) t.join();
  error_code ec;
  impl_->acceptor.close(ec);
}

std::string TestServer::url(std::string_view path, std::string_view host) const {
  return fmt::format("{}://{}:{}{}", impl_->opts.tls ? "https" : "http", host, port_, path);
}

std::vector<ReceivedRequest> TestServer::requests() const {
  std::lock_guard lk(impl_->req_mu);
  return impl_->reqs;
}

size_t TestServer::request_count() const {
  std::lock_guard lk(impl_->req_mu);
  return impl_->reqs.size();
}

void TestServer::Impl::accept_loop() {
  for (int id = 1;; ++id) {
    auto sock = std::make_shared<tcp::socket>(io);
    error_code ec;
    acceptor.accept(*sock, ec);
    {
      std::lock_guard lk(life.mu);
      if (life.stopping) return;
    }
    if (ec) return;
    owner->accepted_.fetch_add(1);
    life.add(sock->native_handle());
    life.spawn([this, sock, id] { serve(sock, id); });
  }
}

void TestServer::Impl::serve(std::shared_ptr<tcp::socket> sock, int id) {
  int now = owner->active_.fetch_add(1) + 1;
  int prev = owner->max_active_.load();
  while (now > prev && !owner->max_active_.compare_exchange_weak(prev, now)) {
  }
  error_code ec;
  sock->set_option(tcp::no_delay(true), ec);
  if (sctx) {
    ssl::stream<tcp::socket&> tls(*sock, *sctx);
    tls.handshake(ssl::stream_base::server, ec);
    if (!ec) serve_on(tls, *sock, id);
  } else {
    serve_on(*sock, *sock, id);
  }
  life.close(*sock, false);
  owner->active_.fetch_sub(1);
}

template <class S>
void TestServer::Impl::serve_on(S& stream, tcp::socket& sock, int id) {
  boost::beast::flat_buffer buf;
  ConnImpl<S> conn(stream, sock, life);
  for (;;) {
    bhttp::request_parser<bhttp::string_body> p;
    p.body_limit(256ull << 20);
    p.header_limit(1 << 20);
    error_code ec;
    bhttp::read(stream, buf, p, ec);
    if (ec) return;
    auto& m = p.get();
    ReceivedRequest rr;
    rr.method = std::string(m.method_string());
    rr.target = std::string(m.target());
    for (const auto& f : m) rr.headers.add(std::string(f.name_string()), std::string(f.value()));
    rr.body = std::move(m.body());
    rr.connection = id;
    bool client_close = !m.keep_alive();
    bool head_only = rr.method == "HEAD";
    {
      std::lock_guard lk(req_mu);
      reqs.push_back(rr);
    }
    Reply r = handler(rr);
    if (r.custom) {
      r.custom(conn);
      return;
    }
    if (r.close_without_reply) return conn.close();
    if (r.reset_without_reply) return conn.reset();
    if (r.head_delay.count() > 0 && !conn.sleep(r.head_delay)) return;
    if (!r.raw.empty()) {
      if (!conn.write(r.raw)) return;
    } else {
      std::string head = fmt::format("HTTP/{} {} {}\r\n", opts.http10 ? "1.0" : "1.1", r.status, reason(r.status));
      for (auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
      if (r.chunked) head += "Transfer-Encoding: chunked\r\n";
      else head += fmt::format("Content-Length: {}\r\n", r.content_length.value_or(r.body.size()));
      if (r.end != Reply::End::keep || client_close) head += "Connection: close\r\n";
      head += "\r\n";
      std::string_view body = head_only ? std::string_view() : std::string_view(r.body);
      size_t first = r.stall_after ? std::min(*r.stall_after, body.size()) : body.size();
      auto send_body = [&](std::string_view piece) -> bool {
        if (!r.chunked) return conn.write(piece);
        for (size_t off = 0; off < piece.size(); off += r.chunk_size) {
          auto c = piece.substr(off, r.chunk_size);
          if (!conn.write(fmt::format("{:x}\r\n", c.size())) || !conn.write(c) || !conn.write("\r\n")) return false;
        }
        return true;
      };
      if (!conn.write(head) || !send_body(body.substr(0, first))) return;
      if (r.stall_after) {
        if (!conn.sleep(r.stall_for)) return;
        if (!send_body(body.substr(first))) return;
      }
      if (r.chunked && !head_only && !conn.write("0\r\n\r\n")) return;
    }
    if (r.end == Reply::End::reset) return conn.reset();
    if (r.end == Reply::End::close || client_close) return conn.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Proxy

struct TestProxy::Impl {
  TestProxy* owner;
  net::io_context io;
  tcp::acceptor acceptor{io};
  Lifecycle life;
  std::thread accept_thread;
  mutable std::mutex req_mu;
  std::vector<ReceivedRequest> reqs;
  bool stopped = false;

  void accept_loop();
  void serve(std::shared_ptr<tcp::socket> sock);
  void tunnel(tcp::socket& a, tcp::socket& b);
};

TestProxy::TestProxy() : impl_(std::make_shared<Impl>()) {
  impl_->owner = this;
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen(64);
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->accept_thread = std::thread([impl = impl_] { impl->accept_loop(); });
}

TestProxy::~TestProxy() { stop(); }

void TestProxy::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  auto threads = impl_->life.stop();
  impl_->accept_thread.join();
  for (auto& t : threads) t.join();
  auto late = impl_->life.stop();
  for (auto& t : late) t.join();
}

std::string TestProxy::url() const { return fmt::format("http://127.0.0.1:{}", port_); }

std::vector<ReceivedRequest> TestProxy::requests() const {
  std::lock_guard lk(impl_->req_mu);
  return impl_->reqs;
}

void TestProxy::Impl::accept_loop() {
  for (;;) {
    auto sock = std::make_shared<tcp::socket>(io);
    error_code ec;
    acceptor.accept(*sock, ec);
    {
      std::lock_guard lk(life.mu);
      if (life.stopping) return;
    }
    if (ec) return;
    life.add(sock->native_handle());
    life.spawn([this, sock] { serve(sock); });
  }
}

void TestProxy::Impl::tunnel(tcp::socket& a, tcp::socket& b) {
  pollfd fds[2] = {{a.native_handle(), POLLIN, 0}, {b.native_handle(), POLLIN, 0}};
  char buf[65536];
  for (;;) {
    if (::poll(fds, 2, 200) < 0) return;
    {
      std::lock_guard lk(life.mu);
      if (life.stopping) return;
    }
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) return;
      int out = fds[1 - i].fd;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(out, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

void TestProxy::Impl::serve(std::shared_ptr<tcp::socket> sock) {
  boost::beast::flat_buffer buf;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> p;
    error_code ec;
    if (true) {
      // CONNECT requests carry no body; the parser must not wait for one.
      bhttp::read_header(*sock, buf, p, ec);
      if (ec) break;
      if (p.get().method() != bhttp::verb::connect && !p.is_done()) bhttp::read(*sock, buf, p, ec);
      if (ec) break;
    }
    auto& m = p.get();
    ReceivedRequest rr;
    rr.method = std::string(m.method_string());
    rr.target = std::string(m.target());
    for (const auto& f : m) rr.headers.add(std::string(f.name_string()), std::string(f.value()));
    rr.body = m.body();
    {
      std::lock_guard lk(req_mu);
      reqs.push_back(rr);
    }
    if (m.method() == bhttp::verb::connect) {
      owner->connects_.fetch_add(1);
      auto colon = rr.target.rfind(':');
      tcp::socket up(io);
      tcp::resolver res(io);
      auto eps = res.resolve(rr.target.substr(0, colon), rr.target.substr(colon + 1), ec);
      if (!ec) net::connect(up, eps, ec);
      if (ec) {
        net::write(*sock, net::buffer(std::string("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")), ec);
        break;
      }
      life.add(up.native_handle());
      net::write(*sock, net::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")), ec);
      if (buf.size()) net::write(up, buf.data(), ec);
      tunnel(*sock, up);
      life.close(up, false);
      break;
    }
    std::string body = "proxied " + rr.target;
    std::string resp = fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
    net::write(*sock, net::buffer(resp), ec);
    if (ec || !m.keep_alive()) break;
  }
  life.close(*sock, false);
}

}  // namespace hf::test
