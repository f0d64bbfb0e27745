// The control channel between a running mount and the `hf-mount` front-end.
//
// A mount listens on a unix stream socket reachable only by its owner (directory 0700, socket
// 0600, and the peer's uid checked with SO_PEERCRED: the owner or root). The protocol is
// newline-delimited JSON, one request per connection:
//   -> {"op":"status"}
//   <- {"ok":true,"status":{...}}                       (see MountStatus below)
//   -> {"op":"warm","paths":["a/b.safetensors","dir"]}   (paths relative to the mount root)
//   <- {"progress":{"done_bytes":N,"total_bytes":M,"files_done":F,"files_total":G}}   (repeated)
//   <- {"ok":true} or {"ok":false,"error":"<one line>","errc":"<name>"}
//   -> {"op":"flush"}                                    (commit every dirty file; buckets)
//   <- {"ok":true} | {"ok":false,...}
// Unknown ops get {"ok":false,"error":"unknown op"}. Requests are limited to 1 MiB.
//
// Socket path: control_socket_path(mountpoint). The mount process owns the socket file and
// removes it on clean exit; a stale socket (connection refused) is replaced at the next mount.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/remote.h"

namespace hf::fs {

// What `hf-mount status` shows. Plain data; serialized by the control server.
struct MountStatus {
  std::string source, mountpoint, revision, commit, endpoint, cache_dir;
  bool read_only = true, pinned = false, offline = false;
  int64_t pid = 0;
  int64_t started_at_ns = 0;
  // Traffic and cache.
  uint64_t bytes_fetched = 0;     // from the network (xorb ranges + plain downloads)
  uint64_t bytes_served = 0;      // returned to readers
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t cache_disk_hits = 0;   // of cache_hits, chunks read back from the disk tier
  uint64_t cache_disk_bytes = 0, cache_memory_bytes = 0;
  // Runs not written to the disk cache because its writer fell behind (their bytes were served
  // from memory and will be fetched again after a remount).
  uint64_t cache_writes_dropped = 0;
  uint64_t http_requests = 0, http_in_flight = 0, http_errors = 0, http_retries = 0;
  uint64_t read_errors = 0;
  // Writes (buckets).
  uint64_t dirty_files = 0, commits = 0, commit_failures = 0, uploaded_bytes = 0;
  // Memory of the daemon: resident set; malloc heap in use and held free (address space: with
  // the daemon's malloc top pad most of the free part is not resident); the metadata
  // database's share.
  uint64_t rss_bytes = 0, heap_in_use_bytes = 0, heap_free_bytes = 0, db_memory_bytes = 0;
};

// Implemented by the mount (fs::Mount); called on the io executor by the control server.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  virtual MountStatus status() = 0;
  // Fetches every file under `paths` into the cache. `progress` may be called often.
  using Progress = std::function<void(uint64_t done_bytes, uint64_t total_bytes, uint64_t files_done,
                                      uint64_t files_total)>;
  virtual Task<Status> warm(std::vector<std::string> paths, Progress progress) = 0;
  virtual Task<Status> flush() = 0;
};

// <dir>/<first 16 hex of sha256(mountpoint)>.sock, <dir> = /run/hf-mount for root, else
// /run/user/<uid>/hf-mount when that runtime directory exists (found without the environment,
// which mount helpers do not get), else /tmp/hf-mount-<uid> (created 0700, owner checked).
// Implemented in fs/control_server.cc (also control_socket_candidates() for clients).
std::string control_socket_path(const std::string& mountpoint);

}  // namespace hf::fs
