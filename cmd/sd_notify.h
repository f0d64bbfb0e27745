// systemd readiness notification (sd_notify(3)) without libsystemd: one datagram holding
// newline-separated "KEY=VALUE" assignments, sent to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a filesystem path, or "@name" for the abstract namespace).
//
// hf-mount-fuse sends READY=1 once the mount is usable, STATUS=... lines, and STOPPING=1 when
// it begins to shut down, only in foreground mode (-f), i.e. as a Type=notify service.
// Thread-safe (no shared state); async-signal-unsafe (getenv).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace hf::cmd {

// Returns 1 if the message was sent, 0 if $NOTIFY_SOCKET is unset (nothing to do), or -errno.
inline int sd_notify(std::string_view state, const char* socket_env = std::getenv("NOTIFY_SOCKET")) {
  if (!socket_env || !*socket_env) return 0;
  std::string_view name(socket_env);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if ((name[0] != '/' && name[0] != '@') || name.size() >= sizeof sa.sun_path) return -EINVAL;
  std::memcpy(sa.sun_path, name.data(), name.size());
  if (name[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '/') ++len;  // include the terminating NUL of a path
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa), len);
  int err = errno;
  ::close(fd);
  if (n < 0) return -err;
  return static_cast<size_t>(n) == state.size() ? 1 : -EMSGSIZE;
}

}  // namespace hf::cmd
