// The in-memory inode table of one mount: nodes, directory children, kernel lookup counts.
//
// Inode numbers are deterministic: XXH3-64 of the node's path relative to the mount root
// (rehashed with a counter on the rare collision), so the same path gets the same number in
// every mount of the same view, and a persistent store can reproduce them.
//
// nlookup follows the FUSE contract: every entry handed to the kernel (lookup, readdirplus,
// create, ...) adds one; forget(n) subtracts n. A node removed from its directory (remote
// change, unlink) stays reachable by inode number while nlookup > 0 ("orphan") and is freed at
// the forget that drops it to zero. A forget beyond the count is a bug: it is logged and the
// count clamped at zero (the kernel then gets ENOENT for that inode) rather than taking the whole
// mount down.
//
// Thread-safety: every member is safe to call concurrently (one internal shared_mutex; readers
// share it). Results are copies; no pointer into the table escapes. The table takes no other
// lock while holding its own, so callers may hold their own locks when calling in.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include "base/result.h"
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/node.h"

namespace hf::fs {

struct InodeTableOptions {
  uint32_t uid = 0, gid = 0;
  uint32_t file_perm = 0444, dir_perm = 0555;
  int64_t default_mtime_ns = 0;  // for entries without their own mtime (repo lastModified)
};

// One entry of a directory listing, as the core feeds it to the table.
struct ListedEntry {
  std::string name;  // a single valid path component
  NodeKind kind = NodeKind::file;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // 0 = use the default
  Content content;
  std::string symlink_target;
};

struct DirSnapshotEntry {
  std::string name;
  Attr attr;
};
// An immutable, name-sorted view of a listed directory. readdir serves offsets into it, so a
// handle keeps reading a consistent list even if the directory changes meanwhile.
struct DirSnapshot {
  uint64_t dir_ino = 0;
  uint64_t parent_ino = 0;
  std::vector<DirSnapshotEntry> entries;
};

// What a re-listing changed (the FS uses it to invalidate kernel caches).
struct ListingDiff {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<uint64_t> changed;  // inodes whose content or size changed
  bool skipped = false;           // not applied: the directory changed locally meanwhile
};

class InodeTable {
 public:
  explicit InodeTable(InodeTableOptions opts);

  std::optional<NodeInfo> get(uint64_t ino) const;

  enum class ChildState { found, absent, unknown };
  struct ChildLookup {
    ChildState state = ChildState::unknown;  // unknown: the directory has not been listed
    NodeInfo info;                           // valid when found
  };
  ChildLookup lookup(uint64_t parent, std::string_view name) const;
  // lookup() that also counts one kernel reference to the child it finds, under one lock: the
  // (name -> inode) pair handed to the kernel is current at that instant. A separate lookup and
  // add_lookup could hand out a node renamed, replaced or removed in between, and the kernel
  // would then resolve the name to the wrong file (or to an orphan) for entry_timeout.
  ChildLookup lookup_counted(uint64_t parent, std::string_view name);

  bool is_dir(uint64_t ino) const;
  bool is_listed(uint64_t dir) const;

  // Sets the complete child list of `dir` (which must exist and be a directory). Children that
  // keep their name and kind keep their inode number; their attributes are updated.
  // `listed_since`: the epoch() read before the listing was requested. If the directory changed
  // locally after it (a commit, create, rename... that the listing may predate), nothing is
  // applied and diff.skipped is set: a stale listing must not undo a change made meanwhile.
  ListingDiff apply_listing(uint64_t dir, std::vector<ListedEntry> entries, uint64_t listed_since = UINT64_MAX);
  // Counter of local changes (create, remove, rename, set_local/size/content/meta).
  uint64_t epoch() const;
  // A local change of `dir`'s children is in progress (e.g. a rename committed remotely before
  // it is applied here): listings of `dir` are not applied until the matching end, which also
  // counts as a local change. Unknown inodes are ignored.
  void begin_local_change(uint64_t dir);
  void end_local_change(uint64_t dir);

  // False (and nothing counted) if the inode no longer exists: the caller must then not hand
  // it to the kernel.
  bool add_lookup(uint64_t ino, uint64_t n = 1);
  // True if this freed the node (an orphan's last reference): its inode number may be reused.
  bool forget(uint64_t ino, uint64_t n);

  // Snapshot of a listed directory (nullptr if not a listed directory).
  std::shared_ptr<const DirSnapshot> snapshot(uint64_t dir) const;

  // Path relative to the mount root ("" for the root, "a/b" otherwise). nullopt for unknown
  // or orphaned nodes.
  std::optional<std::string> path(uint64_t ino) const;

  // Number of live nodes and of directories that are listed.
  size_t size() const;
  size_t listed_dirs() const;

  // Changes the default mtime used for entries without their own (e.g. after a revision
  // switch); affects nodes created afterwards.
  void set_default_mtime(int64_t ns);

  // ---- Local changes (bucket mounts). A node marked `local` (created here and not yet
  // committed, a directory made here, or a file with uncommitted changes) is never removed or
  // overwritten by a re-listing: local changes win until they are committed.
  struct NewNode {
    NodeKind kind = NodeKind::file;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    Content content;
    std::string symlink_target;
    uint32_t perm = 0;  // 0 = the mount default
  };
  // Adds `name` under `parent`. Errc::exists if taken, not_dir / not_found for a bad parent.
  // `nlookup`: kernel references the node starts with (1 when the entry is handed to the
  // kernel: counted under the same lock as the insertion, so no rename, unlink or relisting
  // can remove it uncounted in between).
  Result<NodeInfo> create(uint64_t parent, std::string_view name, const NewNode& n, bool local, uint64_t nlookup = 0);
  // Removes `name` from `parent` (the node lives on as an orphan while the kernel knows it).
  Result<NodeInfo> remove(uint64_t parent, std::string_view name);
  // Moves a node; an existing target is replaced (and orphaned). Errc::exists with
  // no_replace; is_dir / not_dir / not_empty on kind mismatches like rename(2).
  Status rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                bool no_replace);
  void set_local(uint64_t ino, bool local);
  bool is_local(uint64_t ino) const;
  void set_size(uint64_t ino, uint64_t size, int64_t mtime_ns);
  // An orphan whose content is local keeps it (see set_written): a commit that finishes after
  // the node lost its name must not put a remote hash back.
  void set_content(uint64_t ino, const Content& c, uint64_t size, int64_t mtime_ns);
  // The file's bytes changed locally (write, truncate; mtime_ns 0 = unchanged): sets the size
  // and marks it local. An orphan (unlinked or renamed over while open) can never be committed,
  // so its content also becomes `staged` (Source::local): a remote hash with a size the writes
  // moved would make a reader ask that content for bytes it never had. Checked and set under
  // one lock, so a node orphaned concurrently never keeps remote content with a local size.
  void set_written(uint64_t ino, uint64_t size, int64_t mtime_ns, const Content& staged);
  // chmod/chown/utimes: nullopt leaves a field unchanged.
  void set_meta(uint64_t ino, std::optional<uint32_t> perm, std::optional<uint32_t> uid, std::optional<uint32_t> gid,
                std::optional<int64_t> mtime_ns);
  // Every listed directory (for relisting after a remote change), parents before children.
  std::vector<uint64_t> listed_directories() const;
  // Files below a directory (recursively, loaded part of the tree only), as (ino, relative path).
  std::vector<std::pair<uint64_t, std::string>> files_below(uint64_t dir) const;

 private:
  // Content as a node stores it: the etag (40 or 64 lowercase hex digits in practice) as bytes
  // in place instead of a heap string. A million-entry tree spends ~70 bytes less per entry.
  struct PackedContent {
    Content::Source source = Content::Source::empty;
    uint8_t etag_bytes = 0;  // binary etag length; 0 with etag_text null = no etag
    uint32_t rev = 0;
    std::array<uint8_t, 32> id{};
    std::array<uint8_t, 32> etag_bin{};
    std::unique_ptr<std::string> etag_text;  // any etag that is not lowercase hex of <= 32 bytes

    PackedContent& operator=(const Content& c);
    Content unpack() const;
    bool same_as(const Content& c) const { return source == c.source && id == c.id; }
  };
  // A string that is almost always empty (symlink targets): 8 bytes instead of 32.
  struct RareText {
    std::unique_ptr<std::string> text;
    RareText& operator=(const std::string& s) {
      text = s.empty() ? nullptr : std::make_unique<std::string>(s);
      return *this;
    }
    std::string str() const { return text ? *text : std::string(); }
    bool operator==(const std::string& s) const { return text ? *text == s : s.empty(); }
    size_t size() const { return text ? text->size() : 0; }
  };

  struct Node;
  // Orders a directory's children by their own names (no second copy of each name) and finds
  // them by a string_view.
  struct ByName {
    using is_transparent = void;
    bool operator()(const Node* a, const Node* b) const { return a->name < b->name; }
    bool operator()(const Node* a, std::string_view b) const { return std::string_view(a->name) < b; }
    bool operator()(std::string_view a, const Node* b) const { return a < std::string_view(b->name); }
  };
  // What only directories have, out of line: a file node does not carry an empty map.
  // Children point into nodes_ (stable); a node is taken out of its parent's set (detach_locked)
  // before it is renamed or freed, and its name never changes while it is in a set.
  struct DirState {
    std::set<Node*, ByName> children;
    // The snapshot open handles share; reset when children change. Weak: a walk over a big
    // tree would otherwise keep a copy of every listed entry (88 bytes each) after its
    // handles are closed; the next first readdir rebuilds it (one pass over the children).
    std::weak_ptr<const DirSnapshot> snap;
    uint64_t changed_epoch = 0;  // the last local change among the children
    uint32_t subdirs = 0;
    uint32_t busy = 0;  // local changes in progress
  };

  // Fields ordered to pack (8-byte members first): a million-entry tree holds a million nodes.
  struct Node {
    uint64_t ino = 0;
    uint64_t parent = 0;  // 0 = orphan (removed from its directory)
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t nlookup = 0;
    std::string name;
    PackedContent content;
    RareText symlink_target;
    std::unique_ptr<DirState> dir;  // directories only, allocated on first change
    uint32_t perm = 0;                            // 0 = default for the kind
    uint32_t uid = UINT32_MAX, gid = UINT32_MAX;  // UINT32_MAX = mount default
    NodeKind kind = NodeKind::file;
    bool listed = false;
    bool local = false;

    // Reading: an empty state for files and for directories that never had children.
    const DirState& dirs() const { return dir ? *dir : kNoDirState; }
    // Changing: allocates the state (call it on directories only).
    DirState& dirs_mut() {
      if (!dir) dir = std::make_unique<DirState>();
      return *dir;
    }
  };
  static const DirState kNoDirState;

  Attr attr_of(const Node& n) const;
  NodeInfo info_of(const Node& n) const;
  std::string path_locked(const Node& n) const;
  uint64_t allocate_ino(const std::string& path) const;
  void detach_locked(Node& child);      // remove from parent's children
  // The child `name` of directory `parent`, or nullptr with the reason in *state.
  Node* child_locked(uint64_t parent, std::string_view name, ChildState* state) const;
  void touch_locked(uint64_t dir_ino);  // a local change in this directory (see apply_listing)
  // A child's attributes changed: its directory's snapshot is stale and it changed locally.
  void attrs_changed_locked(const Node& child);
  void maybe_free_locked(uint64_t ino);  // free an orphan (and orphaned subtree) at nlookup 0

  InodeTableOptions opts_;
  mutable std::shared_mutex mu_;
  // Nodes by value (references stay valid across rehashing): a pointer and an allocation
  // less per entry than unique_ptr<Node>. Mutable as the unique_ptrs were: const helpers
  // (child_locked, snapshot's cache) hand out nodes that callers change under the unique lock.
  mutable std::unordered_map<uint64_t, Node> nodes_;
  size_t listed_dirs_ = 0;
  uint64_t epoch_ = 0;  // under mu_
};

// True if `name` may appear as a directory entry: non-empty, not "." or "..", no '/' or NUL,
// at most 255 bytes. Server-provided names failing this are skipped, never served.
bool valid_entry_name(std::string_view name);

}  // namespace hf::fs
