#include "test/hubsim/signer.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/text.h"

namespace hf::hubsim {

std::string hmac_sha256_hex(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &n);
  return hex_encode(out, n);
}

static bool const_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Signer::Signer() {
  unsigned char buf[32];
  if (RAND_bytes(buf, sizeof buf) != 1) {
    for (size_t i = 0; i < sizeof buf; ++i) buf[i] = static_cast<unsigned char>(i * 37 + 11);
  }
  secret_.assign(reinterpret_cast<const char*>(buf), sizeof buf);
}

std::string Signer::make_token(TokenScope scope, int64_t exp_unix) const {
  char s = scope == TokenScope::write ? 'w' : 'r';
  std::string body = fmt::format("xet_{}_{}", s, exp_unix);
  return body + "_" + hmac_sha256_hex(secret_, "token\n" + body).substr(0, 32);
}

std::optional<TokenScope> Signer::check_token(std::string_view token, int64_t now_unix) const {
  // xet_{s}_{exp}_{sig32}
  if (token.size() < 8 || !token.starts_with("xet_") || token[5] != '_') return std::nullopt;
  char s = token[4];
  if (s != 'r' && s != 'w') return std::nullopt;
  size_t us = token.rfind('_');
  if (us <= 6) return std::nullopt;
  auto exp = parse_i64(token.substr(6, us - 6));
  if (!exp) return std::nullopt;
  std::string_view body = token.substr(0, us);
  std::string want = hmac_sha256_hex(secret_, "token\n" + std::string(body)).substr(0, 32);
  if (!const_time_equal(want, token.substr(us + 1))) return std::nullopt;
  if (*exp <= now_unix) return std::nullopt;
  return s == 'w' ? TokenScope::write : TokenScope::read;
}

static std::string ranges_text(const std::vector<ByteRange>& ranges) {
  std::string s = "bytes=";
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i) s += ',';
    s += fmt::format("{}-{}", ranges[i].start, ranges[i].end);
  }
  return s;
}

std::string Signer::sign_xorb_query(std::string_view hash, const std::vector<ByteRange>& ranges,
                                    int64_t exp_unix) const {
  std::string rt = ranges_text(ranges);
  std::string sig = hmac_sha256_hex(secret_, fmt::format("xorb\n{}\n{}\n{}", hash, rt, exp_unix));
  // "bytes%3D0-99,200-299": '=' encoded, ',' kept literal (both forms decode the same).
  std::string enc;
  for (char c : rt) enc += c == '=' ? std::string("%3D") : std::string(1, c);
  return fmt::format("X-Xet-Signed-Range={}&Expires={}&Signature={}", enc, exp_unix, sig);
}

std::optional<std::vector<ByteRange>> parse_closed_ranges(std::string_view spec) {
  if (!spec.starts_with("bytes=")) return std::nullopt;
  spec.remove_prefix(6);
  std::vector<ByteRange> out;
  for (auto part : split(spec, ',')) {
    if (out.size() >= 4096) return std::nullopt;
    part = trim(part);
    size_t dash = part.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto s = parse_u64(part.substr(0, dash));
    auto e = parse_u64(part.substr(dash + 1));
    if (!s || !e || *e < *s) return std::nullopt;
    out.push_back(ByteRange{*s, *e});
  }
  if (out.empty()) return std::nullopt;
  return out;
}

Signer::UrlCheck Signer::check_xorb_query(std::string_view hash, std::string_view query, int64_t now_unix,
                                          std::vector<ByteRange>& ranges) const {
  auto q = parse_query(query);
  if (!q.ok()) return UrlCheck::malformed;
  std::string range_text, expires, signature;
  for (auto& [k, v] : q.value()) {
    if (k == "X-Xet-Signed-Range") range_text = v;
    else if (k == "Expires") expires = v;
    else if (k == "Signature") signature = v;
  }
  if (range_text.empty() || expires.empty() || signature.empty()) return UrlCheck::malformed;
  auto exp = parse_i64(expires);
  auto parsed = parse_closed_ranges(range_text);
  if (!exp || !parsed) return UrlCheck::malformed;
  std::string want = hmac_sha256_hex(secret_, fmt::format("xorb\n{}\n{}\n{}", hash, range_text, *exp));
  if (!const_time_equal(want, signature)) return UrlCheck::bad_signature;
  if (*exp <= now_unix) return UrlCheck::expired;
  ranges = std::move(*parsed);
  return UrlCheck::ok;
}

}  // namespace hf::hubsim
