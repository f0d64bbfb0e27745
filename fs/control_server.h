// The mount side of the control channel (protocol and socket location: fs/control.h).
//
// ControlServer listens on a unix stream socket and answers one newline-delimited JSON request
// per connection by calling the mount's ControlHandler. Access control, in layers:
//   1. the socket lives in a directory created 0700 and owned by the mount's euid (a directory
//      owned by someone else, a symlink, or a non-directory is refused: no squatting in /tmp);
//   2. the socket file is 0600;
//   3. every connection's peer uid (SO_PEERCRED) must be `owner_uid` or root, otherwise it gets
//      {"ok":false,"errc":"permission_denied",...} and is closed before its request is read.
//
// Bounds: a request line is at most kMaxRequestBytes; a connection that sends no complete request
// within ControlServerOptions::idle_timeout is answered "timed_out" and closed; at most
// max_connections are served at once (more are answered "busy" and closed). Malformed requests
// get an error reply; nothing a client sends can crash the mount.
//
// Threading: all socket work runs on a strand of `ex`. ControlHandler::status() is called on
// that strand; warm()/flush() coroutines are spawned on it and may resume on any thread of
// `ex`. The Progress callback given to warm() may be called from any thread.
//
// Lifetime: the handler must outlive the ControlServer. The destructor (any thread, including
// one of `ex`'s) unlinks the socket at once, stops new handler calls (waiting for a status()
// call in progress), and closes the acceptor and connections on the strand. It never blocks on
// the executor, so it is safe after the io threads have stopped. warm()/flush() coroutines that
// already started run to completion (their results are dropped).
#pragma once

#include <sys/types.h>

#include <utility>  // before asio (asio#944)

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/control.h"

namespace hf::fs {

// Tunables; the defaults are what a mount uses.
struct ControlServerOptions {
  std::chrono::milliseconds idle_timeout{10000};      // a connection must send its request by then
  std::chrono::milliseconds progress_interval{200};   // warm progress lines at most this often
  size_t max_connections = 16;                        // more are answered "busy" and closed
};

class ControlServer {
 public:
  static constexpr size_t kMaxRequestBytes = 1 << 20;

  // Binds control_socket_path(mountpoint) (directory 0700, socket 0600, replacing a stale
  // socket; failing with Errc::busy if another live mount answers on it) and serves requests
  // on `ex` (the mount's io executor) until destroyed. Only `owner_uid` and root may talk to it.
  // Errors: busy (live socket), permission_denied (directory owned by another user or unsafe),
  // io (mkdir/bind/listen failures), name_too_long (path beyond sun_path).
  static Result<std::unique_ptr<ControlServer>> start(boost::asio::any_io_executor ex, const std::string& mountpoint,
                                                      uid_t owner_uid, ControlHandler& handler);
  // The same at an explicit socket path (its directory must already exist; it is not created or
  // checked). For tests and embedders with their own layout.
  static Result<std::unique_ptr<ControlServer>> start_at(boost::asio::any_io_executor ex, const std::string& socket_path,
                                                         uid_t owner_uid, ControlHandler& handler,
                                                         ControlServerOptions opts = {});
  ~ControlServer();  // stops accepting, closes connections, unlinks the socket
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& socket_path() const;

  struct Impl;  // public only so the implementation's coroutines can name it

 private:
  explicit ControlServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// The directory control_socket_path() puts sockets of processes running as `uid` in:
// /run/hf-mount for root; /run/user/<uid>/hf-mount when /run/user/<uid> is a directory owned by
// `uid` (the systemd user runtime directory, found without the environment, which mount helpers
// do not get); else /tmp/hf-mount-<uid>.
std::string control_socket_dir(uid_t uid);
// The socket of the mount at `mountpoint` (an absolute, canonical path) owned by `uid`:
// <control_socket_dir(uid)>/<first 16 hex of sha256(mountpoint)>.sock.
std::string control_socket_path_for(const std::string& mountpoint, uid_t uid);
// Every place a client should look, best first: the path for `uid`'s current runtime dir, then
// the /tmp fallback (a mount started before the user's runtime directory existed).
std::vector<std::string> control_socket_candidates(const std::string& mountpoint, uid_t uid);

// Creates `dir` (one level, mode 0700) if missing and checks it is a real directory owned by
// geteuid() with no group/other access (tightened to 0700 if it only has extra bits).
Status prepare_socket_dir(const std::string& dir);

// Removes the "*.sock" sockets in `dir` that nobody listens on (their mounts were killed) and
// that are older than `min_age` (a socket that another mount has bound but not yet listens on
// is younger than that). Looks at most at 4096 entries; returns how many it removed. Used by
// start() so that killed mounts do not leave sockets piling up.
size_t remove_stale_sockets(const std::string& dir, std::chrono::seconds min_age);

}  // namespace hf::fs
