// In-memory model of git-backed Hub repositories (commits, trees with git object ids,
// branches/tags/PR refs) and of Storage Buckets. Pure data structures: no locking here; the
// Core guards them with its state lock (see core.h).
//
// Commits and snapshots are immutable once built and shared through shared_ptr, so a request can
// keep using a snapshot after the lock is released even if a branch moves meanwhile.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "test/hubsim/body.h"
#include "test/hubsim/server.h"

namespace hf::hubsim {

// SHA-1 of `data` (lowercase hex), the git object hash.
std::string sha1_hex(std::string_view data);
// git blob id of `content`: sha1("blob {n}\0" + content).
std::string git_blob_oid(std::string_view content);
std::string git_blob_oid(const ByteSource& content);
// The LFS pointer file text for a large file.
std::string lfs_pointer(std::string_view sha256_hex, uint64_t size);

enum class FileKind { git, lfs, xet };

struct FileNode {
  FileKind kind = FileKind::git;
  uint64_t size = 0;
  std::string git_oid;     // sha1 hex of the blob (of the pointer file for lfs/xet)
  std::string sha256;      // hex, lfs/xet only
  std::string xet_hash;    // xet-hex, xet only
  uint32_t pointer_size = 0;  // lfs/xet: size of the pointer file
  // Bytes for git/lfs files and synthetic xet files (the bridge serves them directly); null for
  // xet files whose bytes are reconstructed from the CAS.
  SourcePtr content;
};
using FileNodePtr = std::shared_ptr<const FileNode>;

struct CommitInfo {
  std::string sha;     // 40 hex
  std::string parent;  // 40 hex or empty
  std::string title;
  int64_t date_ns = 0;
};
using CommitInfoPtr = std::shared_ptr<const CommitInfo>;

struct TreeEntry {
  std::string path;  // full path, no leading '/'
  bool is_dir = false;
  std::string oid;   // git blob or tree sha1 hex
  FileNodePtr file;  // null for directories
  CommitInfoPtr last_commit;  // last commit that changed this entry
};

// All entries (files and directories) of one commit.
class Snapshot {
 public:
  // Builds the tree of `files` (path -> node). `parent` (may be null) provides last_commit
  // inheritance for unchanged entries; `commit` is the commit being built (its sha may still
  // be empty: it is patched by the caller once root_oid() is known).
  static std::shared_ptr<Snapshot> build(const std::map<std::string, FileNodePtr>& files,
                                         const Snapshot* parent, const CommitInfoPtr& commit);

  const std::vector<TreeEntry>& entries() const { return entries_; }
  const TreeEntry* find(std::string_view path) const;
  // Index range [begin, end) of entries strictly under directory `dir` ("" = root).
  std::pair<size_t, size_t> subtree(std::string_view dir) const;
  // Indices of the direct children of `dir`, sorted by path; null if `dir` is not a directory.
  const std::vector<uint32_t>* children(std::string_view dir) const;
  const std::string& root_oid() const { return root_oid_; }
  uint64_t total_size() const { return total_size_; }
  // The files of this snapshot (for building the next commit).
  std::map<std::string, FileNodePtr> files() const;

 private:
  std::vector<TreeEntry> entries_;
  std::unordered_map<std::string, std::vector<uint32_t>> children_;
  std::string root_oid_;
  uint64_t total_size_ = 0;
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

struct Commit {
  CommitInfoPtr info;
  SnapshotPtr snap;
};
using CommitPtr = std::shared_ptr<const Commit>;

// Builds a commit object: computes the tree, then the git commit sha (tree, parent, fixed
// author, date, message), and re-points the snapshot's last_commit pointers at the final info.
CommitPtr make_commit(const std::map<std::string, FileNodePtr>& files, const CommitPtr& parent,
                      std::string title, int64_t date_ns);

struct Repo {
  RepoType type = RepoType::model;
  std::string id;      // "ns/name"
  std::string mongo_id;  // 24 hex, the "_id" field
  RepoFlags flags;
  int64_t created_ns = 0;
  std::unordered_map<std::string, CommitPtr> commits;  // sha -> commit
  std::map<std::string, std::string> branches;  // name -> sha
  std::map<std::string, std::string> tags;      // name -> sha
  std::vector<std::string> prs;                 // refs/pr/(i+1) -> sha

  // Resolves a decoded revision: branch, tag, refs/heads/X, refs/tags/X, refs/pr/N, 40-hex sha,
  // or "HEAD" (= main). Null when unknown.
  CommitPtr resolve(std::string_view rev) const;
  CommitPtr head() const;  // main, or the first branch
  int64_t last_modified_ns() const;
};

// Path validation shared by repos and buckets: non-empty, no leading/trailing '/', no empty,
// "." or ".." components, no NUL, at most 4096 bytes.
Status validate_repo_path(std::string_view path);

struct BucketFile {
  uint64_t size = 0;
  std::string xet_hash;
  int64_t mtime_ms = -1;  // -1 = not given
  int64_t uploaded_ns = 0;
  std::string content_type;
};

struct Bucket {
  std::string id;
  std::string mongo_id;
  bool is_private = false;
  int64_t created_ns = 0;
  int64_t updated_ns = 0;
  std::map<std::string, BucketFile, std::less<>> files;
  uint64_t total_size = 0;

  void put(const std::string& path, BucketFile f);
  bool erase(std::string_view path);
};

// One entry of a bucket listing.
struct BucketListEntry {
  bool is_dir = false;
  std::string path;
  const BucketFile* file = nullptr;  // files only; points into the bucket (valid under its lock)
  int64_t uploaded_ns = 0;
};

// Bucket tree listing with the Hub's raw-prefix matching (hub-api §7.2). Resumes after
// `cursor_key` (the opaque cursor's decoded value; "" = from the start) and returns at most
// `limit` entries plus the cursor key to resume from, or "" when nothing follows.
struct BucketListPage {
  std::vector<BucketListEntry> entries;
  std::string next_key;
};
BucketListPage list_bucket(const Bucket& b, std::string_view prefix, bool recursive,
                           std::string_view cursor_key, size_t limit);

}  // namespace hf::hubsim
