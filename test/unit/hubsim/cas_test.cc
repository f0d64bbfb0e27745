// Xet CAS routes of the emulator: the spec's worked example (§11.4) byte for byte,
// reconstruction trimming and Range forms, presigned URL rules, multi-range responses, xorb
// and shard upload validation, global dedup, batch reconstruction, a client-side upload round
// trip, and a full read-back of a seeded repo through reconstruction + range fetches + decoding.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/chunker.h"
#include "net/xet/reconstruction.h"
#include "net/xet/shard.h"
#include "net/xet/xorb.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

namespace {

// Spec §11.4: the 480-byte upload shard of the 200000-byte file (data[i] = (7i+13) & 0xff).
const char* const kSpecShardHex =
    "48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa902000000000000000000000000000000"
    "c9320f760b9e8dd82585cbb492657c0bc6e3717379bb011c238757ac967b0837000000c0010000000000000000000000"
    "4f9d19ee965d75f035382cfea93de80120a379fb38fde73d746f0210e50bd5a700000000400d03000000000002000000"
    "9e919638dd80d58221bdc7b278af70f8c8bb227977797ee68c300c6321fcf1ce00000000000000000000000000000000"
    "2ee9c2d9d2481a26d2a1ecbbd2970f4ee768fc24cb4eb009598504da5e23578400000000000000000000000000000000"
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000000000000000000000000000"
    "4f9d19ee965d75f035382cfea93de80120a379fb38fde73d746f0210e50bd5a70000000002000000400d0300500d0300"
    "ca2b8bc3c5ba8b11de867730e87a2b9ccb5c2b1bb99666068268968c60d4bb7d00000000000002000000000000000000"
    "4790cc4bded48478c2b67ee9912a3667d040b6613a5fbcb62708ff2911bbd8ca00000200400d01000000000000000000"
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000000000000000000000000000";
const std::string kXorb = "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74";
const std::string kFile = "d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723";
const std::string kChunk0 = "118bbac5c38b2bca9c2b7ae8307786de066696b91b2b5ccb7dbbd4608c966882";
const std::string kChunk1 = "7884d4de4bcc904767362a91e97eb6c2b6bc5f3a61b640d0cad8bb1129ff0827";

std::string spec_shard() {
  auto b = hex_decode(kSpecShardHex);
  REQUIRE(b);
  std::string s(b->begin(), b->end());
  if (const char* dir = std::getenv("HF_TEST_VECTORS")) {  // cross-check the vector file when present
    std::ifstream f(std::string(dir) + "/ex_shard_upload.bin", std::ios::binary);
    if (f) {
      std::string v((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      CHECK(v == s);
    }
  }
  return s;
}

struct CasEnv {
  Fixture fx;
  std::string cas, read, write;
  explicit CasEnv(Options o = {}) : fx(std::move(o)) {
    fx.start();
    REQUIRE(fx.srv->add_bucket("ns/up").ok());
    cas = fx.base + "/cas";
    read = fetch_token(*fx.client, "/api/buckets/ns/up/xet-read-token");
    write = fetch_token(*fx.client, "/api/buckets/ns/up/xet-write-token");
  }
  Headers auth(const std::string& t) const { return {{"Authorization", "Bearer " + t}}; }
  HttpResponse post_xorb(const std::string& hash, const std::string& body) const {
    return fx.client->post(cas + "/v1/xorbs/default/" + hash, body, auth(write));
  }
  HttpResponse post_shard(const std::string& body, bool v2 = false) const {
    return fx.client->post(cas + (v2 ? "/v2/shards" : "/v1/shards"), body, auth(write));
  }
  HttpResponse recon(const std::string& file, const std::string& range = "", bool v2 = true) const {
    Headers h = auth(read);
    if (!range.empty()) h.emplace_back("Range", range);
    return fx.client->get(cas + (v2 ? "/v2/reconstructions/" : "/v1/reconstructions/") + file, h);
  }
  // Uploads the §11.4 xorb and shard.
  void upload_spec_example() const {
    std::string data = affine_bytes(200000, 7, 13);
    auto x = post_xorb(kXorb, none_xorb({data.substr(0, 131072), data.substr(131072)}));
    REQUIRE(x.status == 200);
    auto s = post_shard(spec_shard());
    INFO(s.body);
    REQUIRE(s.status == 200);
  }
};

// A client-side upload of chunks packed into one xorb and a file made of `terms` chunk ranges.
struct Built {
  std::string xorb_hex, xorb_body, file_hex, shard, file_bytes;
};

Built build_upload(const std::vector<std::string>& chunks, const std::vector<std::pair<uint32_t, uint32_t>>& terms,
                   xet::Compression scheme = xet::Compression::none) {
  Built b;
  xet::XorbBuilder xb;
  std::vector<xet::Hash> hashes;
  for (const auto& c : chunks) {
    std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(c.data()), c.size());
    hashes.push_back(xet::chunk_hash(raw));
    REQUIRE(xb.add(raw, hashes.back(), scheme).ok());
  }
  b.xorb_hex = xb.hash().hex();
  b.xorb_body.assign(reinterpret_cast<const char*>(xb.serialized().data()), xb.serialized().size());
  xet::Shard shard;
  xet::FileInfo fi;
  std::vector<xet::HashSize> leaves;
  for (auto [s, e] : terms) {
    xet::FileTerm t;
    t.xorb_hash = xb.hash();
    t.chunk_start = s;
    t.chunk_end = e;
    std::vector<xet::Hash> range;
    for (uint32_t k = s; k < e; ++k) {
      t.unpacked_bytes += static_cast<uint32_t>(chunks[k].size());
      leaves.push_back({hashes[k], chunks[k].size()});
      range.push_back(hashes[k]);
      b.file_bytes += chunks[k];
    }
    fi.terms.push_back(t);
    fi.verification.push_back(xet::range_hash(range));
  }
  fi.file_hash = xet::file_hash(leaves);
  fi.sha256 = sha256(b.file_bytes.data(), b.file_bytes.size());
  b.file_hex = fi.file_hash.hex();
  shard.files.push_back(fi);
  xet::XorbInfo xi;
  xi.xorb_hash = xb.hash();
  uint32_t off = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {
    xi.chunks.push_back({hashes[k], off, static_cast<uint32_t>(chunks[k].size()), 0});
    off += static_cast<uint32_t>(chunks[k].size());
  }
  xi.num_bytes_in_xorb = off;
  xi.num_bytes_on_disk = static_cast<uint32_t>(b.xorb_body.size());
  shard.xorbs.push_back(xi);
  auto bytes = xet::serialize_upload_shard(shard);
  REQUIRE(bytes.ok());
  b.shard.assign(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  return b;
}

}  // namespace

TEST_CASE("cas: the spec's worked example (§11.4)", "[hubsim][cas]") {
  CasEnv env;
  const TestClient& c = *env.fx.client;
  std::string data = affine_bytes(200000, 7, 13);
  std::string body = none_xorb({data.substr(0, 131072), data.substr(131072)});
  REQUIRE(body.size() == 200016);
  REQUIRE(sha256_hex(body) == "8b67ee8c8028337201369fe6cef1ed200bc7faf0aa9d8520bac1b19c9c50123d");

  CHECK(c.post(env.cas + "/v1/xorbs/default/" + kXorb, body).status == 401);
  CHECK(c.post(env.cas + "/v1/xorbs/default/" + kXorb, body, env.auth(env.read)).status == 403);
  auto x = env.post_xorb(kXorb, body);
  REQUIRE(x.status == 200);
  CHECK(x.body == "{\"was_inserted\":true}");
  CHECK(env.post_xorb(kXorb, body).body == "{\"was_inserted\":false}");
  auto hx = c.head(env.cas + "/v1/xorbs/default/" + kXorb, env.auth(env.read));
  CHECK(hx.status == 200);
  CHECK(hx.header("content-length") == "200192");  // records + the 176-byte stored footer
  CHECK(c.head(env.cas + "/v1/xorbs/default/" + std::string(64, '0'), env.auth(env.read)).status == 404);

  // The file is unknown until its shard is registered.
  CHECK(env.recon(kFile).status == 404);
  auto s = env.post_shard(spec_shard());
  REQUIRE(s.status == 200);
  CHECK(s.body == "{\"result\":1}");
  CHECK(env.post_shard(spec_shard()).body == "{\"result\":0}");
  auto hf = c.head(env.cas + "/v1/files/" + kFile, env.auth(env.read));
  CHECK(hf.status == 200);
  CHECK(hf.header("content-length") == "200000");

  simdjson::dom::parser p;
  SECTION("v1 without Range: one term, one fetch_info covering both chunks") {
    auto r = env.recon(kFile, "", false);
    REQUIRE(r.status == 200);
    auto d = parse_json_or_fail(p, r.body);
    CHECK(num(d, "offset_into_first_range") == 0);
    auto t = d["terms"].at(0);
    CHECK(d["terms"].get_array().size() == 1);
    CHECK(str(t, "hash") == kXorb);
    CHECK(num(t, "unpacked_length") == 200000);
    CHECK(num(t["range"], "start") == 0);
    CHECK(num(t["range"], "end") == 2);
    auto fi = d["fetch_info"][kXorb].at(0);
    CHECK(num(fi["range"], "start") == 0);
    CHECK(num(fi["range"], "end") == 2);
    CHECK(num(fi["url_range"], "start") == 0);
    CHECK(num(fi["url_range"], "end") == 200015);
    CHECK(str(fi, "url").starts_with(env.fx.base + "/_xorb/default/" + kXorb + "?X-Xet-Signed-Range=bytes%3D0-200015&"));
  }
  SECTION("v2 with Range 140000-150000: leading chunk trimmed, offset 8928") {
    auto r = env.recon(kFile, "bytes=140000-150000");
    REQUIRE(r.status == 200);
    auto d = parse_json_or_fail(p, r.body);
    CHECK(num(d, "offset_into_first_range") == 8928);
    auto t = d["terms"].at(0);
    CHECK(num(t, "unpacked_length") == 68928);
    CHECK(num(t["range"], "start") == 1);
    CHECK(num(t["range"], "end") == 2);
    auto rg = d["xorbs"][kXorb].at(0)["ranges"].at(0);
    CHECK(num(rg["chunks"], "start") == 1);
    CHECK(num(rg["chunks"], "end") == 2);
    CHECK(num(rg["bytes"], "start") == 131080);
    CHECK(num(rg["bytes"], "end") == 200015);
    auto got = read_via_cas(c, env.cas, env.read, kFile, {false, false, std::make_pair(140000ull, 150000ull)});
    REQUIRE(got.ok());
    CHECK(got.value() == data.substr(140000, 10001));
  }
  SECTION("v2 with Range 0-99: trailing chunk dropped") {
    auto r = env.recon(kFile, "bytes=0-99");
    REQUIRE(r.status == 200);
    auto d = parse_json_or_fail(p, r.body);
    auto rg = d["xorbs"][kXorb].at(0)["ranges"].at(0);
    CHECK(num(d["terms"].at(0)["range"], "end") == 1);
    CHECK(num(d["terms"].at(0), "unpacked_length") == 131072);
    CHECK(num(rg["bytes"], "start") == 0);
    CHECK(num(rg["bytes"], "end") == 131079);
  }
  SECTION("Range forms: 416 past the end, open ends, suffixes, huge ends") {
    auto past = env.recon(kFile, "bytes=200000-200100");
    CHECK(past.status == 416);
    CHECK(env.recon(kFile, "bytes=200000-200100", false).status == 416);
    auto open = parse_json_or_fail(p, env.recon(kFile, "bytes=199990-").body);
    CHECK(num(open, "offset_into_first_range") == 199990 - 131072);
    simdjson::dom::parser p2;
    auto suffix = parse_json_or_fail(p2, env.recon(kFile, "bytes=-10").body);
    CHECK(num(suffix, "offset_into_first_range") == 199990 - 131072);
    simdjson::dom::parser p3;
    auto huge = parse_json_or_fail(p3, env.recon(kFile, "bytes=0-18446744073709551614").body);
    CHECK(num(huge["terms"].at(0), "unpacked_length") == 200000);
    CHECK(env.recon(kFile, "bytes=5-2").status == 400);
    CHECK(env.recon(std::string(64, 'z')).status == 400);
    for (bool v1 : {false, true}) {
      auto all = read_via_cas(c, env.cas, env.read, kFile, {v1, false, std::nullopt});
      REQUIRE(all.ok());
      CHECK(all.value() == data);
    }
  }
  SECTION("presigned URLs: subsets allowed, outside/expired/tampered refused") {
    auto d = parse_json_or_fail(p, env.recon(kFile).body);
    std::string url = str(d["xorbs"][kXorb].at(0), "url");
    auto whole = c.get(url);
    CHECK(whole.status == 200);
    CHECK(whole.body == body);
    auto sub = c.get(url, {{"Range", "bytes=131080-200015"}});
    CHECK(sub.status == 206);
    CHECK(sub.body == body.substr(131080));
    CHECK(sub.header("content-range") == "bytes 131080-200015/200192");
    CHECK(c.get(url, {{"Range", "bytes=0-200100"}}).status == 403);
    CHECK(c.get(url, {{"Range", "bytes=0-0,200016-200020"}}).status == 403);
    CHECK(c.get(url, {{"Authorization", "Bearer whatever"}, {"Range", "bytes=0-7"}}).body == body.substr(0, 8));
    std::string tampered = url;
    tampered[tampered.size() - 1] = tampered.back() == '0' ? '1' : '0';
    CHECK(c.get(tampered).status == 403);
    std::string widened = url;
    size_t at = widened.find("200015");
    widened.replace(at, 6, "200100");
    CHECK(c.get(widened).status == 403);
    Knobs k = env.fx.srv->knobs();
    k.url_ttl_s = 0;
    env.fx.srv->set_knobs(k);
    simdjson::dom::parser p2;
    auto d2 = parse_json_or_fail(p2, env.recon(kFile).body);
    auto expired = c.get(str(d2["xorbs"][kXorb].at(0), "url"), {{"Range", "bytes=0-7"}});
    CHECK(expired.status == 403);
    CHECK(expired.body.find("expired") != std::string::npos);
  }
  SECTION("global dedup returns a full shard with HMAC-keyed chunk hashes") {
    CHECK(c.get(env.cas + "/v1/chunks/default/" + std::string(64, '1'), env.auth(env.read)).status == 404);
    std::string key_seen;
    for (const char* prefix : {"default", "default-merkledb"}) {
      auto r = c.get(fmt::format("{}/v1/chunks/{}/{}", env.cas, prefix, kChunk0), env.auth(env.read));
      REQUIRE(r.status == 200);
      auto sh = xet::parse_shard({reinterpret_cast<const uint8_t*>(r.body.data()), r.body.size()});
      REQUIRE(sh.ok());
      REQUIRE(sh->footer.has_value());
      CHECK(sh->files.empty());
      REQUIRE(sh->xorbs.size() == 1);
      const auto& xi = sh->xorbs[0];
      CHECK(xi.xorb_hash.hex() == kXorb);
      REQUIRE(xi.chunks.size() == 2);
      xet::Hash key = sh->footer->chunk_hash_hmac_key;
      CHECK(!key.is_zero());
      CHECK(xi.chunks[0].chunk_hash == xet::hmac(xet::Hash::from_hex(kChunk0).value(), key));
      CHECK(xi.chunks[1].chunk_hash == xet::hmac(xet::Hash::from_hex(kChunk1).value(), key));
      CHECK(xi.chunks[1].byte_range_start == 131072);
      CHECK(sh->footer->shard_key_expiry > sh->footer->shard_creation_timestamp);
      CHECK(key.hex() != key_seen);  // a fresh key per response
      key_seen = key.hex();
    }
  }
}

TEST_CASE("cas: multi-range presigned URLs and fetch merging", "[hubsim][cas]") {
  CasEnv env;
  const TestClient& c = *env.fx.client;
  std::vector<std::string> chunks = {random_bytes(10000, 1), random_bytes(12000, 2), random_bytes(9000, 3),
                                     random_bytes(11000, 4)};
  // Terms [0,1) and [2,4): two separate byte ranges of one xorb. Terms [0,2)+[2,3) merge.
  Built b = build_upload(chunks, {{0, 1}, {2, 4}});
  REQUIRE(env.post_xorb(b.xorb_hex, b.xorb_body).status == 200);
  auto s = env.post_shard(b.shard, true);
  REQUIRE(s.status == 200);
  CHECK(s.header("content-type") == "application/x-ndjson");
  CHECK(s.body.ends_with("{\"type\":\"result\",\"result\":1}\n"));
  Built merged = build_upload(chunks, {{0, 2}, {2, 3}});
  REQUIRE(env.post_shard(merged.shard).status == 200);

  simdjson::dom::parser p;
  auto d = parse_json_or_fail(p, env.recon(b.file_hex).body);
  auto entry = d["xorbs"][b.xorb_hex].at(0);
  REQUIRE(entry["ranges"].get_array().size() == 2);
  uint64_t s0 = num(entry["ranges"].at(0)["bytes"], "start"), e0 = num(entry["ranges"].at(0)["bytes"], "end");
  uint64_t s1 = num(entry["ranges"].at(1)["bytes"], "start"), e1 = num(entry["ranges"].at(1)["bytes"], "end");
  CHECK(s0 == 0);
  CHECK(e0 == 10007);
  CHECK(s1 == 8 + 10000 + 8 + 12000);
  CHECK(e1 == b.xorb_body.size() - 1);
  std::string url = str(entry, "url");
  CHECK(url.find("X-Xet-Signed-Range=bytes%3D0-10007,22016-") != std::string::npos);
  auto multi = c.get(url, {{"Range", fmt::format("bytes={}-{},{}-{}", s0, e0, s1, e1)}});
  REQUIRE(multi.status == 206);
  CHECK(multi.header("content-type").starts_with("multipart/byteranges; boundary="));
  auto parts = parse_multipart(multi.body, multi.header("content-type"));
  REQUIRE(parts);
  REQUIRE(parts->size() == 2);
  CHECK((*parts)[0].second == b.xorb_body.substr(s0, e0 - s0 + 1));
  CHECK((*parts)[1].second == b.xorb_body.substr(s1, e1 - s1 + 1));
  auto one = c.get(url, {{"Range", fmt::format("bytes={}-{}", s1, e1)}});  // one range of a multi-range URL
  CHECK(one.status == 206);
  CHECK(one.body == b.xorb_body.substr(s1));
  CHECK(c.get(url, {{"Range", fmt::format("bytes={}-{}", e0, s1)}}).status == 403);  // spans the gap
  auto nor = c.get(url);  // no Range: the whole signed set
  CHECK(nor.status == 206);
  CHECK(parse_multipart(nor.body, nor.header("content-type"))->size() == 2);
  for (bool mr : {false, true}) {
    auto got = read_via_cas(c, env.cas, env.read, b.file_hex, {false, mr, std::nullopt});
    REQUIRE(got.ok());
    CHECK(got.value() == b.file_bytes);
  }
  // Adjacent ranges merge into one.
  simdjson::dom::parser p2;
  auto md = parse_json_or_fail(p2, env.recon(merged.file_hex).body);
  auto mr = md["xorbs"][merged.xorb_hex].at(0)["ranges"];
  REQUIRE(mr.get_array().size() == 1);
  CHECK(num(mr.at(0)["chunks"], "end") == 3);
  // One range per URL when configured.
  Knobs k = env.fx.srv->knobs();
  k.max_ranges_per_fetch = 1;
  env.fx.srv->set_knobs(k);
  simdjson::dom::parser p3;
  auto sd = parse_json_or_fail(p3, env.recon(b.file_hex).body);
  CHECK(sd["xorbs"][b.xorb_hex].get_array().size() == 2);
  // v1 gives one fetch_info entry per merged range.
  simdjson::dom::parser p4;
  auto v1 = parse_json_or_fail(p4, env.recon(b.file_hex, "", false).body);
  CHECK(v1["fetch_info"][b.xorb_hex].get_array().size() == 2);
}

TEST_CASE("cas: large presigned ranges (sent with sendfile) carry the stored bytes, from memory and from disk",
          "[hubsim][cas]") {
  std::string dir = fmt::format("/tmp/hubsim-sendfile-{}", ::getpid());
  std::filesystem::remove_all(dir);
  for (bool persisted : {false, true}) {
    INFO((persisted ? "persisted xorbs (files)" : "in-memory xorbs (memory files)"));
    Options o;
    if (persisted) o.data_dir = dir;
    CasEnv env(o);
    const TestClient& c = *env.fx.client;
    std::vector<std::string> chunks;
    for (int k = 0; k < 40; ++k) chunks.push_back(random_bytes(65536 + 17 * k, 100 + k));
    Built b = build_upload(chunks, {{0, 20}, {25, 40}});
    REQUIRE(env.post_xorb(b.xorb_hex, b.xorb_body).status == 200);
    REQUIRE(env.post_shard(b.shard).status == 200);
    simdjson::dom::parser p;
    auto d = parse_json_or_fail(p, env.recon(b.file_hex).body);
    auto entry = d["xorbs"][b.xorb_hex].at(0);
    REQUIRE(entry["ranges"].get_array().size() == 2);
    uint64_t s0 = num(entry["ranges"].at(0)["bytes"], "start"), e0 = num(entry["ranges"].at(0)["bytes"], "end");
    uint64_t s1 = num(entry["ranges"].at(1)["bytes"], "start"), e1 = num(entry["ranges"].at(1)["bytes"], "end");
    std::string url = str(entry, "url");
    // Repeated on one connection: a sendfile response must leave the connection usable.
    for (int round = 0; round < 3; ++round) {
      auto one = c.get(url, {{"Range", fmt::format("bytes={}-{}", s1, e1)}});
      REQUIRE(one.status == 206);
      CHECK(sha256_hex(one.body) == sha256_hex(b.xorb_body.substr(s1, e1 - s1 + 1)));
      auto small = c.get(url, {{"Range", fmt::format("bytes={}-{}", s0 + 5, s0 + 1000)}});  // buffered path
      REQUIRE(small.status == 206);
      CHECK(small.body == b.xorb_body.substr(s0 + 5, 996));
      auto multi = c.get(url);  // both signed ranges: boundaries from memory, parts from the file
      REQUIRE(multi.status == 206);
      auto parts = parse_multipart(multi.body, multi.header("content-type"));
      REQUIRE(parts);
      REQUIRE(parts->size() == 2);
      CHECK(sha256_hex((*parts)[0].second) == sha256_hex(b.xorb_body.substr(s0, e0 - s0 + 1)));
      CHECK(sha256_hex((*parts)[1].second) == sha256_hex(b.xorb_body.substr(s1, e1 - s1 + 1)));
    }
    auto got = read_via_cas(c, env.cas, env.read, b.file_hex);
    REQUIRE(got.ok());
    CHECK(sha256_hex(got.value()) == sha256_hex(b.file_bytes));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("cas: xorb upload validation", "[hubsim][cas]") {
  CasEnv env;
  std::string compressible(100000, 'a');
  for (size_t i = 0; i < compressible.size(); i += 7) compressible[i] = static_cast<char>('a' + i % 13);
  Built lz = build_upload({compressible.substr(0, 60000), compressible.substr(60000)}, {{0, 2}}, xet::Compression::lz4);
  Built bg = build_upload({compressible.substr(0, 50000)}, {{0, 1}}, xet::Compression::bg4_lz4);
  CHECK(env.post_xorb(lz.xorb_hex, lz.xorb_body).status == 200);
  CHECK(env.post_xorb(bg.xorb_hex, bg.xorb_body).status == 200);

  Built n = build_upload({random_bytes(5000, 9), random_bytes(6000, 10)}, {{0, 2}});
  auto mismatch = env.post_xorb(kXorb, n.xorb_body);  // body of another xorb
  CHECK(mismatch.status == 400);
  CHECK(mismatch.body.find("mismatch") != std::string::npos);
  CHECK(env.post_xorb(n.xorb_hex, n.xorb_body.substr(0, n.xorb_body.size() - 1)).status == 400);  // truncated
  std::string bad_version = n.xorb_body;
  bad_version[0] = 1;
  CHECK(env.post_xorb(n.xorb_hex, bad_version).status == 400);
  CHECK(env.post_xorb(n.xorb_hex, "").status == 400);
  CHECK(env.post_xorb("nothex", n.xorb_body).status == 400);
  // An uploaded footer is accepted and not served: ranges only ever cover chunk records.
  xet::XorbFooter f;
  f.xorb_hash = xet::Hash::from_hex(n.xorb_hex).value();
  f.chunk_hashes = {xet::chunk_hash({reinterpret_cast<const uint8_t*>(n.file_bytes.data()), 5000}),
                    xet::chunk_hash({reinterpret_cast<const uint8_t*>(n.file_bytes.data()) + 5000, 6000})};
  f.chunk_boundary_offsets = {5008, 11016};
  f.unpacked_chunk_offsets = {5000, 11000};
  auto footer = xet::serialize_footer(f);
  REQUIRE(footer.ok());
  std::string with_footer = n.xorb_body + std::string(footer->begin(), footer->end());
  auto up = env.post_xorb(n.xorb_hex, with_footer);
  CHECK(up.status == 200);
  CHECK(up.body == "{\"was_inserted\":true}");
  REQUIRE(env.post_shard(n.shard).status == 200);
  auto got = read_via_cas(*env.fx.client, env.cas, env.read, n.file_hex);
  REQUIRE(got.ok());
  CHECK(got.value() == n.file_bytes);
  // LZ4 and BG4 content decodes through the presigned path too.
  REQUIRE(env.post_shard(lz.shard).status == 200);
  REQUIRE(env.post_shard(bg.shard).status == 200);
  CHECK(read_via_cas(*env.fx.client, env.cas, env.read, lz.file_hex).value() == lz.file_bytes);
  CHECK(read_via_cas(*env.fx.client, env.cas, env.read, bg.file_hex).value() == bg.file_bytes);
}

TEST_CASE("cas: shard validation (spec §9.4)", "[hubsim][cas]") {
  CasEnv env;
  std::vector<std::string> chunks = {random_bytes(9000, 21), random_bytes(9500, 22), random_bytes(8500, 23)};
  Built b = build_upload(chunks, {{0, 3}});
  REQUIRE(env.post_xorb(b.xorb_hex, b.xorb_body).status == 200);
  auto parse = [&](const std::string& s) {
    auto r = xet::parse_shard({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    REQUIRE(r.ok());
    return std::move(r).value();
  };
  auto ser = [&](const xet::Shard& sh) {
    auto r = xet::serialize_upload_shard(sh);
    REQUIRE(r.ok());
    return std::string(r->begin(), r->end());
  };
  auto expect_400 = [&](const xet::Shard& sh, std::string_view needle) {
    auto r = env.post_shard(ser(sh));
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(r.body.find(needle) != std::string::npos);
  };
  xet::Shard good = parse(b.shard);

  xet::Shard wrong_hash = good;
  wrong_hash.files[0].file_hash = xet::Hash::from_hex(kFile).value();
  expect_400(wrong_hash, "file reconstruction does not produce this hash");

  xet::Shard missing_xorb = good;
  missing_xorb.files[0].terms[0].xorb_hash = xet::Hash::from_hex(kXorb).value();
  missing_xorb.xorbs.clear();
  expect_400(missing_xorb, "unknown xorb");

  xet::Shard bad_range = good;
  bad_range.files[0].terms[0].chunk_end = 4;
  expect_400(bad_range, "invalid chunk range");

  xet::Shard bad_bytes = good;
  bad_bytes.files[0].terms[0].unpacked_bytes += 1;
  expect_400(bad_bytes, "unpacked_segment_bytes");

  xet::Shard bad_verif = good;
  bad_verif.files[0].verification[0] = xet::Hash::from_hex(kChunk0).value();
  expect_400(bad_verif, "verification hash mismatch");

  xet::Shard no_verif = good;
  no_verif.files[0].verification.clear();
  expect_400(no_verif, "verification entries are required");

  xet::Shard bad_cas = good;
  bad_cas.xorbs[0].chunks[1].unpacked_bytes += 1;
  expect_400(bad_cas, "does not match the uploaded xorb");

  CHECK(env.post_shard("not a shard").status == 400);
  CHECK(env.post_shard(b.shard, false).status == 200);
  // v2: failures are NDJSON error frames after the validation frame.
  auto v2 = env.post_shard(ser(wrong_hash), true);
  CHECK(v2.status == 200);
  CHECK(v2.body.find("{\"type\":\"error\",\"message\":\"file reconstruction does not produce this hash") != std::string::npos);
  CHECK(v2.body.find("\"retryable\":false}") != std::string::npos);
  // The rejected file hash was never registered.
  CHECK(env.recon(kFile).status == 404);
  CHECK(env.recon(b.file_hex).status == 200);
}

TEST_CASE("cas: batch reconstruction, empty files, token expiry, v2 fallback", "[hubsim][cas]") {
  CasEnv env;
  const TestClient& c = *env.fx.client;
  env.upload_spec_example();
  std::string empty = env.fx.srv->cas_put("").value();
  CHECK(empty == std::string(64, '0'));

  auto g = c.get(env.cas + "/v1/reconstructions?file_id=" + kFile + "&file_id=" + empty + "&file_id=" + std::string(64, 'e'),
                 env.auth(env.read));
  REQUIRE(g.status == 200);
  auto batch = xet::parse_batch_reconstruction_v1(g.body);
  REQUIRE(batch.ok());
  REQUIRE(batch->files.size() == 2);  // unknown ids are skipped
  bool seen = false;
  for (const auto& [h, terms] : batch->files) {
    if (h.hex() == kFile) {
      seen = true;
      REQUIRE(terms.size() == 1);
      CHECK(terms[0].unpacked_length == 200000);
    } else {
      CHECK(terms.empty());
    }
  }
  CHECK(seen);
  auto post = c.post(env.cas + "/v1/reconstructions", fmt::format(R"([{{"prefix":"default","hash":"{}"}}])", kFile),
                     env.auth(env.read));
  REQUIRE(post.status == 200);
  CHECK(xet::parse_batch_reconstruction_v1(post.body).ok());

  // Empty file (§12.18): no Range or bytes=0- -> empty terms; past the end -> 416.
  simdjson::dom::parser p;
  auto e0 = parse_json_or_fail(p, env.recon(empty).body);
  CHECK(e0["terms"].get_array().size() == 0);
  simdjson::dom::parser p2;
  auto e1 = parse_json_or_fail(p2, env.recon(empty, "bytes=0-1000").body);
  CHECK(e1["terms"].get_array().size() == 0);
  CHECK(env.recon(empty, "bytes=1-5").status == 416);
  CHECK(c.head(env.cas + "/v1/files/" + empty, env.auth(env.read)).header("content-length") == "0");

  // Tokens: expired or forged -> 401.
  Knobs k = env.fx.srv->knobs();
  k.token_ttl_s = 0;
  env.fx.srv->set_knobs(k);
  std::string dead = fetch_token(c, "/api/buckets/ns/up/xet-read-token");
  CHECK(c.get(env.cas + "/v2/reconstructions/" + kFile, env.auth(dead)).status == 401);
  std::string forged = env.read;
  forged[forged.size() - 1] = forged.back() == 'a' ? 'b' : 'a';
  CHECK(c.get(env.cas + "/v2/reconstructions/" + kFile, env.auth(forged)).status == 401);
  CHECK(c.get(env.cas + "/v2/reconstructions/" + kFile).status == 401);

  // v2 disabled: 404 so that clients fall back to v1.
  k.token_ttl_s = 3600;
  k.v2_reconstructions = false;
  env.fx.srv->set_knobs(k);
  CHECK(env.recon(kFile).status == 404);
  CHECK(env.recon(kFile, "", false).status == 200);
}

TEST_CASE("cas: client-side upload round trip into a bucket", "[hubsim][cas]") {
  CasEnv env;
  const TestClient& c = *env.fx.client;
  // Chunk like a client would, pack into xorbs of at most 8 chunks, LZ4.
  std::string data = random_bytes(700000, 77) + std::string(300000, 'z');
  xet::ChunkStream cs;
  std::vector<std::string> chunks;
  for (const auto& ch : cs.feed({reinterpret_cast<const uint8_t*>(data.data()), data.size()}))
    chunks.emplace_back(reinterpret_cast<const char*>(ch.data.data()), ch.data.size());
  for (const auto& ch : cs.finish()) chunks.emplace_back(reinterpret_cast<const char*>(ch.data.data()), ch.data.size());
  REQUIRE(chunks.size() > 8);
  xet::Shard shard;
  xet::FileInfo fi;
  std::vector<xet::HashSize> leaves;
  for (size_t start = 0; start < chunks.size(); start += 8) {
    size_t end = std::min(chunks.size(), start + 8);
    std::vector<std::string> part(chunks.begin() + start, chunks.begin() + end);
    Built b = build_upload(part, {{0, static_cast<uint32_t>(part.size())}}, xet::Compression::lz4);
    REQUIRE(env.post_xorb(b.xorb_hex, b.xorb_body).status == 200);
    auto parsed = xet::parse_shard({reinterpret_cast<const uint8_t*>(b.shard.data()), b.shard.size()});
    REQUIRE(parsed.ok());
    fi.terms.push_back(parsed->files[0].terms[0]);
    fi.verification.push_back(parsed->files[0].verification[0]);
    shard.xorbs.push_back(parsed->xorbs[0]);
    for (const auto& ch : part)
      leaves.push_back({xet::chunk_hash({reinterpret_cast<const uint8_t*>(ch.data()), ch.size()}), ch.size()});
  }
  fi.file_hash = xet::file_hash(leaves);
  shard.files.push_back(fi);
  auto bytes = xet::serialize_upload_shard(shard);
  REQUIRE(bytes.ok());
  auto up = env.post_shard(std::string(bytes->begin(), bytes->end()), true);
  REQUIRE(up.status == 200);
  CHECK(up.body.ends_with("{\"type\":\"result\",\"result\":1}\n"));
  std::string hex = fi.file_hash.hex();
  auto batch = c.post("/api/buckets/ns/up/batch",
                      fmt::format(R"({{"type":"addFile","path":"up/data.bin","xetHash":"{}","mtime":{}}})", hex,
                                  now_unix_ns() / 1000000) + "\n");
  REQUIRE(batch.status == 200);
  auto h = c.head("/buckets/ns/up/resolve/up/data.bin");
  CHECK(h.header("x-xet-hash") == hex);
  CHECK(h.header("x-linked-size") == std::to_string(data.size()));
  for (bool v1 : {false, true}) {
    for (bool mr : {false, true}) {
      auto got = read_via_cas(c, env.cas, env.read, hex, {v1, mr, std::nullopt});
      REQUIRE(got.ok());
      CHECK(sha256_hex(got.value()) == sha256_hex(data));
    }
  }
  auto part = read_via_cas(c, env.cas, env.read, hex, {false, true, std::make_pair(123456ull, 876543ull)});
  REQUIRE(part.ok());
  CHECK(part.value() == data.substr(123456, 876543 - 123456 + 1));
  CHECK(sha256_hex(c.get_follow("/buckets/ns/up/resolve/up/data.bin").body) == sha256_hex(data));
}

TEST_CASE("cas: every file of a seeded repo reads back through the CAS", "[hubsim][cas]") {
  std::string dir = fmt::format("/tmp/hubsim-readback-{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/nested/deeper");
  std::map<std::string, std::string> files = {
      {"empty.txt", ""},
      {"one.txt", "1"},
      {"small.json", "{\"k\": [1, 2, 3]}\n"},
      {"text.md", std::string(90000, 'm') + "\n"},
      {"random.bin", random_bytes(1500000, 31)},
      {"nested/affine.bin", affine_bytes(2500000, 13, 37)},
      {"nested/deeper/mixed.bin", random_bytes(400000, 32) + std::string(700000, '\0') + affine_bytes(300000, 3, 1)},
      {"nested/deeper/tiny.bin", std::string("\0\1\2", 3)},
  };
  for (const auto& [p, bytes] : files) std::ofstream(dir + "/" + p, std::ios::binary) << bytes;
  Options o;
  o.xorb_target_bytes = 1 << 20;  // several xorbs; files span xorbs and share them
  Fixture fx(o);
  REQUIRE(fx.srv->add_repo_from_dir(RepoType::model, "acme/seeded", dir).ok());
  fx.start();
  const TestClient& c = *fx.client;
  std::string tok = fetch_token(c, "/api/models/acme/seeded/xet-read-token/main");
  simdjson::dom::parser p;
  auto tree = parse_json_or_fail(p, c.get("/api/models/acme/seeded/tree/main?recursive=true").body);
  size_t checked = 0, xet_files = 0;
  std::set<int> schemes;
  std::set<std::string> xorbs_seen;
  std::map<std::string, std::set<std::string>> files_of_xorb;
  size_t max_xorbs_per_file = 0;
  for (auto e : tree.get_array()) {
    if (str(e, "type") != "file") continue;
    std::string path = str(e, "path");
    const std::string& want = files.at(path);
    CHECK(num(e, "size") == want.size());
    std::string xh = str(e, "xetHash");
    if (xh != "<missing>") {
      ++xet_files;
      CHECK(str(e["lfs"], "oid") == sha256_hex(want));
      for (bool mr : {false, true}) {
        auto got = read_via_cas(c, fx.base + "/cas", tok, xh, {false, mr, std::nullopt});
        INFO(path);
        REQUIRE(got.ok());
        CHECK(sha256_hex(got.value()) == sha256_hex(want));
      }
      auto mid = read_via_cas(c, fx.base + "/cas", tok, xh, {true, false, std::make_pair(want.size() / 3, want.size() / 2)});
      REQUIRE(mid.ok());
      CHECK(mid.value() == want.substr(want.size() / 3, want.size() / 2 - want.size() / 3 + 1));
      // Which compression schemes are stored: walk the record headers of every fetched range.
      simdjson::dom::parser p2;
      auto rec = parse_json_or_fail(p2, c.get(fx.base + "/cas/v2/reconstructions/" + xh,
                                                {{"Authorization", "Bearer " + tok}}).body);
      max_xorbs_per_file = std::max<size_t>(max_xorbs_per_file, rec["xorbs"].get_object().size());
      for (auto [hash, fetches] : rec["xorbs"].get_object()) {
        xorbs_seen.insert(std::string(hash));
        files_of_xorb[std::string(hash)].insert(path);
        for (auto f : fetches.get_array()) {
          auto resp = c.get(str(f, "url"));  // no Range: every signed range (multipart if several)
          const std::string& bytes = resp.body;
          auto parts = parse_multipart(bytes, resp.header("content-type"));
          std::vector<std::string> bodies;
          if (f["ranges"].get_array().size() == 1) bodies.push_back(bytes);
          else if (parts) for (auto& pt : *parts) bodies.push_back(pt.second);
          for (const auto& b : bodies) {
            size_t off = 0;
            while (off + 8 <= b.size()) {
              auto hdr = xet::parse_chunk_header({reinterpret_cast<const uint8_t*>(b.data()) + off, 8});
              REQUIRE(hdr.ok());
              schemes.insert(static_cast<int>(hdr->scheme));
              off += 8 + hdr->compressed_len;
            }
            CHECK(off == b.size());
          }
        }
      }
    } else {
      auto got = c.get_follow("/acme/seeded/resolve/main/" + url_encode_path(path));
      CHECK(got.status == 200);
      CHECK(got.body == want);
    }
    ++checked;
  }
  CHECK(checked == files.size());
  CHECK(xet_files == 5);
  // 1 MiB xorbs: a file spans several xorbs, and small files share a xorb with others. (The
  // periodic affine file yields identical xorbs, which the CAS stores once.)
  CHECK(xorbs_seen.size() >= 3);
  CHECK(max_xorbs_per_file >= 2);
  size_t max_sharing = 0;
  for (const auto& [x, fs] : files_of_xorb) max_sharing = std::max(max_sharing, fs.size());
  CHECK(max_sharing >= 2);
  CHECK(schemes == std::set<int>{0, 1, 2});  // None, LZ4 and BG4 all occur
  std::filesystem::remove_all(dir);
}
