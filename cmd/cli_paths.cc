#include "cmd/cli_paths.h"

#include <pwd.h>

#include <vector>

namespace hf::cmd {

std::string mount_key(std::string_view mp) {
  std::string out;
  out.reserve(mp.size() + 8);
  for (char c : mp) {
    if (c == '%') out += "%25";
    else if (c == '/') out += "%2F";
    else out.push_back(c);
  }
  return out;
}

std::string log_dir(uid_t euid, const GetEnv& getenv, const std::string& pw_home) {
  if (euid == 0) return "/var/log/hf-mount";
  if (const char* s = getenv("XDG_STATE_HOME"); s && *s == '/') return std::string(s) + "/hf-mount/logs";
  std::string home;
  if (const char* h = getenv("HOME"); h && *h == '/') home = h;
  else home = pw_home;
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  if (home == "/") home.clear();
  return home + "/.local/state/hf-mount/logs";
}

std::string default_log_file(const std::string& mountpoint, uid_t euid, const GetEnv& getenv,
                             const std::string& pw_home) {
  return log_dir(euid, getenv, pw_home) + "/" + mount_key(mountpoint) + ".log";
}

std::string passwd_home(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* res = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res && res->pw_dir && *res->pw_dir) return res->pw_dir;
  return "/";
}

}  // namespace hf::cmd
