// Mount lifecycle under load and local security, for real mounts (issue 10.3 and 10.6).
//
// Unmount paths with 16 readers in flight: fusermount3 -u (busy), fusermount3 -u -z,
// umount -l, SIGTERM and SIGKILL of the daemon. After each: no thread of ours in D state, the
// daemon gone, no mount left, and the next mount on the same directory works.
// Local security: cache and control-socket permissions, token files with group/other bits,
// the token absent from logs, /proc cmdline and `hf-mount status`, and the kernel mount options
// (nosuid, nodev always; default_permissions by default; allow_other only when asked).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "base/mountinfo.h"
#include "base/sha256.h"
#include "test/fuse/fixture.h"
#include "test/fuse/reliability.h"

using namespace hf;
using namespace hf::fstest;
using hubsim::RepoType;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The kernel's mount and super-block options of `mnt` ("" if not mounted).
std::string mount_options(const std::string& mnt) {
  auto all = read_mountinfo();
  const MountEntry* e = all.ok() ? mount_at(*all, mnt) : nullptr;
  return e ? e->mount_options + " " + e->super_options : "";
}

// 16 threads reading the file over and over until told to stop (or until the mount goes away).
struct ReaderPool {
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::atomic<uint64_t> ok{0}, errors{0}, wrong{0};
  ReaderPool(const std::string& path, const std::string& want, int n = 16) {
    for (int t = 0; t < n; ++t) {
      threads.emplace_back([this, path, &want, t] {
        int fd = ::open(path.c_str(), O_RDONLY);
        if (fd < 0) {
          errors++;
          finished++;
          return;
        }
        std::string buf(256 << 10, '\0');
        uint64_t off = (static_cast<uint64_t>(t) * 4099 * 4096) % want.size();
        while (!stop) {
          ssize_t r = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
          if (r < 0) {
            errors++;
            break;  // the mount is gone: ENOTCONN / EIO
          }
          if (std::memcmp(buf.data(), want.data() + off, static_cast<size_t>(r)) != 0) wrong++;
          ok++;
          off = (off + (1 << 20) + 4096 * t) % want.size();
        }
        ::close(fd);
        finished++;
      });
    }
  }
  // Stops the readers and waits at most `limit` for all of them to return.
  bool join(std::chrono::seconds limit) {
    stop = true;
    bool done = wait_for([&] { return finished.load() == static_cast<int>(threads.size()); }, limit);
    if (done) {
      for (auto& t : threads) t.join();
    }
    return done;
  }
  ~ReaderPool() {
    stop = true;
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

// Live (non-zombie) hf-mount-fuse processes whose command line mentions `needle`.
std::vector<pid_t> daemons_using(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (d && true) {
    auto* e = ::readdir(d);
    if (!e) break;
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    pid_t pid = std::atoi(e->d_name);
    std::string cmd = slurp(std::string("/proc/") + e->d_name + "/cmdline");
    std::string argv0 = cmd.substr(0, cmd.find('\0'));
    if (argv0.size() < 13 || argv0.compare(argv0.size() - 13, 13, "hf-mount-fuse") != 0) continue;
    if (cmd.find(needle) == std::string::npos) continue;
    ProcSample s = sample_process(pid);
    if (s.state != 'Z' && s.state != '?') out.push_back(pid);
  }
  if (d) ::closedir(d);
  return out;
}

// Waits until `pid` has exited (zombie or gone), without reaping it (the fixture does).
bool wait_exited(pid_t pid, std::chrono::seconds limit) {
  return wait_for(
      [&] {
        ProcSample s = sample_process(pid);
        return s.state == 'Z' || s.state == '?';
      },
      limit);
}

}  // namespace

TEST_CASE("unmount and kill under load: no D state, nothing left behind, the next mount works", "[lifecycle]") {
  Hub hub;
  std::string big = random_bytes(48 << 20, 3);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/load", {{"big.bin", big, ""}}).ok());
  hubsim::Knobs k = hub.server().knobs();
  k.bandwidth = 40 << 20;  // keep reads in flight
  hub.server().set_knobs(k);
  std::string cache = tempdir("cache");
  struct Way {
    std::string name;
    std::function<void(Mount&)> act;
  };
  std::vector<Way> ways{
      {"fusermount3 -u (busy) then -u -z",
       [](Mount& m) {
         CmdResult busy = run("fusermount3 -u '" + m.path() + "'");
         CHECK(busy.status != 0);  // readers hold files open: EBUSY, the mount stays usable
         CHECK(is_mounted(m.path()));
         CHECK(run("fusermount3 -u -z '" + m.path() + "'").status == 0);
       }},
      {"umount -l", [](Mount& m) { CHECK(run("umount -l '" + m.path() + "'").status == 0); }},
      {"SIGTERM", [](Mount& m) { ::kill(m.pid(), SIGTERM); }},
      {"SIGKILL", [](Mount& m) { ::kill(m.pid(), SIGKILL); }},
  };
  for (auto& way : ways) {
    INFO(way.name);
    Tally t;
    t.name = "lifecycle: " + way.name + " with 16 readers";
    std::string mnt_path;
    {
      Mount m(hub, "hf://acme/load", "", cache);
      mnt_path = m.path();
      ReaderPool pool(m / "big.bin", big);
      REQUIRE(wait_for([&] { return pool.ok.load() >= 16; }, 60s));
      way.act(m);
      bool joined = pool.join(60s);
      t.reads = pool.ok + pool.errors;
      t.read_errors = pool.errors;
      t.wrong_bytes = pool.wrong;
      t.stuck = joined ? 0 : 1;
      CHECK(joined);
      CHECK(pool.wrong == 0);
      CHECK(d_state_tasks(::getpid()).empty());
      bool exited = wait_exited(m.pid(), 60s);
      CHECK(exited);  // the daemon ends by itself (or was killed), it is never left running
      if (way.name == "SIGKILL") {
        // The kernel keeps a dead mount ("Transport endpoint is not connected") until someone
        // detaches it: the next mount on the very same directory must take care of it.
        CHECK(is_mounted(mnt_path));
        std::string bin = build_root() + "/cmd/hf-mount-fuse";
        CmdResult again = run("timeout 60 " + bin + " hf://acme/load '" + mnt_path + "' -o endpoint=" + hub.url() +
                              ",cache_dir=" + cache);
        INFO(again.out);
        CHECK(again.status == 0);
        if (again.status == 0) {
          IoResult r = pread_range(mnt_path + "/big.bin", 10 << 20, 1 << 20);
          CHECK(r.err == 0);
          CHECK(r.data == big.substr(10 << 20, 1 << 20));
          CHECK(run("fusermount3 -u '" + mnt_path + "'").status == 0);
          CHECK(wait_for([&] { return !is_mounted(mnt_path); }, 30s));
        }
        t.note = "dead mount replaced by the next mount: " + std::string(again.status == 0 ? "yes" : "NO");
      } else {
        CHECK_FALSE(is_mounted(mnt_path));
      }
      int code = m.unmount(5s);
      if (t.note.empty()) t.note = fmt::format("daemon exit status {}", code);
      if (way.name != "SIGKILL") CHECK(code == 0);  // a requested stop is a clean exit (systemd)
      report_tally("lifecycle", t);
    }
    CHECK_FALSE(is_mounted(mnt_path));
    // The next mount (a new directory, the same cache) works and serves the right bytes.
    Mount next(hub, "hf://acme/load", "", cache);
    IoResult r = pread_range(next / "big.bin", 20 << 20, 1 << 20);
    CHECK(r.err == 0);
    CHECK(r.data == big.substr(20 << 20, 1 << 20));
  }
  // No daemon of ours is left.
  CHECK(wait_for([&] { return daemons_using(cache).empty(); }, 30s));
  remove_tree(cache);
}

// The daemon re-executes itself once with glibc malloc tunables (cmd/malloc_tunables.h): same
// pid, same arguments, the tunables in the environment it started with and not passed on; a
// GLIBC_TUNABLES the user set is kept as is.
TEST_CASE("the daemon applies its malloc tunables by re-executing itself, unless the user set some",
          "[lifecycle]") {
  Hub hub;
  const std::string data = random_bytes(6 << 20, 17);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/tuned", {{"t.bin", data, ""}}).ok());
  auto environ_of = [](pid_t pid) {
    std::string raw = slurp("/proc/" + std::to_string(pid) + "/environ");
    std::vector<std::string> vars;
    std::istringstream in(raw);
    for (std::string v; std::getline(in, v, '\0');) vars.push_back(v);
    return vars;
  };
  auto has = [](const std::vector<std::string>& vars, const std::string& v) {
    return std::find(vars.begin(), vars.end(), v) != vars.end();
  };
  {
    Mount m(hub, "hf://acme/tuned");
    auto r = read_all(m / "t.bin");
    REQUIRE(r.err == 0);
    CHECK(sha256_hex(r.data) == sha256_hex(data));
    // The pid the fixture started is the mounted daemon, now running the re-executed image.
    auto vars = environ_of(m.pid());
    // glibc NUL-terminates each tunable of the string in place while parsing it: only the
    // first one still shows in /proc/PID/environ.
    CHECK(std::any_of(vars.begin(), vars.end(), [](const std::string& v) {
      return v.rfind("GLIBC_TUNABLES=glibc.malloc.hugetlb=1", 0) == 0;
    }));
    CHECK(has(vars, "HF_MOUNT_MALLOC_TUNED=1"));
    CHECK(slurp("/proc/" + std::to_string(m.pid()) + "/cmdline").find("hf://acme/tuned") != std::string::npos);
    CHECK(m.unmount() == 0);
  }
  {
    Mount m(hub, "hf://acme/tuned", "", "", {"GLIBC_TUNABLES=glibc.malloc.arena_max=2"});
    auto r = read_all(m / "t.bin");
    REQUIRE(r.err == 0);
    CHECK(sha256_hex(r.data) == sha256_hex(data));
    auto vars = environ_of(m.pid());
    CHECK(has(vars, "GLIBC_TUNABLES=glibc.malloc.arena_max=2"));
    CHECK_FALSE(std::any_of(vars.begin(), vars.end(), [](const std::string& v) { return v.rfind("HF_MOUNT_MALLOC_TUNED=", 0) == 0; }));
    CHECK(m.unmount() == 0);
  }
}

TEST_CASE("cache directory, control socket and mount options are private by default", "[lifecycle][security]") {
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/sec", {{"a.bin", random_bytes(3 << 20, 1), ""}}).ok());
  REQUIRE(hub.server().add_bucket("alice/sec").ok());
  // A pre-existing cache directory that is too open gets tightened (with a warning).
  std::string cache = tempdir("cache");
  ::chmod(cache.c_str(), 0755);
  {
    Mount m(hub, "hf://acme/sec", "", cache);
    CHECK(read_all(m / "a.bin").err == 0);
    struct stat st {};
    REQUIRE(::stat(cache.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK_THAT(m.log(), Catch::Contains("restricting it to 0700"));
    // Nothing under the cache is readable by group/other.
    CmdResult loose = run("find '" + cache + "' -perm /077 | head");
    CHECK(loose.out.empty());
    // Control socket: in a 0700 directory, mode 0600; another user cannot connect.
    std::string dir = "/run/hf-mount";
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(run("find /run/hf-mount -type s -perm /077 | wc -l").out == "0\n");
    std::string sock = "/run/hf-mount/" + sha256_hex(m.path()).substr(0, 16) + ".sock";
    REQUIRE(::stat(sock.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    pid_t child = ::fork();
    if (child == 0) {
      // As nobody: connecting is refused (the 0700 directory alone keeps us out).
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(2);
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      _exit(rc == 0 ? 1 : (errno == EACCES ? 0 : 3));
    }
    int st_child = 0;
    ::waitpid(child, &st_child, 0);
    CHECK(WIFEXITED(st_child));
    CHECK(WEXITSTATUS(st_child) == 0);
    // Kernel options: nosuid, nodev always; default_permissions on; allow_other off.
    std::string line = mount_options(m.path());
    INFO(line);
    CHECK_THAT(line, Catch::Contains("nosuid"));
    CHECK_THAT(line, Catch::Contains("nodev"));
    CHECK_THAT(line, Catch::Contains("default_permissions"));
    CHECK(line.find("allow_other") == std::string::npos);
  }
  {
    // allow_other only when asked; suid/dev requests are ignored.
    Mount m(hub, "hf://acme/sec", "allow_other,suid,dev", cache);
    std::string line = mount_options(m.path());
    INFO(line);
    CHECK_THAT(line, Catch::Contains("allow_other"));
    CHECK_THAT(line, Catch::Contains("nosuid"));
    CHECK_THAT(line, Catch::Contains("nodev"));
  }
  {
    // Bucket mount: the staging area (uncommitted file contents) is private too.
    Mount m(hub, "hf://buckets/alice/sec", "", cache);
    int fd = ::open((m / "pending.bin").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "secret data", 11) == 11);
    CmdResult loose = run("find '" + cache + "' -perm /077 | head");
    CHECK(loose.out.empty());
    ::close(fd);
  }
  // A cache directory owned by someone else is refused.
  std::string foreign = tempdir("foreign");
  REQUIRE(::chown(foreign.c_str(), 65534, 65534) == 0);
  std::string mnt = tempdir("mnt");
  CmdResult r = run(build_root() + "/cmd/hf-mount-fuse hf://acme/sec " + mnt + " -o endpoint=" + hub.url() +
                    ",cache_dir=" + foreign);
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Catch::Contains("uid 65534"));
  CHECK_FALSE(is_mounted(mnt));
  ::rmdir(mnt.c_str());
  remove_tree(foreign);
  remove_tree(cache);
}

TEST_CASE("tokens: loose token files are refused, the token never shows", "[lifecycle][security]") {
  const std::string secret = "hf_lifecycle_secret_token_4242";
  hubsim::Options o;
  o.tokens = {"alice:" + secret};
  Hub hub(false, o);
  hubsim::RepoFlags priv;
  priv.is_private = true;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/private", {{"p.bin", random_bytes(2 << 20, 9), ""}}, priv).ok());
  std::string dir = tempdir("tok");
  std::string tok = dir + "/token";
  run("printf '" + secret + "\\n' > " + tok);
  std::string bin = build_root() + "/cmd/hf-mount-fuse";
  std::string cache = tempdir("cache");
  for (const char* mode : {"644", "640", "604", "700"}) {
    INFO(mode);
    ::chmod(tok.c_str(), static_cast<mode_t>(std::stoul(mode, nullptr, 8)));
    std::string mnt = tempdir("mnt");
    CmdResult r = run(bin + " hf://acme/private " + mnt + " -o endpoint=" + hub.url() + ",cache_dir=" + cache +
                      ",token_file=" + tok);
    CHECK(r.status == 2);
    CHECK_THAT(r.out, Catch::Contains("chmod 600"));
    CHECK(r.out.find(secret) == std::string::npos);
    CHECK_FALSE(is_mounted(mnt));
    ::rmdir(mnt.c_str());
  }
  ::chmod(tok.c_str(), 0600);
  {
    Mount m(hub, "hf://acme/private", "token_file=" + tok + ",log_level=trace", cache);
    CHECK(read_all(m / "p.bin").err == 0);
    CHECK(slurp(m.log_file()).find(secret) == std::string::npos);
    // `hf-mount status` (text and JSON) does not print it either.
    CmdResult st = run(build_root() + "/cmd/hf-mount status");
    CmdResult js = run(build_root() + "/cmd/hf-mount status --json");
    CHECK_THAT(js.out, Catch::Contains(m.path()));
    CHECK(st.out.find(secret) == std::string::npos);
    CHECK(js.out.find(secret) == std::string::npos);
  }
  {
    // hf_token= on the command line is scrubbed from /proc/PID/cmdline.
    Mount m(hub, "hf://acme/private", "hf_token=" + secret + ",log_level=trace", cache);
    CHECK(read_all(m / "p.bin").err == 0);
    std::string cmdline = slurp("/proc/" + std::to_string(m.pid()) + "/cmdline");
    CHECK_THAT(cmdline, Catch::Contains("hf_token="));
    CHECK(cmdline.find(secret) == std::string::npos);
    CHECK(slurp(m.log_file()).find(secret) == std::string::npos);
    CmdResult ps = run("ps -eo args | grep hf-mount-fuse");
    CHECK(ps.out.find(secret) == std::string::npos);
  }
  remove_tree(dir);
  remove_tree(cache);
}
