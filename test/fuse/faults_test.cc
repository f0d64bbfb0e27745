// Fault injection against the emulator, for real mounts (issue 10.1).
//
// Every scenario injects one kind of fault on one route, runs reads (or writes) through the
// mount under a watchdog, and checks what the application sees: the right bytes or a clean
// error (EIO) within a bounded time, never wrong bytes, never a hang. Then it clears the fault
// and checks that the same mount serves the data again (no remount). Each scenario prints one
// tally line (suite report: $HF_BUILD_ROOT/reliability-faults.txt).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "test/fuse/fixture.h"
#include "test/fuse/reliability.h"

using namespace hf;
using namespace hf::fstest;
using hubsim::FaultKind;
using hubsim::FaultRule;
using hubsim::FileSpec;
using hubsim::RepoType;
using namespace std::chrono_literals;

namespace {

constexpr auto kReadBound = 150s;  // one read operation: a generous bound on a loaded machine

FaultRule rule(const std::string& route, FaultKind kind, uint64_t count, double rate = 0) {
  FaultRule r;
  r.route = route;
  r.kind = kind;
  r.count = count;
  r.rate = rate;
  return r;
}

std::string file_tail(const std::string& path, size_t from) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return from < s.size() ? s.substr(from) : std::string();
}
size_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

// The first WARN/ERROR line logged since `from` (what an operator would see), shortened.
std::string first_warning(const Mount& m, size_t from) {
  std::istringstream in(file_tail(m.log_file(), from));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" WARN ") != std::string::npos || line.find(" ERROR ") != std::string::npos) {
      size_t p = line.find(' ');
      std::string s = p == std::string::npos ? line : line.substr(p + 1);
      return s.size() > 160 ? s.substr(0, 160) + "..." : s;
    }
  }
  return "";
}

// Reads that must not serve wrong bytes nor hang. Each read's outcome goes into `t`.
struct Reader {
  const Mount& m;
  Tally& t;
  bool killed = false;

  // Returns the read's errno (0 = success with the full, checked content).
  int whole(const std::string& rel, const std::string& want) {
    IoResult r;
    bool ok = bounded([&] { r = read_all(m / rel); }, kReadBound, [&] { kill_daemon(); });
    return account(ok, r, want, 0);
  }
  int range(const std::string& rel, const std::string& want, uint64_t off, size_t len) {
    IoResult r;
    bool ok = bounded([&] { r = pread_range(m / rel, off, len); }, kReadBound, [&] { kill_daemon(); });
    return account(ok, r, want, off);
  }
  int account(bool in_time, const IoResult& r, const std::string& want, uint64_t off) {
    t.reads++;
    t.max_op_seconds = std::max(t.max_op_seconds, r.seconds);
    if (!in_time) {
      t.stuck++;
      return ETIMEDOUT;
    }
    // Whatever was returned before an error must be right too.
    std::string expect = off < want.size() ? want.substr(off, r.data.size()) : std::string();
    t.wrong_bytes += wrong_bytes(r.data, expect) + (r.data.size() > expect.size() ? r.data.size() - expect.size() : 0);
    if (r.err) {
      t.read_errors++;
      return r.err;
    }
    return 0;
  }
  void kill_daemon() {
    killed = true;
    ::kill(m.pid(), SIGKILL);
    run("fusermount3 -u -z '" + m.path() + "'");
  }
};

// Reads `rel` until it comes back complete and correct (the mount recovered), at most `limit`.
bool recovers(const Mount& m, const std::string& rel, const std::string& want, std::chrono::seconds limit = 90s) {
  return wait_for(
      [&] {
        drop_page_cache(m / rel);
        IoResult r = read_all(m / rel);
        return r.err == 0 && r.data == want;
      },
      limit);
}

struct ReadScenario {
  std::string name;
  std::vector<FaultRule> rules;
  bool transient = true;  // faults are count-limited: every read must succeed
  std::optional<hubsim::Knobs> knobs;
};

}  // namespace

TEST_CASE("read faults on every route: right bytes or EIO, bounded, recovered without remount", "[faults]") {
  Hub hub;
  // One fresh file per scenario, so no cache hides the fault.
  std::vector<ReadScenario> scenarios;
  auto transient = [&](std::string name, std::vector<FaultRule> rules) {
    scenarios.push_back(ReadScenario{std::move(name), std::move(rules), true, std::nullopt});
  };
  auto persistent = [&](std::string name, std::vector<FaultRule> rules) {
    scenarios.push_back(ReadScenario{std::move(name), std::move(rules), false, std::nullopt});
  };
  // First: the token scenario. The mount fetches a CAS token while mounting; tokens issued
  // until this scenario is over live 2 s, so the read below must fetch a new one and meets the
  // faults.
  transient("token 500 + reset", {rule("token", FaultKind::status500, 1), rule("token", FaultKind::reset, 1)});
  transient("xorb 500 x2", {rule("xorb", FaultKind::status500, 2)});
  transient("xorb 503 x2 Retry-After 1", {rule("xorb", FaultKind::status503, 2)});
  transient("xorb 429 x2 Retry-After 1", {rule("xorb", FaultKind::status429, 2)});
  transient("xorb reset x3", {rule("xorb", FaultKind::reset, 3)});
  transient("xorb truncate x3", {rule("xorb", FaultKind::truncate, 3)});
  {
    FaultRule s = rule("xorb", FaultKind::stall, 2);
    s.stall_ms = 3000;
    transient("xorb stall 3 s x2", {s});
  }
  transient("xorb 5xx burst (rate 0.5)", {rule("xorb", FaultKind::status503, 0, 0.5)});
  transient("reconstruction 500 x2", {rule("reconstruction", FaultKind::status500, 2)});
  transient("reconstruction 503 x2", {rule("reconstruction", FaultKind::status503, 2)});
  transient("reconstruction 429 x2", {rule("reconstruction", FaultKind::status429, 2)});
  transient("reconstruction reset x2", {rule("reconstruction", FaultKind::reset, 2)});
  transient("reconstruction truncate x2", {rule("reconstruction", FaultKind::truncate, 2)});
  transient("reconstruction corrupt x2", {rule("reconstruction", FaultKind::corrupt, 2)});
  transient("resolve (git file) 500 + reset + truncate",
            {rule("resolve", FaultKind::status500, 1), rule("resolve", FaultKind::reset, 1),
             rule("resolve", FaultKind::truncate, 1)});
  transient("tree 500 + 429 + truncate",
            {rule("tree", FaultKind::status500, 1), rule("tree", FaultKind::status429, 1),
             rule("tree", FaultKind::truncate, 1)});
  persistent("xorb 503 always", {rule("xorb", FaultKind::status503, 0, 1.0)});
  persistent("xorb reset always", {rule("xorb", FaultKind::reset, 0, 1.0)});
  persistent("reconstruction 500 always", {rule("reconstruction", FaultKind::status500, 0, 1.0)});
  persistent("xorb truncate always", {rule("xorb", FaultKind::truncate, 0, 1.0)});
  persistent("tree 503 always", {rule("tree", FaultKind::status503, 0, 1.0)});
  persistent("resolve (git file) 500 always", {rule("resolve", FaultKind::status500, 0, 1.0)});

  // Files: d<i>/f.bin, 5 MiB of random bytes (Xet), and d<i>/small.txt (a plain git file).
  std::vector<FileSpec> files;
  std::map<std::string, std::string> want;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    std::string dir = "d" + std::to_string(i);
    want[dir + "/f.bin"] = random_bytes((5 << 20) + 1000 * i, 100 + i);
    want[dir + "/small.txt"] = fmt::format("plain git text of scenario {}\n", i) + std::string(3000, 'x');
    files.push_back({dir + "/f.bin", want[dir + "/f.bin"], ""});
    files.push_back({dir + "/small.txt", want[dir + "/small.txt"], ""});
  }
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/faults", files).ok());
  hubsim::Knobs short_tokens = hub.server().knobs();
  short_tokens.token_ttl_s = 2;
  hub.server().set_knobs(short_tokens);
  Mount m(hub, "hf://acme/faults");

  Tally total;
  total.name = "TOTAL read faults";
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const ReadScenario& sc = scenarios[i];
    std::string dir = "d" + std::to_string(i);
    INFO(sc.name);
    Tally t;
    t.name = "read: " + sc.name;
    size_t log_from = file_size(m.log_file());
    uint64_t faults_before = hub.server().faults_injected();
    // The tree scenarios must hit the listing: everything else lists first.
    bool tree = sc.rules.front().route == "tree";
    bool token = sc.rules.front().route == "token";
    if (token) std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the mount's token expired
    struct stat st {};
    if (!tree) REQUIRE(::stat((m / (dir + "/small.txt")).c_str(), &st) == 0);  // lists the directory
    hub.server().set_faults(sc.rules);
    Reader rd{m, t};
    std::vector<int> errs;
    if (tree) errs.push_back(rd.whole(dir + "/small.txt", want[dir + "/small.txt"]));
    bool git = sc.rules.front().route == "resolve";
    std::string rel = git ? dir + "/small.txt" : dir + "/f.bin";
    errs.push_back(rd.whole(rel, want[rel]));
    std::mt19937_64 rng(i);
    // A persistent fault fails every read only after the whole retry budget (up to ~25 s):
    // one range read besides the whole-file read shows it (and keeps the suite's time).
    for (int k = 0; k < (sc.transient ? 6 : 1) && !rd.killed; ++k) {
      uint64_t off = rng() % want[rel].size();
      errs.push_back(rd.range(rel, want[rel], off, 1 + rng() % (1 << 20)));
    }
    t.faults = hub.server().faults_injected() - faults_before;
    hub.server().clear_faults();
    if (token) {
      hubsim::Knobs k = hub.server().knobs();
      k.token_ttl_s = 3600;
      hub.server().set_knobs(k);
    }
    REQUIRE_FALSE(rd.killed);
    CHECK(t.faults > 0);  // the scenario really injected something
    if (sc.transient) {
      for (int e : errs) CHECK(e == 0);
    } else {
      for (int e : errs) CHECK((e == 0 || e == EIO));
      CHECK(t.read_errors > 0);
    }
    // Recovery: the same mount serves the right bytes again.
    bool back = recovers(m, rel, want[rel]);
    CHECK(back);
    t.note = (back ? "recovered; " : "NOT RECOVERED; ") + first_warning(m, log_from);
    CHECK(t.wrong_bytes == 0);
    CHECK(t.stuck == 0);
    report_tally("faults", t);
    total.faults += t.faults;
    total.reads += t.reads;
    total.read_errors += t.read_errors;
    total.wrong_bytes += t.wrong_bytes;
    total.stuck += t.stuck;
    total.max_op_seconds = std::max(total.max_op_seconds, t.max_op_seconds);
  }
  report_tally("faults", total);
  CHECK(m.alive());
}

TEST_CASE("a stall longer than the HTTP idle timeout is cut and retried", "[faults]") {
  Hub hub;
  std::string data = random_bytes(3 << 20, 77);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/stall", {{"s.bin", data, ""}}).ok());
  Mount m(hub, "hf://acme/stall");
  Tally t;
  t.name = "read: xorb stall 45 s (> 30 s idle timeout)";
  FaultRule s = rule("xorb", FaultKind::stall, 1);
  s.stall_ms = 45000;
  hub.server().set_faults({s});
  Reader rd{m, t};
  int e = rd.whole("s.bin", data);
  t.faults = hub.server().faults_injected();
  hub.server().clear_faults();
  CHECK(t.faults == 1);
  CHECK(e == 0);
  CHECK(t.wrong_bytes == 0);
  CHECK(t.stuck == 0);
  // The idle timeout (30 s) ends the stalled transfer; the resume takes the rest.
  CHECK(t.max_op_seconds < 44);
  report_tally("faults", t);
}

TEST_CASE("expired CAS tokens and presigned URLs mid-read are refreshed", "[faults]") {
  Hub hub;
  std::string data = random_bytes(24 << 20, 5);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/ttl", {{"t.bin", data, ""}, {"u.bin", data.substr(0, 12 << 20) + "x", ""}}).ok());
  // Set before mounting: the token the mount fetches while mounting is short-lived too.
  hubsim::Knobs k = hub.server().knobs();
  k.token_ttl_s = 1;
  k.url_ttl_s = 1;
  // A segment download outlives its URL, and the read outlives the token: at 6 MiB/s per
  // connection the release build read the file in 1.8 s once misses fetched whole segments in
  // parallel, and needed one token renewal only.
  k.conn_bandwidth = 2 << 20;
  hub.server().set_knobs(k);
  Mount m(hub, "hf://acme/ttl");
  // Truncated bodies force resumes on the same (by then expired) URL.
  hub.server().set_faults({rule("xorb", FaultKind::truncate, 0, 0.3)});
  hub.server().reset_stats();
  Tally t;
  t.name = "read: token_ttl=1 url_ttl=1 + truncates";
  Reader rd{m, t};
  int e1 = rd.whole("t.bin", data);
  std::this_thread::sleep_for(1500ms);  // the token has expired between reads
  int e2 = rd.range("u.bin", data.substr(0, 12 << 20) + "x", 5 << 20, 4 << 20);
  t.faults = hub.server().faults_injected();
  hub.server().clear_faults();
  uint64_t tokens = hub.server().requests("token"), forbidden = hub.server().status_count(403),
           unauthorized = hub.server().status_count(401);
  k.token_ttl_s = 3600;
  k.url_ttl_s = 3600;
  k.conn_bandwidth = 0;
  hub.server().set_knobs(k);
  t.note = fmt::format("token requests={} 403s={} 401s={}", tokens, forbidden, unauthorized);
  CHECK(e1 == 0);
  CHECK(e2 == 0);
  CHECK(tokens >= 2);  // the token was renewed mid-read
  CHECK(t.wrong_bytes == 0);
  CHECK(t.stuck == 0);
  report_tally("faults", t);
}

namespace {

struct WriteScenario {
  std::string name;
  std::vector<FaultRule> rules;
  bool transient = true;
  // Runs on a mount of its own, started for it: its upload must fetch a CAS token (the shared
  // mount caches one for an hour after its first upload, so token faults would never fire).
  bool own_mount = false;
};

}  // namespace

TEST_CASE("write faults: close() succeeds or fails with EIO, and no acknowledged byte is lost", "[faults]") {
  Hub hub;
  REQUIRE(hub.server().add_bucket("alice/wf").ok());
  std::vector<WriteScenario> scenarios{
      {"xorb_upload 500 x2", {rule("xorb_upload", FaultKind::status500, 2)}},
      {"xorb_upload reset x2", {rule("xorb_upload", FaultKind::reset, 2)}},
      {"xorb_upload 503 x1", {rule("xorb_upload", FaultKind::status503, 1)}},
      {"shard 500 x2", {rule("shard", FaultKind::status500, 2)}},
      {"shard reset x1", {rule("shard", FaultKind::reset, 1)}},
      {"shard truncate x1", {rule("shard", FaultKind::truncate, 1)}},
      {"batch 503 x2", {rule("batch", FaultKind::status503, 2)}},
      {"batch 429 x1", {rule("batch", FaultKind::status429, 1)}},
      {"batch reset x1 (commit may have applied)", {rule("batch", FaultKind::reset, 1)}},
      {"token (write) 500 x2", {rule("token", FaultKind::status500, 2)}, true, true},
      {"dedup 500 always", {rule("dedup", FaultKind::status500, 0, 1.0)}},
      {"xorb_upload 500 always", {rule("xorb_upload", FaultKind::status500, 0, 1.0)}, false},
      {"batch 500 always", {rule("batch", FaultKind::status500, 0, 1.0)}, false},
  };
  Mount shared(hub, "hf://buckets/alice/wf");
  Tally total;
  total.name = "TOTAL write faults";
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const auto& sc = scenarios[i];
    INFO(sc.name);
    Tally t;
    t.name = "write: " + sc.name;
    std::optional<Mount> own;
    if (sc.own_mount) {
      // The mount fetches a token while mounting: make that one expire before the upload.
      hubsim::Knobs k = hub.server().knobs();
      k.token_ttl_s = 1;
      hub.server().set_knobs(k);
      own.emplace(hub, "hf://buckets/alice/wf");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      k.token_ttl_s = 3600;
      hub.server().set_knobs(k);
    }
    Mount& m = own ? *own : shared;
    size_t log_from = file_size(m.log_file());
    std::string rel = "w" + std::to_string(i) + ".bin";
    std::string data = random_bytes((3 << 20) + 777 * i, 900 + i);
    uint64_t faults_before = hub.server().faults_injected();
    uint64_t tokens_before = hub.server().requests("token");
    hub.server().set_faults(sc.rules);
    IoResult w;
    bool in_time = bounded([&] { w = write_all(m / rel, data); }, 400s, [&] {
      ::kill(m.pid(), SIGKILL);
      run("fusermount3 -u -z '" + m.path() + "'");
    });
    t.faults = hub.server().faults_injected() - faults_before;
    hub.server().clear_faults();
    REQUIRE(in_time);
    if (sc.own_mount) CHECK(hub.server().requests("token") > tokens_before);  // the upload asked for one
    t.max_op_seconds = w.seconds;
    t.writes++;
    CHECK(t.faults > 0);
    if (sc.transient) {
      CHECK(w.err == 0);
    } else {
      CHECK(w.err == EIO);
      // The data stays in the mount; fsync commits it once the Hub is healthy.
      IoResult back = read_all(m / rel);
      CHECK(back.err == 0);
      CHECK(back.data == data);
      int fd = ::open((m / rel).c_str(), O_RDONLY);
      CHECK(fd >= 0);
      if (fd >= 0) {
        CHECK(::fsync(fd) == 0);
        ::close(fd);
      }
    }
    bool committed = wait_for([&] { return remote_file_sha(hub.url(), "alice/wf", rel) == sha256_of(data); }, 60s);
    if (!committed) t.lost++;
    CHECK(committed);
    t.note = fmt::format("close: {}; {}", w.err ? std::strerror(w.err) : "ok", first_warning(m, log_from));
    if (own) own->unmount();
    report_tally("faults", t);
    total.faults += t.faults;
    total.writes += t.writes;
    total.lost += t.lost;
    total.max_op_seconds = std::max(total.max_op_seconds, t.max_op_seconds);
  }
  report_tally("faults", total);
  // Nothing is left dirty, and a fresh mount sees every file.
  shared.unmount();
  Mount fresh(hub, "hf://buckets/alice/wf");
  for (size_t i = 0; i < scenarios.size(); ++i) {
    std::string rel = "w" + std::to_string(i) + ".bin";
    CHECK(sha256_file(fresh / rel) == sha256_of(random_bytes((3 << 20) + 777 * i, 900 + i)));
  }
}

TEST_CASE("corrupted xorb bytes: what the client detects", "[faults][corrupt]") {
  // The emulator's `corrupt` fault flips one payload byte in the middle of the first chunk of a
  // xorb range response (chunk framing stays intact). The Xet download protocol carries no
  // per-chunk hashes, so the client can only detect what breaks decoding or lengths, or verify
  // a file hash when it has fetched the whole file in one go.
  Hub hub;
  std::string small_random = random_bytes(600000, 31);             // one segment: whole file
  std::string text;                                                 // compressible: LZ4/BG4 chunks
  for (int i = 0; text.size() < (600 << 10); ++i) text += fmt::format("line {} of a compressible text file\n", i);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/corrupt",
                                {{"small.bin", small_random, ""}, {"text.bin", text, ""}}).ok());
  Mount m(hub, "hf://acme/corrupt");
  Tally total;
  total.name = "read: xorb corrupt (whole-file fetches)";
  for (auto* rel : {"small.bin", "text.bin"}) {
    const std::string& want = std::string(rel) == "small.bin" ? small_random : text;
    hub.server().set_faults({rule("xorb", FaultKind::corrupt, 1)});
    uint64_t before = hub.server().faults_injected();
    Reader rd{m, total};
    drop_page_cache(m / rel);
    int e = rd.whole(rel, want);
    total.faults += hub.server().faults_injected() - before;
    hub.server().clear_faults();
    CHECK((e == 0 || e == EIO));
  }
  report_tally("faults", total);
  CHECK(total.faults == 2);
  CHECK(total.wrong_bytes == 0);
  CHECK(total.stuck == 0);
}

TEST_CASE("corrupted None-scheme chunk inside a partial range of a large file (known limitation)",
          "[faults][corrupt][!mayfail]") {
  // A 12 MiB random file: its chunks are stored uncompressed, and the first read fetches only
  // its first megabyte. Nothing in the protocol lets a client check those bytes: this test
  // documents the exposure (it is expected to report wrong bytes until range proofs exist).
  Hub hub;
  std::string big = random_bytes(12 << 20, 41);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/corrupt2", {{"big.bin", big, ""}}).ok());
  Mount m(hub, "hf://acme/corrupt2");
  Tally t;
  t.name = "read: xorb corrupt (partial range, None chunk)";
  hub.server().set_faults({rule("xorb", FaultKind::corrupt, 1)});
  Reader rd{m, t};
  (void)rd.range("big.bin", big, 0, 256 << 10);
  t.faults = hub.server().faults_injected();
  hub.server().clear_faults();
  t.note = "undetectable without per-chunk hashes";
  report_tally("faults", t);
  CHECK(t.faults == 1);
  CHECK(t.wrong_bytes == 0);
}

TEST_CASE("the emulator killed and restarted during a long read and during uploads", "[faults][restart]") {
  std::string content_dir = tempdir("hubcontent");
  std::string big = random_bytes(64 << 20, 4242);
  {
    std::ofstream o(content_dir + "/big.bin", std::ios::binary);
    o.write(big.data(), static_cast<std::streamsize>(big.size()));
  }
  std::string data_dir = tempdir("hubdata");
  HubProcess hp({"--repo", "model:acme/long=" + content_dir, "--bucket", "alice/up", "--data-dir", data_dir,
                 "--bandwidth", "12M"});
  hp.start();

  SECTION("during a long read") {
    Mount m(hp.url(), "", "hf://acme/long");
    Tally t;
    t.name = "read: hubsim kill -9 + restart mid-read";
    Reader rd{m, t};
    int err = -1;
    std::thread reader([&] { err = rd.whole("big.bin", big); });
    std::this_thread::sleep_for(1500ms);
    hp.kill(SIGKILL);
    t.faults++;
    std::this_thread::sleep_for(2000ms);
    hp.start();
    reader.join();
    hp.control("/_sim/config", R"({"bandwidth":0})");
    bool back = recovers(m, "big.bin", big, 120s);
    t.note = fmt::format("reader: {}; {}", err == 0 ? "ok" : std::strerror(err), back ? "recovered" : "NOT RECOVERED");
    report_tally("faults", t);
    CHECK((err == 0 || err == EIO));
    CHECK(back);
    CHECK(t.wrong_bytes == 0);
    CHECK(t.stuck == 0);
  }

  SECTION("during uploads (sync and async writeback)") {
    hp.control("/_sim/config", R"({"latency_ms":400,"bandwidth":0})");
    for (std::string mode : {"sync", "async"}) {
      INFO(mode);
      Mount m(hp.url(), "", "hf://buckets/alice/up", "writeback=" + mode);
      Tally t;
      t.name = "write: hubsim kill -9 + restart mid-upload (" + mode + ")";
      std::string rel = "up-" + mode + ".bin";
      std::string data = random_bytes(20 << 20, mode == "sync" ? 1 : 2);
      IoResult w;
      std::thread writer([&] { w = write_all(m / rel, data); });
      std::this_thread::sleep_for(1200ms);
      hp.kill(SIGKILL);
      t.faults++;
      std::this_thread::sleep_for(2000ms);
      hp.start();
      hp.control("/_sim/config", R"({"latency_ms":400,"bandwidth":0})");
      writer.join();
      t.writes++;
      t.max_op_seconds = w.seconds;
      CHECK((w.err == 0 || w.err == EIO));
      if (w.err) {
        // Not acknowledged: still the application's to retry, but the mount keeps it anyway.
        IoResult back = read_all(m / rel);
        CHECK(back.data == data);
        int fd = ::open((m / rel).c_str(), O_RDONLY);
        if (fd >= 0) {
          (void)::fsync(fd);
          ::close(fd);
        }
      }
      bool committed = wait_for([&] { return remote_file_sha(hp.url(), "alice/up", rel) == sha256_of(data); }, 120s);
      if (!committed) t.lost++;
      t.note = fmt::format("close: {}", w.err ? std::strerror(w.err) : "ok");
      report_tally("faults", t);
      CHECK(committed);
    }
  }
  hp.kill(SIGTERM);
  remove_tree(content_dir);
  remove_tree(data_dir);
}

TEST_CASE("connection refused and DNS failure at mount time; offline boot from the cache", "[faults][restart]") {
  std::string bin = build_root() + "/cmd/hf-mount-fuse";
  std::string mnt = tempdir("mnt");
  std::string cache = tempdir("cache");
  auto timed = [](const std::string& cmd) {
    auto t0 = std::chrono::steady_clock::now();
    CmdResult r = run("timeout 120 " + cmd);
    return std::make_pair(r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  // A port nobody listens on.
  auto [refused, t_refused] =
      timed(bin + " hf://acme/x " + mnt + " -o endpoint=http://127.0.0.1:9,cache_dir=" + cache);
  CHECK(refused.status != 0);
  CHECK(refused.status != 124);  // not killed by timeout
  CHECK_THAT(refused.out, Catch::Contains("127.0.0.1:9") || Catch::Contains("refused") || Catch::Contains("reach"));
  CHECK(t_refused < 90);
  auto [dns, t_dns] = timed(bin + " hf://acme/x " + mnt + " -o endpoint=http://hf-mount-test.invalid,cache_dir=" + cache);
  CHECK(dns.status != 0);
  CHECK(dns.status != 124);
  CHECK(t_dns < 90);
  CHECK_FALSE(is_mounted(mnt));
  Tally t;
  t.name = "mount: connection refused / DNS failure";
  t.faults = 2;
  t.max_op_seconds = std::max(t_refused, t_dns);
  t.note = fmt::format("exit {} in {:.1f}s: {} | exit {} in {:.1f}s", refused.status, t_refused,
                       refused.out.substr(0, refused.out.find('\n')), dns.status, t_dns);
  report_tally("faults", t);

  // Offline boot: a repo mounted once comes back from the cache while the Hub is down.
  std::string content_dir = tempdir("hubcontent");
  std::string a = random_bytes(2 << 20, 1), b = random_bytes(2 << 20, 2);
  {
    std::ofstream(content_dir + "/a.bin", std::ios::binary).write(a.data(), static_cast<std::streamsize>(a.size()));
    std::ofstream(content_dir + "/b.bin", std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
  }
  std::string data_dir = tempdir("hubdata");
  HubProcess hp({"--repo", "model:acme/off=" + content_dir, "--data-dir", data_dir});
  hp.start();
  {
    Mount m(hp.url(), "", "hf://acme/off", "", cache);
    CHECK(read_all(m / "a.bin").data == a);
  }
  hp.kill(SIGKILL);
  {
    Mount m(hp.url(), "", "hf://acme/off", "", cache);
    Tally o;
    o.name = "mount: offline boot, Hub down, then back";
    Reader rd{m, o};
    CHECK(rd.whole("a.bin", a) == 0);  // cached
    int e = rd.whole("b.bin", b);      // not cached: a clean error, fast
    CHECK(e == EIO);
    CHECK(o.max_op_seconds < 60);
    hp.start();
    bool back = recovers(m, "b.bin", b, 120s);
    CHECK(back);
    o.note = back ? "cached file served offline; uncached EIO; recovered when the Hub returned" : "NOT RECOVERED";
    CHECK(o.wrong_bytes == 0);
    CHECK(o.stuck == 0);
    report_tally("faults", o);
  }
  hp.kill(SIGTERM);
  ::rmdir(mnt.c_str());
  remove_tree(cache);
  remove_tree(content_dir);
  remove_tree(data_dir);
}

TEST_CASE("a full disk under the cache directory", "[faults][disk]") {
  Hub hub;
  std::string big = random_bytes(40 << 20, 8);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/disk", {{"big.bin", big, ""}}).ok());
  REQUIRE(hub.server().add_bucket("alice/disk").ok());
  struct SmallDisk {
    std::string dir = tempdir("smallcache");
    explicit SmallDisk(const char* size) {
      std::string o = std::string("size=") + size + ",mode=0700";
      if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, o.c_str()) != 0) dir.clear();
    }
    ~SmallDisk() {
      if (dir.empty()) return;
      ::umount2(dir.c_str(), MNT_DETACH);
      ::rmdir(dir.c_str());
    }
  };
  SmallDisk disk1("12m"), disk2("12m");
  REQUIRE_FALSE(disk1.dir.empty());
  REQUIRE_FALSE(disk2.dir.empty());
  std::string cache = disk1.dir;
  Tally t;
  t.name = "cache on a 12 MiB tmpfs (ENOSPC)";
  {
    Mount m(hub, "hf://acme/disk", "", cache);
    Reader rd{m, t};
    CHECK(rd.whole("big.bin", big) == 0);  // the cache fills up; reads still succeed
    CHECK(rd.range("big.bin", big, 30 << 20, 5 << 20) == 0);
    CHECK(m.alive());
  }
  {
    // A fresh small disk, the chunk cache bounded below it: the staging area gets the rest.
    Mount m(hub, "hf://buckets/alice/disk", "cache_size=2M", disk2.dir);
    // A file that fits is written and committed.
    std::string ok = random_bytes(1 << 20, 3);
    IoResult w1 = write_all(m / "fits.bin", ok);
    CHECK(w1.err == 0);
    t.writes++;
    // One that does not fit in the staging area fails with ENOSPC (or EIO), never silently.
    std::string huge = random_bytes(24 << 20, 4);
    IoResult w2;
    bool in_time = bounded([&] { w2 = write_all(m / "huge.bin", huge); }, 300s, [&] { ::kill(m.pid(), SIGKILL); });
    CHECK(in_time);
    CHECK((w2.err == ENOSPC || w2.err == EIO));
    t.note = fmt::format("huge write: {}", w2.err ? std::strerror(w2.err) : "ok (unexpected)");
    (void)::unlink((m / "huge.bin").c_str());
    // Space is back: writing works again without a remount.
    std::string after = random_bytes(1 << 20, 5);
    CHECK(write_all(m / "after.bin", after).err == 0);
    t.writes++;
    for (auto& [rel, data] : std::vector<std::pair<std::string, std::string>>{{"fits.bin", ok}, {"after.bin", after}}) {
      bool committed = remote_file_sha(hub.url(), "alice/disk", rel) == sha256_of(data);
      if (!committed) t.lost++;
    }
    CHECK(t.lost == 0);
  }
  report_tally("faults", t);
  CHECK(t.wrong_bytes == 0);
  CHECK(t.stuck == 0);
}
