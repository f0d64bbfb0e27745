#include "base/result.h"

namespace hf {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::not_found: return "not_found";
    case Errc::exists: return "exists";
    case Errc::not_dir: return "not_dir";
    case Errc::is_dir: return "is_dir";
    case Errc::not_empty: return "not_empty";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::read_only: return "read_only";
    case Errc::permission_denied: return "permission_denied";
    case Errc::not_permitted: return "not_permitted";
    case Errc::no_space: return "no_space";
    case Errc::name_too_long: return "name_too_long";
    case Errc::bad_handle: return "bad_handle";
    case Errc::no_data: return "no_data";
    case Errc::out_of_range: return "out_of_range";
    case Errc::unsupported: return "unsupported";
    case Errc::busy: return "busy";
    case Errc::again: return "again";
    case Errc::too_large: return "too_large";
    case Errc::cancelled: return "cancelled";
    case Errc::timed_out: return "timed_out";
    case Errc::io: return "io";
    case Errc::network: return "network";
    case Errc::tls: return "tls";
    case Errc::protocol: return "protocol";
    case Errc::corrupt: return "corrupt";
    case Errc::http_status: return "http_status";
    case Errc::unauthorized: return "unauthorized";
    case Errc::forbidden: return "forbidden";
    case Errc::gated: return "gated";
    case Errc::repo_not_found: return "repo_not_found";
    case Errc::revision_not_found: return "revision_not_found";
    case Errc::entry_not_found: return "entry_not_found";
    case Errc::rate_limited: return "rate_limited";
    case Errc::server_error: return "server_error";
    case Errc::offline: return "offline";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

std::string Error::describe() const {
  std::string s(errc_name(code));
  s += ": ";
  s += message;
  return s;
}

}  // namespace hf
