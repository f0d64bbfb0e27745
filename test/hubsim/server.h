// hf-mount-hubsim: a local emulator of the Hugging Face Hub HTTP API (repos, Storage Buckets)
// and of the Xet CAS (reconstructions, presigned xorb ranges, xorb/shard uploads, global
// dedup), for tests, benchmarks and offline trials. See /work/shared/spec/hub-api.md and
// xet-protocol.md for the wire contract it reproduces.
//
// Usage in a test:
//   hf::hubsim::Options o;                       // 127.0.0.1:0, plain HTTP
//   hf::hubsim::Server srv(o);
//   srv.add_repo(RepoType::model, "acme/tiny", {{"config.json", "{}"}, ...});
//   REQUIRE(srv.start().ok());
//   ... HF_ENDPOINT = srv.base_url() ...
//   srv.stop();                                  // also done by the destructor
//
// The CAS lives on the same listener under the path prefix "/cas" (cas_url()); clients must
// treat it as opaque. Presigned xorb URLs are {base}/_xorb/default/{hash}?X-Xet-Signed-Range=...
//
// Thread-safety: every public member may be called from any thread, before or after start(),
// concurrently with requests being served. Seeding calls (add_repo, commit, bucket_put...) are
// atomic with respect to requests: a request sees the state before or after, never half of it.
// Errors are returned as Status/Result; nothing throws.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "test/hubsim/knobs.h"

namespace hf::hubsim {

enum class RepoType { model, dataset, space };
std::string_view repo_type_name(RepoType t);    // "model"
std::string_view repo_type_plural(RepoType t);  // "models"
// Accepts "model", "models", "dataset", "datasets", "space", "spaces".
Result<RepoType> parse_repo_type(std::string_view s);

struct RepoFlags {
  bool is_private = false;  // visible only with a valid user token
  bool gated = false;       // listing allowed; resolve and xet-read-token refused (GatedRepo)
  bool legacy_lfs = false;  // large files are LFS-without-xet (302 to /_cdn/lfs/{sha256})
};

// One file of a commit: inline bytes, or a synthetic spec "SIZE[:seed=N][:safetensors]"
// (e.g. "2G:seed=7") whose bytes are generated on demand.
struct FileSpec {
  std::string path;
  std::string bytes;
  std::string synthetic;
};

struct CommitRequest {
  std::string branch = "main";
  std::string message;            // default "Update files"
  std::vector<FileSpec> add;      // added or replaced
  std::vector<std::string> remove;
  // Create the branch from `parent_revision` (default: the current head of `branch`, or of
  // "main" when `branch` does not exist yet).
  std::string parent_revision;
  // Start from an empty tree instead of the parent's files (the commit holds exactly `add`).
  bool replace_all = false;
};

// Reads every regular file under `dir` (recursively, skipping .git directories and symlinks)
// as FileSpecs with paths relative to `dir`, sorted by path.
Result<std::vector<FileSpec>> read_dir_files(const std::string& dir);

struct Options {
  std::string listen = "127.0.0.1:0";  // HOST:PORT, port 0 = choose
  std::string tls_cert, tls_key;       // PEM files; both set = HTTPS
  std::string public_url;              // base URL advertised in Link/Location (default from listen)
  unsigned threads = 0;                // io threads, 0 = max(2, hardware_concurrency)
  std::string data_dir;                // persistence of uploaded xorbs/shards/buckets ("" = none)
  uint64_t git_max_size = 64 * 1024;   // smaller non-binary files are plain git blobs
  // Valid user tokens as "TOKEN" or "USER:TOKEN". Empty: any bearer token is accepted (user
  // "hubsim") and anonymous callers may write.
  std::vector<std::string> tokens;
  bool require_token = false;          // refuse anonymous requests
  bool log_requests = false;           // one line per request on stderr
  uint32_t xorb_target_bytes = 64u << 20;  // packing limit when seeding (raw bytes per xorb)
  // Garbage collection of uploads: uploaded files no tree references and xorbs no file
  // references are removed once unused for this long (0 = keep everything, the default).
  uint32_t gc_grace_s = 0;
  Knobs knobs;
};

class Server {
 public:
  explicit Server(Options opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, loads --data-dir state, starts the io threads. Fails (Errc::network, Errc::tls,
  // Errc::io) without leaving threads behind.
  Status start();
  // Closes the listener and every connection, joins the threads. Idempotent.
  void stop();

  std::string base_url() const;  // "http://127.0.0.1:PORT" or --public-url (valid after start())
  std::string listen_url() const;  // scheme://host:port actually listened on
  std::string cas_url() const;   // base_url() + "/cas"
  uint16_t port() const;

  // ---- Seeding (see the class comment for atomicity) ----
  // A repo from in-memory files (one initial commit on "main").
  Status add_repo(RepoType type, std::string_view id, std::vector<FileSpec> files, RepoFlags flags = {});
  // A repo from a local directory (recursively; dot-directories like .git are skipped).
  Status add_repo_from_dir(RepoType type, std::string_view id, const std::string& dir, RepoFlags flags = {});
  // A synthetic repo: SPEC is a ';'-separated list of "files=N,size=A-B,dirs=XxY,seed=S" and
  // "file=PATH:SIZE[:seed=N][:safetensors]" items (see synthetic.h).
  Status add_synthetic_repo(RepoType type, std::string_view id, std::string_view spec, RepoFlags flags = {});
  // Legacy one-segment id ("gpt2") mapped to a canonical "ns/name".
  Status add_alias(RepoType type, std::string_view alias, std::string_view canonical_id);
  Status set_repo_flags(RepoType type, std::string_view id, RepoFlags flags);
  // New commit; returns its 40-hex sha.
  Result<std::string> commit(RepoType type, std::string_view id, const CommitRequest& req);
  Status create_tag(RepoType type, std::string_view id, std::string_view tag, std::string_view revision);
  // Creates refs/pr/N pointing at `revision`; returns N.
  Result<uint64_t> create_pr(RepoType type, std::string_view id, std::string_view revision);
  // Head commit sha of a revision.
  Result<std::string> resolve_revision(RepoType type, std::string_view id, std::string_view revision) const;

  Status add_bucket(std::string_view id, const std::string& dir = "", bool is_private = false);
  // Chunks, packs and registers `bytes` in the CAS, then sets `path` (a "remote change").
  Status bucket_put(std::string_view id, std::string_view path, std::string bytes, int64_t mtime_ms = -1);
  Status bucket_delete(std::string_view id, std::string_view path);
  // Registers `bytes` as a xet file in the CAS; returns its file hash (xet-hex).
  Result<std::string> cas_put(std::string bytes);

  // ---- Knobs, faults, stats ----
  Knobs knobs() const;
  void set_knobs(const Knobs& k);
  void set_faults(std::vector<FaultRule> rules);
  void clear_faults();
  std::string stats_json() const;
  uint64_t requests(std::string_view route) const;
  uint64_t bytes_in(std::string_view route) const;  // request body bytes received on a route
  uint64_t status_count(int status) const;
  uint64_t faults_injected() const;
  void reset_stats();

  // ---- Hostile-server mode (tests of untrusted input) ----
  // Called after routing with the request and the response the emulator built; it may rewrite
  // the response in any way (status, headers, body: e.g. crafted listings, oversized bodies,
  // redirects to other hosts). Runs on the io threads, concurrently: it must be thread-safe.
  // Faults and knobs still apply to the rewritten response. An empty function removes it.
  using Interceptor = std::function<void(const Request& req, Response& resp)>;
  void set_interceptor(Interceptor f);

  // The in-process core (for the network layer).
  class Core;

 private:
  class Net;
  std::unique_ptr<Core> core_;
  std::unique_ptr<Net> net_;
};

}  // namespace hf::hubsim
