// hf-mount-fuse (and mount.fuse.hfmount, the same binary): mount a Hub repository or bucket.
//
// Without -f the process forks *before* any thread exists; the child builds the mount and
// reports success or the precise failure through a pipe, and the parent exits only then, with
// the child's exit code and one clear line: mount(8), systemd and scripts can rely on "exit 0
// means the mount is usable".
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/text.h"
#include "cmd/exit_codes.h"
#include "cmd/malloc_tunables.h"
#include "base/mountinfo.h"
#include "cmd/sd_notify.h"
#include "fs/mount.h"
#include "fs/mount_config.h"

using namespace hf;
using hf::cmd::ExitCode;

namespace {

int fail(ExitCode code, const std::string& msg) {
  std::fprintf(stderr, "hf-mount-fuse: %s\n", msg.c_str());
  return static_cast<int>(code);
}

// Child -> parent readiness message: one byte exit code, then the error line.
void report(int fd, ExitCode code, const std::string& msg) {
  if (fd < 0) return;
  std::string m(1, static_cast<char>(static_cast<int>(code)));
  m += msg;
  ssize_t w = ::write(fd, m.data(), m.size());
  (void)w;
  ::close(fd);
}

// Parent side: wait for the child's report (or its death) and mirror it.
int wait_for_child(pid_t child, int fd) {
  std::string buf;
  char tmp[512];
  for (;;) {
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n > 0) {
      buf.append(tmp, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fd);
  if (buf.empty()) {
    int status = 0;
    ::waitpid(child, &status, 0);
    return fail(ExitCode::failure, "the mount process exited before reporting (see the system log)");
  }
  int code = static_cast<unsigned char>(buf[0]);
  if (code != 0) {
    int status = 0;
    ::waitpid(child, &status, 0);
    std::fprintf(stderr, "hf-mount-fuse: %s\n", buf.substr(1).c_str());
  }
  return code;
}

// A dead hf-mount at `mp` (its daemon was killed: "Transport endpoint is not connected") is
// detached, so the next mount on the same directory works without a manual `fusermount3 -u`.
// Only our own file system type is touched, and only when the kernel reports the connection
// gone; a live mount is left alone. Runs before any thread exists (fork is safe).
void detach_dead_mount(const std::string& mp) {
  struct statfs sf {};
  if (::statfs(mp.c_str(), &sf) == 0 || errno != ENOTCONN) return;
  auto all = read_mountinfo();
  if (!all.ok()) return;
  const MountEntry* top = mount_at(*all, mp);
  if (!top || !top->is_hfmount()) return;
  bool ok = false;
  if (::geteuid() == 0) {
    ok = ::umount2(mp.c_str(), MNT_DETACH) == 0;
  } else {
    pid_t pid = ::fork();
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      for (const char* fm : {"/usr/bin/fusermount3", "/bin/fusermount3"}) ::execl(fm, "fusermount3", "-u", "-z", mp.c_str(), nullptr);
      _exit(127);
    }
    int st = 0;
    ok = pid > 0 && ::waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  if (ok) {
    HF_LOG_WARN("mount", "{}: detached a dead mount of {} (its process was gone)", mp, top->source);
  } else {
    HF_LOG_WARN("mount", "{}: a dead mount of {} is in the way and could not be detached", mp, top->source);
  }
}

void detach_stdio() {
  int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  ::dup2(fd, 0);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  if (fd > 2) ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string prog = basename(argv[0]);
  bool helper = prog == "mount.fuse.hfmount";
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(fs::mount_usage(prog).c_str(), stdout);
      return 0;
    }
    if (a == "-V" || a == "--version") {
      std::printf("hf-mount-fuse %s\n", HF_VERSION);
      return 0;
    }
  }
  auto parsed = fs::parse_mount_args(args, helper);
  if (!parsed.ok()) return fail(ExitCode::usage, parsed.error().message + " (try --help)");
  fs::MountConfig cfg = std::move(*parsed);
  if (!cfg.dry_run) cmd::reexec_with_malloc_tunables(argv);  // before the token is blanked below
  // A token given as an option is visible in /proc/<pid>/cmdline: overwrite it there.
  for (int i = 1; i < argc; ++i) {
    if (char* p = std::strstr(argv[i], "hf_token=")) {
      for (p += 9; *p && *p != ','; ++p) *p = 'x';
    }
  }
  // huggingface_hub's convention: HF_HUB_OFFLINE=1|ON|YES|TRUE means "never contact the Hub".
  if (const char* off = std::getenv("HF_HUB_OFFLINE")) {
    std::string v = to_lower(off);
    if (v == "1" || v == "on" || v == "yes" || v == "true") cfg.offline = true;
  }
  if (auto l = log::parse_level(cfg.log_level); l.ok()) log::set_level(*l);
  if (cfg.verbose && log::level() < log::Level::info) log::set_level(log::Level::info);

  // Everything this process creates (cache, metadata store, staged file contents, logs) is
  // private to its owner: libraries such as RocksDB create their files 0644 otherwise.
  ::umask(077);

  // Mount point: resolve now (a daemon chdirs to /) and check it before any network traffic.
  if (!cfg.dry_run) {
    std::string abs = cfg.mountpoint;
    if (abs.empty() || abs[0] != '/') {
      char cwd[PATH_MAX];
      abs = std::string(::getcwd(cwd, sizeof cwd) ? cwd : "/") + "/" + abs;
    }
    detach_dead_mount(normalize_path(abs));
  }
  char real[PATH_MAX];
  if (!::realpath(cfg.mountpoint.c_str(), real)) {
    return fail(ExitCode::mountpoint, "mount point " + cfg.mountpoint + ": " + std::strerror(errno));
  }
  cfg.mountpoint = real;
  // Relative option paths mean "from here": the daemon chdirs to / before it opens them.
  for (std::string* p : {&cfg.cache_dir, &cfg.token_file}) {
    if (!p->empty() && (*p)[0] != '/') {
      char cwd[PATH_MAX];
      if (::getcwd(cwd, sizeof cwd)) *p = normalize_path(std::string(cwd) + "/" + *p);
    }
  }
  struct stat st {};
  if (::stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(ExitCode::mountpoint, "mount point " + cfg.mountpoint + " is not a directory");
  }
  if (cfg.dry_run) {
    if (cfg.verbose) std::printf("hf-mount-fuse: would mount %s on %s\n", cfg.source.canonical().c_str(), real);
    return 0;
  }

  // Logs: log_file= if given; else stderr in the foreground (the journal under systemd) and
  // syslog once daemonized.
  auto open_log_file = [&]() {
    if (cfg.log_file.empty()) return;
    if (auto s = log::use_file(cfg.log_file); !s.ok()) {
      HF_LOG_WARN("mount", "{}; logging to {} instead", s.error().message, cfg.foreground ? "stderr" : "syslog");
    }
  };
  // sd_notify only as a foreground (Type=notify) service, and only from this top-level process.
  const bool notify = cfg.foreground && std::getenv("NOTIFY_SOCKET") != nullptr;
  auto notify_failure = [&](const std::string& msg) {
    if (notify) cmd::sd_notify("STATUS=Failed: " + msg);
  };

  int report_fd = -1;
  if (cfg.foreground) open_log_file();
  if (!cfg.foreground) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return fail(ExitCode::failure, std::string("pipe: ") + std::strerror(errno));
    pid_t pid = ::fork();
    if (pid < 0) return fail(ExitCode::failure, std::string("fork: ") + std::strerror(errno));
    if (pid > 0) {
      ::close(p[1]);
      return wait_for_child(pid, p[0]);
    }
    ::close(p[0]);
    report_fd = p[1];
    ::setsid();
    if (::chdir("/") != 0) { /* harmless */ }
    open_log_file();
  }

  auto m = fs::Mount::create(cfg);
  if (!m.ok()) {
    ExitCode code = cmd::exit_code_for(m.code());
    if (!cfg.log_file.empty()) HF_LOG_ERROR("mount", "{}", m.error().message);
    notify_failure(m.error().message);
    if (report_fd < 0) return fail(code, m.error().message);
    report(report_fd, code, m.error().message);
    return static_cast<int>(code);
  }
  Status st_mount = (*m)->mount_kernel();
  if (!st_mount.ok()) {
    ExitCode code = st_mount.code() == Errc::invalid_argument ? ExitCode::usage : ExitCode::mountpoint;
    if (!cfg.log_file.empty()) HF_LOG_ERROR("mount", "{}", st_mount.error().message);
    notify_failure(st_mount.error().message);
    if (report_fd < 0) return fail(code, st_mount.error().message);
    report(report_fd, code, st_mount.error().message);
    return static_cast<int>(code);
  }
  if (report_fd >= 0) {
    if (cfg.log_file.empty()) log::use_syslog("hf-mount-fuse");
    report(report_fd, ExitCode::ok, "");
    detach_stdio();
  }
  if (notify) {
    cmd::sd_notify(fmt::format("READY=1\nMAINPID={}\nSTATUS=Serving {} on {}", ::getpid(), cfg.source.canonical(),
                               cfg.mountpoint));
  }
  int r = (*m)->serve();
  if (notify) cmd::sd_notify("STOPPING=1\nSTATUS=Unmounting");
  HF_LOG_INFO("mount", "unmounted {}", cfg.mountpoint);
  return r == 0 ? 0 : static_cast<int>(ExitCode::failure);
}
