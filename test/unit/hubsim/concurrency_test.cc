// Real threads against one server: readers see either the old or the new state of a moving
// branch / bucket, never a mix, and every byte read through the CAS is intact.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <set>
#include <thread>

#include "base/sha256.h"
#include "test/unit/hubsim/fixture.h"

using namespace hf;
using namespace hf::hubsim;
using namespace hf::hubsim::test;

TEST_CASE("concurrency: readers during commits and bucket batches", "[hubsim][concurrency]") {
  Options o;
  o.threads = 4;
  Fixture fx(o);
  std::vector<std::string> versions;
  for (int v = 0; v < 4; ++v) versions.push_back(random_bytes(200000 + 1000 * v, 100 + v));
  REQUIRE(fx.srv->add_repo(RepoType::model, "acme/moving", {{"w.bin", versions[0], ""}, {"v.txt", "0\n", ""}}).ok());
  REQUIRE(fx.srv->add_bucket("ns/moving").ok());
  fx.start();
  std::set<std::string> valid;
  for (const auto& v : versions) valid.insert(sha256_hex(v));
  std::vector<std::string> hashes;
  for (const auto& v : versions) hashes.push_back(fx.srv->cas_put(v).value());

  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad{0}, errors{0};
  // Catch2 assertions are not thread-safe: threads only count outcomes.
  const std::string tok = fetch_token(*fx.client, "/api/models/acme/moving/xet-read-token/main");
  auto reader = [&](int id) {
    TestClient c(fx.base);
    int i = 0;
    while (!stop.load()) {
      ++i;
      if ((i + id) % 2 == 0) {
        // Repo: HEAD gives a consistent (commit, hash, size) triple for the same commit.
        auto h = c.head("/acme/moving/resolve/main/w.bin");
        if (h.status != 302) {
          ++errors;
          continue;
        }
        auto got = read_via_cas(c, fx.base + "/cas", tok, h.header("x-xet-hash"), {false, i % 3 == 0, std::nullopt});
        if (!got.ok() || std::to_string(got->size()) != h.header("x-linked-size") || !valid.count(sha256_hex(*got))) ++bad;
        auto pinned = c.get_follow(fmt::format("/acme/moving/resolve/{}/w.bin", h.header("x-repo-commit")));
        if (pinned.status != 200 || sha256_hex(pinned.body) != sha256_hex(got.ok() ? *got : "")) ++bad;
      } else {
        auto r = c.get("/api/buckets/ns/moving/tree?recursive=true");
        if (r.status != 200) ++errors;
        auto b = c.get_follow("/buckets/ns/moving/resolve/f.bin");
        if (b.status == 200 && !valid.count(sha256_hex(b.body))) ++bad;
      }
      ++reads;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) threads.emplace_back(reader, t);
  // Writer: move main and rewrite the bucket file repeatedly.
  for (int round = 0; round < 12; ++round) {
    int v = round % 4;
    CommitRequest cr;
    cr.add = {{"w.bin", versions[v], ""}, {"v.txt", fmt::format("{}\n", v), ""}};
    REQUIRE(fx.srv->commit(RepoType::model, "acme/moving", cr).ok());
    TestClient c(fx.base);
    auto r = c.post("/api/buckets/ns/moving/batch",
                    fmt::format(R"({{"type":"addFile","path":"f.bin","xetHash":"{}"}})", hashes[v]));
    REQUIRE(r.status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(reads.load() > 30);
  CHECK(bad.load() == 0);
  CHECK(errors.load() == 0);
}
