// Process exit codes of hf-mount-fuse / mount.fuse.hfmount / hf-mount, documented in the man
// pages. mount(8) and systemd pass them through unchanged.
#pragma once

#include <string_view>

#include "base/result.h"

namespace hf::cmd {

enum class ExitCode : int {
  ok = 0,
  usage = 1,         // bad command line or mount option
  auth = 2,          // missing/invalid token, no access, gated repository
  not_found = 3,     // repository, revision or subfolder does not exist
  network = 4,       // Hub/CAS unreachable, TLS failure, timeouts, server errors
  mountpoint = 5,    // mount point missing, not a directory, busy, or FUSE unavailable
  cache = 6,         // cache directory or database unusable
  failure = 32,      // any other mount failure (mount(8)'s "mount failure")
};

inline std::string_view exit_code_name(ExitCode c) {
  switch (c) {
    case ExitCode::ok: return "ok";
    case ExitCode::usage: return "usage";
    case ExitCode::auth: return "auth";
    case ExitCode::not_found: return "not-found";
    case ExitCode::network: return "network";
    case ExitCode::mountpoint: return "mountpoint";
    case ExitCode::cache: return "cache";
    case ExitCode::failure: return "failure";
  }
  return "failure";
}

inline ExitCode exit_code_for(Errc c) {
  switch (c) {
    case Errc::invalid_argument:
      return ExitCode::usage;
    case Errc::unauthorized:
    case Errc::forbidden:
    case Errc::gated:
    case Errc::permission_denied:
      return ExitCode::auth;
    case Errc::repo_not_found:
    case Errc::revision_not_found:
    case Errc::entry_not_found:
    case Errc::not_found:
      return ExitCode::not_found;
    case Errc::network:
    case Errc::tls:
    case Errc::timed_out:
    case Errc::server_error:
    case Errc::rate_limited:
    case Errc::protocol:
    case Errc::http_status:
    case Errc::offline:
      return ExitCode::network;
    default:
      return ExitCode::failure;
  }
}

}  // namespace hf::cmd
