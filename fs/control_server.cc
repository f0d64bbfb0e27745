#include "fs/control_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "base/json_writer.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/text.h"
#include "fs/control_protocol.h"

namespace hf::fs {

namespace net = boost::asio;
using local_stream = net::local::stream_protocol;

// ---------------------------------------------------------------------------------------------
// Socket location

std::string control_socket_dir(uid_t uid) {
  if (uid == 0) return "/run/hf-mount";
  std::string run_user = fmt::format("/run/user/{}", uid);
  struct stat st {};
  if (::lstat(run_user.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid) return run_user + "/hf-mount";
  return fmt::format("/tmp/hf-mount-{}", uid);
}

std::string control_socket_path_for(const std::string& mountpoint, uid_t uid) {
  return control_socket_dir(uid) + "/" + sha256_hex(mountpoint).substr(0, 16) + ".sock";
}

std::string control_socket_path(const std::string& mountpoint) { return control_socket_path_for(mountpoint, ::geteuid()); }

std::vector<std::string> control_socket_candidates(const std::string& mountpoint, uid_t uid) {
  std::vector<std::string> out{control_socket_path_for(mountpoint, uid)};
  std::string fallback = fmt::format("/tmp/hf-mount-{}/{}.sock", uid, sha256_hex(mountpoint).substr(0, 16));
  if (uid != 0 && fallback != out[0]) out.push_back(std::move(fallback));
  return out;
}

Status prepare_socket_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(errno == EACCES ? Errc::permission_denied : Errc::io,
                 fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
  }
  // lstat: a symlink planted in a shared directory (/tmp) must not redirect us.
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error(Errc::io, fmt::format("{}: {}", dir, std::strerror(errno)));
  if (!S_ISDIR(st.st_mode)) return Error(Errc::permission_denied, fmt::format("{} is not a directory", dir));
  if (st.st_uid != ::geteuid()) {
    return Error(Errc::permission_denied,
                 fmt::format("{} belongs to uid {}, not to us (uid {}): remove it", dir, st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    return Error(Errc::io, fmt::format("cannot chmod {}: {}", dir, std::strerror(errno)));
  }
  return {};
}

namespace {

// Whether something accepts connections on `path` right now (a live mount).
bool socket_is_live(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int err = errno;
  ::close(fd);
  // EAGAIN: the listener exists but its backlog is full, so it is alive.
  return r == 0 || err == EAGAIN || err == EINPROGRESS;
}

std::string error_line(Errc c, std::string_view msg) {
  JsonWriter w;
  w.begin_object().kv("ok", false).kv("error", msg).kv("errc", errc_name(c)).end_object();
  std::string s = w.take();
  s.push_back('\n');
  return s;
}

std::string ok_line() { return "{\"ok\":true}\n"; }

std::string status_line(const MountStatus& s) {
  JsonWriter w;
  w.begin_object().kv("ok", true).key("status");
  write_mount_status(w, s);
  w.end_object();
  std::string out = w.take();
  out.push_back('\n');
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
  using Strand = net::strand<net::any_io_executor>;
  using SocketPtr = std::shared_ptr<local_stream::socket>;

  Impl(net::any_io_executor ex, std::string p, uid_t o, ControlHandler& h, ControlServerOptions op)
      : strand(net::make_strand(ex)), acceptor(strand), path(std::move(p)), owner(o), opts(op), handler(&h) {}

  Strand strand;
  local_stream::acceptor acceptor;
  std::string path;
  uid_t owner;
  ControlServerOptions opts;
  dev_t sock_dev = 0;
  ino_t sock_ino = 0;

  // Guards `handler`: cleared by the destructor, which thereby waits for a status() call.
  std::mutex handler_mu;
  ControlHandler* handler;

  // Strand only.
  std::map<uint64_t, SocketPtr> conns;
  uint64_t next_conn = 0;
  bool closed = false;

  void close_all() {
    closed = true;
    boost::system::error_code ec;
    acceptor.close(ec);
    for (auto& [id, s] : conns) s->close(ec);
    conns.clear();
  }

  // Coroutines take `self` as a parameter so the frame owns the Impl from its creation on.
  static net::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    for (;;) {
      boost::system::error_code ec;
      local_stream::socket sock(self->strand);
      co_await self->acceptor.async_accept(sock, net::redirect_error(net::use_awaitable, ec));
      if (self->closed || !self->acceptor.is_open()) co_return;
      if (ec) {
        if (ec == net::error::operation_aborted) co_return;
        // EMFILE and friends: back off briefly instead of spinning.
        net::steady_timer t(self->strand, std::chrono::milliseconds(100));
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        continue;
      }
      auto sp = std::make_shared<local_stream::socket>(std::move(sock));
      if (self->conns.size() >= self->opts.max_connections) {
        std::string busy = error_line(Errc::busy, "too many control connections");
        net::co_spawn(self->strand, reply_and_close(sp, std::move(busy)), net::detached);
        continue;
      }
      uint64_t id = ++self->next_conn;
      self->conns.emplace(id, sp);
      net::co_spawn(self->strand, serve(self, sp, id), net::detached);
    }
  }

  static net::awaitable<void> reply_and_close(SocketPtr sock, std::string line) {
    boost::system::error_code ec;
    co_await net::async_write(*sock, net::buffer(line), net::redirect_error(net::use_awaitable, ec));
    sock->shutdown(local_stream::socket::shutdown_both, ec);
    sock->close(ec);
  }

  // Writes one line unless the peer is gone; returns whether the connection is still usable.
  static net::awaitable<bool> send(local_stream::socket& sock, const std::string& line) {
    boost::system::error_code ec;
    co_await net::async_write(sock, net::buffer(line), net::redirect_error(net::use_awaitable, ec));
    co_return !ec;
  }

  static net::awaitable<void> serve(std::shared_ptr<Impl> self, SocketPtr sock, uint64_t id) {
    try {
      co_await self->serve_one(sock);
    } catch (const std::exception& e) {
      HF_LOG_WARN("control", "control connection failed: {}", e.what());
    } catch (...) {
      HF_LOG_WARN("control", "control connection failed");
    }
    boost::system::error_code ec;
    sock->shutdown(local_stream::socket::shutdown_both, ec);
    sock->close(ec);
    self->conns.erase(id);
  }

  // Note: every co_await below sends a named string. GCC 12 destroys temporaries created inside
  // a co_await expression (notably in a ?: operand) twice, so no temporaries there.
  net::awaitable<void> serve_one(SocketPtr sp) {
    local_stream::socket& sock = *sp;
    std::string reply;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      reply = error_line(Errc::permission_denied, "cannot identify the peer");
      co_await send(sock, reply);
      co_return;
    }
    if (cred.uid != owner && cred.uid != 0) {
      HF_LOG_WARN("control", "refused a control connection from uid {} (pid {})", cred.uid, cred.pid);
      reply = error_line(Errc::permission_denied,
                         fmt::format("uid {} may not control this mount (owner: uid {})", cred.uid, owner));
      co_await send(sock, reply);
      co_return;
    }

    // One request line, bounded in size and time. The timer's handler may run after the read
    // finished (it was already queued): `reading` tells it not to touch the socket then.
    struct ReadWatch {
      bool reading = true;
      bool timed_out = false;
    };
    auto watch = std::make_shared<ReadWatch>();
    std::string buf;
    net::steady_timer deadline(strand, opts.idle_timeout);
    deadline.async_wait([sp, watch](const boost::system::error_code& e) {
      if (e || !watch->reading) return;
      watch->timed_out = true;
      boost::system::error_code ignored;
      sp->cancel(ignored);
    });
    boost::system::error_code ec;
    size_t n = co_await net::async_read_until(sock, net::dynamic_buffer(buf, kMaxRequestBytes), '\n',
                                              net::redirect_error(net::use_awaitable, ec));
    watch->reading = false;
    deadline.cancel();
    if (watch->timed_out) {
      reply = error_line(Errc::timed_out, "no request received in time");
      co_await send(sock, reply);
      co_return;
    }
    if (ec == net::error::not_found) {
      reply = error_line(Errc::too_large, fmt::format("request larger than {} bytes", kMaxRequestBytes));
      co_await send(sock, reply);
      co_return;
    }
    if (ec == net::error::eof && !buf.empty()) {
      n = buf.size();  // the client half-closed without a final newline: still one request
    } else if (ec) {
      co_return;  // the peer went away
    }
    std::string_view line(buf.data(), n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);

    auto req = parse_control_request(line);
    if (!req.ok()) {
      reply = error_line(req.code(), req.error().message);
    } else if (req->op == "status") {
      std::optional<MountStatus> st;
      {
        std::lock_guard lk(handler_mu);
        if (handler) st = handler->status();
      }
      if (st) reply = status_line(*st);
      else reply = error_line(Errc::cancelled, "the mount is shutting down");
    } else if (req->op == "warm") {
      co_await do_warm(sock, std::move(req->paths));
      co_return;
    } else if (req->op == "flush") {
      std::optional<net::awaitable<Status>> task;
      {
        std::lock_guard lk(handler_mu);
        if (handler) task.emplace(handler->flush());
      }
      if (task) {
        Status s = co_await std::move(*task);
        if (s.ok()) reply = ok_line();
        else reply = error_line(s.code(), s.error().message);
      } else {
        reply = error_line(Errc::cancelled, "the mount is shutting down");
      }
    } else {
      reply = error_line(Errc::unsupported, fmt::format("unknown op '{}'", req->op));
    }
    co_await send(sock, reply);
  }

  // Progress shared between the handler's callback (any thread) and the connection (strand).
  struct WarmState {
    std::mutex mu;
    uint64_t done_bytes = 0, total_bytes = 0, files_done = 0, files_total = 0;
    bool changed = false;
    // Strand only.
    bool finished = false;
    Status result;
    std::unique_ptr<net::steady_timer> wake;
  };

  // The progress line to send if anything changed since the last one.
  static bool take_progress(WarmState& ws, std::string& line) {
    std::lock_guard lk(ws.mu);
    if (!ws.changed) return false;
    ws.changed = false;
    line = fmt::format(
        "{{\"progress\":{{\"done_bytes\":{},\"total_bytes\":{},\"files_done\":{},\"files_total\":{}}}}}\n",
        ws.done_bytes, ws.total_bytes, ws.files_done, ws.files_total);
    return true;
  }

  net::awaitable<void> do_warm(local_stream::socket& sock, std::vector<std::string> paths) {
    auto ws = std::make_shared<WarmState>();
    ws->wake = std::make_unique<net::steady_timer>(strand);
    ControlHandler::Progress progress = [ws](uint64_t db, uint64_t tb, uint64_t fd, uint64_t ft) {
      std::lock_guard lk(ws->mu);
      ws->done_bytes = db;
      ws->total_bytes = tb;
      ws->files_done = fd;
      ws->files_total = ft;
      ws->changed = true;
    };
    std::optional<net::awaitable<Status>> task;
    {
      std::lock_guard lk(handler_mu);
      if (handler) task.emplace(handler->warm(std::move(paths), std::move(progress)));
    }
    std::string line;
    if (!task) {
      line = error_line(Errc::cancelled, "the mount is shutting down");
      co_await send(sock, line);
      co_return;
    }
    // The warm task runs on its own so that progress lines go out while it works; it records its
    // result in `ws` (which it keeps alive) and wakes this coroutine.
    net::co_spawn(
        strand,
        [ws, t = std::move(*task)]() mutable -> net::awaitable<void> {
          Status s;
          try {
            s = co_await std::move(t);
          } catch (const std::exception& e) {
            s = Error(Errc::internal, fmt::format("warm failed: {}", e.what()));
          } catch (...) {
            s = Error(Errc::internal, "warm failed");
          }
          ws->result = std::move(s);
          ws->finished = true;
          ws->wake->cancel();
        },
        net::detached);

    bool peer_ok = true;
    while (!ws->finished) {
      boost::system::error_code ec;
      ws->wake->expires_after(opts.progress_interval);
      co_await ws->wake->async_wait(net::redirect_error(net::use_awaitable, ec));
      if (ws->finished || !peer_ok) continue;
      if (take_progress(*ws, line)) peer_ok = co_await send(sock, line);
    }
    if (!peer_ok) co_return;
    if (take_progress(*ws, line)) peer_ok = co_await send(sock, line);
    if (!peer_ok) co_return;
    if (ws->result.ok()) line = ok_line();
    else line = error_line(ws->result.code(), ws->result.error().message);
    co_await send(sock, line);
  }
};

size_t remove_stale_sockets(const std::string& dir, std::chrono::seconds min_age) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  const time_t cutoff = ::time(nullptr) - static_cast<time_t>(min_age.count());
  size_t seen = 0, removed = 0;
  while (dirent* e = ::readdir(d)) {
    if (++seen > 4096) break;
    std::string_view name = e->d_name;
    if (name.size() < 6 || name.substr(name.size() - 5) != ".sock") continue;
    std::string path = dir + "/" + std::string(name);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) continue;
    if (st.st_mtime > cutoff || socket_is_live(path)) continue;
    if (::unlink(path.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(net::any_io_executor ex, const std::string& mountpoint,
                                                            uid_t owner_uid, ControlHandler& handler) {
  const std::string dir = control_socket_dir(::geteuid());
  HF_TRY(prepare_socket_dir(dir));
  if (size_t n = remove_stale_sockets(dir, std::chrono::seconds(60))) {
    HF_LOG_INFO("control", "removed {} control socket(s) of mounts that are gone", n);
  }
  return start_at(std::move(ex), control_socket_path(mountpoint), owner_uid, handler);
}

Result<std::unique_ptr<ControlServer>> ControlServer::start_at(net::any_io_executor ex, const std::string& socket_path,
                                                               uid_t owner_uid, ControlHandler& handler,
                                                               ControlServerOptions opts) {
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Error(Errc::name_too_long, fmt::format("control socket path too long: {}", socket_path));
  }
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(Errc::io, fmt::format("{} exists and is not a socket: remove it", socket_path));
    }
    if (socket_is_live(socket_path)) {
      return Error(Errc::busy, fmt::format("another mount already serves {}", socket_path));
    }
    ::unlink(socket_path.c_str());  // stale: its mount died without cleaning up
  }

  auto impl = std::make_shared<Impl>(ex, socket_path, owner_uid, handler, opts);
  boost::system::error_code ec;
  impl->acceptor.open(local_stream(), ec);
  if (!ec) impl->acceptor.bind(local_stream::endpoint(socket_path), ec);
  if (ec == net::error::address_in_use) {
    return Error(Errc::busy, fmt::format("another mount already serves {}", socket_path));
  }
  if (ec) return Error(Errc::io, fmt::format("cannot bind {}: {}", socket_path, ec.message()));
  // The directory is private already; 0600 also protects a socket in a directory we do not own.
  if (::chmod(socket_path.c_str(), 0600) != 0 || ::lstat(socket_path.c_str(), &st) != 0) {
    int err = errno;
    ::unlink(socket_path.c_str());
    return Error(Errc::io, fmt::format("cannot chmod {}: {}", socket_path, std::strerror(err)));
  }
  impl->sock_dev = st.st_dev;
  impl->sock_ino = st.st_ino;
  impl->acceptor.listen(static_cast<int>(std::max<size_t>(opts.max_connections, 16)), ec);
  if (ec) {
    ::unlink(socket_path.c_str());
    return Error(Errc::io, fmt::format("cannot listen on {}: {}", socket_path, ec.message()));
  }
  net::co_spawn(impl->strand, Impl::accept_loop(impl), net::detached);
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

const std::string& ControlServer::socket_path() const { return impl_->path; }

ControlServer::~ControlServer() {
  {
    std::lock_guard lk(impl_->handler_mu);
    impl_->handler = nullptr;
  }
  // Unlink only our own socket: a later mount may have replaced a socket it found stale.
  struct stat st {};
  if (::lstat(impl_->path.c_str(), &st) == 0 && st.st_dev == impl_->sock_dev && st.st_ino == impl_->sock_ino) {
    ::unlink(impl_->path.c_str());
  }
  net::post(impl_->strand, [impl = impl_] { impl->close_all(); });
}

}  // namespace hf::fs
