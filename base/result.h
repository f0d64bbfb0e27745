// Error values that cross module boundaries.
//
// Every fallible function that is called from another module returns Result<T> (or
// Result<void>). Exceptions never cross a module boundary, a thread, or a C callback.
// Errc names a cause, not an errno: the mapping to errno lives in exactly one place
// (fs/fuse/errno.cc), and the mapping to process exit codes in cmd/exit_codes.h.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hf {

enum class Errc {
  // Filesystem-shaped causes.
  not_found = 1,       // no such entry / object
  exists,              // already exists
  not_dir,             // a path component is not a directory
  is_dir,              // operation needs a file, got a directory
  not_empty,           // directory not empty
  invalid_argument,    // malformed input from the caller (options, paths, offsets)
  read_only,           // write on a read-only view
  permission_denied,   // local permission check failed
  not_permitted,       // operation forbidden by policy (e.g. rename across mounts)
  no_space,            // disk / quota full (local or remote 413/507)
  name_too_long,
  bad_handle,          // unknown or stale file handle
  no_data,             // e.g. missing xattr
  out_of_range,        // e.g. read past EOF where that is an error, or a buffer too small
  unsupported,         // feature not implemented or not applicable
  busy,
  again,               // transient, caller may retry (e.g. rate limited)
  too_large,           // object exceeds a protocol or configured limit
  cancelled,           // the caller cancelled (FUSE INTERRUPT, shutdown)
  timed_out,           // a deadline expired
  io,                  // generic local or remote I/O failure

  // Network / protocol causes (mapped to EIO/EACCES/... at the FUSE boundary).
  network,             // could not connect / connection reset / DNS failure
  tls,                 // TLS handshake or certificate verification failure
  protocol,            // the peer violated the protocol (bad HTTP, bad JSON, bad chunk)
  corrupt,             // data failed an integrity check (hash / checksum mismatch)
  http_status,         // an unexpected HTTP status (message carries it)
  unauthorized,        // 401
  forbidden,           // 403 (token lacks scope, disabled repo)
  gated,               // gated repo, access not granted
  repo_not_found,
  revision_not_found,
  entry_not_found,     // path missing in an existing repo/revision
  rate_limited,        // 429 after retries
  server_error,        // 5xx after retries
  offline,             // configured or detected offline mode

  internal,            // a bug: an invariant failed in a recoverable place
};

// Stable lower-case name of an Errc ("not_found", ...), for logs and JSON.
std::string_view errc_name(Errc c);

struct Error {
  Errc code = Errc::internal;
  std::string message;  // one line, human readable, never contains credentials

  Error() = default;
  Error(Errc c, std::string msg) : code(c), message(std::move(msg)) {}

  // "not_found: <message>"
  std::string describe() const;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(v_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(v_)); }
  Errc code() const { return ok() ? Errc{} : error().code; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { assert(!ok_); return err_; }
  Error&& error() && { assert(!ok_); return std::move(err_); }
  Errc code() const { return ok_ ? Errc{} : err_.code; }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Error make_error(Errc c, std::string msg) { return Error(c, std::move(msg)); }

}  // namespace hf

// Propagate an error from an expression returning Result<...>; evaluates to nothing.
#define HF_TRY(expr)                                   \
  do {                                                 \
    auto&& hf_try_r_ = (expr);                         \
    if (!hf_try_r_.ok()) return std::move(hf_try_r_).error(); \
  } while (0)

// The same inside a coroutine (co_return).
#define HF_CO_TRY(expr)                                   \
  do {                                                    \
    auto&& hf_try_r_ = (expr);                            \
    if (!hf_try_r_.ok()) co_return std::move(hf_try_r_).error(); \
  } while (0)

// Assign the value of a Result to `lhs`, or return its error.
#define HF_CONCAT_INNER_(a, b) a##b
#define HF_CONCAT_(a, b) HF_CONCAT_INNER_(a, b)
#define HF_ASSIGN_OR_RETURN(lhs, expr) \
  HF_ASSIGN_OR_RETURN_IMPL_(HF_CONCAT_(hf_aor_, __LINE__), lhs, expr)
#define HF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).error();   \
  lhs = std::move(tmp).value()
