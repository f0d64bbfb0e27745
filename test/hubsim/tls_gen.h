// Throwaway TLS material for tests: a CA (ca.pem) and a server certificate (cert.pem,
// key.pem) for 127.0.0.1, ::1 and localhost, signed by that CA. ECDSA P-256, valid 10 years.
#pragma once

#include <string>

#include "base/result.h"

namespace hf::hubsim {

// Writes DIR/ca.pem, DIR/cert.pem and DIR/key.pem (creating DIR). Errc::io / Errc::tls.
Status generate_test_tls(const std::string& dir);

}  // namespace hf::hubsim
