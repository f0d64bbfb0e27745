// Fuzz harness bodies for the net/http and net/hub parsers of untrusted input (Link header,
// multipart/byteranges, Hub JSON), shared by the libFuzzer targets (test/fuzz/fuzz_*.cc) and
// the corpus replay unit test (test/unit/hub/fuzz_corpus_test.cc). Each returns false when
// an invariant is violated; malformed input must simply yield an error value.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/http/link_header.h"
#include "net/http/multipart.h"
#include "net/hub/json.h"

namespace hf::net_fuzz {

// Every parsed URL is a substring of the input; at most 64 links; find_link agrees.
inline bool link_header(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto links = http::parse_link_header(in);
  if (links.size() > 64) return false;
  for (const auto& l : links) {
    if (in.find(l.url) == std::string_view::npos) return false;
  }
  auto next = http::find_link({in}, "next");
  if (next && in.find(*next) == std::string_view::npos) return false;
  return true;
}

// Byte 0 picks a piece size: feeding in pieces must give exactly what one feed gives.
inline bool multipart(const uint8_t* data, size_t size) {
  if (size < 1) return true;
  const size_t step = 1 + data[0] % 37;
  std::span<const uint8_t> in(data + 1, size - 1);
  struct Out {
    std::vector<std::pair<uint64_t, uint64_t>> parts;
    std::string bytes;
    bool ok = false;
  };
  auto run = [&](size_t piece) {
    Out o;
    http::MultipartByteranges mp(
        "B0UND",
        [&](const http::MultipartByteranges::Part& p) {
          o.parts.emplace_back(p.first, p.last);
          return Status();
        },
        [&](std::span<const uint8_t> d) {
          o.bytes.append(reinterpret_cast<const char*>(d.data()), d.size());
          return Status();
        },
        512);
    Status st;
    for (size_t pos = 0; pos < in.size() && st.ok(); pos += piece) st = mp.feed(in.subspan(pos, std::min(piece, in.size() - pos)));
    if (st.ok()) st = mp.finish();
    o.ok = st.ok();
    if (!o.ok && st.code() != Errc::protocol) o.parts.emplace_back(~0ull, ~0ull);  // only protocol errors expected
    return o;
  };
  Out a = run(in.size() + 1), b = run(step);
  if (a.ok != b.ok) return false;
  if (a.ok && (a.parts != b.parts || a.bytes != b.bytes)) return false;
  uint64_t total = 0;
  for (auto [f, l] : a.parts) {
    if (f == ~0ull) return false;
    total += l - f + 1;
  }
  if (a.ok && total != a.bytes.size()) return false;
  return true;
}

// Hub JSON parsers never crash and only fail with Errc::protocol; the UTF-8 repair always
// yields valid UTF-8 and restores raw bytes.
inline bool hub_json(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto bad = [](Errc c) { return c != Errc::protocol; };
  if (auto r = hub::parse_tree_entries(in); !r.ok() && bad(r.code())) return false;
  if (auto r = hub::parse_repo_info(in); !r.ok() && bad(r.code())) return false;
  if (auto r = hub::parse_bucket_info(in); !r.ok() && bad(r.code())) return false;
  if (auto r = hub::parse_xet_token(in); !r.ok() && bad(r.code())) return false;
  if (auto r = hub::parse_batch_result(in); !r.ok() && bad(r.code())) return false;
  if (hub::parse_error_message(in).size() > 300) return false;
  std::string esc = hub::escape_invalid_utf8(in);
  if (!simdjson::validate_utf8(esc.data(), esc.size())) return false;
  // Outside "\udcXX" escapes and pre-existing markers, restoring gives the input back.
  if (in.find("\\u") == std::string_view::npos && in.find("\xf4\x8f") == std::string_view::npos) {
    std::string back = esc;
    hub::restore_bytes(back);
    if (back != in) return false;
  }
  return true;
}

}  // namespace hf::net_fuzz
