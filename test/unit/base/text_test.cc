#include <catch2/catch.hpp>

#include "base/text.h"

using namespace hf;

TEST_CASE("parse_u64 rejects garbage and overflow") {
  CHECK(parse_u64("0") == 0u);
  CHECK(parse_u64("18446744073709551615") == 18446744073709551615ull);
  CHECK_FALSE(parse_u64("18446744073709551616"));
  CHECK_FALSE(parse_u64(""));
  CHECK_FALSE(parse_u64("-1"));
  CHECK_FALSE(parse_u64("12a"));
  CHECK_FALSE(parse_u64(" 1"));
  CHECK(parse_i64("-9223372036854775808") == INT64_MIN);
  CHECK_FALSE(parse_i64("9223372036854775808"));
}

TEST_CASE("parse_size understands binary suffixes") {
  CHECK(parse_size("10G") == 10ull << 30);
  CHECK(parse_size("10GB") == 10ull << 30);
  CHECK(parse_size("512m") == 512ull << 20);
  CHECK(parse_size("4k") == 4096u);
  CHECK(parse_size("1.5K") == 1536u);
  CHECK(parse_size("123") == 123u);
  CHECK_FALSE(parse_size("G"));
  CHECK_FALSE(parse_size("abc"));
  CHECK_FALSE(parse_size("99999999999999999999T"));
}

TEST_CASE("url encoding keeps slashes in paths and escapes reserved characters") {
  CHECK(url_encode_path("a b/c#1?x%") == "a%20b/c%231%3Fx%25");
  CHECK(url_encode_component("refs/pr/1") == "refs%2Fpr%2F1");
  CHECK(url_decode("refs%2Fpr%2F1").value() == "refs/pr/1");
  CHECK(url_decode("a+b", true).value() == "a b");
  CHECK(url_decode("a+b", false).value() == "a+b");
  CHECK(url_decode("%zz").code() == Errc::invalid_argument);
  CHECK(url_decode("%4").code() == Errc::invalid_argument);
  auto q = parse_query("paths=a.txt&paths=b%2Fc.bin&expand=false").value();
  REQUIRE(q.size() == 3);
  CHECK(q[1].second == "b/c.bin");
}

TEST_CASE("hex round trip") {
  uint8_t b[] = {0x00, 0x0f, 0xab, 0xff};
  CHECK(hex_encode(b, 4) == "000fabff");
  auto d = hex_decode("000FABff");
  REQUIRE(d);
  CHECK(std::vector<uint8_t>(b, b + 4) == *d);
  CHECK_FALSE(hex_decode("abc"));
  CHECK_FALSE(hex_decode("zz"));
}
