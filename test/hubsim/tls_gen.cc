#include "test/hubsim/tls_gen.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace hf::hubsim {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

X509Ptr make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca) {
  X509Ptr x(X509_new());
  if (!x) return nullptr;
  X509_set_version(x.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 10L * 365 * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("hf-mount-hubsim"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* iss = issuer ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(iss));
  bool ok = true;
  if (ca) {
    ok = ok && add_ext(x.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    ok = ok && add_ext(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    ok = ok && add_ext(x.get(), iss, NID_subject_key_identifier, "hash");
  } else {
    ok = ok && add_ext(x.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    ok = ok && add_ext(x.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    ok = ok && add_ext(x.get(), iss, NID_ext_key_usage, "serverAuth");
    ok = ok && add_ext(x.get(), iss, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost");
    ok = ok && add_ext(x.get(), iss, NID_authority_key_identifier, "keyid");
  }
  if (!ok || X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0) return nullptr;
  return x;
}

bool write_pem(const std::filesystem::path& p, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) return false;
  bool ok = cert ? PEM_write_X509(f, cert) == 1
                 : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  ok = std::fclose(f) == 0 && ok;
  if (key) ::chmod(p.c_str(), 0600);
  return ok;
}

}  // namespace

Status generate_test_tls(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(Errc::io, "cannot create " + dir + ": " + ec.message());
  PkeyPtr ca_key(EVP_EC_gen("P-256"));
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!ca_key || !key) return make_error(Errc::tls, "EC key generation failed");
  X509Ptr ca = make_cert(ca_key.get(), "hf-mount-hubsim test CA", nullptr, nullptr, true);
  if (!ca) return make_error(Errc::tls, "CA certificate creation failed");
  X509Ptr cert = make_cert(key.get(), "localhost", ca.get(), ca_key.get(), false);
  if (!cert) return make_error(Errc::tls, "server certificate creation failed");
  std::filesystem::path d(dir);
  if (!write_pem(d / "ca.pem", ca.get(), nullptr) || !write_pem(d / "cert.pem", cert.get(), nullptr) ||
      !write_pem(d / "key.pem", nullptr, key.get()))
    return make_error(Errc::io, "cannot write PEM files in " + dir);
  return {};
}

}  // namespace hf::hubsim
