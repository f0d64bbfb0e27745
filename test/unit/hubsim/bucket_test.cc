// Storage Bucket routes of the emulator: lifecycle, batch, raw-prefix tree listing,
// pagination, paths-info, resolve, tokens, server-side "remote changes".
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/text.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

namespace {

struct Entry {
  std::string type, path;
};

std::vector<Entry> entries_of(const std::string& body) {
  simdjson::dom::parser p;
  auto doc = parse_json_or_fail(p, body);
  std::vector<Entry> out;
  for (auto e : doc.get_array()) out.push_back({str(e, "type"), str(e, "path")});
  return out;
}

std::string info_updated_at(const TestClient& c, const std::string& id) {
  auto r = c.get("/api/buckets/" + id);
  REQUIRE(r.status == 200);
  simdjson::dom::parser p;
  return str(parse_json_or_fail(p, r.body), "updatedAt");
}

std::string add_line(const std::string& path, const std::string& hash, int64_t mtime_ms = 1700000000000) {
  return fmt::format(R"({{"type":"addFile","path":"{}","xetHash":"{}","mtime":{}}})", path, hash, mtime_ms);
}

}  // namespace

TEST_CASE("bucket: create, info, list, delete", "[hubsim][bucket]") {
  Options o;
  o.tokens = {"alice:hf_a"};
  Fixture fx(o);
  fx.start();
  TestClient& c = *fx.client;
  Headers alice = {{"Authorization", "Bearer hf_a"}};
  CHECK(c.post("/api/buckets/alice/scratch", "{}").status == 401);  // anonymous writes refused
  auto cr = c.post("/api/buckets/alice/scratch", "{}", alice);
  REQUIRE(cr.status == 200);
  simdjson::dom::parser p;
  CHECK(str(parse_json_or_fail(p, cr.body), "url") == fx.base + "/buckets/alice/scratch");
  CHECK(c.post("/api/buckets/alice/scratch", "{}", alice).status == 409);
  REQUIRE(c.post("/api/buckets/me/private-one", R"({"private":true})", alice).status == 200);

  auto info = c.get("/api/buckets/alice/scratch");
  REQUIRE(info.status == 200);
  simdjson::dom::parser p2;
  auto d = parse_json_or_fail(p2, info.body);
  CHECK(str(d, "id") == "alice/scratch");
  CHECK(num(d, "totalFiles") == 0);
  CHECK(num(d, "size") == 0);
  CHECK(parse_iso8601(str(d, "updatedAt")).has_value());
  CHECK(parse_iso8601(str(d, "createdAt")).has_value());

  // The private bucket (created through the "me" namespace) is hidden from anonymous callers.
  CHECK(c.get("/api/buckets/alice/private-one").status == 401);
  CHECK(c.get("/api/buckets/alice/private-one").header("x-error-code") == "RepoNotFound");
  CHECK(c.get("/api/buckets/alice/private-one", alice).status == 200);
  auto list = c.get("/api/buckets/alice", alice);
  REQUIRE(list.status == 200);
  simdjson::dom::parser p3;
  CHECK(parse_json_or_fail(p3, list.body).get_array().size() == 2);

  CHECK(c.request("DELETE", "/api/buckets/alice/scratch", {}, alice).status == 200);
  auto gone = c.get("/api/buckets/alice/scratch", alice);
  CHECK(gone.status == 404);
  CHECK(gone.header("x-error-code") == "RepoNotFound");
  CHECK(c.request("DELETE", "/api/buckets/alice/scratch", {}, alice).status == 404);
}

TEST_CASE("bucket: NDJSON batch semantics", "[hubsim][bucket]") {
  Fixture fx;
  fx.start();
  TestClient& c = *fx.client;
  REQUIRE(fx.srv->add_bucket("alice/b").ok());
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/src", {{"a.txt", "a\n", ""}}).ok());
  std::string bytes1 = random_bytes(150000, 3), bytes2 = "small file\n";
  std::string h1 = fx.srv->cas_put(bytes1).value();
  std::string h2 = fx.srv->cas_put(bytes2).value();
  Headers nd = {{"Content-Type", "application/x-ndjson"}};

  std::string u0 = info_updated_at(c, "alice/b");
  auto r = c.post("/api/buckets/alice/b/batch", add_line("data/one.bin", h1) + "\n" + add_line("two.txt", h2) + "\n", nd);
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"success":true,"processed":2,"succeeded":2,"failed":[]})");
  std::string u1 = info_updated_at(c, "alice/b");
  CHECK(u1 != u0);
  auto info = c.get("/api/buckets/alice/b");
  simdjson::dom::parser p;
  auto d = parse_json_or_fail(p, info.body);
  CHECK(num(d, "totalFiles") == 2);
  CHECK(num(d, "size") == bytes1.size() + bytes2.size());
  CHECK(c.get_follow("/buckets/alice/b/resolve/data/one.bin").body == bytes1);

  SECTION("no trailing newline, deletes, idempotent delete, every mutation moves updatedAt") {
    auto r2 = c.post("/api/buckets/alice/b/batch",
                     R"({"type":"deleteFile","path":"two.txt"})" "\n" R"({"type":"deleteFile","path":"never.txt"})", nd);
    CHECK(r2.status == 200);
    CHECK(r2.body == R"({"success":true,"processed":2,"succeeded":2,"failed":[]})");
    std::string u2 = info_updated_at(c, "alice/b");
    CHECK(u2 != u1);
    auto r3 = c.post("/api/buckets/alice/b/batch", add_line("again.txt", h2), nd);
    CHECK(r3.status == 200);
    CHECK(info_updated_at(c, "alice/b") != u2);  // even within the same millisecond
    CHECK(c.head("/buckets/alice/b/resolve/two.txt").status == 404);
  }
  SECTION("partial failure: 422 with failed[] (or 200 + success:false when configured)") {
    std::string unknown(64, 'a');
    auto bad = c.post("/api/buckets/alice/b/batch",
                      add_line("ok.txt", h2) + "\n" + add_line("bad.bin", unknown) + "\nnot json\n", nd);
    CHECK(bad.status == 422);
    simdjson::dom::parser p2;
    auto bd = parse_json_or_fail(p2, bad.body);
    bool success = true;
    CHECK(!bd["success"].get_bool().get(success));
    CHECK(!success);
    CHECK(num(bd, "processed") == 3);
    CHECK(num(bd, "succeeded") == 1);
    REQUIRE(bd["failed"].get_array().size() == 2);
    CHECK(str(bd["failed"].at(0), "path") == "bad.bin");
    CHECK(str(bd["failed"].at(0), "error") == "Xet file not found");
    CHECK(c.head("/buckets/alice/b/resolve/ok.txt").status == 302);  // not transactional
    Knobs k = fx.srv->knobs();
    k.batch_fail_200 = true;
    fx.srv->set_knobs(k);
    auto soft = c.post("/api/buckets/alice/b/batch", add_line("bad2.bin", unknown), nd);
    CHECK(soft.status == 200);
    CHECK(soft.body.find("\"success\":false") != std::string::npos);
  }
  SECTION("copyFile needs a readable source; order of lines is applied as sent") {
    auto cp = c.post("/api/buckets/alice/b/batch",
                     fmt::format(R"({{"type":"copyFile","path":"copied.bin","xetHash":"{}","sourceRepoType":"bucket","sourceRepoId":"alice/b"}})"
                                 "\n"
                                 R"({{"type":"copyFile","path":"x.bin","xetHash":"{}","sourceRepoType":"model","sourceRepoId":"acme/nope"}})",
                                 h1, h1),
                     nd);
    CHECK(cp.status == 422);
    CHECK(cp.body.find("\"succeeded\":1") != std::string::npos);
    CHECK(c.get_follow("/buckets/alice/b/resolve/copied.bin").body == bytes1);
    auto order = c.post("/api/buckets/alice/b/batch",
                        R"({"type":"deleteFile","path":"z.txt"})" "\n" + add_line("z.txt", h2) + "\n" +
                            add_line("y.txt", h2) + "\n" R"({"type":"deleteFile","path":"y.txt"})",
                        nd);
    CHECK(order.status == 200);
    CHECK(c.head("/buckets/alice/b/resolve/z.txt").status == 302);
    CHECK(c.head("/buckets/alice/b/resolve/y.txt").status == 404);
  }
}

TEST_CASE("bucket: tree listing reproduces the raw-prefix quirk", "[hubsim][bucket]") {
  Fixture fx;
  fx.start();
  TestClient& c = *fx.client;
  REQUIRE(fx.srv->add_bucket("ns/q").ok());
  std::string h = fx.srv->cas_put("content\n").value();
  std::string body;
  for (const char* pth : {"a/1.manifest", "a/1.manifest#1", "logs/x.txt", "logs/sub/z.txt", "logs_existing/y.txt",
                          "top.txt", "pre-commit", "pre-commit.sample", "foo/bar", "foo.tmp"})
    body += add_line(pth, h, 1727278262346) + "\n";
  REQUIRE(c.post("/api/buckets/ns/q/batch", body).status == 200);

  auto root = entries_of(c.get("/api/buckets/ns/q/tree").body);
  std::vector<std::string> rp;
  for (const auto& e : root) rp.push_back(e.type[0] + std::string(":") + e.path);
  CHECK(rp == std::vector<std::string>{"d:a", "f:foo.tmp", "d:foo", "d:logs", "d:logs_existing", "f:pre-commit",
                                       "f:pre-commit.sample", "f:top.txt"});
  // Listing "logs" also returns the raw sibling "logs_existing" (hub-api §7.2).
  auto logs = entries_of(c.get("/api/buckets/ns/q/tree/logs?recursive=false&limit=5000").body);
  REQUIRE(logs.size() == 3);
  CHECK((logs[0].type == "directory" && logs[0].path == "logs/sub"));
  CHECK((logs[1].type == "file" && logs[1].path == "logs/x.txt"));
  CHECK((logs[2].type == "directory" && logs[2].path == "logs_existing"));
  auto man = entries_of(c.get("/api/buckets/ns/q/tree/a/1.manifest").body);
  REQUIRE(man.size() == 2);
  CHECK((man[0].type == "file" && man[0].path == "a/1.manifest"));
  CHECK((man[1].type == "file" && man[1].path == "a/1.manifest#1"));
  auto pre = entries_of(c.get("/api/buckets/ns/q/tree/pre-commit").body);
  CHECK(pre.size() == 2);
  auto rec = entries_of(c.get("/api/buckets/ns/q/tree/logs?recursive=true").body);
  std::vector<std::string> recp;
  for (const auto& e : rec) {
    CHECK(e.type == "file");
    recp.push_back(e.path);
  }
  CHECK(recp == std::vector<std::string>{"logs/sub/z.txt", "logs/x.txt", "logs_existing/y.txt"});
  CHECK(c.get("/api/buckets/ns/q/tree/nothing-here").body == "[]");
  auto enc = entries_of(c.get("/api/buckets/ns/q/tree/logs%2Fsub").body);
  REQUIRE(enc.size() == 1);
  CHECK(enc[0].path == "logs/sub/z.txt");

  // Entry shape.
  simdjson::dom::parser p;
  auto doc = parse_json_or_fail(p, c.get("/api/buckets/ns/q/tree/top.txt").body);
  auto f = doc.at(0);
  CHECK(str(f, "type") == "file");
  CHECK(num(f, "size") == 8);
  CHECK(str(f, "xetHash") == h);
  CHECK(str(f, "mtime") == "2024-09-25T15:31:02.346Z");
  CHECK(parse_iso8601(str(f, "uploadedAt")).has_value());
  simdjson::dom::element ignored;
  CHECK(f["oid"].get(ignored) != simdjson::SUCCESS);

  SECTION("pagination: exactly one page, one page plus one, forced page size") {
    auto one = c.get("/api/buckets/ns/q/tree?limit=8");
    CHECK(entries_of(one.body).size() == 8);
    CHECK(!one.has_header("link"));
    auto first = c.get("/api/buckets/ns/q/tree?limit=7");
    CHECK(entries_of(first.body).size() == 7);
    std::string link = first.header("link");
    REQUIRE(link.starts_with("<" + fx.base + "/api/buckets/ns/q/tree?limit=7&cursor="));
    auto second = c.get(link.substr(1, link.find('>') - 1));
    auto rest = entries_of(second.body);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].path == "top.txt");
    CHECK(!second.has_header("link"));
    Knobs k = fx.srv->knobs();
    k.page_size = 3;
    fx.srv->set_knobs(k);
    std::vector<std::string> all;
    std::string url = "/api/buckets/ns/q/tree?recursive=true";
    int pages = 0;
    while (!url.empty()) {
      auto r = c.get(url);
      for (const auto& e : entries_of(r.body)) all.push_back(e.path);
      std::string l = r.header("link");
      url = l.empty() ? "" : l.substr(1, l.find('>') - 1);
      ++pages;
    }
    CHECK(pages == 4);
    CHECK(all.size() == 10);
    CHECK(std::set<std::string>(all.begin(), all.end()).size() == 10);
  }
}

TEST_CASE("bucket: paths-info, resolve, tokens and remote changes", "[hubsim][bucket]") {
  Fixture fx;
  fx.start();
  TestClient& c = *fx.client;
  REQUIRE(fx.srv->add_bucket("ns/r").ok());
  std::string data = random_bytes(200000, 5);
  REQUIRE(fx.srv->bucket_put("ns/r", "dir/file.bin", data, 1700000000123).ok());

  auto pi = c.post("/api/buckets/ns/r/paths-info", R"({"paths":["dir/file.bin","missing","dir"]})",
                   {{"Content-Type", "application/json"}});
  REQUIRE(pi.status == 200);
  auto pe = entries_of(pi.body);
  REQUIRE(pe.size() == 1);
  CHECK(pe[0].path == "dir/file.bin");

  auto h = c.head("/buckets/ns/r/resolve/dir/file.bin");
  REQUIRE(h.status == 302);
  std::string xh = h.header("x-xet-hash");
  CHECK(xh.size() == 64);
  CHECK(h.header("x-linked-size") == "200000");
  CHECK(h.header("content-length") == "200000");
  CHECK(h.header("link") == fmt::format("<{}/api/buckets/ns/r/xet-read-token>; rel=\"xet-auth\", "
                                        "<{}/cas/v1/reconstructions/{}>; rel=\"xet-reconstruction-info\"",
                                        fx.base, fx.base, xh));
  CHECK(h.header("last-modified") == format_http_date(1700000000));
  auto g = c.get_follow("/buckets/ns/r/resolve/dir%2Ffile.bin");
  CHECK(g.status == 200);
  CHECK(sha256_hex(g.body) == sha256_hex(data));
  CHECK(c.head("/buckets/ns/r/resolve/nope").status == 404);
  CHECK(c.head("/buckets/ns/r/resolve/nope").header("x-error-code") == "EntryNotFound");
  CHECK(c.head("/buckets/ns/missing/resolve/x").header("x-error-code") == "RepoNotFound");

  // Both token kinds; bucket tokens take no revision.
  std::string rt = fetch_token(c, "/api/buckets/ns/r/xet-read-token");
  std::string wt = fetch_token(c, "/api/buckets/ns/r/xet-write-token");
  CHECK(rt.starts_with("xet_r_"));
  CHECK(wt.starts_with("xet_w_"));
  auto via = read_via_cas(c, fx.base + "/cas", rt, xh);
  REQUIRE(via.ok());
  CHECK(via.value() == data);

  // A remote change through the control route.
  std::string before = info_updated_at(c, "ns/r");
  auto put = c.request("PUT", "/_sim/buckets/ns/r/files/dir/file.bin", "replaced\n");
  CHECK(put.status == 200);
  CHECK(info_updated_at(c, "ns/r") != before);
  CHECK(c.get_follow("/buckets/ns/r/resolve/dir/file.bin").body == "replaced\n");
  CHECK(c.request("DELETE", "/_sim/buckets/ns/r/files/dir/file.bin").status == 200);
  CHECK(c.head("/buckets/ns/r/resolve/dir/file.bin").status == 404);
}

TEST_CASE("bucket: seeded from a directory", "[hubsim][bucket]") {
  std::string dir = fmt::format("/tmp/hubsim-bucket-test-{}", ::getpid());
  std::filesystem::create_directories(dir + "/sub");
  {
    std::ofstream(dir + "/a.txt") << "alpha\n";
    std::ofstream(dir + "/sub/b.bin") << random_bytes(90000, 11);
  }
  Fixture fx;
  REQUIRE(fx.srv->add_bucket("ns/seeded", dir).ok());
  fx.start();
  auto all = entries_of(fx.client->get("/api/buckets/ns/seeded/tree?recursive=true").body);
  REQUIRE(all.size() == 2);
  CHECK(all[0].path == "a.txt");
  CHECK(all[1].path == "sub/b.bin");
  CHECK(fx.client->get_follow("/buckets/ns/seeded/resolve/sub/b.bin").body == random_bytes(90000, 11));
  std::filesystem::remove_all(dir);
}
