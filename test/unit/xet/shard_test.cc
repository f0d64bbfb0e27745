// Shard format: spec §5, the §11.4 upload shard, §11.5 facts, and bad input.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/shard.h"
#include "test/unit/xet/test_util.h"

using namespace hf;
using namespace hf::xet;
using namespace hf::xet::testing;

namespace {

const char* const kUploadShardDump = R"(
0000: 4846 5265 706f 4d65 7461 4461 7461 0055
0010: 6967 456a 7b81 5783 a5bd d95c cdd1 4aa9
0020: 0200 0000 0000 0000 0000 0000 0000 0000
0030: c932 0f76 0b9e 8dd8 2585 cbb4 9265 7c0b
0040: c6e3 7173 79bb 011c 2387 57ac 967b 0837
0050: 0000 00c0 0100 0000 0000 0000 0000 0000
0060: 4f9d 19ee 965d 75f0 3538 2cfe a93d e801
0070: 20a3 79fb 38fd e73d 746f 0210 e50b d5a7
0080: 0000 0000 400d 0300 0000 0000 0200 0000
0090: 9e91 9638 dd80 d582 21bd c7b2 78af 70f8
00a0: c8bb 2279 7779 7ee6 8c30 0c63 21fc f1ce
00b0: 0000 0000 0000 0000 0000 0000 0000 0000
00c0: 2ee9 c2d9 d248 1a26 d2a1 ecbb d297 0f4e
00d0: e768 fc24 cb4e b009 5985 04da 5e23 5784
00e0: 0000 0000 0000 0000 0000 0000 0000 0000
00f0: ffff ffff ffff ffff ffff ffff ffff ffff
0100: ffff ffff ffff ffff ffff ffff ffff ffff
0110: 0000 0000 0000 0000 0000 0000 0000 0000
0120: 4f9d 19ee 965d 75f0 3538 2cfe a93d e801
0130: 20a3 79fb 38fd e73d 746f 0210 e50b d5a7
0140: 0000 0000 0200 0000 400d 0300 500d 0300
0150: ca2b 8bc3 c5ba 8b11 de86 7730 e87a 2b9c
0160: cb5c 2b1b b996 6606 8268 968c 60d4 bb7d
0170: 0000 0000 0000 0200 0000 0000 0000 0000
0180: 4790 cc4b ded4 8478 c2b6 7ee9 912a 3667
0190: d040 b661 3a5f bcb6 2708 ff29 11bb d8ca
01a0: 0000 0200 400d 0100 0000 0000 0000 0000
01b0: ffff ffff ffff ffff ffff ffff ffff ffff
01c0: ffff ffff ffff ffff ffff ffff ffff ffff
01d0: 0000 0000 0000 0000 0000 0000 0000 0000
)";

// The §11.4 file described from first principles (hashes from the spec text).
Shard worked_example_shard() {
  Hash c0 = H("118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882");
  Hash c1 = H("7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827");
  Hash xorb = H("f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74");
  FileInfo f;
  f.file_hash = H("d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723");
  f.terms.push_back({xorb, 200000, 0, 2});
  std::vector<Hash> chunk_hashes = {c0, c1};
  f.verification.push_back(range_hash(chunk_hashes));
  auto data = linear_data(200000, 7, 13);
  f.sha256 = hf::sha256(data.data(), data.size());
  XorbInfo x;
  x.xorb_hash = xorb;
  x.num_bytes_in_xorb = 200000;
  x.num_bytes_on_disk = 200016;
  x.chunks.push_back({c0, 0, 131072, 0});
  x.chunks.push_back({c1, 131072, 68928, 0});
  Shard s;
  s.files.push_back(f);
  s.xorbs.push_back(x);
  return s;
}

void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

void expect_error(const std::vector<uint8_t>& bytes, Errc code, std::string_view text) {
  auto r = parse_shard(bytes);
  REQUIRE(!r.ok());
  INFO(r.error().message);
  CHECK(r.error().code == code);
  CHECK(r.error().message.find(text) != std::string::npos);
}

}  // namespace

TEST_CASE("§11.4 upload shard is reproduced byte for byte") {
  Shard s = worked_example_shard();
  CHECK(hf::hex_encode(s.files[0].sha256->data(), 32) ==
        "261a48d2d9c2e92e4e0f97d2bbeca1d209b04ecb24fc68e78457235eda048559");
  auto bytes = serialize_upload_shard(s);
  REQUIRE(bytes.ok());
  CHECK(bytes->size() == 480);
  CHECK(*bytes == from_dump(kUploadShardDump));
  if (auto file = read_vector_file("ex_shard_upload.bin")) CHECK(*file == *bytes);
  // SHA-256 as stored (§11.4 table).
  CHECK(hf::hex_encode(bytes->data() + 0xC0, 32) == "2ee9c2d9d2481a26d2a1ecbbd2970f4ee768fc24cb4eb009598504da5e235784");
  CHECK(s.files[0].verification[0].hex() == "82d580dd3896919ef870af78b2c7bd21e67e79777922bbc8cef1fc21630c308c");

  auto parsed = parse_shard(*bytes);
  REQUIRE(parsed.ok());
  CHECK(!parsed->footer.has_value());
  REQUIRE(parsed->files.size() == 1);
  CHECK(parsed->files[0] == s.files[0]);
  REQUIRE(parsed->xorbs.size() == 1);
  CHECK(parsed->xorbs[0] == s.xorbs[0]);
}

TEST_CASE("shard without verification or metadata, several files and xorbs") {
  Shard s;
  for (int i = 0; i < 3; ++i) {
    FileInfo f;
    f.file_hash.bytes[0] = static_cast<uint8_t>(i + 1);
    for (int t = 0; t <= i; ++t) {
      Hash x;
      x.bytes[1] = static_cast<uint8_t>(t);
      f.terms.push_back({x, 1000u * static_cast<uint32_t>(t + 1), static_cast<uint32_t>(t), static_cast<uint32_t>(t + 2)});
    }
    s.files.push_back(f);
  }
  FileInfo empty;  // empty file: zero hash, zero terms (§9.3.6)
  s.files.push_back(empty);
  XorbInfo x;
  x.xorb_hash.bytes[5] = 9;
  x.chunks.resize(3);
  s.xorbs.push_back(x);
  s.xorbs.push_back(XorbInfo{});
  auto bytes = serialize_upload_shard(s).value();
  CHECK(bytes.size() == 48 * (1 + (1 + 1) + (1 + 2) + (1 + 3) + 1 + 1 + (1 + 3) + 1 + 1));
  auto p = parse_shard(bytes).value();
  REQUIRE(p.files.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(p.files[i] == s.files[i]);
  CHECK(p.xorbs == s.xorbs);
  // Verification is all-or-none: a shard where one file has entries and others not, or
  // where a list has the wrong length, is refused by the serializer.
  s.files[1].verification.resize(2);
  CHECK(serialize_upload_shard(s).code() == Errc::invalid_argument);
  s.files[1].verification.resize(1);
  CHECK(serialize_upload_shard(s).code() == Errc::invalid_argument);
  // With entries for every file, the empty file is flagged too (XC behaviour).
  for (auto& f : s.files) f.verification.assign(f.terms.size(), Hash{});
  auto flagged = serialize_upload_shard(s).value();
  const size_t empty_file_at = 48 * (1 + 3 + 5 + 7);  // header + three files with verification
  uint32_t flags;
  std::memcpy(&flags, flagged.data() + empty_file_at + 32, 4);
  CHECK(flags == kFileFlagWithVerification);
  CHECK(parse_shard(flagged).value().files[3] == s.files[3]);
  // A shard of empty files only is flagged as well.
  Shard only_empty;
  only_empty.files.push_back(FileInfo{});
  auto e = serialize_upload_shard(only_empty).value();
  std::memcpy(&flags, e.data() + 48 + 32, 4);
  CHECK(flags == kFileFlagWithVerification);
}

TEST_CASE("full shard with lookup tables and footer round-trips") {
  Shard s = worked_example_shard();
  FullShardParams p;
  p.creation_timestamp = 1754059905;
  p.key_expiry = 1754664705;
  auto bytes = serialize_full_shard(s, p).value();
  // header + file block(4) + bookend + xorb block(3) + bookend = 10 records; lookups
  // 12 + 12 + 2*16; footer 200.
  CHECK(bytes.size() == 10 * 48 + 12 + 12 + 32 + 200);
  uint64_t footer_size;
  std::memcpy(&footer_size, bytes.data() + 40, 8);
  CHECK(footer_size == 200);
  auto parsed = parse_shard(bytes).value();
  REQUIRE(parsed.footer.has_value());
  const ShardFooter& f = *parsed.footer;
  CHECK(f.version == 1);
  CHECK(f.file_info_offset == 48);
  CHECK(f.xorb_info_offset == 6 * 48);
  CHECK(f.file_lookup_offset == 10 * 48);
  CHECK(f.file_lookup_num_entry == 1);
  CHECK(f.xorb_lookup_offset == 10 * 48 + 12);
  CHECK(f.xorb_lookup_num_entry == 1);
  CHECK(f.chunk_lookup_offset == 10 * 48 + 24);
  CHECK(f.chunk_lookup_num_entry == 2);
  CHECK(f.footer_offset == bytes.size() - 200);
  CHECK(f.shard_creation_timestamp == 1754059905);
  CHECK(f.shard_key_expiry == 1754664705);
  CHECK(f.stored_bytes == 200000);
  CHECK(f.stored_bytes_on_disk == 200016);
  CHECK(f.materialized_bytes == 200000);
  CHECK(f.chunk_hash_hmac_key.is_zero());
  CHECK(parsed.files[0] == s.files[0]);
  CHECK(parsed.xorbs[0] == s.xorbs[0]);
  // File lookup entry: truncate_hash(file_hash) = first raw u64, record index 0.
  uint64_t key;
  uint32_t idx;
  std::memcpy(&key, bytes.data() + f.file_lookup_offset, 8);
  std::memcpy(&idx, bytes.data() + f.file_lookup_offset + 8, 4);
  CHECK(key == s.files[0].file_hash.word(0));
  CHECK(idx == 0);
}

TEST_CASE("dedup-response shape (§5.8 shape 2, §11.5 facts)") {
  // CAS block header bytes of the real shard at 0x60 (§11.5), padded with 933 entries.
  auto header_rec = unhex(
      "7067e657ff54fe163e244b71e0fe423a84b83f7719d2d2ab0ddc01c99527da46"
      "00000000a503000054547403" "00000000");
  REQUIRE(header_rec.size() == 48);
  Hash xorb = Hash::from_bytes(header_rec.data());
  CHECK(xorb.hex() == "16fe54ff57e667703a42fee0714b243eabd2d219773fb88446da2795c901dc0d");
  uint32_t n, raw;
  std::memcpy(&n, header_rec.data() + 36, 4);
  std::memcpy(&raw, header_rec.data() + 40, 4);
  CHECK(n == 933);
  CHECK(raw == 57955412);

  Hash key = H("d6834b04843aaf16f29903e2428a99be635099f9ea5056cc4e95e7ec8a41509f");
  Shard s;
  XorbInfo x;
  x.xorb_hash = xorb;
  x.num_bytes_in_xorb = raw;
  uint32_t off = 0;
  for (uint32_t i = 0; i < n; ++i) {
    Hash c;
    c.bytes[0] = static_cast<uint8_t>(i);
    c.bytes[1] = static_cast<uint8_t>(i >> 8);
    uint32_t len = i + 1 < n ? 62000 : raw - off;
    x.chunks.push_back({hmac(c, key), off, len, 0});
    off += len;
  }
  s.xorbs.push_back(x);
  FullShardParams p;
  p.chunk_hash_hmac_key = key;
  p.creation_timestamp = 1754059905;
  p.key_expiry = 1754059905 + 7 * 86400;
  p.lookup_tables = false;
  auto bytes = serialize_full_shard(s, p).value();
  // Layout facts of §11.5: file section = bookend only at 48; xorb section at 96.
  CHECK(std::vector<uint8_t>(bytes.begin() + 0x30, bytes.begin() + 0x50) == std::vector<uint8_t>(32, 0xFF));
  CHECK(std::vector<uint8_t>(bytes.begin() + 0x60, bytes.begin() + 0x90) == std::vector<uint8_t>(header_rec.begin(), header_rec.end()));
  auto parsed = parse_shard(bytes).value();
  CHECK(parsed.files.empty());
  REQUIRE(parsed.footer.has_value());
  CHECK(parsed.footer->xorb_info_offset == 96);
  CHECK(parsed.footer->file_lookup_offset == parsed.footer->footer_offset);
  CHECK(parsed.footer->chunk_lookup_num_entry == 0);
  CHECK(parsed.footer->shard_key_expiry == 1754664705);
  CHECK(parsed.footer->stored_bytes == raw);
  CHECK(parsed.footer->stored_bytes_on_disk == 0);
  CHECK(parsed.footer->materialized_bytes == 0);
  CHECK(parsed.footer->chunk_hash_hmac_key == key);
  REQUIRE(parsed.xorbs.size() == 1);
  CHECK(parsed.xorbs[0].chunks.size() == 933);
  CHECK(parsed.xorbs[0].chunks.back().byte_range_start + parsed.xorbs[0].chunks.back().unpacked_bytes == raw);
  // HFJS writes lookup offsets 0 with 0 entries; that must parse too.
  auto hfjs = bytes;
  size_t ft = hfjs.size() - 200;
  put64(hfjs, ft + 24, 0);
  put64(hfjs, ft + 40, 0);
  put64(hfjs, ft + 56, 0);
  CHECK(parse_shard(hfjs).ok());
}

TEST_CASE("duplicate file hashes: the first block wins (§12.29)") {
  Shard s = worked_example_shard();
  FileInfo dup = s.files[0];
  dup.terms[0].unpacked_bytes = 5;
  s.files.push_back(dup);
  auto p = parse_shard(serialize_upload_shard(s).value()).value();
  REQUIRE(p.files.size() == 1);
  CHECK(p.files[0].terms[0].unpacked_bytes == 200000);
}

TEST_CASE("parse_shard rejects bad input") {
  auto good = serialize_upload_shard(worked_example_shard()).value();
  auto full = serialize_full_shard(worked_example_shard(), {}).value();

  expect_error({}, Errc::protocol, "truncated header");
  auto b = good;
  b[0] = 'X';
  expect_error(b, Errc::protocol, "tag");
  b = good;
  put64(b, 32, 3);
  expect_error(b, Errc::protocol, "version");
  b = good;
  put64(b, 40, 100);
  expect_error(b, Errc::protocol, "footer size");
  // Truncated anywhere before the last bookend.
  for (size_t cut : {size_t{48}, size_t{100}, size_t{0xF0}, size_t{0x120}, size_t{0x1B0}, size_t{479}}) {
    INFO("cut " << cut);
    auto r = parse_shard(std::span(good).first(cut));
    REQUIRE(!r.ok());
    CHECK(r.error().code == Errc::protocol);
  }
  // A file claiming far more terms than the body holds: error before any allocation.
  b = good;
  put32(b, 0x30 + 36, 0xFFFFFFFFu);
  expect_error(b, Errc::protocol, "beyond the end");
  b = good;
  put32(b, 0x120 + 36, 0x7FFFFFFFu);
  expect_error(b, Errc::protocol, "beyond the end");
  // Empty chunk range in a term.
  b = good;
  put32(b, 0x60 + 44, 0);
  expect_error(b, Errc::protocol, "empty chunk range");
  // Trailing bytes with footer_size 0.
  b = good;
  b.push_back(0);
  expect_error(b, Errc::protocol, "trailing");
  // Footer inconsistencies.
  size_t ft = full.size() - 200;
  b = full;
  put64(b, ft, 2);
  expect_error(b, Errc::protocol, "footer version");
  b = full;
  put64(b, ft + 192, 7);
  expect_error(b, Errc::protocol, "footer_offset");
  b = full;
  put64(b, ft + 16, 48);
  expect_error(b, Errc::protocol, "xorb_info_offset");
  b = full;
  put64(b, ft + 8, 0);
  expect_error(b, Errc::protocol, "file_info_offset");
  b = full;
  put64(b, ft + 64, 1000);  // chunk lookup entries beyond the footer
  expect_error(b, Errc::protocol, "lookup");
  // Size limit.
  auto r = parse_shard(good, 479);
  REQUIRE(!r.ok());
  CHECK(r.error().code == Errc::too_large);
}

TEST_CASE("only some files with verification is rejected (§5.4.3)") {
  // The serializer refuses to write such a shard, so splice one together: the §11.4 shard
  // plus a second file block without verification inserted before the file bookend.
  Shard s = worked_example_shard();
  FileInfo plain = s.files[0];
  plain.file_hash.bytes[0] ^= 1;
  plain.verification.clear();
  plain.sha256.reset();
  CHECK(serialize_upload_shard(Shard{{s.files[0], plain}, {}, {}}).code() == Errc::invalid_argument);
  auto bytes = serialize_upload_shard(s).value();
  auto other = serialize_upload_shard(Shard{{plain}, {}, {}}).value();
  bytes.insert(bytes.begin() + 0xF0, other.begin() + 48, other.begin() + 48 + 2 * 48);
  REQUIRE(bytes.size() == 480 + 96);
  expect_error(bytes, Errc::protocol, "only some files contain verification");
}

TEST_CASE("sha256 word swap is an involution") {
  std::array<uint8_t, 32> a;
  for (int i = 0; i < 32; ++i) a[i] = static_cast<uint8_t>(i);
  auto b = sha256_word_swap(a);
  CHECK(b[0] == 7);
  CHECK(b[7] == 0);
  CHECK(b[8] == 15);
  CHECK(sha256_word_swap(b) == a);
}
