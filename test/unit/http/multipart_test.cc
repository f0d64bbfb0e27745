// multipart/byteranges: every split of the body into pieces must give the same parts and data.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "net/http/multipart.h"

using namespace hf;
using namespace hf::http;

namespace {

struct Collected {
  std::vector<MultipartByteranges::Part> parts;
  std::vector<std::string> data;  // per part
};

// Parses `body` split into the given pieces.
Result<Collected> parse(const std::string& boundary, const std::string& body, const std::vector<size_t>& cuts) {
  Collected c;
  MultipartByteranges mp(
      boundary,
      [&](const MultipartByteranges::Part& p) {
        c.parts.push_back(p);
        c.data.emplace_back();
        return Status();
      },
      [&](std::span<const uint8_t> d) {
        c.data.back().append(reinterpret_cast<const char*>(d.data()), d.size());
        return Status();
      });
  size_t prev = 0;
  for (size_t cut : cuts) {
    HF_TRY(mp.feed(std::string_view(body).substr(prev, cut - prev)));
    prev = cut;
  }
  HF_TRY(mp.feed(std::string_view(body).substr(prev)));
  HF_TRY(mp.finish());
  return c;
}

// Data that looks like delimiters: "\r\n--", a boundary prefix, CRs at the end.
const std::string kData1 = std::string("ab\r\n--BOUNDAR\r\n-\r\n--BOUNDARX") + std::string(1, '\0') + "\r";
const std::string kData2 = "\r\n--BOUNDAR";

std::string body_xc_style() {
  // The exact framing of XC's emulator (xet-protocol.md §7.3) with a preamble-free start.
  return "--BOUNDARY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-" +
         std::to_string(10 + kData1.size() - 1) + "/1000\r\n\r\n" + kData1 +
         "\r\n--BOUNDARY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 500-" +
         std::to_string(500 + kData2.size() - 1) + "/*\r\n\r\n" + kData2 + "\r\n--BOUNDARY--\r\n";
}

void check_expected(const Collected& c) {
  REQUIRE(c.parts.size() == 2);
  CHECK(c.parts[0].first == 10);
  CHECK(c.parts[0].last == 10 + kData1.size() - 1);
  CHECK(c.parts[0].total == std::optional<uint64_t>(1000));
  CHECK(c.parts[1].first == 500);
  CHECK(!c.parts[1].total.has_value());
  CHECK(c.data[0] == kData1);
  CHECK(c.data[1] == kData2);
}

}  // namespace

TEST_CASE("multipart boundary from Content-Type", "[http][multipart]") {
  CHECK(*MultipartByteranges::boundary_from_content_type("multipart/byteranges; boundary=3d6b6a416f9b5") == "3d6b6a416f9b5");
  CHECK(*MultipartByteranges::boundary_from_content_type("Multipart/ByteRanges;charset=x; Boundary=\"a b\"") == "a b");
  CHECK(MultipartByteranges::boundary_from_content_type("application/octet-stream").code() == Errc::protocol);
  CHECK(!MultipartByteranges::boundary_from_content_type("multipart/byteranges").ok());
  CHECK(!MultipartByteranges::boundary_from_content_type("multipart/byteranges; boundary=").ok());
}

TEST_CASE("multipart parser: whole body, every two-piece split, byte by byte", "[http][multipart]") {
  const std::string body = body_xc_style();
  auto whole = parse("BOUNDARY", body, {});
  REQUIRE(whole.ok());
  check_expected(*whole);
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    auto r = parse("BOUNDARY", body, {cut});
    INFO("cut at " << cut);
    REQUIRE(r.ok());
    check_expected(*r);
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < body.size(); ++i) every.push_back(i);
  auto bytewise = parse("BOUNDARY", body, every);
  REQUIRE(bytewise.ok());
  check_expected(*bytewise);

  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<size_t> cuts;
    for (size_t pos = 0;;) {
      pos += 1 + rng() % 13;
      if (pos >= body.size()) break;
      cuts.push_back(pos);
    }
    auto r = parse("BOUNDARY", body, cuts);
    REQUIRE(r.ok());
    check_expected(*r);
  }
}

TEST_CASE("multipart parser: preamble, padding, no part headers but Content-Range", "[http][multipart]") {
  std::string body = "preamble text\r\n--b  \t\r\nContent-Range: bytes 0-2/3\r\n\r\nxyz\r\n--b--epilogue ignored";
  auto r = parse("b", body, {});
  REQUIRE(r.ok());
  REQUIRE(r->parts.size() == 1);
  CHECK(r->data[0] == "xyz");
}

TEST_CASE("multipart parser errors", "[http][multipart]") {
  auto err = [](const std::string& body) {
    auto r = parse("B", body, {});
    REQUIRE(!r.ok());
    CHECK(r.code() == Errc::protocol);
    return r.error().message;
  };
  CHECK(err("--B\r\nContent-Range: bytes 0-9/10\r\n\r\nshort\r\n--B--").find("announced") != std::string::npos);
  CHECK(err("--B\r\nContent-Range: bytes 0-1/10\r\n\r\nlonger\r\n--B--").find("longer than") != std::string::npos);
  CHECK(err("--B\r\nContent-Type: x\r\n\r\nabc\r\n--B--").find("without Content-Range") != std::string::npos);
  CHECK(err("--B\r\nContent-Range: bytes 5-1/10\r\n\r\n\r\n--B--").find("malformed") != std::string::npos);
  CHECK(err("--B\r\nContent-Range: bytes 0-2/3\r\n\r\nabc").find("before the closing") != std::string::npos);
  CHECK(err("--Bjunk\r\n").find("garbage") != std::string::npos);
  CHECK(err("--B\r\n" + std::string(20000, 'h')).find("too large") != std::string::npos);
  // A consumer error stops the parser and is returned as-is.
  MultipartByteranges mp(
      "B", [](const auto&) { return Status(make_error(Errc::cancelled, "stop")); },
      [](std::span<const uint8_t>) { return Status(); });
  auto st = mp.feed(std::string_view("--B\r\nContent-Range: bytes 0-0/1\r\n\r\nx\r\n--B--"));
  CHECK(st.code() == Errc::cancelled);
  CHECK(mp.feed(std::string_view("more")).code() == Errc::cancelled);
}
