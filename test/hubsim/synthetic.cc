#include "test/hubsim/synthetic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/chunker.h"

namespace hf::hubsim {

namespace {

inline uint64_t stream_key(uint64_t seed) { return seed * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull; }

// SplitMix64's finalizer over a counter: word i of the stream depends only on (seed, i).
inline uint64_t mix_word(uint64_t key, uint64_t i) {
  uint64_t z = key + i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void synth_fill(uint64_t seed, uint64_t offset, uint8_t* out, size_t n) {
  const uint64_t key = stream_key(seed);
  uint64_t word = offset / 8;
  size_t skip = static_cast<size_t>(offset % 8);
  if (skip != 0 && n > 0) {
    uint64_t w = mix_word(key, word++);
    size_t m = std::min<size_t>(8 - skip, n);
    std::memcpy(out, reinterpret_cast<const uint8_t*>(&w) + skip, m);
    out += m;
    n -= m;
  }
  while (n >= 8) {
    uint64_t w = mix_word(key, word++);
    std::memcpy(out, &w, 8);
    out += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = mix_word(key, word);
    std::memcpy(out, &w, n);
  }
}

SyntheticSource::SyntheticSource(uint64_t seed, uint64_t size, std::string prefix)
    : seed_(seed), size_(size), prefix_(std::move(prefix)) {
  if (prefix_.size() > size_) prefix_.resize(size_);
}

void SyntheticSource::fill(uint64_t offset, uint8_t* out, size_t n) const {
  if (offset < prefix_.size()) {
    size_t m = std::min<uint64_t>(n, prefix_.size() - offset);
    std::memcpy(out, prefix_.data() + offset, m);
    out += m;
    n -= m;
    offset += m;
  }
  if (n > 0) synth_fill(seed_, offset - prefix_.size(), out, n);
}

std::span<const uint8_t> SyntheticSource::read(uint64_t offset, size_t max, std::vector<uint8_t>& scratch) const {
  size_t n = static_cast<size_t>(std::min<uint64_t>(max, size_ - offset));
  if (scratch.size() < n) scratch.resize(n);
  fill(offset, scratch.data(), n);
  return {scratch.data(), n};
}

// ---------------------------------------------------------------------------------------------
// Spec parsing

static Result<uint64_t> size_arg(std::string_view s, std::string_view what) {
  auto v = parse_size(s);
  if (!v) return make_error(Errc::invalid_argument, fmt::format("bad {} '{}' in synthetic spec", what, s));
  return *v;
}

Result<SynthFile> parse_synthetic_file(std::string_view path, std::string_view spec) {
  SynthFile f;
  f.path = std::string(path);
  auto parts = split(spec, ':');
  if (parts.empty() || parts[0].empty()) return make_error(Errc::invalid_argument, "synthetic file needs a size");
  HF_ASSIGN_OR_RETURN(f.size, size_arg(parts[0], "size"));
  f.seed = 0;
  for (size_t i = 1; i < parts.size(); ++i) {
    auto p = trim(parts[i]);
    if (p.starts_with("seed=")) {
      auto v = parse_u64(p.substr(5));
      if (!v) return make_error(Errc::invalid_argument, fmt::format("bad seed '{}'", p));
      f.seed = *v;
    } else if (p == "safetensors") {
      f.safetensors = true;
    } else if (p == "hash=fast") {
      f.real_hash = false;
    } else if (p == "hash=real") {
      f.real_hash = true;
    } else {
      return make_error(Errc::invalid_argument, fmt::format("unknown synthetic file option '{}'", p));
    }
  }
  if (f.size > (1ull << 44)) return make_error(Errc::too_large, "synthetic file larger than 16 TiB");
  return f;
}

Result<std::vector<SynthFile>> parse_synthetic_spec(std::string_view spec) {
  std::vector<SynthFile> out;
  for (auto item : split(spec, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    if (item.starts_with("file=")) {
      auto rest = item.substr(5);
      size_t c = rest.find(':');
      if (c == std::string_view::npos) return make_error(Errc::invalid_argument, "file= needs PATH:SIZE");
      HF_ASSIGN_OR_RETURN(auto f, parse_synthetic_file(rest.substr(0, c), rest.substr(c + 1)));
      out.push_back(std::move(f));
      continue;
    }
    uint64_t count = 0, lo = 4096, hi = 4096, seed = 0;
    bool real = false;
    std::vector<uint64_t> dirs;
    std::string prefix;
    bool have_files = false;
    for (auto kv : split(item, ',')) {
      kv = trim(kv);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos) return make_error(Errc::invalid_argument, fmt::format("bad synthetic item '{}'", kv));
      auto k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "files") {
        auto n = parse_u64(v);
        if (!n || *n > 10000000) return make_error(Errc::invalid_argument, "files= must be at most 10000000");
        count = *n;
        have_files = true;
      } else if (k == "size") {
        size_t dash = v.find('-');
        if (dash == std::string_view::npos) {
          HF_ASSIGN_OR_RETURN(lo, size_arg(v, "size"));
          hi = lo;
        } else {
          HF_ASSIGN_OR_RETURN(lo, size_arg(v.substr(0, dash), "size"));
          HF_ASSIGN_OR_RETURN(hi, size_arg(v.substr(dash + 1), "size"));
        }
        if (hi < lo || hi > (1ull << 40)) return make_error(Errc::invalid_argument, "bad size range");
      } else if (k == "dirs") {
        for (auto d : split(v, 'x')) {
          auto n = parse_u64(d);
          if (!n || *n == 0 || *n > 100000) return make_error(Errc::invalid_argument, "bad dirs= value");
          dirs.push_back(*n);
        }
        if (dirs.size() > 8) return make_error(Errc::invalid_argument, "dirs= nests at most 8 levels");
      } else if (k == "seed") {
        auto n = parse_u64(v);
        if (!n) return make_error(Errc::invalid_argument, "bad seed");
        seed = *n;
      } else if (k == "hash") {
        if (v == "real") real = true;
        else if (v == "fast") real = false;
        else return make_error(Errc::invalid_argument, "hash= must be fast or real");
      } else if (k == "prefix") {
        prefix = std::string(v);
      } else {
        return make_error(Errc::invalid_argument, fmt::format("unknown synthetic key '{}'", k));
      }
    }
    if (!have_files) return make_error(Errc::invalid_argument, fmt::format("synthetic item '{}' needs files= or file=", item));
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
    uint64_t leaves = 1;
    for (uint64_t d : dirs) leaves *= d;
    for (uint64_t i = 0; i < count; ++i) {
      SynthFile f;
      f.size = lo == hi ? lo : lo + rng() % (hi - lo + 1);
      f.seed = seed * 1000003ull + i + 1;
      f.real_hash = real;
      std::string path = prefix.empty() ? "" : prefix + "/";
      uint64_t leaf = i % leaves;
      // Directory digits, most significant level first.
      std::vector<uint64_t> idx(dirs.size());
      for (size_t l = dirs.size(); l-- > 0;) {
        idx[l] = leaf % dirs[l];
        leaf /= dirs[l];
      }
      for (uint64_t d : idx) path += fmt::format("d{}/", d);
      path += fmt::format("f{}.bin", i);
      f.path = std::move(path);
      out.push_back(std::move(f));
    }
  }
  return out;
}

Result<std::string> safetensors_header(uint64_t size) {
  constexpr uint64_t kTensorBytes = 64ull << 20;
  uint64_t header_len = 0;  // padded JSON length (guess, then iterate to a fixed point)
  for (int iter = 0; iter < 8; ++iter) {
    if (size < 8 + header_len) return make_error(Errc::invalid_argument, "file too small for a safetensors header");
    uint64_t data = size - 8 - header_len;
    std::string json = "{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"hf-mount-hubsim\"}";
    uint64_t off = 0;
    for (uint64_t t = 0; off < data; ++t) {
      uint64_t n = std::min(kTensorBytes, data - off);
      if (n % 2048 == 0)
        json += fmt::format(",\"tensor_{:05}\":{{\"dtype\":\"BF16\",\"shape\":[{},1024],\"data_offsets\":[{},{}]}}", t,
                            n / 2048, off, off + n);
      else
        json += fmt::format(",\"tensor_{:05}\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", t, n, off,
                            off + n);
      off += n;
    }
    json += "}";
    uint64_t padded = (json.size() + 7) / 8 * 8;
    if (padded == header_len) {
      json.append(padded - json.size(), ' ');
      std::string out(8, '\0');
      for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((padded >> (8 * i)) & 0xff);
      return out + json;
    }
    header_len = padded;
  }
  return make_error(Errc::internal, "safetensors header did not converge");
}

// ---------------------------------------------------------------------------------------------
// Synthetic xorbs

namespace {

// Serialized records (header + scheme-None payload) over chunks of synthetic files.
class SyntheticXorbSource final : public ByteSource {
 public:
  struct Chunk {
    const SyntheticSource* file;
    uint64_t file_offset;
    uint32_t len;
  };
  SyntheticXorbSource(std::vector<std::shared_ptr<const SyntheticSource>> files, std::vector<Chunk> chunks)
      : files_(std::move(files)), chunks_(std::move(chunks)) {
    ser_end_.reserve(chunks_.size());
    uint64_t e = 0;
    for (const auto& c : chunks_) {
      e += 8 + c.len;
      ser_end_.push_back(e);
    }
  }
  uint64_t size() const override { return ser_end_.empty() ? 0 : ser_end_.back(); }
  std::span<const uint8_t> read(uint64_t offset, size_t max, std::vector<uint8_t>& scratch) const override {
    size_t n = static_cast<size_t>(std::min<uint64_t>(max, size() - offset));
    if (scratch.size() < n) scratch.resize(n);
    size_t k = std::upper_bound(ser_end_.begin(), ser_end_.end(), offset) - ser_end_.begin();
    size_t pos = 0;
    while (pos < n && k < chunks_.size()) {
      uint64_t rec_start = k == 0 ? 0 : ser_end_[k - 1];
      uint64_t in = offset + pos - rec_start;
      const Chunk& c = chunks_[k];
      if (in < 8) {
        uint8_t hdr[8];
        xet::write_chunk_header(xet::ChunkHeader{0, c.len, xet::Compression::none, c.len}, hdr);
        size_t m = std::min<size_t>(8 - in, n - pos);
        std::memcpy(scratch.data() + pos, hdr + in, m);
        pos += m;
        in += m;
      }
      if (pos < n && in >= 8) {
        uint64_t p = in - 8;
        size_t m = static_cast<size_t>(std::min<uint64_t>(c.len - p, n - pos));
        c.file->fill(c.file_offset + p, scratch.data() + pos, m);
        pos += m;
        in += m;
      }
      if (in == 8 + c.len) ++k;
    }
    return {scratch.data(), pos};
  }
  const std::vector<uint64_t>& ser_end() const { return ser_end_; }

 private:
  std::vector<std::shared_ptr<const SyntheticSource>> files_;  // keeps chunk sources alive
  std::vector<Chunk> chunks_;
  std::vector<uint64_t> ser_end_;
};

}  // namespace

struct SyntheticPacker::Pending {
  std::vector<std::shared_ptr<const SyntheticSource>> files;
  std::vector<SyntheticXorbSource::Chunk> chunks;
  std::vector<xet::HashSize> leaves;
  uint64_t raw = 0;
};

SyntheticPacker::SyntheticPacker(CasStore& store, uint64_t xorb_raw_limit)
    : store_(store), limit_(std::clamp<uint64_t>(xorb_raw_limit, xet::kMaxChunk, xet::kMaxXorbRawBytes)) {}

SyntheticPacker::~SyntheticPacker() = default;

void SyntheticPacker::close_xorb() {
  if (!open_ || open_->chunks.empty()) return;
  auto rec = std::make_shared<XorbRec>();
  rec->hash = xet::xorb_hash(open_->leaves);
  rec->chunk_hashes.reserve(open_->leaves.size());
  uint64_t raw = 0;
  for (const auto& l : open_->leaves) {
    rec->chunk_hashes.push_back(l.hash);
    rec->chunk_raw.push_back(static_cast<uint32_t>(l.size));
    raw += l.size;
    rec->raw_end.push_back(raw);
  }
  auto src = std::make_shared<SyntheticXorbSource>(std::move(open_->files), std::move(open_->chunks));
  rec->ser_end = src->ser_end();
  uint64_t n = rec->chunk_hashes.size();
  rec->stored_size = src->size() + 92 + 40 * n + 4;  // records + V1 footer (spec §4.5)
  rec->bytes = std::move(src);
  rec->synthetic = true;
  closed_.push_back(rec->hash);
  store_.add_xorb(std::move(rec));
  open_.reset();
}

Result<SyntheticPacker::Packed> SyntheticPacker::add(const SynthFile& f) {
  std::string prefix;
  if (f.safetensors) {
    HF_ASSIGN_OR_RETURN(prefix, safetensors_header(f.size));
  }
  auto content = std::make_shared<const SyntheticSource>(f.seed, f.size, std::move(prefix));
  Packed out;
  out.size = f.size;
  out.content = content;

  // Chunk table: (length, hash) per chunk.
  std::vector<xet::HashSize> chunks;
  if (f.real_hash) {
    // SHA-256 and chunking+BLAKE3 cost about the same per byte: run them on two threads, each
    // generating its own copy of the bytes (generation is several times faster than either).
    Sha256Digest digest{};
    auto sha_pass = [&] {
      Sha256 sha;
      std::vector<uint8_t> sbuf(8u << 20);
      for (uint64_t off = 0; off < f.size;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(sbuf.size(), f.size - off));
        content->fill(off, sbuf.data(), n);
        sha.update(sbuf.data(), n);
        off += n;
      }
      digest = sha.finish();
    };
    std::thread sha_thread;
    bool threaded = f.size >= (64u << 20);
    if (threaded) sha_thread = std::thread(sha_pass);
    xet::ChunkStream cs(true);
    std::vector<uint8_t> buf(8u << 20);
    for (uint64_t off = 0; off < f.size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), f.size - off));
      content->fill(off, buf.data(), n);
      for (const auto& c : cs.feed({buf.data(), n})) chunks.push_back({c.hash, c.data.size()});
      off += n;
    }
    for (const auto& c : cs.finish()) chunks.push_back({c.hash, c.data.size()});
    if (threaded) sha_thread.join();
    else sha_pass();
    out.sha256_hex = hex_encode(digest.data(), digest.size());
  } else {
    std::mt19937_64 rng(f.seed ^ (f.size * 0x9E3779B97F4A7C15ull));
    uint64_t off = 0;
    uint64_t idx = 0;
    while (off < f.size) {
      uint64_t len = xet::kMinChunk + rng() % (xet::kMaxChunk - xet::kMinChunk + 1);
      len = std::min(len, f.size - off);
      uint8_t tag[40];
      std::memcpy(tag, "hubsim-synthetic", 16);
      std::memcpy(tag + 16, &f.seed, 8);
      std::memcpy(tag + 24, &idx, 8);
      std::memcpy(tag + 32, &len, 8);
      chunks.push_back({xet::keyed_hash(xet::kDataKey, {tag, sizeof tag}), len});
      off += len;
      ++idx;
    }
    out.sha256_hex = sha256_hex(fmt::format("hubsim-synthetic:{}:{}:{}", f.seed, f.size, f.safetensors));
  }
  out.file_hash = xet::file_hash(chunks);

  PendingFile pf;
  pf.rec.hash = out.file_hash;
  auto digest = hex_decode(out.sha256_hex);
  if (digest && digest->size() == 32) {
    std::array<uint8_t, 32> d{};
    std::copy(digest->begin(), digest->end(), d.begin());
    pf.rec.sha256 = d;
  }
  pf.rec.content = content;
  uint64_t file_off = 0;
  for (const auto& c : chunks) {
    if (open_ && (open_->raw + c.size > limit_ || open_->chunks.size() + 1 > xet::kMaxXorbChunks)) close_xorb();
    if (!open_) open_ = std::make_unique<Pending>();
    if (open_->files.empty() || open_->files.back() != content) open_->files.push_back(content);
    uint32_t index = static_cast<uint32_t>(open_->chunks.size());
    open_->chunks.push_back({content.get(), file_off, static_cast<uint32_t>(c.size)});
    open_->leaves.push_back(c);
    open_->raw += c.size;
    size_t xi = closed_.size();
    if (pf.empty) pf.first_chunk = c.hash;
    pf.empty = false;
    if (!pf.rec.terms.empty() && pf.term_xorb.back() == xi && pf.rec.terms.back().chunk_end == index) {
      pf.rec.terms.back().chunk_end++;
      pf.rec.terms.back().unpacked_bytes += static_cast<uint32_t>(c.size);
    } else {
      xet::FileTerm t;
      t.chunk_start = index;
      t.chunk_end = index + 1;
      t.unpacked_bytes = static_cast<uint32_t>(c.size);
      pf.rec.terms.push_back(t);
      pf.term_xorb.push_back(xi);
    }
    file_off += c.size;
  }
  files_.push_back(std::move(pf));
  return out;
}

Status SyntheticPacker::finish() {
  close_xorb();
  for (auto& pf : files_) {
    for (size_t i = 0; i < pf.rec.terms.size(); ++i) pf.rec.terms[i].xorb_hash = closed_[pf.term_xorb[i]];
    pf.rec.finalize_offsets();
    if (!pf.empty) store_.index_dedup(pf.first_chunk, {pf.rec.terms.front().xorb_hash});
    store_.add_file(std::make_shared<const FileRec>(std::move(pf.rec)));
  }
  files_.clear();
  return {};
}

}  // namespace hf::hubsim
