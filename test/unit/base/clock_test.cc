#include <catch2/catch.hpp>

#include "base/clock.h"

using namespace hf;

TEST_CASE("ISO-8601 parsing and formatting") {
  auto t = parse_iso8601("2024-02-19T10:57:45.000Z");
  REQUIRE(t);
  CHECK(*t == 1708340265LL * 1000000000LL);
  CHECK(format_iso8601(*t) == "2024-02-19T10:57:45.000Z");
  CHECK(parse_iso8601("2024-09-25T15:31:02.346Z").value() == 1727278262346000000LL);
  CHECK(parse_iso8601("2024-02-19T12:57:45+02:00").value() == 1708340265LL * 1000000000LL);
  CHECK_FALSE(parse_iso8601("2024-02-19"));
  CHECK_FALSE(parse_iso8601("2024-13-19T10:57:45Z"));
  CHECK_FALSE(parse_iso8601("2024-02-19T10:57:45Zjunk"));
  CHECK(format_http_date(1560848811) == "Tue, 18 Jun 2019 09:06:51 GMT");
}
