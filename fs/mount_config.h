// Command line and mount options of hf-mount-fuse / mount.fuse.hfmount, parsed into one
// MountConfig. Pure (no libfuse, no I/O) so every option has a unit test.
//
// Accepted forms:
//   hf-mount-fuse [-f] [-d] [-o opt[,opt...]] [--opt[=value]] SOURCE MOUNTPOINT
//   mount.fuse.hfmount SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o opts]   (helper mode: as
//     mount(8)/libmount call it; -f means "fake": validate and exit without mounting)
// SOURCE: hf://[models/|datasets/|spaces/|buckets/]OWNER/NAME[@REVISION][/SUBFOLDER], or the
// same without "hf://". A legacy one-segment model id ("gpt2") is accepted for repos.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/secret.h"

namespace hf::fs {

enum class SourceKind { model, dataset, space, bucket };
std::string_view source_kind_name(SourceKind k);  // "model", ...

struct Source {
  SourceKind kind = SourceKind::model;
  std::string repo_id;                 // "owner/name" (or legacy "name")
  std::string subfolder;               // "" or "a/b" (no leading/trailing '/')
  std::optional<std::string> revision; // from "@rev"
  // hf://[datasets/|spaces/|buckets/]owner/name[/subfolder] (no revision; models unprefixed)
  std::string canonical() const;
};

Result<Source> parse_source(std::string_view s);
// Revision syntax check (branch, tag, 40-hex sha, refs/pr/N, refs/convert/X): allow-list
// [A-Za-z0-9._/-], non-empty, no "..", no leading '/', at most 256 bytes.
Status validate_revision(std::string_view rev);

struct MountConfig {
  Source source;
  std::string mountpoint;
  std::string revision = "main";  // repos only
  std::string endpoint;           // empty: $HF_ENDPOINT, else https://huggingface.co
  Secret token;                   // hf_token= (discouraged: visible to other local users)
  std::string token_file;
  std::optional<uint32_t> uid, gid;
  uint32_t umask = 0022;
  bool allow_other = false;
  bool default_permissions = true;
  bool read_only = false;             // forced for repos
  double metadata_ttl = 60;           // seconds; branch views (pinned shas never expire)
  unsigned poll_interval = 30;        // seconds, 0 = off; never for pinned shas
  std::string cache_dir;              // empty: default location
  uint64_t cache_size = 10ull * 1000 * 1000 * 1000;
  // 128 MiB: streamed data is kept by the kernel page cache and the disk cache; this tier is
  // for random re-reads and concurrent readers. 512 MiB made a cold 2 GiB read 30-40% slower
  // (filling fresh memory: page faults, cold lines) than 128 MiB, measured on 2 vCPUs.
  uint64_t memory_cache = 128ull << 20;
  unsigned max_threads = 8;
  unsigned read_ahead_kb = 8192;      // applied when running as root
  std::string log_level = "info";
  std::string log_file;               // log_file=: append logs there (absolute path) instead of
                                      // stderr (foreground) or syslog (daemon)
  std::string ca_bundle;              // extra CA certificates (PEM file)
  bool insecure_tls = false;          // tests only: skip certificate verification
  bool offline = false;               // serve from the local cache only
  bool async_writeback = false;       // writeback=async: close() returns once data is durable locally
  bool foreground = false;
  bool debug = false;                 // -d: libfuse request tracing (implies foreground)
  bool dry_run = false;               // helper -f
  bool verbose = false;               // helper -v
  std::vector<std::string> kernel_opts;  // passed to the kernel as-is (noexec, noatime, ...)
  std::vector<std::string> ignored;      // fstab-only options that were accepted and dropped
};

// argv without the program name. `helper_mode` = invoked as mount.fuse.hfmount.
Result<MountConfig> parse_mount_args(const std::vector<std::string>& args, bool helper_mode);

// The -o list handed to libfuse: fsname, subtype, nosuid, nodev, ro, allow_other,
// default_permissions, kernel_opts. Never contains credentials.
std::vector<std::string> fuse_mount_options(const MountConfig& cfg);

std::string mount_usage(const std::string& prog);

}  // namespace hf::fs
