// HubClient against an in-test fake Hub (the scriptable loopback server): URL shapes, auth,
// pagination, errors, HEAD/redirect rules, downloads, tokens, bucket batches.
#include <utility>  // before Asio (asio#944)

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <atomic>
#include <mutex>

#include "net/hub/client.h"
#include "test/unit/http/test_server.h"
#include "test/unit/http/test_util.h"

using namespace hf;
using namespace hf::hub;
using namespace hf::test;
using namespace std::chrono_literals;

namespace {

http::ClientOptions opts() {
  http::ClientOptions o;
  o.use_env_proxy = false;
  o.retry.max_attempts = 1;
  return o;
}

Reply json(int status, std::string body, std::vector<std::pair<std::string, std::string>> h = {}) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(h);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

std::shared_ptr<TokenProvider> token(std::string t) {
  TokenProviderOptions o;
  o.token = Secret(std::move(t));
  return std::make_shared<TokenProvider>(o);
}

struct Fixture {
  explicit Fixture(Handler h) : srv(std::move(h)), http(io.io, opts()) {
    HubOptions ho;
    ho.endpoint = srv.url("") + "/";  // trailing slash is stripped
    ho.tokens = token("hf_testtoken");
    hub = std::make_unique<HubClient>(http, ho);
  }
  TestServer srv;
  IoThreads io;
  http::Client http;
  std::unique_ptr<HubClient> hub;
};

const RepoRef kRepo{RepoType::model, "acme/tiny"};
const RepoRef kBucket{RepoType::bucket, "alice/scratch"};

}  // namespace

TEST_CASE("repo_info: URL, revision encoding, auth header, parse", "[hub][client]") {
  Fixture f([](const ReceivedRequest& r) {
    if (r.target == "/api/models/acme/tiny" || r.target == "/api/models/acme/tiny/revision/refs%2Fpr%2F1")
      return json(200, R"({"id":"acme/tiny","sha":"607a30d783dfa663caf39e06633721c8d4cfcd7e","lastModified":"2024-02-19T10:57:45.000Z"})");
    if (r.target == "/api/datasets/acme/data/revision/v9")
      return json(404, R"({"error":"Invalid rev id: v9"})", {{"X-Error-Code", "RevisionNotFound"}});
    return json(404, R"({"error":"Repository not found"})", {{"X-Error-Code", "RepoNotFound"}});
  });
  CHECK(f.hub->endpoint() == f.srv.url(""));
  auto a = run_coro(f.io.io, f.hub->repo_info(kRepo, std::nullopt));
  REQUIRE(a.ok());
  CHECK(a->sha == "607a30d783dfa663caf39e06633721c8d4cfcd7e");
  auto b = run_coro(f.io.io, f.hub->repo_info(kRepo, std::string("refs/pr/1")));
  REQUIRE(b.ok());
  auto reqs = f.srv.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].target == "/api/models/acme/tiny/revision/refs%2Fpr%2F1");
  CHECK(reqs[0].headers.get("Authorization") == std::optional<std::string_view>("Bearer hf_testtoken"));

  auto c = run_coro(f.io.io, f.hub->repo_info({RepoType::dataset, "acme/data"}, std::string("v9")));
  REQUIRE(!c.ok());
  CHECK(c.code() == Errc::revision_not_found);
  CHECK(c.error().message == "revision 'v9' not found in dataset acme/data");
  auto d = run_coro(f.io.io, f.hub->repo_info({RepoType::space, "acme/none"}, std::nullopt));
  CHECK(d.code() == Errc::repo_not_found);
  CHECK(d.error().message == "repository space acme/none not found");
  auto bad = run_coro(f.io.io, f.hub->repo_info(kRepo, std::string("main?x=../")));
  CHECK(bad.code() == Errc::invalid_argument);
  CHECK(f.srv.request_count() == 4);
}

TEST_CASE("Error codes from the Hub map to Errc", "[hub][client][errors]") {
  Fixture f([](const ReceivedRequest& r) {
    auto path = r.target.substr(0, r.target.find('?'));
    if (path.find("/unauth") != std::string::npos)
      return json(401, R"({"error":"Invalid credentials in Authorization header"})");
    if (path.find("/gated") != std::string::npos)
      return json(403, R"({"error":"restricted"})", {{"X-Error-Code", "GatedRepo"}, {"X-Error-Message", "Access to model acme/gated is restricted."}});
    if (path.find("/disabled") != std::string::npos) return json(403, R"({"error":"Access to this resource is disabled."})");
    if (path.find("/limited") != std::string::npos) return json(429, "{}", {{"RateLimit", "\"api\";r=0;t=100"}});
    if (path.find("/broken") != std::string::npos) return json(500, "oops");
    if (path.find("/teapot") != std::string::npos) return json(418, "{}");
    return json(200, "[]");
  });
  auto code = [&](const char* id) {
    return run_coro(f.io.io, f.hub->repo_info({RepoType::model, std::string("acme/") + id}, std::nullopt));
  };
  CHECK(code("unauth").code() == Errc::unauthorized);
  auto g = code("gated");
  CHECK(g.code() == Errc::gated);
  CHECK(g.error().message.find("restricted") != std::string::npos);
  CHECK(code("disabled").code() == Errc::forbidden);
  CHECK(code("limited").code() == Errc::rate_limited);
  CHECK(code("broken").code() == Errc::server_error);
  auto t = code("teapot");
  CHECK(t.code() == Errc::http_status);
  CHECK(t.error().message.find("418") != std::string::npos);
}

TEST_CASE("list_tree: pagination with absolute Link, exactly one page, one page + 1", "[hub][client][tree]") {
  std::string base;
  Fixture f([&](const ReceivedRequest& r) {
    if (r.target == "/api/models/acme/tiny/tree/main?recursive=false&limit=1000")
      return json(200, R"([{"type":"file","oid":"a","size":1,"path":"a"},{"type":"directory","oid":"d","size":0,"path":"onnx"}])",
                  {{"Link", "<" + base + "/api/models/acme/tiny/tree/main?recursive=false&limit=1000&cursor=Mg%3D%3D>; rel=\"next\""}});
    if (r.target == "/api/models/acme/tiny/tree/main?recursive=false&limit=1000&cursor=Mg%3D%3D")
      return json(200, R"([{"type":"file","oid":"b","size":2,"path":"b"}])");
    if (r.target == "/api/models/acme/one/tree/main/sub%20dir/x%23y?recursive=true&limit=1000")
      return json(200, R"([{"type":"file","oid":"c","size":3,"path":"sub dir/x#y/c"}])", {{"Link", "<http://ignored/prev>; rel=\"prev\""}});
    if (r.target.rfind("/api/models/acme/loop/", 0) == 0)
      return json(200, "[]", {{"Link", "</api/models/acme/loop/tree/main?recursive=false&limit=1000>; rel=\"next\""}});
    if (r.target.rfind("/api/models/acme/missing/", 0) == 0)
      return json(404, R"({"error":"Entry not found"})", {{"X-Error-Code", "EntryNotFound"}});
    return json(500, "{}");
  });
  base = f.srv.url("");
  std::vector<std::vector<TreeEntry>> pages;
  auto on_page = [&](std::vector<TreeEntry>&& p) {
    pages.push_back(std::move(p));
    return Status();
  };
  REQUIRE(run_coro(f.io.io, f.hub->list_tree(kRepo, "main", "", false, on_page)).ok());
  REQUIRE(pages.size() == 2);
  CHECK(pages[0].size() == 2);
  CHECK(pages[1].size() == 1);
  CHECK(pages[1][0].path == "b");
  auto reqs = f.srv.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].headers.get("Authorization") == std::optional<std::string_view>("Bearer hf_testtoken"));

  pages.clear();
  REQUIRE(run_coro(f.io.io, f.hub->list_tree({RepoType::model, "acme/one"}, "main", "sub dir/x#y", true, on_page)).ok());
  REQUIRE(pages.size() == 1);
  CHECK(pages[0][0].path == "sub dir/x#y/c");

  auto loop = run_coro(f.io.io, f.hub->list_tree({RepoType::model, "acme/loop"}, "main", "", false, on_page));
  CHECK(loop.code() == Errc::protocol);
  auto missing = run_coro(f.io.io, f.hub->list_tree({RepoType::model, "acme/missing"}, "main", "nope", false, on_page));
  CHECK(missing.code() == Errc::entry_not_found);
  CHECK(missing.error().message == "'nope' not found in acme/missing@main");

  // The consumer can stop the listing.
  int calls = 0;
  auto stop = run_coro(f.io.io, f.hub->list_tree(kRepo, "main", "", false, [&](std::vector<TreeEntry>&&) {
    ++calls;
    return Status(make_error(Errc::cancelled, "enough"));
  }));
  CHECK(stop.code() == Errc::cancelled);
  CHECK(calls == 1);
}

TEST_CASE("list_tree: Authorization is not sent to a next link on another origin", "[hub][client][tree]") {
  TestServer other([](const ReceivedRequest&) { return json(200, R"([{"type":"file","path":"z","size":1}])"); });
  Fixture f([&](const ReceivedRequest&) {
    return json(200, "[]", {{"Link", "<" + other.url("/page2") + ">; rel=\"next\""}});
  });
  size_t n = 0;
  REQUIRE(run_coro(f.io.io, f.hub->list_tree(kRepo, "main", "", false, [&](std::vector<TreeEntry>&& p) {
            n += p.size();
            return Status();
          })).ok());
  CHECK(n == 1);
  REQUIRE(other.request_count() == 1);
  CHECK(!other.requests()[0].headers.contains("Authorization"));
}

TEST_CASE("list_tree on buckets keeps strict descendants only (P6)", "[hub][client][bucket]") {
  Fixture f([](const ReceivedRequest& r) {
    if (r.target == "/api/buckets/alice/scratch/tree/logs?recursive=false&limit=5000")
      return json(200, R"([{"type":"directory","path":"logs","uploadedAt":"2026-02-17T14:58:12.000Z"},
        {"type":"file","path":"logs/a.txt","size":1},{"type":"directory","path":"logs_existing"},
        {"type":"file","path":"logs.tmp","size":2},{"type":"directory","path":"logs/sub"}])");
    if (r.target == "/api/buckets/alice/scratch/tree?recursive=false&limit=5000")
      return json(200, R"([{"type":"file","path":"top","size":1}])");
    return json(500, "{}");
  });
  std::vector<std::string> names;
  auto collect = [&](std::vector<TreeEntry>&& p) {
    for (auto& e : p) names.push_back(e.path);
    return Status();
  };
  REQUIRE(run_coro(f.io.io, f.hub->list_tree(kBucket, "ignored", "logs", false, collect)).ok());
  CHECK(names == std::vector<std::string>{"logs/a.txt", "logs/sub"});
  names.clear();
  REQUIRE(run_coro(f.io.io, f.hub->list_tree(kBucket, "", "", false, collect)).ok());
  CHECK(names == std::vector<std::string>{"top"});
}

TEST_CASE("paths_info: JSON body, batches, missing paths absent", "[hub][client]") {
  std::mutex mu;
  std::vector<std::string> bodies;
  Fixture f([&](const ReceivedRequest& r) {
    std::lock_guard lk(mu);
    bodies.push_back(r.body);
    CHECK(r.method == "POST");
    CHECK(r.headers.get("Content-Type") == std::optional<std::string_view>("application/json"));
    if (r.target == "/api/models/acme/tiny/paths-info/main")
      return json(200, R"([{"type":"file","oid":"fca7","size":313,"path":"config.json"}])");
    if (r.target == "/api/buckets/alice/scratch/paths-info") return json(200, "[]");
    return json(404, "{}");
  });
  HubOptions ho;
  ho.endpoint = f.srv.url("");
  ho.paths_info_batch = 2;
  HubClient hub(f.http, ho);
  auto r = run_coro(f.io.io, hub.paths_info(kRepo, "main", {"config.json", "nope.txt", "onnx"}));
  REQUIRE(r.ok());
  CHECK(r->size() == 2);  // one entry per batch from the fake
  REQUIRE(bodies.size() == 2);
  CHECK(bodies[0] == R"({"paths":["config.json","nope.txt"],"expand":false})");
  CHECK(bodies[1] == R"({"paths":["onnx"],"expand":false})");
  auto b = run_coro(f.io.io, hub.paths_info(kBucket, "", {"file.txt"}));
  REQUIRE(b.ok());
  CHECK(b->empty());
  CHECK(bodies[2] == R"({"paths":["file.txt"]})");
}

TEST_CASE("head_file: xet 302 metadata, 307 resolve-cache, cross-host, buckets, 404", "[hub][client][head]") {
  TestServer cdn([](const ReceivedRequest&) { return json(200, "cdn"); });
  std::string base;
  Fixture f([&](const ReceivedRequest& r) {
    CHECK(r.method == "HEAD");
    if (r.target == "/acme/tiny/resolve/main/pytorch_model.bin") {
      Reply x;
      x.status = 302;
      x.headers = {{"Location", base + "/_cdn/xet/2d84"},
                   {"X-Repo-Commit", "607a30d783dfa663caf39e06633721c8d4cfcd7e"},
                   {"X-Linked-Size", "440473133"},
                   {"X-Linked-Etag", "\"097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a\""},
                   {"ETag", "\"097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a\""},
                   {"X-Xet-Hash", "2d8408d3a894d02517d04956e2f7546ff08362594072f3527ce144b5212a3296"},
                   {"Link", "<https://huggingface.co/api/models/acme/tiny/xet-read-token/607a30d>; rel=\"xet-auth\", "
                            "<http://127.0.0.1:8081/v1/reconstructions/2d84>; rel=\"xet-reconstruction-info\""}};
      x.body = "redirect body of some length";
      return x;
    }
    if (r.target == "/acme/tiny/resolve/refs%2Fpr%2F1/config.json") {
      Reply x;
      x.status = 307;
      x.headers = {{"Location", "/api/resolve-cache/models/acme/tiny/607a30d/config.json?etag=%22fca7%22"},
                   {"X-Repo-Commit", "607a30d"}};
      x.body = std::string(262, 'r');  // the redirect body length must not become the file size
      return x;
    }
    if (r.target == "/api/resolve-cache/models/acme/tiny/607a30d/config.json?etag=%22fca7%22") {
      Reply x;
      x.headers = {{"ETag", "W/\"fca794a5f07ff8f963fe8b61e3694b0fb7f955df\""},
                   {"X-Repo-Commit", "607a30d"},
                   {"Last-Modified", "Tue, 18 Jun 2019 09:06:51 GMT"}};
      x.body = std::string(313, 'c');
      return x;
    }
    if (r.target == "/acme/tiny/resolve/main/elsewhere.bin") {
      Reply x;
      x.status = 302;
      x.headers = {{"Location", cdn.url("/blob")}};
      return x;
    }
    if (r.target == "/buckets/alice/scratch/resolve/file%20one.txt") {
      Reply x;
      x.headers = {{"X-Xet-Hash", "96e6"}, {"X-Xet-Refresh-Route", "/api/buckets/alice/scratch/xet-read-token"}};
      x.body = std::string(2379, 'b');
      return x;
    }
    if (r.target == "/buckets/alice/scratch/resolve/redir.bin") {
      Reply x;
      x.status = 302;
      x.headers = {{"Location", cdn.url("/bridge")}, {"X-Xet-Hash", "3ed0"}};
      x.body = std::string(5000, 'z');  // a bucket's 302 carries the file size in Content-Length
      return x;
    }
    return json(404, "", {{"X-Error-Code", "EntryNotFound"}, {"X-Repo-Commit", "607a30d"}});
  });
  base = f.srv.url("");

  auto x = run_coro(f.io.io, f.hub->head_file(kRepo, "main", "pytorch_model.bin"));
  REQUIRE(x.ok());
  CHECK(x->size == 440473133);
  CHECK(x->etag == "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a");
  CHECK(x->xet_hash == "2d8408d3a894d02517d04956e2f7546ff08362594072f3527ce144b5212a3296");
  CHECK(x->commit == "607a30d783dfa663caf39e06633721c8d4cfcd7e");
  CHECK(x->xet_auth_url == base + "/api/models/acme/tiny/xet-read-token/607a30d");  // rewritten to the endpoint
  CHECK(f.srv.request_count() == 1);  // the 302 carried the metadata: not followed

  auto p = run_coro(f.io.io, f.hub->head_file(kRepo, "refs/pr/1", "config.json"));
  REQUIRE(p.ok());
  CHECK(p->size == 313);
  CHECK(p->etag == "fca794a5f07ff8f963fe8b61e3694b0fb7f955df");
  CHECK(p->xet_hash.empty());
  CHECK(p->last_modified_ns == 1560848811ll * 1000000000);
  auto reqs = f.srv.requests();
  CHECK(reqs.back().headers.get("Authorization") == std::optional<std::string_view>("Bearer hf_testtoken"));
  CHECK(reqs.back().headers.get("Accept-Encoding") == std::optional<std::string_view>("identity"));

  auto e = run_coro(f.io.io, f.hub->head_file(kRepo, "main", "elsewhere.bin"));
  CHECK(e.code() == Errc::protocol);
  CHECK(cdn.request_count() == 0);

  auto b = run_coro(f.io.io, f.hub->head_file(kBucket, "", "file one.txt"));
  REQUIRE(b.ok());
  CHECK(b->size == 2379);
  CHECK(b->xet_hash == "96e6");
  CHECK(b->xet_auth_url == base + "/api/buckets/alice/scratch/xet-read-token");

  auto br = run_coro(f.io.io, f.hub->head_file(kBucket, "", "redir.bin"));
  INFO((br.ok() ? std::string("ok") : br.error().describe()));
  REQUIRE(br.ok());
  CHECK(br->size == 5000);
  CHECK(br->xet_hash == "3ed0");
  CHECK(cdn.request_count() == 0);

  auto m = run_coro(f.io.io, f.hub->head_file(kRepo, "main", "dir/missing.txt"));
  CHECK(m.code() == Errc::entry_not_found);
  CHECK(m.error().message == "'dir/missing.txt' not found in acme/tiny@main");
}

TEST_CASE("download: ranges, servers ignoring Range, CDN redirect without auth, errors", "[hub][client][download]") {
  std::string content;
  for (int i = 0; i < 5000; ++i) content += static_cast<char>('a' + i % 26);
  TestServer cdn([&](const ReceivedRequest& r) {
    Reply x;
    x.status = 206;
    CHECK(r.headers.get("Range") == std::optional<std::string_view>("bytes=100-199"));
    x.headers = {{"Content-Range", "bytes 100-199/5000"}};
    x.body = content.substr(100, 100);
    return x;
  });
  Fixture f([&](const ReceivedRequest& r) {
    if (r.target == "/acme/tiny/resolve/main/ranged.txt") {
      Reply x;
      x.status = 206;
      x.headers = {{"Content-Range", "bytes 10-19/5000"}};
      x.body = content.substr(10, 10);
      return x;
    }
    if (r.target == "/acme/tiny/resolve/main/ignores.txt") return json(200, content);
    if (r.target == "/acme/tiny/resolve/main/lfs.bin") {
      Reply x;
      x.status = 302;
      x.headers = {{"Location", cdn.url("/signed?X-Amz-Signature=secret")}};
      return x;
    }
    return json(404, R"({"error":"Entry not found"})", {{"X-Error-Code", "EntryNotFound"}});
  });
  auto dl = [&](std::string path, uint64_t off, uint64_t len, std::string* out, int* status) {
    http::StreamHandler h;
    h.on_head = [status](const http::ResponseHead& hd) {
      *status = hd.status;
      return Status();
    };
    h.on_data = [out](std::span<const uint8_t> d) {
      out->append(reinterpret_cast<const char*>(d.data()), d.size());
      return Status();
    };
    return run_coro(f.io.io, f.hub->download(kRepo, "main", path, off, len, h));
  };
  std::string out;
  int st = 0;
  REQUIRE(dl("ranged.txt", 10, 10, &out, &st).ok());
  CHECK(out == content.substr(10, 10));
  CHECK(f.srv.requests().back().headers.get("Range") == std::optional<std::string_view>("bytes=10-19"));

  out.clear();
  auto ig = dl("ignores.txt", 1000, 50, &out, &st);
  REQUIRE(ig.ok());
  CHECK(out == content.substr(1000, 50));
  CHECK(st == 206);  // the sink sees the window it asked for

  out.clear();
  REQUIRE(dl("ignores.txt", 4990, 0, &out, &st).ok());
  CHECK(out == content.substr(4990));

  out.clear();
  REQUIRE(dl("lfs.bin", 100, 100, &out, &st).ok());
  CHECK(out == content.substr(100, 100));
  REQUIRE(cdn.request_count() == 1);
  CHECK(!cdn.requests()[0].headers.contains("Authorization"));
  CHECK(f.srv.requests().back().headers.contains("Authorization"));

  out.clear();
  auto nf = dl("missing.bin", 0, 10, &out, &st);
  CHECK(nf.code() == Errc::entry_not_found);
  CHECK(out.empty());
}

TEST_CASE("xet_token: body, header fallback, bucket routes, errors", "[hub][client][token]") {
  Fixture f([](const ReceivedRequest& r) {
    if (r.target == "/api/models/acme/tiny/xet-read-token/refs%2Fconvert%2Fparquet")
      return json(200, R"({"accessToken":"xet_emu_7f3c1a","exp":1848535668,"casUrl":"http://127.0.0.1:8081"})");
    if (r.target == "/api/buckets/alice/scratch/xet-write-token")
      return json(200, "", {{"X-Xet-Access-Token", "xet_hdr"}, {"X-Xet-Token-Expiration", "1848535600"}, {"X-Xet-Cas-Url", "http://cas"}});
    if (r.target == "/api/models/acme/tiny/xet-write-token/main") return json(403, R"({"error":"no write access"})");
    return json(200, "{}");
  });
  auto a = run_coro(f.io.io, f.hub->xet_token(kRepo, "refs/convert/parquet", false));
  REQUIRE(a.ok());
  CHECK(a->access_token.reveal() == "xet_emu_7f3c1a");
  CHECK(a->exp_unix == 1848535668);
  auto b = run_coro(f.io.io, f.hub->xet_token(kBucket, "", true));
  REQUIRE(b.ok());
  CHECK(b->access_token.reveal() == "xet_hdr");
  CHECK(b->exp_unix == 1848535600);
  CHECK(b->cas_url == "http://cas");
  auto c = run_coro(f.io.io, f.hub->xet_token(kRepo, "main", true));
  CHECK(c.code() == Errc::forbidden);
  CHECK(c.error().message.find("no write access") != std::string::npos);
  auto d = run_coro(f.io.io, f.hub->xet_token({RepoType::dataset, "acme/d"}, "main", false));
  CHECK(d.code() == Errc::protocol);
}

TEST_CASE("bucket_info and bucket_batch: ordering, chunking, 200 with failed[], 422", "[hub][client][bucket]") {
  std::mutex mu;
  std::vector<std::string> bodies;
  std::atomic<int> mode{0};
  Fixture f([&](const ReceivedRequest& r) {
    if (r.target == "/api/buckets/alice/scratch" && r.method == "GET")
      return json(200, R"({"id":"alice/scratch","private":true,"createdAt":"2026-02-17T14:40:00.000Z",
        "updatedAt":"2026-02-17T14:58:12.000Z","size":2411207,"totalFiles":2})");
    if (r.target == "/api/buckets/alice/scratch/batch") {
      CHECK(r.headers.get("Content-Type") == std::optional<std::string_view>("application/x-ndjson"));
      std::lock_guard lk(mu);
      bodies.push_back(r.body);
      size_t lines = std::count(r.body.begin(), r.body.end(), '\n');
      if (mode == 1)
        return json(200, fmt::format(R"({{"success":false,"processed":{},"succeeded":{},"failed":[{{"path":"x","error":"Xet file not found"}}]}})", lines, lines - 1));
      if (mode == 2)
        return json(422, fmt::format(R"({{"success":false,"processed":{},"succeeded":0,"failed":[{{"path":"a","error":"bad"}},{{"path":"b","error":"bad"}}]}})", lines));
      if (mode == 3) return json(404, "{}", {{"X-Error-Code", "RepoNotFound"}});
      return json(200, fmt::format(R"({{"success":true,"processed":{0},"succeeded":{0},"failed":[]}})", lines));
    }
    return json(500, "{}");
  });
  auto info = run_coro(f.io.io, f.hub->bucket_info(kBucket));
  REQUIRE(info.ok());
  CHECK(info->total_files == 2);
  CHECK(run_coro(f.io.io, f.hub->bucket_info(kRepo)).code() == Errc::invalid_argument);

  HubOptions ho;
  ho.endpoint = f.srv.url("");
  ho.batch_ops_per_request = 2;
  HubClient hub(f.http, ho);
  auto op = [](BatchOp::Kind k, std::string p) {
    BatchOp o;
    o.kind = k;
    o.path = std::move(p);
    if (k != BatchOp::del) o.xet_hash = "3ed0e9fefe788ddd61d1e26eba67057e9740a064b009256fbafadf6bb95785ca";
    return o;
  };
  // A rename written delete-first: the client sends the add first.
  std::vector<BatchOp> ops{op(BatchOp::del, "old/a"), op(BatchOp::add, "new/a"), op(BatchOp::del, "old/b"), op(BatchOp::add, "new/b"),
                           op(BatchOp::add, "new/c")};
  auto r = run_coro(f.io.io, hub.bucket_batch(kBucket, ops));
  REQUIRE(r.ok());
  CHECK(r->all_succeeded());
  CHECK(r->processed == 5);
  REQUIRE(bodies.size() == 3);
  CHECK(bodies[0].find("\"new/a\"") != std::string::npos);
  CHECK(bodies[0].find("\"new/b\"") != std::string::npos);
  CHECK(bodies[1].find("\"new/c\"") != std::string::npos);
  CHECK(bodies[1].find("\"old/a\"") != std::string::npos);
  CHECK(bodies[2].find("\"old/b\"") != std::string::npos);

  mode = 1;
  auto p = run_coro(f.io.io, hub.bucket_batch(kBucket, {op(BatchOp::add, "x"), op(BatchOp::add, "y")}));
  REQUIRE(p.ok());
  CHECK(!p->all_succeeded());
  REQUIRE(p->failed.size() == 1);
  CHECK(p->failed[0].second == "Xet file not found");

  mode = 2;
  auto q = run_coro(f.io.io, hub.bucket_batch(kBucket, {op(BatchOp::add, "a"), op(BatchOp::add, "b")}));
  REQUIRE(q.ok());
  CHECK(q->failed.size() == 2);
  CHECK(q->succeeded == 0);

  mode = 3;
  auto nf = run_coro(f.io.io, hub.bucket_batch(kBucket, {op(BatchOp::del, "a")}));
  CHECK(nf.code() == Errc::repo_not_found);
  CHECK(nf.error().message == "bucket alice/scratch not found");
  CHECK(run_coro(f.io.io, hub.bucket_batch(kBucket, {op(BatchOp::del, "../etc")})).code() == Errc::invalid_argument);
}
