// Internal: TLS over a non-blocking TCP socket driven directly by OpenSSL (SSL_set_fd), as an
// Asio/Beast AsyncReadStream + AsyncWriteStream.
//
// Why not asio::ssl::stream: it moves every byte through a 17 KiB BIO pair (one extra copy,
// one async operation per TLS record). Here OpenSSL reads the socket itself with read-ahead
// into a large buffer, and one async_read_some drains every record already received into the
// caller's buffer, so a 256 KiB body piece costs one operation instead of sixteen.
//
// Errors use Asio's conventions so callers map them alike: OpenSSL errors in
// asio::error::get_ssl_category(), an EOF without close_notify is ssl::error::stream_truncated,
// a clean close_notify is asio::error::eof, socket errors are system errors.
// Completions never run inside the initiating call (a result that is available at once is
// posted), so composed loops (asio::async_read, Beast parsers) cannot recurse.
// Not thread-safe: one operation of each direction at a time, from one strand.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <algorithm>
#include <climits>

namespace hf::http::detail {

class TlsStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using error_code = boost::system::error_code;
  using tcp = boost::asio::ip::tcp;

  // Takes the connected socket; `ctx` must outlive the stream.
  TlsStream(tcp::socket&& sock, SSL_CTX* ctx) : sock_(std::move(sock)), ssl_(SSL_new(ctx)) {
    error_code ec;
    sock_.non_blocking(true, ec);
    if (ssl_) {
      SSL_set_fd(ssl_, static_cast<int>(sock_.native_handle()));
      SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      SSL_set_connect_state(ssl_);
    }
  }
  ~TlsStream() {
    if (ssl_) SSL_free(ssl_);
  }
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  executor_type get_executor() { return sock_.get_executor(); }
  tcp::socket& next_layer() { return sock_; }
  SSL* native_handle() { return ssl_; }
  // Decrypted or received-but-undecrypted bytes are waiting inside OpenSSL.
  bool has_pending() const { return ssl_ && SSL_has_pending(ssl_); }

  template <class Token>
  auto async_handshake(Token&& token) {
    return boost::asio::async_compose<Token, void(error_code)>(HandshakeOp{this}, token, sock_);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(
        IoOp<MutableBuffers, true>{this, buffers}, token, sock_);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(
        IoOp<ConstBuffers, false>{this, buffers}, token, sock_);
  }

 private:
  enum class Step { done, want_read, want_write };

  // Classifies a failed SSL_* call; fills `ec` for real errors.
  Step classify(int ret, error_code& ec) {
    int err = SSL_get_error(ssl_, ret);
    switch (err) {
      case SSL_ERROR_WANT_READ: return Step::want_read;
      case SSL_ERROR_WANT_WRITE: return Step::want_write;
      case SSL_ERROR_ZERO_RETURN: ec = boost::asio::error::eof; return Step::done;
      case SSL_ERROR_SYSCALL: {
        unsigned long e = ERR_get_error();
        if (e != 0) ec = error_code(static_cast<int>(e), boost::asio::error::get_ssl_category());
        else if (errno != 0 && ret < 0) ec = error_code(errno, boost::system::system_category());
        else ec = boost::asio::ssl::error::stream_truncated;
        return Step::done;
      }
      default: {
        unsigned long e = ERR_get_error();
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          ec = boost::asio::ssl::error::stream_truncated;
          return Step::done;
        }
#endif
        ec = error_code(e ? static_cast<int>(e) : static_cast<int>(SSL_R_UNKNOWN_PROTOCOL), boost::asio::error::get_ssl_category());
        return Step::done;
      }
    }
  }

  struct HandshakeOp {
    TlsStream* s;
    bool waited = false;
    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (ec) return self.complete(ec);
      if (!s->ssl_) return self.complete(error_code(ENOMEM, boost::system::system_category()));
      ERR_clear_error();
      errno = 0;
      int r = SSL_do_handshake(s->ssl_);
      if (r == 1) return finish(self, {});
      error_code err;
      Step st = s->classify(r, err);
      if (st == Step::done) return finish(self, err);
      waited = true;
      s->sock_.async_wait(st == Step::want_read ? tcp::socket::wait_read : tcp::socket::wait_write, std::move(self));
    }
    template <class Self>
    void finish(Self& self, error_code ec) {
      if (waited) return self.complete(ec);
      // Never complete inside the initiating call.
      auto ex = boost::asio::get_associated_executor(self, s->get_executor());
      boost::asio::post(boost::asio::bind_executor(ex, [self = std::move(self), ec]() mutable { self.complete(ec); }));
    }
  };

  template <class Buffers, bool Read>
  struct IoOp {
    TlsStream* s;
    Buffers buffers;
    bool waited = false;
    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (ec) return self.complete(ec, 0);
      auto it = boost::asio::buffer_sequence_begin(buffers);
      auto end = boost::asio::buffer_sequence_end(buffers);
      while (it != end && boost::asio::buffer(*it).size() == 0) ++it;
      if (it == end) return finish(self, {}, 0);
      auto b = boost::asio::buffer(*it);
      size_t total = 0;
      const size_t cap = std::min<size_t>(b.size(), INT_MAX);
      for (;;) {
        ERR_clear_error();
        errno = 0;
        int want = static_cast<int>(cap - total);
        int r;
        if constexpr (Read) r = SSL_read(s->ssl_, static_cast<char*>(b.data()) + total, want);
        else r = SSL_write(s->ssl_, static_cast<const char*>(b.data()) + total, want);
        if (r > 0) {
          total += static_cast<size_t>(r);
          // Reads keep draining records that are already here; writes return at once.
          if (!Read || total == cap) return finish(self, {}, total);
          continue;
        }
        error_code err;
        Step st = s->classify(r, err);
        if (total > 0) return finish(self, {}, total);  // report the error on the next call
        if (st == Step::done) return finish(self, err, 0);
        waited = true;
        s->sock_.async_wait(st == Step::want_read ? tcp::socket::wait_read : tcp::socket::wait_write, std::move(self));
        return;
      }
    }
    template <class Self>
    void finish(Self& self, error_code ec, size_t n) {
      if (waited) return self.complete(ec, n);
      auto ex = boost::asio::get_associated_executor(self, s->get_executor());
      boost::asio::post(boost::asio::bind_executor(ex, [self = std::move(self), ec, n]() mutable { self.complete(ec, n); }));
    }
  };

  tcp::socket sock_;
  SSL* ssl_;
};

}  // namespace hf::http::detail
