// Hub repository routes of the emulator: info, refs, tree + pagination, paths-info, resolve of
// the three file kinds, revision encodings, branch moves, errors and auth.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <set>

#include "base/clock.h"
#include "base/sha256.h"
#include "base/text.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

namespace {

// Independent git blob id: sha1("blob {n}\0" + content).
std::string git_oid(std::string_view content) {
  std::string obj = fmt::format("blob {}", content.size());
  obj.push_back('\0');
  obj.append(content);
  unsigned char md[20];
  unsigned n = 0;
  EVP_Digest(obj.data(), obj.size(), md, &n, EVP_sha1(), nullptr);
  return hex_encode(md, 20);
}

std::string lfs_pointer_text(const std::string& sha, size_t size) {
  return fmt::format("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", sha, size);
}

const std::string kConfig = "{\"model_type\":\"tiny\"}\n";
const std::string kAttrs = "*.bin filter=lfs diff=lfs merge=lfs -text\n";

struct TinyRepo {
  std::string model = random_bytes(300000, 7);     // xet
  std::string onnx = affine_bytes(100000, 7, 13);  // xet (>= 64 KiB)
  std::string weird = "weird name\n";
  std::vector<FileSpec> files() const {
    return {{".gitattributes", kAttrs, ""},
            {"config.json", kConfig, ""},
            {"README.md", "hello\n", ""},
            {"weights/model.bin", model, ""},
            {"onnx/model.onnx", onnx, ""},
            {"dir with space/file#1 %.txt", weird, ""}};
  }
};

// All pages of a listing, following Link rel="next". Returns the paths in order.
std::vector<std::string> list_all(const TestClient& c, std::string url, int* pages = nullptr) {
  std::vector<std::string> out;
  int n = 0;
  while (!url.empty()) {
    auto r = c.get(url);
    INFO(url << " -> " << r.status << " " << r.body.substr(0, 300));
    REQUIRE(r.status == 200);
    simdjson::dom::parser p;
    auto doc = parse_json_or_fail(p, r.body);
    for (auto e : doc.get_array()) out.push_back(str(e, "path"));
    ++n;
    url.clear();
    std::string link = r.header("link");
    if (!link.empty()) {
      REQUIRE(link.find("rel=\"next\"") != std::string::npos);
      REQUIRE(link.front() == '<');
      url = link.substr(1, link.find('>') - 1);
      REQUIRE(url.starts_with(c.base()));  // absolute, built from the server's base URL
    }
    REQUIRE(n < 10000);
  }
  if (pages) *pages = n;
  return out;
}

}  // namespace

TEST_CASE("hub: repo info, revisions, refs and aliases", "[hubsim][hub]") {
  Fixture fx;
  TinyRepo tr;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/tiny", tr.files()).ok());
  fx.start();
  TestClient& c = *fx.client;
  std::string main_sha = fx.srv->resolve_revision(RepoType::model, "acme/tiny", "main").value();
  REQUIRE(main_sha.size() == 40);
  CommitRequest cr;
  cr.add = {{"extra.txt", "extra\n", ""}};
  cr.message = "Add extra";
  auto new_sha = fx.srv->commit(RepoType::model, "acme/tiny", cr);
  REQUIRE(new_sha.ok());
  REQUIRE(fx.srv->create_tag(RepoType::model, "acme/tiny", "v1.0", main_sha).ok());
  REQUIRE(fx.srv->create_pr(RepoType::model, "acme/tiny", main_sha).value() == 1);
  REQUIRE(fx.srv->add_alias(RepoType::model, "tiny", "acme/tiny").ok());

  simdjson::dom::parser p;
  auto r = c.get("/api/models/acme/tiny");
  REQUIRE(r.status == 200);
  auto doc = parse_json_or_fail(p, r.body);
  CHECK(str(doc, "id") == "acme/tiny");
  CHECK(str(doc, "modelId") == "acme/tiny");
  CHECK(str(doc, "sha") == new_sha.value());
  CHECK(str(doc, "_id").size() == 24);
  bool b = true;
  CHECK(!doc["private"].get_bool().get(b));
  CHECK(b == false);
  CHECK(!doc["gated"].get_bool().get(b));
  CHECK(b == false);
  auto lm = parse_iso8601(str(doc, "lastModified"));
  REQUIRE(lm);
  CHECK(std::abs(*lm - now_unix_ns()) < 60'000'000'000LL);
  CHECK(doc["siblings"].get_array().size() == 7);

  SECTION("revision endpoint resolves branch, tag, sha and PR refs") {
    for (auto [rev, want] : std::vector<std::pair<std::string, std::string>>{
             {"main", new_sha.value()}, {"v1.0", main_sha}, {main_sha, main_sha}, {"refs%2Fpr%2F1", main_sha}}) {
      auto rr = c.get("/api/models/acme/tiny/revision/" + rev);
      INFO(rev << " " << rr.body);
      REQUIRE(rr.status == 200);
      simdjson::dom::parser p2;
      CHECK(str(parse_json_or_fail(p2, rr.body), "sha") == want);
    }
    auto bad = c.get("/api/models/acme/tiny/revision/nope");
    CHECK(bad.status == 404);
    CHECK(bad.header("x-error-code") == "RevisionNotFound");
    CHECK(bad.header("x-error-message") == "Invalid rev id: nope");
    CHECK(bad.body == "{\"error\":\"Invalid rev id: nope\"}");
    // Unencoded refs/pr/1 spans three segments: not a revision (the real Hub answers 404).
    CHECK(c.get("/api/models/acme/tiny/revision/refs/pr/1").status == 404);
  }
  SECTION("blobs=true adds sizes, blob ids and lfs sha256") {
    auto rr = c.get("/api/models/acme/tiny?blobs=true");
    REQUIRE(rr.status == 200);
    simdjson::dom::parser p2;
    auto d = parse_json_or_fail(p2, rr.body);
    int seen = 0;
    for (auto s : d["siblings"].get_array()) {
      if (str(s, "rfilename") == "config.json") {
        CHECK(num(s, "size") == kConfig.size());
        CHECK(str(s, "blobId") == git_oid(kConfig));
        ++seen;
      }
      if (str(s, "rfilename") == "weights/model.bin") {
        CHECK(num(s, "size") == tr.model.size());
        CHECK(str(s["lfs"], "sha256") == sha256_hex(tr.model));
        ++seen;
      }
    }
    CHECK(seen == 2);
  }
  SECTION("expand= restricts the fields") {
    auto rr = c.get("/api/models/acme/tiny?expand=sha&expand=lastModified");
    REQUIRE(rr.status == 200);
    simdjson::dom::parser p2;
    auto d = parse_json_or_fail(p2, rr.body);
    CHECK(str(d, "sha") == new_sha.value());
    simdjson::dom::element ignored;
    CHECK(d["siblings"].get(ignored) != simdjson::SUCCESS);
  }
  SECTION("legacy one-segment alias maps to the canonical id") {
    auto rr = c.get("/api/models/tiny");
    REQUIRE(rr.status == 200);
    simdjson::dom::parser p2;
    CHECK(str(parse_json_or_fail(p2, rr.body), "id") == "acme/tiny");
    CHECK(c.get("/api/models/tiny/tree/main").status == 200);
    CHECK(c.head("/tiny/resolve/main/config.json").status == 307);
  }
  SECTION("refs lists branches, tags and (on request) PRs") {
    auto rr = c.get("/api/models/acme/tiny/refs?include_prs=1");
    REQUIRE(rr.status == 200);
    simdjson::dom::parser p2;
    auto d = parse_json_or_fail(p2, rr.body);
    auto br = d["branches"].at(0);
    CHECK(str(br, "name") == "main");
    CHECK(str(br, "ref") == "refs/heads/main");
    CHECK(str(br, "targetCommit") == new_sha.value());
    CHECK(str(d["tags"].at(0), "ref") == "refs/tags/v1.0");
    CHECK(str(d["pullRequests"].at(0), "ref") == "refs/pr/1");
    CHECK(str(d["pullRequests"].at(0), "targetCommit") == main_sha);
  }
}

TEST_CASE("hub: tree entries carry git oids, lfs and xet fields", "[hubsim][hub]") {
  Fixture fx;
  TinyRepo tr;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/tiny", tr.files()).ok());
  // An all-git repo whose tree ids were computed with git itself (git write-tree).
  REQUIRE(fx.srv->add_repo(RepoType::dataset, "acme/gitonly",
                           {{"README.md", "hello\n", ""}, {"a/b.txt", "b\n", ""}, {"a/c/d.txt", "d\n", ""},
                            {"a-b.txt", "x\n", ""}})
              .ok());
  fx.start();
  TestClient& c = *fx.client;
  simdjson::dom::parser p;

  SECTION("directory oids are git tree ids") {
    auto r = c.get("/api/datasets/acme/gitonly/tree/main");
    REQUIRE(r.status == 200);
    auto doc = parse_json_or_fail(p, r.body);
    std::map<std::string, std::string> oids;
    for (auto e : doc.get_array()) oids[str(e, "path")] = str(e, "oid");
    CHECK(oids.size() == 3);
    CHECK(oids["README.md"] == "ce013625030ba8dba906f756967f9e9ca394464a");
    CHECK(oids["a-b.txt"] == "587be6b4c3f93f93c489c0111bba5596147a26cb");
    CHECK(oids["a"] == "8ddafb8dce0ac7f0c07345657af3d0b6b3025163");
    auto sub = c.get("/api/datasets/acme/gitonly/tree/main/a");
    simdjson::dom::parser p2;
    auto sd = parse_json_or_fail(p2, sub.body);
    std::map<std::string, std::string> soids;
    for (auto e : sd.get_array()) soids[str(e, "path")] = str(e, "oid");
    CHECK(soids["a/c"] == "abc366656a510a2a2f9f848d218d7dc5a7ee5ef7");
    CHECK(soids["a/b.txt"] == "61780798228d17af2d34fce4cfbdf35556832472");
    // The revision info of a sha resolves (commit ids are 40 hex).
    auto sha = fx.srv->resolve_revision(RepoType::dataset, "acme/gitonly", "main").value();
    CHECK(c.get("/api/datasets/acme/gitonly/revision/" + sha).status == 200);
  }
  SECTION("file entries: plain, xet (lfs + xetHash), directories") {
    auto r = c.get("/api/models/acme/tiny/tree/main");
    REQUIRE(r.status == 200);
    auto doc = parse_json_or_fail(p, r.body);
    std::set<std::string> paths;
    for (auto e : doc.get_array()) {
      std::string path = str(e, "path");
      paths.insert(path);
      if (path == "config.json") {
        CHECK(str(e, "type") == "file");
        CHECK(str(e, "oid") == git_oid(kConfig));
        CHECK(num(e, "size") == kConfig.size());
        simdjson::dom::element ignored;
        CHECK(e["lfs"].get(ignored) != simdjson::SUCCESS);
        CHECK(e["xetHash"].get(ignored) != simdjson::SUCCESS);
      }
      if (path == "weights" || path == "onnx" || path == "dir with space") {
        CHECK(str(e, "type") == "directory");
        CHECK(num(e, "size") == 0);
        CHECK(str(e, "oid").size() == 40);
      }
    }
    CHECK(paths == std::set<std::string>{".gitattributes", "README.md", "config.json", "dir with space", "onnx", "weights"});
    auto sub = c.get("/api/models/acme/tiny/tree/main/weights");
    REQUIRE(sub.status == 200);
    simdjson::dom::parser p2;
    auto e = parse_json_or_fail(p2, sub.body).at(0);
    CHECK(str(e, "path") == "weights/model.bin");
    CHECK(num(e, "size") == tr.model.size());
    std::string sha = sha256_hex(tr.model);
    CHECK(str(e["lfs"], "oid") == sha);
    CHECK(num(e["lfs"], "size") == tr.model.size());
    std::string ptr = lfs_pointer_text(sha, tr.model.size());
    CHECK(num(e["lfs"], "pointerSize") == ptr.size());
    CHECK(str(e, "oid") == git_oid(ptr));  // the oid of an LFS file is the pointer's blob id
    CHECK(str(e, "xetHash").size() == 64);
  }
  SECTION("recursive listing, %2F-encoded paths, expand and missing paths") {
    auto all = list_all(c, "/api/models/acme/tiny/tree/main?recursive=true");
    CHECK(all.size() == 9);  // 6 files + 3 directories
    auto enc = c.get("/api/models/acme/tiny/tree/main/dir%20with%20space");
    REQUIRE(enc.status == 200);
    CHECK(enc.body.find("dir with space/file#1 %.txt") != std::string::npos);
    auto ex = c.get("/api/models/acme/tiny/tree/main?expand=true");
    REQUIRE(ex.status == 200);
    auto sha = fx.srv->resolve_revision(RepoType::model, "acme/tiny", "main").value();
    auto ed = parse_json_or_fail(p, ex.body);
    for (auto e : ed.get_array()) {
      CHECK(str(e["lastCommit"], "id") == sha);
      CHECK(str(e["lastCommit"], "title") == "Initial commit");
      CHECK(parse_iso8601(str(e["lastCommit"], "date")).has_value());
    }
    auto missing = c.get("/api/models/acme/tiny/tree/main/nope");
    CHECK(missing.status == 404);
    CHECK(missing.header("x-error-code") == "EntryNotFound");
    auto badrev = c.get("/api/models/acme/tiny/tree/nope");
    CHECK(badrev.status == 404);
    CHECK(badrev.header("x-error-code") == "RevisionNotFound");
  }
}

TEST_CASE("hub: tree pagination boundaries and caps", "[hubsim][hub]") {
  Fixture fx;
  std::vector<FileSpec> five, many, hundredfifty;
  for (int i = 0; i < 5; ++i) five.push_back({fmt::format("f{}.txt", i), fmt::format("{}\n", i), ""});
  for (int i = 0; i < 1001; ++i) many.push_back({fmt::format("m{:04}.txt", i), "x\n", ""});
  for (int i = 0; i < 150; ++i) hundredfifty.push_back({fmt::format("e{:03}.txt", i), "y\n", ""});
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/five", five).ok());
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/many", many).ok());
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/expand", hundredfifty).ok());
  fx.start();
  TestClient& c = *fx.client;

  int pages = 0;
  auto exact = list_all(c, "/api/models/acme/five/tree/main?limit=5", &pages);
  CHECK(pages == 1);  // exactly one page: no Link
  CHECK(exact.size() == 5);
  auto r = c.get("/api/models/acme/five/tree/main?limit=5");
  CHECK(!r.has_header("link"));

  auto plus_one = list_all(c, "/api/models/acme/five/tree/main?limit=4", &pages);
  CHECK(pages == 2);  // one page plus one entry
  CHECK(plus_one == exact);
  auto first = c.get("/api/models/acme/five/tree/main?limit=4");
  std::string link = first.header("link");
  CHECK(link.starts_with("<" + fx.base + "/api/models/acme/five/tree/main?limit=4&cursor="));
  CHECK(link.ends_with(">; rel=\"next\""));

  auto many_all = list_all(c, "/api/models/acme/many/tree/main?limit=5000", &pages);
  CHECK(pages == 2);  // capped at 1000 per page
  CHECK(many_all.size() == 1001);
  CHECK(std::set<std::string>(many_all.begin(), many_all.end()).size() == 1001);

  auto ex_all = list_all(c, "/api/models/acme/expand/tree/main?expand=true&limit=1000", &pages);
  CHECK(pages == 2);  // capped at 100 with expand
  CHECK(ex_all.size() == 150);

  Knobs k = fx.srv->knobs();
  k.page_size = 2;
  fx.srv->set_knobs(k);
  auto forced = list_all(c, "/api/models/acme/five/tree/main", &pages);
  CHECK(pages == 3);
  CHECK(forced == exact);
  CHECK(c.get("/api/models/acme/five/tree/main?cursor=%25%25").status == 400);
}

TEST_CASE("hub: paths-info accepts JSON and form bodies", "[hubsim][hub]") {
  Fixture fx;
  TinyRepo tr;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/tiny", tr.files()).ok());
  fx.start();
  TestClient& c = *fx.client;
  simdjson::dom::parser p;
  auto r = c.post("/api/models/acme/tiny/paths-info/main",
                  R"({"paths":["config.json","nope.txt","onnx"],"expand":true})",
                  {{"Content-Type", "application/json"}});
  REQUIRE(r.status == 200);
  auto doc = parse_json_or_fail(p, r.body);
  REQUIRE(doc.get_array().size() == 2);  // missing paths are omitted silently
  CHECK(str(doc.at(0), "path") == "config.json");
  CHECK(str(doc.at(0), "oid") == git_oid(kConfig));
  CHECK(str(doc.at(1), "type") == "directory");
  CHECK(str(doc.at(1)["lastCommit"], "id").size() == 40);

  auto f = c.post("/api/models/acme/tiny/paths-info/main",
                  "paths=config.json&paths=onnx%2Fmodel.onnx&paths=missing&expand=false",
                  {{"Content-Type", "application/x-www-form-urlencoded"}});
  REQUIRE(f.status == 200);
  simdjson::dom::parser p2;
  auto fd = parse_json_or_fail(p2, f.body);
  REQUIRE(fd.get_array().size() == 2);
  CHECK(str(fd.at(1), "path") == "onnx/model.onnx");
  CHECK(str(fd.at(1), "xetHash").size() == 64);
  simdjson::dom::element ignored;
  CHECK(fd.at(0)["lastCommit"].get(ignored) != simdjson::SUCCESS);

  auto none = c.post("/api/models/acme/tiny/paths-info/main", R"({"paths":["x","y"]})",
                     {{"Content-Type", "application/json"}});
  CHECK(none.status == 200);
  CHECK(none.body == "[]");
  CHECK(c.post("/api/models/acme/tiny/paths-info/nope", R"({"paths":[]})").status == 404);
}

TEST_CASE("hub: resolve of plain, xet and legacy LFS files", "[hubsim][hub]") {
  Fixture fx;
  TinyRepo tr;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/tiny", tr.files()).ok());
  std::string lfs_bytes = random_bytes(200000, 99);
  RepoFlags legacy;
  legacy.legacy_lfs = true;
  REQUIRE(fx.srv->add_repo(RepoType::dataset, "acme/old", {{"data.bin", lfs_bytes, ""}, {"x.txt", "x\n", ""}}, legacy).ok());
  REQUIRE(fx.srv->add_repo(RepoType::space, "acme/app", {{"app.py", "print(1)\n", ""}}).ok());
  fx.start();
  TestClient& c = *fx.client;
  std::string sha = fx.srv->resolve_revision(RepoType::model, "acme/tiny", "main").value();

  SECTION("plain git file: 307 to resolve-cache (default), then 200 with the blob ETag") {
    auto h = c.head("/acme/tiny/resolve/main/config.json");
    REQUIRE(h.status == 307);
    std::string loc = h.header("location");
    CHECK(loc.starts_with("/api/resolve-cache/models/acme/tiny/" + sha + "/config.json?"));
    CHECK(loc.find("etag=%22" + git_oid(kConfig) + "%22") != std::string::npos);
    CHECK(h.header("x-repo-commit") == sha);
    CHECK(!h.has_header("etag"));
    auto h2 = c.head(loc);
    REQUIRE(h2.status == 200);
    CHECK(h2.header("etag") == "\"" + git_oid(kConfig) + "\"");
    CHECK(h2.header("content-length") == std::to_string(kConfig.size()));
    CHECK(h2.header("x-repo-commit") == sha);
    CHECK(!h2.header("last-modified").empty());
    auto g = c.get_follow("/acme/tiny/resolve/main/config.json");
    CHECK(g.status == 200);
    CHECK(g.body == kConfig);
    auto nm = c.get(loc, {{"If-None-Match", "\"" + git_oid(kConfig) + "\""}});
    CHECK(nm.status == 304);
    CHECK(nm.body.empty());
  }
  SECTION("plain git file in 200 mode, with ranges") {
    Knobs k = fx.srv->knobs();
    k.resolve_307 = false;
    fx.srv->set_knobs(k);
    auto g = c.get("/acme/tiny/resolve/main/config.json");
    REQUIRE(g.status == 200);
    CHECK(g.body == kConfig);
    CHECK(g.header("etag") == "\"" + git_oid(kConfig) + "\"");
    auto rg = c.get("/acme/tiny/resolve/main/config.json", {{"Range", "bytes=2-5"}});
    CHECK(rg.status == 206);
    CHECK(rg.body == kConfig.substr(2, 4));
    CHECK(rg.header("content-range") == fmt::format("bytes 2-5/{}", kConfig.size()));
    auto bad = c.get("/acme/tiny/resolve/main/config.json", {{"Range", "bytes=1000-"}});
    CHECK(bad.status == 416);
    CHECK(bad.header("content-range") == fmt::format("bytes */{}", kConfig.size()));
  }
  SECTION("xet file: 302 with the xet headers; the bridge serves the bytes with ranges") {
    auto h = c.head("/acme/tiny/resolve/main/weights/model.bin");
    REQUIRE(h.status == 302);
    std::string xh = h.header("x-xet-hash");
    CHECK(xh.size() == 64);
    CHECK(h.header("x-linked-size") == std::to_string(tr.model.size()));
    CHECK(h.header("x-linked-etag") == "\"" + sha256_hex(tr.model) + "\"");
    CHECK(h.header("x-repo-commit") == sha);
    std::string link = h.header("link");
    CHECK(link == fmt::format("<{}/api/models/acme/tiny/xet-read-token/{}>; rel=\"xet-auth\", "
                              "<{}/cas/v1/reconstructions/{}>; rel=\"xet-reconstruction-info\"",
                              fx.base, sha, fx.base, xh));
    CHECK(h.header("location").starts_with(fx.base + "/"));
    auto g = c.get_follow("/acme/tiny/resolve/main/weights/model.bin");
    REQUIRE(g.status == 200);
    CHECK(sha256_hex(g.body) == sha256_hex(tr.model));
    std::string loc = h.header("location");
    auto rg = c.get(loc, {{"Range", "bytes=131000-140000"}});
    CHECK(rg.status == 206);
    CHECK(rg.body == tr.model.substr(131000, 9001));
    auto suffix = c.get(loc, {{"Range", "bytes=-10"}});
    CHECK(suffix.status == 206);
    CHECK(suffix.body == tr.model.substr(tr.model.size() - 10));
    CHECK(c.get(loc, {{"Range", fmt::format("bytes={}-", tr.model.size())}}).status == 416);
    // Content negotiation: the xet file info instead of a redirect.
    auto fi = c.get("/acme/tiny/resolve/main/weights/model.bin",
                    {{"Accept", "application/vnd.xet-fileinfo+json, */*"}, {"Range", "bytes=0-0"}});
    CHECK(fi.status == 200);
    CHECK(fi.header("content-type") == "application/vnd.xet-fileinfo+json");
    simdjson::dom::parser p;
    auto d = parse_json_or_fail(p, fi.body);
    CHECK(str(d, "hash") == xh);
    CHECK(num(d, "size") == tr.model.size());
    CHECK(str(d, "casUrl") == fx.base + "/cas");
  }
  SECTION("legacy LFS file: 302 to the CDN without xet headers") {
    auto h = c.head("/datasets/acme/old/resolve/main/data.bin");
    REQUIRE(h.status == 302);
    CHECK(!h.has_header("x-xet-hash"));
    CHECK(h.header("x-linked-size") == "200000");
    CHECK(h.header("x-linked-etag") == "\"" + sha256_hex(lfs_bytes) + "\"");
    CHECK(h.header("location") == fx.base + "/_cdn/lfs/" + sha256_hex(lfs_bytes));
    auto g = c.get_follow("/datasets/acme/old/resolve/main/data.bin");
    CHECK(g.status == 200);
    CHECK(g.body == lfs_bytes);
    auto tree = c.get("/api/datasets/acme/old/tree/main");
    CHECK(tree.body.find("xetHash") == std::string::npos);
    CHECK(tree.body.find(sha256_hex(lfs_bytes)) != std::string::npos);
  }
  SECTION("spaces prefix, encoded paths, directories and missing entries") {
    CHECK(c.get_follow("/spaces/acme/app/resolve/main/app.py").body == "print(1)\n");
    auto w = c.get_follow("/acme/tiny/resolve/main/" + url_encode_path("dir with space/file#1 %.txt"));
    CHECK(w.status == 200);
    CHECK(w.body == tr.weird);
    auto enc_slash = c.get_follow("/acme/tiny/resolve/main/onnx%2Fmodel.onnx");
    CHECK(enc_slash.status == 200);
    CHECK(enc_slash.body == tr.onnx);
    auto dir = c.head("/acme/tiny/resolve/main/onnx");
    CHECK(dir.status == 404);
    CHECK(dir.header("x-error-code") == "EntryNotFound");
    CHECK(dir.header("x-repo-commit") == sha);
    auto missing = c.get("/acme/tiny/resolve/main/nope.txt");
    CHECK(missing.status == 404);
    CHECK(missing.header("x-error-code") == "EntryNotFound");
    CHECK(missing.header("x-error-message") == "Entry not found");
    CHECK(missing.body == "{\"error\":\"Entry not found\"}");
  }
}

TEST_CASE("hub: revisions are one URL segment; branches move", "[hubsim][hub]") {
  Fixture fx;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/rev", {{"a.txt", "v1\n", ""}, {"keep.txt", "same\n", ""}}).ok());
  fx.start();
  TestClient& c = *fx.client;
  std::string v1 = fx.srv->resolve_revision(RepoType::model, "acme/rev", "main").value();
  REQUIRE(fx.srv->create_tag(RepoType::model, "acme/rev", "v1", "main").ok());
  REQUIRE(fx.srv->create_pr(RepoType::model, "acme/rev", "main").ok());
  CommitRequest cr;
  cr.add = {{"a.txt", "v2\n", ""}};
  cr.message = "Update a.txt";
  std::string v2 = fx.srv->commit(RepoType::model, "acme/rev", cr).value();
  REQUIRE(v2 != v1);

  CHECK(c.get_follow("/acme/rev/resolve/main/a.txt").body == "v2\n");
  CHECK(c.get_follow("/acme/rev/resolve/v1/a.txt").body == "v1\n");
  CHECK(c.get_follow("/acme/rev/resolve/" + v1 + "/a.txt").body == "v1\n");
  CHECK(c.get_follow("/acme/rev/resolve/refs%2Fpr%2F1/a.txt").body == "v1\n");
  auto unenc = c.get("/acme/rev/resolve/refs/pr/1/a.txt");
  CHECK(unenc.status == 404);
  CHECK(c.get("/api/models/acme/rev/tree/refs%2Fpr%2F1").status == 200);
  CHECK(c.get("/api/models/acme/rev/tree/refs/pr/1").status == 404);
  CHECK(c.get("/api/models/acme/rev/xet-read-token/refs%2Fpr%2F1").status == 200);

  // The head moved; unchanged entries keep their last commit.
  simdjson::dom::parser p;
  auto info = parse_json_or_fail(p, c.get("/api/models/acme/rev").body);
  CHECK(str(info, "sha") == v2);
  auto tree = c.get("/api/models/acme/rev/tree/main?expand=true");
  simdjson::dom::parser p2;
  for (auto e : parse_json_or_fail(p2, tree.body).get_array()) {
    if (str(e, "path") == "a.txt") {
      CHECK(str(e["lastCommit"], "id") == v2);
      CHECK(str(e["lastCommit"], "title") == "Update a.txt");
    } else {
      CHECK(str(e["lastCommit"], "id") == v1);
    }
  }
  // A commit on a new branch leaves main alone.
  CommitRequest dev;
  dev.branch = "dev";
  dev.remove = {"keep.txt"};
  REQUIRE(fx.srv->commit(RepoType::model, "acme/rev", dev).ok());
  CHECK(c.head("/acme/rev/resolve/dev/keep.txt").status == 404);
  CHECK(c.head("/acme/rev/resolve/main/keep.txt").status == 307);
}

TEST_CASE("hub: auth, private and gated repos, error codes", "[hubsim][hub]") {
  Options o;
  o.tokens = {"alice:hf_alice_token"};
  Fixture fx(o);
  RepoFlags priv;
  priv.is_private = true;
  RepoFlags gated;
  gated.gated = true;
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/public", {{"a.txt", "a\n", ""}}).ok());
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/secret", {{"s.txt", "s\n", ""}}, priv).ok());
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/gated", {{"g.bin", random_bytes(70000, 1), ""}}, gated).ok());
  fx.start();
  TestClient& c = *fx.client;
  Headers alice = {{"Authorization", "Bearer hf_alice_token"}};
  Headers bogus = {{"Authorization", "Bearer hf_wrong"}};

  // Private: anonymous 401 RepoNotFound; a valid user sees it.
  auto anon = c.get("/api/models/acme/secret");
  CHECK(anon.status == 401);
  CHECK(anon.header("x-error-code") == "RepoNotFound");
  CHECK(c.get("/api/models/acme/secret", alice).status == 200);
  CHECK(c.get_follow("/acme/secret/resolve/main/s.txt", alice).body == "s\n");
  CHECK(c.head("/acme/secret/resolve/main/s.txt").status == 401);
  // Missing repo: 401 anonymous, 404 authenticated, both RepoNotFound.
  auto m1 = c.get("/api/models/acme/missing");
  auto m2 = c.get("/api/models/acme/missing", alice);
  CHECK(m1.status == 401);
  CHECK(m2.status == 404);
  CHECK(m1.header("x-error-code") == "RepoNotFound");
  CHECK(m2.header("x-error-code") == "RepoNotFound");
  // Invalid token: 401 without an error code.
  auto inv = c.get("/api/models/acme/public", bogus);
  CHECK(inv.status == 401);
  CHECK(!inv.has_header("x-error-code"));
  CHECK(inv.header("x-error-message") == "Invalid credentials in Authorization header");
  CHECK(inv.body == "{\"error\":\"Invalid credentials in Authorization header\"}");
  // Gated: listing allowed, downloads and read tokens refused.
  CHECK(c.get("/api/models/acme/gated").status == 200);
  CHECK(c.get("/api/models/acme/gated/tree/main").status == 200);
  auto g1 = c.head("/acme/gated/resolve/main/g.bin");
  auto g2 = c.head("/acme/gated/resolve/main/g.bin", alice);
  CHECK(g1.status == 401);
  CHECK(g2.status == 403);
  CHECK(g1.header("x-error-code") == "GatedRepo");
  CHECK(g2.header("x-error-code") == "GatedRepo");
  CHECK(c.get("/api/models/acme/gated/xet-read-token/main", alice).status == 403);
  CHECK(c.get("/api/models/acme/gated/xet-read-token/main").status == 401);
  // whoami
  auto who = c.get("/api/whoami-v2", alice);
  REQUIRE(who.status == 200);
  simdjson::dom::parser p;
  CHECK(str(parse_json_or_fail(p, who.body), "name") == "alice");
  CHECK(c.get("/api/whoami-v2").status == 401);
  // Tokens: the JSON and the legacy headers agree; write tokens need a user.
  auto tok = c.get("/api/models/acme/public/xet-read-token/main");
  REQUIRE(tok.status == 200);
  simdjson::dom::parser p2;
  auto td = parse_json_or_fail(p2, tok.body);
  CHECK(str(td, "casUrl") == fx.base + "/cas");
  CHECK(str(td, "accessToken") == tok.header("x-xet-access-token"));
  CHECK(std::to_string(num(td, "exp")) == tok.header("x-xet-token-expiration"));
  CHECK(tok.header("x-xet-cas-url") == fx.base + "/cas");
  int64_t exp = static_cast<int64_t>(num(td, "exp"));
  CHECK(std::abs(exp - (now_unix_s() + 3600)) <= 5);
  CHECK(c.get("/api/models/acme/public/xet-write-token/main").status == 401);
  CHECK(c.get("/api/models/acme/public/xet-write-token/main", alice).status == 200);
  CHECK(c.get("/api/models/acme/public/xet-read-token/nope").header("x-error-code") == "RevisionNotFound");
}

TEST_CASE("hub: --require-token refuses anonymous requests", "[hubsim][hub]") {
  Options o;
  o.tokens = {"hf_t"};
  o.require_token = true;
  Fixture fx(o);
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/public", {{"a.txt", "a\n", ""}}).ok());
  fx.start();
  CHECK(fx.client->get("/api/models/acme/public").status == 401);
  CHECK(fx.client->get("/api/models/acme/public", {{"Authorization", "Bearer hf_t"}}).status == 200);
}
