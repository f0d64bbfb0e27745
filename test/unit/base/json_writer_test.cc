#include <catch2/catch.hpp>

#include "base/json_writer.h"

using namespace hf;

TEST_CASE("JsonWriter produces valid, escaped JSON") {
  JsonWriter w;
  w.begin_object().kv("a", 1).kv("s", "q\"\\\n\x01").key("arr").begin_array().value(true).null().value(
      uint64_t{18446744073709551615ull}).end_array().end_object();
  CHECK(w.str() == R"({"a":1,"s":"q\"\\\n\u0001","arr":[true,null,18446744073709551615]})");
}

TEST_CASE("JsonWriter replaces invalid UTF-8") {
  std::string out;
  JsonWriter::append_quoted(out, std::string("a\xff" "b\xc3\xa9", 5));
  CHECK(out == "\"a\xEF\xBF\xBD" "b\xc3\xa9\"");
}
