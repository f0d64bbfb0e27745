// The filesystem core: every FUSE operation's semantics, without libfuse.
//
// The FUSE layer (fs/fuse/) calls a *_fast method first, on the FUSE worker thread; it answers
// from memory (or the local disk cache) and returns nullopt when the operation needs the
// network. The layer then runs the coroutine variant on the io executor and replies from its
// completion, so a FUSE thread never waits for the network.
//
// Errors are Result values with an Errc; the FUSE layer maps them to errno in one place.
//
// Thread-safety: all members are safe to call concurrently. Lock order: Vfs::mu_ (handles,
// readers, flights) -> InodeTable's lock -> FileReader::mu_ -> ChunkCache locks. No lock is
// held across a co_await.
//
// Lifetime: the Vfs starts coroutines of its own (listings, prefetch, background commits, the
// poller). shutdown() cancels them all (and every reader's fetches) so that they finish soon;
// the io threads must have finished (or been stopped and joined) before the Vfs is destroyed,
// as fs::Mount does.
#pragma once

#include <utility>  // before asio

#include <boost/asio/any_io_executor.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <set>
#include <vector>

#include "base/async.h"
#include "base/async_mutex.h"
#include "base/cancel.h"
#include "base/result.h"
#include "fs/chunk_cache.h"
#include "fs/file_reader.h"
#include "fs/inode_table.h"
#include "fs/meta_store.h"
#include "fs/remote.h"
#include "fs/staged_file.h"

namespace hf::fs {

struct VfsConfig {
  std::string source;         // canonical hf:// source, for user.hf.source
  bool read_only = true;
  bool pinned = false;        // revision is a commit sha: the tree can never change
  double entry_timeout = 60;  // seconds (kernel dentry/attr cache); pinned views use ~forever
  double attr_timeout = 60;
  double negative_timeout = 60;
  InodeTableOptions table;
  ReaderConfig reader;
  size_t reader_cache = 256;  // readers kept alive after their last handle closes
  // Write side (bucket mounts).
  std::string staging_dir;          // where StagedFiles live (inside the cache directory)
  bool filter_os_junk = true;       // .DS_Store, ._*, Thumbs.db...: kept local, never uploaded
  int commit_attempts = 4;          // per flush/fsync, with exponential backoff
  // writeback=async: close()/fsync() return once the data is durable locally (staging file
  // fsynced, journal entry written with sync=true); uploads continue in the background,
  // retried until they succeed, and resume at the next mount after a crash.
  bool async_writeback = false;
  int commit_retry_base_ms = 250;
  // writeback=async: small files closed in a burst share one upload session and one batch: a
  // group is sent once no file arrived for group_gather_ms, after group_max_wait_ms at most, or
  // when it holds group_max_files.
  int group_gather_ms = 50;
  int group_max_wait_ms = 1000;
  size_t group_max_files = 500;
  xet::UploadOptions upload;
};

// Kernel cache invalidations the core asks for. The FUSE layer executes them on a dedicated
// thread: the kernel may block these calls on page locks held by reads that wait for this very
// process, so they must never run on a FUSE worker or an io thread (hf-mount #156, #195).
struct Invalidation {
  enum class Kind { inode_pages, inode_attrs, entry } kind = Kind::inode_attrs;
  uint64_t ino = 0;     // inode, or parent for entries
  std::string name;     // entries
};
using Invalidator = std::function<void(std::vector<Invalidation>)>;

// setattr request (the FUSE layer translates FUSE_SET_ATTR_* into this).
struct SetAttrIn {
  std::optional<uint64_t> size;
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid, gid;
  std::optional<int64_t> mtime_ns;  // already resolved for UTIME_NOW
};

// True for names that operating systems sprinkle around (Finder, Explorer): they are kept in
// the mount but never uploaded.
bool is_os_junk(std::string_view name);

struct EntryOut {
  Attr attr;  // attr.ino == 0: negative entry (cache "does not exist" for entry_timeout)
  double entry_timeout = 0;
  double attr_timeout = 0;
};

struct OpenOut {
  uint64_t fh = 0;
  bool keep_cache = false;  // FOPEN_KEEP_CACHE: content unchanged since the kernel cached it
  bool cache_dir = false;   // FOPEN_CACHE_DIR
  // The content changed remotely and the kernel may still hold the old size: the FUSE layer
  // invalidates the inode's attributes before replying (the poller's own invalidation is
  // asynchronous; a read in between would stop at the old size: a torn file).
  bool refresh_attrs = false;
};

struct StatfsOut {
  uint64_t block_size = 4096;
  uint64_t blocks = 0, blocks_free = 0, blocks_avail = 0;
  uint64_t files = 0, files_free = 0;
  uint32_t name_max = 255;
};

struct VfsStats {
  std::atomic<uint64_t> lookups{0}, lookups_remote{0}, listings{0}, listing_entries{0}, skipped_names{0};
  std::atomic<uint64_t> listings_from_store{0};
  std::atomic<uint64_t> commits{0}, commit_failures{0}, commit_retries{0}, bytes_written{0}, batches{0};
  std::atomic<uint64_t> uploaded_bytes{0}, dedup_bytes{0};
  std::atomic<uint64_t> polls{0}, revision_changes{0}, invalidations{0};
  std::atomic<uint64_t> reads{0}, reads_fast{0}, read_bytes{0}, read_errors{0};
  ReaderStats reader;
};

class Vfs {
 public:
  // `meta` (may be null) persists listings and chunk layouts across mounts.
  Vfs(VfsConfig cfg, Remote& remote, ChunkCache& cache, boost::asio::any_io_executor ex, MetaStore* meta = nullptr,
      std::optional<boost::asio::any_io_executor> cpu = std::nullopt);
  ~Vfs();
  // Cancels the Vfs's own work (poller, background commits, listings) and every reader's
  // fetches; what is waiting on them completes with Errc::cancelled. Dirty data stays staged
  // (and journaled) for the next mount. Irreversible: meant for teardown.
  void shutdown();

  const VfsConfig& config() const { return cfg_; }
  InodeTable& table() { return table_; }
  VfsStats& stats() { return stats_; }

  // Registers a revision tag (commit sha) and makes it current for new listings.
  void set_revision(std::string rev);
  std::string revision() const;

  // --- entries ---
  std::optional<Result<EntryOut>> lookup_fast(uint64_t parent, std::string_view name);
  Task<Result<EntryOut>> lookup(uint64_t parent, std::string name, CancelPtr cancel);
  // Frees an orphan at its last reference, and with it the write state it may keep (below).
  void forget(uint64_t ino, uint64_t nlookup);
  // readdirplus: counts one kernel reference to the node `name` in `dir` names *now*, returning
  // its current attributes (nullopt: no such entry any more, nothing counted). An open directory
  // handle lists names from its snapshot, which may predate a rename, unlink or relisting: the
  // snapshot's inode for a name may since live under another name (or be an orphan), and
  // handing that pair to the kernel makes it open the wrong file by that name.
  std::optional<Attr> add_lookup_child(uint64_t dir, std::string_view name);
  Result<Attr> getattr(uint64_t ino);
  Result<std::string> readlink(uint64_t ino);
  EntryOut entry_for(const Attr& a) const;

  // --- directories ---
  std::optional<Result<OpenOut>> opendir_fast(uint64_t ino);
  Task<Result<OpenOut>> opendir(uint64_t ino, CancelPtr cancel);
  std::shared_ptr<const DirSnapshot> dir_snapshot(uint64_t fh);
  void releasedir(uint64_t fh);
  // Loads a directory listing (single-flight per directory).
  Task<Status> ensure_listed(uint64_t dir, CancelPtr cancel);

  // --- files ---
  Result<OpenOut> open(uint64_t ino, int flags);
  bool read_fast(uint64_t fh, uint64_t off, uint64_t len, ReadData& out);
  Task<Result<ReadData>> read(uint64_t fh, uint64_t off, uint64_t len, CancelPtr cancel);
  void release(uint64_t fh);

  // --- xattrs, statfs ---
  Result<std::string> getxattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  StatfsOut statfs();

  // Reader for a file inode (creating it if needed); null for directories/unknown inodes.
  std::shared_ptr<FileReader> reader_for_ino(uint64_t ino);

  // --- writes (bucket mounts; Errc::read_only on read-only mounts) ---
  // New file, opened for writing. Visible in the mount at once; committed at flush/fsync.
  Result<std::pair<EntryOut, OpenOut>> create(uint64_t parent, std::string name, uint32_t mode, int flags);
  Result<EntryOut> mkdir(uint64_t parent, std::string name, uint32_t mode);
  Result<EntryOut> symlink(std::string target, uint64_t parent, std::string name);
  Task<Status> unlink(uint64_t parent, std::string name, CancelPtr cancel);
  Task<Status> rmdir(uint64_t parent, std::string name, CancelPtr cancel);
  Task<Status> rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name, bool no_replace,
                      CancelPtr cancel);
  Task<Result<EntryOut>> link(uint64_t ino, uint64_t new_parent, std::string new_name, CancelPtr cancel);
  Task<Result<Attr>> setattr(uint64_t ino, SetAttrIn in, CancelPtr cancel);
  // Local: lands in the staging file; the reply does not wait for the network.
  Result<size_t> write(uint64_t fh, uint64_t off, std::span<const uint8_t> data);
  // close(2) and fsync(2): return after the content is uploaded and committed, or fail.
  Task<Status> flush(uint64_t fh, CancelPtr cancel);
  Task<Status> fsync(uint64_t fh, CancelPtr cancel);
  // Commits every dirty file (unmount).
  Task<Status> flush_all();
  // Resumes what the write journal holds from an earlier mount (crash, kill -9, unmount with
  // failed uploads): staged files come back (and are committed again), interrupted namespace
  // changes are replayed. Call once after the root listing.
  Task<Status> recover_journal();
  size_t dirty_files() const;

  // --- remote changes ---
  void set_invalidator(Invalidator inv);
  // Checks once whether the revision moved; if so relists every loaded directory at the new
  // revision, updates the tree (local changes win) and invalidates what changed. Returns true
  // if the view changed.
  Task<Result<bool>> poll_once(CancelPtr cancel);
  // poll_once every `interval` until the Vfs is destroyed (401s and failures back off).
  Task<void> poll_loop(std::chrono::seconds interval);

 private:
  struct FileHandle {
    uint64_t ino;
    std::shared_ptr<FileReader> reader;  // null for empty files
    StreamState stream;
    bool writable = false;
  };
  // Uncommitted changes of one file. Dropped once committed and no handle is open, except for
  // a node whose content is the staged file (an orphan written locally, see
  // InodeTable::set_written): the staging file is then its only copy and lives as long as the
  // node (forget), never longer: the inode number may be reused by a new node afterwards.
  struct WriteState {
    std::shared_ptr<StagedFile> staged;
    std::shared_ptr<FileReader> base;          // reader of the base content (null if none)
    uint64_t committed_gen = 0;                // staged generation last committed
    bool ever_committed = false;
    SharedResultPtr<Status> flight;            // commit in progress
    int writers = 0;
    bool journaled = false;                    // a journal entry holds it (staging kept on disk)
    bool background = false;                   // a commit_alone_in_background loop runs
    // The journal owns the staged file while an entry names it: the two change together.
    void set_journaled(bool on) {
      journaled = on;
      staged->keep_on_disk(on);
    }
  };
  struct DirHandle {
    uint64_t ino = 0;
    // Taken at the first readdir, not at opendir: with the kernel's directory cache a warm
    // `find` opens every directory but reads none, and must not copy their entries.
    std::shared_ptr<const DirSnapshot> snap;
  };

  std::shared_ptr<FileReader> reader_locked(const NodeInfo& n);
  Task<void> load_dir(uint64_t dir, SharedResultPtr<Status> flight);
  std::vector<ListedEntry> convert_listing(std::vector<RemoteEntry>&& entries, const std::string& dir_path);
  Result<OpenOut> make_dir_handle(uint64_t ino);
  Result<std::shared_ptr<WriteState>> write_state_locked(uint64_t ino, const NodeInfo& n, bool truncate);
  std::shared_ptr<WriteState> write_state(uint64_t ino);
  // True if the node's content is its staged file (its write state must be kept).
  bool staged_only_locked(uint64_t ino) const;
  // Under mu_: after a node with a write state lost its name (unlink, renamed over), its
  // content becomes the staged file.
  void orphaned_locked(uint64_t ino);
  Task<Status> commit_ino(uint64_t ino, CancelPtr cancel);
  Task<Status> flush_ino_if_dirty(uint64_t ino, CancelPtr cancel);
  Status journal(uint64_t ino, const std::string& path, WriteState& ws);
  MetaStore::PendingFile journal_entry(uint64_t ino, const std::string& path, const WriteState& ws);
  // What flush and fsync owe: committed (writeback=sync) or durable locally and queued
  // (writeback=async, persist_locally under ns_mu_). A sync commit that fails retryably still
  // returns the error, and is then kept the async way (journal + background retries).
  Task<Status> make_durable(uint64_t ino, CancelPtr cancel);
  Status persist_locally(uint64_t ino);
  // writeback=async: commits the file in the background until it succeeds (small files in
  // groups, see group_flusher; large ones and failed group members alone).
  void commit_in_background(uint64_t ino);
  void commit_alone_in_background(uint64_t ino);
  Task<Status> replay_ops(MetaStore::PendingOps ops);
  Task<Status> commit_once(uint64_t ino, std::shared_ptr<WriteState> ws);
  // One file of a group commit; the caller holds each member's ws->flight.
  struct GroupMember {
    uint64_t ino = 0;
    std::shared_ptr<WriteState> ws;
    uint64_t gen = 0;                 // staged generation this commit sends
    bool skip = false;                // nothing to send (no name, junk name)
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::optional<std::string> path;  // as resolved for the batch
    xet::FileUploadResult up;
    bool clean = false;               // committed with no later writes
  };
  // Uploads the members' contents in one session and sends one batch; all or nothing.
  Task<Status> commit_group(std::vector<GroupMember>& members);
  bool nothing_to_send(const std::optional<std::string>& path) const;
  std::pair<xet::ReadFn, xet::KnownAt> upload_source(const WriteState& ws, uint64_t size);
  // Under mu_: the member for a dirty file, its flight taken (nullopt: clean, gone, or in
  // flight elsewhere: in_flight).
  std::optional<GroupMember> claim_locked(uint64_t ino, bool& in_flight);
  // commit_group, then completes and releases the members' flights.
  Task<Status> commit_claimed(std::vector<GroupMember>& group);
  // writeback=async: commits the queued small files in groups until the queue is empty.
  Task<void> group_flusher(CancelPtr life);
  static constexpr uint64_t kGroupFileLimit = 8 << 20;     // larger files commit alone
  static constexpr uint64_t kGroupBytesLimit = 256 << 20;  // per group
  Task<Result<ReadData>> read_staged(std::shared_ptr<WriteState> ws, uint64_t off, uint64_t len, CancelPtr cancel);
  Status check_writable() const;
  std::string full_path(uint64_t parent, std::string_view name);

  VfsConfig cfg_;
  Remote& remote_;
  ChunkCache& cache_;
  boost::asio::any_io_executor ex_;
  MetaStore* meta_;
  boost::asio::any_io_executor cpu_;
  InodeTable table_;
  VfsStats stats_;
  CancelPtr life_ = make_cancel();

  // Serializes what ties a file's path to the bucket: rename and unlink (their remote batches,
  // journal moves and local change) against a commit's path resolution, journal entry and
  // batch. Without it a commit that resolved its path before a rename put the file's bytes at
  // a name that had moved on (over the file renamed there) or resurrected an unlinked one.
  // Never held across an upload, and never taken by a holder again (not recursive).
  AsyncMutex ns_mu_;
  mutable std::mutex mu_;
  std::set<uint64_t> group_queue_;     // under mu_: small files waiting for a group commit
  bool group_flusher_running_ = false;  // under mu_
  std::vector<std::string> revs_;  // revision table (Content::rev indexes it)
  uint64_t next_fh_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<FileHandle>> files_;
  std::unordered_map<uint64_t, DirHandle> dirs_;
  std::unordered_map<uint64_t, SharedResultPtr<Status>> listing_flights_;
  // Readers by content key; weak so a reader dies with its last user, plus a small LRU of
  // strong references so a file reopened soon keeps its learned layout.
  // Keyed by size too: a server that lists one content with two sizes must not make one
  // file's reader (and its EOF) serve the other.
  std::map<std::tuple<int, Key32, uint64_t>, std::weak_ptr<FileReader>> readers_;
  std::list<std::shared_ptr<FileReader>> recent_readers_;
  // Content the kernel may hold pages of, per inode (decides FOPEN_KEEP_CACHE).
  std::unordered_map<uint64_t, Key32> kernel_content_;
  std::unordered_map<uint64_t, std::shared_ptr<WriteState>> writes_;
  Invalidator invalidator_;
  std::atomic<bool> relist_pending_{false};  // a relisting was skipped: redo it at the next poll
  std::unordered_set<uint64_t> stale_attrs_;  // content changed by the poller, not opened since
};

}  // namespace hf::fs
