// Realism knobs and observability: fault injection (status, reset, truncate, stall, corrupt,
// rates), latency, bandwidth, stats/config/control routes, TLS and --data-dir persistence.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/text.h"
#include "net/xet/shard.h"
#include "net/xet/xorb.h"
#include "test/hubsim/tls_gen.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

namespace {

double seconds_since(int64_t t0) { return static_cast<double>(mono_ns() - t0) / 1e9; }

struct XetRepo {
  Fixture fx;
  std::string data = random_bytes(1 << 20, 42);
  std::string xet_hash, token, url;  // url: presigned URL covering the whole file (one range)
  XetRepo() {
    REQUIRE(fx.srv->add_repo(RepoType::model, "acme/k", {{"w.bin", data, ""}, {"a.txt", "a\n", ""}}).ok());
    fx.start();
    auto h = fx.client->head("/acme/k/resolve/main/w.bin");
    xet_hash = h.header("x-xet-hash");
    token = fetch_token(*fx.client, "/api/models/acme/k/xet-read-token/main");
    auto r = fx.client->get(fx.base + "/cas/v2/reconstructions/" + xet_hash, {{"Authorization", "Bearer " + token}});
    simdjson::dom::parser p;
    auto d = parse_json_or_fail(p, r.body);
    for (auto [k, v] : d["xorbs"].get_object()) url = str(v.at(0), "url");
    REQUIRE(!url.empty());
  }
  void faults(const std::string& json) {
    auto r = fx.client->post("/_sim/faults", json);
    INFO(r.body);
    REQUIRE(r.status == 200);
  }
};

}  // namespace

TEST_CASE("knobs: injected statuses, resets, truncation, stalls and corruption", "[hubsim][knobs]") {
  XetRepo env;
  const TestClient& c = *env.fx.client;
  uint64_t before = env.fx.srv->faults_injected();

  SECTION("500 for a count, then normal service") {
    env.faults(R"([{"route":"tree","kind":"500","count":2}])");
    CHECK(c.get("/api/models/acme/k/tree/main").status == 500);
    CHECK(c.get("/api/models/acme/k").status == 200);  // other routes unaffected
    CHECK(c.get("/api/models/acme/k/tree/main").status == 500);
    CHECK(c.get("/api/models/acme/k/tree/main").status == 200);
    CHECK(env.fx.srv->faults_injected() == before + 2);
  }
  SECTION("503 and 429 carry Retry-After (and RateLimit for 429)") {
    env.faults(R"([{"route":"resolve","kind":"503","count":1,"retry_after":7},
                   {"route":"token","kind":"429","count":1,"retry_after":3}])");
    auto a = c.head("/acme/k/resolve/main/a.txt");
    CHECK(a.status == 503);
    CHECK(a.header("retry-after") == "7");
    auto b = c.get("/api/models/acme/k/xet-read-token/main");
    CHECK(b.status == 429);
    CHECK(b.header("retry-after") == "3");
    CHECK(b.header("ratelimit") == "\"api\";r=0;t=3");
  }
  SECTION("reset closes the connection without a response") {
    env.faults(R"([{"route":"reconstruction","kind":"reset","count":1}])");
    auto r = c.get(env.fx.base + "/cas/v2/reconstructions/" + env.xet_hash, {{"Authorization", "Bearer " + env.token}});
    CHECK(r.status == 0);
    CHECK(!r.error.empty());
  }
  SECTION("truncate sends the full Content-Length but half the body") {
    env.faults(R"([{"route":"xorb","kind":"truncate","count":1}])");
    auto r = c.get(env.url);
    CHECK(r.status == 200);
    CHECK(!r.body_complete);
    CHECK(r.body.size() < std::stoull(r.header("content-length")));
    auto ok = c.get(env.url);
    CHECK(ok.body_complete);
  }
  SECTION("stall pauses mid-body, then completes") {
    env.faults(R"([{"route":"xorb","kind":"stall","count":1,"stall_ms":400}])");
    int64_t t0 = mono_ns();
    auto r = c.get(env.url);
    CHECK(seconds_since(t0) >= 0.38);
    CHECK(r.body_complete);
    auto again = c.get(env.url);
    CHECK(again.body == r.body);
  }
  SECTION("corrupt flips one payload byte of a xorb range") {
    auto clean = c.get(env.url);
    env.faults(R"([{"route":"xorb","kind":"corrupt","count":1}])");
    auto bad = c.get(env.url);
    REQUIRE(bad.body.size() == clean.body.size());
    size_t diffs = 0, where = 0;
    for (size_t i = 0; i < bad.body.size(); ++i)
      if (bad.body[i] != clean.body[i]) ++diffs, where = i;
    CHECK(diffs == 1);
    CHECK(where >= 8);  // inside the first chunk's payload, not its header
    auto first = xet::parse_chunk_header({reinterpret_cast<const uint8_t*>(clean.body.data()), 8});
    REQUIRE(first.ok());
    CHECK(where < 8 + first->compressed_len);
  }
  SECTION("rate-based rules fire with roughly the given probability; DELETE clears") {
    env.faults(R"({"rules":[{"route":"repo_info","kind":"500","rate":0.5}]})");
    int fails = 0;
    for (int i = 0; i < 200; ++i) fails += c.get("/api/models/acme/k").status == 500;
    CHECK(fails > 60);
    CHECK(fails < 140);
    CHECK(c.request("DELETE", "/_sim/faults").status == 200);
    CHECK(c.get("/api/models/acme/k").status == 200);
    CHECK(c.post("/_sim/faults", R"([{"route":"nowhere","kind":"500"}])").status == 400);
    CHECK(c.post("/_sim/faults", R"([{"route":"xorb","kind":"explode"}])").status == 400);
    CHECK(c.post("/_sim/faults", R"([{"route":"xorb","kind":"500","rate":2}])").status == 400);
  }
  SECTION("stats count requests, bytes, statuses and faults; reset zeroes them") {
    env.fx.srv->reset_stats();
    env.faults(R"([{"route":"tree","kind":"500","count":1}])");
    c.get("/api/models/acme/k/tree/main");
    c.get("/api/models/acme/k/tree/main");
    c.get(env.url);
    auto s = c.get("/_sim/stats");
    REQUIRE(s.status == 200);
    simdjson::dom::parser p;
    auto d = parse_json_or_fail(p, s.body);
    CHECK(num(d["requests"], "tree") == 2);
    CHECK(num(d["requests"], "xorb") == 1);
    CHECK(num(d["bytes"], "xorb") >= env.data.size() / 2);
    CHECK(num(d["status"], "500") == 1);
    CHECK(num(d["faults"], "500") == 1);
    CHECK(num(d, "faults_injected") == 1);
    int64_t active = -1;
    CHECK(!d["active_connections"].get_int64().get(active));
    CHECK(active >= 1);  // this request's own connection
    CHECK(c.post("/_sim/stats/reset", "").status == 200);
    CHECK(env.fx.srv->requests("tree") == 0);
  }
}

TEST_CASE("knobs: latency and bandwidth", "[hubsim][knobs]") {
  XetRepo env;
  const TestClient& c = *env.fx.client;
  auto set = [&](const std::string& json) {
    auto r = c.post("/_sim/config", json);
    INFO(r.body);
    REQUIRE(r.status == 200);
  };
  SECTION("latency before every response, extra first-byte latency on data routes") {
    set(R"({"latency_ms":150})");
    int64_t t0 = mono_ns();
    CHECK(c.get("/api/models/acme/k").status == 200);
    CHECK(seconds_since(t0) >= 0.145);
    set(R"({"latency_ms":0,"first_byte_latency_ms":200})");
    t0 = mono_ns();
    c.get("/api/models/acme/k");
    double meta = seconds_since(t0);
    t0 = mono_ns();
    c.get(env.url, {{"Range", "bytes=0-7"}});
    CHECK(seconds_since(t0) >= 0.195);
    CHECK(meta < 0.195);
  }
  SECTION("total bandwidth is shared; per-connection cap") {
    set(R"({"bandwidth":"2M"})");
    int64_t t0 = mono_ns();
    auto r = c.get(env.url);  // 1 MiB at 2 MiB/s
    double one = seconds_since(t0);
    CHECK(r.body.size() > 1000000);
    CHECK(one >= 0.45);
    CHECK(one < 5.0);
    t0 = mono_ns();
    std::thread t([&] { c.get(env.url); });
    c.get(env.url);
    t.join();
    CHECK(seconds_since(t0) >= 0.9);  // two downloads share the 2 MiB/s
    set(R"({"bandwidth":0,"conn_bandwidth":"1M"})");
    t0 = mono_ns();
    c.get(env.url);
    CHECK(seconds_since(t0) >= 0.9);
  }
  SECTION("config route: read, update, validate") {
    set(R"({"page_size":3,"bandwidth":"50M","token_ttl_s":60,"url_ttl_s":30,"resolve_307":false})");
    simdjson::dom::parser p;
    auto d = parse_json_or_fail(p, c.get("/_sim/config").body);
    CHECK(num(d, "page_size") == 3);
    CHECK(num(d, "bandwidth") == 50ull << 20);
    CHECK(num(d, "token_ttl_s") == 60);
    CHECK(c.get("/acme/k/resolve/main/a.txt").status == 200);  // 200 mode now
    CHECK(c.post("/_sim/config", R"({"nope":1})").status == 400);
    CHECK(c.post("/_sim/config", R"({"latency_ms":"x"})").status == 400);
  }
}

TEST_CASE("control routes: repos, commits, tags, PRs", "[hubsim][knobs]") {
  Fixture fx;
  fx.start();
  const TestClient& c = *fx.client;
  auto r = c.post("/_sim/repos/model/acme/ctl",
                  R"({"files":[{"path":"a.txt","text":"hello\n"},{"path":"b.bin","content":"AAECAw=="},
                               {"path":"big/s.bin","synthetic":"300K:seed=3"}]})");
  REQUIRE(r.status == 200);
  simdjson::dom::parser p;
  std::string sha1 = str(parse_json_or_fail(p, r.body), "sha");
  CHECK(sha1.size() == 40);
  CHECK(c.get_follow("/acme/ctl/resolve/main/a.txt").body == "hello\n");
  CHECK(c.get_follow("/acme/ctl/resolve/main/b.bin").body == std::string("\0\1\2\3", 4));
  CHECK(c.get_follow("/acme/ctl/resolve/main/big/s.bin").body.size() == 300 * 1024);
  CHECK(c.post("/_sim/repos/model/acme/ctl", "{}").status == 409);

  auto cm = c.post("/_sim/repos/model/acme/ctl/commit",
                   R"({"message":"second","files":[{"path":"a.txt","text":"v2\n"}],"delete":["b.bin"]})");
  REQUIRE(cm.status == 200);
  simdjson::dom::parser p2;
  std::string sha2 = str(parse_json_or_fail(p2, cm.body), "sha");
  CHECK(sha2 != sha1);
  CHECK(c.get_follow("/acme/ctl/resolve/main/a.txt").body == "v2\n");
  CHECK(c.head("/acme/ctl/resolve/main/b.bin").status == 404);
  CHECK(c.post("/_sim/repos/model/acme/ctl/tag", fmt::format(R"({{"tag":"v1","revision":"{}"}})", sha1)).status == 200);
  CHECK(c.get_follow("/acme/ctl/resolve/v1/a.txt").body == "hello\n");
  auto pr = c.post("/_sim/repos/model/acme/ctl/pr", fmt::format(R"({{"revision":"{}"}})", sha1));
  REQUIRE(pr.status == 200);
  simdjson::dom::parser p3;
  auto prd = parse_json_or_fail(p3, pr.body);
  CHECK(num(prd, "num") == 1);
  CHECK(str(prd, "ref") == "refs/pr/1");
  CHECK(c.get_follow("/acme/ctl/resolve/refs%2Fpr%2F1/a.txt").body == "hello\n");
  CHECK(c.post("/_sim/repos/model/acme/none/commit", R"({"files":[]})").status == 404);
  CHECK(c.post("/_sim/repos/model/acme/ctl/commit", R"({"delete":["missing"]})").status == 404);
  CHECK(c.post("/_sim/repos/model/acme/ctl/flags", R"({"private":true})").status == 200);
  CHECK(c.get("/api/models/acme/ctl").status == 401);
}

TEST_CASE("TLS: HTTPS listener with generated certificates", "[hubsim][knobs]") {
  std::string dir = fmt::format("/tmp/hubsim-tls-{}", ::getpid());
  REQUIRE(generate_test_tls(dir).ok());
  Options o;
  o.tls_cert = dir + "/cert.pem";
  o.tls_key = dir + "/key.pem";
  Fixture fx(o);
  std::string data = random_bytes(300000, 8);
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/tls", {{"w.bin", data, ""}}).ok());
  fx.start();
  REQUIRE(fx.base.starts_with("https://127.0.0.1:"));
  TestClient verified(fx.base, dir + "/ca.pem");
  auto r = verified.get("/api/models/acme/tls");
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(sha256_hex(verified.get_follow("/acme/tls/resolve/main/w.bin").body) == sha256_hex(data));
  std::string tok = fetch_token(verified, "/api/models/acme/tls/xet-read-token/main");
  auto h = verified.head("/acme/tls/resolve/main/w.bin");
  auto got = read_via_cas(verified, fx.base + "/cas", tok, h.header("x-xet-hash"), {false, true, std::nullopt});
  REQUIRE(got.ok());
  CHECK(got.value() == data);
  // Another CA does not verify this server.
  std::string other = dir + "-other";
  REQUIRE(generate_test_tls(other).ok());
  TestClient wrong(fx.base, other + "/ca.pem");
  CHECK(wrong.get("/api/models/acme/tls").status == 0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(other);
}

TEST_CASE("persistence: uploads and buckets survive a restart", "[hubsim][knobs]") {
  std::string dir = fmt::format("/tmp/hubsim-data-{}", ::getpid());
  std::filesystem::remove_all(dir);
  Options o;
  o.data_dir = dir;
  std::vector<std::string> chunks = {random_bytes(20000, 61), random_bytes(30000, 62)};
  std::string xorb_hex, file_hex, token;
  std::string file_bytes = chunks[0] + chunks[1];
  // Server 1: bucket, write token, xorb upload; then it stops before the shard is sent.
  xet::Hash c0 = xet::chunk_hash({reinterpret_cast<const uint8_t*>(chunks[0].data()), chunks[0].size()});
  xet::Hash c1 = xet::chunk_hash({reinterpret_cast<const uint8_t*>(chunks[1].data()), chunks[1].size()});
  std::vector<xet::HashSize> leaves = {{c0, chunks[0].size()}, {c1, chunks[1].size()}};
  xorb_hex = xet::xorb_hash(leaves).hex();
  file_hex = xet::file_hash(leaves).hex();
  uint16_t port;
  {
    Fixture fx(o);
    fx.start();
    port = fx.srv->port();
    REQUIRE(fx.client->post("/api/buckets/ns/persist", "{}").status == 200);
    token = fetch_token(*fx.client, "/api/buckets/ns/persist/xet-write-token");
    auto x = fx.client->post(fx.base + "/cas/v1/xorbs/default/" + xorb_hex, none_xorb(chunks),
                             {{"Authorization", "Bearer " + token}});
    REQUIRE(x.status == 200);
  }
  // Server 2 on the same port and data dir: the token still works, the xorb is known.
  Options o2 = o;
  o2.listen = fmt::format("127.0.0.1:{}", port);
  Fixture fx(o2);
  fx.start();
  Headers auth = {{"Authorization", "Bearer " + token}};
  CHECK(fx.client->head(fx.base + "/cas/v1/xorbs/default/" + xorb_hex, auth).status == 200);
  xet::Shard shard;
  xet::FileInfo fi;
  fi.file_hash = xet::file_hash(leaves);
  xet::FileTerm t;
  t.xorb_hash = xet::xorb_hash(leaves);
  t.chunk_end = 2;
  t.unpacked_bytes = static_cast<uint32_t>(file_bytes.size());
  fi.terms.push_back(t);
  fi.verification.push_back(xet::range_hash(std::vector<xet::Hash>{c0, c1}));
  shard.files.push_back(fi);
  auto sb = xet::serialize_upload_shard(shard);
  REQUIRE(sb.ok());
  auto s = fx.client->post(fx.base + "/cas/v1/shards", std::string(sb->begin(), sb->end()), auth);
  INFO(s.body);
  REQUIRE(s.status == 200);
  REQUIRE(fx.client->post("/api/buckets/ns/persist/batch",
                          fmt::format(R"({{"type":"addFile","path":"f.bin","xetHash":"{}"}})", file_hex))
              .status == 200);
  CHECK(fx.client->get_follow("/buckets/ns/persist/resolve/f.bin").body == file_bytes);
  fx.srv->stop();
  // Server 3: the shard and the bucket entry persisted too.
  Fixture fx3(o);
  fx3.start();
  CHECK(fx3.client->get_follow("/buckets/ns/persist/resolve/f.bin").body == file_bytes);
  // Persisted xorbs are served from their files (not held in memory): a file damaged after
  // start-up breaks the response instead of producing other bytes.
  std::filesystem::resize_file(dir + "/cas/xorbs/" + xorb_hex, 1000);
  auto damaged = fx3.client->get_follow("/buckets/ns/persist/resolve/f.bin");
  CHECK(damaged.body != file_bytes);
  CHECK(damaged.body.size() < file_bytes.size());
  std::filesystem::remove_all(dir);
}

namespace {
// Uploads `chunks` as one xorb + one shard (one file) with `auth`; returns the file hash hex and
// the xorb hash hex.
std::pair<std::string, std::string> upload_file(Fixture& fx, const Headers& auth, const std::vector<std::string>& chunks) {
  std::vector<xet::HashSize> leaves;
  std::vector<xet::Hash> hashes;
  uint32_t total = 0;
  for (const auto& c : chunks) {
    hashes.push_back(xet::chunk_hash({reinterpret_cast<const uint8_t*>(c.data()), c.size()}));
    leaves.push_back({hashes.back(), c.size()});
    total += static_cast<uint32_t>(c.size());
  }
  std::string xorb_hex = xet::xorb_hash(leaves).hex();
  REQUIRE(fx.client->post(fx.base + "/cas/v1/xorbs/default/" + xorb_hex, none_xorb(chunks), auth).status == 200);
  xet::Shard shard;
  xet::FileInfo fi;
  fi.file_hash = xet::file_hash(leaves);
  xet::FileTerm t;
  t.xorb_hash = xet::xorb_hash(leaves);
  t.chunk_end = static_cast<uint32_t>(chunks.size());
  t.unpacked_bytes = total;
  fi.terms.push_back(t);
  fi.verification.push_back(xet::range_hash(hashes));
  shard.files.push_back(fi);
  auto sb = xet::serialize_upload_shard(shard);
  REQUIRE(sb.ok());
  REQUIRE(fx.client->post(fx.base + "/cas/v1/shards", std::string(sb->begin(), sb->end()), auth).status == 200);
  return {fi.file_hash.hex(), xorb_hex};
}
}  // namespace

TEST_CASE("garbage collection: unreferenced uploads are removed after the grace period, live ones stay",
          "[hubsim][knobs]") {
  std::string dir = fmt::format("/tmp/hubsim-gc-{}", ::getpid());
  std::filesystem::remove_all(dir);
  Options o;
  o.data_dir = dir;
  o.gc_grace_s = 1;
  Fixture fx(o);
  fx.start();
  REQUIRE(fx.client->post("/api/buckets/ns/gc", "{}").status == 200);
  Headers auth = {{"Authorization", "Bearer " + fetch_token(*fx.client, "/api/buckets/ns/gc/xet-write-token")}};
  std::string a_bytes = random_bytes(20000, 71), b_bytes = random_bytes(30000, 72), c_bytes = random_bytes(25000, 73);
  auto [a_file, a_xorb] = upload_file(fx, auth, {a_bytes});
  auto [b_file, b_xorb] = upload_file(fx, auth, {b_bytes});
  auto add = [&](const std::string& path, const std::string& file_hex) {
    REQUIRE(fx.client->post("/api/buckets/ns/gc/batch",
                            fmt::format(R"({{"type":"addFile","path":"{}","xetHash":"{}"}})", path, file_hex))
                .status == 200);
  };
  add("f.bin", a_file);
  add("keep.bin", b_file);
  add("f.bin", b_file);  // a is no longer referenced by any tree
  // c is uploaded (xorb + shard) but never added: garbage too once the grace period is over.
  auto [c_file, c_xorb] = upload_file(fx, auth, {c_bytes});
  CHECK(std::filesystem::exists(dir + "/cas/xorbs/" + a_xorb));
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  // Any write triggers a pass; b's xorb was referenced by the earlier shard only, but the
  // bucket still references b, so it stays.
  REQUIRE(fx.client->post("/api/buckets/ns/gc/batch", R"({"type":"deleteFile","path":"nothing.bin"})").status == 200);
  CHECK_FALSE(std::filesystem::exists(dir + "/cas/xorbs/" + a_xorb));
  CHECK_FALSE(std::filesystem::exists(dir + "/cas/xorbs/" + c_xorb));
  CHECK(std::filesystem::exists(dir + "/cas/xorbs/" + b_xorb));
  CHECK(fx.client->head(fx.base + "/cas/v1/xorbs/default/" + a_xorb, auth).status == 404);
  CHECK(fx.client->get(fx.base + "/cas/v1/reconstructions/" + a_file, auth).status == 404);
  CHECK(fx.client->get(fx.base + "/cas/v1/reconstructions/" + c_file, auth).status == 404);
  CHECK(fx.client->get_follow("/buckets/ns/gc/resolve/f.bin").body == b_bytes);
  CHECK(fx.client->get_follow("/buckets/ns/gc/resolve/keep.bin").body == b_bytes);
  // A shard naming a collected xorb is refused like one naming a xorb never uploaded; the
  // client uploads the xorb again and the file is usable.
  auto again = upload_file(fx, auth, {a_bytes});
  CHECK(again.first == a_file);
  add("f.bin", a_file);
  CHECK(fx.client->get_follow("/buckets/ns/gc/resolve/f.bin").body == a_bytes);
  fx.srv->stop();
  // After a restart the state is what it was: the live files reconstruct, nothing collected is back.
  Fixture fx2(o);
  fx2.start();
  CHECK(fx2.client->get_follow("/buckets/ns/gc/resolve/keep.bin").body == b_bytes);
  CHECK(fx2.client->get_follow("/buckets/ns/gc/resolve/f.bin").body == a_bytes);
  CHECK(fx2.client->get(fx2.base + "/cas/v1/reconstructions/" + c_file, auth).status == 404);
  std::filesystem::remove_all(dir);
}
