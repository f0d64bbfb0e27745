// Server-side secrets: CAS access tokens and presigned xorb URLs, both HMAC-SHA256 signed with
// one per-server secret (persisted in --data-dir so URLs and tokens survive restarts).
//
// Thread-safety: immutable after construction (set_secret() only before serving).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::hubsim {

// HMAC-SHA256(key, msg) as lowercase hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view msg);

enum class TokenScope { read, write };

struct ByteRange {  // inclusive [start, end], as HTTP ranges
  uint64_t start = 0;
  uint64_t end = 0;
};

class Signer {
 public:
  Signer();  // random secret
  void set_secret(std::string secret) { secret_ = std::move(secret); }
  const std::string& secret() const { return secret_; }

  // "xet_{r|w}_{exp}_{sig}": a stateless CAS token.
  std::string make_token(TokenScope scope, int64_t exp_unix) const;
  // Scope of a valid, unexpired token; nullopt otherwise.
  std::optional<TokenScope> check_token(std::string_view token, int64_t now_unix) const;

  // "X-Xet-Signed-Range=bytes%3D{s}-{e},...&Expires={exp}&Signature={hex}" for xorb `hash`.
  std::string sign_xorb_query(std::string_view hash, const std::vector<ByteRange>& ranges, int64_t exp_unix) const;

  enum class UrlCheck { ok, bad_signature, expired, malformed };
  // Verifies a presigned query string; fills the signed ranges.
  UrlCheck check_xorb_query(std::string_view hash, std::string_view query, int64_t now_unix,
                            std::vector<ByteRange>& ranges) const;

 private:
  std::string secret_;
};

// Parses "bytes=a-b,c-d" (only closed ranges) as used in X-Xet-Signed-Range. Bounded: at most
// 4096 ranges.
std::optional<std::vector<ByteRange>> parse_closed_ranges(std::string_view spec);

}  // namespace hf::hubsim
