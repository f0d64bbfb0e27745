#include "base/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "base/text.h"

namespace hf {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::update(const void* data, size_t n) { EVP_DigestUpdate(impl_->ctx, data, n); }

Sha256Digest Sha256::finish() {
  Sha256Digest d{};
  unsigned len = 0;
  EVP_DigestFinal_ex(impl_->ctx, d.data(), &len);
  return d;
}

Sha256Digest sha256(const void* data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.finish();
}

std::string sha256_hex(const void* data, size_t n) {
  auto d = sha256(data, n);
  return hex_encode(d.data(), d.size());
}

}  // namespace hf
