// Xorb format: spec §4, §11.1 (#9, #10), §4.6 and the §11.4 worked example; bad input.
#include <catch2/catch.hpp>
#include <lz4.h>
#include <lz4frame.h>

#include <random>
#include <string>
#include <vector>

#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/chunker.h"
#include "net/xet/xorb.h"
#include "test/unit/xet/test_util.h"

using namespace hf;
using namespace hf::xet;
using namespace hf::xet::testing;

namespace {

std::vector<uint8_t> header_bytes(const ChunkHeader& h) {
  std::vector<uint8_t> b(8);
  write_chunk_header(h, b.data());
  return b;
}

// Independent LZ4 frame encoder (liblz4's LZ4F API) for decoder cross-checks.
std::vector<uint8_t> lz4f_encode(std::span<const uint8_t> raw, const LZ4F_preferences_t& prefs) {
  std::vector<uint8_t> out(LZ4F_compressFrameBound(raw.size(), &prefs));
  size_t n = LZ4F_compressFrame(out.data(), out.size(), raw.data(), raw.size(), &prefs);
  REQUIRE(!LZ4F_isError(n));
  out.resize(n);
  return out;
}

std::vector<uint8_t> lz4f_decode(std::span<const uint8_t> frame, size_t raw_len) {
  LZ4F_dctx* dctx = nullptr;
  REQUIRE(!LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)));
  std::vector<uint8_t> out(raw_len + 1);
  size_t dst = out.size(), src = frame.size();
  size_t r = LZ4F_decompress(dctx, out.data(), &dst, frame.data(), &src, nullptr);
  LZ4F_freeDecompressionContext(dctx);
  REQUIRE(r == 0);
  REQUIRE(src == frame.size());
  out.resize(dst);
  return out;
}

// A compressible but non-trivial payload: words from a small vocabulary.
std::vector<uint8_t> text_like(size_t n, uint64_t seed) {
  static const char* words[] = {"tensor ", "weight ", "bias ", "layer.", "0.125 ", "attention ", "\n", "{\"k\": "};
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out;
  while (out.size() < n) {
    const char* w = words[rng() % 8];
    out.insert(out.end(), w, w + std::strlen(w));
  }
  out.resize(n);
  return out;
}

// Serialized xorb of the §11.4 file, scheme None.
std::vector<uint8_t> worked_example_xorb(XorbBuilder* out_builder = nullptr) {
  auto data = linear_data(200000, 7, 13);
  XorbBuilder b;
  ChunkStream cs;
  auto add_all = [&](const std::vector<StreamChunk>& chunks) {
    for (const auto& c : chunks) {
      REQUIRE(b.fits(c.data.size()));
      REQUIRE(b.add(c.data, c.hash, Compression::none).ok());
    }
  };
  add_all(cs.feed(data));
  add_all(cs.finish());
  std::vector<uint8_t> s = b.serialized();
  if (out_builder) *out_builder = b;
  return s;
}

const char* const kWorkedFooterDump = R"(
0000: 5845 5442 4c4f 4201 4f9d 19ee 965d 75f0
0010: 3538 2cfe a93d e801 20a3 79fb 38fd e73d
0020: 746f 0210 e50b d5a7 5842 4c42 4853 4800
0030: 0200 0000 ca2b 8bc3 c5ba 8b11 de86 7730
0040: e87a 2b9c cb5c 2b1b b996 6606 8268 968c
0050: 60d4 bb7d 4790 cc4b ded4 8478 c2b6 7ee9
0060: 912a 3667 d040 b661 3a5f bcb6 2708 ff29
0070: 11bb d8ca 5842 4c42 424e 4401 0200 0000
0080: 0800 0200 500d 0300 0000 0200 400d 0300
0090: 0200 0000 8400 0000 3800 0000 0000 0000
00a0: 0000 0000 0000 0000 0000 0000 ac00 0000
)";

}  // namespace

TEST_CASE("chunk header vectors (§4.2, §11.1 #10)") {
  CHECK(header_bytes({0, 66051, Compression::lz4, 131072}) == unhex("0003020101000002"));
  CHECK(header_bytes({0, 4, Compression::none, 4}) == unhex("0004000000040000"));
  auto h = parse_chunk_header(unhex("0003020101000002"));
  REQUIRE(h.ok());
  CHECK(h->version == 0);
  CHECK(h->compressed_len == 66051);
  CHECK(h->scheme == Compression::lz4);
  CHECK(h->raw_len == 131072);
  // §11.4 headers.
  auto h0 = parse_chunk_header(unhex("0000000200000002"));
  REQUIRE(h0.ok());
  CHECK(h0->compressed_len == 131072);
  CHECK(h0->raw_len == 131072);
  auto h1 = parse_chunk_header(unhex("00400d0100400d01"));
  REQUIRE(h1.ok());
  CHECK(h1->raw_len == 68928);
}

TEST_CASE("chunk header validation rejects bad input (§4.2)") {
  auto expect = [](std::string_view hex, Errc code, std::string_view text) {
    auto r = parse_chunk_header(unhex(hex));
    REQUIRE(!r.ok());
    CHECK(r.error().code == code);
    CHECK(r.error().message.find(text) != std::string::npos);
  };
  expect("0104000000040000", Errc::protocol, "version");
  expect("0004000003040000", Errc::protocol, "scheme");
  expect("0004000063040000", Errc::protocol, "scheme");  // 99 = internal "Auto"
  expect("0001000401000000", Errc::protocol, "compressed length");  // 262145 > 2*131072
  expect("0000000101010002", Errc::protocol, "raw length");         // 131073 > 131072
  expect("0005000000040000", Errc::protocol, "uncompressed chunk");  // None with 5 != 4
  expect("00040000000400", Errc::protocol, "truncated");
  expect("", Errc::protocol, "truncated");
  expect("584554424c4f4201", Errc::protocol, "footer");
  CHECK(starts_with_footer_magic(unhex("584554424c4f4201")));
  CHECK(!starts_with_footer_magic(unhex("0004000000040000")));
  // Boundary values are accepted.
  CHECK(parse_chunk_header(unhex("0000000401000002")).ok());  // 2*131072 payload, 131072 raw
}

TEST_CASE("BG4 split / regroup (§4.3, §11.1 #9)") {
  std::vector<uint8_t> in = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<uint8_t> out(10);
  bg4_split(in, out.data());
  CHECK(out == unhex("00040801050902060307"));
  std::vector<uint8_t> back(10);
  bg4_regroup(out, back.data());
  CHECK(back == in);
  std::mt19937_64 rng(3);
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{7}, size_t{131071},
                   size_t{131072}}) {
    std::vector<uint8_t> d(n);
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> g(n), r(n);
    bg4_split(d, g.data());
    bg4_regroup(g, r.data());
    CHECK(r == d);
    // Independent definition: group k holds bytes k, k+4, k+8, ...
    std::vector<uint8_t> expect;
    for (size_t k = 0; k < 4; ++k) {
      for (size_t i = k; i < n; i += 4) expect.push_back(d[i]);
    }
    CHECK(g == expect);
  }
}

TEST_CASE("LZ4 chunk example from §4.6 decodes") {
  auto chunk = unhex("001a000001640000" "04224d18604082" "0b000000" "1f6101004b506161616161" "00000000");
  auto h = parse_chunk_header(chunk);
  REQUIRE(h.ok());
  CHECK(h->scheme == Compression::lz4);
  CHECK(h->compressed_len == 26);
  CHECK(h->raw_len == 100);
  std::vector<uint8_t> raw(100);
  REQUIRE(decode_chunk(*h, std::span(chunk).subspan(8), raw).ok());
  CHECK(raw == std::vector<uint8_t>(100, 'a'));
  CHECK(chunk_hash(raw).hex() == "5ece8a25d93f447f79c6e3c4c02960f18afdfd0738277763a3435782190d2c04");
  // Our encoder emits the same frame header bytes (FLG 0x60, BD 0x40, HC 0x82).
  std::vector<uint8_t> ours;
  REQUIRE(encode_chunk(raw, Compression::lz4, ours).value() == Compression::lz4);
  CHECK(std::vector<uint8_t>(ours.begin() + 8, ours.begin() + 15) == unhex("04224d18604082"));
}

TEST_CASE("BG4 chunk example from §4.6 decodes; two-chunk xorb hash") {
  auto payload = unhex("04224d186040821a0000001f0001000c1f0101000c1f0201000c1f0301000750030303030300000000");
  auto header = unhex("0029000002800000");
  auto h = parse_chunk_header(header);
  REQUIRE(h.ok());
  CHECK(h->scheme == Compression::bg4_lz4);
  CHECK(h->compressed_len == 41);
  CHECK(h->raw_len == 128);
  REQUIRE(payload.size() == 41);
  std::vector<uint8_t> raw(128);
  REQUIRE(decode_chunk(*h, payload, raw).ok());
  std::vector<uint8_t> expect;
  for (int i = 0; i < 32; ++i) expect.insert(expect.end(), {0, 1, 2, 3});
  CHECK(raw == expect);
  Hash bg4_hash = chunk_hash(raw);
  CHECK(bg4_hash.hex() == "a0761a10974c444bef5f16bf58ba3b2b324f08da90950660698518230d17d59b");
  std::vector<uint8_t> a100(100, 'a');
  std::vector<HashSize> leaves = {{chunk_hash(a100), 100}, {bg4_hash, 128}};
  CHECK(xorb_hash(leaves).hex() == "30964db6bf137790a94b61f51e5bb20748bc74b2f7ba4ae4617e0dcd15462b3c");

  // The same xorb built and parsed by the codec.
  XorbBuilder b;
  REQUIRE(b.add(a100, chunk_hash(a100), Compression::lz4).ok());
  REQUIRE(b.add(raw, bg4_hash, Compression::bg4_lz4).value() == Compression::bg4_lz4);
  CHECK(b.hash().hex() == "30964db6bf137790a94b61f51e5bb20748bc74b2f7ba4ae4617e0dcd15462b3c");
  auto parsed = parse_xorb(b.serialized());
  REQUIRE(parsed.ok());
  CHECK(parsed->hash == b.hash());
  CHECK(parsed->chunks.size() == 2);
  CHECK(parsed->chunks[1].scheme == Compression::bg4_lz4);
}

TEST_CASE("encode_chunk round-trips every scheme and falls back to None") {
  std::mt19937_64 rng(5);
  std::vector<std::vector<uint8_t>> inputs;
  inputs.push_back({});
  inputs.push_back({42});
  inputs.push_back(text_like(65536, 1));
  inputs.push_back(text_like(65537, 2));
  inputs.push_back(text_like(131072, 3));
  inputs.push_back(splitmix_data(131072, 4));  // incompressible
  inputs.push_back(splitmix_data(9000, 5));
  for (const auto& raw : inputs) {
    for (Compression c : {Compression::none, Compression::lz4, Compression::bg4_lz4}) {
      INFO("size " << raw.size() << " scheme " << compression_name(c));
      std::vector<uint8_t> out = {0xAB};  // appends after existing bytes
      auto used = encode_chunk(raw, c, out);
      REQUIRE(used.ok());
      auto h = parse_chunk_header(std::span(out).subspan(1));
      REQUIRE(h.ok());
      CHECK(h->scheme == *used);
      CHECK(h->raw_len == raw.size());
      CHECK(out.size() == 1 + 8 + h->compressed_len);
      if (*used != Compression::none) CHECK(h->compressed_len < raw.size());  // strictly shorter
      if (c == Compression::none || raw.size() < 16) CHECK(*used == Compression::none);
      std::vector<uint8_t> back(raw.size());
      REQUIRE(decode_chunk(*h, std::span(out).subspan(9), back).ok());
      CHECK(back == raw);
      // liblz4's own frame decoder accepts our frames.
      if (*used == Compression::lz4) CHECK(lz4f_decode(std::span(out).subspan(9), raw.size()) == raw);
    }
  }
  std::vector<uint8_t> sink;
  auto big = encode_chunk(std::vector<uint8_t>(kMaxChunk + 1), Compression::none, sink);
  CHECK(big.code() == Errc::invalid_argument);
  CHECK(sink.empty());
  // Incompressible data stays None even when LZ4 is asked for.
  std::vector<uint8_t> out;
  CHECK(encode_chunk(splitmix_data(100000, 8), Compression::lz4, out).value() == Compression::none);
  CHECK(out.size() == 100008);
}

TEST_CASE("LZ4 frame decoder accepts every valid frame shape") {
  auto raw = text_like(131072, 9);
  std::vector<LZ4F_preferences_t> shapes;
  for (auto bs : {LZ4F_max64KB, LZ4F_max256KB, LZ4F_max1MB, LZ4F_max4MB}) {
    for (auto mode : {LZ4F_blockLinked, LZ4F_blockIndependent}) {
      for (int flags = 0; flags < 8; ++flags) {
        LZ4F_preferences_t p{};
        p.frameInfo.blockSizeID = bs;
        p.frameInfo.blockMode = mode;
        p.frameInfo.contentChecksumFlag = (flags & 1) ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
        p.frameInfo.blockChecksumFlag = (flags & 2) ? LZ4F_blockChecksumEnabled : LZ4F_noBlockChecksum;
        p.frameInfo.contentSize = (flags & 4) ? raw.size() : 0;
        shapes.push_back(p);
      }
    }
  }
  for (const auto& p : shapes) {
    auto frame = lz4f_encode(raw, p);
    std::vector<uint8_t> out(raw.size());
    Status s = lz4_frame_decode(frame, out);
    INFO("bs " << p.frameInfo.blockSizeID << " linked " << (p.frameInfo.blockMode == LZ4F_blockLinked));
    REQUIRE(s.ok());
    CHECK(out == raw);
  }
  // Concatenated frames and a skippable frame in between.
  std::vector<uint8_t> first(raw.begin(), raw.begin() + 50000), second(raw.begin() + 50000, raw.end());
  auto f1 = lz4f_encode(first, LZ4F_preferences_t{});
  auto f2 = lz4f_encode(second, LZ4F_preferences_t{});
  std::vector<uint8_t> cat = f1;
  auto skip = unhex("522a4d1803000000aabbcc");
  cat.insert(cat.end(), skip.begin(), skip.end());
  cat.insert(cat.end(), f2.begin(), f2.end());
  std::vector<uint8_t> out(raw.size());
  REQUIRE(lz4_frame_decode(cat, out).ok());
  CHECK(out == raw);
  // Legacy frame: magic + (u32 size + raw LZ4 block)*
  std::vector<uint8_t> legacy = unhex("02214c18");
  std::vector<uint8_t> block(LZ4_compressBound(static_cast<int>(raw.size())));
  int c = LZ4_compress_default(reinterpret_cast<const char*>(raw.data()), reinterpret_cast<char*>(block.data()),
                               static_cast<int>(raw.size()), static_cast<int>(block.size()));
  REQUIRE(c > 0);
  uint32_t c32 = static_cast<uint32_t>(c);
  legacy.insert(legacy.end(), reinterpret_cast<uint8_t*>(&c32), reinterpret_cast<uint8_t*>(&c32) + 4);
  legacy.insert(legacy.end(), block.begin(), block.begin() + c);
  std::fill(out.begin(), out.end(), 0);
  REQUIRE(lz4_frame_decode(legacy, out).ok());
  CHECK(out == raw);
}

TEST_CASE("LZ4 frame decoder rejects lies and corruption") {
  std::vector<uint8_t> a100(100, 'a');
  auto chunk = unhex("001a000001640000" "04224d18604082" "0b000000" "1f6101004b506161616161" "00000000");
  auto payload = std::span(chunk).subspan(8);
  auto decode_to = [&](std::span<const uint8_t> p, size_t n) {
    std::vector<uint8_t> out(n);
    return lz4_frame_decode(p, out);
  };
  // Header claims 99 or 101 raw bytes: decompressed length mismatch.
  CHECK(decode_to(payload, 99).code() == Errc::corrupt);
  Status s = decode_to(payload, 101);
  REQUIRE(!s.ok());
  CHECK(s.error().code == Errc::corrupt);
  CHECK(s.error().message.find("101") != std::string::npos);
  // Via decode_chunk with a lying header.
  std::vector<uint8_t> out(101);
  CHECK(decode_chunk({0, 26, Compression::lz4, 101}, payload, out).code() == Errc::corrupt);
  // Truncations at every length are errors, never crashes.
  for (size_t n = 0; n < payload.size(); ++n) {
    INFO("truncated to " << n);
    CHECK(decode_to(payload.first(n), 100).code() == Errc::corrupt);
  }
  // Bad magic, bad header checksum, bad block data.
  auto bad = std::vector<uint8_t>(payload.begin(), payload.end());
  bad[0] ^= 1;
  CHECK(decode_to(bad, 100).code() == Errc::corrupt);
  bad = std::vector<uint8_t>(payload.begin(), payload.end());
  bad[6] ^= 1;
  CHECK(decode_to(bad, 100).code() == Errc::corrupt);
  bad = std::vector<uint8_t>(payload.begin(), payload.end());
  bad[11] = 0xFF;  // literal length nibble garbage
  bad[12] = 0xFF;
  CHECK(decode_to(bad, 100).code() == Errc::corrupt);
  // Block size larger than the frame's max block size.
  bad = unhex("04224d18604082" "01000100" "00");
  CHECK(decode_to(bad, 100).code() == Errc::corrupt);
  // Content checksum mismatch.
  LZ4F_preferences_t p{};
  p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  auto framed = lz4f_encode(a100, p);
  framed[framed.size() - 1] ^= 0x55;
  CHECK(decode_to(framed, 100).code() == Errc::corrupt);
  // Empty payload.
  CHECK(decode_to({}, 0).code() == Errc::corrupt);
}

TEST_CASE("§11.4 worked example: xorb bytes, footer, parse") {
  XorbBuilder b;
  auto xorb = worked_example_xorb(&b);
  REQUIRE(xorb.size() == 200016);
  CHECK(std::vector<uint8_t>(xorb.begin(), xorb.begin() + 8) == unhex("0000000200000002"));
  CHECK(std::vector<uint8_t>(xorb.begin() + 131080, xorb.begin() + 131088) == unhex("00400d0100400d01"));
  CHECK(hf::sha256_hex(xorb.data(), xorb.size()) == "8b67ee8c8028337201369fe6cef1ed200bc7faf0aa9d8520bac1b19c9c50123d");
  CHECK(b.hash().hex() == "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74");
  CHECK(hf::hex_encode(b.hash().bytes.data(), 32) == "4f9d19ee965d75f035382cfea93de80120a379fb38fde73d746f0210e50bd5a7");
  REQUIRE(b.chunks().size() == 2);
  CHECK(b.chunks()[0].serialized_offset == 0);
  CHECK(b.chunks()[0].serialized_len == 131080);
  CHECK(b.chunks()[1].serialized_offset == 131080);
  CHECK(b.chunks()[1].serialized_len == 68936);
  CHECK(b.chunks()[1].raw_offset == 131072);
  CHECK(b.raw_bytes() == 200000);

  auto footer = serialize_footer(b.footer());
  REQUIRE(footer.ok());
  CHECK(footer->size() == 176);
  CHECK(*footer == from_dump(kWorkedFooterDump));

  std::vector<uint8_t> stored = xorb;
  stored.insert(stored.end(), footer->begin(), footer->end());
  if (auto file = read_vector_file("ex_xorb_with_footer.bin")) CHECK(*file == stored);

  size_t footer_start = 0;
  auto f = parse_footer(stored, &footer_start);
  REQUIRE(f.ok());
  CHECK(footer_start == 200016);
  CHECK(f->version == 1);
  CHECK(f->xorb_hash == b.hash());
  CHECK(f->chunk_boundary_offsets == std::vector<uint32_t>{131080, 200016});
  CHECK(f->unpacked_chunk_offsets == std::vector<uint32_t>{131072, 200000});
  CHECK(f->chunk_hashes[0].hex() == "118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882");
  CHECK(f->chunk_hashes[1].hex() == "7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827");

  std::vector<uint8_t> raw;
  auto parsed = parse_xorb(stored, {.decode = true, .raw_out = &raw});
  REQUIRE(parsed.ok());
  CHECK(parsed->footer.has_value());
  CHECK(parsed->records_end == 200016);
  CHECK(parsed->hash == b.hash());
  CHECK(raw == linear_data(200000, 7, 13));
  // Without the footer (upload form) the same hash is recomputed.
  auto upload = parse_xorb(xorb);
  REQUIRE(upload.ok());
  CHECK(!upload->footer.has_value());
  CHECK(upload->hash == b.hash());
  auto shallow = parse_xorb(stored, {.decode = false});
  REQUIRE(shallow.ok());
  CHECK(shallow->hash.is_zero());
  CHECK(shallow->chunks.size() == 2);
}

TEST_CASE("xorb footer: V0 legacy layout is readable") {
  XorbBuilder b;
  auto xorb = worked_example_xorb(&b);
  // "XETBLOB" | 0 | hash | n | boundaries | hashes | 16 bytes, then info_length.
  std::vector<uint8_t> info = {'X', 'E', 'T', 'B', 'L', 'O', 'B', 0};
  const Hash xh = b.hash();
  info.insert(info.end(), xh.bytes.begin(), xh.bytes.end());
  auto put32 = [&info](uint32_t v) {
    for (int i = 0; i < 4; ++i) info.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(2);
  put32(131080);
  put32(200016);
  for (const auto& c : b.chunks()) info.insert(info.end(), c.hash.bytes.begin(), c.hash.bytes.end());
  info.insert(info.end(), 16, 0);
  uint32_t len = static_cast<uint32_t>(info.size());
  put32(len);
  std::vector<uint8_t> stored = xorb;
  stored.insert(stored.end(), info.begin(), info.end());
  size_t start = 0;
  auto f = parse_footer(stored, &start);
  INFO((f.ok() ? std::string() : f.error().message));
  REQUIRE(f.ok());
  CHECK(f->version == 0);
  CHECK(start == 200016);
  CHECK(f->chunk_boundary_offsets == std::vector<uint32_t>{131080, 200016});
  CHECK(f->unpacked_chunk_offsets.empty());
  auto parsed = parse_xorb(stored);
  REQUIRE(parsed.ok());
  CHECK(parsed->hash == b.hash());
}

TEST_CASE("xorb footer: corruption is detected") {
  XorbBuilder b;
  auto xorb = worked_example_xorb(&b);
  auto footer = serialize_footer(b.footer()).value();
  auto stored = [&](const std::vector<uint8_t>& f) {
    std::vector<uint8_t> s = xorb;
    s.insert(s.end(), f.begin(), f.end());
    return s;
  };
  auto expect = [&](std::vector<uint8_t> f, Errc code, std::string_view text) {
    size_t start;
    auto r = parse_footer(stored(f), &start);
    REQUIRE(!r.ok());
    CHECK(r.error().code == code);
    INFO(r.error().message);
    CHECK(r.error().message.find(text) != std::string::npos);
  };
  auto mutate = [&](size_t at, uint8_t x) {
    auto f = footer;
    f[at] ^= x;
    return f;
  };
  expect(mutate(0, 1), Errc::protocol, "XETBLOB");
  expect(mutate(7, 3), Errc::protocol, "version");
  expect(mutate(8, 1), Errc::corrupt, "hash");                  // xorb hash bit flip
  expect(mutate(40, 1), Errc::protocol, "XBLBHSH");
  expect(mutate(48, 1), Errc::protocol, "info_length");        // hash count 3
  expect(mutate(52, 1), Errc::corrupt, "hash");                 // chunk hash bit flip
  expect(mutate(116, 1), Errc::protocol, "XBLBBND");
  expect(mutate(124, 1), Errc::protocol, "counts");             // boundaries count
  expect(mutate(131, 0x80), Errc::protocol, "boundary");         // boundary 0 beyond boundary 1
  expect(mutate(139, 0x80), Errc::protocol, "unpacked");         // unpacked offsets out of order
  expect(mutate(140, 1), Errc::corrupt, "hash");                 // chunk 1 size changes the hash
  expect(mutate(144, 1), Errc::protocol, "counts");             // trailer count
  expect(mutate(148, 1), Errc::protocol, "hashes section");
  expect(mutate(152, 1), Errc::protocol, "boundary section");
  expect(mutate(172, 4), Errc::protocol, "XETBLOB");             // info_length off by four
  auto huge = footer;
  huge[175] = 0x7f;
  expect(huge, Errc::protocol, "info_length");
  // Too short to hold anything.
  size_t start;
  CHECK(parse_footer(unhex("0100"), &start).code() == Errc::protocol);
  // Footer that does not describe the records before it (records end mismatch).
  auto s = stored(footer);
  s.erase(s.begin() + 5);  // shift everything by one byte
  CHECK(!parse_footer(s, &start).ok());
  CHECK(!parse_xorb(s).ok());
}

TEST_CASE("parse_xorb rejects malformed xorbs") {
  auto xorb = worked_example_xorb();
  // Truncated in a payload and in a header.
  auto r = parse_xorb(std::span(xorb).first(100000));
  REQUIRE(!r.ok());
  CHECK(r.error().code == Errc::protocol);
  CHECK(r.error().message.find("truncated") != std::string::npos);
  r = parse_xorb(std::span(xorb).first(131083));
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("chunk 1") != std::string::npos);
  // Trailing garbage that is not a footer.
  auto g = xorb;
  g.push_back(1);
  CHECK(parse_xorb(g).code() == Errc::protocol);
  // XETBLOB that is not a valid footer.
  g = xorb;
  for (char c : std::string("XETBLOB!")) g.push_back(static_cast<uint8_t>(c));
  CHECK(parse_xorb(g).code() == Errc::protocol);
  // Empty is a valid empty xorb.
  auto e = parse_xorb({});
  REQUIRE(e.ok());
  CHECK(e->chunks.empty());
  CHECK(e->hash.is_zero());
  // More than 8192 chunks.
  std::vector<uint8_t> many;
  for (int i = 0; i < 8193; ++i) {
    uint8_t one = static_cast<uint8_t>(i);
    REQUIRE(encode_chunk({&one, 1}, Compression::none, many).ok());
  }
  auto m = parse_xorb(many);
  REQUIRE(!m.ok());
  CHECK(m.error().code == Errc::too_large);
  // A footer whose chunk hashes disagree with the data is caught when decoding.
  XorbBuilder b;
  std::vector<uint8_t> d1(5000, 1), d2(6000, 2);
  REQUIRE(b.add(d1, chunk_hash(d1), Compression::lz4).ok());
  REQUIRE(b.add(d2, chunk_hash(d1), Compression::lz4).ok());  // wrong hash for chunk 1
  auto f = serialize_footer(b.footer()).value();
  std::vector<uint8_t> s = b.serialized();
  s.insert(s.end(), f.begin(), f.end());
  auto bad = parse_xorb(s);
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == Errc::corrupt);
  CHECK(parse_xorb(s, {.decode = false}).ok());  // layout alone is consistent
}

TEST_CASE("ChunkRecordDecoder: any split gives the same chunks") {
  // Mixed schemes and sizes.
  std::vector<std::vector<uint8_t>> raws = {text_like(65536, 1), splitmix_data(70000, 2), text_like(131072, 3),
                                            {7},                 text_like(10000, 4),     splitmix_data(131072, 5)};
  std::vector<uint8_t> xorb;
  std::vector<Compression> schemes = {Compression::lz4, Compression::lz4,  Compression::bg4_lz4,
                                      Compression::none, Compression::bg4_lz4, Compression::lz4};
  for (size_t i = 0; i < raws.size(); ++i) REQUIRE(encode_chunk(raws[i], schemes[i], xorb).ok());
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 40; ++trial) {
    ChunkRecordDecoder dec;
    std::vector<std::vector<uint8_t>> got;
    uint64_t record_total = 0;
    auto on = [&](uint32_t ordinal, std::span<const uint8_t> raw, uint32_t record) -> Status {
      CHECK(ordinal == got.size());
      got.emplace_back(raw.begin(), raw.end());
      record_total += record;
      return {};
    };
    size_t pos = 0;
    while (pos < xorb.size()) {
      size_t n = trial == 0 ? 1 : trial == 1 ? xorb.size() : std::min<size_t>(xorb.size() - pos, 1 + rng() % 90000);
      n = std::min(n, xorb.size() - pos);
      REQUIRE(dec.feed(std::span(xorb).subspan(pos, n), on).ok());
      pos += n;
    }
    REQUIRE(dec.finish().ok());
    CHECK(got == raws);
    CHECK(record_total == xorb.size());
    CHECK(dec.chunks() == raws.size());
    CHECK(dec.bytes_consumed() == xorb.size());
  }
}

TEST_CASE("ChunkRecordDecoder: truncation, callback errors, corrupt chunks, footer") {
  auto xorb = worked_example_xorb();
  auto noop = [](uint32_t, std::span<const uint8_t>, uint32_t) -> Status { return {}; };
  for (size_t cut : {size_t{3}, size_t{8}, size_t{1000}, size_t{131080 + 4}, size_t{200015}}) {
    ChunkRecordDecoder dec;
    REQUIRE(dec.feed(std::span(xorb).first(cut), noop).ok());
    Status s = dec.finish();
    REQUIRE(!s.ok());
    CHECK(s.error().code == Errc::protocol);
    CHECK(s.error().message.find("truncated") != std::string::npos);
  }
  {
    ChunkRecordDecoder dec;
    REQUIRE(dec.feed(xorb, noop).ok());
    CHECK(dec.finish().ok());
  }
  {
    ChunkRecordDecoder dec;
    auto stop = [](uint32_t ordinal, std::span<const uint8_t>, uint32_t) -> Status {
      if (ordinal == 1) return make_error(Errc::cancelled, "enough");
      return {};
    };
    Status s = dec.feed(xorb, stop);
    REQUIRE(!s.ok());
    CHECK(s.error().code == Errc::cancelled);
    CHECK(dec.feed(xorb, noop).code() == Errc::internal);  // stays failed
  }
  {
    // Lying raw length inside an LZ4 record.
    auto rec = unhex("001a000001650000" "04224d18604082" "0b000000" "1f6101004b506161616161" "00000000");
    ChunkRecordDecoder dec;
    Status s = dec.feed(rec, noop);
    REQUIRE(!s.ok());
    CHECK(s.error().code == Errc::corrupt);
    CHECK(s.error().message.find("chunk 0") != std::string::npos);
  }
  {
    // Bad header mid-stream.
    auto bad = xorb;
    bad[131080] = 1;
    ChunkRecordDecoder dec;
    int seen = 0;
    Status s = dec.feed(bad, [&](uint32_t, std::span<const uint8_t>, uint32_t) -> Status {
      ++seen;
      return {};
    });
    CHECK(seen == 1);
    REQUIRE(!s.ok());
    CHECK(s.error().message.find("chunk 1") != std::string::npos);
  }
  {
    // Footer: an error by default, end of data with stop_at_footer, split inside the magic.
    XorbBuilder b;
    auto x = worked_example_xorb(&b);
    auto f = serialize_footer(b.footer()).value();
    x.insert(x.end(), f.begin(), f.end());
    ChunkRecordDecoder strict;
    Status s = strict.feed(x, noop);
    REQUIRE(!s.ok());
    CHECK(s.error().message.find("footer") != std::string::npos);
    ChunkRecordDecoder tolerant(true);
    int chunks = 0;
    auto count = [&](uint32_t, std::span<const uint8_t>, uint32_t) -> Status {
      ++chunks;
      return {};
    };
    REQUIRE(tolerant.feed(std::span(x).first(200016 + 3), count).ok());
    REQUIRE(tolerant.feed(std::span(x).subspan(200016 + 3), count).ok());
    REQUIRE(tolerant.finish().ok());
    CHECK(tolerant.footer_seen());
    CHECK(chunks == 2);
    CHECK(tolerant.bytes_consumed() == 200016);
  }
}

TEST_CASE("XorbBuilder enforces the §4.4 limits") {
  XorbBuilder b;
  CHECK(b.empty());
  CHECK(b.fits(kMaxChunk));
  CHECK(!b.fits(kMaxChunk + 1));
  // 8192 tiny chunks fit, the 8193rd does not.
  for (int i = 0; i < 8192; ++i) {
    uint8_t v = static_cast<uint8_t>(i);
    REQUIRE(b.fits(1));
    REQUIRE(b.add({&v, 1}, chunk_hash({&v, 1}), Compression::none).ok());
  }
  CHECK(!b.fits(1));
  uint8_t v = 0;
  CHECK(b.add({&v, 1}, chunk_hash({&v, 1}), Compression::none).code() == Errc::too_large);
  b.clear();
  CHECK(b.empty());
  // With None, serialized = raw + 8 per chunk, so the serialized limit binds at 511 chunks.
  std::vector<uint8_t> big(kMaxChunk, 0);
  Hash h = chunk_hash(big);
  int added = 0;
  while (b.fits(big.size())) {
    REQUIRE(b.add(big, h, Compression::none).ok());
    ++added;
  }
  CHECK(added == 511);
  CHECK(b.serialized().size() <= kMaxXorbSerializedBytes);
  b.clear();
  added = 0;
  while (b.fits(big.size())) {
    REQUIRE(b.add(big, h, Compression::lz4).ok());
    ++added;
  }
  CHECK(added == 512);  // compression keeps serialized small: the raw 64 MiB limit binds
  CHECK(b.raw_bytes() == kMaxXorbRawBytes);
  CHECK(b.serialized().size() < (1u << 20));
}

TEST_CASE("BG4 predictor (§4.3)") {
  // Byte 0 of every 4-byte group random, the rest zero: very different popcount
  // distributions per position, so BG4 is recommended.
  std::mt19937_64 rng(1);
  std::vector<uint8_t> structured(65536, 0);
  for (size_t i = 0; i < structured.size(); i += 4) structured[i] = static_cast<uint8_t>(rng());
  CHECK(bg4_recommended(structured));
  CHECK(choose_compression(structured) == Compression::bg4_lz4);
  // Uniform random bytes: every position has the same distribution.
  auto random = splitmix_data(65536, 3);
  CHECK(!bg4_recommended(random));
  CHECK(choose_compression(random) == Compression::lz4);
}
