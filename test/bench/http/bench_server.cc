// Loopback HTTP/HTTPS server for the HTTP client benchmark: serves GET (with one Range) of an
// in-memory object, written straight from memory, one thread per connection, keep-alive.
//   hf-http-bench-server --size BYTES --port P [--tls-port P --cert F --key F]
// Prints "ready" once listening; runs until killed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace {

uint8_t* g_data = nullptr;
uint64_t g_size = 0;

// Deterministic content: byte i = (i * 2654435761) >> 24, written 8 bytes at a time.
void fill(uint8_t* p, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((i * 2654435761ull) >> 24);
}

int listen_on(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 512) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return fd;
}

struct Io {
  int fd;
  SSL* ssl = nullptr;
  ssize_t read(char* b, size_t n) { return ssl ? SSL_read(ssl, b, static_cast<int>(n)) : ::read(fd, b, n); }
  bool write_all(const uint8_t* p, size_t n) {
    while (n) {
      ssize_t w;
      if (ssl) {
        w = SSL_write(ssl, p, static_cast<int>(std::min<size_t>(n, 1u << 20)));
      } else {
        w = ::send(fd, p, n, MSG_NOSIGNAL);
      }
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
};

void serve(int fd, SSL_CTX* ctx) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Io io{fd};
  if (ctx) {
    io.ssl = SSL_new(ctx);
    SSL_set_fd(io.ssl, fd);
    if (SSL_accept(io.ssl) != 1) {
      SSL_free(io.ssl);
      ::close(fd);
      return;
    }
  }
  std::string buf;
  char tmp[16384];
  for (;;) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = io.read(tmp, sizeof tmp);
      if (n <= 0) goto done;
      buf.append(tmp, static_cast<size_t>(n));
    }
    {
      std::string_view head(buf.data(), end);
      bool is_head = head.substr(0, 5) == "HEAD ";
      uint64_t first = 0, last = g_size - 1;
      bool ranged = false;
      size_t r = head.find("\nRange: bytes=");
      if (r == std::string_view::npos) r = head.find("\nrange: bytes=");
      if (r != std::string_view::npos) {
        ranged = true;
        std::sscanf(head.data() + r + 14, "%lu-%lu", &first, &last);
        if (last >= g_size) last = g_size - 1;
      }
      uint64_t len = first <= last ? last - first + 1 : 0;
      char hdr[512];
      int hn = ranged ? std::snprintf(hdr, sizeof hdr,
                                      "HTTP/1.1 206 Partial Content\r\nContent-Length: %lu\r\nContent-Range: bytes %lu-%lu/%lu\r\n\r\n",
                                      len, first, last, g_size)
                      : std::snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %lu\r\nAccept-Ranges: bytes\r\n\r\n", len);
      buf.erase(0, end + 4);
      if (!io.write_all(reinterpret_cast<const uint8_t*>(hdr), static_cast<size_t>(hn))) goto done;
      if (!is_head && !io.write_all(g_data + first, len)) goto done;
    }
  }
done:
  if (io.ssl) SSL_free(io.ssl);
  ::close(fd);
}

void accept_loop(int lfd, SSL_CTX* ctx) {
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    std::thread(serve, fd, ctx).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, tls_port = 0;
  std::string cert, key;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--size") g_size = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--port") port = std::atoi(argv[i + 1]);
    else if (a == "--tls-port") tls_port = std::atoi(argv[i + 1]);
    else if (a == "--cert") cert = argv[i + 1];
    else if (a == "--key") key = argv[i + 1];
  }
  if (!g_size || !port) {
    std::fprintf(stderr, "usage: %s --size BYTES --port P [--tls-port P --cert F --key F]\n", argv[0]);
    return 2;
  }
  g_data = static_cast<uint8_t*>(std::malloc(g_size));
  fill(g_data, g_size);
  SSL_CTX* ctx = nullptr;
  if (tls_port) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      ERR_print_errors_fp(stderr);
      return 1;
    }
  }
  int lfd = listen_on(port);
  std::thread(accept_loop, lfd, nullptr).detach();
  if (tls_port) {
    int tfd = listen_on(tls_port);
    std::thread(accept_loop, tfd, ctx).detach();
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
