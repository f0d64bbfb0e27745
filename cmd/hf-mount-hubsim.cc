// hf-mount-hubsim: a local Hugging Face Hub + Xet CAS emulator (see test/hubsim/server.h).
//
// Contract relied on by other test suites: the first stdout line is exactly
// "listening on http://HOST:PORT" (https with TLS), flushed as soon as the server accepts
// connections; SIGTERM/SIGINT stop the server and exit 0.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/text.h"
#include "test/hubsim/server.h"
#include "test/hubsim/tls_gen.h"

namespace {

using namespace hf;
using namespace hf::hubsim;

constexpr const char* kUsage = R"(Usage: hf-mount-hubsim [OPTIONS]

A local emulator of the Hugging Face Hub API (repos, Storage Buckets) and the Xet CAS.
Prints "listening on http://HOST:PORT" (or https://) as its first stdout line.

Listening:
  --listen HOST:PORT          address to listen on (default 127.0.0.1:0; port 0 = choose)
  --tls-cert FILE             serve HTTPS with this PEM certificate (chain)
  --tls-key FILE              private key of --tls-cert
  --gen-tls DIR               write a throwaway CA (ca.pem) and a server certificate (cert.pem,
                              key.pem) for 127.0.0.1/::1/localhost into DIR, then exit 0 unless
                              other options are given (then serve HTTPS with them)
  --public-url URL            base URL advertised in Link/Location headers
  --threads N                 io threads (default: max(2, cores))
  --data-dir DIR              keep uploaded xorbs, shards and buckets across restarts
  --gc-grace SECONDS          remove uploaded files and xorbs that nothing references once
                              unused for SECONDS (default 0: keep everything)

Content:
  --repo TYPE:NS/NAME[@BRANCH]=DIR
                              serve DIR as a repo (TYPE model|dataset|space); repeating the
                              same repo adds a commit replacing all files (on BRANCH, default main)
  --synthetic TYPE:NS/NAME=SPEC
                              generated repo; SPEC items separated by ';':
                              files=N,size=A-B,dirs=XxY,seed=S[,hash=fast|real]
                              file=PATH:SIZE[:seed=N][:safetensors][:hash=fast|real]
  --legacy-lfs TYPE:NS/NAME   the repo's large files are LFS without xet
  --private TYPE:NS/NAME      the repo needs a valid token
  --gated TYPE:NS/NAME        the repo lists but refuses downloads (GatedRepo)
  --alias TYPE:NAME=NS/NAME   legacy one-segment id mapped to a repo
  --tag TYPE:NS/NAME=TAG[@REV]
                              create a tag (at REV, default main)
  --pr TYPE:NS/NAME[@REV]     create refs/pr/N (at REV, default main)
  --bucket NS/NAME[=DIR]      a Storage Bucket, optionally filled from DIR
  --git-max-size SIZE         smaller non-binary files are plain git blobs (default 64K)
  --xorb-size SIZE            raw bytes per xorb when seeding (default 64M)

Auth:
  --token [USER:]TOKEN        a valid user token (repeatable). Without any, every bearer token
                              is accepted and anonymous callers may write
  --require-token             refuse anonymous requests

Realism knobs (also POST /_sim/config at runtime):
  --latency-ms N              delay before every response
  --first-byte-latency-ms N   extra delay before data responses (bridges, xorb ranges)
  --bandwidth RATE            total bytes/s across connections (K/M/G suffixes, e.g. 50M)
  --conn-bandwidth RATE       per-connection bytes/s cap
  --token-ttl S               CAS token lifetime in seconds (default 3600)
  --url-ttl S                 presigned xorb URL lifetime in seconds (default 3600)
  --page-size N               force listing pages of at most N entries
  --no-307                    answer plain git files with 200 on /resolve (default: 307 to
                              /api/resolve-cache, as the Hub)
  --max-ranges-per-fetch N    v2 reconstruction: ranges per presigned URL (default 64)
  --no-v2                     404 on /v2/reconstructions and /v2/shards (v1 fallback)

Observability:
  --log-requests              one line per request on stderr
  --log-level LEVEL           error|warn|info|debug|trace (default warn)
  --help                      this text
  --version                   print the version

Control routes (no auth): GET /_sim/stats, POST /_sim/stats/reset, GET|POST /_sim/config,
GET|POST|DELETE /_sim/faults, POST /_sim/repos/{type}/{ns}/{name}[/commit|/tag|/pr|/flags],
POST /_sim/buckets/{ns}/{name}, PUT|DELETE /_sim/buckets/{ns}/{name}/files/{path}.
)";

struct RepoArg {
  RepoType type;
  std::string id;
  std::string branch;
  std::string dir;
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "hf-mount-hubsim: %s\nTry 'hf-mount-hubsim --help'.\n", msg.c_str());
  return 1;
}

// "TYPE:REST" -> (type, REST)
Result<std::pair<RepoType, std::string>> split_type(std::string_view arg) {
  size_t c = arg.find(':');
  if (c == std::string_view::npos) return make_error(Errc::invalid_argument, fmt::format("'{}' needs TYPE:...", arg));
  HF_ASSIGN_OR_RETURN(auto t, parse_repo_type(arg.substr(0, c)));
  return std::make_pair(t, std::string(arg.substr(c + 1)));
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  std::vector<RepoArg> repos;
  std::vector<std::pair<std::string, std::string>> synthetic;  // key -> spec
  std::vector<std::pair<RepoType, std::string>> legacy, priv, gated;
  std::vector<std::tuple<RepoType, std::string, std::string>> aliases, tags;  // (type, a, b)
  std::vector<std::tuple<RepoType, std::string, std::string>> prs;            // (type, id, rev)
  std::vector<std::pair<std::string, std::string>> buckets;
  std::string gen_tls;
  int other_args = 0;

  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string val;
    bool has_inline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      val = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
    }
    auto next = [&](std::string& out) -> bool {
      if (has_inline) {
        out = val;
        return true;
      }
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    auto need = [&](std::string& out) -> bool { return next(out); };
    std::string v;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("hf-mount-hubsim %s\n", HF_VERSION);
      return 0;
    }
    if (a == "--gen-tls") {
      if (!need(gen_tls)) return usage_error("--gen-tls needs a directory");
      continue;
    }
    ++other_args;
    if (a == "--listen") {
      if (!need(opts.listen)) return usage_error("--listen needs HOST:PORT");
    } else if (a == "--tls-cert") {
      if (!need(opts.tls_cert)) return usage_error("--tls-cert needs a file");
    } else if (a == "--tls-key") {
      if (!need(opts.tls_key)) return usage_error("--tls-key needs a file");
    } else if (a == "--public-url") {
      if (!need(opts.public_url)) return usage_error("--public-url needs a URL");
    } else if (a == "--threads") {
      if (!need(v) || !parse_u64(v) || *parse_u64(v) > 256) return usage_error("--threads needs a number");
      opts.threads = static_cast<unsigned>(*parse_u64(v));
    } else if (a == "--data-dir") {
      if (!need(opts.data_dir)) return usage_error("--data-dir needs a directory");
    } else if (a == "--gc-grace") {
      if (!need(v) || !parse_u64(v) || *parse_u64(v) > UINT32_MAX) return usage_error("--gc-grace needs a number of seconds");
      opts.gc_grace_s = static_cast<uint32_t>(*parse_u64(v));
    } else if (a == "--repo") {
      if (!need(v)) return usage_error("--repo needs TYPE:NS/NAME=DIR");
      auto tr = split_type(v);
      size_t eq = tr.ok() ? tr->second.find('=') : std::string::npos;
      if (eq == std::string::npos) return usage_error("--repo needs TYPE:NS/NAME=DIR, got '" + v + "'");
      RepoArg r{tr->first, tr->second.substr(0, eq), "main", tr->second.substr(eq + 1)};
      if (size_t at = r.id.find('@'); at != std::string::npos) {
        r.branch = r.id.substr(at + 1);
        r.id = r.id.substr(0, at);
      }
      repos.push_back(std::move(r));
    } else if (a == "--synthetic") {
      if (!need(v)) return usage_error("--synthetic needs TYPE:NS/NAME=SPEC");
      size_t eq = v.find('=');
      if (eq == std::string::npos || !split_type(v.substr(0, eq)).ok())
        return usage_error("--synthetic needs TYPE:NS/NAME=SPEC, got '" + v + "'");
      synthetic.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (a == "--legacy-lfs" || a == "--private" || a == "--gated") {
      if (!need(v)) return usage_error(a + " needs TYPE:NS/NAME");
      auto tr = split_type(v);
      if (!tr.ok()) return usage_error(tr.error().message);
      (a == "--legacy-lfs" ? legacy : a == "--private" ? priv : gated).push_back(tr.value());
    } else if (a == "--alias" || a == "--tag") {
      if (!need(v)) return usage_error(a + " needs TYPE:X=Y");
      auto tr = split_type(v);
      size_t eq = tr.ok() ? tr->second.find('=') : std::string::npos;
      if (eq == std::string::npos) return usage_error(a + " needs TYPE:X=Y, got '" + v + "'");
      (a == "--alias" ? aliases : tags).emplace_back(tr->first, tr->second.substr(0, eq), tr->second.substr(eq + 1));
    } else if (a == "--pr") {
      if (!need(v)) return usage_error("--pr needs TYPE:NS/NAME[@REV]");
      auto tr = split_type(v);
      if (!tr.ok()) return usage_error(tr.error().message);
      std::string id = tr->second, rev = "main";
      if (size_t at = id.find('@'); at != std::string::npos) {
        rev = id.substr(at + 1);
        id = id.substr(0, at);
      }
      prs.emplace_back(tr->first, id, rev);
    } else if (a == "--bucket") {
      if (!need(v)) return usage_error("--bucket needs NS/NAME[=DIR]");
      size_t eq = v.find('=');
      buckets.emplace_back(v.substr(0, eq), eq == std::string::npos ? "" : v.substr(eq + 1));
    } else if (a == "--token") {
      if (!need(v) || v.empty()) return usage_error("--token needs a value");
      opts.tokens.push_back(v);
    } else if (a == "--require-token") {
      opts.require_token = true;
    } else if (a == "--git-max-size" || a == "--xorb-size") {
      if (!need(v) || !parse_size(v)) return usage_error(a + " needs a size");
      if (a == "--git-max-size") opts.git_max_size = *parse_size(v);
      else opts.xorb_target_bytes = static_cast<uint32_t>(std::min<uint64_t>(*parse_size(v), 64u << 20));
    } else if (a == "--bandwidth" || a == "--conn-bandwidth") {
      if (!need(v) || !parse_size(v)) return usage_error(a + " needs a rate such as 50M");
      (a == "--bandwidth" ? opts.knobs.bandwidth : opts.knobs.conn_bandwidth) = *parse_size(v);
    } else if (a == "--latency-ms" || a == "--first-byte-latency-ms" || a == "--token-ttl" || a == "--url-ttl" ||
               a == "--page-size" || a == "--max-ranges-per-fetch") {
      if (!need(v) || !parse_u64(v) || *parse_u64(v) > UINT32_MAX) return usage_error(a + " needs a number");
      uint32_t n = static_cast<uint32_t>(*parse_u64(v));
      if (a == "--latency-ms") opts.knobs.latency_ms = n;
      else if (a == "--first-byte-latency-ms") opts.knobs.first_byte_latency_ms = n;
      else if (a == "--token-ttl") opts.knobs.token_ttl_s = n;
      else if (a == "--url-ttl") opts.knobs.url_ttl_s = n;
      else if (a == "--page-size") opts.knobs.page_size = n;
      else if (n > 0) opts.knobs.max_ranges_per_fetch = n;
      else return usage_error("--max-ranges-per-fetch must be positive");
    } else if (a == "--no-307") {
      opts.knobs.resolve_307 = false;
    } else if (a == "--no-v2") {
      opts.knobs.v2_reconstructions = false;
      opts.knobs.v2_shards = false;
    } else if (a == "--log-requests") {
      opts.log_requests = true;
    } else if (a == "--log-level") {
      if (!need(v)) return usage_error("--log-level needs a level");
      auto l = log::parse_level(v);
      if (!l.ok()) return usage_error(l.error().message);
      log::set_level(l.value());
    } else {
      return usage_error("unknown option '" + a + "'");
    }
  }

  if (!gen_tls.empty()) {
    auto st = generate_test_tls(gen_tls);
    if (!st.ok()) {
      std::fprintf(stderr, "hf-mount-hubsim: %s\n", st.error().message.c_str());
      return 1;
    }
    if (other_args == 0) return 0;
    if (opts.tls_cert.empty() && opts.tls_key.empty()) {
      opts.tls_cert = gen_tls + "/cert.pem";
      opts.tls_key = gen_tls + "/key.pem";
    }
  }

  auto flags_for = [&](RepoType t, const std::string& id) {
    RepoFlags f;
    auto has = [&](const std::vector<std::pair<RepoType, std::string>>& v) {
      for (const auto& [vt, vid] : v)
        if (vt == t && vid == id) return true;
      return false;
    };
    f.legacy_lfs = has(legacy);
    f.is_private = has(priv);
    f.gated = has(gated);
    return f;
  };
  auto fail = [](const std::string& what, const Error& e) {
    std::fprintf(stderr, "hf-mount-hubsim: %s: %s\n", what.c_str(), e.message.c_str());
    return 1;
  };

  Server server(opts);
  std::map<std::string, bool> created;
  for (const auto& r : repos) {
    std::string key = fmt::format("{}:{}", repo_type_name(r.type), r.id);
    if (!created[key]) {
      created[key] = true;
      auto st = server.add_repo_from_dir(r.type, r.id, r.dir, flags_for(r.type, r.id));
      if (!st.ok()) return fail("--repo " + r.id, st.error());
      if (r.branch != "main") {
        CommitRequest cr;
        cr.branch = r.branch;
        cr.parent_revision = "main";
        cr.message = "Create branch " + r.branch;
        auto c = server.commit(r.type, r.id, cr);
        if (!c.ok()) return fail("--repo " + r.id, c.error());
      }
      continue;
    }
    // A later --repo for the same repo: a commit replacing all files.
    CommitRequest cr;
    cr.branch = r.branch;
    cr.replace_all = true;
    cr.message = "Replace files from " + r.dir;
    auto files = read_dir_files(r.dir);
    if (!files.ok()) return fail("--repo " + r.id, files.error());
    cr.add = std::move(files).value();
    auto c = server.commit(r.type, r.id, cr);
    if (!c.ok()) return fail("--repo " + r.id, c.error());
  }
  for (const auto& [key, spec] : synthetic) {
    auto tr = split_type(key).value();
    auto st = server.add_synthetic_repo(tr.first, tr.second, spec, flags_for(tr.first, tr.second));
    if (!st.ok()) return fail("--synthetic " + tr.second, st.error());
  }
  for (const auto& [t, alias, canonical] : aliases) {
    auto st = server.add_alias(t, alias, canonical);
    if (!st.ok()) return fail("--alias " + alias, st.error());
  }
  for (const auto& [t, id, tagrev] : tags) {
    std::string tag = tagrev, rev = "main";
    if (size_t at = tag.find('@'); at != std::string::npos) {
      rev = tag.substr(at + 1);
      tag = tag.substr(0, at);
    }
    auto st = server.create_tag(t, id, tag, rev);
    if (!st.ok()) return fail("--tag " + id, st.error());
  }
  for (const auto& [t, id, rev] : prs) {
    auto n = server.create_pr(t, id, rev);
    if (!n.ok()) return fail("--pr " + id, n.error());
  }
  // Flags for repos given only through --private/--gated after creation.
  for (const auto& [t, id] : priv) (void)server.set_repo_flags(t, id, flags_for(t, id));
  for (const auto& [t, id] : gated) (void)server.set_repo_flags(t, id, flags_for(t, id));

  // Block the stop signals in every thread (the io threads inherit the mask); the main thread
  // waits for them with sigwait.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto st = server.start();
  if (!st.ok()) return fail("cannot start", st.error());
  for (const auto& [id, dir] : buckets) {
    auto bs = server.add_bucket(id, dir);
    if (!bs.ok() && bs.code() != Errc::exists) return fail("--bucket " + id, bs.error());
  }
  std::printf("listening on %s\n", server.listen_url().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  return 0;
}
