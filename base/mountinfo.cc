#include "base/mountinfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/text.h"

namespace hf {

std::string unescape_mountinfo(std::string_view s) {
  auto oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      if (v <= 255) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

namespace {

std::optional<MountEntry> parse_line(std::string_view line) {
  // id parent maj:min root mountpoint options [optional...] - fstype source super_options
  std::vector<std::string_view> f;
  for (std::string_view tok : split(line, ' ')) {
    if (!tok.empty()) f.push_back(tok);
  }
  size_t dash = 0;
  for (size_t i = 6; i < f.size(); ++i) {
    if (f[i] == "-") {
      dash = i;
      break;
    }
  }
  if (dash == 0 || dash + 2 >= f.size()) return std::nullopt;
  MountEntry e;
  auto id = parse_u64(f[0]);
  auto parent = parse_u64(f[1]);
  if (!id || !parent) return std::nullopt;
  e.id = *id;
  e.parent = *parent;
  const size_t colon = f[2].find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto maj = parse_u64(f[2].substr(0, colon));
  auto min = parse_u64(f[2].substr(colon + 1));
  if (!maj || !min || *maj > 0xFFFFFFFFull || *min > 0xFFFFFFFFull) return std::nullopt;
  e.dev_major = static_cast<unsigned>(*maj);
  e.dev_minor = static_cast<unsigned>(*min);
  e.mountpoint = unescape_mountinfo(f[4]);
  e.mount_options = std::string(f[5]);
  e.fstype = unescape_mountinfo(f[dash + 1]);
  e.source = unescape_mountinfo(f[dash + 2]);
  if (dash + 3 < f.size()) e.super_options = std::string(f[dash + 3]);
  for (std::string_view o : split(e.super_options, ',')) {
    if (o.substr(0, 8) == "user_id=") {
      if (auto u = parse_u64(o.substr(8)); u && *u <= 0xFFFFFFFEull) e.user_id = static_cast<uid_t>(*u);
    }
  }
  return e;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> out;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    if (auto e = parse_line(line)) out.push_back(std::move(*e));
  }
  return out;
}

Result<std::vector<MountEntry>> read_mountinfo() {
  int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(Errc::io, fmt::format("cannot read /proc/self/mountinfo: {}", std::strerror(errno)));
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Error(Errc::io, fmt::format("cannot read /proc/self/mountinfo: {}", std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (64u << 20)) break;  // absurdly many mounts: use what we have
  }
  ::close(fd);
  return parse_mountinfo(text);
}

std::vector<MountEntry> hfmount_entries(const std::vector<MountEntry>& all) {
  std::vector<MountEntry> out;
  for (const auto& e : all) {
    if (e.is_hfmount()) out.push_back(e);
  }
  return out;
}

const MountEntry* mount_at(const std::vector<MountEntry>& all, std::string_view path) {
  const MountEntry* best = nullptr;
  for (const auto& e : all) {
    if (e.mountpoint == path) best = &e;
  }
  return best;
}

const MountEntry* mount_containing(const std::vector<MountEntry>& all, std::string_view path) {
  const MountEntry* best = nullptr;
  for (const auto& e : all) {
    std::string_view mp = e.mountpoint;
    bool inside = path == mp || mp == "/" ||
                  (path.size() > mp.size() && path.substr(0, mp.size()) == mp && path[mp.size()] == '/');
    if (!inside) continue;
    if (!best || mp.size() >= best->mountpoint.size()) best = &e;
  }
  return best;
}

std::string normalize_path(std::string_view abs_path) {
  std::vector<std::string_view> parts;
  for (std::string_view seg : split(abs_path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(seg);
  }
  std::string out;
  for (auto p : parts) {
    out.push_back('/');
    out.append(p);
  }
  return out.empty() ? "/" : out;
}

}  // namespace hf
