// CasClient and HubTokenSource against in-test fake CAS/Hub servers, with xorb bytes built
// from xet-protocol.md §11.4 (checked against its SHA-256) and the §4.6 LZ4 vector.
#include <utility>  // before Asio (asio#944)

#include <catch2/catch.hpp>

#include <boost/asio/detached.hpp>

#include <fmt/format.h>

#include <atomic>
#include <mutex>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/client/cas_client.h"
#include "net/xet/shard.h"
#include "test/unit/http/test_server.h"
#include "test/unit/http/test_util.h"

using namespace hf;
using namespace hf::xet;
using namespace hf::test;
using namespace std::chrono_literals;

namespace {

// §11.4: 200000 bytes, data[i] = (7*i + 13) & 0xff, chunks [0,131072) and [131072,200000),
// serialized with scheme None: 200016 bytes.
std::string spec_file() {
  std::string d(200000, '\0');
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<char>((7 * i + 13) & 0xff);
  return d;
}

std::string spec_xorb() {
  std::string f = spec_file();
  std::string x;
  x += std::string("\x00\x00\x00\x02\x00\x00\x00\x02", 8);
  x += f.substr(0, 131072);
  x += std::string("\x00\x40\x0d\x01\x00\x40\x0d\x01", 8);
  x += f.substr(131072);
  return x;
}

// §4.6: one LZ4 chunk of b"a"*100 (header + 26-byte frame).
std::string lz4_xorb() {
  auto bytes = hex_decode("001a000001640000" "04224d186040820b0000001f6101004b50616161616100000000");
  return std::string(bytes->begin(), bytes->end());
}

const char* kXorbHex = "f0755d96ee199d4f01e83da9fe2c38353de7fd38fb79a320a7d50be510026f74";
const char* kFileHex = "d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723";

// Serves byte ranges of `obj` like a presigned-URL server: one range -> 206, several ->
// multipart/byteranges.
Reply serve_ranges(const std::string& obj, const ReceivedRequest& r, bool multipart_ok = true) {
  Reply x;
  auto range = r.headers.get("Range");
  if (!range) {
    x.body = obj;
    return x;
  }
  std::vector<std::pair<uint64_t, uint64_t>> rs;
  for (auto part : split(range->substr(6), ',')) {
    auto dash = part.find('-');
    rs.emplace_back(*parse_u64(part.substr(0, dash)), *parse_u64(part.substr(dash + 1)));
  }
  if (rs.size() == 1 || !multipart_ok) {
    auto [a, b] = rs[0];
    x.status = 206;
    x.headers = {{"Content-Range", fmt::format("bytes {}-{}/{}", a, b, obj.size())}};
    x.body = obj.substr(a, b - a + 1);
    return x;
  }
  x.status = 206;
  x.headers = {{"Content-Type", "multipart/byteranges; boundary=BOUNDARY"}};
  for (auto [a, b] : rs) {
    x.body += fmt::format("--BOUNDARY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/{}\r\n\r\n", a, b, obj.size());
    x.body += obj.substr(a, b - a + 1) + "\r\n";
  }
  x.body += "--BOUNDARY--\r\n";
  return x;
}

http::ClientOptions fast() {
  http::ClientOptions o;
  o.use_env_proxy = false;
  o.retry.base_delay = 5ms;
  o.retry.max_delay = 20ms;
  return o;
}

CasOptions cas_opts() {
  CasOptions o;
  o.retry = http::RetryPolicy{3, 5ms, 20ms, 5000ms};
  return o;
}

std::shared_ptr<TokenSource> static_token(const std::string& cas_url, std::string tok = "xet_cas_token") {
  hub::XetToken t;
  t.access_token = Secret(std::move(tok));
  t.exp_unix = now_unix_s() + 3600;
  t.cas_url = cas_url;
  return std::make_shared<StaticTokenSource>(t);
}

struct Collect {
  std::vector<std::pair<uint32_t, std::string>> chunks;
  ChunkFn fn() {
    return [this](uint32_t i, std::span<const uint8_t> raw) {
      chunks.emplace_back(i, std::string(reinterpret_cast<const char*>(raw.data()), raw.size()));
      return Status();
    };
  }
};

}  // namespace

TEST_CASE("The §11.4 serialized xorb matches the spec's SHA-256", "[cas][vectors]") {
  CHECK(sha256_hex(spec_xorb()) == "8b67ee8c8028337201369fe6cef1ed200bc7faf0aa9d8520bac1b19c9c50123d");
  CHECK(sha256_hex(spec_file()) == "261a48d2d9c2e92e4e0f97d2bbeca1d209b04ecb24fc68e78457235eda048559");
}

TEST_CASE("get_reconstruction: v2 with Range and auth, v1 fallback remembered, 416", "[cas][reconstruction]") {
  std::atomic<bool> v2_supported{true};
  std::string base;
  TestServer srv([&](const ReceivedRequest& r) {
    Reply x;
    x.headers = {{"Content-Type", "application/json"}};
    if (r.target == fmt::format("/cas/v2/reconstructions/{}", kFileHex) && v2_supported) {
      if (r.headers.get("Range") == std::optional<std::string_view>("bytes=200000-200100")) {
        x.status = 416;
        return x;
      }
      // §11.4 example for Range: bytes=140000-150000.
      x.body = fmt::format(R"({{"offset_into_first_range": 8928, "terms": [{{"hash": "{0}", "unpacked_length": 68928, "range": {{"start": 1, "end": 2}}}}], "xorbs": {{"{0}": [{{"url": "{1}/xorb?sig=1", "ranges": [{{"chunks": {{"start": 1, "end": 2}}, "bytes": {{"start": 131080, "end": 200015}}}}]}}]}}}})",
                           kXorbHex, base);
      return x;
    }
    if (r.target.rfind("/cas/v2/", 0) == 0) {
      x.status = 404;
      return x;
    }
    if (r.target == fmt::format("/cas/v1/reconstructions/{}", kFileHex)) {
      x.body = fmt::format(R"({{"offset_into_first_range": 0, "terms": [{{"hash": "{0}", "unpacked_length": 200000, "range": {{"start": 0, "end": 2}}}}], "fetch_info": {{"{0}": [{{"range": {{"start": 0, "end": 2}}, "url": "{1}/xorb?sig=2", "url_range": {{"start": 0, "end": 200015}}}}]}}}})",
                           kXorbHex, base);
      return x;
    }
    x.status = 404;
    return x;
  });
  base = srv.url("");
  IoThreads io;
  http::Client http(io.io, fast());
  CasClient cas(http, static_token(srv.url("/cas/")), cas_opts());
  auto file = *Hash::from_hex(kFileHex);

  auto r = run_coro(io.io, cas.get_reconstruction(file, ByteRangeIncl{140000, 150000}));
  REQUIRE(r.ok());
  CHECK(r->offset_into_first_range == 8928);
  REQUIRE(r->terms.size() == 1);
  CHECK(r->terms[0].unpacked_length == 68928);
  CHECK(r->terms[0].range == ChunkRange{1, 2});
  auto loc = r->find(r->terms[0]);
  REQUIRE(loc.range != nullptr);
  CHECK(loc.range->bytes == ByteRangeIncl{131080, 200015});
  auto reqs = srv.requests();
  CHECK(reqs[0].headers.get("Authorization") == std::optional<std::string_view>("Bearer xet_cas_token"));
  CHECK(reqs[0].headers.get("Range") == std::optional<std::string_view>("bytes=140000-150000"));

  auto past = run_coro(io.io, cas.get_reconstruction(file, ByteRangeIncl{200000, 200100}));
  CHECK(past.code() == Errc::out_of_range);

  v2_supported = false;
  auto v1 = run_coro(io.io, cas.get_reconstruction(file, std::nullopt));
  REQUIRE(v1.ok());
  CHECK(v1->total_unpacked() == 200000);
  CHECK(cas.using_v1_reconstruction());
  size_t before = srv.request_count();
  REQUIRE(run_coro(io.io, cas.get_reconstruction(file, std::nullopt)).ok());
  CHECK(srv.request_count() == before + 1);  // straight to v1
  CHECK(srv.requests().back().target.rfind("/cas/v1/", 0) == 0);

  auto missing = run_coro(io.io, cas.get_reconstruction(*Hash::from_hex(kXorbHex), std::nullopt));
  CHECK(missing.code() == Errc::not_found);

  CasOptions forced = cas_opts();
  forced.reconstruction_api = 2;
  CasClient v2only(http, static_token(srv.url("/cas")), forced);
  CHECK(run_coro(io.io, v2only.get_reconstruction(file, std::nullopt)).code() == Errc::not_found);
}

TEST_CASE("fetch_chunks: decodes records while streaming, no Authorization on presigned URLs", "[cas][fetch]") {
  const std::string xorb = spec_xorb(), file = spec_file(), lz4 = lz4_xorb();
  TestServer srv([&](const ReceivedRequest& r) {
    if (r.target.rfind("/xorb", 0) == 0) return serve_ranges(xorb, r);
    if (r.target.rfind("/lz4", 0) == 0) return serve_ranges(lz4, r);
    if (r.target.rfind("/expired", 0) == 0) {
      Reply x;
      x.status = 403;
      return x;
    }
    if (r.target.rfind("/whole", 0) == 0) {  // ignores Range
      Reply x;
      x.body = xorb;
      return x;
    }
    Reply x;
    x.status = 404;
    return x;
  });
  IoThreads io;
  http::Client http(io.io, fast());
  CasClient cas(http, static_token(srv.url("/cas")), cas_opts());

  Collect c;
  auto report = run_coro(io.io, cas.fetch_chunks(srv.url("/xorb?X-Xet-Signed-Range=bytes%3D0-200015"), FetchRange{{0, 2}, {0, 200015}}, c.fn()));
  REQUIRE(report.ok());
  CHECK(report->object_size == std::optional<uint64_t>(xorb.size()));  // Content-Range: bytes 0-200015/TOTAL
  REQUIRE(c.chunks.size() == 2);
  CHECK(c.chunks[0].first == 0);
  CHECK(c.chunks[1].first == 1);
  CHECK(c.chunks[0].second + c.chunks[1].second == file);
  CHECK(!srv.requests().back().headers.contains("Authorization"));
  CHECK(srv.requests().back().headers.get("Range") == std::optional<std::string_view>("bytes=0-200015"));

  Collect one;
  REQUIRE(run_coro(io.io, cas.fetch_chunks(srv.url("/xorb"), FetchRange{{1, 2}, {131080, 200015}}, one.fn())).ok());
  REQUIRE(one.chunks.size() == 1);
  CHECK(one.chunks[0].first == 1);
  CHECK(one.chunks[0].second == file.substr(131072));

  Collect l;
  REQUIRE(run_coro(io.io, cas.fetch_chunks(srv.url("/lz4"), FetchRange{{0, 1}, {0, lz4.size() - 1}}, l.fn())).ok());
  REQUIRE(l.chunks.size() == 1);
  CHECK(l.chunks[0].second == std::string(100, 'a'));

  Collect w;
  auto whole = run_coro(io.io, cas.fetch_chunks(srv.url("/whole"), FetchRange{{1, 2}, {131080, 200015}}, w.fn()));
  REQUIRE(whole.ok());
  CHECK_FALSE(whole->object_size.has_value());  // a 200 answer states no object size
  REQUIRE(w.chunks.size() == 1);
  CHECK(w.chunks[0].second == file.substr(131072));

  Collect e;
  auto ex = run_coro(io.io, cas.fetch_chunks(srv.url("/expired"), FetchRange{{0, 2}, {0, 200015}}, e.fn()));
  CHECK(ex.code() == Errc::forbidden);
  CHECK(ex.error().message.find("presigned URL expired") != std::string::npos);

  // The fetch range claims 2 chunks where the bytes hold 1: count mismatch.
  Collect bad;
  auto bc = run_coro(io.io, cas.fetch_chunks(srv.url("/xorb"), FetchRange{{0, 2}, {0, 131079}}, bad.fn()));
  CHECK(bc.code() == Errc::protocol);
  // Bytes that end inside a record.
  Collect cut;
  auto cr = run_coro(io.io, cas.fetch_chunks(srv.url("/xorb"), FetchRange{{0, 1}, {0, 131000}}, cut.fn()));
  CHECK(cr.code() == Errc::protocol);
  // Consumer errors stop the fetch and come back unchanged.
  auto stop = run_coro(io.io, cas.fetch_chunks(srv.url("/xorb"), FetchRange{{0, 2}, {0, 200015}},
                                                [](uint32_t, std::span<const uint8_t>) { return Status(make_error(Errc::no_space, "cache full")); }));
  CHECK(stop.code() == Errc::no_space);
}

TEST_CASE("fetch_chunks: truncated bodies are errors, resumed from the last complete chunk", "[cas][fetch]") {
  const std::string xorb = spec_xorb(), file = spec_file();
  std::atomic<int> n{0};
  TestServer srv([&](const ReceivedRequest& r) {
    Reply x = serve_ranges(xorb, r);
    if (r.target.rfind("/flaky", 0) == 0 && n++ == 0) {
      // First answer: chunk 0 complete plus half of chunk 1's record, then the connection drops.
      x.content_length = x.body.size();
      x.body = x.body.substr(0, 131080 + 30000);
      x.end = Reply::End::close;
    }
    if (r.target.rfind("/always-short", 0) == 0) {
      x.content_length = x.body.size();
      x.body = x.body.substr(0, 1000);
      x.end = Reply::End::close;
    }
    return x;
  });
  IoThreads io;
  http::Client http(io.io, fast());
  CasClient cas(http, static_token(srv.url("/cas")), cas_opts());

  Collect c;
  REQUIRE(run_coro(io.io, cas.fetch_chunks(srv.url("/flaky"), FetchRange{{0, 2}, {0, 200015}}, c.fn())).ok());
  REQUIRE(c.chunks.size() == 2);
  CHECK(c.chunks[0].second + c.chunks[1].second == file);
  auto reqs = srv.requests();
  REQUIRE(reqs.size() >= 2);
  CHECK(reqs.back().headers.get("Range") == std::optional<std::string_view>("bytes=131080-200015"));

  CasOptions no_resume = cas_opts();
  no_resume.fetch_resumes = 0;
  no_resume.retry.max_attempts = 1;
  CasClient strict(http, static_token(srv.url("/cas")), no_resume);
  Collect s;
  auto r = run_coro(io.io, strict.fetch_chunks(srv.url("/always-short"), FetchRange{{0, 2}, {0, 200015}}, s.fn()));
  CHECK(r.code() == Errc::protocol);
  CHECK(s.chunks.empty());
}

TEST_CASE("fetch_multi: one multipart request, or per-range requests", "[cas][fetch][multipart]") {
  const std::string xorb = spec_xorb(), file = spec_file();
  std::atomic<bool> multipart_ok{true};
  TestServer srv([&](const ReceivedRequest& r) { return serve_ranges(xorb, r, multipart_ok.load()); });
  IoThreads io;
  http::Client http(io.io, fast());
  XorbFetch f{srv.url("/xorb?sig"), {FetchRange{{0, 1}, {0, 131079}}, FetchRange{{1, 2}, {131080, 200015}}}};

  CasOptions mo = cas_opts();
  mo.multirange = true;
  CasClient multi(http, static_token(srv.url("/cas")), mo);
  Collect a;
  REQUIRE(run_coro(io.io, multi.fetch_multi(f, a.fn())).ok());
  REQUIRE(a.chunks.size() == 2);
  CHECK(a.chunks[0].second + a.chunks[1].second == file);
  CHECK(srv.request_count() == 1);
  CHECK(srv.requests()[0].headers.get("Range") == std::optional<std::string_view>("bytes=0-131079,131080-200015"));

  // A server that answers only the first range of a multi-range request: the client falls
  // back to one request per remaining range.
  multipart_ok = false;
  Collect b;
  REQUIRE(run_coro(io.io, multi.fetch_multi(f, b.fn())).ok());
  REQUIRE(b.chunks.size() == 2);
  CHECK(b.chunks[0].second + b.chunks[1].second == file);

  CasClient single(http, static_token(srv.url("/cas")), cas_opts());
  size_t before = srv.request_count();
  Collect s;
  REQUIRE(run_coro(io.io, single.fetch_multi(f, s.fn())).ok());
  CHECK(s.chunks.size() == 2);
  CHECK(srv.request_count() == before + 2);
}

TEST_CASE("upload_xorb, upload_shard (v2 frames, retryable errors, v1 fallback), file_size", "[cas][upload]") {
  std::atomic<int> shard_mode{0}, shard_calls{0};
  std::mutex mu;
  std::string xorb_body;
  TestServer srv([&](const ReceivedRequest& r) {
    Reply x;
    if (r.method == "POST" && r.target == std::string("/cas/v1/xorbs/default/") + kXorbHex) {
      std::lock_guard lk(mu);
      xorb_body = r.body;
      x.body = R"({"was_inserted":false})";
      return x;
    }
    if (r.method == "POST" && r.target.rfind("/cas/v1/xorbs/default/", 0) == 0) {
      x.status = 400;
      x.body = "xorb hash mismatch";
      return x;
    }
    if (r.target == "/cas/v2/shards") {
      int k = shard_calls++;
      x.headers = {{"Content-Type", "application/x-ndjson"}};
      switch (shard_mode.load()) {
        case 0:
          x.body = "{\"type\":\"validating\",\"verified\":1,\"total\":2}\n{\"type\":\"heartbeat-v9\"}\n{\"type\":\"committing\",\"stage\":\"syncing\"}\n{\"type\":\"result\",\"result\":1}\n";
          break;
        case 1:
          x.body = k == 0 ? "{\"type\":\"error\",\"message\":\"busy\",\"retryable\":true}\n" : "{\"type\":\"result\"}\n";
          break;
        case 2:
          x.body = "{\"type\":\"error\",\"message\":\"file reconstruction does not produce this hash\"}\n";
          break;
        case 3:
          x.body = "{\"type\":\"validating\",\"verified\":1,\"total\":2}\n";  // no terminal frame
          break;
        default:
          x.status = 404;
      }
      return x;
    }
    if (r.target == "/cas/v1/shards") {
      x.body = R"({"result":1})";
      return x;
    }
    if (r.method == "HEAD" && r.target == std::string("/cas/v1/files/") + kFileHex) {
      x.body = std::string(200000, 'x');
      return x;
    }
    x.status = 404;
    return x;
  });
  IoThreads io;
  http::Client http(io.io, fast());
  CasClient cas(http, static_token(srv.url("/cas")), cas_opts());

  auto body = std::make_shared<const std::string>(spec_xorb());
  auto up = run_coro(io.io, cas.upload_xorb(*Hash::from_hex(kXorbHex), body));
  REQUIRE(up.ok());
  CHECK(*up == false);
  CHECK(sha256_hex(xorb_body) == "8b67ee8c8028337201369fe6cef1ed200bc7faf0aa9d8520bac1b19c9c50123d");
  auto post = srv.requests().back();
  CHECK(post.headers.get("Authorization") == std::optional<std::string_view>("Bearer xet_cas_token"));
  CHECK(!post.headers.contains("Content-Type"));
  auto bad = run_coro(io.io, cas.upload_xorb(*Hash::from_hex(kFileHex), body));
  CHECK(bad.code() == Errc::protocol);
  CHECK(bad.error().message.find("hash mismatch") != std::string::npos);

  auto shard = std::make_shared<const std::string>("shard bytes");
  CHECK(run_coro(io.io, cas.upload_shard(shard)).ok());
  shard_mode = 1;
  shard_calls = 0;
  CHECK(run_coro(io.io, cas.upload_shard(shard)).ok());
  CHECK(shard_calls.load() == 2);
  shard_mode = 2;
  auto rej = run_coro(io.io, cas.upload_shard(shard));
  CHECK(rej.code() == Errc::protocol);
  CHECK(rej.error().message.find("does not produce this hash") != std::string::npos);
  shard_mode = 3;
  shard_calls = 0;
  auto noterm = run_coro(io.io, cas.upload_shard(shard));
  CHECK(noterm.code() == Errc::protocol);
  CHECK(shard_calls.load() == 3);
  shard_mode = 4;
  CHECK(run_coro(io.io, cas.upload_shard(shard)).ok());
  shard_calls = 0;
  CHECK(run_coro(io.io, cas.upload_shard(shard)).ok());
  CHECK(shard_calls.load() == 0);  // v1 remembered

  auto size = run_coro(io.io, cas.file_size(*Hash::from_hex(kFileHex)));
  REQUIRE(size.ok());
  CHECK(*size == 200000);
  CHECK(run_coro(io.io, cas.file_size(*Hash::from_hex(kXorbHex))).code() == Errc::not_found);
}

TEST_CASE("query_dedup: shard on 200, nullopt on 404 and on errors (single attempt)", "[cas][dedup]") {
  // A dedup answer: one xorb with one chunk, as a full shard with footer (§5.8 shape 2).
  Shard s;
  XorbInfo xi;
  xi.xorb_hash = *Hash::from_hex(kXorbHex);
  xi.num_bytes_in_xorb = 131072;
  xi.chunks.push_back(XorbChunkEntry{*Hash::from_hex(kFileHex), 0, 131072, 0});
  s.xorbs.push_back(xi);
  FullShardParams fp;
  fp.lookup_tables = false;
  auto bytes = serialize_full_shard(s, fp);
  REQUIRE(bytes.ok());
  std::string shard_bytes(bytes->begin(), bytes->end());
  std::atomic<int> calls{0};
  TestServer srv([&](const ReceivedRequest& r) {
    ++calls;
    Reply x;
    if (r.target == std::string("/cas/v1/chunks/default/") + kFileHex) {
      x.body = shard_bytes;
      return x;
    }
    if (r.target.find("/error") != std::string::npos || r.target.find(kXorbHex) != std::string::npos) {
      x.status = 500;
      return x;
    }
    x.status = 404;
    return x;
  });
  IoThreads io;
  http::Client http(io.io, fast());
  CasClient cas(http, static_token(srv.url("/cas")), cas_opts());
  auto hit = run_coro(io.io, cas.query_dedup(*Hash::from_hex(kFileHex)));
  REQUIRE(hit.ok());
  REQUIRE(hit->has_value());
  REQUIRE((*hit)->xorbs.size() == 1);
  CHECK((*hit)->xorbs[0].xorb_hash == *Hash::from_hex(kXorbHex));
  auto miss = run_coro(io.io, cas.query_dedup(Hash::zero()));
  REQUIRE(miss.ok());
  CHECK(!miss->has_value());
  calls = 0;
  auto err = run_coro(io.io, cas.query_dedup(*Hash::from_hex(kXorbHex)));
  REQUIRE(err.ok());
  CHECK(!err->has_value());
  CHECK(calls.load() == 1);
  auto tok = make_cancel();
  tok->cancel();
  CHECK(run_coro(io.io, cas.query_dedup(Hash::zero(), tok)).code() == Errc::cancelled);
}

TEST_CASE("HubTokenSource: refresh 30 s before expiry, single-flight, shared errors; 401 refreshes once", "[cas][token]") {
  std::atomic<int64_t> now{1000000};
  std::atomic<int> token_calls{0}, cas_calls{0};
  std::atomic<int> hub_mode{0};
  TestServer hubsrv([&](const ReceivedRequest& r) {
    int k = ++token_calls;
    Reply x;
    x.head_delay = 150ms;
    if (hub_mode == 1) {
      x.status = 403;
      x.body = R"({"error":"no access"})";
      return x;
    }
    CHECK(r.target == "/api/models/acme/tiny/xet-read-token/607a30d783dfa663caf39e06633721c8d4cfcd7e");
    x.body = fmt::format(R"({{"accessToken":"xet_tok_{}","exp":{},"casUrl":"http://127.0.0.1:1/unused"}})", k, now.load() + 100);
    return x;
  });
  IoThreads io;
  http::Client http(io.io, fast());
  hub::HubOptions ho;
  ho.endpoint = hubsrv.url("");
  hub::HubClient hubc(http, ho);
  HubTokenSourceOptions to;
  to.now_unix = [&] { return now.load(); };
  auto src = std::make_shared<HubTokenSource>(hubc, hub::RepoRef{hub::RepoType::model, "acme/tiny"},
                                              "607a30d783dfa663caf39e06633721c8d4cfcd7e", false, to);

  // Eight concurrent callers during the first (slow) refresh: one request, one token.
  std::vector<std::future<Result<hub::XetToken>>> fs;
  for (int i = 0; i < 8; ++i) {
    auto p = std::make_shared<std::promise<Result<hub::XetToken>>>();
    fs.push_back(p->get_future());
    boost::asio::co_spawn(io.io, [src, p]() -> boost::asio::awaitable<void> { p->set_value(co_await src->get()); },
                          boost::asio::detached);
  }
  for (auto& f : fs) {
    auto t = wait_for(f);
    REQUIRE(t.ok());
    CHECK(t->access_token.reveal() == "xet_tok_1");
  }
  CHECK(token_calls.load() == 1);
  now += 69;  // exp - now = 31 > 30: still valid
  CHECK(run_coro(io.io, src->get())->access_token.reveal() == "xet_tok_1");
  now += 1;  // exp - now = 30: refresh
  CHECK(run_coro(io.io, src->get())->access_token.reveal() == "xet_tok_2");
  CHECK(token_calls.load() == 2);

  hub_mode = 1;
  now += 1000;
  fs.clear();
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<Result<hub::XetToken>>>();
    fs.push_back(p->get_future());
    boost::asio::co_spawn(io.io, [src, p]() -> boost::asio::awaitable<void> { p->set_value(co_await src->get()); },
                          boost::asio::detached);
  }
  for (auto& f : fs) CHECK(wait_for(f).code() == Errc::forbidden);
  CHECK(token_calls.load() == 3);

  // The CAS rejects the first token: one refresh, one retry.
  hub_mode = 0;
  TestServer cassrv([&](const ReceivedRequest& r) {
    ++cas_calls;
    Reply x;
    if (r.headers.get("Authorization") == std::optional<std::string_view>("Bearer xet_tok_4")) {
      x.status = 401;
      return x;
    }
    x.body = std::string(10, 'x');
    return x;
  });
  hub::XetToken first;
  (void)first;
  struct Flip : TokenSource {
    std::shared_ptr<HubTokenSource> inner;
    std::string cas;
    boost::asio::awaitable<Result<hub::XetToken>> get() override {
      auto t = co_await inner->get();
      if (t) t->cas_url = cas;
      co_return t;
    }
    void invalidate() override { inner->invalidate(); }
  };
  auto flip = std::make_shared<Flip>();
  flip->inner = src;
  flip->cas = cassrv.url("");
  CasClient cas(http, flip, cas_opts());
  auto sz = run_coro(io.io, cas.file_size(Hash::zero()));
  REQUIRE(sz.ok());
  CHECK(*sz == 10);
  CHECK(cas_calls.load() == 2);
  CHECK(token_calls.load() == 5);
}
