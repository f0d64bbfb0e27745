// Transport-independent request/response values exchanged between the network layer
// (server_net.cc, the only Beast user) and the route handlers.
//
// Handlers receive a fully read Request and return a Response whose body is a list of pieces of
// immutable byte sources; the network layer writes them (no copies of stored bytes) and applies
// latency, bandwidth and fault knobs. Not thread-safe objects; one per request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test/hubsim/body.h"

namespace hf::hubsim {

struct Request {
  std::string method;  // upper case: GET, HEAD, POST, PUT, DELETE...
  std::string target;  // raw request target (path + "?" + query), never decoded
  std::string_view path;   // view into target: raw path (still percent-encoded)
  std::string_view query;  // view into target: after '?', empty if none
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;  // peer address, for logs
  // Size of the body as received: handlers may move `body` out (uploads), stats still count it.
  uint64_t body_received = 0;

  // First value of a header (name must be lower case), empty if absent.
  std::string_view header(std::string_view lname) const {
    for (const auto& [k, v] : headers)
      if (k == lname) return v;
    return {};
  }
  bool has_header(std::string_view lname) const {
    for (const auto& [k, v] : headers)
      if (k == lname) return true;
    return false;
  }
  bool is_head() const { return method == "HEAD"; }

  // Splits target into path and query views (call after setting target).
  void split_target() {
    size_t q = target.find('?');
    std::string_view t(target);
    if (q == std::string::npos) {
      path = t;
      query = {};
    } else {
      path = t.substr(0, q);
      query = t.substr(q + 1);
    }
  }
};

// What kind of fault the network layer applies to a response (decided per request).
enum class FaultKind { none, status500, status503, status429, reset, stall, truncate, corrupt };

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<BodyPiece> body;
  // HEAD responses: the Content-Length to advertise (defaults to the body size).
  std::optional<uint64_t> content_length;
  // Statistics / fault-injection category (see Knobs route names): "tree", "resolve", "xorb"...
  std::string route = "other";
  // True for byte-serving routes (bridges, presigned xorb ranges): first-byte latency applies.
  bool is_data = false;
  // Body offsets whose byte may be flipped without breaking framing (chunk payload bytes); the
  // "corrupt" fault flips the first one. Empty: the middle of the body is used.
  std::vector<uint64_t> corrupt_offsets;

  uint64_t body_size() const {
    uint64_t n = 0;
    for (const auto& p : body) n += p.length;
    return n;
  }
  void set_header(std::string name, std::string value) {
    for (auto& [k, v] : headers) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    headers.emplace_back(std::move(name), std::move(value));
  }
  void add_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }
  void set_body(std::string bytes, std::string content_type) {
    uint64_t n = bytes.size();
    body.clear();
    if (n > 0) body.push_back(BodyPiece{make_memory_source(std::move(bytes)), 0, n});
    set_header("Content-Type", std::move(content_type));
  }
  void add_body(SourcePtr src, uint64_t offset, uint64_t length) {
    if (length > 0) body.push_back(BodyPiece{std::move(src), offset, length});
  }
};

}  // namespace hf::hubsim
