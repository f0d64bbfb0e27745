#include "net/xet/reconstruction.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>

#include "base/json_writer.h"
#include "net/xet/chunker.h"
#include "net/xet/xorb.h"

namespace hf::xet {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

Error bad_recon(std::string msg) { return make_error(Errc::protocol, "reconstruction: " + std::move(msg)); }

Result<element> field(const object& o, std::string_view key, std::string_view where) {
  element e;
  if (o.at_key(key).get(e)) return bad_recon(fmt::format("{}: missing field \"{}\"", where, key));
  return e;
}

Result<uint64_t> get_u64(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(element e, field(o, key, where));
  uint64_t v;
  if (e.get_uint64().get(v)) return bad_recon(fmt::format("{}: \"{}\" is not an unsigned integer", where, key));
  return v;
}

Result<uint32_t> get_u32(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(uint64_t v, get_u64(o, key, where));
  if (v > UINT32_MAX) return bad_recon(fmt::format("{}: \"{}\" exceeds 32 bits", where, key));
  return static_cast<uint32_t>(v);
}

Result<object> get_object(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(element e, field(o, key, where));
  object r;
  if (e.get_object().get(r)) return bad_recon(fmt::format("{}: \"{}\" is not an object", where, key));
  return r;
}

Result<array> get_array(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(element e, field(o, key, where));
  array r;
  if (e.get_array().get(r)) return bad_recon(fmt::format("{}: \"{}\" is not an array", where, key));
  return r;
}

Result<std::string_view> get_string(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(element e, field(o, key, where));
  std::string_view s;
  if (e.get_string().get(s)) return bad_recon(fmt::format("{}: \"{}\" is not a string", where, key));
  return s;
}

Result<Hash> parse_hash(std::string_view s, std::string_view where) {
  auto h = Hash::from_hex(s);
  if (!h.ok()) return bad_recon(fmt::format("{}: {}", where, h.error().message));
  return *h;
}

Result<ChunkRange> get_chunk_range(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(object r, get_object(o, key, where));
  ChunkRange c;
  HF_ASSIGN_OR_RETURN(c.start, get_u32(r, "start", where));
  HF_ASSIGN_OR_RETURN(c.end, get_u32(r, "end", where));
  if (c.start >= c.end) return bad_recon(fmt::format("{}: empty or inverted chunk range [{}, {})", where, c.start, c.end));
  return c;
}

Result<ByteRangeIncl> get_byte_range(const object& o, std::string_view key, std::string_view where) {
  HF_ASSIGN_OR_RETURN(object r, get_object(o, key, where));
  ByteRangeIncl b;
  HF_ASSIGN_OR_RETURN(b.start, get_u64(r, "start", where));
  HF_ASSIGN_OR_RETURN(b.end, get_u64(r, "end", where));
  if (b.start > b.end) return bad_recon(fmt::format("{}: inverted byte range [{}, {}]", where, b.start, b.end));
  return b;
}

Status check_fetch_range(const FetchRange& f, std::string_view where) {
  // A range of k chunk records spans at least 8k and at most k * (8 + 2*131072) bytes.
  const uint64_t k = f.chunks.end - f.chunks.start;
  const uint64_t len = f.bytes.end - f.bytes.start + 1;
  if (len < k * kChunkHeaderSize || len > k * kMaxChunkRecord) {
    return bad_recon(fmt::format("{}: {} bytes cannot hold {} chunk records", where, len, k));
  }
  // No xorb holds more than kMaxXorbChunks chunks or kMaxXorbRecordBytes bytes (§4.4): larger
  // claims would make a client allocate and download without bound.
  if (f.chunks.end > kMaxXorbChunks || len > kMaxXorbRecordBytes) {
    return bad_recon(fmt::format("{}: chunks [{}, {}) / {} bytes exceed what a xorb can hold", where, f.chunks.start,
                                f.chunks.end, len));
  }
  return {};
}

Result<Term> parse_term(const element& e, size_t index) {
  std::string where = fmt::format("term {}", index);
  object o;
  if (e.get_object().get(o)) return bad_recon(where + ": not an object");
  Term t;
  HF_ASSIGN_OR_RETURN(std::string_view hex, get_string(o, "hash", where));
  HF_ASSIGN_OR_RETURN(t.xorb, parse_hash(hex, where));
  HF_ASSIGN_OR_RETURN(t.unpacked_length, get_u32(o, "unpacked_length", where));
  HF_ASSIGN_OR_RETURN(t.range, get_chunk_range(o, "range", where));
  return t;
}

Result<std::vector<Term>> parse_terms(const array& arr) {
  if (arr.size() > kMaxReconstructionTerms) {
    return make_error(Errc::too_large, fmt::format("reconstruction: {} terms exceed the limit", arr.size()));
  }
  std::vector<Term> terms;
  terms.reserve(arr.size());
  for (element e : arr) {
    HF_ASSIGN_OR_RETURN(Term t, parse_term(e, terms.size()));
    terms.push_back(t);
  }
  return terms;
}

// v2 "xorbs": { hex: [ {url, ranges:[{chunks, bytes}]} ] }
Result<XorbFetchMap> parse_xorbs_v2(const object& xorbs) {
  XorbFetchMap out;
  size_t total_ranges = 0;
  for (auto [key, value] : xorbs) {
    std::string where = fmt::format("xorb {}", key);
    HF_ASSIGN_OR_RETURN(Hash h, parse_hash(key, where));
    array entries;
    if (value.get_array().get(entries)) return bad_recon(where + ": not an array");
    if (entries.size() == 0) return bad_recon(where + ": no fetch entries");
    std::vector<XorbFetch> fetches;
    for (element fe : entries) {
      object fo;
      if (fe.get_object().get(fo)) return bad_recon(where + ": fetch entry is not an object");
      XorbFetch f;
      HF_ASSIGN_OR_RETURN(std::string_view url, get_string(fo, "url", where));
      f.url.assign(url);
      HF_ASSIGN_OR_RETURN(array ranges, get_array(fo, "ranges", where));
      if (ranges.size() == 0) return bad_recon(where + ": fetch entry without ranges");
      total_ranges += ranges.size();
      if (total_ranges > kMaxReconstructionRanges) {
        return make_error(Errc::too_large, "reconstruction: too many fetch ranges");
      }
      for (element re : ranges) {
        object ro;
        if (re.get_object().get(ro)) return bad_recon(where + ": range is not an object");
        FetchRange r;
        HF_ASSIGN_OR_RETURN(r.chunks, get_chunk_range(ro, "chunks", where));
        HF_ASSIGN_OR_RETURN(r.bytes, get_byte_range(ro, "bytes", where));
        f.ranges.push_back(r);
      }
      fetches.push_back(std::move(f));
    }
    out.emplace_back(h, std::move(fetches));
  }
  return out;
}

// v1 "fetch_info": { hex: [ {range, url, url_range} ] }
Result<XorbFetchMap> parse_fetch_info_v1(const object& info) {
  XorbFetchMap out;
  size_t total_ranges = 0;
  for (auto [key, value] : info) {
    std::string where = fmt::format("fetch_info {}", key);
    HF_ASSIGN_OR_RETURN(Hash h, parse_hash(key, where));
    array entries;
    if (value.get_array().get(entries)) return bad_recon(where + ": not an array");
    if (entries.size() == 0) return bad_recon(where + ": no fetch entries");
    total_ranges += entries.size();
    if (total_ranges > kMaxReconstructionRanges) return make_error(Errc::too_large, "reconstruction: too many fetch ranges");
    std::vector<XorbFetch> fetches;
    fetches.reserve(entries.size());
    for (element fe : entries) {
      object fo;
      if (fe.get_object().get(fo)) return bad_recon(where + ": entry is not an object");
      XorbFetch f;
      FetchRange r;
      HF_ASSIGN_OR_RETURN(r.chunks, get_chunk_range(fo, "range", where));
      HF_ASSIGN_OR_RETURN(std::string_view url, get_string(fo, "url", where));
      HF_ASSIGN_OR_RETURN(r.bytes, get_byte_range(fo, "url_range", where));
      f.url.assign(url);
      f.ranges.push_back(r);
      fetches.push_back(std::move(f));
    }
    out.emplace_back(h, std::move(fetches));
  }
  return out;
}

void sort_map(XorbFetchMap& m) {
  std::sort(m.begin(), m.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [h, fetches] : m) {
    for (auto& f : fetches) {
      std::sort(f.ranges.begin(), f.ranges.end(),
                [](const FetchRange& a, const FetchRange& b) { return a.chunks.start < b.chunks.start; });
    }
  }
}

const std::vector<XorbFetch>* lookup(const XorbFetchMap& m, const Hash& h) {
  auto it = std::lower_bound(m.begin(), m.end(), h, [](const auto& e, const Hash& k) { return e.first < k; });
  if (it == m.end() || it->first != h) return nullptr;
  return &it->second;
}

Reconstruction::Located locate(const XorbFetchMap& m, const Term& t) {
  const auto* fetches = lookup(m, t.xorb);
  if (!fetches) return {};
  auto contains = [&t](const FetchRange& r) { return r.chunks.start <= t.range.start && t.range.end <= r.chunks.end; };
  // With sorted, non-overlapping ranges the only candidate is the last range starting at or
  // before the term's start.
  for (const XorbFetch& f : *fetches) {
    auto it = std::upper_bound(f.ranges.begin(), f.ranges.end(), t.range.start,
                               [](uint32_t s, const FetchRange& r) { return s < r.chunks.start; });
    if (it != f.ranges.begin() && contains(*(it - 1))) return {&f, &*(it - 1)};
  }
  // Overlapping ranges (unusual but not invalid): fall back to a scan.
  for (const XorbFetch& f : *fetches) {
    for (const FetchRange& r : f.ranges) {
      if (contains(r)) return {&f, &r};
    }
  }
  return {};
}

// Sorted map + range checks + no duplicate keys.
Status check_map(XorbFetchMap& m) {
  sort_map(m);
  for (size_t i = 0; i < m.size(); ++i) {
    if (i > 0 && m[i].first == m[i - 1].first) return bad_recon(fmt::format("duplicate xorb {}", m[i].first.hex()));
    for (const XorbFetch& f : m[i].second) {
      for (const FetchRange& r : f.ranges) HF_TRY(check_fetch_range(r, fmt::format("xorb {}", m[i].first.hex())));
    }
  }
  return {};
}

Status check_terms(const std::vector<Term>& terms, const XorbFetchMap& m) {
  for (size_t i = 0; i < terms.size(); ++i) {
    const Term& t = terms[i];
    const uint64_t k = t.range.end - t.range.start;
    if (t.range.start >= t.range.end) return bad_recon(fmt::format("term {}: empty chunk range", i));
    if (t.range.end > kMaxXorbChunks) {
      return bad_recon(fmt::format("term {}: chunks [{}, {}) exceed what a xorb can hold ({} chunks)", i, t.range.start,
                                  t.range.end, kMaxXorbChunks));
    }
    if (t.unpacked_length == 0 || t.unpacked_length > k * kMaxChunk) {
      return bad_recon(fmt::format("term {}: unpacked_length {} impossible for {} chunks", i, t.unpacked_length, k));
    }
    if (!locate(m, t).range) {
      return bad_recon(fmt::format("term {}: no xorb fetch entry found for {} chunks [{}, {})", i, t.xorb.hex(),
                                  t.range.start, t.range.end));
    }
  }
  return {};
}

Result<element> parse_document(simdjson::dom::parser& parser, std::string_view json) {
  if (json.size() > kMaxReconstructionJson) {
    return make_error(Errc::too_large, fmt::format("reconstruction: {}-byte document exceeds the limit", json.size()));
  }
  element doc;
  if (auto err = parser.parse(json.data(), json.size(), true).get(doc)) {
    return bad_recon(fmt::format("invalid JSON: {}", simdjson::error_message(err)));
  }
  return doc;
}

Result<Reconstruction> parse_single(std::string_view json, bool v2) {
  simdjson::dom::parser parser(std::max<size_t>(json.size(), 64));
  HF_ASSIGN_OR_RETURN(element doc, parse_document(parser, json));
  object root;
  if (doc.get_object().get(root)) return bad_recon("document is not an object");
  Reconstruction r;
  HF_ASSIGN_OR_RETURN(r.offset_into_first_range, get_u64(root, "offset_into_first_range", "document"));
  HF_ASSIGN_OR_RETURN(array terms, get_array(root, "terms", "document"));
  HF_ASSIGN_OR_RETURN(r.terms, parse_terms(terms));
  if (v2) {
    HF_ASSIGN_OR_RETURN(object xorbs, get_object(root, "xorbs", "document"));
    HF_ASSIGN_OR_RETURN(r.fetches, parse_xorbs_v2(xorbs));
  } else {
    HF_ASSIGN_OR_RETURN(object info, get_object(root, "fetch_info", "document"));
    HF_ASSIGN_OR_RETURN(r.fetches, parse_fetch_info_v1(info));
  }
  HF_TRY(check_map(r.fetches));
  HF_TRY(validate_reconstruction(r));
  return r;
}

void write_chunk_range(JsonWriter& w, std::string_view key, const ChunkRange& c) {
  w.key(key).begin_object().kv("start", uint64_t{c.start}).kv("end", uint64_t{c.end}).end_object();
}

void write_byte_range(JsonWriter& w, std::string_view key, const ByteRangeIncl& b) {
  w.key(key).begin_object().kv("start", b.start).kv("end", b.end).end_object();
}

void write_terms(JsonWriter& w, const std::vector<Term>& terms) {
  w.begin_array();
  for (const Term& t : terms) {
    w.begin_object().kv("hash", t.xorb.hex()).kv("unpacked_length", uint64_t{t.unpacked_length});
    write_chunk_range(w, "range", t.range);
    w.end_object();
  }
  w.end_array();
}

void write_fetch_info_v1(JsonWriter& w, const XorbFetchMap& m) {
  w.key("fetch_info").begin_object();
  for (const auto& [h, fetches] : m) {
    w.key(h.hex()).begin_array();
    for (const XorbFetch& f : fetches) {
      for (const FetchRange& r : f.ranges) {
        w.begin_object();
        write_chunk_range(w, "range", r.chunks);
        w.kv("url", f.url);
        write_byte_range(w, "url_range", r.bytes);
        w.end_object();
      }
    }
    w.end_array();
  }
  w.end_object();
}

}  // namespace

Reconstruction::Located Reconstruction::find(const Term& t) const { return locate(fetches, t); }

void Reconstruction::sort_fetches() { sort_map(fetches); }

uint64_t Reconstruction::total_unpacked() const {
  uint64_t s = 0;
  for (const Term& t : terms) s += t.unpacked_length;
  return s;
}

Status validate_reconstruction(const Reconstruction& r) {
  if (r.terms.size() > kMaxReconstructionTerms) return make_error(Errc::too_large, "reconstruction: too many terms");
  for (size_t i = 1; i < r.fetches.size(); ++i) {
    if (!(r.fetches[i - 1].first < r.fetches[i].first)) return bad_recon("fetches are not sorted or contain duplicates");
  }
  HF_TRY(check_terms(r.terms, r.fetches));
  if (!r.terms.empty() && r.offset_into_first_range >= r.terms[0].unpacked_length) {
    return bad_recon(fmt::format("offset_into_first_range {} is not inside the first term ({} bytes)",
                                r.offset_into_first_range, r.terms[0].unpacked_length));
  }
  return {};
}

Result<Reconstruction> parse_reconstruction_v2(std::string_view json) { return parse_single(json, true); }

Result<Reconstruction> parse_reconstruction_v1(std::string_view json) { return parse_single(json, false); }

Result<BatchReconstruction> parse_batch_reconstruction_v1(std::string_view json) {
  simdjson::dom::parser parser(std::max<size_t>(json.size(), 64));
  HF_ASSIGN_OR_RETURN(element doc, parse_document(parser, json));
  object root;
  if (doc.get_object().get(root)) return bad_recon("document is not an object");
  BatchReconstruction b;
  HF_ASSIGN_OR_RETURN(object files, get_object(root, "files", "document"));
  size_t total_terms = 0;
  for (auto [key, value] : files) {
    std::string where = fmt::format("file {}", key);
    HF_ASSIGN_OR_RETURN(Hash h, parse_hash(key, where));
    array arr;
    if (value.get_array().get(arr)) return bad_recon(where + ": terms are not an array");
    total_terms += arr.size();
    if (total_terms > kMaxReconstructionTerms) return make_error(Errc::too_large, "reconstruction: too many terms");
    HF_ASSIGN_OR_RETURN(std::vector<Term> terms, parse_terms(arr));
    b.files.emplace_back(h, std::move(terms));
  }
  HF_ASSIGN_OR_RETURN(object info, get_object(root, "fetch_info", "document"));
  HF_ASSIGN_OR_RETURN(b.fetches, parse_fetch_info_v1(info));
  HF_TRY(check_map(b.fetches));
  for (const auto& [h, terms] : b.files) {
    Status s = check_terms(terms, b.fetches);
    if (!s.ok()) return bad_recon(fmt::format("file {}: {}", h.hex(), s.error().message));
  }
  return b;
}

std::string to_json_v2(const Reconstruction& r) {
  JsonWriter w;
  w.begin_object().kv("offset_into_first_range", r.offset_into_first_range).key("terms");
  write_terms(w, r.terms);
  w.key("xorbs").begin_object();
  for (const auto& [h, fetches] : r.fetches) {
    w.key(h.hex()).begin_array();
    for (const XorbFetch& f : fetches) {
      w.begin_object().kv("url", f.url).key("ranges").begin_array();
      for (const FetchRange& fr : f.ranges) {
        w.begin_object();
        write_chunk_range(w, "chunks", fr.chunks);
        write_byte_range(w, "bytes", fr.bytes);
        w.end_object();
      }
      w.end_array().end_object();
    }
    w.end_array();
  }
  w.end_object().end_object();
  return w.take();
}

std::string to_json_v1(const Reconstruction& r) {
  JsonWriter w;
  w.begin_object().kv("offset_into_first_range", r.offset_into_first_range).key("terms");
  write_terms(w, r.terms);
  write_fetch_info_v1(w, r.fetches);
  w.end_object();
  return w.take();
}

std::string to_json_batch_v1(const BatchReconstruction& b) {
  JsonWriter w;
  w.begin_object().key("files").begin_object();
  for (const auto& [h, terms] : b.files) {
    w.key(h.hex());
    write_terms(w, terms);
  }
  w.end_object();
  write_fetch_info_v1(w, b.fetches);
  w.end_object();
  return w.take();
}

bool covers_whole_xorb(const FetchRange& r, uint64_t object_size) {
  if (r.chunks.start != 0 || r.bytes.start != 0 || r.chunks.end <= r.chunks.start) return false;
  const uint64_t n = r.chunks.end;
  const uint64_t footer = 92 + 40 * n + 4;
  return object_size >= footer && r.bytes.end + 1 == object_size - footer;
}

}  // namespace hf::xet
