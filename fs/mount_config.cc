#include "fs/mount_config.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>

#include "base/text.h"

namespace hf::fs {

std::string_view source_kind_name(SourceKind k) {
  switch (k) {
    case SourceKind::model: return "model";
    case SourceKind::dataset: return "dataset";
    case SourceKind::space: return "space";
    case SourceKind::bucket: return "bucket";
  }
  return "model";
}

std::string Source::canonical() const {
  std::string s = "hf://";
  switch (kind) {
    case SourceKind::model: break;
    case SourceKind::dataset: s += "datasets/"; break;
    case SourceKind::space: s += "spaces/"; break;
    case SourceKind::bucket: s += "buckets/"; break;
  }
  s += repo_id;
  if (!subfolder.empty()) s += "/" + subfolder;
  return s;
}

Status validate_revision(std::string_view rev) {
  if (rev.empty()) return Error(Errc::invalid_argument, "empty revision");
  if (rev.size() > 256) return Error(Errc::invalid_argument, "revision longer than 256 bytes");
  if (rev.front() == '/' || rev.back() == '/') return Error(Errc::invalid_argument, "revision cannot start or end with '/'");
  if (rev.find("..") != std::string_view::npos) return Error(Errc::invalid_argument, "revision cannot contain '..'");
  for (char c : rev) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' || c == '-')) {
      return Error(Errc::invalid_argument, fmt::format("revision '{}' contains a character outside [A-Za-z0-9._/-]", rev));
    }
  }
  return {};
}

static bool valid_repo_component(std::string_view s) {
  if (s.empty() || s.size() > 96 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

Result<Source> parse_source(std::string_view s) {
  Source src;
  std::string_view rest = s;
  if (rest.substr(0, 5) == "hf://") rest.remove_prefix(5);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto parts = split(rest, '/');
  size_t i = 0;
  if (parts.size() > 1) {
    if (parts[0] == "datasets") { src.kind = SourceKind::dataset; i = 1; }
    else if (parts[0] == "spaces") { src.kind = SourceKind::space; i = 1; }
    else if (parts[0] == "buckets") { src.kind = SourceKind::bucket; i = 1; }
    else if (parts[0] == "models") { src.kind = SourceKind::model; i = 1; }
  }
  if (i >= parts.size() || parts[i].empty()) {
    return Error(Errc::invalid_argument, fmt::format("source '{}': expected [hf://][datasets/|spaces/|buckets/]OWNER/NAME", s));
  }
  // OWNER/NAME, where NAME may carry "@revision" (a revision may itself contain '/', as in
  // refs/pr/1: it then swallows the following segments that belong to it).
  std::string owner(parts[i]);
  std::string name;
  size_t next;
  auto take_name = [&](std::string_view seg, size_t idx) -> Status {
    size_t at = seg.find('@');
    if (at == std::string_view::npos) {
      name = std::string(seg);
      next = idx + 1;
      return {};
    }
    name = std::string(seg.substr(0, at));
    std::string rev(seg.substr(at + 1));
    next = idx + 1;
    if (rev == "refs" && idx + 2 < parts.size()) {
      rev += "/" + std::string(parts[idx + 1]) + "/" + std::string(parts[idx + 2]);
      next = idx + 3;
    }
    HF_TRY(validate_revision(rev));
    src.revision = rev;
    return {};
  };
  bool one_segment = false;
  if (i + 1 < parts.size()) {
    HF_TRY(take_name(parts[i + 1], i + 1));
  } else {
    // Legacy one-segment model id ("gpt2"), possibly with "@rev".
    one_segment = true;
    HF_TRY(take_name(parts[i], i));
    owner.clear();
  }
  if (one_segment) {
    if (src.kind != SourceKind::model || !valid_repo_component(name)) {
      return Error(Errc::invalid_argument, fmt::format("source '{}': expected OWNER/NAME", s));
    }
    src.repo_id = name;
  } else {
    if (!valid_repo_component(owner) || !valid_repo_component(name)) {
      return Error(Errc::invalid_argument, fmt::format("source '{}': invalid repository id '{}/{}'", s, owner, name));
    }
    src.repo_id = owner + "/" + name;
  }
  std::string sub;
  for (size_t k = next; k < parts.size(); ++k) {
    if (parts[k].empty()) continue;
    if (parts[k] == "." || parts[k] == "..") {
      return Error(Errc::invalid_argument, fmt::format("source '{}': '.' and '..' are not allowed in the subfolder", s));
    }
    if (!sub.empty()) sub.push_back('/');
    sub += parts[k];
  }
  src.subfolder = sub;
  return src;
}

namespace {

// fstab/mount(8) options that mean nothing to the driver. mount(8) passes some of them on to a
// type-specific helper, and libfuse rejects them ("unknown option"), so they are dropped here.
bool is_fstab_only(std::string_view o) {
  static const char* names[] = {"nofail", "_netdev", "auto", "noauto", "user", "nouser", "users", "owner",
                                "group", "defaults", "sync", "async"};
  for (const char* n : names) {
    if (o == n) return true;
  }
  return o.substr(0, 2) == "x-" || o.substr(0, 2) == "X-" || o.substr(0, 8) == "comment=";
}

// Options the kernel understands and that are safe to forward.
bool is_kernel_passthrough(std::string_view o) {
  static const char* names[] = {"noexec", "exec", "noatime", "atime", "relatime", "strictatime", "nodiratime",
                                "diratime", "dirsync", "lazytime", "nolazytime"};
  for (const char* n : names) {
    if (o == n) return true;
  }
  return false;
}

Result<double> parse_seconds(std::string_view key, std::string_view v) {
  char* end = nullptr;
  std::string s(v);
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0' || d < 0 || d > 1e9) {
    return Error(Errc::invalid_argument, fmt::format("option {}: '{}' is not a number of seconds", key, v));
  }
  return d;
}

Result<uint64_t> parse_uint(std::string_view key, std::string_view v, uint64_t max) {
  auto n = parse_u64(v);
  if (!n || *n > max) return Error(Errc::invalid_argument, fmt::format("option {}: '{}' is not a valid number", key, v));
  return *n;
}

Status apply_option(MountConfig& cfg, std::string_view opt) {
  if (opt.empty()) return {};
  size_t eq = opt.find('=');
  std::string_view key = opt.substr(0, eq);
  std::string_view val = eq == std::string_view::npos ? std::string_view{} : opt.substr(eq + 1);
  bool has_val = eq != std::string_view::npos;
  auto need = [&]() -> Status {
    if (!has_val || val.empty()) return Error(Errc::invalid_argument, fmt::format("option {} needs a value", key));
    return {};
  };
  auto flag = [&]() -> Status {
    if (has_val) return Error(Errc::invalid_argument, fmt::format("option {} takes no value", key));
    return {};
  };

  if (is_fstab_only(opt)) {
    cfg.ignored.emplace_back(opt);
    return {};
  }
  if (opt == "dev" || opt == "suid" || opt == "nodev" || opt == "nosuid") {
    cfg.ignored.emplace_back(opt);  // nosuid,nodev are always forced
    return {};
  }
  if (is_kernel_passthrough(opt)) {
    cfg.kernel_opts.emplace_back(opt);
    return {};
  }
  if (key == "ro") { HF_TRY(flag()); cfg.read_only = true; return {}; }
  if (key == "rw") { HF_TRY(flag()); cfg.read_only = false; return {}; }
  if (key == "allow_other") { HF_TRY(flag()); cfg.allow_other = true; return {}; }
  if (key == "default_permissions") { HF_TRY(flag()); cfg.default_permissions = true; return {}; }
  if (key == "no_default_permissions") { HF_TRY(flag()); cfg.default_permissions = false; return {}; }
  if (key == "offline") { HF_TRY(flag()); cfg.offline = true; return {}; }
  if (key == "insecure_tls") { HF_TRY(flag()); cfg.insecure_tls = true; return {}; }
  if (key == "revision") {
    HF_TRY(need());
    HF_TRY(validate_revision(val));
    cfg.revision = std::string(val);
    return {};
  }
  if (key == "endpoint") {
    HF_TRY(need());
    if (val.substr(0, 7) != "http://" && val.substr(0, 8) != "https://") {
      return Error(Errc::invalid_argument, fmt::format("option endpoint: '{}' is not an http(s) URL", val));
    }
    cfg.endpoint = std::string(val);
    while (!cfg.endpoint.empty() && cfg.endpoint.back() == '/') cfg.endpoint.pop_back();
    return {};
  }
  if (key == "writeback") {
    HF_TRY(need());
    if (val == "sync") {
      cfg.async_writeback = false;
    } else if (val == "async") {
      cfg.async_writeback = true;
    } else {
      return Error(Errc::invalid_argument, fmt::format("option writeback: '{}' (use sync or async)", val));
    }
    return {};
  }
  if (key == "token_file") { HF_TRY(need()); cfg.token_file = std::string(val); return {}; }
  if (key == "hf_token") { HF_TRY(need()); cfg.token = Secret(std::string(val)); return {}; }
  if (key == "ca_bundle") { HF_TRY(need()); cfg.ca_bundle = std::string(val); return {}; }
  if (key == "uid") { HF_TRY(need()); HF_ASSIGN_OR_RETURN(auto v, parse_uint(key, val, UINT32_MAX - 1)); cfg.uid = static_cast<uint32_t>(v); return {}; }
  if (key == "gid") { HF_TRY(need()); HF_ASSIGN_OR_RETURN(auto v, parse_uint(key, val, UINT32_MAX - 1)); cfg.gid = static_cast<uint32_t>(v); return {}; }
  if (key == "umask") {
    HF_TRY(need());
    uint32_t m = 0;
    if (val.size() > 4) return Error(Errc::invalid_argument, fmt::format("option umask: '{}' is not an octal mode", val));
    for (char c : val) {
      if (c < '0' || c > '7') return Error(Errc::invalid_argument, fmt::format("option umask: '{}' is not an octal mode", val));
      m = m * 8 + static_cast<uint32_t>(c - '0');
    }
    cfg.umask = m & 0777;
    return {};
  }
  if (key == "metadata_ttl") { HF_TRY(need()); HF_ASSIGN_OR_RETURN(cfg.metadata_ttl, parse_seconds(key, val)); return {}; }
  if (key == "poll_interval") { HF_TRY(need()); HF_ASSIGN_OR_RETURN(auto v, parse_uint(key, val, 86400 * 365)); cfg.poll_interval = static_cast<unsigned>(v); return {}; }
  if (key == "cache_dir") { HF_TRY(need()); cfg.cache_dir = std::string(val); return {}; }
  if (key == "cache_size" || key == "memory_cache") {
    HF_TRY(need());
    auto v = parse_size(val);
    if (!v) return Error(Errc::invalid_argument, fmt::format("option {}: '{}' is not a size (e.g. 10G, 512M)", key, val));
    (key == "cache_size" ? cfg.cache_size : cfg.memory_cache) = *v;
    return {};
  }
  if (key == "max_threads") {
    HF_TRY(need());
    HF_ASSIGN_OR_RETURN(auto v, parse_uint(key, val, 256));
    if (v == 0) return Error(Errc::invalid_argument, "option max_threads: must be at least 1");
    cfg.max_threads = static_cast<unsigned>(v);
    return {};
  }
  if (key == "read_ahead_kb") { HF_TRY(need()); HF_ASSIGN_OR_RETURN(auto v, parse_uint(key, val, 1u << 20)); cfg.read_ahead_kb = static_cast<unsigned>(v); return {}; }
  if (key == "log_level") {
    HF_TRY(need());
    std::string l = to_lower(val);
    if (l != "error" && l != "warn" && l != "info" && l != "debug" && l != "trace") {
      return Error(Errc::invalid_argument, fmt::format("option log_level: '{}' (use error, warn, info, debug, trace)", val));
    }
    cfg.log_level = l;
    return {};
  }
  if (key == "log_file") {
    HF_TRY(need());
    if (val[0] != '/') return Error(Errc::invalid_argument, fmt::format("option log_file: '{}' is not an absolute path", val));
    cfg.log_file = std::string(val);
    return {};
  }
  if (key == "fsname" || key == "subtype") {
    return Error(Errc::invalid_argument, fmt::format("option {} is set by hf-mount-fuse itself", key));
  }
  return Error(Errc::invalid_argument, fmt::format("unknown option '{}' (see --help)", key));
}

Status apply_option_list(MountConfig& cfg, std::string_view list) {
  // Comma-separated; a backslash escapes a comma inside a value (libfuse convention).
  std::string cur;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      cur.push_back(list[++i]);
    } else if (c == ',') {
      HF_TRY(apply_option(cfg, cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return apply_option(cfg, cur);
}

}  // namespace

Result<MountConfig> parse_mount_args(const std::vector<std::string>& args, bool helper_mode) {
  MountConfig cfg;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o") {
      if (i + 1 >= args.size()) return Error(Errc::invalid_argument, "-o needs an option list");
      HF_TRY(apply_option_list(cfg, args[++i]));
    } else if (a.size() > 2 && a.substr(0, 2) == "-o") {
      HF_TRY(apply_option_list(cfg, std::string_view(a).substr(2)));
    } else if (a == "-f") {
      if (helper_mode) cfg.dry_run = true; else cfg.foreground = true;
    } else if (a == "-d") {
      cfg.debug = true;
      cfg.foreground = true;
    } else if (helper_mode && (a == "-s" || a == "-n")) {
      // sloppy / no-mtab: nothing to do for a FUSE helper
    } else if (helper_mode && a == "-v") {
      cfg.verbose = true;
    } else if (helper_mode && a == "-t") {
      ++i;  // libmount never passes -t to a type-specific helper, but tolerate it
    } else if (a.size() > 2 && a.substr(0, 2) == "--") {
      // --key=value, --key value (if the next arg is not an option), or --flag.
      std::string opt = a.substr(2);
      for (char& c : opt) {
        if (c == '-') c = '_';
        if (c == '=') break;
      }
      if (opt.find('=') == std::string::npos && i + 1 < args.size() && !args[i + 1].empty() && args[i + 1][0] != '-') {
        static const char* valued[] = {"revision", "endpoint", "token_file", "hf_token", "uid", "gid", "umask", "writeback",
                                       "metadata_ttl", "poll_interval", "cache_dir", "cache_size", "memory_cache",
                                       "max_threads", "read_ahead_kb", "log_level", "ca_bundle", "log_file"};
        for (const char* v : valued) {
          if (opt == v) {
            opt += "=" + args[++i];
            break;
          }
        }
      }
      if (opt == "foreground") { cfg.foreground = true; continue; }
      if (opt == "debug") { cfg.debug = cfg.foreground = true; continue; }
      HF_TRY(apply_option(cfg, opt));
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return Error(Errc::invalid_argument, fmt::format("unknown flag '{}' (see --help)", a));
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    return Error(Errc::invalid_argument, positional.size() < 2 ? "expected SOURCE and MOUNTPOINT"
                                                               : "too many arguments: expected SOURCE MOUNTPOINT");
  }
  HF_ASSIGN_OR_RETURN(cfg.source, parse_source(positional[0]));
  if (positional[1].empty()) return Error(Errc::invalid_argument, "empty MOUNTPOINT");
  cfg.mountpoint = positional[1];
  if (cfg.source.revision) {
    if (cfg.revision != "main" && cfg.revision != *cfg.source.revision) {
      return Error(Errc::invalid_argument, "revision given twice (in SOURCE@rev and revision=) with different values");
    }
    cfg.revision = *cfg.source.revision;
  }
  if (cfg.source.kind == SourceKind::bucket) {
    if (cfg.source.revision) return Error(Errc::invalid_argument, "buckets have no revisions");
  } else {
    cfg.read_only = true;  // repositories are read-only views
  }
  return cfg;
}

std::vector<std::string> fuse_mount_options(const MountConfig& cfg) {
  auto escape = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == ',' || c == '\\') o.push_back('\\');
      o.push_back(c);
    }
    return o;
  };
  std::vector<std::string> o{"fsname=" + escape(cfg.source.canonical()), "subtype=hfmount", "nosuid", "nodev"};
  if (cfg.read_only) o.push_back("ro");
  if (cfg.allow_other) o.push_back("allow_other");
  if (cfg.default_permissions) o.push_back("default_permissions");
  for (auto& k : cfg.kernel_opts) o.push_back(k);
  return o;
}

std::string mount_usage(const std::string& prog) {
  return fmt::format(R"(usage: {0} [-f] [-d] [-o OPT[,OPT...]] [--OPT[=VALUE]] SOURCE MOUNTPOINT
       mount -t fuse.hfmount SOURCE MOUNTPOINT -o OPTS     (via mount.fuse.hfmount)

Mount a Hugging Face Hub repository (read-only) or Storage Bucket (read-write) as a directory.

SOURCE
  hf://OWNER/NAME[/SUBFOLDER]             model repository
  hf://datasets/OWNER/NAME[/SUBFOLDER]    dataset repository
  hf://spaces/OWNER/NAME[/SUBFOLDER]      Space repository
  hf://buckets/OWNER/NAME[/PREFIX]        Storage Bucket (read-write unless -o ro)
  OWNER/NAME@REVISION is a shorthand for revision=REVISION; "hf://" may be omitted.

FLAGS
  -f, --foreground      stay in the foreground (helper mode: dry run, do not mount)
  -d, --debug           trace every FUSE request (implies -f)
  -h, --help            this help          -V, --version   print the version
  -s, -n, -v            as mount.fuse.hfmount: sloppy and no-mtab (ignored), verbose

OPTIONS (as -o opt=value or --opt=value)
  revision=REV          branch, tag, commit sha or refs/pr/N (default: main)
  endpoint=URL          Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)
  token_file=PATH       file holding the Hub token (must not be readable by group/other)
  hf_token=TOKEN        token on the command line (visible to local users; prefer token_file)
  ca_bundle=PATH        extra CA certificates in PEM (also $HF_MOUNT_CA_BUNDLE)
  uid=N, gid=N          owner reported for every entry (default: the mounting user)
  umask=OOO             permission mask (default 022; repositories are read-only anyway)
  allow_other           let other users access the mount (non-root: user_allow_other in /etc/fuse.conf)
  default_permissions   kernel checks permissions from the modes (default on;
                        no_default_permissions turns it off)
  ro / rw               read-only / read-write (repositories are always read-only)
  metadata_ttl=SEC      how long the kernel caches entries of a moving branch (default 60;
                        pinned commit shas are cached forever)
  poll_interval=SEC     how often a branch/bucket is checked for changes (default 30, 0 = never)
  cache_dir=PATH        cache directory (default: ~/.cache/hf-mount, root: /var/cache/hf-mount)
  cache_size=SIZE       disk cache bound, e.g. 10G (default 10G; 0 disables the disk cache)
  memory_cache=SIZE     in-memory chunk cache (default 128M)
  max_threads=N         FUSE worker threads (default 8)
  read_ahead_kb=N       kernel readahead for the mount when root (default 8192, 0 = keep)
  log_level=LEVEL       error, warn, info (default), debug, trace
  log_file=PATH         append logs to PATH (absolute) instead of stderr (-f) or syslog
  offline               do not contact the Hub: serve what the cache holds
  writeback=MODE        buckets: sync (default: close/fsync return after the upload is
                        committed) or async (they return once the data is durable locally;
                        uploads continue in the background and resume after a crash)
  insecure_tls          do not verify TLS certificates (tests against local emulators only)
  noexec, noatime, ...  passed to the kernel
  nofail, _netdev, auto, noauto, user, users, x-*, comment=...
                        fstab options: accepted and ignored
Always set: fsname=<canonical source>, subtype=hfmount, nosuid, nodev.

ENVIRONMENT
  HF_ENDPOINT, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, HF_HOME, XDG_CACHE_HOME,
  HF_MOUNT_CA_BUNDLE, SSL_CERT_FILE, HTTPS_PROXY, HTTP_PROXY, NO_PROXY, HF_HUB_OFFLINE,
  NOTIFY_SOCKET (with -f: systemd Type=notify readiness),
  GLIBC_TUNABLES (if set, even empty, replaces the malloc tunables the daemon sets for itself)

EXIT STATUS (without -f, once the mount is usable or has failed)
  0 mounted, 1 usage or option error, 2 authentication (token, access, gated repository),
  3 repository, revision or folder not found, 4 network or server error, 5 mount point problem
  (missing, not a directory, busy, FUSE unavailable), 6 cache problem, 32 other failure
)",
                     prog);
}

}  // namespace hf::fs
