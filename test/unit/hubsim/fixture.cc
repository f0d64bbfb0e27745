#include "test/unit/hubsim/fixture.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <random>

#include "base/text.h"
#include "net/xet/reconstruction.h"
#include "net/xet/xorb.h"

namespace hf::hubsim::test {

Fixture::Fixture(Options o) {
  o.threads = o.threads ? o.threads : 2;
  srv = std::make_unique<Server>(std::move(o));
}

void Fixture::start() {
  auto st = srv->start();
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());
  base = srv->base_url();
  client = std::make_unique<TestClient>(base);
}

Fixture::~Fixture() {
  if (srv) srv->stop();
}

simdjson::dom::element parse_json_or_fail(simdjson::dom::parser& p, const std::string& s) {
  simdjson::dom::element doc;
  auto err = p.parse(s).get(doc);
  INFO("JSON: " << s.substr(0, 400));
  REQUIRE(!err);
  return doc;
}

std::string str(simdjson::dom::element e, const char* key) {
  std::string_view s;
  if (e[key].get_string().get(s)) return "<missing>";
  return std::string(s);
}

std::string str(simdjson::simdjson_result<simdjson::dom::element> e, const char* key) {
  simdjson::dom::element x;
  if (e.get(x)) return "<missing>";
  return str(x, key);
}

uint64_t num(simdjson::dom::element e, const char* key) {
  uint64_t v = 0;
  if (e[key].get_uint64().get(v)) return UINT64_MAX;
  return v;
}

uint64_t num(simdjson::simdjson_result<simdjson::dom::element> e, const char* key) {
  simdjson::dom::element x;
  if (e.get(x)) return UINT64_MAX;
  return num(x, key);
}

std::string affine_bytes(size_t n, unsigned a, unsigned b) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((a * i + b) & 0xff);
  return s;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

std::string fetch_token(const TestClient& c, const std::string& token_url, const Headers& h) {
  auto r = c.get(token_url, h);
  INFO(r.status << " " << r.body);
  REQUIRE(r.status == 200);
  simdjson::dom::parser p;
  auto doc = parse_json_or_fail(p, r.body);
  std::string_view tok;
  REQUIRE(!doc["accessToken"].get_string().get(tok));
  return std::string(tok);
}

std::optional<std::vector<std::pair<uint64_t, std::string>>> parse_multipart(const std::string& body,
                                                                             const std::string& content_type) {
  size_t bp = content_type.find("boundary=");
  if (bp == std::string::npos) return std::nullopt;
  std::string boundary = "--" + content_type.substr(bp + 9);
  std::vector<std::pair<uint64_t, std::string>> parts;
  size_t pos = body.find(boundary);
  while (pos != std::string::npos) {
    pos += boundary.size();
    if (body.compare(pos, 2, "--") == 0) return parts;
    if (body.compare(pos, 2, "\r\n") != 0) return std::nullopt;
    size_t hdr_end = body.find("\r\n\r\n", pos);
    if (hdr_end == std::string::npos) return std::nullopt;
    std::string hdrs = to_lower(body.substr(pos, hdr_end - pos));
    size_t cr = hdrs.find("content-range: bytes ");
    if (cr == std::string::npos) return std::nullopt;
    auto spec = hdrs.substr(cr + 21);
    size_t dash = spec.find('-'), slash = spec.find('/');
    auto s = parse_u64(spec.substr(0, dash));
    auto e = parse_u64(spec.substr(dash + 1, slash - dash - 1));
    if (!s || !e) return std::nullopt;
    size_t data = hdr_end + 4;
    size_t len = *e - *s + 1;
    if (data + len + 2 > body.size()) return std::nullopt;
    parts.emplace_back(*s, body.substr(data, len));
    pos = body.find(boundary, data + len);
  }
  return std::nullopt;
}

Result<std::string> read_via_cas(const TestClient& c, const std::string& cas_url, const std::string& token,
                                 const std::string& file_hash, const CasReadOptions& o) {
  Headers auth = {{"Authorization", "Bearer " + token}};
  Headers h = auth;
  if (o.range) h.emplace_back("Range", fmt::format("bytes={}-{}", o.range->first, o.range->second));
  auto r = c.get(fmt::format("{}/{}/reconstructions/{}", cas_url, o.v1 ? "v1" : "v2", file_hash), h);
  if (r.status != 200) return make_error(Errc::http_status, fmt::format("reconstruction: {} {}", r.status, r.body));
  auto parsed = o.v1 ? xet::parse_reconstruction_v1(r.body) : xet::parse_reconstruction_v2(r.body);
  if (!parsed.ok()) return parsed.error();
  const xet::Reconstruction& rec = parsed.value();
  // Decoded chunks by (xorb, index).
  std::map<std::pair<xet::Hash, uint32_t>, std::string> chunks;
  auto decode_range = [&](const xet::Hash& xorb, const xet::FetchRange& fr, const std::string& bytes) -> Status {
    if (bytes.size() != fr.bytes.end - fr.bytes.start + 1)
      return make_error(Errc::protocol, fmt::format("range length {} != {}", bytes.size(), fr.bytes.end - fr.bytes.start + 1));
    xet::ChunkRecordDecoder dec;
    HF_TRY(dec.feed({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                    [&](uint32_t ordinal, std::span<const uint8_t> raw, uint32_t) -> Status {
                      chunks[{xorb, fr.chunks.start + ordinal}] =
                          std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
                      return {};
                    }));
    HF_TRY(dec.finish());
    if (dec.chunks() != fr.chunks.end - fr.chunks.start)
      return make_error(Errc::protocol, "chunk count mismatch in fetched range");
    return {};
  };
  for (const auto& [xorb, fetches] : rec.fetches) {
    for (const auto& f : fetches) {
      if (o.multirange && f.ranges.size() > 1) {
        std::string spec = "bytes=";
        for (size_t i = 0; i < f.ranges.size(); ++i)
          spec += fmt::format("{}{}-{}", i ? "," : "", f.ranges[i].bytes.start, f.ranges[i].bytes.end);
        auto x = c.get(f.url, {{"Range", spec}});
        if (x.status != 206) return make_error(Errc::http_status, fmt::format("multirange fetch: {} {}", x.status, x.body));
        auto parts = parse_multipart(x.body, x.header("content-type"));
        if (!parts || parts->size() != f.ranges.size()) return make_error(Errc::protocol, "bad multipart body");
        for (size_t i = 0; i < f.ranges.size(); ++i) {
          if ((*parts)[i].first != f.ranges[i].bytes.start) return make_error(Errc::protocol, "multipart order");
          HF_TRY(decode_range(xorb, f.ranges[i], (*parts)[i].second));
        }
        continue;
      }
      for (const auto& fr : f.ranges) {
        auto x = c.get(f.url, {{"Range", fmt::format("bytes={}-{}", fr.bytes.start, fr.bytes.end)}});
        if (x.status != 206 && x.status != 200)
          return make_error(Errc::http_status, fmt::format("xorb fetch: {} {}", x.status, x.body));
        HF_TRY(decode_range(xorb, fr, x.body));
      }
    }
  }
  std::string out;
  for (size_t i = 0; i < rec.terms.size(); ++i) {
    const auto& t = rec.terms[i];
    std::string term;
    for (uint32_t k = t.range.start; k < t.range.end; ++k) {
      auto it = chunks.find({t.xorb, k});
      if (it == chunks.end()) return make_error(Errc::protocol, "term chunk was not fetched");
      term += it->second;
    }
    if (term.size() != t.unpacked_length) return make_error(Errc::corrupt, "term length != unpacked_length");
    if (i == 0) term.erase(0, rec.offset_into_first_range);
    out += term;
  }
  if (o.range) {
    uint64_t want = o.range->second - o.range->first + 1;
    if (out.size() > want) out.resize(want);
  }
  return out;
}

std::string none_xorb(const std::vector<std::string>& chunks) {
  std::string out;
  for (const auto& c : chunks) {
    uint8_t hdr[8];
    xet::write_chunk_header(
        xet::ChunkHeader{0, static_cast<uint32_t>(c.size()), xet::Compression::none, static_cast<uint32_t>(c.size())}, hdr);
    out.append(reinterpret_cast<const char*>(hdr), 8);
    out += c;
  }
  return out;
}

}  // namespace hf::hubsim::test
