// Fuzz harness bodies for the filesystem's parsers of untrusted input: mount options (command
// line, fstab, the mount helper), cached listing pages read back from the metadata store, and
// control-channel requests. Shared by the libFuzzer targets (test/fuzz/fuzz_*.cc) and the
// corpus replay unit test (test/unit/fs/fs_fuzz_corpus_test.cc). Each returns false when an
// invariant is violated; malformed input must simply yield an error value.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/control_protocol.h"
#include "fs/meta_store.h"
#include "fs/mount_config.h"

namespace hf::fs_fuzz {

// Mount options. Byte 0 picks helper mode (mount.fuse.hfmount) and whether a secret token is
// appended; the rest is split on NUL into argv. Errors are usage errors (invalid_argument);
// a parsed config re-parses from its canonical source; the kernel option list never carries
// a token or option separators that could smuggle options in.
inline bool mount_args(const uint8_t* data, size_t size) {
  if (size < 1) return true;
  const bool helper = data[0] & 1;
  std::vector<std::string> args;
  std::string cur;
  for (size_t i = 1; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  args.push_back(cur);
  if (data[0] & 2) {
    args.push_back("-o");
    args.push_back("hf_token=hf_fuzzsecret");
  }
  auto r = fs::parse_mount_args(args, helper);
  if (!r.ok()) return r.code() == Errc::invalid_argument;
  const fs::MountConfig& c = *r;
  auto opts = fs::fuse_mount_options(c);
  // The appended token must not leak (unless the input itself spells it out, e.g. in SOURCE).
  const bool secret_in_input =
      std::string_view(reinterpret_cast<const char*>(data), size).find("hf_fuzzsecret") != std::string_view::npos;
  for (const auto& o : opts) {
    if ((!secret_in_input && o.find("hf_fuzzsecret") != std::string::npos) || o.rfind("hf_token=", 0) == 0) return false;
    if (o == "suid" || o == "dev") return false;
    // Only fsname carries user text; it escapes ',' so the source cannot smuggle options in.
    if (o.rfind("fsname=", 0) == 0) {
      for (size_t i = 0; i < o.size(); ++i) {
        if (o[i] == '\\') ++i;
        else if (o[i] == ',') return false;
      }
    }
  }
  bool nosuid = false, nodev = false;
  for (const auto& o : opts) {
    nosuid |= o == "nosuid";
    nodev |= o == "nodev";
  }
  if (!nosuid || !nodev) return false;
  if (c.allow_other != (std::find(opts.begin(), opts.end(), "allow_other") != opts.end())) return false;
  // The canonical source parses back to the same repository and subfolder.
  auto again = fs::parse_source(c.source.canonical());
  if (!again.ok()) return false;
  if (again->kind != c.source.kind || again->repo_id != c.source.repo_id || again->subfolder != c.source.subfolder) {
    return false;
  }
  if (c.mountpoint.empty()) return false;
  if (!fs::validate_revision(c.revision).ok() && c.source.kind != fs::SourceKind::bucket) return false;
  return true;
}

// Listing pages from the metadata store (a damaged cache): only Errc::corrupt, never an
// invalid name, and re-encoding what was decoded decodes to the same entries.
inline bool meta_entries(const uint8_t* data, size_t size) {
  std::string_view v(reinterpret_cast<const char*>(data), size);
  auto r = fs::MetaStore::decode_entries(v);
  if (!r.ok()) return r.code() == Errc::corrupt;
  for (const auto& e : *r) {
    if (!fs::valid_entry_name(e.name)) return false;
    if (e.symlink_target.size() > 4095) return true;  // encode truncates: no round trip to check
  }
  std::string enc = fs::MetaStore::encode_entries(r->data(), r->size());
  auto back = fs::MetaStore::decode_entries(enc);
  if (!back.ok() || back->size() != r->size()) return false;
  for (size_t i = 0; i < r->size(); ++i) {
    const auto &a = (*r)[i], &b = (*back)[i];
    if (a.name != b.name || a.kind != b.kind || a.size != b.size || a.mtime_ns != b.mtime_ns ||
        a.content.source != b.content.source || a.content.id != b.content.id || a.content.etag != b.content.etag ||
        a.symlink_target != b.symlink_target) {
      return false;
    }
  }
  return true;
}

// Control requests: only the documented error codes; warm paths are normalized (no "..",
// no empty or "." segments, no NUL, no leading or trailing '/') and normalizing is idempotent.
inline bool control_request(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto r = fs::parse_control_request(line);
  if (!r.ok()) {
    Errc c = r.code();
    return c == Errc::invalid_argument || c == Errc::too_large || c == Errc::internal;
  }
  if (r->op == "warm" && r->paths.empty()) return false;
  for (const auto& p : r->paths) {
    if (p.find('\0') != std::string::npos || p.find("//") != std::string::npos) return false;
    if (!p.empty() && (p.front() == '/' || p.back() == '/')) return false;
    std::string_view rest(p);
    while (!rest.empty()) {
      size_t s = rest.find('/');
      std::string_view seg = rest.substr(0, s);
      if (seg == ".." || seg == "." || seg.empty()) return false;
      if (s == std::string_view::npos) break;
      rest = rest.substr(s + 1);
    }
    auto again = fs::normalize_request_path(p);
    if (!again.ok() || *again != p) return false;
  }
  return true;
}

}  // namespace hf::fs_fuzz
