// ControlServer (fs/control_server.h) against a fake ControlHandler, driven by the real client
// (cmd/control_client.h) and by raw sockets for malformed input; another uid is simulated with
// fork + setuid (root only).
#include <utility>  // before asio

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "cmd/control_client.h"
#include "fs/control_server.h"

using namespace hf;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

class FakeHandler : public fs::ControlHandler {
 public:
  fs::MountStatus st;
  std::mutex mu;
  std::vector<std::vector<std::string>> warm_calls;
  std::atomic<int> flush_calls{0};
  Status flush_result;
  std::chrono::milliseconds step{60};
  int steps = 4;
  std::atomic<int> warms_finished{0};

  fs::MountStatus status() override { return st; }

  fs::Task<Status> warm(std::vector<std::string> paths, Progress progress) override {
    {
      std::lock_guard lk(mu);
      warm_calls.push_back(paths);
    }
    for (auto& p : paths) {
      if (p == "missing") {
        ++warms_finished;
        co_return Error(Errc::entry_not_found, "missing: no such file or directory");
      }
    }
    auto ex = co_await net::this_coro::executor;
    net::steady_timer t(ex);
    const uint64_t total = 1000ull * static_cast<uint64_t>(steps);
    for (int i = 0; i < steps; ++i) {
      t.expires_after(step);
      co_await t.async_wait(net::use_awaitable);
      progress(1000ull * static_cast<uint64_t>(i + 1), total, static_cast<uint64_t>(i + 1), static_cast<uint64_t>(steps));
    }
    ++warms_finished;
    co_return Status{};
  }

  fs::Task<Status> flush() override {
    ++flush_calls;
    co_return flush_result;
  }
};

struct Io {
  net::io_context io{2};
  net::executor_work_guard<net::io_context::executor_type> guard{io.get_executor()};
  std::vector<std::thread> threads;
  Io() {
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Io() { stop(); }
  void stop() {
    guard.reset();
    io.stop();
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/hf-ctl-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `data` (exactly) and returns everything the server writes until it closes.
std::string raw_exchange(const std::string& path, const std::string& data, bool half_close = false) {
  int fd = raw_connect(path);
  REQUIRE(fd >= 0);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w <= 0) break;  // the server may stop reading (oversized request)
    off += static_cast<size_t>(w);
  }
  if (half_close) ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Runs in a forked child as `uid`: connects to `path`, sends a status request and reports the
// reply, or "connect-errno:<n>", through a pipe. Only async-signal-safe calls in the child.
std::string exchange_as_uid(uid_t uid, const std::string& path) {
  int pp[2];
  REQUIRE(::pipe(pp) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pp[0]);
    if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
      (void)!::write(pp[1], "setuid-failed", 13);
      _exit(1);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      char msg[32] = "connect-errno:";
      int e = errno, n = 14;
      char digits[12];
      int k = 0;
      do {
        digits[k++] = static_cast<char>('0' + e % 10);
        e /= 10;
      } while (e > 0);
      while (k > 0) msg[n++] = digits[--k];
      (void)!::write(pp[1], msg, static_cast<size_t>(n));
      _exit(0);
    }
    const char req[] = "{\"op\":\"status\"}\n";
    // The server may refuse and close before this write: no SIGPIPE, like the real client.
    (void)!::send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
    char buf[4096];
    ssize_t r;
    while ((r = ::read(fd, buf, sizeof buf)) > 0) (void)!::write(pp[1], buf, static_cast<size_t>(r));
    _exit(0);
  }
  ::close(pp[1]);
  std::string out;
  char buf[4096];
  ssize_t r;
  while ((r = ::read(pp[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(r));
  ::close(pp[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

std::vector<std::string> one(const std::string& p) { return {p}; }

}  // namespace

TEST_CASE("control socket location follows the documented layout") {
  // sha256("/mnt/x") = c10865fc00f31eff... (computed independently with Python's hashlib).
  CHECK(fs::control_socket_path_for("/mnt/x", 0) == "/run/hf-mount/c10865fc00f31eff.sock");
  struct stat st {};
  if (::stat("/run/user/4242", &st) != 0) {
    CHECK(fs::control_socket_dir(4242) == "/tmp/hf-mount-4242");
    CHECK(fs::control_socket_path_for("/mnt/x", 4242) == "/tmp/hf-mount-4242/c10865fc00f31eff.sock");
    CHECK(fs::control_socket_candidates("/mnt/x", 4242) == std::vector<std::string>{"/tmp/hf-mount-4242/c10865fc00f31eff.sock"});
  }
  CHECK(fs::control_socket_path("/mnt/x") == fs::control_socket_path_for("/mnt/x", ::geteuid()));
  // Different mount points, different sockets.
  CHECK(fs::control_socket_path_for("/mnt/y", 0) != fs::control_socket_path_for("/mnt/x", 0));
}

TEST_CASE("status, warm and flush round trips") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  h.st.source = "hf://acme/tiny";
  h.st.mountpoint = "/mnt/tiny";
  h.st.revision = "main";
  h.st.commit = std::string(40, 'a');
  h.st.endpoint = "http://127.0.0.1:1";
  h.st.cache_dir = "/var/cache/hf-mount";
  h.st.read_only = false;
  h.st.pinned = true;
  h.st.pid = 4321;
  h.st.started_at_ns = 1700000000123456789;
  h.st.bytes_fetched = 1ull << 40;
  h.st.bytes_served = 77;
  h.st.cache_hits = 9;
  h.st.cache_misses = 1;
  h.st.cache_disk_hits = 4;
  h.st.http_in_flight = 3;
  h.st.http_errors = 2;
  h.st.dirty_files = 5;
  h.st.uploaded_bytes = 123456789012ull;
  h.st.cache_writes_dropped = 17;
  h.st.heap_in_use_bytes = 5ull << 30;
  std::string path = tmp.path + "/c.sock";
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h);
  REQUIRE(srv.ok());

  SECTION("status carries every field") {
    auto s = cmd::query_status(one(path));
    REQUIRE(s.ok());
    CHECK(s->source == "hf://acme/tiny");
    CHECK(s->mountpoint == "/mnt/tiny");
    CHECK(s->revision == "main");
    CHECK(s->commit == std::string(40, 'a'));
    CHECK(s->endpoint == "http://127.0.0.1:1");
    CHECK(s->cache_dir == "/var/cache/hf-mount");
    CHECK_FALSE(s->read_only);
    CHECK(s->pinned);
    CHECK(s->pid == 4321);
    CHECK(s->started_at_ns == 1700000000123456789);
    CHECK(s->bytes_fetched == (1ull << 40));
    CHECK(s->bytes_served == 77);
    CHECK(s->cache_hits == 9);
    CHECK(s->cache_misses == 1);
    CHECK(s->cache_disk_hits == 4);
    CHECK(s->http_in_flight == 3);
    CHECK(s->http_errors == 2);
    CHECK(s->dirty_files == 5);
    CHECK(s->uploaded_bytes == 123456789012ull);
    CHECK(s->cache_writes_dropped == 17);
    CHECK(s->heap_in_use_bytes == (5ull << 30));
  }

  SECTION("warm streams monotonic progress, then ok; paths are normalized") {
    std::vector<cmd::WarmProgress> seen;
    Status st = cmd::request_warm(one(path), {"./a//b/", "c", "/"}, [&](const cmd::WarmProgress& p) { seen.push_back(p); });
    REQUIRE(st.ok());
    REQUIRE(seen.size() >= 2);
    for (size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].done_bytes >= seen[i - 1].done_bytes);
    CHECK(seen.back().done_bytes == 4000);
    CHECK(seen.back().total_bytes == 4000);
    CHECK(seen.back().files_done == 4);
    CHECK(seen.back().files_total == 4);
    std::lock_guard lk(h.mu);
    REQUIRE(h.warm_calls.size() == 1);
    CHECK(h.warm_calls[0] == std::vector<std::string>{"a/b", "c", ""});
  }

  SECTION("a failing warm reports the handler's error") {
    Status st = cmd::request_warm(one(path), {"missing"}, nullptr);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == Errc::entry_not_found);
    CHECK(st.error().message == "missing: no such file or directory");
  }

  SECTION("flush: ok, then the handler's error") {
    CHECK(cmd::request_flush(one(path)).ok());
    h.flush_result = Error(Errc::server_error, "commit failed: 503");
    Status st = cmd::request_flush(one(path));
    CHECK(st.code() == Errc::server_error);
    CHECK(st.error().message == "commit failed: 503");
    CHECK(h.flush_calls == 2);
  }

  SECTION("concurrent clients") {
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < 20; ++i) {
          if (cmd::query_status(one(path)).ok()) ++ok;
        }
      });
    }
    for (auto& t : ts) t.join();
    CHECK(ok == 160);
  }
}

TEST_CASE("malformed, oversized and unknown requests get precise errors") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  std::string path = tmp.path + "/c.sock";
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h);
  REQUIRE(srv.ok());

  auto expect = [&](const std::string& req, Errc code, const std::string& fragment) {
    INFO(req.substr(0, 80));
    std::string reply = raw_exchange(path, req);
    REQUIRE_FALSE(reply.empty());
    CHECK(reply.back() == '\n');
    Status s = cmd::reply_status(reply.substr(0, reply.find('\n')));
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == code);
    CHECK_THAT(s.error().message, Catch::Contains(fragment));
  };
  expect("not json\n", Errc::invalid_argument, "malformed request");
  expect("\n", Errc::invalid_argument, "malformed request");
  expect("[1,2]\n", Errc::invalid_argument, "not a JSON object");
  expect("{}\n", Errc::invalid_argument, "missing string \"op\"");
  expect("{\"op\":7}\n", Errc::invalid_argument, "missing string \"op\"");
  expect("{\"op\":\"frobnicate\"}\n", Errc::unsupported, "unknown op 'frobnicate'");
  expect("{\"op\":\"warm\"}\n", Errc::invalid_argument, "needs an array \"paths\"");
  expect("{\"op\":\"warm\",\"paths\":[1]}\n", Errc::invalid_argument, "must hold strings");
  expect("{\"op\":\"warm\",\"paths\":[]}\n", Errc::invalid_argument, "no paths");
  expect("{\"op\":\"warm\",\"paths\":[\"a/../../etc\"]}\n", Errc::invalid_argument, "leaves the mount");
  expect("{\"op\":\"status\",\"x\":\"\xff\xfe\"}\n", Errc::invalid_argument, "malformed request");
  expect(std::string(1000, '[') + std::string(1000, ']') + "\n", Errc::invalid_argument, "malformed request");
  // Larger than 1 MiB without a newline: refused once the limit is reached.
  expect(std::string(fs::ControlServer::kMaxRequestBytes + 100, ' '), Errc::too_large, "larger than");
  {
    std::lock_guard lk(h.mu);
    CHECK(h.warm_calls.empty());  // no bad request reached the handler
  }

  // A request ended by a half-close instead of a newline still counts.
  std::string reply = raw_exchange(path, "{\"op\":\"status\"}", true);
  CHECK(cmd::parse_status_reply(reply.substr(0, reply.find('\n'))).ok());
  // The server survived all of that.
  CHECK(cmd::query_status(one(path)).ok());
}

TEST_CASE("idle connections time out; excess connections are refused") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  std::string path = tmp.path + "/c.sock";
  fs::ControlServerOptions o;
  o.idle_timeout = 300ms;
  o.max_connections = 2;
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h, o);
  REQUIRE(srv.ok());

  int a = raw_connect(path), b = raw_connect(path);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  // The third concurrent connection is answered "busy" at once.
  std::string third = raw_exchange(path, "");
  Status s3 = cmd::reply_status(third.substr(0, third.find('\n')));
  CHECK(s3.code() == Errc::busy);

  // The idle ones get "timed_out" after idle_timeout.
  auto t0 = std::chrono::steady_clock::now();
  std::string reply;
  char buf[512];
  pollfd p{a, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 3000) == 1);
  ssize_t n = ::read(a, buf, sizeof buf);
  REQUIRE(n > 0);
  reply.assign(buf, static_cast<size_t>(n));
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited < 2s);
  CHECK(cmd::reply_status(reply.substr(0, reply.find('\n'))).code() == Errc::timed_out);
  ::close(a);
  ::close(b);
  // Slots are free again.
  std::this_thread::sleep_for(400ms);
  CHECK(cmd::query_status(one(path)).ok());
}

TEST_CASE("stale sockets are replaced, live ones are not, the destructor unlinks") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  std::string path = tmp.path + "/c.sock";

  // A socket file nobody listens on (its mount was killed).
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);
  }
  CHECK(cmd::query_status(one(path)).code() == Errc::network);  // refused: stale
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h);
  REQUIRE(srv.ok());
  CHECK(cmd::query_status(one(path)).ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // A second server on a live socket: busy, and the first keeps working.
  FakeHandler h2;
  auto second = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h2);
  REQUIRE_FALSE(second.ok());
  CHECK(second.code() == Errc::busy);
  CHECK(cmd::query_status(one(path)).ok());

  srv->reset();
  CHECK(::access(path.c_str(), F_OK) != 0);
  CHECK(cmd::query_status(one(path)).code() == Errc::not_found);

  // Not a socket: refused rather than deleted.
  REQUIRE(::close(::open(path.c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  auto third = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h);
  CHECK(third.code() == Errc::io);
  CHECK_THAT(third.error().message, Catch::Contains("not a socket"));
}

TEST_CASE("sockets of killed mounts are swept once old; live, young and foreign files stay") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  auto bind_and_drop = [](const std::string& path) {  // a mount killed with SIGKILL leaves this
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);
  };
  auto age = [](const std::string& path) {
    timespec t[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW) == 0);
  };
  const std::string old_dead = tmp.path + "/aaaa.sock", young_dead = tmp.path + "/bbbb.sock",
                    live = tmp.path + "/cccc.sock", not_socket = tmp.path + "/dddd.sock",
                    other_name = tmp.path + "/eeee.sk";
  bind_and_drop(old_dead);
  age(old_dead);
  bind_and_drop(young_dead);
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), live, ::geteuid(), h);
  REQUIRE(srv.ok());
  age(live);
  REQUIRE(::close(::open(not_socket.c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  age(not_socket);
  bind_and_drop(other_name);
  age(other_name);

  CHECK(fs::remove_stale_sockets(tmp.path, std::chrono::seconds(60)) == 1);
  CHECK(::access(old_dead.c_str(), F_OK) != 0);
  for (const auto& kept : {young_dead, live, not_socket, other_name}) {
    INFO(kept);
    CHECK(::access(kept.c_str(), F_OK) == 0);
  }
  CHECK(cmd::query_status(one(live)).ok());
  CHECK(fs::remove_stale_sockets(tmp.path + "/missing", std::chrono::seconds(60)) == 0);
}

TEST_CASE("destroying the server during a warm is safe") {
  TempDir tmp;
  Io io;
  FakeHandler h;
  h.step = 100ms;
  h.steps = 5;
  std::string path = tmp.path + "/c.sock";
  auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, ::geteuid(), h);
  REQUIRE(srv.ok());
  auto client = std::async(std::launch::async, [&] { return cmd::request_warm(one(path), {"x"}, nullptr); });
  std::this_thread::sleep_for(150ms);
  srv->reset();
  Status st = client.get();  // the connection is closed under it
  CHECK_FALSE(st.ok());
  // The handler's coroutine still runs to completion.
  for (int i = 0; i < 50 && h.warms_finished == 0; ++i) std::this_thread::sleep_for(50ms);
  CHECK(h.warms_finished == 1);
}

TEST_CASE("only the owner and root may use the control channel") {
  if (::geteuid() != 0) {
    WARN("not root: cannot switch uid; skipped");
    return;
  }
  TempDir tmp;
  Io io;
  FakeHandler h;
  h.st.source = "hf://acme/tiny";

  SECTION("peer uid check (socket opened up to everyone to reach that layer)") {
    REQUIRE(::chmod(tmp.path.c_str(), 0755) == 0);
    std::string path = tmp.path + "/c.sock";
    const uid_t owner = 4242;
    auto srv = fs::ControlServer::start_at(io.io.get_executor(), path, owner, h);
    REQUIRE(srv.ok());
    REQUIRE(::chmod(path.c_str(), 0666) == 0);

    std::string stranger = exchange_as_uid(4243, path);
    Status s = cmd::reply_status(stranger.substr(0, stranger.find('\n')));
    CHECK(s.code() == Errc::permission_denied);
    CHECK_THAT(s.error().message, Catch::Contains("uid 4243 may not control this mount"));
    CHECK(stranger.find("hf://acme/tiny") == std::string::npos);  // nothing leaked

    std::string own = exchange_as_uid(owner, path);
    CHECK(cmd::parse_status_reply(own.substr(0, own.find('\n'))).ok());
    CHECK(cmd::query_status(one(path)).ok());  // root
  }

  SECTION("directory and socket modes keep other users out before that") {
    std::string mp = "/nonexistent/hf-mount-unit-" + std::to_string(::getpid());
    auto srv = fs::ControlServer::start(io.io.get_executor(), mp, 0, h);
    REQUIRE(srv.ok());
    std::string path = (*srv)->socket_path();
    CHECK(path == fs::control_socket_path(mp));
    struct stat st {};
    REQUIRE(::lstat(fs::control_socket_dir(0).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(exchange_as_uid(4243, path) == "connect-errno:" + std::to_string(EACCES));
    CHECK(cmd::query_status(one(path)).ok());
  }

  SECTION("a socket directory owned by someone else, or a symlink, is refused") {
    std::string d = tmp.path + "/sockdir";
    REQUIRE(::mkdir(d.c_str(), 0700) == 0);
    REQUIRE(::chown(d.c_str(), 4242, 4242) == 0);
    Status s = fs::prepare_socket_dir(d);
    CHECK(s.code() == Errc::permission_denied);
    CHECK_THAT(s.error().message, Catch::Contains("belongs to uid 4242"));

    std::string link = tmp.path + "/link";
    std::string target = tmp.path + "/target";
    REQUIRE(::mkdir(target.c_str(), 0700) == 0);
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    CHECK(fs::prepare_socket_dir(link).code() == Errc::permission_denied);

    std::string loose = tmp.path + "/loose";
    REQUIRE(::mkdir(loose.c_str(), 0700) == 0);
    REQUIRE(::chmod(loose.c_str(), 0777) == 0);
    REQUIRE(fs::prepare_socket_dir(loose).ok());
    struct stat st {};
    REQUIRE(::stat(loose.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }
}
