#include "net/hub/json.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>

#include "base/clock.h"

namespace hf::hub {
namespace {

namespace dom = simdjson::dom;
constexpr size_t kMaxDepth = 64;

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid (RFC 3629: no overlongs, no
// surrogates, max U+10FFFF).
size_t utf8_seq(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n = s.size() - i;
  auto cont = [&](size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;
    if (c == 0xED && b(1) >= 0xA0) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;
    if (c == 0xF4 && b(1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

// UTF-8 of U+10FF00 + byte (byte >= 0x80): F4 8F BE|BF xx.
void append_marker(std::string& out, unsigned char byte) {
  uint32_t cp = 0x10FF00u + byte;
  out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
  out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
  out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
  out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Parsed {
  dom::parser parser;
  dom::element root;
  bool remapped = false;
  std::string rewritten;
};

Status parse(Parsed& p, std::string_view json, size_t max_bytes, std::string_view what) {
  if (json.size() > max_bytes)
    return make_error(Errc::protocol, fmt::format("{} response too large ({} bytes)", what, json.size()));
  if (auto e = p.parser.allocate(std::max<size_t>(json.size(), 4096), kMaxDepth); e)
    return make_error(Errc::internal, fmt::format("JSON parser allocation failed: {}", simdjson::error_message(e)));
  auto r = p.parser.parse(json.data(), json.size(), true);
  if (r.error() == simdjson::UTF8_ERROR || r.error() == simdjson::STRING_ERROR) {
    p.rewritten = escape_invalid_utf8(json);
    p.remapped = true;
    r = p.parser.parse(p.rewritten.data(), p.rewritten.size(), true);
  }
  if (r.error()) {
    if (r.error() == simdjson::DEPTH_ERROR)
      return make_error(Errc::protocol, fmt::format("{} response nested too deeply", what));
    return make_error(Errc::protocol, fmt::format("malformed JSON in {} response: {}", what, simdjson::error_message(r.error())));
  }
  p.root = r.value_unsafe();
  return {};
}

// simdjson decodes a lone "\udcXX" escape to the (invalid) UTF-8 of the surrogate, ED B2|B3 xx:
// that is a surrogateescape'd raw byte, turn it back into the byte.
void restore_surrogate_escapes(std::string& s) {
  if (s.find('\xED') == std::string::npos) return;
  size_t w = 0;
  for (size_t r = 0; r < s.size();) {
    auto b1 = static_cast<unsigned char>(r + 1 < s.size() ? s[r + 1] : 0);
    if (static_cast<unsigned char>(s[r]) == 0xED && r + 2 < s.size() && (b1 == 0xB2 || b1 == 0xB3)) {
      auto b2 = static_cast<unsigned char>(s[r + 2]);
      s[w++] = static_cast<char>((b1 == 0xB2 ? 0x80 : 0xC0) + (b2 & 0x3F));
      r += 3;
      continue;
    }
    s[w++] = s[r++];
  }
  s.resize(w);
}

std::string str(const Parsed& p, dom::element e) {
  std::string_view v;
  if (e.get_string().get(v)) return {};
  std::string s(v);
  if (p.remapped) restore_bytes(s);
  restore_surrogate_escapes(s);
  return s;
}

std::string field_str(const Parsed& p, dom::object o, std::string_view key) {
  dom::element e;
  if (o[key].get(e)) return {};
  return str(p, e);
}

bool field_bool(dom::object o, std::string_view key) {
  bool b = false;
  dom::element e;
  if (!o[key].get(e) && !e.get_bool().get(b)) return b;
  return false;
}

// Non-negative integer field (also accepts integral doubles).
std::optional<uint64_t> field_u64(dom::object o, std::string_view key) {
  dom::element e;
  if (o[key].get(e)) return std::nullopt;
  uint64_t u;
  if (!e.get_uint64().get(u)) return u;
  int64_t i;
  if (!e.get_int64().get(i)) return i < 0 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(i));
  double d;
  if (!e.get_double().get(d) && d >= 0 && d < 1.8e19 && d == static_cast<double>(static_cast<uint64_t>(d)))
    return static_cast<uint64_t>(d);
  return std::nullopt;
}

int64_t field_time(const Parsed& p, dom::object o, std::string_view key) {
  auto s = field_str(p, o, key);
  if (s.empty()) return 0;
  return parse_iso8601(s).value_or(0);
}

Result<TreeEntry> entry_from(const Parsed& p, dom::object o, bool* skip) {
  *skip = false;
  TreeEntry t;
  std::string type = field_str(p, o, "type");
  if (type == "directory") t.is_dir = true;
  else if (type != "file") {
    *skip = true;  // "unknown" or future types
    return t;
  }
  t.path = field_str(p, o, "path");
  if (t.path.empty()) return make_error(Errc::protocol, "tree entry without a path");
  t.size = field_u64(o, "size").value_or(0);
  t.oid = field_str(p, o, "oid");
  t.xet_hash = field_str(p, o, "xetHash");
  dom::object lfs;
  if (!o["lfs"].get_object().get(lfs)) {
    t.lfs_sha256 = field_str(p, lfs, "oid");
    if (auto s = field_u64(lfs, "size")) t.size = *s;
  }
  dom::object lc;
  if (!o["lastCommit"].get_object().get(lc)) t.mtime_ns = field_time(p, lc, "date");
  if (t.mtime_ns == 0) t.mtime_ns = field_time(p, o, "mtime");
  t.uploaded_at_ns = field_time(p, o, "uploadedAt");
  return t;
}

}  // namespace

std::string escape_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (in_string && c == '\\' && i + 1 < s.size()) {
      // "\udcXX" (XX >= 0x80): a lone low surrogate that encodes one raw byte (surrogateescape).
      if (s[i + 1] == 'u' && i + 5 < s.size() && (s[i + 2] == 'd' || s[i + 2] == 'D') &&
          (s[i + 3] == 'c' || s[i + 3] == 'C')) {
        int h = hexval(s[i + 4]), l = hexval(s[i + 5]);
        if (h >= 8 && l >= 0) {
          append_marker(out, static_cast<unsigned char>(h * 16 + l));
          i += 6;
          continue;
        }
      }
      if (static_cast<unsigned char>(s[i + 1]) < 0x80) {  // an ASCII escape: keep it whole
        out.append(s.substr(i, 2));
        i += 2;
      } else {  // invalid JSON anyway; the byte after '\\' goes through the UTF-8 check below
        out.push_back(c);
        ++i;
      }
      continue;
    }
    if (c == '"') in_string = !in_string;
    size_t n = utf8_seq(s, i);
    if (n == 0) {
      append_marker(out, static_cast<unsigned char>(c));
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

void restore_bytes(std::string& s) {
  size_t w = 0;
  for (size_t r = 0; r < s.size();) {
    if (r + 3 < s.size() && static_cast<unsigned char>(s[r]) == 0xF4 && static_cast<unsigned char>(s[r + 1]) == 0x8F &&
        (static_cast<unsigned char>(s[r + 2]) & 0xFE) == 0xBE) {
      uint32_t low = (static_cast<unsigned char>(s[r + 2]) & 0x3F) << 6 | (static_cast<unsigned char>(s[r + 3]) & 0x3F);
      if (low >= 0xF80) {  // U+10FF80..U+10FFFF
        s[w++] = static_cast<char>(low & 0xFF);
        r += 4;
        continue;
      }
    }
    s[w++] = s[r++];
  }
  s.resize(w);
}

Result<RepoInfo> parse_repo_info(std::string_view json, size_t max_bytes) {
  Parsed p;
  HF_TRY(parse(p, json, max_bytes, "repository info"));
  dom::object o;
  if (p.root.get_object().get(o)) return make_error(Errc::protocol, "repository info is not a JSON object");
  RepoInfo r;
  r.id = field_str(p, o, "id");
  r.sha = field_str(p, o, "sha");
  r.last_modified_ns = field_time(p, o, "lastModified");
  r.is_private = field_bool(o, "private");
  dom::element g;
  if (!o["gated"].get(g)) {
    std::string_view gs;
    if (!g.get_string().get(gs)) r.gated = std::string(gs);
    else if (bool gb = false; !g.get_bool().get(gb) && gb) r.gated = "true";
  }
  if (r.id.empty()) return make_error(Errc::protocol, "repository info without an id");
  return r;
}

Result<std::vector<TreeEntry>> parse_tree_entries(std::string_view json, size_t max_bytes) {
  Parsed p;
  HF_TRY(parse(p, json, max_bytes, "tree listing"));
  dom::array a;
  if (p.root.get_array().get(a)) return make_error(Errc::protocol, "tree listing is not a JSON array");
  std::vector<TreeEntry> out;
  out.reserve(a.size());
  for (dom::element e : a) {
    dom::object o;
    if (e.get_object().get(o)) return make_error(Errc::protocol, "tree entry is not a JSON object");
    bool skip = false;
    HF_ASSIGN_OR_RETURN(auto t, entry_from(p, o, &skip));
    if (!skip) out.push_back(std::move(t));
  }
  return out;
}

Result<BucketInfo> parse_bucket_info(std::string_view json, size_t max_bytes) {
  Parsed p;
  HF_TRY(parse(p, json, max_bytes, "bucket info"));
  dom::object o;
  if (p.root.get_object().get(o)) return make_error(Errc::protocol, "bucket info is not a JSON object");
  BucketInfo b;
  b.id = field_str(p, o, "id");
  b.is_private = field_bool(o, "private");
  b.created_at_ns = field_time(p, o, "createdAt");
  b.updated_at_ns = field_time(p, o, "updatedAt");
  b.size = field_u64(o, "size").value_or(0);
  b.total_files = field_u64(o, "totalFiles").value_or(0);
  if (b.id.empty()) return make_error(Errc::protocol, "bucket info without an id");
  return b;
}

Result<XetToken> parse_xet_token(std::string_view json, size_t max_bytes) {
  Parsed p;
  HF_TRY(parse(p, json, max_bytes, "xet token"));
  dom::object o;
  if (p.root.get_object().get(o)) return make_error(Errc::protocol, "xet token response is not a JSON object");
  XetToken t;
  std::string tok = field_str(p, o, "accessToken");
  t.cas_url = field_str(p, o, "casUrl");
  auto exp = field_u64(o, "exp");
  if (tok.empty() || t.cas_url.empty() || !exp)
    return make_error(Errc::protocol, "xet token response lacks accessToken, exp or casUrl");
  if (tok.size() > 64000 || t.cas_url.size() > 64000) return make_error(Errc::protocol, "xet token fields too long");
  t.access_token = Secret(std::move(tok));
  t.exp_unix = static_cast<int64_t>(std::min<uint64_t>(*exp, static_cast<uint64_t>(INT64_MAX)));
  return t;
}

Result<BatchResult> parse_batch_result(std::string_view json, size_t max_bytes) {
  Parsed p;
  HF_TRY(parse(p, json, max_bytes, "bucket batch"));
  dom::object o;
  if (p.root.get_object().get(o)) return make_error(Errc::protocol, "bucket batch response is not a JSON object");
  BatchResult b;
  b.processed = field_u64(o, "processed").value_or(0);
  b.succeeded = field_u64(o, "succeeded").value_or(0);
  dom::array failed;
  if (!o["failed"].get_array().get(failed)) {
    for (dom::element e : failed) {
      dom::object f;
      if (e.get_object().get(f)) continue;
      b.failed.emplace_back(field_str(p, f, "path"), field_str(p, f, "error"));
    }
  }
  // "success": false without details still means not everything was applied.
  dom::element s;
  bool success = true;
  if (!o["success"].get(s) && !s.get_bool().get(success) && !success && b.failed.empty() && b.succeeded >= b.processed)
    b.failed.emplace_back("", "server reported success=false");
  return b;
}

std::string parse_error_message(std::string_view body) {
  if (body.empty() || body.size() > (1u << 20)) return {};
  Parsed p;
  if (!parse(p, body, 1u << 20, "error")) return {};
  std::string msg;
  dom::object o;
  if (!p.root.get_object().get(o)) {
    dom::element e;
    if (!o["error"].get(e)) {
      if (e.is_string()) {
        msg = str(p, e);
      } else if (dom::array arr; !e.get_array().get(arr)) {
        for (dom::element x : arr) {
          if (x.is_string()) msg += (msg.empty() ? "" : "; ") + str(p, x);
        }
      }
      auto d = field_str(p, o, "error_description");
      if (!d.empty()) msg += (msg.empty() ? "" : ": ") + d;
    } else {
      dom::array errs;
      if (!o["errors"].get_array().get(errs)) {
        for (dom::element x : errs) {
          dom::object xo;
          if (!x.get_object().get(xo)) {
            auto m = field_str(p, xo, "message");
            if (!m.empty()) msg += (msg.empty() ? "" : "; ") + m;
          }
        }
      }
    }
  }
  if (msg.size() > 300) msg.resize(300);
  for (char& c : msg) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return msg;
}

}  // namespace hf::hub
