// Resolves the user's Hub token.
//
// Order: explicit value, `token_file` option, $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN,
// $HF_TOKEN_PATH, $HF_HOME/token, ${XDG_CACHE_HOME:-<home>/.cache}/huggingface/token (home from
// getpwuid(geteuid()) when $HOME is unset), and /etc/hf-mount/token when running as root.
// HF_HUB_DISABLE_IMPLICIT_TOKEN (truthy) keeps only the explicit value and the token_file
// option. A file holds one token line; "\r", "\n" and surrounding whitespace are stripped.
//
// Token files are re-read at most every 30 s (credential rotation). A file readable or
// writable by group/others, executable, or owned by neither the user nor root is refused the
// way s3fs refuses its password file: the explicit token_file option fails with
// Errc::permission_denied, an implicit candidate is skipped with a warning (logged once).
//
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/secret.h"

namespace hf::hub {

struct TokenProviderOptions {
  Secret token;            // explicit value (e.g. -o hf_token=); empty = none
  std::string token_file;  // -o token_file=PATH
  // Injection points for tests.
  std::function<const char*(const char*)> getenv;  // default ::getenv
  std::function<int64_t()> now_ns;                 // default monotonic clock
  std::optional<uid_t> euid;                       // default geteuid()
  std::string system_token_file = "/etc/hf-mount/token";
  std::chrono::seconds reread_interval{30};
};

class TokenProvider {
 public:
  explicit TokenProvider(TokenProviderOptions o = {});

  // The token to send (empty Secret = anonymous), or an error for an unusable explicit file.
  Result<Secret> token();
  // Where the current token comes from ("HF_TOKEN", a file path, "explicit", "none").
  std::string source();

 private:
  struct Candidate {
    std::string where;       // env var name or file path
    bool is_file = false;
    bool is_explicit = false;
  };
  Result<Secret> resolve_locked();
  Result<std::optional<std::string>> read_file_locked(const std::string& path, bool is_explicit);
  const char* env(const char* name) const;

  TokenProviderOptions o_;
  std::mutex mu_;
  std::optional<Result<Secret>> cached_;
  std::string source_ = "none";
  int64_t read_at_ns_ = 0;
  std::vector<std::string> warned_;
};

}  // namespace hf::hub
