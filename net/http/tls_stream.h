// Internal: TLS over a TCP socket driven directly by OpenSSL, as an Asio/Beast
// AsyncReadStream + AsyncWriteStream.
//
// Why not asio::ssl::stream: it moves every received byte through a 17 KiB BIO pair (an extra
// copy, one async operation per TLS record). Here OpenSSL reads the socket itself (socket BIO,
// read-ahead into a large buffer) and one async_read_some drains every record already
// received into the caller's buffer: a 256 KiB body piece costs one operation, not sixteen.
// Outgoing TLS bytes go to a memory BIO and are written with asio::async_write (writes are
// rare: request heads, uploads).
//
// Waiting for input uses a speculative 1-byte MSG_PEEK receive, not socket::async_wait: in
// Boost 1.74 async_wait never tries speculatively, so with several io threads the readiness
// edge can be consumed by another thread between OpenSSL's EAGAIN and the wait (lost wakeup).
//
// Errors use Asio's conventions so callers map them alike: OpenSSL errors in
// asio::error::get_ssl_category(), an EOF without close_notify is ssl::error::stream_truncated,
// a clean close_notify is asio::error::eof, socket errors are system errors.
// Completions never run inside the initiating call (an immediate result is posted), so
// composed loops (asio::async_read, Beast parsers) cannot recurse.
// Not thread-safe: one read and one write at a time, from one strand; the SSL object is
// shared by both directions, so a read and a write must not run concurrently either (the HTTP
// client never overlaps them).
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

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
    if (!ssl_) return;
    BIO* rbio = BIO_new_socket(static_cast<int>(sock_.native_handle()), BIO_NOCLOSE);
    BIO* wbio = BIO_new(BIO_s_mem());
    if (!rbio || !wbio) {
      BIO_free(rbio);
      BIO_free(wbio);
      SSL_free(ssl_);
      ssl_ = nullptr;
      return;
    }
    SSL_set_bio(ssl_, rbio, wbio);  // the SSL object owns both
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_connect_state(ssl_);
  }
  ~TlsStream() {
    if (ssl_) SSL_free(ssl_);
  }
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  executor_type get_executor() { return sock_.get_executor(); }
  tcp::socket& next_layer() { return sock_; }
  SSL* native_handle() { return ssl_; }
  // Received TLS bytes (decrypted or not) are waiting inside OpenSSL.
  bool has_pending() const { return ssl_ && SSL_has_pending(ssl_); }

  template <class Token>
  auto async_handshake(Token&& token) {
    return boost::asio::async_compose<Token, void(error_code)>(Op<Kind::handshake, boost::asio::mutable_buffer>{this, {}}, token,
                                                               sock_);
  }
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(Op<Kind::read, MutableBuffers>{this, buffers}, token, sock_);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(Op<Kind::write, ConstBuffers>{this, buffers}, token, sock_);
  }

 private:
  enum class Kind { handshake, read, write };
  enum class Step { done, want_read };

  // Classifies a failed SSL_* call; fills `ec` for real errors.
  Step classify(int ret, error_code& ec) {
    int err = SSL_get_error(ssl_, ret);
    switch (err) {
      case SSL_ERROR_WANT_READ: return Step::want_read;
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
        ec = error_code(e ? static_cast<int>(e) : 1, boost::asio::error::get_ssl_category());
        return Step::done;
      }
    }
  }

  // Moves the encrypted bytes OpenSSL produced into out_; true if there are any.
  bool take_output() {
    BIO* w = SSL_get_wbio(ssl_);
    size_t n = BIO_ctrl_pending(w);
    if (n == 0) return false;
    out_.resize(n);
    int got = BIO_read(w, out_.data(), static_cast<int>(n));
    out_.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return !out_.empty();
  }

  template <Kind K, class Buffers>
  struct Op {
    TlsStream* s;
    Buffers buffers;
    enum class Stage { start, flushing, waiting, deliver } stage = Stage::start;
    bool async_done = false;  // some step completed asynchronously: completing now is safe
    size_t total = 0;         // plaintext bytes read or accepted for writing
    error_code pending_ec;    // error found while output still had to be flushed; the result
    bool finished = false;    // the SSL call is over; only flushing remains

    template <class Self>
    void operator()(Self& self, error_code ec = {}, size_t = 0) {
      if (stage == Stage::deliver) return complete(self, pending_ec);  // posted result
      if (stage != Stage::start) async_done = true;
      if (stage == Stage::waiting) {
        // The peek returned: data or EOF is there (OpenSSL classifies EOF itself).
        if (ec && ec != boost::asio::error::eof) return finish(self, ec);
        ec = {};
      } else if (stage == Stage::flushing) {
        if (ec) return finish(self, ec);
        if (finished) return finish(self, pending_ec);
      }
      stage = Stage::start;
      if (!s->ssl_) return finish(self, error_code(ENOMEM, boost::system::system_category()));
      for (;;) {
        ERR_clear_error();
        errno = 0;
        int r;
        if constexpr (K == Kind::handshake) {
          r = SSL_do_handshake(s->ssl_);
          if (r == 1) {
            finished = true;
            return flush_or_finish(self, {});
          }
        } else {
          auto b = first_buffer();
          if (b.size() == 0) return finish(self, {});
          const size_t cap = std::min<size_t>(b.size(), K == Kind::write ? (256u << 10) : INT_MAX);
          if constexpr (K == Kind::read) {
            r = SSL_read(s->ssl_, static_cast<char*>(b.data()) + total, static_cast<int>(cap - total));
          } else {
            r = SSL_write(s->ssl_, static_cast<const char*>(b.data()), static_cast<int>(cap));
          }
          if (r > 0) {
            total += static_cast<size_t>(r);
            if constexpr (K == Kind::write) {
              finished = true;
              return flush_or_finish(self, {});
            } else {
              if (total == cap) {
                finished = true;
                return flush_or_finish(self, {});
              }
              continue;  // drain records that are already buffered
            }
          }
        }
        error_code err;
        Step st = s->classify(r, err);
        if constexpr (K == Kind::read) {
          if (total > 0) {  // deliver what we have; an error shows up again on the next call
            finished = true;
            return flush_or_finish(self, {});
          }
        }
        if (st == Step::done) {
          finished = true;
          return flush_or_finish(self, err);
        }
        // Needs input. Send what the handshake (or a key update) produced first.
        if (s->take_output()) {
          stage = Stage::flushing;
          finished = false;
          boost::asio::async_write(s->sock_, boost::asio::buffer(s->out_), std::move(self));
          return;
        }
        stage = Stage::waiting;
        s->sock_.async_receive(boost::asio::buffer(&s->peek_, 1), tcp::socket::message_peek, std::move(self));
        return;
      }
    }

    auto first_buffer() {
      auto it = boost::asio::buffer_sequence_begin(buffers);
      auto end = boost::asio::buffer_sequence_end(buffers);
      while (it != end && boost::asio::buffer(*it).size() == 0) ++it;
      return it == end ? decltype(boost::asio::buffer(*it)){} : boost::asio::buffer(*it);
    }

    template <class Self>
    void flush_or_finish(Self& self, error_code ec) {
      if (s->take_output()) {
        pending_ec = ec;
        stage = Stage::flushing;
        boost::asio::async_write(s->sock_, boost::asio::buffer(s->out_), std::move(self));
        return;
      }
      finish(self, ec);
    }

    template <class Self>
    void finish(Self& self, error_code ec) {
      if (async_done) return complete(self, ec);
      // Never complete inside the initiating call: post the result to ourselves.
      stage = Stage::deliver;
      pending_ec = ec;
      auto ex = boost::asio::get_associated_executor(self, s->get_executor());
      boost::asio::post(boost::asio::bind_executor(ex, std::move(self)));
    }

    template <class Self>
    void complete(Self& self, error_code ec) {
      if constexpr (K == Kind::handshake) self.complete(ec);
      else self.complete(ec, total);
    }
  };

  tcp::socket sock_;
  SSL* ssl_;
  std::vector<char> out_;  // encrypted bytes being written
  char peek_ = 0;
};

}  // namespace hf::http::detail
