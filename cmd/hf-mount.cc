// hf-mount: the front-end for hfmount mounts.
//
//   hf-mount start [repo|bucket] SOURCE MOUNTPOINT [flags]   mount in the background (readiness)
//   hf-mount stop MOUNTPOINT... | --all                      commit pending writes, unmount, wait
//   hf-mount status [--json] [MOUNTPOINT...]                 every hfmount mount, with live stats
//   hf-mount warm [-q] PATH...                               prefetch files into the cache
//   hf-mount cache info|clean|prune [--cache-dir DIR]        inspect or shrink the chunk cache
//
// Mounts are found through /proc/self/mountinfo (fstype fuse.hfmount), and talked to through
// their control sockets (fs/control.h). `start` runs hf-mount-fuse, whose parent process exits
// only once the mount is usable, so "exit 0" here means the same. Exit codes: cmd/exit_codes.h.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/text.h"
#include "cache/chunk_store.h"
#include "cmd/cli_paths.h"
#include "cmd/control_client.h"
#include "cmd/exit_codes.h"
#include "base/mountinfo.h"
#include "cmd/progress.h"
#include "cmd/start_args.h"
#include "fs/control_protocol.h"
#include "fs/control_server.h"
#include "fs/mount.h"

using namespace hf;
using namespace hf::cmd;

namespace {

int fail(ExitCode code, const std::string& msg) {
  std::fprintf(stderr, "hf-mount: %s\n", msg.c_str());
  return static_cast<int>(code);
}

int fail(const Error& e) { return fail(exit_code_for(e.code), e.message); }

void note(const std::string& msg) { std::fprintf(stderr, "hf-mount: note: %s\n", msg.c_str()); }

const char* kUsage = R"(usage: hf-mount COMMAND [ARGS]

Mount Hugging Face Hub repositories (read-only) and Storage Buckets (read-write) with FUSE.

COMMANDS
  start [repo|bucket] SOURCE MOUNTPOINT [FLAGS]
                     mount in the background; returns once the mount is usable
  stop MOUNTPOINT... | --all [--lazy] [--force] [--timeout SECS]
                     commit pending writes, unmount, wait for the mount process to exit
  status [--json] [MOUNTPOINT...]
                     every hfmount mount: source, revision, commit, uptime, traffic, cache, errors
  warm [-q] PATH...  fetch files (or whole directories) under hfmount mounts into the cache
  cache info|clean|prune [--cache-dir DIR] [--max-size SIZE] [--json]
                     show, empty or shrink the chunk cache
  help [COMMAND]     this text, or a command's help        --version   print the version

EXIT STATUS
  0 ok, 1 usage, 2 auth (token/access), 3 not found (repo/revision/path), 4 network,
  5 mount point (missing, busy, not an hfmount mount, FUSE unavailable), 6 cache, 32 other failure

ENVIRONMENT
  HF_TOKEN, HF_TOKEN_PATH, HF_HOME, HF_ENDPOINT   as for hf-mount-fuse (see hf-mount-fuse --help)
  HF_MOUNT_FUSE_BIN   the hf-mount-fuse executable to run (default: next to hf-mount, else PATH)
  XDG_STATE_HOME      per-mount log files go to $XDG_STATE_HOME/hf-mount/logs (root: /var/log/hf-mount)

See hf-mount(1), hf-mount-fuse(8) and mount.fuse.hfmount(8).
)";

const char* kStopUsage = R"(usage: hf-mount stop MOUNTPOINT... | --all [--lazy] [--force] [--timeout SECS]

Asks the mount to commit pending writes (buckets), unmounts it (umount2 as root, fusermount3
otherwise) and waits until the mount process has exited.
  --all           every hfmount mount you own (root: every hfmount mount)
  -l, --lazy      detach now even if files are open (the mount goes away when they close)
  --force         unmount even if pending writes cannot be committed (they are lost)
  --timeout SECS  how long to wait for the mount process to exit (default 60)
)";

const char* kStatusUsage = R"(usage: hf-mount status [--json] [MOUNTPOINT...]

Lists hfmount mounts (all of them, or the given mount points) with the live statistics of those
you own (root: all): source, revision and commit, uptime, bytes fetched and served, cache hit
ratio, HTTP requests in flight, retries and errors, pending writes.
  --json   one JSON document: {"mounts":[{"mountpoint":...,"source":...,"reachable":true,
           "status":{...},"uptime_s":N,"cache_hit_ratio":R}, ...]}
)";

const char* kWarmUsage = R"(usage: hf-mount warm [-q] PATH...

Fetches the given files (directories: every file below them) into the mount's cache, showing
bytes/s and the time left; useful before a training run. PATHs must lie inside hfmount mounts.
Check what is cached with: getfattr -n user.hf.cached_bytes FILE
  -q, --quiet   no progress display
)";

const char* kCacheUsage = R"(usage: hf-mount cache info|clean|prune [--cache-dir DIR] [--max-size SIZE] [--json]

  info    size and number of cached chunk runs and metadata, mounts using the cache
  clean   remove every cached chunk (running mounts keep working and refetch what they need)
  prune   evict least recently used chunks until the cache holds at most SIZE (default 10G)
  --cache-dir DIR  the cache directory (default: the mounts' default, /var/cache/hf-mount for
                   root, else ${XDG_CACHE_HOME:-~/.cache}/hf-mount)
)";

bool is_help(const std::string& a) { return a == "-h" || a == "--help"; }

std::string cwd() {
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf)) return buf;
  return "/";
}

// Canonical absolute path; on failure (e.g. ENOTCONN on a dead FUSE mount) the lexically
// normalized absolute path.
std::string canonical_or_lexical(const std::string& p) {
  char real[PATH_MAX];
  if (::realpath(p.c_str(), real)) return real;
  return normalize_path(p.empty() || p[0] != '/' ? cwd() + "/" + p : p);
}

uid_t owner_of(const MountEntry& e) { return e.user_id.value_or(::geteuid()); }

std::vector<std::string> candidates_for(const MountEntry& e) {
  return fs::control_socket_candidates(e.mountpoint, owner_of(e));
}

Result<std::vector<MountEntry>> hf_mounts() {
  HF_ASSIGN_OR_RETURN(auto all, read_mountinfo());
  return hfmount_entries(all);
}

// mkdir -p with `mode` for the directories it creates.
bool make_dirs(const std::string& dir, mode_t mode) {
  for (size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return false;
    if (pos == std::string::npos) return true;
  }
}

std::string find_fuse_binary() {
  if (const char* b = std::getenv("HF_MOUNT_FUSE_BIN"); b && *b) return b;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    std::string cand = dir + "/hf-mount-fuse";
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  if (const char* path = std::getenv("PATH")) {
    for (auto d : split(path, ':')) {
      if (d.empty()) continue;
      std::string cand = std::string(d) + "/hf-mount-fuse";
      if (::access(cand.c_str(), X_OK) == 0) return cand;
    }
  }
  return "/usr/bin/hf-mount-fuse";
}

// ---------------------------------------------------------------------------------------------
// start

int cmd_start(const std::vector<std::string>& args) {
  for (auto& a : args) {
    if (is_help(a)) {
      std::fputs(start_usage().c_str(), stdout);
      return 0;
    }
  }
  auto planned = plan_start(args, cwd());
  if (!planned.ok()) return fail(ExitCode::usage, planned.error().message + " (try hf-mount start --help)");
  StartPlan plan = std::move(*planned);
  for (auto& n : plan.notes) note(n);

  char real[PATH_MAX];
  if (!::realpath(plan.mountpoint.c_str(), real)) {
    return fail(ExitCode::mountpoint, fmt::format("mount point {}: {}", plan.mountpoint, std::strerror(errno)));
  }
  plan.mountpoint = real;
  if (auto all = read_mountinfo(); all.ok()) {
    if (const MountEntry* top = mount_at(*all, plan.mountpoint); top && top->is_hfmount()) {
      return fail(ExitCode::mountpoint, fmt::format("{} is already an hf-mount mount point ({}); run hf-mount stop {} first",
                                                    plan.mountpoint, top->source, plan.mountpoint));
    }
  }

  // Per-mount log file (background only, unless asked for explicitly).
  std::string log_file = plan.log_file;
  if (log_file.empty() && !plan.foreground) {
    log_file = default_log_file(plan.mountpoint, ::geteuid(), ::getenv, passwd_home(::geteuid()));
  }
  if (!log_file.empty()) {
    std::string dir = log_file.substr(0, log_file.rfind('/'));
    if (!dir.empty() && !make_dirs(dir, ::geteuid() == 0 ? 0750 : 0700)) {
      note(fmt::format("cannot create {} ({}); logging to syslog instead", dir, std::strerror(errno)));
      log_file.clear();
    } else {
      plan.options.push_back("log_file=" + log_file);
    }
  }

  std::string bin = find_fuse_binary();
  std::vector<std::string> fargs = plan.fuse_args();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (auto& a : fargs) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto exec_child = [&]() {
    if (!plan.hf_token.empty()) {
      // The environment is readable only by the same user; argv is world-readable.
      ::setenv("HF_TOKEN", plan.hf_token.reveal().c_str(), 1);
      ::unsetenv("HF_HUB_DISABLE_IMPLICIT_TOKEN");
    }
    ::execv(bin.c_str(), argv.data());
    std::fprintf(stderr, "hf-mount: cannot run %s: %s\n", bin.c_str(), std::strerror(errno));
    _exit(static_cast<int>(ExitCode::failure));
  };

  if (plan.foreground) exec_child();  // does not return

  std::fprintf(stderr, "hf-mount: mounting %s on %s ...\n", plan.source.c_str(), plan.mountpoint.c_str());
  pid_t pid = ::fork();
  if (pid < 0) return fail(ExitCode::failure, fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) exec_child();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : static_cast<int>(ExitCode::failure);
  if (rc != 0) {
    if (!WIFEXITED(status)) std::fprintf(stderr, "hf-mount: hf-mount-fuse was killed by signal %d\n", WTERMSIG(status));
    if (!log_file.empty()) {
      struct stat st {};
      if (::stat(log_file.c_str(), &st) == 0 && st.st_size > 0) std::fprintf(stderr, "hf-mount: log: %s\n", log_file.c_str());
    }
    return rc;
  }
  std::printf("mounted %s on %s\n", plan.source.c_str(), plan.mountpoint.c_str());
  if (!log_file.empty()) std::printf("  log:     %s\n", log_file.c_str());
  std::printf("  status:  hf-mount status %s\n  stop:    hf-mount stop %s\n", plan.mountpoint.c_str(),
              plan.mountpoint.c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// stop

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie (exited, not yet reaped by its parent) counts as gone.
  FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "re");
  if (!f) return false;
  char buf[512];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* rp = std::strrchr(buf, ')');
  return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

// Runs `argv` (absolute path) and returns its exit status, or -1 if it could not run.
int run(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Status unmount(const std::string& mp, bool lazy) {
  if (::geteuid() == 0) {
    if (::umount2(mp.c_str(), lazy ? MNT_DETACH : 0) == 0) return {};
    int err = errno;
    if (err == EBUSY) {
      return Error(Errc::busy, fmt::format("{} is busy (open files or a working directory inside); close them or use --lazy", mp));
    }
    return Error(Errc::io, fmt::format("cannot unmount {}: {}", mp, std::strerror(err)));
  }
  // Unprivileged: fusermount3 (setuid) is the only way; found by absolute path first, since
  // PATH may be minimal.
  std::string fm;
  for (const char* c : {"/usr/bin/fusermount3", "/bin/fusermount3"}) {
    if (::access(c, X_OK) == 0) {
      fm = c;
      break;
    }
  }
  if (fm.empty()) return Error(Errc::unsupported, "fusermount3 not found (install the fuse3 package)");
  std::vector<std::string> argv{fm, "-u"};
  if (lazy) argv.push_back("-z");
  argv.push_back(mp);
  int rc = run(argv);
  if (rc != 0) return Error(Errc::busy, fmt::format("fusermount3 could not unmount {} (see above; --lazy detaches a busy mount)", mp));
  return {};
}

int cmd_stop(const std::vector<std::string>& args) {
  bool all = false, lazy = false, force = false;
  double timeout_s = 60;
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (is_help(a)) {
      std::fputs(kStopUsage, stdout);
      return 0;
    }
    if (a == "--all" || a == "-a") all = true;
    else if (a == "--lazy" || a == "-l") lazy = true;
    else if (a == "--force") force = true;
    else if (a == "--timeout" || a.rfind("--timeout=", 0) == 0) {
      std::string v = a == "--timeout" ? (i + 1 < args.size() ? args[++i] : "") : a.substr(10);
      auto n = parse_u64(v);
      if (!n) return fail(ExitCode::usage, fmt::format("--timeout: '{}' is not a number of seconds", v));
      timeout_s = static_cast<double>(*n);
    } else if (!a.empty() && a[0] == '-') return fail(ExitCode::usage, fmt::format("unknown flag '{}' (try hf-mount stop --help)", a));
    else paths.push_back(a);
  }
  if (all == !paths.empty()) return fail(ExitCode::usage, "give MOUNTPOINT... or --all (try hf-mount stop --help)");

  auto mounts = hf_mounts();
  if (!mounts.ok()) return fail(mounts.error());
  std::vector<MountEntry> targets;
  if (all) {
    for (auto it = mounts->rbegin(); it != mounts->rend(); ++it) {  // nested mounts first
      if (::geteuid() == 0 || owner_of(*it) == ::geteuid()) targets.push_back(*it);
    }
    if (targets.empty()) {
      std::printf("no hf-mount mounts to stop\n");
      return 0;
    }
  } else {
    for (auto& p : paths) {
      std::string mp = canonical_or_lexical(p);
      const MountEntry* e = mount_at(*mounts, mp);
      if (!e) return fail(ExitCode::mountpoint, fmt::format("{} is not an hf-mount mount point", mp));
      targets.push_back(*e);
    }
  }

  int rc = 0;
  for (const auto& m : targets) {
    pid_t pid = 0;
    auto st = query_status(candidates_for(m), std::chrono::seconds(5));
    if (st.ok()) {
      pid = static_cast<pid_t>(st->pid);
      if (!st->read_only) {
        if (st->dirty_files > 0) std::fprintf(stderr, "hf-mount: committing %llu pending file(s) of %s ...\n",
                                              static_cast<unsigned long long>(st->dirty_files), m.mountpoint.c_str());
        Status fl = request_flush(candidates_for(m));
        if (!fl.ok()) {
          if (!force) {
            rc = fail(exit_code_for(fl.code()), fmt::format("{}: pending writes could not be committed: {} (--force unmounts anyway, losing them)",
                                                            m.mountpoint, fl.error().message));
            continue;
          }
          note(fmt::format("{}: pending writes are lost: {}", m.mountpoint, fl.error().message));
        }
      }
    } else if (st.code() != Errc::not_found && st.code() != Errc::network) {
      note(fmt::format("{}: no status ({}); unmounting anyway", m.mountpoint, st.error().message));
    }
    Status um = unmount(m.mountpoint, lazy);
    if (!um.ok()) {
      rc = fail(ExitCode::mountpoint, um.error().message);
      continue;
    }
    // The mount process finishes (final commits, cache flush) after the kernel lets go.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (process_alive(pid)) {
      rc = fail(ExitCode::failure, fmt::format("{} is unmounted but its process {} is still running after {:.0f} s",
                                               m.mountpoint, pid, timeout_s));
      continue;
    }
    std::printf("unmounted %s (%s)\n", m.mountpoint.c_str(), m.source.c_str());
  }
  return rc;
}

// ---------------------------------------------------------------------------------------------
// status

double hit_ratio(const fs::MountStatus& s) {
  uint64_t n = s.cache_hits + s.cache_misses;
  return n == 0 ? 0.0 : static_cast<double>(s.cache_hits) / static_cast<double>(n);
}

int64_t uptime_s(const fs::MountStatus& s) {
  return s.started_at_ns > 0 ? std::max<int64_t>(0, (now_unix_ns() - s.started_at_ns) / 1000000000) : 0;
}

void print_status_human(const MountEntry& m, const Result<fs::MountStatus>& r) {
  std::printf("%s on %s\n", m.source.c_str(), m.mountpoint.c_str());
  if (!r.ok()) {
    std::printf("  (no live statistics: %s)\n", r.error().message.c_str());
    return;
  }
  const auto& s = *r;
  std::string commit = s.commit.size() > 12 ? s.commit.substr(0, 12) : s.commit;
  std::printf("  revision   %s%s%s%s\n", s.revision.empty() ? "-" : s.revision.c_str(),
              commit.empty() ? "" : (" @ " + commit).c_str(), s.pinned ? " (pinned)" : "",
              s.offline ? " (offline)" : "");
  std::printf("  process    pid %lld, up %s, %s\n", static_cast<long long>(s.pid), format_uptime(uptime_s(s)).c_str(),
              s.read_only ? "read-only" : "read-write");
  std::printf("  traffic    fetched %s, served %s\n", format_size(s.bytes_fetched).c_str(),
              format_size(s.bytes_served).c_str());
  uint64_t lookups = s.cache_hits + s.cache_misses;
  std::printf("  cache      hit ratio %s (%llu of %llu, %llu from disk), disk %s, memory %s, %s\n",
              lookups ? fmt::format("{:.1f}%", hit_ratio(s) * 100).c_str() : "-",
              static_cast<unsigned long long>(s.cache_hits), static_cast<unsigned long long>(lookups),
              static_cast<unsigned long long>(s.cache_disk_hits),
              format_size(s.cache_disk_bytes).c_str(), format_size(s.cache_memory_bytes).c_str(), s.cache_dir.c_str());
  if (s.cache_writes_dropped > 0) {
    std::printf("             %llu disk cache writes dropped (the disk fell behind; those chunks are fetched again after a remount)\n",
                static_cast<unsigned long long>(s.cache_writes_dropped));
  }
  std::printf("  requests   %llu HTTP, %llu in flight, %llu retries, %llu errors; %llu read errors\n",
              static_cast<unsigned long long>(s.http_requests), static_cast<unsigned long long>(s.http_in_flight),
              static_cast<unsigned long long>(s.http_retries), static_cast<unsigned long long>(s.http_errors),
              static_cast<unsigned long long>(s.read_errors));
  // Free heap is address space malloc holds (the daemon's 64 MiB top pad per arena, see
  // cmd/malloc_tunables.h): only part of it is resident.
  std::printf("  memory     %s resident: heap %s in use (%s more held), metadata DB %s, chunk cache %s\n",
              format_size(s.rss_bytes).c_str(), format_size(s.heap_in_use_bytes).c_str(),
              format_size(s.heap_free_bytes).c_str(), format_size(s.db_memory_bytes).c_str(),
              format_size(s.cache_memory_bytes).c_str());
  if (!s.read_only) {
    std::printf("  writes     %llu pending, %llu commits (%llu failed), %s uploaded\n",
                static_cast<unsigned long long>(s.dirty_files), static_cast<unsigned long long>(s.commits),
                static_cast<unsigned long long>(s.commit_failures), format_size(s.uploaded_bytes).c_str());
  }
}

int cmd_status(const std::vector<std::string>& args) {
  bool json = false;
  std::vector<std::string> only;
  for (const auto& a : args) {
    if (is_help(a)) {
      std::fputs(kStatusUsage, stdout);
      return 0;
    }
    if (a == "--json") json = true;
    else if (!a.empty() && a[0] == '-') return fail(ExitCode::usage, fmt::format("unknown flag '{}' (try hf-mount status --help)", a));
    else only.push_back(canonical_or_lexical(a));
  }
  auto mounts = hf_mounts();
  if (!mounts.ok()) return fail(mounts.error());
  std::vector<MountEntry> shown;
  for (auto& m : *mounts) {
    if (only.empty() || std::find(only.begin(), only.end(), m.mountpoint) != only.end()) shown.push_back(m);
  }
  int rc = 0;
  for (auto& p : only) {
    if (std::none_of(shown.begin(), shown.end(), [&](const MountEntry& m) { return m.mountpoint == p; })) {
      rc = fail(ExitCode::mountpoint, fmt::format("{} is not an hf-mount mount point", p));
    }
  }

  JsonWriter w;
  if (json) w.begin_object().key("mounts").begin_array();
  if (!json && shown.empty() && only.empty()) std::printf("no hf-mount mounts\n");
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto& m = shown[i];
    auto r = query_status(candidates_for(m), std::chrono::seconds(5));
    if (json) {
      w.begin_object().kv("mountpoint", m.mountpoint).kv("source", m.source);
      w.kv("owner_uid", static_cast<uint64_t>(owner_of(m))).kv("reachable", r.ok());
      if (r.ok()) {
        w.kv("uptime_s", uptime_s(*r)).kv("cache_hit_ratio", hit_ratio(*r));
        w.key("status");
        fs::write_mount_status(w, *r);
      } else {
        w.kv("error", r.error().message).kv("errc", errc_name(r.code()));
      }
      w.end_object();
    } else {
      if (i > 0) std::printf("\n");
      print_status_human(m, r);
    }
  }
  if (json) {
    w.end_array().end_object();
    std::printf("%s\n", w.str().c_str());
  }
  return rc;
}

// ---------------------------------------------------------------------------------------------
// warm

int cmd_warm(const std::vector<std::string>& args) {
  bool quiet = false;
  std::vector<std::string> paths;
  for (const auto& a : args) {
    if (is_help(a)) {
      std::fputs(kWarmUsage, stdout);
      return 0;
    }
    if (a == "-q" || a == "--quiet") quiet = true;
    else if (!a.empty() && a[0] == '-' && a != "-") return fail(ExitCode::usage, fmt::format("unknown flag '{}' (try hf-mount warm --help)", a));
    else paths.push_back(a);
  }
  if (paths.empty()) return fail(ExitCode::usage, "give at least one PATH (try hf-mount warm --help)");
  auto all = read_mountinfo();
  if (!all.ok()) return fail(all.error());

  // Group the paths by mount, in the order given.
  std::vector<std::pair<MountEntry, std::vector<std::string>>> groups;
  for (const auto& p : paths) {
    char real[PATH_MAX];
    if (!::realpath(p.c_str(), real)) return fail(ExitCode::not_found, fmt::format("{}: {}", p, std::strerror(errno)));
    std::string rp = real;
    const MountEntry* m = mount_containing(*all, rp);
    if (!m || !m->is_hfmount()) return fail(ExitCode::mountpoint, fmt::format("{} is not inside an hf-mount mount", p));
    std::string rel = rp.size() > m->mountpoint.size() ? rp.substr(m->mountpoint == "/" ? 1 : m->mountpoint.size() + 1) : "";
    auto g = std::find_if(groups.begin(), groups.end(), [&](auto& x) { return x.first.mountpoint == m->mountpoint; });
    if (g == groups.end()) {
      groups.emplace_back(*m, std::vector<std::string>{});
      g = groups.end() - 1;
    }
    g->second.push_back(rel);
  }

  bool tty = !quiet && ::isatty(2);
  int rc = 0;
  for (auto& [m, rels] : groups) {
    RateMeter meter;
    auto t0 = std::chrono::steady_clock::now();
    auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    double last_draw = -1;
    WarmProgress last;
    meter.add(0, 0);
    auto draw = [&](const WarmProgress& p, bool final_draw) {
      double t = secs();
      meter.add(t, p.done_bytes);
      last = p;
      if (quiet) return;
      if (tty) {
        if (!final_draw && t - last_draw < 0.1) return;
        last_draw = t;
        std::fprintf(stderr, "\r%s\x1b[K", render_progress(p.done_bytes, p.total_bytes, p.files_done, p.files_total,
                                                            meter.rate(), 100).c_str());
      } else if (final_draw || last_draw < 0 || t - last_draw >= 5) {
        last_draw = t;
        std::fprintf(stderr, "%s\n", render_progress(p.done_bytes, p.total_bytes, p.files_done, p.files_total,
                                                     meter.rate(), 100).c_str());
      }
    };
    if (!quiet) std::fprintf(stderr, "warming %zu path(s) of %s\n", rels.size(), m.source.c_str());
    Status s = request_warm(candidates_for(m), rels, [&](const WarmProgress& p) { draw(p, false); });
    if (tty) std::fprintf(stderr, "\r\x1b[K");
    double took = secs();
    if (!s.ok()) {
      rc = fail(exit_code_for(s.code()), fmt::format("warm {}: {}", m.mountpoint, s.error().message));
      continue;
    }
    uint64_t bytes = std::max(last.done_bytes, last.total_bytes);
    std::printf("warmed %s in %llu file(s) of %s in %.1f s (%s)\n", format_size(bytes).c_str(),
                static_cast<unsigned long long>(std::max(last.files_done, last.files_total)), m.mountpoint.c_str(), took,
                format_rate(took > 0 ? static_cast<double>(bytes) / took : 0).c_str());
  }
  return rc;
}

// ---------------------------------------------------------------------------------------------
// cache

struct DirUsage {
  uint64_t bytes = 0, files = 0;
};

DirUsage du(const std::string& dir, std::string_view suffix = {}) {
  namespace sfs = std::filesystem;
  DirUsage u;
  std::error_code ec;
  sfs::recursive_directory_iterator it(dir, sfs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (!it->is_regular_file(ec2) || ec2) continue;
    std::string name = it->path().filename().string();
    if (!suffix.empty() && (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    u.files++;
  }
  return u;
}

int cmd_cache(const std::vector<std::string>& args) {
  std::string action, dir;
  bool json = false;
  std::optional<uint64_t> max_size;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (is_help(a)) {
      std::fputs(kCacheUsage, stdout);
      return 0;
    }
    auto value = [&](std::string_view flag) -> std::optional<std::string> {
      if (a == flag) return i + 1 < args.size() ? std::optional(args[++i]) : std::nullopt;
      return a.substr(flag.size() + 1);
    };
    if (a == "--json") json = true;
    else if (a == "--cache-dir" || a.rfind("--cache-dir=", 0) == 0) {
      auto v = value("--cache-dir");
      if (!v || v->empty()) return fail(ExitCode::usage, "--cache-dir needs a directory");
      dir = canonical_or_lexical(*v);
    } else if (a == "--max-size" || a.rfind("--max-size=", 0) == 0) {
      auto v = value("--max-size");
      auto n = v ? parse_size(*v) : std::nullopt;
      if (!n) return fail(ExitCode::usage, "--max-size needs a size, e.g. 5G");
      max_size = *n;
    } else if (!a.empty() && a[0] == '-') return fail(ExitCode::usage, fmt::format("unknown flag '{}' (try hf-mount cache --help)", a));
    else if (action.empty()) action = a;
    else return fail(ExitCode::usage, fmt::format("unexpected argument '{}'", a));
  }
  if (action != "info" && action != "clean" && action != "prune") {
    return fail(ExitCode::usage, "expected info, clean or prune (try hf-mount cache --help)");
  }
  if (dir.empty()) dir = fs::default_cache_dir();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (json) std::printf("{\"cache_dir\":\"%s\",\"exists\":false}\n", dir.c_str());
    else std::printf("no cache at %s\n", dir.c_str());
    return 0;
  }
  if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    return fail(ExitCode::cache, fmt::format("{}: {}", dir, std::strerror(errno)));
  }

  if (action == "info") {
    DirUsage chunks = du(dir + "/chunks/v1", ".run");
    DirUsage meta = du(dir + "/meta");
    DirUsage total = du(dir);
    std::vector<std::string> users;
    if (auto mounts = hf_mounts(); mounts.ok()) {
      for (auto& m : *mounts) {
        auto s = query_status(candidates_for(m), std::chrono::seconds(2));
        if (s.ok() && canonical_or_lexical(s->cache_dir) == dir) users.push_back(m.mountpoint);
      }
    }
    if (json) {
      JsonWriter w;
      w.begin_object().kv("cache_dir", dir).kv("exists", true);
      w.kv("chunk_bytes", chunks.bytes).kv("chunk_runs", chunks.files).kv("metadata_bytes", meta.bytes);
      w.kv("total_bytes", total.bytes).kv("total_files", total.files).key("mounts").begin_array();
      for (auto& u : users) w.value(u);
      w.end_array().end_object();
      std::printf("%s\n", w.str().c_str());
    } else {
      std::printf("cache      %s\n", dir.c_str());
      std::printf("chunks     %s in %llu run file(s)\n", format_size(chunks.bytes).c_str(),
                  static_cast<unsigned long long>(chunks.files));
      std::printf("metadata   %s\n", format_size(meta.bytes).c_str());
      std::printf("total      %s on disk\n", format_size(total.bytes).c_str());
      std::printf("used by    %s\n", users.empty() ? "no running mount" : fmt::format("{}", fmt::join(users, ", ")).c_str());
    }
    return 0;
  }

  // clean = prune to nothing. Eviction goes through the store so the usage counter shared with
  // running mounts stays right, and runs that readers have open stay readable until closed.
  uint64_t target = action == "clean" ? 0 : max_size.value_or(10ull * 1000 * 1000 * 1000);
  DirUsage before = du(dir + "/chunks/v1", ".run");
  cache::DiskChunkStoreOptions o;
  o.dir = dir;
  // evict_now() evicts down to 90% of the bound once usage passes 90%: a bound of target/0.9
  // leaves at most `target` bytes.
  o.max_bytes = target == 0 ? 1 : static_cast<uint64_t>(std::ceil(static_cast<double>(target) / 0.9));
  o.evict_interval = std::chrono::hours(24);
  {
    auto store = cache::DiskChunkStore::open(o);
    if (!store.ok()) return fail(ExitCode::cache, "cache: " + store.error().message);
    (*store)->evict_now();
  }
  DirUsage after = du(dir + "/chunks/v1", ".run");
  uint64_t freed = before.bytes > after.bytes ? before.bytes - after.bytes : 0;
  if (json) {
    JsonWriter w;
    w.begin_object().kv("cache_dir", dir).kv("action", action).kv("chunk_bytes_before", before.bytes);
    w.kv("chunk_bytes_after", after.bytes).kv("freed_bytes", freed).end_object();
    std::printf("%s\n", w.str().c_str());
  } else {
    std::printf("%s: freed %s (%s -> %s)\n", dir.c_str(), format_size(freed).c_str(), format_size(before.bytes).c_str(),
                format_size(after.bytes).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return static_cast<int>(ExitCode::usage);
  }
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    if (cmd == "help" && !rest.empty()) {
      std::string sub = rest[0];
      if (sub == "start") std::fputs(start_usage().c_str(), stdout);
      else if (sub == "stop") std::fputs(kStopUsage, stdout);
      else if (sub == "status") std::fputs(kStatusUsage, stdout);
      else if (sub == "warm") std::fputs(kWarmUsage, stdout);
      else if (sub == "cache") std::fputs(kCacheUsage, stdout);
      else return fail(ExitCode::usage, fmt::format("unknown command '{}'", sub));
      return 0;
    }
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "-V" || cmd == "--version" || cmd == "version") {
    std::printf("hf-mount %s\n", HF_VERSION);
    return 0;
  }
  if (cmd == "start") return cmd_start(rest);
  if (cmd == "stop") return cmd_stop(rest);
  if (cmd == "status") return cmd_status(rest);
  if (cmd == "warm") return cmd_warm(rest);
  if (cmd == "cache") return cmd_cache(rest);
  return fail(ExitCode::usage, fmt::format("unknown command '{}' (try hf-mount --help)", cmd));
}
