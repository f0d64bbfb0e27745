// A small synchronous HTTP/HTTPS client for the hubsim tests (Boost.Beast, one connection
// per request, no redirects followed unless asked). Not the project's net/http client: the
// tests of the emulator must not depend on the code the emulator is used to test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::hubsim::test {

struct HttpResponse {
  int status = 0;      // 0 = transport failure (see error)
  std::string error;   // transport error text
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool body_complete = true;  // false when the connection ended before Content-Length bytes

  std::string header(std::string_view lname) const;
  bool has_header(std::string_view lname) const;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ParsedUrl {
  std::string scheme, host, port, target;  // target = path + query
};
// "http://h:p/x?y" -> parts. Returns false for anything else.
bool parse_url(std::string_view url, ParsedUrl& out);

class TestClient {
 public:
  // base: "http://127.0.0.1:1234" (or https). ca_file: PEM CA for https (verified with host
  // name checking); empty = no verification.
  explicit TestClient(std::string base, std::string ca_file = "");

  // `url` is absolute ("http://...") or a target relative to the base ("/api/...").
  HttpResponse request(std::string_view method, std::string_view url, std::string_view body = {},
                       const Headers& headers = {}, int timeout_ms = 30000) const;
  HttpResponse get(std::string_view url, const Headers& headers = {}) const { return request("GET", url, {}, headers); }
  HttpResponse head(std::string_view url, const Headers& headers = {}) const { return request("HEAD", url, {}, headers); }
  HttpResponse post(std::string_view url, std::string_view body, const Headers& headers = {}) const {
    return request("POST", url, body, headers);
  }
  // GET following redirects (relative and absolute), like curl -L; drops Authorization when
  // the host changes.
  HttpResponse get_follow(std::string_view url, const Headers& headers = {}, int max_redirects = 5) const;

  const std::string& base() const { return base_; }

 private:
  std::string base_;
  std::string ca_file_;
};

// Lower-case hex SHA-256 of bytes.
std::string sha256_of(std::string_view data);

}  // namespace hf::hubsim::test
