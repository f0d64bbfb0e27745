#include "cmd/start_args.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "base/text.h"
#include "base/mountinfo.h"
#include "fs/mount_config.h"

namespace hf::cmd {

namespace {

std::string absolute(const std::string& p, const std::string& cwd) {
  if (p.empty()) return p;
  if (p[0] == '/') return normalize_path(p);
  return normalize_path(cwd + "/" + p);
}

// Option values that are paths: the mount daemon chdir()s to '/', so they must be absolute.
bool is_path_option(std::string_view key) {
  return key == "token_file" || key == "cache_dir" || key == "ca_bundle" || key == "log_file";
}

// Incumbent flags accepted for compatibility that have no effect here, with the reason.
struct NoOpFlag {
  const char* name;  // with underscores
  bool takes_value;
  const char* why;
};
constexpr std::array kNoOpFlags{
    NoOpFlag{"fuse", false, "FUSE is the only backend"},
    NoOpFlag{"advanced_writes", false, "bucket writes are always staged locally and committed on close/fsync"},
    NoOpFlag{"direct_io", false, "reads use the page cache, invalidated when the remote changes"},
    NoOpFlag{"fuse_owner_only", false, "only the mounting user has access unless allow_other is given"},
    NoOpFlag{"no_filter_os_files", false, "there is no OS junk-file filter to disable"},
    NoOpFlag{"cache_mode", true, "the cache always stores deduplicated Xet chunks"},
    NoOpFlag{"poll_listing_concurrency", true, "directory refreshes are scheduled automatically"},
    NoOpFlag{"max_staging_size", true, "staged files are removed once committed"},
    NoOpFlag{"read_fetch_timeout_ms", true, "HTTP timeouts and retries are built in"},
    NoOpFlag{"flush_debounce_ms", true, "files are committed on close/fsync"},
    NoOpFlag{"flush_max_batch_window_ms", true, "files are committed on close/fsync"},
    NoOpFlag{"flush_shutdown_timeout_ms", true, "unmount waits for pending commits"},
    NoOpFlag{"inode_soft_limit", true, "inodes are released when the kernel forgets them"},
    NoOpFlag{"lru_sweep_interval_ms", true, "the cache evicts on its own schedule"},
};

// This project's own options that take a value (as --name VALUE or --name=VALUE).
bool own_valued(std::string_view k) {
  static const char* names[] = {"revision", "endpoint", "token_file", "hf_token", "uid", "gid", "umask",
                                "metadata_ttl", "poll_interval", "cache_dir", "cache_size", "memory_cache",
                                "max_threads", "read_ahead_kb", "log_level", "ca_bundle", "log_file",
                                // incumbent spellings
                                "hub_endpoint", "poll_interval_secs", "metadata_ttl_ms"};
  return std::find(std::begin(names), std::end(names), k) != std::end(names);
}

Result<std::vector<std::string>> split_option_list(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      cur.push_back(list[++i]);
    } else if (c == ',') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

Result<std::string> ms_to_seconds(std::string_view flag, std::string_view v) {
  auto ms = parse_u64(v);
  if (!ms || *ms > 1000ull * 86400 * 365) {
    return Error(Errc::invalid_argument, fmt::format("--{}: '{}' is not a number of milliseconds", flag, v));
  }
  if (*ms % 1000 == 0) return std::to_string(*ms / 1000);
  return fmt::format("{}.{:03}", *ms / 1000, *ms % 1000);
}

}  // namespace

std::string join_mount_options(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& it : items) {
    if (!out.empty()) out.push_back(',');
    for (char c : it) {
      if (c == ',' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string> StartPlan::fuse_args() const {
  std::vector<std::string> a{source, mountpoint};
  if (!options.empty()) {
    a.push_back("-o");
    a.push_back(join_mount_options(options));
  }
  if (debug) a.push_back("-d");
  else if (foreground) a.push_back("-f");
  return a;
}

Result<StartPlan> plan_start(const std::vector<std::string>& args, const std::string& cwd) {
  StartPlan plan;
  std::vector<std::string> positional;
  auto add_option = [&](std::string item) -> Status {
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    if (key == "hf_token") {
      if (eq == std::string::npos || eq + 1 == item.size()) return Error(Errc::invalid_argument, "hf_token needs a value");
      plan.hf_token = Secret(item.substr(eq + 1));
      return {};
    }
    if (key == "log_file" && eq != std::string::npos) {
      plan.log_file = absolute(item.substr(eq + 1), cwd);
      return {};
    }
    if (is_path_option(key) && eq != std::string::npos) item = key + "=" + absolute(item.substr(eq + 1), cwd);
    plan.options.push_back(std::move(item));
    return {};
  };

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o") {
      if (i + 1 >= args.size()) return Error(Errc::invalid_argument, "-o needs an option list");
      HF_ASSIGN_OR_RETURN(auto items, split_option_list(args[++i]));
      for (auto& it : items) HF_TRY(add_option(std::move(it)));
      continue;
    }
    if (a.size() > 2 && a.compare(0, 2, "-o") == 0) {
      HF_ASSIGN_OR_RETURN(auto items, split_option_list(std::string_view(a).substr(2)));
      for (auto& it : items) HF_TRY(add_option(std::move(it)));
      continue;
    }
    if (a == "-f") { plan.foreground = true; continue; }
    if (a == "-d") { plan.debug = plan.foreground = true; continue; }
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a.substr(2);
      std::string value;
      bool has_value = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_value = true;
      }
      std::replace(name.begin(), name.end(), '-', '_');
      auto take_value = [&]() -> Status {
        if (has_value) return {};
        if (i + 1 >= args.size()) return Error(Errc::invalid_argument, fmt::format("{} needs a value", a));
        value = args[++i];
        has_value = true;
        return {};
      };
      auto no_value = [&]() -> Status {
        if (has_value) return Error(Errc::invalid_argument, fmt::format("--{} takes no value", name));
        return {};
      };

      if (name == "foreground") { HF_TRY(no_value()); plan.foreground = true; continue; }
      if (name == "debug") { HF_TRY(no_value()); plan.debug = plan.foreground = true; continue; }
      if (name == "overlay") {
        return Error(Errc::unsupported, "--overlay (a local writable layer over a repo) is not supported by this hf-mount");
      }
      if (auto it = std::find_if(kNoOpFlags.begin(), kNoOpFlags.end(), [&](const NoOpFlag& f) { return name == f.name; });
          it != kNoOpFlags.end()) {
        if (it->takes_value) HF_TRY(take_value());
        else HF_TRY(no_value());
        std::string shown = name;
        std::replace(shown.begin(), shown.end(), '_', '-');
        plan.notes.push_back(fmt::format("--{} has no effect here ({}); ignored", shown, it->why));
        continue;
      }
      if (name == "hf_token") {
        HF_TRY(take_value());
        if (value.empty()) return Error(Errc::invalid_argument, "--hf-token needs a value");
        plan.hf_token = Secret(value);
        continue;
      }
      if (name == "read_only") { HF_TRY(no_value()); plan.options.push_back("ro"); continue; }
      if (name == "allow_other") { HF_TRY(no_value()); plan.options.push_back("allow_other"); continue; }
      if (name == "no_disk_cache") { HF_TRY(no_value()); plan.options.push_back("cache_size=0"); continue; }
      if (name == "metadata_ttl_minimal") { HF_TRY(no_value()); plan.options.push_back("metadata_ttl=0"); continue; }
      if (name == "metadata_ttl_ms") {
        HF_TRY(take_value());
        HF_ASSIGN_OR_RETURN(auto secs, ms_to_seconds("metadata-ttl-ms", value));
        plan.options.push_back("metadata_ttl=" + secs);
        continue;
      }
      if (name == "hub_endpoint") name = "endpoint";
      if (name == "poll_interval_secs") name = "poll_interval";
      if (own_valued(name)) {
        HF_TRY(take_value());
        HF_TRY(add_option(name + "=" + value));
        continue;
      }
      // Any other --name[=value] is one of hf-mount-fuse's -o options (validated below).
      HF_TRY(add_option(has_value ? name + "=" + value : name));
      continue;
    }
    if (!a.empty() && a[0] == '-' && a != "-") {
      return Error(Errc::invalid_argument, fmt::format("unknown flag '{}' (see hf-mount start --help)", a));
    }
    positional.push_back(a);
  }

  // [repo|bucket] SOURCE MOUNTPOINT
  std::string kind;
  if (!positional.empty() && (positional[0] == "repo" || positional[0] == "bucket")) {
    kind = positional[0];
    positional.erase(positional.begin());
  }
  if (positional.size() != 2) {
    return Error(Errc::invalid_argument, positional.size() < 2 ? "expected SOURCE and MOUNTPOINT"
                                                               : "too many arguments: expected [repo|bucket] SOURCE MOUNTPOINT");
  }
  std::string src = positional[0];
  std::string bare = src.compare(0, 5, "hf://") == 0 ? src.substr(5) : src;
  bool is_bucket_form = bare.compare(0, 8, "buckets/") == 0;
  if (kind == "bucket") {
    plan.source = "hf://" + (is_bucket_form ? bare : "buckets/" + bare);
  } else if (kind == "repo") {
    if (is_bucket_form) return Error(Errc::invalid_argument, fmt::format("'{}' is a bucket: use 'start bucket'", src));
    plan.source = "hf://" + bare;
  } else {
    plan.source = "hf://" + bare;
  }
  plan.mountpoint = absolute(positional[1], cwd);

  // Validate everything now with the mount's own parser: a typo fails here with the same
  // message the mount would give, before anything is started.
  auto check = fs::parse_mount_args(plan.fuse_args(), false);
  if (!check.ok()) return std::move(check).error();
  return plan;
}

std::string start_usage() {
  return R"(usage: hf-mount start [repo|bucket] SOURCE MOUNTPOINT [FLAGS] [-o OPT[,OPT...]]

Mounts SOURCE on MOUNTPOINT in the background and returns once the mount is usable (exit 0),
or fails with one line and a documented exit code. Logs go to a per-mount log file.

SOURCE
  repo  [datasets/|spaces/]OWNER/NAME[/SUBFOLDER]   (the incumbent hf-mount's form)
  bucket OWNER/NAME[/PREFIX]
  hf://[datasets/|spaces/|buckets/]OWNER/NAME[@REVISION][/SUBFOLDER]

FLAGS
  --hf-token TOKEN            Hub token (passed to the mount through its environment)
  --token-file PATH           file holding the token (re-read on rotation)
  --revision REV              branch, tag, commit sha or refs/pr/N (default: main)
  --hub-endpoint URL          Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)
  --read-only                 mount read-only (repositories always are)
  --cache-dir PATH            cache directory
  --cache-size BYTES          disk cache bound (suffixes K, M, G, T accepted)
  --no-disk-cache             memory cache only
  --poll-interval-secs N      check for remote changes every N s (0 = never)
  --metadata-ttl-ms N         kernel metadata cache lifetime for moving branches
  --metadata-ttl-minimal      revalidate metadata on every lookup
  --uid N, --gid N            owner reported for every entry
  --max-threads N             FUSE worker threads
  --allow-other               let other users access the mount
  --log-file PATH             log file (default: /var/log/hf-mount/<mountpoint>.log for root,
                              ${XDG_STATE_HOME:-~/.local/state}/hf-mount/logs/<mountpoint>.log)
  --log-level LEVEL           error, warn, info, debug, trace
  -f, --foreground            stay in the foreground, logging to stderr
  -d, --debug                 foreground with FUSE request tracing
  --OPTION[=VALUE], -o OPTS   any hf-mount-fuse option (see hf-mount-fuse --help)
Accepted for compatibility, without effect here (a one-line note is printed):
  --fuse, --advanced-writes, --direct-io, --fuse-owner-only, --no-filter-os-files,
  --cache-mode M, --poll-listing-concurrency N, --max-staging-size N,
  --read-fetch-timeout-ms N, --flush-debounce-ms N, --flush-max-batch-window-ms N,
  --flush-shutdown-timeout-ms N, --inode-soft-limit N, --lru-sweep-interval-ms N
Not supported: --overlay.
)";
}

}  // namespace hf::cmd
