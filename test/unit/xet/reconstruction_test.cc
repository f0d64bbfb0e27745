// Reconstruction JSON: spec §6, §7.2, §7.8 and the §11.4 examples; bad input.
#include <catch2/catch.hpp>

#include <string>

#include "net/xet/reconstruction.h"
#include "test/unit/xet/test_util.h"

using namespace hf;
using namespace hf::xet;
using namespace hf::xet::testing;

namespace {

const char* const kXorb = "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74";

const std::string kV1Full =
    R"({"offset_into_first_range": 0, "terms": [{"hash": "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74", "unpacked_length": 200000, "range": {"start": 0, "end": 2}}], "fetch_info": {"f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74": [{"range": {"start": 0, "end": 2}, "url": "<presigned>", "url_range": {"start": 0, "end": 200015}}]}})";

const std::string kV2Mid =
    R"({"offset_into_first_range": 8928, "terms": [{"hash": "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74", "unpacked_length": 68928, "range": {"start": 1, "end": 2}}], "xorbs": {"f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74": [{"url": "<presigned>", "ranges": [{"chunks": {"start": 1, "end": 2}, "bytes": {"start": 131080, "end": 200015}}]}]}})";

const std::string kV2Head =
    R"({"offset_into_first_range": 0, "terms": [{"hash": "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74", "unpacked_length": 131072, "range": {"start": 0, "end": 1}}], "xorbs": {"f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74": [{"url": "<presigned>", "ranges": [{"chunks": {"start": 0, "end": 1}, "bytes": {"start": 0, "end": 131079}}]}]}})";

std::string replace(std::string s, std::string_view from, std::string_view to) {
  size_t at = s.find(from);
  if (at == std::string::npos) std::abort();
  return s.replace(at, from.size(), to);
}

void expect_error(const Result<Reconstruction>& r, Errc code, std::string_view text) {
  REQUIRE(!r.ok());
  INFO(r.error().message);
  CHECK(r.error().code == code);
  CHECK(r.error().message.find(text) != std::string::npos);
}

}  // namespace

TEST_CASE("§11.4 v1 full-file response") {
  auto r = parse_reconstruction_v1(kV1Full);
  REQUIRE(r.ok());
  CHECK(r->offset_into_first_range == 0);
  REQUIRE(r->terms.size() == 1);
  CHECK(r->terms[0].xorb.hex() == kXorb);
  CHECK(r->terms[0].unpacked_length == 200000);
  CHECK(r->terms[0].range == ChunkRange{0, 2});
  REQUIRE(r->fetches.size() == 1);
  REQUIRE(r->fetches[0].second.size() == 1);
  const XorbFetch& f = r->fetches[0].second[0];
  CHECK(f.url == "<presigned>");
  REQUIRE(f.ranges.size() == 1);
  CHECK(f.ranges[0].chunks == ChunkRange{0, 2});
  CHECK(f.ranges[0].bytes == ByteRangeIncl{0, 200015});
  auto loc = r->find(r->terms[0]);
  REQUIRE(loc.range);
  CHECK(loc.fetch == &f);
  CHECK(r->total_unpacked() == 200000);
}

TEST_CASE("§11.4 v2 ranged responses") {
  auto mid = parse_reconstruction_v2(kV2Mid);
  REQUIRE(mid.ok());
  CHECK(mid->offset_into_first_range == 8928);
  CHECK(mid->terms[0].range == ChunkRange{1, 2});
  CHECK(mid->fetches[0].second[0].ranges[0].bytes == ByteRangeIncl{131080, 200015});
  // Client view: fetch bytes=131080-200015, skip 8928, return 10001 bytes of a 150000-140000 read.
  CHECK(mid->terms[0].unpacked_length - mid->offset_into_first_range >= 10001);

  auto head = parse_reconstruction_v2(kV2Head);
  REQUIRE(head.ok());
  CHECK(head->terms[0].unpacked_length == 131072);
  CHECK(head->fetches[0].second[0].ranges[0].bytes == ByteRangeIncl{0, 131079});
}

TEST_CASE("serializers round-trip (v1, v2, batch)") {
  for (const std::string& doc : {kV2Mid, kV2Head}) {
    auto r = parse_reconstruction_v2(doc).value();
    auto again = parse_reconstruction_v2(to_json_v2(r));
    REQUIRE(again.ok());
    CHECK(again->terms == r.terms);
    CHECK(again->fetches == r.fetches);
    CHECK(again->offset_into_first_range == r.offset_into_first_range);
    // v2 -> v1 keeps one entry per range.
    auto v1 = parse_reconstruction_v1(to_json_v1(r));
    REQUIRE(v1.ok());
    CHECK(v1->terms == r.terms);
    CHECK(v1->fetches == r.fetches);  // single-range entries map 1:1
  }
  auto full = parse_reconstruction_v1(kV1Full).value();
  CHECK(to_json_v1(full) ==
        R"({"offset_into_first_range":0,"terms":[{"hash":"f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74","unpacked_length":200000,"range":{"start":0,"end":2}}],"fetch_info":{"f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74":[{"range":{"start":0,"end":2},"url":"<presigned>","url_range":{"start":0,"end":200015}}]}})");

  // Multi-range v2 entry with several xorbs; to_json_v1 splits ranges into entries.
  Reconstruction r;
  Hash a = H(std::string(63, '0') + "a"), b = H(std::string(63, '0') + "b");
  r.terms = {{b, 300, {0, 1}}, {a, 200, {5, 7}}, {b, 100, {3, 4}}};
  r.fetches = {{b, {XorbFetch{"https://x/b?sig", {{{3, 4}, {50, 99}}, {{0, 1}, {0, 49}}}}}},
               {a, {XorbFetch{"https://x/a", {{{5, 7}, {1000, 1999}}}}}}};
  r.sort_fetches();
  REQUIRE(validate_reconstruction(r).ok());
  CHECK(r.fetches[0].first == a);
  CHECK(r.fetches[1].second[0].ranges[0].chunks.start == 0);  // sorted by chunk start
  auto v2 = parse_reconstruction_v2(to_json_v2(r)).value();
  CHECK(v2.terms == r.terms);
  CHECK(v2.fetches == r.fetches);
  auto v1 = parse_reconstruction_v1(to_json_v1(r)).value();
  CHECK(v1.terms == r.terms);
  REQUIRE(v1.fetches.size() == 2);
  CHECK(v1.fetches[1].second.size() == 2);  // two single-range entries for xorb b
  CHECK(v1.fetches[1].second[1].url == "https://x/b?sig");
  for (const Term& t : r.terms) {
    auto loc = v1.find(t);
    REQUIRE(loc.range);
    CHECK(loc.range->chunks.start <= t.range.start);
    CHECK(t.range.end <= loc.range->chunks.end);
  }

  BatchReconstruction batch;
  batch.files = {{H(std::string(63, '0') + "1"), r.terms}, {H(std::string(63, '0') + "2"), {r.terms[1]}}};
  batch.fetches = r.fetches;
  auto bp = parse_batch_reconstruction_v1(to_json_batch_v1(batch));
  REQUIRE(bp.ok());
  REQUIRE(bp->files.size() == 2);
  CHECK(bp->files[0] == batch.files[0]);
  CHECK(bp->files[1] == batch.files[1]);
}

TEST_CASE("unknown fields are ignored; empty file") {
  auto doc = replace(kV2Mid, R"("terms")", R"("extra": {"nested": [1, 2, {"x": null}]}, "terms")");
  CHECK(parse_reconstruction_v2(doc).ok());
  auto empty = parse_reconstruction_v2(R"({"offset_into_first_range":0,"terms":[],"xorbs":{}})");
  REQUIRE(empty.ok());
  CHECK(empty->terms.empty());
  CHECK(empty->total_unpacked() == 0);
}

TEST_CASE("reconstruction JSON bad input") {
  expect_error(parse_reconstruction_v2(""), Errc::protocol, "invalid JSON");
  expect_error(parse_reconstruction_v2("{"), Errc::protocol, "invalid JSON");
  expect_error(parse_reconstruction_v2("[]"), Errc::protocol, "not an object");
  expect_error(parse_reconstruction_v2(R"({"terms":[],"xorbs":{}})"), Errc::protocol, "offset_into_first_range");
  expect_error(parse_reconstruction_v2(R"({"offset_into_first_range":-1,"terms":[],"xorbs":{}})"), Errc::protocol,
               "unsigned");
  expect_error(parse_reconstruction_v2(R"({"offset_into_first_range":0,"terms":{},"xorbs":{}})"), Errc::protocol,
               "not an array");
  expect_error(parse_reconstruction_v2(R"({"offset_into_first_range":0,"terms":[]})"), Errc::protocol, "xorbs");
  // v1 document given to the v2 parser.
  expect_error(parse_reconstruction_v2(kV1Full), Errc::protocol, "xorbs");
  // Bad hash text.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "f0755d96", "g0755d96")), Errc::protocol, "hex");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("hash": "f0755d96)", R"("hash": "f0755d9)")), Errc::protocol,
               "64 hex");
  // Numbers out of range / wrong type.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "68928", "4294967296")), Errc::protocol, "32 bits");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "68928", "\"68928\"")), Errc::protocol, "unsigned");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "68928", "1.5")), Errc::protocol, "unsigned");
  // Inverted / empty ranges.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("range": {"start": 1, "end": 2})", R"("range": {"start": 2, "end": 2})")),
               Errc::protocol, "empty or inverted");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("start": 131080, "end": 200015)", R"("start": 200015, "end": 131080)")),
               Errc::protocol, "inverted byte range");
  // Byte range too short for its chunk count (less than one header).
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("start": 131080, "end": 200015)", R"("start": 131080, "end": 131082)")),
               Errc::protocol, "cannot hold");
  // Term not covered by any fetch range ("No xorb fetch entry found").
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("chunks": {"start": 1, "end": 2})", R"("chunks": {"start": 2, "end": 3})")),
               Errc::protocol, "no xorb fetch entry");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("xorbs": {"f0755d96)", R"("xorbs": {"a0755d96)")),
               Errc::protocol, "no xorb fetch entry");
  // Offset not inside the first term.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "8928", "68928")), Errc::protocol, "offset_into_first_range");
  // Unpacked length impossible for the chunk count.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "68928", "131073")), Errc::protocol, "impossible");
  expect_error(parse_reconstruction_v2(replace(kV2Mid, "\"unpacked_length\": 68928", "\"unpacked_length\": 0")),
               Errc::protocol, "impossible");
  // Fetch entries without ranges / empty entry lists.
  expect_error(parse_reconstruction_v2(replace(kV2Mid, R"("ranges": [{"chunks": {"start": 1, "end": 2}, "bytes": {"start": 131080, "end": 200015}}])", R"("ranges": [])")),
               Errc::protocol, "without ranges");
  // Duplicate xorb keys.
  std::string dup = replace(kV2Mid, "]}}", std::string("], \"") + kXorb + R"(": [{"url": "u", "ranges": [{"chunks": {"start": 1, "end": 2}, "bytes": {"start": 131080, "end": 200015}}]}]}})");
  expect_error(parse_reconstruction_v2(dup), Errc::protocol, "duplicate");
  // Chunk ranges or byte spans no xorb can have (§4.4: 8192 chunks, 64 MiB + headers): a hostile
  // server must not make the client allocate or download without bound.
  expect_error(parse_reconstruction_v2(replace(replace(kV2Mid, R"("range": {"start": 1, "end": 2})",
                                                       R"("range": {"start": 1, "end": 4000000000})"),
                                               R"("chunks": {"start": 1, "end": 2}, "bytes": {"start": 131080, "end": 200015})",
                                               R"("chunks": {"start": 1, "end": 4000000000}, "bytes": {"start": 131080, "end": 40000000000000})")),
               Errc::protocol, "exceed what a xorb can hold");
  expect_error(parse_reconstruction_v2(replace(replace(kV2Mid, R"("range": {"start": 1, "end": 2})",
                                                       R"("range": {"start": 8192, "end": 8193})"),
                                               R"("chunks": {"start": 1, "end": 2})", R"("chunks": {"start": 8192, "end": 8193})")),
               Errc::protocol, "exceed what a xorb can hold");
  // The last chunk a xorb can have is fine.
  CHECK(parse_reconstruction_v2(replace(replace(kV2Mid, R"("range": {"start": 1, "end": 2})", R"("range": {"start": 8191, "end": 8192})"),
                                        R"("chunks": {"start": 1, "end": 2})", R"("chunks": {"start": 8191, "end": 8192})"))
            .ok());
  // Deep nesting is rejected by the bounded parser, not by a crash.
  std::string deep = R"({"offset_into_first_range":0,"terms":[],"xorbs":{},"x":)" + std::string(5000, '[') +
                     std::string(5000, ']') + "}";
  expect_error(parse_reconstruction_v2(deep), Errc::protocol, "invalid JSON");
  // Size limit.
  std::string huge(kMaxReconstructionJson + 1, ' ');
  expect_error(parse_reconstruction_v2(huge), Errc::too_large, "exceeds");
  // v1 specific.
  expect_error(parse_reconstruction_v1(replace(kV1Full, "url_range", "url_rnage")), Errc::protocol, "url_range");
  auto bad_batch = parse_batch_reconstruction_v1(R"({"files":{"zz":[]},"fetch_info":{}})");
  REQUIRE(!bad_batch.ok());
  CHECK(bad_batch.error().code == Errc::protocol);
  auto uncovered = parse_batch_reconstruction_v1(
      std::string(R"({"files":{")") + kXorb + R"(":[{"hash":")" + kXorb +
      R"(","unpacked_length":5,"range":{"start":0,"end":1}}]},"fetch_info":{}})");
  REQUIRE(!uncovered.ok());
  CHECK(uncovered.error().message.find("no xorb fetch entry") != std::string::npos);
}

TEST_CASE("covers_whole_xorb: the §11.4 2-chunk xorb stored with its 176-byte V1 footer (§4.5)") {
  const uint64_t records = 200016, stored = records + 176;
  CHECK(covers_whole_xorb(FetchRange{{0, 2}, {0, records - 1}}, stored));
  // A prefix, a suffix or the records without a footer are not the whole xorb.
  CHECK_FALSE(covers_whole_xorb(FetchRange{{0, 1}, {0, 131079}}, stored));
  CHECK_FALSE(covers_whole_xorb(FetchRange{{1, 2}, {131080, records - 1}}, stored));
  CHECK_FALSE(covers_whole_xorb(FetchRange{{0, 2}, {0, records - 1}}, records));
  // Sizes smaller than a footer are no match (no underflow).
  CHECK_FALSE(covers_whole_xorb(FetchRange{{0, 2}, {0, 10}}, 50));
}
