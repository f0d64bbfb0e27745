// Hub JSON parsers, validation, NDJSON batches, error mapping and the token provider.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/clock.h"
#include "net/hub/errors.h"
#include "net/hub/json.h"
#include "net/hub/token.h"
#include "net/hub/client.h"

using namespace hf;
using namespace hf::hub;

namespace {

// hub-api.md §10 examples, verbatim.
const char* kR1b = R"({"_id":"65f0c0a24913fc50b7ba14d2","id":"acme/tiny","modelId":"acme/tiny","author":"acme",
 "sha":"607a30d783dfa663caf39e06633721c8d4cfcd7e","lastModified":"2024-02-19T10:57:45.000Z",
 "createdAt":"2022-03-02T23:29:04.000Z","private":false,"disabled":false,"gated":false,
 "tags":[],"siblings":[{"rfilename":".gitattributes"},{"rfilename":"config.json"},{"rfilename":"onnx/model.onnx"}],
 "usedStorage":440474000})";
const char* kR2p1 = R"([{"type":"file","oid":"dc08351d4dc0732d9c8af04070ced089b201ce2f","size":345,"path":".gitattributes"},
 {"type":"directory","oid":"1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5","size":0,"path":"onnx"}])";
const char* kR2p2 = R"([{"type":"file","oid":"fca794a5f07ff8f963fe8b61e3694b0fb7f955df","size":313,"path":"config.json"},
 {"type":"file","oid":"ba5d19791be1dd7992e33bd61f20207b0f7f50a5","size":440473133,
  "lfs":{"oid":"097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a","size":440473133,"pointerSize":134},
  "xetHash":"2d8408d3a894d02517d04956e2f7546ff08362594072f3527ce144b5212a3296","path":"pytorch_model.bin"}])";
const char* kR3 = R"([{"type":"file","oid":"fca794a5f07ff8f963fe8b61e3694b0fb7f955df","size":313,"path":"config.json",
  "lastCommit":{"id":"bb3c1c3256d2598217df9889a14a2e811587891d","title":"Update config.json","date":"2019-06-18T09:06:51.000Z"}},
 {"type":"directory","oid":"1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5","size":0,"path":"onnx",
  "lastCommit":{"id":"bb3c1c3256d2598217df9889a14a2e811587891d","title":"Add onnx","date":"2019-06-18T09:06:51.000Z"}}])";
const char* kB1 = R"({"id":"alice/scratch","private":true,"createdAt":"2026-02-17T14:40:00.000Z",
 "updatedAt":"2026-02-17T14:58:12.000Z","size":2411207,"totalFiles":2})";
const char* kB2 = R"([{"type":"directory","path":"checkpoints","uploadedAt":"2026-02-17T14:58:12.000Z"},
 {"type":"file","path":"file.txt","size":2379,
  "xetHash":"96e637d9665bd35477b1908a23f2e254edfba0618dbd2d62f90a6baee7d139cf",
  "mtime":"2024-09-25T15:31:02.346Z","uploadedAt":"2026-02-17T14:46:03.000Z"}])";
const char* kR6 = R"({"accessToken":"xet_emu_7f3c1a","exp":1848535668,"casUrl":"http://127.0.0.1:8081"})";

// Unix time of an ISO-8601 UTC timestamp, computed independently (days-from-civil).
int64_t unix_ns(int y, int m, int d, int hh, int mm, int ss, int ms = 0) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return ((days * 86400 + hh * 3600 + mm * 60 + ss) * 1000 + ms) * 1000000;
}

}  // namespace

TEST_CASE("parse_repo_info on the R1b example", "[hub][json]") {
  auto r = parse_repo_info(kR1b);
  REQUIRE(r.ok());
  CHECK(r->id == "acme/tiny");
  CHECK(r->sha == "607a30d783dfa663caf39e06633721c8d4cfcd7e");
  CHECK(r->last_modified_ns == unix_ns(2024, 2, 19, 10, 57, 45));
  CHECK(!r->is_private);
  CHECK(r->gated.empty());
  auto g = parse_repo_info(R"({"id":"a/b","gated":"manual","private":true})");
  REQUIRE(g.ok());
  CHECK(g->gated == "manual");
  CHECK(g->is_private);
  CHECK(parse_repo_info("[]").code() == Errc::protocol);
  CHECK(parse_repo_info(R"({"sha":"x"})").code() == Errc::protocol);
}

TEST_CASE("parse_tree_entries on R2/R3/B2 examples", "[hub][json]") {
  auto p1 = parse_tree_entries(kR2p1);
  REQUIRE(p1.ok());
  REQUIRE(p1->size() == 2);
  CHECK(!(*p1)[0].is_dir);
  CHECK((*p1)[0].path == ".gitattributes");
  CHECK((*p1)[0].size == 345);
  CHECK((*p1)[0].oid == "dc08351d4dc0732d9c8af04070ced089b201ce2f");
  CHECK((*p1)[1].is_dir);
  CHECK((*p1)[1].path == "onnx");

  auto p2 = parse_tree_entries(kR2p2);
  REQUIRE(p2.ok());
  REQUIRE(p2->size() == 2);
  const auto& lfs = (*p2)[1];
  CHECK(lfs.size == 440473133);
  CHECK(lfs.lfs_sha256 == "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a");
  CHECK(lfs.xet_hash == "2d8408d3a894d02517d04956e2f7546ff08362594072f3527ce144b5212a3296");
  CHECK(lfs.mtime_ns == 0);

  auto p3 = parse_tree_entries(kR3);
  REQUIRE(p3.ok());
  CHECK((*p3)[0].mtime_ns == unix_ns(2019, 6, 18, 9, 6, 51));

  auto b = parse_tree_entries(kB2);
  REQUIRE(b.ok());
  REQUIRE(b->size() == 2);
  CHECK((*b)[0].is_dir);
  CHECK((*b)[0].uploaded_at_ns == unix_ns(2026, 2, 17, 14, 58, 12));
  CHECK((*b)[1].mtime_ns == unix_ns(2024, 9, 25, 15, 31, 2, 346));
  CHECK((*b)[1].size == 2379);

  auto skip = parse_tree_entries(R"([{"type":"unknown","path":"x"},{"type":"file","path":"y","size":1,"mtime":null}])");
  REQUIRE(skip.ok());
  REQUIRE(skip->size() == 1);
  CHECK(skip->front().path == "y");
  CHECK(parse_tree_entries(R"([{"type":"file"}])").code() == Errc::protocol);
  CHECK(parse_tree_entries(R"({"type":"file"})").code() == Errc::protocol);
  CHECK(parse_tree_entries(R"([1,2])").code() == Errc::protocol);
}

TEST_CASE("Hub JSON: bucket info, xet token, batch results, error bodies", "[hub][json]") {
  auto b = parse_bucket_info(kB1);
  REQUIRE(b.ok());
  CHECK(b->id == "alice/scratch");
  CHECK(b->is_private);
  CHECK(b->size == 2411207);
  CHECK(b->total_files == 2);
  CHECK(b->updated_at_ns == unix_ns(2026, 2, 17, 14, 58, 12));
  CHECK(b->created_at_ns == unix_ns(2026, 2, 17, 14, 40, 0));

  auto t = parse_xet_token(kR6);
  REQUIRE(t.ok());
  CHECK(t->access_token.reveal() == "xet_emu_7f3c1a");
  CHECK(t->exp_unix == 1848535668);
  CHECK(t->cas_url == "http://127.0.0.1:8081");
  CHECK(fmt::format("{}", t->access_token) == "<redacted>");
  CHECK(parse_xet_token(R"({"accessToken":"x","casUrl":"y"})").code() == Errc::protocol);
  CHECK(parse_xet_token(std::string(R"({"accessToken":")") + std::string(70000, 'a') + R"(","exp":1,"casUrl":"u"})").code() ==
        Errc::protocol);

  auto ok = parse_batch_result(R"({"success":true,"processed":2,"succeeded":2,"failed":[]})");
  REQUIRE(ok.ok());
  CHECK(ok->all_succeeded());
  auto part = parse_batch_result(
      R"({"success":false,"processed":2,"succeeded":1,"failed":[{"path":"new/name.bin","error":"Xet file not found"}]})");
  REQUIRE(part.ok());
  CHECK(!part->all_succeeded());
  REQUIRE(part->failed.size() == 1);
  CHECK(part->failed[0] == std::make_pair(std::string("new/name.bin"), std::string("Xet file not found")));
  auto vague = parse_batch_result(R"({"success":false,"processed":1,"succeeded":1,"failed":[]})");
  REQUIRE(vague.ok());
  CHECK(!vague->all_succeeded());

  CHECK(parse_error_message(R"({"error":"Entry not found"})") == "Entry not found");
  CHECK(parse_error_message(R"({"error":["a","b"]})") == "a; b");
  CHECK(parse_error_message(R"({"errors":[{"message":"m1"},{"message":"m2"}]})") == "m1; m2");
  CHECK(parse_error_message(R"({"error":"invalid_grant","error_description":"expired"})") == "invalid_grant: expired");
  CHECK(parse_error_message("<html>502</html>").empty());
  CHECK(parse_error_message(R"({"error":"line1\nline2"})") == "line1 line2");
}

TEST_CASE("Hub JSON: hostile documents are bounded errors", "[hub][json][limits]") {
  std::string bomb(100000, '[');
  auto r = parse_tree_entries(bomb);
  CHECK(r.code() == Errc::protocol);
  std::string deep = std::string(70, '[') + std::string(70, ']');
  auto d = parse_tree_entries(deep);
  REQUIRE(!d.ok());
  CHECK(d.error().message.find("nested too deeply") != std::string::npos);
  CHECK(parse_tree_entries("[{\"type\":\"file\",\"path\":\"a\"").code() == Errc::protocol);
  CHECK(parse_tree_entries("").code() == Errc::protocol);
  std::string big = "[" + std::string(2000, ' ') + "]";
  auto tb = parse_tree_entries(big, 1000);
  REQUIRE(!tb.ok());
  CHECK(tb.error().message.find("too large") != std::string::npos);
}

TEST_CASE("Hub JSON: non-UTF-8 names pass through as bytes", "[hub][json][utf8]") {
  // Raw invalid bytes inside a string, and a surrogateescape-style "\udcff" escape.
  std::string raw = std::string("[{\"type\":\"file\",\"path\":\"caf\xe9/\xff\xfe.bin\",\"size\":1},") +
                    "{\"type\":\"file\",\"path\":\"esc\\udce9\\\\udc80\",\"size\":2}," +
                    "{\"type\":\"file\",\"path\":\"ok-\xc3\xa9\",\"size\":3}]";
  auto r = parse_tree_entries(raw);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].path == std::string("caf\xe9/\xff\xfe.bin"));
  CHECK((*r)[1].path == std::string("esc\xe9\\udc80"));  // the escaped backslash stays literal
  CHECK((*r)[2].path == std::string("ok-\xc3\xa9"));
  // Only escapes (no raw bytes): the same bytes come out.
  auto e = parse_tree_entries("[{\"type\":\"file\",\"path\":\"x\\udc80\\udcFF\",\"size\":1}]");
  REQUIRE(e.ok());
  CHECK(e->front().path == std::string("x\x80\xff"));
  // A valid document is never rewritten.
  std::string s = "\xf4\x8f\xbe\x80";  // U+10FF80 in a valid document stays as is
  auto v = parse_tree_entries("[{\"type\":\"file\",\"path\":\"" + s + "\",\"size\":1}]");
  REQUIRE(v.ok());
  CHECK(v->front().path == s);
}

TEST_CASE("Repo id, revision and path validation", "[hub][types]") {
  CHECK(validate_repo_id({RepoType::model, "acme/tiny"}).ok());
  CHECK(validate_repo_id({RepoType::model, "gpt2"}).ok());
  CHECK(validate_repo_id({RepoType::bucket, "gpt2"}).code() == Errc::invalid_argument);
  CHECK(!validate_repo_id({RepoType::model, "a/b/c"}).ok());
  CHECK(!validate_repo_id({RepoType::model, "a/.."}).ok());
  CHECK(!validate_repo_id({RepoType::model, "a/b?x"}).ok());
  CHECK(!validate_repo_id({RepoType::model, ""}).ok());
  CHECK(validate_revision("main").ok());
  CHECK(validate_revision("refs/pr/1").ok());
  CHECK(validate_revision("v1.2_3-rc").ok());
  CHECK(validate_revision("607a30d783dfa663caf39e06633721c8d4cfcd7e").ok());
  CHECK(!validate_revision("").ok());
  CHECK(!validate_revision("a/../b").ok());
  CHECK(!validate_revision("main?x=1").ok());
  CHECK(!validate_revision("ma#in").ok());
  CHECK(!validate_revision("ma in").ok());
  CHECK(validate_path("").ok());
  CHECK(validate_path("a/b c#1.txt").ok());
  CHECK(!validate_path("a//b").ok());
  CHECK(!validate_path("a/../b").ok());
  CHECK(!validate_path("/abs").ok());
  CHECK(api_prefix(RepoType::dataset) == "datasets");
  CHECK(resolve_prefix(RepoType::model).empty());
  CHECK(resolve_prefix(RepoType::space) == "spaces/");
}

TEST_CASE("Batch NDJSON lines match hub-api.md §7.4", "[hub][batch]") {
  std::vector<BatchOp> ops;
  BatchOp add;
  add.kind = BatchOp::add;
  add.path = "new/name.bin";
  add.xet_hash = "3ed0e9fefe788ddd61d1e26eba67057e9740a064b009256fbafadf6bb95785ca";
  add.mtime_ms = 1771340292000;
  ops.push_back(add);
  BatchOp del;
  del.kind = BatchOp::del;
  del.path = "checkpoints/model.safetensors";
  ops.push_back(del);
  BatchOp cp;
  cp.kind = BatchOp::copy;
  cp.path = "dst.bin";
  cp.xet_hash = "ab";
  cp.source_repo_type = "bucket";
  cp.source_repo_id = "user/src";
  ops.push_back(cp);
  CHECK(batch_ndjson(ops) ==
        "{\"type\":\"addFile\",\"path\":\"new/name.bin\",\"xetHash\":\"3ed0e9fefe788ddd61d1e26eba67057e9740a064b009256fbafadf6bb95785ca\",\"mtime\":1771340292000}\n"
        "{\"type\":\"deleteFile\",\"path\":\"checkpoints/model.safetensors\"}\n"
        "{\"type\":\"copyFile\",\"path\":\"dst.bin\",\"xetHash\":\"ab\",\"sourceRepoType\":\"bucket\",\"sourceRepoId\":\"user/src\"}\n");
}

TEST_CASE("hub_error maps status and X-Error-Code to Errc with clear messages", "[hub][errors]") {
  RepoRef repo{RepoType::model, "acme/tiny"};
  auto head = [](int status, std::initializer_list<std::pair<std::string, std::string>> h) {
    http::ResponseHead r;
    r.status = status;
    for (auto& [k, v] : h) r.headers.add(k, v);
    return r;
  };
  ErrorContext ctx{&repo, "v9", "weights/x.bin", ErrorContext::On404::entry, "download"};
  auto e1 = hub_error(head(404, {{"X-Error-Code", "RepoNotFound"}}), "", ctx);
  CHECK(e1.code == Errc::repo_not_found);
  CHECK(e1.message == "repository acme/tiny not found");
  auto e2 = hub_error(head(404, {{"X-Error-Code", "RevisionNotFound"}}), "", ctx);
  CHECK(e2.code == Errc::revision_not_found);
  CHECK(e2.message == "revision 'v9' not found in acme/tiny");
  auto e3 = hub_error(head(404, {{"X-Error-Code", "EntryNotFound"}}), "", ctx);
  CHECK(e3.code == Errc::entry_not_found);
  CHECK(e3.message == "'weights/x.bin' not found in acme/tiny@v9");
  auto e4 = hub_error(head(403, {{"X-Error-Code", "GatedRepo"}, {"X-Error-Message", "Access to model acme/tiny is restricted"}}), "", ctx);
  CHECK(e4.code == Errc::gated);
  CHECK(e4.message.find("restricted") != std::string::npos);
  CHECK(hub_error(head(401, {}), R"({"error":"Invalid credentials in Authorization header"})", ctx).code == Errc::unauthorized);
  CHECK(hub_error(head(401, {}), "", ctx).code == Errc::unauthorized);
  CHECK(hub_error(head(403, {}), R"({"error":"Access to this resource is disabled."})", ctx).code == Errc::forbidden);
  CHECK(hub_error(head(404, {}), "", ctx).code == Errc::entry_not_found);
  CHECK(hub_error(head(429, {}), "", ctx).code == Errc::rate_limited);
  CHECK(hub_error(head(503, {}), "", ctx).code == Errc::server_error);
  CHECK(hub_error(head(507, {}), "", ctx).code == Errc::no_space);
  CHECK(hub_error(head(416, {}), "", ctx).code == Errc::out_of_range);
  auto e5 = hub_error(head(418, {}), "", ctx);
  CHECK(e5.code == Errc::http_status);
  CHECK(e5.message.find("418") != std::string::npos);
  RepoRef bucket{RepoType::bucket, "alice/scratch"};
  ErrorContext bctx{&bucket, {}, {}, ErrorContext::On404::repo, "bucket info"};
  auto e6 = hub_error(head(404, {{"X-Error-Code", "RepoNotFound"}}), "", bctx);
  CHECK(e6.message == "bucket alice/scratch not found");
}

namespace {

struct TempDir {
  TempDir() {
    char t[] = "/tmp/hf-hub-test-XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& rel, const std::string& content, mode_t mode = 0600) {
    std::string p = path + "/" + rel;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << content;
    chmod(p.c_str(), mode);
    return p;
  }
  std::string path;
};

}  // namespace

TEST_CASE("TokenProvider: precedence, file cleaning, permissions, re-read", "[hub][token]") {
  TempDir d;
  std::map<std::string, std::string> env;
  int64_t now = 0;
  auto make = [&](TokenProviderOptions o = {}) {
    o.getenv = [&env](const char* n) -> const char* {
      auto it = env.find(n);
      return it == env.end() ? nullptr : it->second.c_str();
    };
    o.now_ns = [&now] { return now; };
    o.euid = geteuid();
    o.system_token_file = d.path + "/etc-token";
    return TokenProvider(std::move(o));
  };

  SECTION("explicit value wins, then token_file, then HF_TOKEN") {
    env["HF_TOKEN"] = "hf_env";
    auto f = d.file("tf", "hf_file\r\n");
    TokenProviderOptions o;
    o.token = Secret("  hf_explicit \n");
    o.token_file = f;
    auto a = make(o);
    CHECK(a.token()->reveal() == "hf_explicit");
    o.token = Secret();
    auto b = make(o);
    CHECK(b.token()->reveal() == "hf_file");
    CHECK(b.source() == f);
    auto c = make();
    CHECK(c.token()->reveal() == "hf_env");
    CHECK(c.source() == "HF_TOKEN");
  }
  SECTION("implicit chain: HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, HF_HOME, XDG, HOME") {
    env["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy";
    CHECK(make().token()->reveal() == "hf_legacy");
    env.clear();
    env["HF_TOKEN_PATH"] = d.file("custom/token", "hf_path\n");
    CHECK(make().token()->reveal() == "hf_path");
    env.clear();
    env["HF_HOME"] = d.path + "/hfhome";
    d.file("hfhome/token", "hf_home");
    CHECK(make().token()->reveal() == "hf_home");
    env.clear();
    env["XDG_CACHE_HOME"] = d.path + "/xdg";
    d.file("xdg/huggingface/token", "hf_xdg");
    CHECK(make().token()->reveal() == "hf_xdg");
    env.clear();
    env["HOME"] = d.path + "/home";
    d.file("home/.cache/huggingface/token", "hf_homedir");
    CHECK(make().token()->reveal() == "hf_homedir");
    env.clear();
    env["HOME"] = d.path + "/nothing";
    auto t = make().token();
    REQUIRE(t.ok());
    if (geteuid() == 0) {
      d.file("etc-token", "hf_system");
      CHECK(make().token()->reveal() == "hf_system");
    } else {
      CHECK(t->empty());
    }
  }
  SECTION("HF_HUB_DISABLE_IMPLICIT_TOKEN keeps only explicit sources") {
    env["HF_TOKEN"] = "hf_env";
    env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1";
    auto a = make();
    REQUIRE(a.token().ok());
    CHECK(a.token()->empty());
    TokenProviderOptions o;
    o.token = Secret("hf_explicit");
    CHECK(make(o).token()->reveal() == "hf_explicit");
  }
  SECTION("group/other readable files are refused like s3fs") {
    auto f = d.file("loose", "hf_loose", 0644);
    TokenProviderOptions o;
    o.token_file = f;
    auto a = make(o);
    auto t = a.token();
    REQUIRE(!t.ok());
    CHECK(t.code() == Errc::permission_denied);
    CHECK(t.error().message.find("group or others") != std::string::npos);
    CHECK(t.error().message.find("hf_loose") == std::string::npos);
    env["HF_TOKEN_PATH"] = f;  // implicit: skipped with a warning
    auto b = make();
    REQUIRE(b.token().ok());
    CHECK(b.token()->empty());
    auto x = d.file("exec", "hf_x", 0700);
    o.token_file = x;
    CHECK(make(o).token().code() == Errc::permission_denied);
    o.token_file = d.path + "/missing";
    CHECK(make(o).token().code() == Errc::not_found);
  }
  SECTION("token files are re-read after 30 s, not before") {
    auto f = d.file("rot", "hf_one");
    TokenProviderOptions o;
    o.token_file = f;
    auto p = make(o);
    CHECK(p.token()->reveal() == "hf_one");
    d.file("rot", "hf_two");
    now += 29'000'000'000;
    CHECK(p.token()->reveal() == "hf_one");
    now += 1'000'000'000;
    CHECK(p.token()->reveal() == "hf_two");
  }
}
