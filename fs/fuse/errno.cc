#include <cerrno>

#include "fs/fuse/context.h"

namespace hf::fs::fuse {

int to_errno(Errc c) {
  switch (c) {
    case Errc::not_found:
    case Errc::entry_not_found:
      return ENOENT;
    case Errc::exists: return EEXIST;
    case Errc::not_dir: return ENOTDIR;
    case Errc::is_dir: return EISDIR;
    case Errc::not_empty: return ENOTEMPTY;
    case Errc::invalid_argument: return EINVAL;
    case Errc::read_only: return EROFS;
    case Errc::permission_denied:
    case Errc::unauthorized:
    case Errc::forbidden:
    case Errc::gated:
      return EACCES;
    case Errc::not_permitted: return EPERM;
    case Errc::no_space: return ENOSPC;
    case Errc::name_too_long: return ENAMETOOLONG;
    case Errc::bad_handle: return EBADF;
    case Errc::no_data: return ENODATA;
    case Errc::out_of_range: return ERANGE;
    case Errc::unsupported: return EOPNOTSUPP;
    case Errc::busy: return EBUSY;
    case Errc::again: return EAGAIN;
    case Errc::too_large: return EFBIG;
    case Errc::cancelled: return EINTR;
    // Everything the network or the remote data can do wrong surfaces as an I/O error on the
    // affected operation only; the mount itself stays up.
    case Errc::timed_out:
    case Errc::io:
    case Errc::network:
    case Errc::tls:
    case Errc::protocol:
    case Errc::corrupt:
    case Errc::http_status:
    case Errc::repo_not_found:
    case Errc::revision_not_found:
    case Errc::rate_limited:
    case Errc::server_error:
    case Errc::offline:
    case Errc::internal:
      return EIO;
  }
  return EIO;
}

void reply_error(fuse_req_t req, const Error& err, const char* op) {
  int e = to_errno(err.code);
  switch (err.code) {
    case Errc::not_found:
    case Errc::entry_not_found:
    case Errc::no_data:
    case Errc::cancelled:
    case Errc::read_only:
    case Errc::not_dir:
    case Errc::is_dir:
    case Errc::exists:
    case Errc::not_empty:
    case Errc::out_of_range:
    case Errc::name_too_long:
      HF_LOG_DEBUG("fuse", "{}: {}", op, err.describe());  // ordinary outcomes, not faults
      break;
    default:
      ctx(req).errors.fetch_add(1, std::memory_order_relaxed);
      HF_LOG_WARN("fuse", "{} failed ({}): {}", op, strerrorname_np(e) ? strerrorname_np(e) : "E?", err.describe());
  }
  fuse_reply_err(req, e);
}

}  // namespace hf::fs::fuse
