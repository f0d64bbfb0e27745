// The hf-mount-hubsim CLI contract: first stdout line, --help, --gen-tls, seeding flags,
// clean exit on SIGTERM/SIGINT.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim::test;

namespace {

std::string binary() {
  const char* root = std::getenv("HF_BUILD_ROOT");
  std::string p = std::string(root ? root : ".") + "/cmd/hf-mount-hubsim";
  INFO("binary: " << p);
  REQUIRE(std::filesystem::exists(p));
  return p;
}

struct Child {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
  }
  // Reads one line from stdout within timeout_ms ("" on timeout/EOF).
  std::string read_line(int timeout_ms) {
    std::string line;
    while (true) {
      pollfd pfd{out, POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return line;
      char ch;
      ssize_t n = ::read(out, &ch, 1);
      if (n <= 0) return line;
      if (ch == '\n') return line;
      line.push_back(ch);
    }
  }
  std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

// "listening on {scheme}://127.0.0.1:{digits}" exactly.
bool is_listening_line(const std::string& line, const std::string& scheme) {
  std::string prefix = "listening on " + scheme + "://127.0.0.1:";
  if (!line.starts_with(prefix) || line.size() == prefix.size()) return false;
  return line.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
}

std::unique_ptr<Child> spawn(const std::vector<std::string>& args) {
  auto c = std::make_unique<Child>();
  int o[2], e[2];
  REQUIRE(::pipe(o) == 0);
  REQUIRE(::pipe(e) == 0);
  std::string bin = binary();
  c->pid = ::fork();
  REQUIRE(c->pid >= 0);
  if (c->pid == 0) {
    ::dup2(o[1], 1);
    ::dup2(e[1], 2);
    ::close(o[0]);
    ::close(e[0]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(o[1]);
  ::close(e[1]);
  c->out = o[0];
  c->err = e[0];
  return c;
}

}  // namespace

TEST_CASE("cli: first line, serving a directory repo, SIGTERM exits 0", "[hubsim][cli]") {
  std::string dir = fmt::format("/tmp/hubsim-cli-{}", ::getpid());
  std::filesystem::create_directories(dir + "/sub");
  std::string big = random_bytes(500000, 4);
  std::ofstream(dir + "/config.json") << "{}\n";
  std::ofstream(dir + "/sub/big.bin", std::ios::binary) << big;
  std::filesystem::create_directories(dir + "-dev");
  std::ofstream(dir + "-dev/only-on-dev.txt") << "dev\n";
  auto c = spawn({"--listen", "127.0.0.1:0", "--repo", "model:acme/cli=" + dir, "--repo",
                  "model:acme/cli@dev=" + dir + "-dev", "--bucket", "ns/bk",
                  "--synthetic", "dataset:bench/s=files=3,size=10K,seed=2", "--tag", "model:acme/cli=v1",
                  "--pr", "model:acme/cli", "--latency-ms", "0", "--page-size", "1000"});
  std::string line = c->read_line(20000);
  if (line.empty()) {  // failed to start: show why (stderr ends when the child exits)
    ::kill(c->pid, SIGTERM);
    FAIL("no first line; stderr: " << c->read_all(c->err));
  }
  REQUIRE(is_listening_line(line, "http"));
  std::string base = line.substr(13);
  TestClient client(base);
  auto got = client.get_follow("/acme/cli/resolve/main/sub/big.bin");
  CHECK(got.status == 200);
  CHECK(sha256_hex(got.body) == sha256_hex(big));
  CHECK(client.get_follow("/acme/cli/resolve/refs%2Fpr%2F1/config.json").body == "{}\n");
  CHECK(client.get_follow("/acme/cli/resolve/v1/config.json").body == "{}\n");
  CHECK(client.get("/api/buckets/ns/bk").status == 200);
  // A second --repo for the same repo is a commit replacing all files, here on branch dev.
  CHECK(client.get_follow("/acme/cli/resolve/dev/only-on-dev.txt").body == "dev\n");
  CHECK(client.head("/acme/cli/resolve/dev/config.json").status == 404);
  CHECK(client.head("/acme/cli/resolve/main/only-on-dev.txt").status == 404);
  CHECK(client.get("/api/datasets/bench/s/tree/main").status == 200);
  ::kill(c->pid, SIGTERM);
  CHECK(c->wait_exit() == 0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir + "-dev");
}

TEST_CASE("cli: SIGINT exits 0; --help lists every option; bad options exit 1", "[hubsim][cli]") {
  auto c = spawn({"--listen", "127.0.0.1:0"});
  REQUIRE(c->read_line(20000).starts_with("listening on http://"));
  ::kill(c->pid, SIGINT);
  CHECK(c->wait_exit() == 0);

  auto h = spawn({"--help"});
  std::string help = h->read_all(h->out);
  CHECK(h->wait_exit() == 0);
  for (const char* opt : {"--listen", "--tls-cert", "--tls-key", "--gen-tls", "--public-url", "--threads",
                          "--data-dir", "--repo", "--synthetic", "--legacy-lfs", "--private", "--gated", "--alias",
                          "--tag", "--pr", "--bucket", "--git-max-size", "--xorb-size", "--token", "--require-token",
                          "--latency-ms", "--first-byte-latency-ms", "--bandwidth", "--conn-bandwidth", "--token-ttl",
                          "--url-ttl", "--page-size", "--no-307", "--max-ranges-per-fetch", "--no-v2",
                          "--log-requests", "--log-level", "--help", "--version"})
    CHECK(help.find(opt) != std::string::npos);
  auto bad = spawn({"--frobnicate"});
  CHECK(bad->wait_exit() == 1);
  auto badrepo = spawn({"--repo", "model:acme/x=/nonexistent/dir"});
  CHECK(badrepo->wait_exit() == 1);
}

TEST_CASE("cli: --gen-tls alone exits 0; with other options it serves HTTPS", "[hubsim][cli]") {
  std::string dir = fmt::format("/tmp/hubsim-cli-tls-{}", ::getpid());
  std::filesystem::remove_all(dir);
  auto g = spawn({"--gen-tls", dir});
  CHECK(g->wait_exit() == 0);
  for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) CHECK(std::filesystem::exists(dir + "/" + f));
  auto s = spawn({"--gen-tls", dir + "/2", "--listen", "127.0.0.1:0", "--log-requests"});
  std::string line = s->read_line(20000);
  REQUIRE(is_listening_line(line, "https"));
  TestClient client(line.substr(13), dir + "/2/ca.pem");
  auto r = client.get("/health");
  INFO(r.error);
  CHECK(r.status == 200);
  ::kill(s->pid, SIGTERM);
  CHECK(s->wait_exit() == 0);
  // --log-requests wrote one line for the request.
  std::string log = s->read_all(s->err);
  CHECK(log.find("GET other /health 200") != std::string::npos);
  std::filesystem::remove_all(dir);
}
