#include "net/hub/token.h"

#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/clock.h"
#include "base/log.h"
#include "base/text.h"

namespace hf::hub {
namespace {

bool truthy(const char* v) {
  if (!v) return false;
  std::string s = to_lower(trim(v));
  return s == "1" || s == "on" || s == "yes" || s == "true";
}

std::string clean_token(std::string_view raw) {
  std::string s;
  for (char c : raw) {
    if (c != '\r' && c != '\n') s.push_back(c);
  }
  return std::string(trim(s));
}

}  // namespace

TokenProvider::TokenProvider(TokenProviderOptions o) : o_(std::move(o)) {
  if (!o_.getenv) o_.getenv = [](const char* n) -> const char* { return std::getenv(n); };
  if (!o_.now_ns) o_.now_ns = [] { return mono_ns(); };
  if (!o_.euid) o_.euid = geteuid();
}

const char* TokenProvider::env(const char* name) const {
  const char* v = o_.getenv(name);
  return (v && *v) ? v : nullptr;
}

Result<std::optional<std::string>> TokenProvider::read_file_locked(const std::string& path, bool is_explicit) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !is_explicit) return std::optional<std::string>();
    return make_error(is_explicit ? Errc::not_found : Errc::io,
                      fmt::format("cannot read token file {}: {}", path, std::strerror(errno)));
  }
  std::string problem;
  if (!S_ISREG(st.st_mode)) problem = "is not a regular file";
  else if (st.st_mode & (S_IRWXG | S_IRWXO)) problem = "should not have group or others permissions (chmod 600)";
  else if (st.st_mode & S_IXUSR) problem = "should not be executable (chmod 600)";
  else if (st.st_uid != *o_.euid && st.st_uid != 0) problem = "is owned by another user";
  if (!problem.empty()) {
    std::string msg = fmt::format("token file {} {}", path, problem);
    if (is_explicit) return make_error(Errc::permission_denied, msg);
    if (std::find(warned_.begin(), warned_.end(), path) == warned_.end()) {
      warned_.push_back(path);
      HF_LOG_WARN("hub", "{}; ignoring it", msg);
    }
    return std::optional<std::string>();
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(Errc::io, fmt::format("cannot open token file {}", path));
  std::string data(4096, '\0');
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(f.gcount()));
  // Only the first line is the token.
  std::string_view first(data);
  if (auto nl = first.find('\n'); nl != std::string_view::npos) first = first.substr(0, nl);
  return std::optional<std::string>(clean_token(first));
}

Result<Secret> TokenProvider::resolve_locked() {
  if (!clean_token(o_.token.reveal()).empty()) {
    source_ = "explicit";
    return Secret(clean_token(o_.token.reveal()));
  }
  if (!o_.token_file.empty()) {
    HF_ASSIGN_OR_RETURN(auto t, read_file_locked(o_.token_file, true));
    source_ = o_.token_file;
    return Secret(t.value_or(""));
  }
  if (truthy(env("HF_HUB_DISABLE_IMPLICIT_TOKEN"))) {
    source_ = "none (HF_HUB_DISABLE_IMPLICIT_TOKEN)";
    return Secret();
  }
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    if (const char* v = env(name)) {
      std::string t = clean_token(v);
      if (!t.empty()) {
        source_ = name;
        return Secret(t);
      }
    }
  }
  std::vector<std::string> files;
  if (const char* p = env("HF_TOKEN_PATH")) files.emplace_back(p);
  if (const char* h = env("HF_HOME")) files.push_back(std::string(h) + "/token");
  std::string cache;
  if (const char* x = env("XDG_CACHE_HOME")) {
    cache = x;
  } else {
    std::string home;
    if (const char* h = env("HOME")) {
      home = h;
    } else if (const passwd* pw = getpwuid(*o_.euid); pw && pw->pw_dir) {
      home = pw->pw_dir;
    }
    if (!home.empty()) cache = home + "/.cache";
  }
  if (!cache.empty()) files.push_back(cache + "/huggingface/token");
  if (*o_.euid == 0 && !o_.system_token_file.empty()) files.push_back(o_.system_token_file);
  for (const auto& f : files) {
    auto r = read_file_locked(f, false);
    if (!r) {
      HF_LOG_WARN("hub", "{}", r.error().message);
      continue;
    }
    if (*r && !(*r)->empty()) {
      source_ = f;
      return Secret(std::move(**r));
    }
  }
  source_ = "none";
  return Secret();
}

Result<Secret> TokenProvider::token() {
  std::lock_guard lk(mu_);
  int64_t now = o_.now_ns();
  int64_t interval = std::chrono::duration_cast<std::chrono::nanoseconds>(o_.reread_interval).count();
  if (!cached_ || now - read_at_ns_ >= interval) {
    cached_ = resolve_locked();
    read_at_ns_ = now;
  }
  return *cached_;
}

std::string TokenProvider::source() {
  (void)token();
  std::lock_guard lk(mu_);
  return source_;
}

}  // namespace hf::hub
