// Shared helpers for the hubsim unit tests: a running server, JSON access, and an independent
// reader of xet files (reconstruction -> presigned range fetches -> codec chunk decoding).
#pragma once

#include <simdjson.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/xet/hash.h"
#include "test/hubsim/server.h"
#include "test/unit/hubsim/test_client.h"

namespace hf::hubsim::test {

// A started server on 127.0.0.1:0 with a client bound to it.
struct Fixture {
  explicit Fixture(Options o = {});
  ~Fixture();
  // Starts the server (REQUIREs success) and creates the client.
  void start();
  std::unique_ptr<Server> srv;
  std::unique_ptr<TestClient> client;
  std::string base;
};

// Parses JSON; FAILs the test (via REQUIRE) on malformed input. The parser owns the document.
simdjson::dom::element parse_json_or_fail(simdjson::dom::parser& p, const std::string& s);

// JSON field access for assertions: "<missing>" / UINT64_MAX when absent or mistyped.
std::string str(simdjson::dom::element e, const char* key);
std::string str(simdjson::simdjson_result<simdjson::dom::element> e, const char* key);
uint64_t num(simdjson::dom::element e, const char* key);
uint64_t num(simdjson::simdjson_result<simdjson::dom::element> e, const char* key);

// Deterministic test bytes: data[i] = (a*i + b) & 0xff.
std::string affine_bytes(size_t n, unsigned a, unsigned b);
// Pseudo-random bytes (incompressible) from a seed (std::mt19937_64).
std::string random_bytes(size_t n, uint64_t seed);

// Reads a xet token: GET url, returns accessToken (REQUIREs success).
std::string fetch_token(const TestClient& c, const std::string& token_url, const Headers& h = {});

struct CasReadOptions {
  bool v1 = false;          // use /v1/reconstructions
  bool multirange = false;  // one multi-range request per v2 fetch entry (else one per range)
  std::optional<std::pair<uint64_t, uint64_t>> range;  // inclusive byte range of the file
};

// Reads a file through the CAS: reconstruction query, presigned range fetches, chunk decoding
// with the codec's ChunkRecordDecoder, term assembly. Errors are returned as Errc with text.
Result<std::string> read_via_cas(const TestClient& c, const std::string& cas_url, const std::string& token,
                                 const std::string& file_hash, const CasReadOptions& o = {});

// Splits a multipart/byteranges body into (start, bytes) parts. nullopt when malformed.
std::optional<std::vector<std::pair<uint64_t, std::string>>> parse_multipart(const std::string& body,
                                                                             const std::string& content_type);

// Serialized xorb (scheme None records) of the given chunks.
std::string none_xorb(const std::vector<std::string>& chunks);

}  // namespace hf::hubsim::test
