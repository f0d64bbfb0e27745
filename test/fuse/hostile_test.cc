// Hostile server input, for real mounts (issue 10.2): the emulator's interceptor rewrites
// responses into what a broken or malicious server could send. The mount must stay within
// bounded memory and time, log one clear line, serve nothing outside its view, and keep
// working for everything else.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "test/fuse/fixture.h"
#include "test/fuse/reliability.h"

using namespace hf;
using namespace hf::fstest;
using hubsim::FileSpec;
using hubsim::RepoType;
using hubsim::Request;
using hubsim::Response;
using namespace std::chrono_literals;

namespace {

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o.push_back('\\');
      o.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      o += fmt::format("\\u{:04x}", c);
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o + "\"";
}

std::string file_entry(const std::string& path, uint64_t size, const std::string& xet_hash = "") {
  std::string e = fmt::format(R"({{"type":"file","oid":"{}","size":{},"path":{})", std::string(40, 'a'), size, json_str(path));
  if (!xet_hash.empty()) e += fmt::format(R"(,"lfs":{{"oid":"{}","size":{},"pointerSize":130}},"xetHash":"{}")",
                                          std::string(64, 'b'), size, xet_hash);
  return e + "}";
}
std::string dir_entry(const std::string& path) {
  return fmt::format(R"({{"type":"directory","oid":"{}","size":0,"path":{}}})", std::string(40, 'c'), json_str(path));
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A tree listing request for directory `dir` (at any revision: mounts list by commit sha).
bool lists(const Request& req, const Response& r, std::string_view dir) {
  return r.route == "tree" && req.path.find("/tree/") != std::string_view::npos && ends_with(req.path, "/" + std::string(dir));
}

// The value of "xetHash" for `name` in a tree listing body (the emulator's real answer).
std::string xet_hash_of(const Hub& hub, const std::string& repo, const std::string& name) {
  CmdResult r = run("curl -s '" + hub.url() + "/api/models/" + repo + "/tree/main'");
  size_t p = r.out.find("\"path\":\"" + name + "\"");
  size_t obj = r.out.rfind('{', p);
  size_t h = r.out.find("\"xetHash\":\"", obj);
  if (p == std::string::npos || h == std::string::npos || h > p) return "";
  return r.out.substr(h + 11, 64);
}

std::vector<std::string> list_names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string log_of(const Mount& m) {
  std::ifstream in(m.log_file());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A body of `n` bytes generated on demand: "[" + spaces + "]" (valid JSON, any size).
class HugeJson final : public hubsim::ByteSource {
 public:
  explicit HugeJson(uint64_t n) : n_(n) {}
  uint64_t size() const override { return n_; }
  std::span<const uint8_t> read(uint64_t off, size_t max, std::vector<uint8_t>& scratch) const override {
    size_t k = static_cast<size_t>(std::min<uint64_t>(max, n_ - off));
    scratch.assign(k, ' ');
    if (off == 0) scratch[0] = '[';
    if (off + k == n_) scratch[k - 1] = ']';
    return {scratch.data(), k};
  }

 private:
  uint64_t n_;
};

void set_body(Response& r, std::string body, const std::string& type = "application/json") {
  r.status = 200;
  r.headers.clear();
  r.corrupt_offsets.clear();
  r.set_body(std::move(body), type);
}

}  // namespace

TEST_CASE("hostile names in listings: nothing outside the view is served", "[hostile]") {
  Hub hub;
  std::string real = random_bytes(300000, 1);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/names", {{"real.bin", real, ""}, {"h/placeholder.txt", "p\n", ""}}).ok());
  std::string xh = xet_hash_of(hub, "acme/names", "real.bin");
  REQUIRE(xh.size() == 64);
  std::string long_name(300, 'L');
  std::string ok_long(255, 'K');
  std::vector<std::string> entries{
      file_entry("h/ok.bin", real.size(), xh),
      file_entry("h/a/b", real.size(), xh),               // nested: not a direct child
      file_entry("h/..", real.size(), xh),
      file_entry("h/.", real.size(), xh),
      file_entry("h/", real.size(), xh),                  // empty name
      file_entry(std::string("h/nul\0byte", 10), real.size(), xh),
      file_entry("h/ctl\x01\x1b[31mred", real.size(), xh),  // legal on Linux: served as is
      file_entry("h/new\nline", real.size(), xh),
      file_entry("h/" + long_name, real.size(), xh),     // > 255 bytes
      file_entry("h/" + ok_long, real.size(), xh),       // exactly 255: fine
      file_entry("h/dup", real.size(), xh),
      file_entry("h/dup", 7, xh),                         // duplicate: the first one wins
      dir_entry("h/same"),
      file_entry("h/same", real.size(), xh),              // a directory and a file: first wins
      file_entry("../../etc/passwd", 100, xh),
      file_entry("h/../../../etc/shadow", 100, xh),
      file_entry("/etc/passwd", 100, xh),
      file_entry("etc/passwd", 100, xh),
      file_entry("h/%2e%2e", real.size(), xh),            // no decoding: a literal name
      file_entry("h/\xff\xfe raw bytes", real.size(), xh),
  };
  std::string body = "[";
  for (size_t i = 0; i < entries.size(); ++i) body += (i ? "," : "") + entries[i];
  body += "]";
  hub.server().set_interceptor([body](const Request& req, Response& r) {
    if (lists(req, r, "h")) set_body(r, body);
  });
  Mount m(hub, "hf://acme/names");
  auto names = list_names(m / "h");
  std::set<std::string> want{"ok.bin", "ctl\x01\x1b[31mred", "new\nline", ok_long, "dup", "same", "%2e%2e",
                             "\xff\xfe raw bytes"};
  CHECK(std::set<std::string>(names.begin(), names.end()) == want);
  for (auto& n : names) {
    INFO(n);
    struct stat st {};
    REQUIRE(::lstat((m / ("h/" + n)).c_str(), &st) == 0);
    if (n == "same") {
      CHECK(S_ISDIR(st.st_mode));
      continue;
    }
    CHECK(S_ISREG(st.st_mode));
    CHECK(static_cast<size_t>(st.st_size) == real.size());  // "dup": the first entry
    CHECK(sha256_file(m / ("h/" + n)) == sha256_of(real));
    char resolved[PATH_MAX];
    REQUIRE(::realpath((m / ("h/" + n)).c_str(), resolved));
    CHECK(std::string(resolved).rfind(m.path() + "/h/", 0) == 0);
  }
  // Nothing of the traversal attempts exists anywhere in the mount.
  CmdResult f = run("find '" + m.path() + "' -name passwd -o -name shadow -o -name etc | wc -l");
  CHECK(std::stoul(f.out) == 0);
  CHECK(::access((m / "etc").c_str(), F_OK) != 0);
  std::string log = log_of(m);
  CHECK_THAT(log, Catch::Contains("skipping invalid entry name"));
  CHECK_THAT(log, Catch::Contains("entries outside"));
  CHECK(m.alive());
}

TEST_CASE("over-long paths: deeper than PATH_MAX through openat", "[hostile]") {
  Hub hub;
  std::string path;
  for (int i = 0; i < 16; ++i) path += std::string(250, static_cast<char>('a' + i)) + "/";
  path += std::string(70, 'z') + ".txt";  // 4090 bytes: the emulator's limit is 4096
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/deep", {{path, "at the bottom\n", ""}}).ok());
  Mount m(hub, "hf://acme/deep");
  REQUIRE((m / path).size() >= 4096);  // longer than PATH_MAX through the mount point
  int fd = ::open(m.path().c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  size_t pos = 0;
  bool ok = true;
  while (ok) {
    size_t slash = path.find('/', pos);
    std::string comp = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    int next = ::openat(fd, comp.c_str(), slash == std::string::npos ? O_RDONLY : O_RDONLY | O_DIRECTORY);
    ::close(fd);
    if (next < 0) {
      ok = false;
      break;
    }
    fd = next;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  REQUIRE(ok);
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  CHECK(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))) == "at the bottom\n");
  // The whole path is too long for one system call: ENAMETOOLONG from the kernel, not from us.
  errno = 0;
  CHECK(::access((m / path).c_str(), F_OK) != 0);
  CHECK(errno == ENAMETOOLONG);
}

TEST_CASE("a directory of a million entries: bounded time and memory", "[hostile][huge]") {
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/huge", {{"huge/seed.txt", "x\n", ""}}).ok());
  static constexpr size_t kEntries = 1000000, kPage = 50000;
  std::string base = hub.url();
  hub.server().set_interceptor([base](const Request& req, Response& r) {
    if (!lists(req, r, "huge")) return;
    size_t from = 0;
    if (auto p = req.query.find("cursor="); p != std::string_view::npos) from = std::stoul(std::string(req.query.substr(p + 7)));
    std::string body = "[";
    body.reserve(kPage * 96);
    size_t to = std::min(kEntries, from + kPage);
    for (size_t i = from; i < to; ++i) {
      if (i > from) body += ',';
      body += fmt::format(R"({{"type":"file","oid":"{:040x}","size":{},"path":"huge/file-{:07d}.bin"}})", i, 1 + i % 1000, i);
    }
    body += "]";
    set_body(r, std::move(body));
    if (to < kEntries) {
      r.set_header("Link", fmt::format("<{}{}?recursive=false&cursor={}>; rel=\"next\"", base, req.path, to));
    }
  });
  Mount m(hub, "hf://acme/huge", "memory_cache=64M");
  ProcSample before = sample_process(m.pid());
  auto t0 = std::chrono::steady_clock::now();
  CmdResult ls;
  bool in_time = bounded([&] { ls = run("ls -f '" + m.path() + "/huge' | wc -l"); }, 600s,
                         [&] { ::kill(m.pid(), SIGKILL); });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ProcSample after = sample_process(m.pid());
  REQUIRE(in_time);
  CHECK(std::stoul(ls.out) == kEntries + 2);
  double mb_per_entry = (static_cast<double>(after.rss_kb) - static_cast<double>(before.rss_kb)) * 1024.0 / kEntries;
  Tally t;
  t.name = "hostile: 1,000,000-entry directory";
  t.max_op_seconds = secs;
  t.note = fmt::format("ls -f: {:.1f}s; daemon RSS {} -> {} MiB ({:.0f} bytes/entry)", secs, before.rss_kb / 1024,
                       after.rss_kb / 1024, mb_per_entry);
  report_tally("hostile", t);
  // Generous bounds for a loaded 2-core machine; the figures are in the report line.
  CHECK(after.rss_kb < 2'500'000);
  CHECK(secs < 600);
  // A second listing is served from memory.
  auto t1 = std::chrono::steady_clock::now();
  CmdResult again = run("ls -f '" + m.path() + "/huge' | wc -l");
  CHECK(std::stoul(again.out) == kEntries + 2);
  double secs2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  CHECK(secs2 <= secs * 1.5 + 5);
  CHECK(m.alive());
}

TEST_CASE("sizes that disagree between the listing and the content", "[hostile]") {
  Hub hub;
  std::string real = random_bytes(3 << 20, 2);
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/sizes", {{"real.bin", real, ""}, {"sz/placeholder", "p", ""}}).ok());
  std::string xh = xet_hash_of(hub, "acme/sizes", "real.bin");
  REQUIRE(xh.size() == 64);
  std::string body = "[" + file_entry("sz/longer.bin", real.size() * 2, xh) + "," +
                     file_entry("sz/shorter.bin", real.size() / 2, xh) + "," + file_entry("sz/zero.bin", 0, xh) + "]";
  hub.server().set_interceptor([body](const Request& req, Response& r) {
    if (lists(req, r, "sz")) set_body(r, body);
  });
  Mount m(hub, "hf://acme/sizes");
  Tally t;
  t.name = "hostile: listing size != content size";
  // Longer than the content: the real bytes, then a clean error where the content ends.
  IoResult lr;
  REQUIRE(bounded([&] { lr = read_all(m / "sz/longer.bin"); }, 150s, [&] { ::kill(m.pid(), SIGKILL); }));
  t.reads++;
  t.max_op_seconds = lr.seconds;
  CHECK(lr.err == EIO);
  CHECK(lr.data.size() <= real.size());
  t.wrong_bytes += wrong_bytes(lr.data, real.substr(0, lr.data.size()));
  // Shorter than the content: exactly the listed size of correct bytes, or a clean error.
  IoResult sr = read_all(m / "sz/shorter.bin");
  t.reads++;
  CHECK((sr.err == 0 || sr.err == EIO));
  if (sr.err == 0) CHECK(sr.data.size() == real.size() / 2);
  t.wrong_bytes += wrong_bytes(sr.data, real.substr(0, sr.data.size()));
  // Zero: an empty file, no request.
  IoResult zr = read_all(m / "sz/zero.bin");
  CHECK(zr.err == 0);
  CHECK(zr.data.empty());
  t.note = fmt::format("longer: {} bytes then {}; shorter: {}", lr.data.size(), std::strerror(lr.err),
                       sr.err ? std::strerror(sr.err) : "truncated to the listed size");
  report_tally("hostile", t);
  CHECK(t.wrong_bytes == 0);
  // The real file is unaffected.
  CHECK(sha256_file(m / "real.bin") == sha256_of(real));
}

namespace {

struct ReconCase {
  std::string name;
  std::function<std::string(const std::string& original, const std::string& xorb_hash)> rewrite;
};

// The first xorb hash of a v2 reconstruction body.
std::string first_xorb(const std::string& body) {
  size_t p = body.find("\"hash\":\"");
  return p == std::string::npos ? "" : body.substr(p + 8, 64);
}

}  // namespace

TEST_CASE("hostile reconstructions: overruns, giant ranges, bombs", "[hostile]") {
  Hub hub;
  std::vector<FileSpec> files;
  std::vector<ReconCase> cases{
      {"term and fetch range claim 4e9 chunks",
       [](const std::string&, const std::string& x) {
         return fmt::format(R"({{"offset_into_first_range":0,"terms":[{{"hash":"{0}","unpacked_length":4000000000,"range":{{"start":0,"end":4000000000}}}}],"xorbs":{{"{0}":[{{"url":"http://127.0.0.1:9/x","ranges":[{{"chunks":{{"start":0,"end":4000000000}},"bytes":{{"start":0,"end":40000000000}}}}]}}]}}}})",
                            x);
       }},
      {"terms overrun the xorb (chunk end + 5)",
       [](const std::string& o, const std::string&) {
         // Chunk ranges of terms and fetch entries claim 5 more chunks; the byte ranges stay.
         std::string s = o;
         for (std::string key : {"\"range\":{", "\"chunks\":{"}) {
           for (size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + 1)) {
             size_t q = s.find("\"end\":", p) + 6, e = q;
             while (e < s.size() && isdigit(static_cast<unsigned char>(s[e]))) ++e;
             s.replace(q, e - q, std::to_string(std::stoull(s.substr(q, e - q)) + 5));
           }
         }
         return s;
       }},
      {"byte range extended past the xorb",
       [](const std::string& o, const std::string&) {
         std::string s = o;
         size_t p = s.find("\"bytes\":{");
         if (p == std::string::npos) return s;
         size_t q = s.find("\"end\":", p) + 6, e = q;
         while (e < s.size() && isdigit(static_cast<unsigned char>(s[e]))) ++e;
         s.replace(q, e - q, std::to_string(std::stoull(s.substr(q, e - q)) + (64 << 20)));
         return s;
       }},
      {"no terms", [](const std::string&, const std::string&) { return std::string(R"({"offset_into_first_range":0,"terms":[],"xorbs":{}})"); }},
      {"offset_into_first_range huge",
       [](const std::string& o, const std::string&) {
         std::string s = o;
         size_t p = s.find("\"offset_into_first_range\":");
         size_t q = p + 26, e = q;
         while (e < s.size() && isdigit(static_cast<unsigned char>(s[e]))) ++e;
         s.replace(q, e - q, "18446744073709551615");
         return s;
       }},
      {"JSON nesting bomb (100k levels)",
       [](const std::string&, const std::string&) { return std::string(100000, '[') + std::string(100000, ']'); }},
      {"not JSON at all", [](const std::string&, const std::string&) { return std::string("\x00\x01\x02 garbage", 12); }},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    files.push_back({"r" + std::to_string(i) + ".bin", random_bytes((2 << 20) + i, 70 + i), ""});
  }
  files.push_back({"good.bin", random_bytes(2 << 20, 99), ""});
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/recon", files).ok());
  std::vector<std::string> hashes;
  for (size_t i = 0; i < cases.size(); ++i) hashes.push_back(xet_hash_of(hub, "acme/recon", files[i].path));
  hub.server().set_interceptor([&](const Request& req, Response& r) {
    if (r.route != "reconstruction" || r.status != 200) return;
    for (size_t i = 0; i < cases.size(); ++i) {
      if (req.path.find(hashes[i]) == std::string_view::npos) continue;
      std::string orig;
      for (auto& piece : r.body) hubsim::append_source(*piece.src, piece.offset, piece.length, orig);
      set_body(r, cases[i].rewrite(orig, first_xorb(orig)));
    }
  });
  Mount m(hub, "hf://acme/recon");
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].name);
    Tally t;
    t.name = "hostile reconstruction: " + cases[i].name;
    ProcSample before = sample_process(m.pid());
    IoResult r;
    bool in_time = bounded([&] { r = read_all(m / files[i].path); }, 150s, [&] { ::kill(m.pid(), SIGKILL); });
    ProcSample after = sample_process(m.pid());
    t.reads = 1;
    t.max_op_seconds = r.seconds;
    t.stuck = in_time ? 0 : 1;
    t.wrong_bytes = wrong_bytes(r.data, files[i].bytes.substr(0, r.data.size()));
    t.note = fmt::format("{}; RSS {} -> {} MiB", r.err ? std::strerror(r.err) : "read ok", before.rss_kb / 1024,
                         after.rss_kb / 1024);
    report_tally("hostile", t);
    REQUIRE(in_time);
    REQUIRE(m.alive());
    CHECK(r.err == EIO);
    CHECK(t.wrong_bytes == 0);
    CHECK(after.rss_kb < before.rss_kb + 512 * 1024);
  }
  // Everything else still works.
  CHECK(sha256_file(m / "good.bin") == sha256_of(files.back().bytes));
}

TEST_CASE("oversized and nested JSON from the Hub: listings and tokens", "[hostile]") {
  Hub hub;
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/json",
                                {{"ok.txt", "fine\n", ""}, {"big/x", "x", ""}, {"deep/x", "x", ""}, {"w.bin", random_bytes(1 << 20, 3), ""}}).ok());
  std::atomic<bool> bomb_token{false};
  hub.server().set_interceptor([&](const Request& req, Response& r) {
    if (lists(req, r, "big")) {
      r.status = 200;
      r.headers.clear();
      r.body.clear();
      r.add_body(std::make_shared<HugeJson>(1ull << 30), 0, 1ull << 30);  // 1 GiB
      r.set_header("Content-Type", "application/json");
    } else if (lists(req, r, "deep")) {
      set_body(r, std::string(1 << 20, '[') + std::string(1 << 20, ']'));
    } else if (r.route == "token" && bomb_token) {
      r.status = 200;
      r.headers.clear();
      r.body.clear();
      r.add_body(std::make_shared<HugeJson>(256ull << 20), 0, 256ull << 20);
      r.set_header("Content-Type", "application/json");
    }
  });
  // Tokens live 1 s: the one the mount fetches while mounting has expired by the time of the
  // token bomb below, which the read must then fetch.
  hubsim::Knobs k = hub.server().knobs();
  k.token_ttl_s = 1;
  hub.server().set_knobs(k);
  Mount m(hub, "hf://acme/json");
  auto bounded_ls = [&](const std::string& rel, IoResult& out) {
    return bounded(
        [&] {
          auto t0 = std::chrono::steady_clock::now();
          DIR* d = ::opendir((m / rel).c_str());
          out.err = d ? 0 : errno;
          if (d) ::closedir(d);
          out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        },
        150s, [&] { ::kill(m.pid(), SIGKILL); });
  };
  ProcSample before = sample_process(m.pid());
  IoResult big, deep;
  REQUIRE(bounded_ls("big", big));
  REQUIRE(bounded_ls("deep", deep));
  ProcSample after = sample_process(m.pid());
  CHECK(big.err == EIO);
  CHECK(deep.err == EIO);
  CHECK(after.rss_kb < before.rss_kb + 400 * 1024);  // the 1 GiB body is never buffered
  Tally t;
  t.name = "hostile: 1 GiB listing + 1M-deep nesting";
  t.max_op_seconds = std::max(big.seconds, deep.seconds);
  t.note = fmt::format("1 GiB: {} in {:.1f}s; bomb: {} in {:.1f}s; RSS {} -> {} MiB", std::strerror(big.err), big.seconds,
                       std::strerror(deep.err), deep.seconds, before.rss_kb / 1024, after.rss_kb / 1024);
  report_tally("hostile", t);
  // A 256 MiB token answer: the read fails cleanly.
  bomb_token = true;
  std::this_thread::sleep_for(1500ms);  // whatever token the mount holds has expired
  IoResult tr;
  REQUIRE(bounded([&] { tr = read_all(m / "w.bin"); }, 150s, [&] { ::kill(m.pid(), SIGKILL); }));
  CHECK(tr.err == EIO);
  bomb_token = false;
  k.token_ttl_s = 3600;
  hub.server().set_knobs(k);
  CHECK(wait_for([&] { return read_all(m / "w.bin").err == 0; }, 90s));
  CHECK(read_all(m / "ok.txt").data == "fine\n");
  std::string log = log_of(m);
  CHECK_THAT(log, Catch::Contains("listing 'big' failed"));
}

TEST_CASE("hostile redirects: file://, other schemes, loops, other hosts", "[hostile]") {
  hubsim::Options o;
  o.tokens = {"alice:hf_hostile_secret_token"};
  Hub hub(false, o);
  hubsim::Options o2;
  o2.listen = "127.0.0.2:0";
  Hub other(false, o2);
  std::mutex mu;
  std::vector<std::string> other_auth;
  const std::string payload = "bytes served by another host\n";
  other.server().set_interceptor([&](const Request& req, Response& r) {
    std::lock_guard lk(mu);
    other_auth.emplace_back(req.header("authorization"));
    set_body(r, payload, "application/octet-stream");
    if (auto range = req.header("range"); !range.empty()) {
      // bytes=S-E
      size_t dash = range.find('-');
      uint64_t s = std::stoull(std::string(range.substr(6, dash - 6)));
      uint64_t e = dash + 1 < range.size() ? std::stoull(std::string(range.substr(dash + 1))) : payload.size() - 1;
      e = std::min<uint64_t>(e, payload.size() - 1);
      set_body(r, payload.substr(s, e - s + 1), "application/octet-stream");
      r.status = 206;
      r.set_header("Content-Range", fmt::format("bytes {}-{}/{}", s, e, payload.size()));
    }
  });
  // other.txt is served by the other host: its bytes there must be its content (the mount checks
  // a whole small file against its git blob id).
  std::vector<FileSpec> files{{"file.txt", "x\n", ""}, {"scheme.txt", "x\n", ""}, {"loop.txt", "x\n", ""},
                              {"other.txt", payload, ""}, {"fine.txt", "fine\n", ""},
                              {"liar.txt", std::string(payload.size(), '?'), ""}};
  REQUIRE(hub.server().add_repo(RepoType::model, "acme/redir", files).ok());
  std::string other_url = other.url();
  hub.server().set_interceptor([other_url](const Request& req, Response& r) {
    if (r.route != "resolve" || req.path.find("/resolve/") == std::string_view::npos) return;
    auto redirect = [&](const std::string& loc) {
      r.status = 302;
      r.headers.clear();
      r.body.clear();
      r.corrupt_offsets.clear();
      r.set_header("Location", loc);
    };
    if (ends_with(req.path, "/file.txt")) redirect("file:///etc/passwd");
    if (ends_with(req.path, "/scheme.txt")) redirect("gopher://127.0.0.1/etc/passwd");
    if (ends_with(req.path, "/loop.txt")) redirect(std::string(req.target));
    if (ends_with(req.path, "/other.txt") || ends_with(req.path, "/liar.txt")) redirect(other_url + "/cdn/x.txt");
  });
  std::string tokfile = tempdir("tok") + "/token";
  run("printf hf_hostile_secret_token > " + tokfile + " && chmod 600 " + tokfile);
  Mount m(hub, "hf://acme/redir", "token_file=" + tokfile);
  Tally t;
  t.name = "hostile redirects";
  for (auto* rel : {"file.txt", "scheme.txt", "loop.txt"}) {
    INFO(rel);
    IoResult r;
    REQUIRE(bounded([&] { r = read_all(m / rel); }, 150s, [&] { ::kill(m.pid(), SIGKILL); }));
    t.reads++;
    t.max_op_seconds = std::max(t.max_op_seconds, r.seconds);
    CHECK(r.err == EIO);
    CHECK(r.data.empty());
    CHECK(r.seconds < 60);
  }
  // Another host: followed (CDNs are other hosts), but the Hub token is not sent there.
  IoResult ro = read_all(m / "other.txt");
  CHECK(ro.err == 0);
  CHECK(ro.data == payload);
  {
    std::lock_guard lk(mu);
    CHECK_FALSE(other_auth.empty());
    for (auto& a : other_auth) CHECK(a.empty());
  }
  // Another host answering with bytes that are not the file's content: refused, not served.
  IoResult liar = read_all(m / "liar.txt");
  CHECK(liar.err == EIO);
  CHECK(liar.data.empty());
  CHECK(read_all(m / "fine.txt").data == "fine\n");
  std::string log = log_of(m);
  CHECK_THAT(log, Catch::Contains("does not match"));
  CHECK(log.find("hf_hostile_secret_token") == std::string::npos);
  CHECK(log.find("root:") == std::string::npos);  // nothing of /etc/passwd anywhere
  t.note = "file://, gopher://, loop -> EIO; cross-host followed without Authorization";
  report_tally("hostile", t);
}
