#include <catch2/catch.hpp>

#include "fs/mount_config.h"

using namespace hf;
using namespace hf::fs;

static Result<MountConfig> parse(std::vector<std::string> a, bool helper = false) { return parse_mount_args(a, helper); }

TEST_CASE("sources: repo kinds, subfolders, revisions") {
  auto s = parse_source("hf://openai/gpt-oss-20b").value();
  CHECK(s.kind == SourceKind::model);
  CHECK(s.repo_id == "openai/gpt-oss-20b");
  CHECK(s.subfolder.empty());
  CHECK(s.canonical() == "hf://openai/gpt-oss-20b");

  s = parse_source("hf://datasets/acme/data/train/part-1/").value();
  CHECK(s.kind == SourceKind::dataset);
  CHECK(s.repo_id == "acme/data");
  CHECK(s.subfolder == "train/part-1");
  CHECK(s.canonical() == "hf://datasets/acme/data/train/part-1");

  s = parse_source("spaces/acme/app").value();
  CHECK(s.kind == SourceKind::space);
  s = parse_source("hf://buckets/alice/scratch/ckpt").value();
  CHECK(s.kind == SourceKind::bucket);
  CHECK(s.subfolder == "ckpt");
  s = parse_source("acme/tiny@v1.0/onnx").value();
  CHECK(s.revision == "v1.0");
  CHECK(s.subfolder == "onnx");
  s = parse_source("hf://acme/tiny@refs/pr/3/sub").value();
  CHECK(s.revision == "refs/pr/3");
  CHECK(s.subfolder == "sub");
  s = parse_source("gpt2").value();
  CHECK(s.repo_id == "gpt2");

  CHECK(parse_source("hf://acme/tiny/../etc").code() == Errc::invalid_argument);
  CHECK(parse_source("hf://").code() == Errc::invalid_argument);
  CHECK(parse_source("hf://acme/ti ny").code() == Errc::invalid_argument);
  CHECK(parse_source("hf://acme/tiny@bad?rev").code() == Errc::invalid_argument);
}

TEST_CASE("revision validation blocks URL smuggling") {
  CHECK(validate_revision("main").ok());
  CHECK(validate_revision("refs/pr/1").ok());
  CHECK(validate_revision("0123456789abcdef0123456789abcdef01234567").ok());
  CHECK(validate_revision("").code() == Errc::invalid_argument);
  CHECK(validate_revision("a/../b").code() == Errc::invalid_argument);
  CHECK(validate_revision("main?x=1").code() == Errc::invalid_argument);
  CHECK(validate_revision("main#frag").code() == Errc::invalid_argument);
  CHECK(validate_revision(std::string(300, 'a')).code() == Errc::invalid_argument);
}

TEST_CASE("every documented option parses") {
  auto c = parse({"-o", "revision=v2,endpoint=http://127.0.0.1:9/,token_file=/etc/t,uid=1000,gid=100,umask=027,"
                        "allow_other,metadata_ttl=5.5,poll_interval=0,cache_dir=/c,cache_size=1G,max_threads=4,"
                        "read_ahead_kb=1024,log_level=DEBUG,memory_cache=64M,ca_bundle=/ca.pem",
                  "hf://acme/tiny", "/mnt/x"})
               .value();
  CHECK(c.revision == "v2");
  CHECK(c.endpoint == "http://127.0.0.1:9");
  CHECK(c.token_file == "/etc/t");
  CHECK(c.uid == 1000u);
  CHECK(c.gid == 100u);
  CHECK(c.umask == 027u);
  CHECK(c.allow_other);
  CHECK(c.metadata_ttl == Approx(5.5));
  CHECK(c.poll_interval == 0u);
  CHECK(c.cache_dir == "/c");
  CHECK(c.cache_size == (1ull << 30));
  CHECK(c.memory_cache == (64ull << 20));
  CHECK(c.max_threads == 4u);
  CHECK(c.read_ahead_kb == 1024u);
  CHECK(c.log_level == "debug");
  CHECK(c.ca_bundle == "/ca.pem");
  CHECK(c.read_only);  // repositories are always read-only
  CHECK(c.mountpoint == "/mnt/x");
}

TEST_CASE("long flags mirror -o options") {
  auto c = parse({"--revision", "dev", "--cache-size=2G", "--allow-other", "-f", "acme/tiny", "/mnt"}).value();
  CHECK(c.revision == "dev");
  CHECK(c.cache_size == (2ull << 30));
  CHECK(c.allow_other);
  CHECK(c.foreground);
}

TEST_CASE("fstab-only options are accepted and dropped, one by one") {
  for (const char* o : {"nofail", "_netdev", "auto", "noauto", "user", "users", "nouser", "x-systemd.automount",
                        "x-systemd.idle-timeout=30min", "comment=hello", "defaults"}) {
    INFO(o);
    auto c = parse({"-o", o, "acme/tiny", "/mnt"});
    REQUIRE(c.ok());
    CHECK(c->ignored.size() == 1);
    for (auto& k : fuse_mount_options(*c)) CHECK(k != o);
  }
}

TEST_CASE("unknown options fail with a message naming them") {
  auto c = parse({"-o", "ro,frobnicate=1", "acme/tiny", "/mnt"});
  REQUIRE_FALSE(c.ok());
  CHECK(c.code() == Errc::invalid_argument);
  CHECK_THAT(c.error().message, Catch::Contains("frobnicate"));
  CHECK(parse({"-o", "uid=abc", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"-o", "umask=999", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"-o", "cache_size=lots", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"-o", "fsname=evil", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"-o", "allow_other=1", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"--bogus", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  CHECK(parse({"acme/tiny"}).code() == Errc::invalid_argument);
  CHECK(parse({"a/b", "/m", "extra"}).code() == Errc::invalid_argument);
  // Found by fuzzing (test/fuzz/corpus/mount_config): an empty mount point argument.
  CHECK(parse({"p-e-h4", ""}).code() == Errc::invalid_argument);
}

TEST_CASE("kernel options always carry identity, nosuid and nodev") {
  auto c = parse({"-o", "dev,suid,noexec,allow_other", "hf://datasets/acme/d", "/mnt"}).value();
  auto o = fuse_mount_options(c);
  auto has = [&](const std::string& s) { return std::find(o.begin(), o.end(), s) != o.end(); };
  CHECK(has("fsname=hf://datasets/acme/d"));
  CHECK(has("subtype=hfmount"));
  CHECK(has("nosuid"));
  CHECK(has("nodev"));
  CHECK(has("ro"));
  CHECK(has("noexec"));
  CHECK(has("allow_other"));
  CHECK(has("default_permissions"));
  CHECK_FALSE(has("dev"));
  CHECK_FALSE(has("suid"));
}

TEST_CASE("buckets are read-write unless ro, and have no revisions") {
  auto c = parse({"hf://buckets/alice/scratch", "/mnt"}).value();
  CHECK_FALSE(c.read_only);
  c = parse({"-o", "ro", "hf://buckets/alice/scratch", "/mnt"}).value();
  CHECK(c.read_only);
  CHECK(parse({"hf://buckets/alice/scratch@v1", "/mnt"}).code() == Errc::invalid_argument);
}

TEST_CASE("helper mode: -f is a dry run, -s -n -v are accepted") {
  auto c = parse({"hf://acme/tiny", "/mnt", "-s", "-f", "-n", "-v", "-o", "ro,_netdev"}, true).value();
  CHECK(c.dry_run);
  CHECK_FALSE(c.foreground);
  CHECK(c.verbose);
  CHECK(parse({"hf://acme/tiny", "/mnt", "-s"}, false).code() == Errc::invalid_argument);
}

TEST_CASE("revision from SOURCE@rev and revision= must agree") {
  CHECK(parse({"acme/tiny@v1", "/mnt"})->revision == "v1");
  CHECK(parse({"-o", "revision=v1", "acme/tiny@v1", "/mnt"}).ok());
  CHECK(parse({"-o", "revision=v2", "acme/tiny@v1", "/mnt"}).code() == Errc::invalid_argument);
}

TEST_CASE("commas inside option values are escaped with a backslash") {
  auto c = parse({"-o", "cache_dir=/a\\,b,ro", "acme/tiny", "/mnt"}).value();
  CHECK(c.cache_dir == "/a,b");
}

TEST_CASE("log_file= takes an absolute path") {
  auto c = parse({"-o", "log_file=/var/log/hf-mount/x.log", "acme/tiny", "/mnt"}).value();
  CHECK(c.log_file == "/var/log/hf-mount/x.log");
  CHECK(parse({"--log-file", "/tmp/a.log", "acme/tiny", "/mnt"}).value().log_file == "/tmp/a.log");
  auto rel = parse({"-o", "log_file=x.log", "acme/tiny", "/mnt"});
  CHECK(rel.code() == Errc::invalid_argument);
  CHECK_THAT(rel.error().message, Catch::Contains("absolute"));
  CHECK(parse({"-o", "log_file=", "acme/tiny", "/mnt"}).code() == Errc::invalid_argument);
  // Never handed to libfuse.
  for (auto& k : fuse_mount_options(c)) CHECK(k.find("log_file") == std::string::npos);
}
