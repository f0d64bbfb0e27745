// Content-defined chunking: spec §2, §2.7 and §11.3 vectors, streaming split-independence.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/chunker.h"
#include "test/unit/xet/test_util.h"

using namespace hf;
using namespace hf::xet;
using namespace hf::xet::testing;

namespace {

std::vector<uint64_t> chunk_ends(std::span<const uint8_t> data) {
  Chunker c;
  std::vector<uint64_t> ends;
  c.feed(data, ends);
  c.finish(ends);
  return ends;
}

std::vector<uint64_t> chunk_ends_pieces(std::span<const uint8_t> data, size_t piece) {
  Chunker c;
  std::vector<uint64_t> ends;
  for (size_t pos = 0; pos < data.size(); pos += piece) c.feed(data.subspan(pos, std::min(piece, data.size() - pos)), ends);
  c.finish(ends);
  return ends;
}

// §2.3 byte-by-byte definition, written independently of the optimised chunker.
std::vector<uint64_t> reference_ends(std::span<const uint8_t> data) {
  std::vector<uint64_t> ends;
  size_t start = 0;
  while (start < data.size()) {
    uint64_t h = 0;
    size_t end = data.size();
    for (size_t i = start; i < data.size(); ++i) {
      h = (h << 1) + kGearTable[data[i]];
      size_t size = i + 1 - start;
      if (size < kMinChunk) continue;
      if (size >= kMaxChunk || (h & kGearMask) == 0) {
        end = i + 1;
        break;
      }
    }
    ends.push_back(end);
    start = end;
  }
  return ends;
}

std::vector<uint64_t> multiples(uint64_t step, uint64_t total) {
  std::vector<uint64_t> v;
  for (uint64_t x = step; x < total; x += step) v.push_back(x);
  v.push_back(total);
  return v;
}

// chunking.rs get_triggering_base_data: a 128-byte pattern, `pad` zeros, repeated to n bytes.
const uint8_t kTriggerPattern[128] = {
    154, 52,  42,  34,  159, 75,  126, 224, 70,  236, 12,  196, 79,  236, 178, 124, 127, 50,  99,  178, 44,  176,
    174, 126, 250, 235, 205, 174, 252, 122, 35,  10,  20,  101, 214, 69,  193, 8,   115, 105, 158, 228, 120, 111,
    136, 162, 198, 251, 211, 183, 253, 252, 164, 147, 63,  16,  186, 162, 117, 23,  170, 36,  205, 187, 174, 76,
    210, 174, 211, 175, 12,  173, 145, 59,  2,   70,  222, 181, 159, 227, 182, 156, 189, 51,  226, 106, 24,  50,
    183, 157, 140, 10,  8,   23,  212, 70,  10,  234, 23,  33,  219, 254, 39,  236, 70,  49,  191, 116, 9,   115,
    15,  101, 26,  159, 165, 220, 15,  170, 56,  125, 92,  163, 94,  235, 38,  40,  49,  81,
};

std::vector<uint8_t> triggering_data(size_t n, size_t pad) {
  std::vector<uint8_t> d(kTriggerPattern, kTriggerPattern + 128);
  d.resize(128 + pad, 0);
  while (d.size() < n) {
    size_t take = std::min(n - d.size(), d.size());
    d.insert(d.end(), d.begin(), d.begin() + static_cast<ptrdiff_t>(take));
  }
  return d;
}

// test_correctness_100kb_hitting_data: data[11111] and the first 7 boundaries for each pad
// (the 8th is always 65536).
struct TriggerCase {
  uint8_t at_11111;
  uint32_t ends[7];
};
const TriggerCase kTrigger[128] = {
    {236, {8256, 16448, 24640, 32832, 41024, 49216, 57408}}, {50, {8320, 16576, 24832, 33088, 41344, 49600, 57856}},
    {36, {8254, 16574, 24894, 33214, 41534, 49854, 58174}},  {116, {8317, 16570, 24823, 33076, 41329, 49582, 57835}},
    {126, {8248, 16564, 24880, 33196, 41512, 49828, 58144}}, {145, {8310, 16556, 24802, 33048, 41294, 49540, 57786}},
    {235, {8238, 16546, 24854, 33162, 41470, 49778, 58086}}, {228, {8299, 16534, 24769, 33004, 41239, 49474, 57709}},
    {70, {8224, 16520, 24816, 33112, 41408, 49704, 58000}},  {178, {8284, 16504, 24724, 32944, 41164, 49384, 57604}},
    {173, {8206, 16486, 24766, 33046, 41326, 49606, 57886}}, {0, {8265, 16466, 24667, 32868, 41069, 49270, 57471}},
    {252, {8324, 16584, 24844, 33104, 41364, 49624, 57884}}, {159, {8242, 16561, 24880, 33199, 41518, 49837, 58156}},
    {69, {8300, 16536, 24772, 33008, 41244, 49480, 57716}},  {219, {8215, 16509, 24803, 33097, 41391, 49685, 57979}},
    {126, {8272, 16480, 24688, 32896, 41104, 49312, 57520}}, {10, {8329, 16594, 24859, 33124, 41389, 49654, 57919}},
    {124, {8240, 16562, 24884, 33206, 41528, 49850, 58172}}, {24, {8296, 16528, 24760, 32992, 41224, 49456, 57688}},
    {196, {8204, 16492, 24780, 33068, 41356, 49644, 57932}}, {106, {8259, 16454, 24649, 32844, 41039, 49234, 57429}},
    {196, {8314, 16564, 24814, 33064, 41314, 49564, 57814}}, {183, {8218, 16523, 24828, 33133, 41438, 49743, 58048}},
    {124, {8272, 16480, 24688, 32896, 41104, 49312, 57520}}, {70, {8326, 16588, 24850, 33112, 41374, 49636, 57898}},
    {126, {8226, 16542, 24858, 33174, 41490, 49806, 58122}}, {191, {8279, 16494, 24709, 32924, 41139, 49354, 57569}},
    {69, {8332, 16600, 24868, 33136, 41404, 49672, 57940}},  {163, {8228, 16549, 24870, 33191, 41512, 49833, 58154}},
    {252, {8280, 16496, 24712, 32928, 41144, 49360, 57576}}, {0, {8332, 16600, 24868, 33136, 41404, 49672, 57940}},
    {173, {8224, 16544, 24864, 33184, 41504, 49824, 58144}}, {42, {8275, 16486, 24697, 32908, 41119, 49330, 57541}},
    {70, {8326, 16588, 24850, 33112, 41374, 49636, 57898}},  {174, {8214, 16527, 24840, 33153, 41466, 49779, 58092}},
    {235, {8264, 16464, 24664, 32864, 41064, 49264, 57464}}, {186, {8314, 16564, 24814, 33064, 41314, 49564, 57814}},
    {0, {8198, 16498, 24798, 33098, 41398, 49698, 57998}},   {157, {8247, 16597, 24947, 33297, 41647, 49997, 58347}},
    {126, {8296, 16528, 24760, 32992, 41224, 49456, 57688}}, {49, {8345, 16626, 24907, 33188, 41469, 49750, 58031}},
    {36, {8224, 16554, 24884, 33214, 41544, 49874, 58204}},  {0, {8272, 16480, 24688, 32896, 41104, 49312, 57520}},
    {236, {8320, 16576, 24832, 33088, 41344, 49600, 57856}}, {105, {8195, 16499, 24803, 33107, 41411, 49715, 58019}},
    {0, {8242, 16594, 24946, 33298, 41650, 50002, 58354}},   {24, {8289, 16514, 24739, 32964, 41189, 49414, 57639}},
    {126, {8336, 16608, 24880, 33152, 41424, 49696, 57968}}, {0, {8206, 16525, 24844, 33163, 41482, 49801, 58120}},
    {70, {8252, 16618, 24984, 33350, 41716, 50082, 58448}},  {236, {8298, 16532, 24766, 33000, 41234, 49468, 57702}},
    {0, {8344, 16624, 24904, 33184, 41464, 49744, 58024}},   {12, {8209, 16535, 24861, 33187, 41513, 49839, 58165}},
    {236, {8254, 16626, 24998, 33370, 41742, 50114, 58486}}, {0, {8299, 16534, 24769, 33004, 41239, 49474, 57709}},
    {173, {8344, 16624, 24904, 33184, 41464, 49744, 58024}}, {196, {8204, 16529, 24854, 33179, 41504, 49829, 58154}},
    {0, {8248, 16618, 24988, 33358, 41728, 50098, 58468}},   {159, {8292, 16520, 24748, 32976, 41204, 49432, 57660}},
    {178, {8336, 16608, 24880, 33152, 41424, 49696, 57968}}, {0, {8380, 16696, 25012, 33328, 41644, 49960, 58276}},
    {10, {8234, 16594, 24954, 33314, 41674, 50034, 58394}},  {101, {8277, 16490, 24703, 32916, 41129, 49342, 57555}},
    {0, {8320, 16576, 24832, 33088, 41344, 49600, 57856}},   {15, {8363, 16662, 24961, 33260, 41559, 49858, 58157}},
    {147, {8212, 16554, 24896, 33238, 41580, 49922, 58264}}, {0, {8254, 16639, 25024, 33409, 41794, 50179, 58564}},
    {0, {8296, 16528, 24760, 32992, 41224, 49456, 57688}},   {227, {8338, 16612, 24886, 33160, 41434, 49708, 57982}},
    {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276}}, {0, {8223, 16581, 24939, 33297, 41655, 50013, 58371}},
    {101, {8264, 16464, 24664, 32864, 41064, 49264, 57464}}, {186, {8305, 16546, 24787, 33028, 41269, 49510, 57751}},
    {52, {8346, 16628, 24910, 33192, 41474, 49756, 58038}},  {0, {8387, 16710, 25033, 33356, 41679, 50002, 58325}},
    {70, {8224, 16588, 24952, 33316, 41680, 50044, 58408}},  {228, {8264, 16464, 24664, 32864, 41064, 49264, 57464}},
    {0, {8304, 16544, 24784, 33024, 41264, 49504, 57744}},   {0, {8344, 16624, 24904, 33184, 41464, 49744, 58024}},
    {50, {8384, 16704, 25024, 33344, 41664, 49984, 58304}},  {214, {8215, 16575, 24935, 33295, 41655, 50015, 58375}},
    {0, {8254, 16654, 25054, 33454, 41854, 50254, 58654}},   {0, {8293, 16522, 24751, 32980, 41209, 49438, 57667}},
    {50, {8332, 16600, 24868, 33136, 41404, 49672, 57940}},  {69, {8371, 16678, 24985, 33292, 41599, 49906, 58213}},
    {0, {8196, 16542, 24888, 33234, 41580, 49926, 58272}},   {0, {8234, 16619, 25004, 33389, 41774, 50159, 58544}},
    {70, {8272, 16480, 24688, 32896, 41104, 49312, 57520}},  {136, {8310, 16556, 24802, 33048, 41294, 49540, 57786}},
    {0, {8348, 16632, 24916, 33200, 41484, 49768, 58052}},   {0, {8386, 16708, 25030, 33352, 41674, 49996, 58318}},
    {101, {8204, 16564, 24924, 33284, 41644, 50004, 58364}}, {36, {8241, 16639, 25037, 33435, 41833, 50231, 58629}},
    {196, {8278, 16492, 24706, 32920, 41134, 49348, 57562}}, {0, {8315, 16566, 24817, 33068, 41319, 49570, 57821}},
    {0, {8352, 16640, 24928, 33216, 41504, 49792, 58080}},   {24, {8389, 16714, 25039, 33364, 41689, 50014, 58339}},
    {8, {8200, 16562, 24924, 33286, 41648, 50010, 58372}},   {0, {8236, 16635, 25034, 33433, 41832, 50231, 58630}},
    {0, {8272, 16480, 24688, 32896, 41104, 49312, 57520}},   {125, {8308, 16552, 24796, 33040, 41284, 49528, 57772}},
    {173, {8344, 16624, 24904, 33184, 41464, 49744, 58024}}, {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276}},
    {0, {8416, 16768, 25120, 33472, 41824, 50176, 58528}},   {0, {8219, 16607, 24995, 33383, 41771, 50159, 58547}},
    {159, {8254, 16678, 25102, 33526, 41950, 50374, 58798}}, {210, {8289, 16514, 24739, 32964, 41189, 49414, 57639}},
    {178, {8324, 16584, 24844, 33104, 41364, 49624, 57884}}, {0, {8359, 16654, 24949, 33244, 41539, 49834, 58129}},
    {0, {8394, 16724, 25054, 33384, 41714, 50044, 58374}},   {170, {8429, 16794, 25159, 33524, 41889, 50254, 58619}},
    {173, {8224, 16624, 25024, 33424, 41824, 50224, 58624}}, {235, {8258, 16452, 24646, 32840, 41034, 49228, 57422}},
    {0, {8292, 16520, 24748, 32976, 41204, 49432, 57660}},   {0, {8326, 16588, 24850, 33112, 41374, 49636, 57898}},
    {0, {8360, 16656, 24952, 33248, 41544, 49840, 58136}},   {24, {8394, 16724, 25054, 33384, 41714, 50044, 58374}},
    {228, {8428, 16792, 25156, 33520, 41884, 50248, 58612}}, {0, {8215, 16613, 25011, 33409, 41807, 50205, 58603}},
    {0, {8248, 16680, 25112, 33544, 41976, 50408, 58840}},   {0, {8281, 16498, 24715, 32932, 41149, 49366, 57583}},
    {101, {8314, 16564, 24814, 33064, 41314, 49564, 57814}}, {174, {8347, 16630, 24913, 33196, 41479, 49762, 58045}},
    {126, {8380, 16696, 25012, 33328, 41644, 49960, 58276}}, {0, {8413, 16762, 25111, 33460, 41809, 50158, 58507}},
    {0, {8192, 16574, 24956, 33338, 41720, 50102, 58484}},   {0, {8224, 16639, 25054, 33469, 41884, 50299, 58714}},
};

}  // namespace

TEST_CASE("gear table transcription check values (§2.2)") {
  uint64_t x = 0, s = 0;
  for (int i = 0; i < 256; ++i) {
    x ^= kGearTable[i];
    s += kGearTable[i];
  }
  CHECK(x == 0x6aa26c5ca5f6cbfcull);
  CHECK(s == 0xc1acb37ef35c570aull);
  CHECK(kGearTable[0] == 0xb088d3a9e840f559ull);
  CHECK(kGearTable[3] == 0x6b0a89d5b68ec777ull);
  CHECK(kGearTable[252] == 0x18f346f7abc9d394ull);
  CHECK(kGearTable[255] == 0x63c7a906c1dd187bull);
  // Cross-check with the JSON copy of the table when the vectors directory is present.
  if (auto json = read_vector_file("table.json")) {
    std::string text(json->begin(), json->end());
    std::vector<uint64_t> vals;
    const std::string list = text.substr(text.find('[') + 1, text.find(']') - text.find('[') - 1);
    for (auto part : hf::split(list, ',')) vals.push_back(hf::parse_u64(hf::trim(part)).value_or(0));
    REQUIRE(vals.size() == 256);
    for (int i = 0; i < 256; ++i) CHECK(vals[i] == kGearTable[i]);
  }
}

TEST_CASE("constants (§2.1)") {
  CHECK(kMinChunk == 8192);
  CHECK(kTargetChunk == 65536);
  CHECK(kMaxChunk == 131072);
  CHECK(kGearMask == ((kTargetChunk - 1) << std::countl_zero(uint64_t{kTargetChunk - 1})));
}

TEST_CASE("SplitMix64 1 MB seed 0: boundaries and the 19 chunk hashes (§2.7.1)") {
  auto data = splitmix_data(1000000, 0);
  CHECK(data[0] == 175);
  CHECK(data[127] == 132);
  CHECK(data[111111] == 118);
  CHECK(hf::sha256_hex(data.data(), data.size()) == "b3d0a1f7938cd4d8413a4dcffd4313e2e8ac0cb61cb1090eb140ea8e9154befb");
  const std::vector<uint64_t> expected = {84493,  134421, 144853, 243318, 271793, 336457, 467529,
                                          494581, 582000, 596735, 616815, 653164, 678202, 724510,
                                          815591, 827760, 958832, 991092, 1000000};
  CHECK(chunk_ends(data) == expected);
  CHECK(reference_ends(data) == expected);
  const char* hashes[19] = {
      "6eca1e7dadaf08cca5d82d318c800f07c2ddcec115a7e8627e5edd9605b94b8d",
      "624ea34d72a06e5d43a1b8dd10763f0d22f165992c397ed97563899b27fdd88a",
      "4411d2ec847c6e3f451a7451ff3933adb4f1c31587421b9f730b698a78313b47",
      "6342bde97433e29e0779ad33eb8040d986679040361b3cc3a06230fe60dd6c9b",
      "405253fcf15bba751adc4f507d3453273daff81ed4d8acd71c521aa1cbddc0b5",
      "4482374af7f8bebfdb5c5df0299f80128d6c58886ad7b218c562b1d74064e4cb",
      "80acc8d39c853b4b8a8c6ad7b63bf2ea68f62c2226b92f06349f92cc84d213cc",
      "a7076d7d343f711fb20fe6cd023248d8d051e8fe7d44172596cd5c7ea7edaf65",
      "44755217bbb4dadc81ea7695765230a34a2e6cb3b55f373f1de35aeba79ae92c",
      "001adc1d302d5f039278325dcbd5ec3b194f4794f1629d6f962f9f4bb78a7bff",
      "f8460a337c186f07c2e225bb287a1d3d3d686dc69d0828e99640f7d8852c5b90",
      "c9bc3da29025dc1ba562d303d815151d9a937367abb766ae842a165e8493d9fe",
      "5044339dfd65e8163bdfe642614a6be604b04d6aeacf222cf219ad287bfc5cf1",
      "163622db0fe0da93f2ef964eed4c485f3c7a9c312f8e8e8a312ab4bb8141f13e",
      "e1730534a858aa0258ad8904ef12b829b8a123a1c611250275c9ca9471e4c650",
      "1fbc6854f9185caba1e1f55393f41f83b895b18f9c99245c029025ca48f1e14b",
      "8a27b66ccf05b864b6bef6fb5c970fe894f73d2330e8e98fe7841dcdbd9e9576",
      "bc70a33e7a9ec820cac24b87023469a57bdae1bf91cc3961b95806c64a525221",
      "03e5b5f5a088269ec4b329f1e04debfac4cb54b9c0facf038f7e8e0f054be7e2",
  };
  ChunkStream cs;
  std::vector<HashSize> leaves;
  std::vector<Hash> chunk_hashes;
  for (const auto& c : cs.feed(data)) leaves.push_back({c.hash, c.data.size()});
  for (const auto& c : cs.finish()) leaves.push_back({c.hash, c.data.size()});
  REQUIRE(leaves.size() == 19);
  for (size_t i = 0; i < 19; ++i) {
    CHECK(leaves[i].hash.hex() == hashes[i]);
    chunk_hashes.push_back(leaves[i].hash);
  }
  CHECK(xorb_hash(leaves).hex() == "6f2ce16ca5e317f0100ff0e7e5bf40a0de9032e9ee1ad04b6b8ff4e36cdfbf6c");
  CHECK(file_hash(leaves).hex() == "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89");
  CHECK(range_hash(chunk_hashes).hex() == "6daf15a7ed258b91f607e8f5e6723a8564292d12c8104c156f7bad9c255a0180");
}

TEST_CASE("constant data cuts only at MAX (§2.7.2)") {
  std::vector<uint8_t> data(1000000, 59);
  CHECK(chunk_ends(data) == multiples(131072, 1000000));
}

TEST_CASE("linear patterns (§2.7.3, §11.3)") {
  auto a = linear_data(200000, 7, 13);
  CHECK(chunk_ends(a) == std::vector<uint64_t>{131072, 200000});
  auto b = linear_data(1000000, 13, 37);
  CHECK(chunk_ends(b) == multiples(131072, 1000000));
  auto leaves_of = [](std::span<const uint8_t> d) {
    std::vector<HashSize> v;
    uint64_t prev = 0;
    for (uint64_t e : chunk_ends(d)) {
      v.push_back({chunk_hash(d.subspan(prev, e - prev)), e - prev});
      prev = e;
    }
    return v;
  };
  auto la = leaves_of(a);
  CHECK(xorb_hash(la).hex() == "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74");
  CHECK(file_hash(la).hex() == "d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723");
  auto lb = leaves_of(b);
  CHECK(xorb_hash(lb).hex() == "7be289d851485c40dcde52dbcf37a7823a5ef0bfcdf1ca1c5a32ad9594c71571");
  CHECK(file_hash(lb).hex() == "041a50f3639f4a080a89237025d643e2a3e22935ca5d7dbc1a38f5c1e859f859");
}

TEST_CASE("triggering pattern: all 128 paddings (§2.7.4, chunking.rs)") {
  for (size_t pad = 0; pad < 128; ++pad) {
    INFO("pad " << pad);
    auto data = triggering_data(65536, pad);
    REQUIRE(data.size() == 65536);
    CHECK(data[11111] == kTrigger[pad].at_11111);
    std::vector<uint64_t> expected(kTrigger[pad].ends, kTrigger[pad].ends + 7);
    expected.push_back(65536);
    CHECK(chunk_ends(data) == expected);
    CHECK(chunk_ends_pieces(data, 37) == expected);
  }
  // The boundary exactly at MIN (pad 126) also matches the byte-by-byte definition.
  CHECK(reference_ends(triggering_data(65536, 126)).front() == 8192);
}

TEST_CASE("tiny inputs (§2.7.5)") {
  CHECK(chunk_ends(bytes_of("Hello World!")) == std::vector<uint64_t>{12});
  CHECK(chunk_ends({}).empty());
  std::vector<uint8_t> one(1, 7);
  CHECK(chunk_ends(one) == std::vector<uint64_t>{1});
  ChunkStream cs;
  CHECK(cs.feed({}).empty());
  CHECK(cs.finish().empty());
}

TEST_CASE("streaming is split-independent (§2.5)") {
  auto data = splitmix_data(256000, 1);
  auto whole = chunk_ends(data);
  CHECK(whole == reference_ends(data));
  for (size_t piece : {size_t{1}, size_t{37}, size_t{255}, size_t{8127}, size_t{8128}, size_t{65536}}) {
    INFO("piece " << piece);
    CHECK(chunk_ends_pieces(data, piece) == whole);
  }
  // Random piece sizes over data with many boundary shapes.
  std::mt19937_64 rng(7);
  std::vector<uint8_t> mixed = splitmix_data(700000, 9);
  std::fill(mixed.begin() + 200000, mixed.begin() + 500000, 0);  // forced MAX cuts in the middle
  auto mixed_whole = chunk_ends(mixed);
  CHECK(mixed_whole == reference_ends(mixed));
  for (int trial = 0; trial < 20; ++trial) {
    Chunker c;
    std::vector<uint64_t> ends;
    size_t pos = 0;
    while (pos < mixed.size()) {
      size_t n = std::min<size_t>(mixed.size() - pos, rng() % 70000);
      c.feed(std::span(mixed).subspan(pos, n), ends);
      pos += n;
    }
    c.finish(ends);
    CHECK(ends == mixed_whole);
  }
}

TEST_CASE("ChunkStream returns the right bytes, offsets and hashes for any split") {
  auto data = splitmix_data(600000, 3);
  auto ends = chunk_ends(data);
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 10; ++trial) {
    ChunkStream cs;
    std::vector<uint64_t> got_ends;
    std::vector<uint8_t> reassembled;
    auto take = [&](const std::vector<StreamChunk>& chunks) {
      for (const auto& c : chunks) {
        CHECK(c.offset == reassembled.size());
        CHECK(c.hash == chunk_hash(c.data));
        reassembled.insert(reassembled.end(), c.data.begin(), c.data.end());
        got_ends.push_back(reassembled.size());
      }
    };
    size_t pos = 0;
    while (pos < data.size()) {
      size_t n = std::min<size_t>(data.size() - pos, trial == 0 ? 1000 : rng() % 300000);
      // Copy into a temporary buffer that is overwritten after the call, so views into
      // the caller's data would be caught if they were kept too long.
      std::vector<uint8_t> piece(data.begin() + static_cast<ptrdiff_t>(pos),
                                 data.begin() + static_cast<ptrdiff_t>(pos + n));
      take(cs.feed(piece));
      std::fill(piece.begin(), piece.end(), 0xEE);
      pos += n;
    }
    take(cs.finish());
    CHECK(got_ends == ends);
    CHECK(reassembled == data);
  }
}

TEST_CASE("Chunker reports offsets and can be reused") {
  Chunker c;
  std::vector<uint64_t> ends;
  auto data = splitmix_data(300000, 5);
  c.feed(data, ends);
  CHECK(c.offset() == 300000);
  CHECK(c.chunk_bytes() == 300000 - ends.back());
  c.finish(ends);
  CHECK(c.offset() == 0);
  std::vector<uint64_t> again;
  c.feed(data, again);
  c.finish(again);
  CHECK(again == ends);
}

TEST_CASE("next stable chunk boundary (§2.6)") {
  CHECK(!is_stable_chunk_size(16383));
  CHECK(is_stable_chunk_size(16384));
  CHECK(is_stable_chunk_size(122879));
  CHECK(!is_stable_chunk_size(122880));
  // Ends 10000 (size 10000), 30000 (20000), 50000 (20000), 200000 (150000), 220000, 240000.
  const std::vector<uint64_t> e = {10000, 30000, 50000, 200000, 220000, 240000, 260000};
  CHECK(next_stable_chunk_boundary(0, e) == 50000u);        // i0 = 0: (30000-10000, 50000-30000) stable
  CHECK(next_stable_chunk_boundary(10000, e) == 50000u);    // first end >= p is 10000 itself
  CHECK(next_stable_chunk_boundary(10001, e) == 240000u);   // 30000: next size 20000 then 150000 (unstable)
  CHECK(next_stable_chunk_boundary(230000, e) == std::nullopt);
  CHECK(next_stable_chunk_boundary(0, {}) == std::nullopt);
  // Any edit before the returned offset leaves later boundaries unchanged (the guarantee).
  auto data = splitmix_data(1500000, 21);
  auto ends = chunk_ends(data);
  for (uint64_t p : {uint64_t{1000}, uint64_t{300000}, uint64_t{777777}}) {
    auto stable = next_stable_chunk_boundary(p, ends);
    REQUIRE(stable.has_value());
    auto edited = data;
    for (uint64_t k = 0; k < p; k += 997) edited[k] ^= 0x5a;  // scattered edits before p
    auto ends2 = chunk_ends(edited);
    std::vector<uint64_t> tail1, tail2;
    for (uint64_t x : ends) if (x >= *stable) tail1.push_back(x);
    for (uint64_t x : ends2) if (x >= *stable) tail2.push_back(x);
    CHECK(tail1 == tail2);
  }
}
