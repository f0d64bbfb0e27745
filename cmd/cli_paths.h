// Where `hf-mount` keeps per-mount files. Pure functions of their inputs (environment lookups
// are injected) so the layout has unit tests.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

namespace hf::cmd {

using GetEnv = std::function<const char*(const char*)>;

// Filename-safe, injective key of a mount point: '%' -> "%25", '/' -> "%2F" (the incumbent
// hf-mount's scheme), e.g. "/mnt/a b" -> "%2Fmnt%2Fa b".
std::string mount_key(std::string_view mountpoint);

// Directory of per-mount log files: /var/log/hf-mount for root, else
// ${XDG_STATE_HOME:-<home>/.local/state}/hf-mount/logs, <home> = $HOME or the passwd entry.
std::string log_dir(uid_t euid, const GetEnv& getenv, const std::string& passwd_home);
// <log_dir>/<mount_key(mountpoint)>.log
std::string default_log_file(const std::string& mountpoint, uid_t euid, const GetEnv& getenv,
                             const std::string& passwd_home);

// The home directory of `uid` from the passwd database ("/" if unknown).
std::string passwd_home(uid_t uid);

}  // namespace hf::cmd
