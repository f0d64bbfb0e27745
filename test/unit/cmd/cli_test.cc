// hf-mount front-end helpers: `start` flag translation, progress rendering,
// per-mount paths, sd_notify datagrams and control reply parsing.
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "cmd/cli_paths.h"
#include "cmd/control_client.h"
#include "cmd/progress.h"
#include "cmd/sd_notify.h"
#include "cmd/start_args.h"
#include "fs/mount_config.h"

using namespace hf;
using namespace hf::cmd;

// ---------------------------------------------------------------------------------------------
// start

namespace {
fs::MountConfig reparse(const StartPlan& p) {
  auto c = fs::parse_mount_args(p.fuse_args(), false);
  REQUIRE(c.ok());
  return *c;
}
}  // namespace

TEST_CASE("start: the incumbent's repo form with its flags") {
  auto p = plan_start({"repo", "datasets/acme/data/train", "mnt", "--revision", "v1.0", "--hf-token", "hf_secret",
                       "--token-file", "tok", "--cache-dir=/var/c", "--cache-size", "5000000000", "--uid", "1000",
                       "--gid=100", "--poll-interval-secs", "0", "--metadata-ttl-ms", "1500", "--read-only",
                       "--hub-endpoint", "http://127.0.0.1:8080", "--max-threads", "4"},
                      "/home/u");
  REQUIRE(p.ok());
  CHECK(p->source == "hf://datasets/acme/data/train");
  CHECK(p->mountpoint == "/home/u/mnt");
  CHECK(p->hf_token.reveal() == "hf_secret");
  for (auto& a : p->fuse_args()) CHECK(a.find("hf_secret") == std::string::npos);  // never on argv
  CHECK(p->notes.empty());
  auto c = reparse(*p);
  CHECK(c.source.kind == fs::SourceKind::dataset);
  CHECK(c.source.repo_id == "acme/data");
  CHECK(c.source.subfolder == "train");
  CHECK(c.revision == "v1.0");
  CHECK(c.token_file == "/home/u/tok");  // made absolute: the daemon runs in '/'
  CHECK(c.cache_dir == "/var/c");
  CHECK(c.cache_size == 5000000000ull);
  CHECK(c.uid == 1000u);
  CHECK(c.gid == 100u);
  CHECK(c.poll_interval == 0u);
  CHECK(c.metadata_ttl == Approx(1.5));
  CHECK(c.read_only);
  CHECK(c.endpoint == "http://127.0.0.1:8080");
  CHECK(c.max_threads == 4u);
  CHECK_FALSE(c.foreground);
}

TEST_CASE("start: bucket form, hf:// form, flags with no effect") {
  auto b = plan_start({"bucket", "acme/scratch/run1", "/mnt/b", "--advanced-writes", "--fuse", "--cache-mode", "file",
                       "--flush-debounce-ms=100", "--no-disk-cache"},
                      "/");
  REQUIRE(b.ok());
  CHECK(b->source == "hf://buckets/acme/scratch/run1");
  REQUIRE(b->notes.size() == 4);
  CHECK_THAT(b->notes[0], Catch::StartsWith("--advanced-writes has no effect here"));
  CHECK_THAT(b->notes[2], Catch::StartsWith("--cache-mode has no effect here"));
  auto c = reparse(*b);
  CHECK(c.source.kind == fs::SourceKind::bucket);
  CHECK_FALSE(c.read_only);
  CHECK(c.cache_size == 0);

  auto h = plan_start({"hf://acme/tiny@refs/pr/1", "/m", "-o", "allow_other,umask=027", "--allow-other", "-f"}, "/");
  REQUIRE(h.ok());
  CHECK(h->foreground);
  auto hc = reparse(*h);
  CHECK(hc.revision == "refs/pr/1");
  CHECK(hc.allow_other);
  CHECK(hc.umask == 027u);
  CHECK(hc.foreground);

  CHECK(plan_start({"bucket", "hf://buckets/a/b", "/m"}, "/")->source == "hf://buckets/a/b");
  CHECK(plan_start({"acme/tiny", "/m", "--metadata-ttl-minimal"}, "/").ok());
  CHECK(reparse(*plan_start({"acme/tiny", "/m", "--metadata-ttl-minimal"}, "/")).metadata_ttl == 0);
}

TEST_CASE("start: errors name the problem") {
  auto e1 = plan_start({"repo", "acme/tiny", "/m", "--overlay"}, "/");
  CHECK(e1.code() == Errc::unsupported);
  CHECK_THAT(e1.error().message, Catch::Contains("--overlay"));
  CHECK(plan_start({"repo", "hf://buckets/a/b", "/m"}, "/").code() == Errc::invalid_argument);
  CHECK(plan_start({"acme/tiny"}, "/").code() == Errc::invalid_argument);
  CHECK(plan_start({"repo", "a/b", "/m", "extra"}, "/").code() == Errc::invalid_argument);
  auto e2 = plan_start({"acme/tiny", "/m", "--frobnicate"}, "/");
  CHECK(e2.code() == Errc::invalid_argument);
  CHECK_THAT(e2.error().message, Catch::Contains("frobnicate"));
  CHECK(plan_start({"acme/tiny", "/m", "--metadata-ttl-ms", "soon"}, "/").code() == Errc::invalid_argument);
  CHECK(plan_start({"acme/tiny", "/m", "--revision"}, "/").code() == Errc::invalid_argument);
  CHECK(plan_start({"acme/tiny", "/m", "--read-only=yes"}, "/").code() == Errc::invalid_argument);
  CHECK(plan_start({"acme/tiny", "/m", "-x"}, "/").code() == Errc::invalid_argument);
}

TEST_CASE("start: option values with commas survive the -o round trip") {
  auto p = plan_start({"acme/tiny", "/m", "--token-file", "/etc/a,b\\c"}, "/");
  REQUIRE(p.ok());
  CHECK(join_mount_options({"token_file=/etc/a,b\\c", "ro"}) == "token_file=/etc/a\\,b\\\\c,ro");
  CHECK(reparse(*p).token_file == "/etc/a,b\\c");
}

TEST_CASE("start: hf_token in -o moves to the environment; log_file is kept aside") {
  auto p = plan_start({"acme/tiny", "/m", "-o", "hf_token=hf_x,ro", "--log-file", "logs/m.log"}, "/home/u");
  REQUIRE(p.ok());
  CHECK(p->hf_token.reveal() == "hf_x");
  CHECK(p->log_file == "/home/u/logs/m.log");
  for (auto& o : p->options) {
    CHECK(o.find("hf_token") == std::string::npos);
    CHECK(o.find("log_file") == std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// progress

TEST_CASE("progress: durations and rates") {
  CHECK(format_eta(std::nullopt) == "--:--");
  CHECK(format_eta(0.0) == "0:00");
  CHECK(format_eta(7.2) == "0:08");
  CHECK(format_eta(754) == "12:34");
  CHECK(format_eta(3723) == "1:02:03");
  CHECK(format_eta(-1.0) == "--:--");
  CHECK(format_uptime(42) == "42s");
  CHECK(format_uptime(303) == "5m 03s");
  CHECK(format_uptime(10921) == "3h 02m 01s");
  CHECK(format_uptime(90061) == "1d 01h 01m");
  CHECK(format_rate(100.0 * 1024 * 1024) == "100.0 MiB/s");
}

TEST_CASE("progress: the rate spans the sliding window") {
  RateMeter m(2.0);
  CHECK_FALSE(m.rate().has_value());
  m.add(0.0, 0);
  m.add(0.1, 100);
  CHECK_FALSE(m.rate().has_value());  // too short a span
  m.add(1.0, 1000);
  REQUIRE(m.rate().has_value());
  CHECK(*m.rate() == Approx(1000.0));
  // Speed changes to 5000 B/s; after the window the old samples no longer count.
  for (int i = 1; i <= 40; ++i) m.add(1.0 + 0.1 * i, 1000 + 500ull * static_cast<uint64_t>(i));
  CHECK(*m.rate() == Approx(5000.0).epsilon(0.05));
}

TEST_CASE("progress: bar rendering") {
  std::string line = render_progress(512ull << 20, 1024ull << 20, 3, 10, 100.0 * 1024 * 1024, 100);
  CHECK(line.size() <= 100);
  CHECK_THAT(line, Catch::Contains(" 50%"));
  CHECK_THAT(line, Catch::Contains("512.0 MiB/1.0 GiB"));
  CHECK_THAT(line, Catch::Contains("100.0 MiB/s"));
  CHECK_THAT(line, Catch::Contains("ETA 0:06"));  // 512 MiB left at 100 MiB/s = 5.12 s -> 6
  CHECK_THAT(line, Catch::Contains("files 3/10"));
  // Half the bar is filled.
  size_t open = line.find('['), close = line.find(']');
  REQUIRE(open == 0);
  std::string bar = line.substr(1, close - 1);
  size_t hashes = static_cast<size_t>(std::count(bar.begin(), bar.end(), '#'));
  CHECK(hashes == bar.size() / 2);

  CHECK_THAT(render_progress(10, 10, 1, 1, std::nullopt, 100), Catch::Contains("100%"));
  CHECK_THAT(render_progress(10, 10, 1, 1, std::nullopt, 100), Catch::Contains("ETA 0:00"));
  std::string unknown = render_progress(2048, 0, 0, 0, std::nullopt, 100);
  CHECK(unknown.find('%') == std::string::npos);
  CHECK_THAT(unknown, Catch::Contains("2.0 KiB"));
  CHECK(render_progress(1, 2, 0, 0, std::nullopt, 20).size() <= 20);  // narrow: truncated, no bar
}

// ---------------------------------------------------------------------------------------------
// paths

TEST_CASE("per-mount log files") {
  CHECK(mount_key("/mnt/a b") == "%2Fmnt%2Fa b");
  CHECK(mount_key("/x%2Fy") == "%2Fx%252Fy");  // injective: '%' is escaped too
  std::map<std::string, std::string> env;
  GetEnv ge = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  CHECK(default_log_file("/mnt/x", 0, ge, "/root") == "/var/log/hf-mount/%2Fmnt%2Fx.log");
  CHECK(default_log_file("/mnt/x", 1000, ge, "/home/u") == "/home/u/.local/state/hf-mount/logs/%2Fmnt%2Fx.log");
  env["HOME"] = "/h/";
  CHECK(log_dir(1000, ge, "/home/u") == "/h/.local/state/hf-mount/logs");
  env["XDG_STATE_HOME"] = "/state";
  CHECK(log_dir(1000, ge, "/home/u") == "/state/hf-mount/logs");
  env["XDG_STATE_HOME"] = "relative";  // ignored, as the XDG spec requires
  CHECK(log_dir(1000, ge, "/home/u") == "/h/.local/state/hf-mount/logs");
  CHECK(passwd_home(0) == "/root");
}

// ---------------------------------------------------------------------------------------------
// sd_notify

namespace {
struct DgramSink {
  int fd = -1;
  std::string name;
  explicit DgramSink(bool abstract) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      name = "@hf-notify-test-" + std::to_string(::getpid());
      std::memcpy(sa.sun_path + 1, name.data() + 1, name.size() - 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    } else {
      name = "/tmp/hf-notify-test-" + std::to_string(::getpid());
      ::unlink(name.c_str());
      std::memcpy(sa.sun_path, name.data(), name.size());
      len = sizeof sa;
    }
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0);
  }
  ~DgramSink() {
    ::close(fd);
    if (name[0] == '/') ::unlink(name.c_str());
  }
  std::string recv() {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
};
}  // namespace

TEST_CASE("sd_notify sends one datagram to a path or abstract socket") {
  for (bool abstract : {false, true}) {
    DgramSink sink(abstract);
    INFO(sink.name);
    CHECK(sd_notify("READY=1\nSTATUS=Serving hf://a/b on /m", sink.name.c_str()) == 1);
    CHECK(sink.recv() == "READY=1\nSTATUS=Serving hf://a/b on /m");
    CHECK(sd_notify("STOPPING=1", sink.name.c_str()) == 1);
    CHECK(sink.recv() == "STOPPING=1");
  }
  CHECK(sd_notify("READY=1", nullptr) == 0);  // not under systemd: nothing to do
  CHECK(sd_notify("READY=1", "") == 0);
  CHECK(sd_notify("READY=1", "relative/path") == -EINVAL);
  CHECK(sd_notify("READY=1", "/nonexistent/notify.sock") < 0);
}

// ---------------------------------------------------------------------------------------------
// control replies

TEST_CASE("control replies: errors map back to Errc; junk is a protocol error") {
  CHECK(reply_status("{\"ok\":true}").ok());
  Status s = reply_status(R"({"ok":false,"error":"no such repo","errc":"repo_not_found"})");
  CHECK(s.code() == Errc::repo_not_found);
  CHECK(s.error().message == "no such repo");
  CHECK(reply_status(R"({"ok":false,"errc":"who_knows"})").code() == Errc::internal);
  CHECK(reply_status("garbage").code() == Errc::protocol);
  CHECK(reply_status("{\"x\":1}").code() == Errc::protocol);
  CHECK(parse_status_reply("{\"ok\":true}").code() == Errc::protocol);
  for (int i = 1; i <= static_cast<int>(Errc::internal); ++i) {
    CHECK(errc_from_name(errc_name(static_cast<Errc>(i))) == static_cast<Errc>(i));
  }
  auto p = parse_progress_line(R"({"progress":{"done_bytes":5,"total_bytes":10,"files_done":1,"files_total":2}})");
  REQUIRE(p.has_value());
  CHECK(p->done_bytes == 5);
  CHECK(p->total_bytes == 10);
  CHECK(p->files_done == 1);
  CHECK(p->files_total == 2);
  CHECK_FALSE(parse_progress_line("{\"ok\":true}").has_value());
}
