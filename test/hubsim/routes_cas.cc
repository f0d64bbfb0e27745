// Xet CAS routes (xet-protocol.md §6, §7): reconstructions (v1, v2, batch) with XC-emulator
// trimming and range merging, file HEAD, global dedup, xorb and shard uploads, telemetry, and
// the presigned xorb-range URLs.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "base/clock.h"
#include "base/json_writer.h"
#include "base/text.h"
#include "net/xet/reconstruction.h"
#include "test/hubsim/core.h"
#include "test/hubsim/json_util.h"
#include "test/hubsim/route_util.h"

namespace hf::hubsim {

namespace {

struct TrimmedTerm {
  XorbPtr xorb;
  uint32_t start, end;
  uint32_t unpacked;
};

// Builds the presigned URL fetch lists for the chunk ranges the terms need (XC emulator:
// per xorb, sort, merge overlapping or adjacent ranges, map to serialized byte offsets).
struct XorbRanges {
  XorbPtr xorb;
  std::vector<xet::FetchRange> ranges;
};

std::vector<XorbRanges> merge_fetch_ranges(const std::vector<TrimmedTerm>& terms) {
  std::map<xet::Hash, XorbRanges> by_xorb;
  for (const auto& t : terms) {
    auto& e = by_xorb[t.xorb->hash];
    e.xorb = t.xorb;
    e.ranges.push_back(xet::FetchRange{{t.start, t.end}, {}});
  }
  std::vector<XorbRanges> out;
  for (auto& [h, e] : by_xorb) {
    std::sort(e.ranges.begin(), e.ranges.end(),
              [](const xet::FetchRange& a, const xet::FetchRange& b) { return a.chunks.start < b.chunks.start; });
    std::vector<xet::FetchRange> merged;
    for (const auto& r : e.ranges) {
      if (!merged.empty() && r.chunks.start <= merged.back().chunks.end)
        merged.back().chunks.end = std::max(merged.back().chunks.end, r.chunks.end);
      else
        merged.push_back(r);
    }
    for (auto& r : merged) {
      r.bytes.start = e.xorb->ser_start(r.chunks.start);
      r.bytes.end = e.xorb->ser_end[r.chunks.end - 1] - 1;
    }
    e.ranges = std::move(merged);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Response Server::Core::route_cas(Request& req, std::vector<std::string_view>& segs) {
  std::string route = "cas";
  std::string_view s0 = !segs.empty() ? segs[0] : "";
  std::string_view s1 = segs.size() > 1 ? segs[1] : "";
  if (s1 == "reconstructions") route = "reconstruction";
  else if (s1 == "xorbs") route = req.method == "POST" ? "xorb_upload" : "cas";
  else if (s1 == "shards") route = "shard";
  else if (s1 == "chunks") route = "dedup";
  auto finish = [&](Response r) {
    r.route = route;
    return r;
  };
  if (s0 == "health" && segs.size() == 1) return finish(json_response("{\"status\":\"ok\"}"));
  if (s1 == "telemetry" && req.method == "POST") return finish(json_response("{}"));

  // Every other CAS route needs a CAS token.
  auto auth = trim(req.header("authorization"));
  std::optional<TokenScope> scope;
  if (auth.size() > 7 && iequals(auth.substr(0, 7), "bearer "))
    scope = signer_.check_token(trim(auth.substr(7)), now_unix_s());
  if (!scope) return finish(error_response(401, "", "Invalid or expired CAS access token"));
  auto need_write = [&]() -> std::optional<Response> {
    if (*scope != TokenScope::write) return error_response(403, "", "The access token does not grant write access");
    return std::nullopt;
  };
  Knobs k = knobs();

  // ---- reconstructions ----
  if (s1 == "reconstructions") {
    bool v2 = s0 == "v2";
    if (s0 != "v1" && s0 != "v2") return finish(error_response(404, "", "Not found"));
    if (v2 && !k.v2_reconstructions) return finish(error_response(404, "", "v2 reconstructions are disabled"));
    int64_t exp = now_unix_s() + k.url_ttl_s;
    std::string base = base_url();
    auto url_for = [&](const XorbPtr& x, const std::vector<xet::FetchRange>& ranges) {
      std::vector<ByteRange> br;
      br.reserve(ranges.size());
      for (const auto& r : ranges) br.push_back(ByteRange{r.bytes.start, r.bytes.end});
      std::string hex = x->hash.hex();
      return fmt::format("{}/_xorb/default/{}?{}", base, hex, signer_.sign_xorb_query(hex, br, exp));
    };
    auto fetch_map = [&](const std::vector<XorbRanges>& xr, bool group) {
      xet::XorbFetchMap m;
      for (const auto& e : xr) {
        std::vector<xet::XorbFetch> fetches;
        size_t step = group ? std::max<uint32_t>(1, k.max_ranges_per_fetch) : 1;
        for (size_t i = 0; i < e.ranges.size(); i += step) {
          std::vector<xet::FetchRange> part(e.ranges.begin() + i,
                                            e.ranges.begin() + std::min(e.ranges.size(), i + step));
          fetches.push_back(xet::XorbFetch{url_for(e.xorb, part), std::move(part)});
        }
        m.emplace_back(e.xorb->hash, std::move(fetches));
      }
      return m;
    };

    // Batch: GET ?file_id=..., POST [{"prefix","hash"}] (whole files, v1 shape).
    if (segs.size() == 2 && s0 == "v1") {
      std::vector<std::string> ids;
      if (req.method == "GET") {
        auto q = Query::parse(req.query);
        if (!q.ok()) return finish(error_response(400, "", "Invalid query string"));
        for (auto v : q->all("file_id")) ids.emplace_back(v);
      } else if (req.method == "POST") {
        simdjson::dom::parser parser;
        auto doc = parse_json(parser, req.body);
        if (!doc.ok()) return finish(error_response(400, "", doc.error().message));
        simdjson::dom::array arr;
        if (doc.value().get_array().get(arr)) return finish(error_response(400, "", "body must be a JSON array"));
        for (auto el : arr) {
          if (auto s = json_string_value(el)) {
            ids.emplace_back(*s);
            continue;
          }
          std::string_view h;
          if (el["hash"].get_string().get(h)) return finish(error_response(400, "", "entries need a hash"));
          ids.emplace_back(h);
        }
      } else {
        return finish(error_response(405, "", "Method not allowed"));
      }
      if (ids.size() > 10000) return finish(error_response(400, "", "Too many files"));
      xet::BatchReconstruction batch;
      std::vector<TrimmedTerm> all_terms;
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      for (const auto& id : ids) {
        auto h = xet::Hash::from_hex(id);
        if (!h.ok()) return finish(error_response(400, "", "Invalid file id " + id));
        FilePtr f = cas_.file(h.value());
        if (!f) continue;  // as XC's emulator and peers: missing files are skipped
        std::vector<xet::Term> terms;
        for (const auto& t : f->terms) {
          XorbPtr x = cas_.xorb(t.xorb_hash);
          if (!x) return finish(error_response(500, "", "xorb missing for registered file"));
          terms.push_back(xet::Term{t.xorb_hash, t.unpacked_bytes, {t.chunk_start, t.chunk_end}});
          all_terms.push_back(TrimmedTerm{x, t.chunk_start, t.chunk_end, t.unpacked_bytes});
        }
        batch.files.emplace_back(h.value(), std::move(terms));
      }
      batch.fetches = fetch_map(merge_fetch_ranges(all_terms), false);
      return finish(json_response(xet::to_json_batch_v1(batch)));
    }

    if (segs.size() != 3 || req.method != "GET") return finish(error_response(404, "", "Not found"));
    auto h = xet::Hash::from_hex(segs[2]);
    if (!h.ok()) return finish(error_response(400, "", "Invalid file id"));
    FilePtr f = cas_.file(h.value());
    if (!f) return finish(error_response(404, "", "File not found"));
    uint64_t size = f->size;
    uint64_t a = 0, b = size;  // [a, b)
    std::string_view rh = trim(req.header("range"));
    if (!rh.empty()) {
      auto r = parse_range(rh, size);
      if (r.kind == RangeRequest::invalid || r.kind == RangeRequest::multi)
        return finish(error_response(400, "", "Invalid Range header"));
      if (r.kind == RangeRequest::unsatisfiable) {
        // Empty file: "bytes=0-..." yields empty terms (XC emulator, spec §12.18).
        if (!(size == 0 && r.start == 0 && rh.starts_with("bytes=0-"))) {
          Response e = error_response(416, "", "Requested Range Not Satisfiable");
          e.set_header("Content-Range", fmt::format("bytes */{}", size));
          return finish(std::move(e));
        }
        a = b = 0;
      } else {
        a = r.start;
        b = r.end + 1;
      }
    }
    xet::Reconstruction rec;
    std::vector<TrimmedTerm> kept;
    if (a < b) {
      size_t ti = std::upper_bound(f->term_end.begin(), f->term_end.end(), a) - f->term_end.begin();
      bool first = true;
      for (; ti < f->terms.size(); ++ti) {
        const auto& t = f->terms[ti];
        uint64_t tstart = f->term_end[ti] - t.unpacked_bytes;
        if (tstart >= b) break;
        XorbPtr x = cas_.xorb(t.xorb_hash);
        if (!x) return finish(error_response(500, "", "xorb missing for registered file"));
        uint64_t base_raw = x->raw_start(t.chunk_start);
        auto file_off = [&](uint32_t c) { return tstart + (x->raw_start(c) - base_raw); };  // chunk start in file
        uint32_t cs = t.chunk_start, ce = t.chunk_end;
        if (first) {
          while (cs + 1 < ce && file_off(cs + 1) <= a) ++cs;  // drop chunks ending at or before a
          rec.offset_into_first_range = a - file_off(cs);
          first = false;
        }
        while (ce - 1 > cs && file_off(ce - 1) >= b) --ce;  // drop chunks starting at or after b
        uint32_t unpacked = static_cast<uint32_t>(x->raw_end[ce - 1] - x->raw_start(cs));
        rec.terms.push_back(xet::Term{t.xorb_hash, unpacked, {cs, ce}});
        kept.push_back(TrimmedTerm{x, cs, ce, unpacked});
      }
    }
    rec.fetches = fetch_map(merge_fetch_ranges(kept), v2);
    return finish(json_response(v2 ? xet::to_json_v2(rec) : xet::to_json_v1(rec)));
  }

  // ---- file size ----
  if (s0 == "v1" && s1 == "files" && segs.size() == 3) {
    if (req.method != "HEAD" && req.method != "GET") return finish(error_response(405, "", "Method not allowed"));
    auto h = xet::Hash::from_hex(segs[2]);
    if (!h.ok()) return finish(error_response(400, "", "Invalid file id"));
    FilePtr f = cas_.file(h.value());
    if (!f) return finish(error_response(404, "", "File not found"));
    Response r;
    r.content_length = f->size;
    if (!req.is_head()) r.set_body(fmt::format("{{\"size\":{}}}", f->size), "application/json");
    return finish(std::move(r));
  }

  // ---- global dedup ----
  if (s0 == "v1" && s1 == "chunks" && segs.size() == 4) {
    if (req.method != "GET") return finish(error_response(405, "", "Method not allowed"));
    if (segs[2] != "default" && segs[2] != "default-merkledb") return finish(error_response(400, "", "Invalid prefix"));
    auto h = xet::Hash::from_hex(segs[3]);
    if (!h.ok()) return finish(error_response(400, "", "Invalid chunk hash"));
    auto shard = cas_.dedup_shard(h.value());
    if (!shard) return finish(error_response(404, "", "Chunk not found"));
    Response r;
    r.set_body(std::move(*shard), "application/octet-stream");
    return finish(std::move(r));
  }

  // ---- xorbs ----
  if (s0 == "v1" && s1 == "xorbs" && segs.size() == 4) {
    if (segs[2] != "default") return finish(error_response(400, "", "Invalid prefix"));
    auto h = xet::Hash::from_hex(segs[3]);
    if (!h.ok()) return finish(error_response(400, "", "Invalid xorb hash"));
    if (req.method == "POST") {
      if (auto d = need_write()) return finish(std::move(*d));
      auto r = cas_.upload_xorb(h.value(), std::move(req.body));
      req.body.clear();
      if (!r.ok()) return finish(error_response(400, "", r.error().message));
      return finish(json_response(fmt::format("{{\"was_inserted\":{}}}", r.value() ? "true" : "false")));
    }
    if (req.method == "HEAD" || req.method == "GET") {
      XorbPtr x = cas_.xorb(h.value());
      if (!x) return finish(error_response(404, "", "Xorb not found"));
      Response r;
      r.content_length = x->stored_size;
      if (!req.is_head()) r.set_body(fmt::format("{{\"size\":{}}}", x->stored_size), "application/json");
      return finish(std::move(r));
    }
    return finish(error_response(405, "", "Method not allowed"));
  }

  // ---- shards ----
  if (s1 == "shards" && segs.size() == 2 && (s0 == "v1" || s0 == "v2")) {
    if (req.method != "POST") return finish(error_response(405, "", "Method not allowed"));
    if (auto d = need_write()) return finish(std::move(*d));
    if (s0 == "v2" && !k.v2_shards) return finish(error_response(404, "", "v2 shard upload is disabled"));
    auto r = cas_.upload_shard(req.body);
    if (s0 == "v1") {
      if (!r.ok()) return finish(error_response(400, "", r.error().message));
      return finish(json_response(fmt::format("{{\"result\":{}}}", r->inserted ? 1 : 0)));
    }
    // v2: NDJSON progress frames (spec §7.7). Unparseable bodies fail before the stream.
    if (!r.ok() && r.code() == Errc::protocol) return finish(error_response(400, "", r.error().message));
    std::string body;
    if (!r.ok()) {
      JsonWriter w;
      w.begin_object().kv("type", "error").kv("message", r.error().message).kv("retryable", false).end_object();
      body = "{\"type\":\"validating\",\"verified\":0,\"total\":0}\n" + w.take() + "\n";
    } else {
      body = fmt::format(
          "{{\"type\":\"validating\",\"verified\":{0},\"total\":{0}}}\n"
          "{{\"type\":\"committing\",\"stage\":\"uploading\"}}\n"
          "{{\"type\":\"committing\",\"stage\":\"syncing\"}}\n"
          "{{\"type\":\"result\",\"result\":{1}}}\n",
          r->terms, r->inserted ? 1 : 0);
    }
    Response resp;
    resp.set_body(std::move(body), "application/x-ndjson");
    resp.set_header("Cache-Control", "no-cache");
    return finish(std::move(resp));
  }

  return finish(error_response(404, "", "Not found"));
}

Response Server::Core::route_presigned(Request& req, std::vector<std::string_view>& segs) {
  auto finish = [](Response r) {
    r.route = "xorb";
    return r;
  };
  // /_xorb/default/{hash}?X-Xet-Signed-Range=...&Expires=...&Signature=...
  if (segs.size() != 3 || segs[1] != "default") return finish(error_response(404, "", "Not found"));
  if (req.method != "GET" && req.method != "HEAD") return finish(error_response(405, "", "Method not allowed"));
  std::vector<ByteRange> signed_ranges;
  switch (signer_.check_xorb_query(segs[2], req.query, now_unix_s(), signed_ranges)) {
    case Signer::UrlCheck::ok: break;
    case Signer::UrlCheck::expired: return finish(error_response(403, "", "Request has expired"));
    case Signer::UrlCheck::bad_signature:
      return finish(error_response(403, "", "The request signature we calculated does not match the signature you provided"));
    case Signer::UrlCheck::malformed: return finish(error_response(403, "", "Missing or malformed signature parameters"));
  }
  auto h = xet::Hash::from_hex(segs[2]);
  XorbPtr x = h.ok() ? cas_.xorb(h.value()) : nullptr;
  if (!x) return finish(error_response(404, "", "The specified key does not exist."));
  uint64_t data_size = x->ser_total();
  for (const auto& r : signed_ranges)
    if (r.end >= data_size) return finish(error_response(403, "", "Signed range outside the object"));

  std::vector<ByteRange> want;
  std::string_view rh = trim(req.header("range"));
  if (rh.empty()) {
    want = signed_ranges;
  } else {
    // "bytes=S-E[,S-E...]" (an open end "S-" stops at the end of its signed range).
    if (!rh.starts_with("bytes=")) return finish(error_response(416, "", "Invalid Range"));
    for (auto part : split(rh.substr(6), ',')) {
      part = trim(part);
      size_t dash = part.find('-');
      auto s = dash == std::string_view::npos ? std::nullopt : parse_u64(part.substr(0, dash));
      if (!s) return finish(error_response(416, "", "Invalid Range"));
      auto es = part.substr(dash + 1);
      uint64_t e;
      if (es.empty()) {
        auto it = std::find_if(signed_ranges.begin(), signed_ranges.end(),
                               [&](const ByteRange& r) { return *s >= r.start && *s <= r.end; });
        if (it == signed_ranges.end()) return finish(error_response(403, "", "Range not covered by the signature"));
        e = it->end;
      } else {
        auto ev = parse_u64(es);
        if (!ev || *ev < *s) return finish(error_response(416, "", "Invalid Range"));
        e = *ev;
      }
      want.push_back(ByteRange{*s, e});
      if (want.size() > 4096) return finish(error_response(416, "", "Too many ranges"));
    }
    for (const auto& w : want) {
      bool covered = std::any_of(signed_ranges.begin(), signed_ranges.end(),
                                 [&](const ByteRange& r) { return w.start >= r.start && w.end <= r.end; });
      if (!covered) return finish(error_response(403, "", "Range not covered by the signature"));
    }
  }
  // Body offset of a payload byte in the first range, for the corrupt fault.
  auto payload_target = [&](const ByteRange& r) -> uint64_t {
    size_t k = std::upper_bound(x->ser_end.begin(), x->ser_end.end(), r.start) - x->ser_end.begin();
    if (k < x->ser_end.size() && x->ser_start(k) == r.start && x->ser_end[k] - 1 <= r.end) {
      uint64_t payload = x->ser_end[k] - r.start - 8;
      return 8 + payload / 2;
    }
    return (r.end - r.start) / 2;
  };
  Response resp;
  resp.is_data = true;
  resp.set_header("Accept-Ranges", "bytes");
  resp.set_header("ETag", fmt::format("\"{}\"", x->hash.hex()));
  if (want.size() == 1) {
    const auto& r = want.front();
    resp.status = rh.empty() ? 200 : 206;
    if (!rh.empty()) resp.set_header("Content-Range", fmt::format("bytes {}-{}/{}", r.start, r.end, x->stored_size));
    resp.set_header("Content-Type", "application/octet-stream");
    resp.add_body(x->bytes, r.start, r.end - r.start + 1);
    resp.corrupt_offsets.push_back(payload_target(r));
    return finish(std::move(resp));
  }
  std::string boundary = fmt::format("hubsim{:016x}", x->hash.word(0) ^ static_cast<uint64_t>(now_unix_ns()));
  resp.status = 206;
  resp.set_header("Content-Type", "multipart/byteranges; boundary=" + boundary);
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& r = want[i];
    std::string head = fmt::format("--{}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                                   boundary, r.start, r.end, x->stored_size);
    if (i == 0) resp.corrupt_offsets.push_back(head.size() + payload_target(r));
    uint64_t hn = head.size();
    resp.add_body(make_memory_source(std::move(head)), 0, hn);
    resp.add_body(x->bytes, r.start, r.end - r.start + 1);
    resp.add_body(make_memory_source("\r\n"), 0, 2);
  }
  std::string tail = fmt::format("--{}--\r\n", boundary);
  uint64_t tn = tail.size();
  resp.add_body(make_memory_source(std::move(tail)), 0, tn);
  return finish(std::move(resp));
}

}  // namespace hf::hubsim
