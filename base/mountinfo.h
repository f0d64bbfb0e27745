// /proc/self/mountinfo parsing: which hfmount mounts exist, who owns them, which mount a path
// lives in (the hf-mount front-end), and whether our own mount is still there (the FUSE session,
// by device number). Pure parsing (no I/O) except read_mountinfo(). Thread-safe (no state).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace hf {

inline constexpr std::string_view kFsType = "fuse.hfmount";

struct MountEntry {
  uint64_t id = 0, parent = 0;
  unsigned dev_major = 0, dev_minor = 0;  // st_dev of files in this mount
  std::string mountpoint;  // unescaped
  std::string fstype;      // "fuse.hfmount", "ext4", ...
  std::string source;      // unescaped (our fsname: the canonical hf:// source)
  std::string mount_options, super_options;
  std::optional<uid_t> user_id;  // FUSE: the uid that mounted (super option user_id=)
  bool is_hfmount() const { return fstype == kFsType; }
};

// Decodes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
std::string unescape_mountinfo(std::string_view s);

// Parses a whole mountinfo text; lines that do not parse are skipped (the kernel's format is
// stable, but a truncated read must not abort `status`). Order is preserved (mount order).
std::vector<MountEntry> parse_mountinfo(std::string_view text);

// Reads /proc/self/mountinfo. Errors: io.
Result<std::vector<MountEntry>> read_mountinfo();

// The hfmount entries only, in mount order.
std::vector<MountEntry> hfmount_entries(const std::vector<MountEntry>& all);

// The topmost mount whose mount point is `path` exactly (overmounts hide earlier ones).
const MountEntry* mount_at(const std::vector<MountEntry>& all, std::string_view path);

// The topmost mount containing the absolute, canonical `path`: the longest mount point that is
// `path` itself or a '/'-prefix of it, the latest one when several mounts share that point.
const MountEntry* mount_containing(const std::vector<MountEntry>& all, std::string_view path);

// Lexical normalization of an absolute path ("//a/./b/../c/" -> "/a/c"); used where realpath()
// fails, e.g. on a dead FUSE mount ("Transport endpoint is not connected").
std::string normalize_path(std::string_view abs_path);

}  // namespace hf
